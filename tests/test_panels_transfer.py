"""A difficult call goes up, on the running service with the simulated PBX: the agent's
``POST /api/panel/transfer`` sets the caller's ``HOTLINE_QUEUE`` and redirects them back into
``hotline-inbound``; the supervisor's phone rings with the same ticket and answers; the call
is recorded once, answered, with the transfer note as an escalation (hotline/web/desk.py,
hotline/domain/routing/transfer.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hotline.domain.effects import CallAnswered, CallEnded, CallRequeued
from hotline.domain.model import Outcome
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.store.users import Users
from hotline.web.keys import STORE
from tests.api_support import FAST, PASSWORD
from tests.support import hold, scenario_until, spin_until, wait_settled

pytestmark = pytest.mark.e2e

CALLER = "13900139005"
AGENT = "Local/2001@agents"
SUPERVISOR = "Local/9001@agents"


def _scenario() -> Scenario:
    return Scenario(
        name="transfer",
        seed=11,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(count=1, rate_per_minute=60.0, numbers=(CALLER,), patience=Fixed(900)),
        agents=(
            AgentGroup(
                (AGENT, SUPERVISOR), AgentBehaviour(answer_delay=Fixed(2.0), talk=Fixed(3600))
            ),
        ),
    )


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        _scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[{"name": "support", "wrap_up": 5}, {"name": "supervisors", "wrap_up": 5}],
        agents=[
            {"id": "2001", "device": AGENT, "queues": ["support"]},
            {"id": "9001", "device": SUPERVISOR, "queues": ["supervisors"]},
        ],
    )
    users = Users(running.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001")
    await users.create("sam", PASSWORD, role="supervisor", agent_id="9001")
    try:
        yield running
    finally:
        await running.close()


async def _signed_in(stack: Stack, client: aiohttp.ClientSession, username: str) -> dict[str, str]:
    """Headers of a signed-in session (the cookie sent by hand: it is ``Secure``)."""
    async with client.post(
        f"{stack.base_url}/api/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        me = await response.json()
        cookie = response.cookies["hotline_session"].value
    return {"Cookie": f"hotline_session={cookie}", "X-CSRF-Token": me["csrf_token"]}


def _facts(stack: Stack, kind: type[Any]) -> list[Any]:
    return [fact for fact in stack.facts if isinstance(fact, kind)]


async def test_a_transferred_caller_rings_a_supervisor_with_the_same_ticket(stack: Stack) -> None:
    await stack.agent("login", "2001")
    await stack.agent("login", "9001")
    async with aiohttp.ClientSession() as client:
        ann = await _signed_in(stack, client, "ann")
        stack.sim.start_arrivals()
        router = stack.engine.router
        await scenario_until(
            stack.clock, lambda: router.call_of_agent("2001") is not None, what="ann talking"
        )
        call = router.call_of_agent("2001")
        assert call is not None
        body = {"queue": "supervisors", "note": "Wants the manager <now>"}
        with hold(stack.clock):  # no scenario time passes: ann is still on the call
            async with client.post(
                f"{stack.base_url}/api/panel/transfer", json=body, headers=ann
            ) as response:
                assert response.status == 200, await response.text()
                answer = await response.json()
            assert (answer["call_id"], answer["ticket"], answer["queue"]) == (
                call.call_id,
                call.ticket,
                "supervisors",
            )
            assert answer["escalation"]["kind"] == "transfer"
            assert answer["escalation"]["reason"] == "Wants the manager <now>"
            channel = call.channel

            def queue_set() -> bool:  # the Setvar before the Redirect reached the PBX
                caller = stack.sim.channels.get(channel)
                return caller is not None and caller.variables.get("HOTLINE_QUEUE") == "supervisors"

            await spin_until(queue_set, what="the caller's HOTLINE_QUEUE set at the PBX")

        await scenario_until(
            stack.clock,
            lambda: router.call_of_agent("9001") is not None,
            what="the supervisor talking to the caller",
        )
        again = await client.post(f"{stack.base_url}/api/panel/transfer", json=body, headers=ann)
        assert again.status == 409  # ann has nobody on the line any more
        await wait_settled(stack)

    answered = _facts(stack, CallAnswered)
    assert [(a.agent_id, a.call_id, a.ticket) for a in answered] == [
        ("2001", call.call_id, call.ticket),
        ("9001", call.call_id, call.ticket),
    ]
    [requeued] = [f for f in _facts(stack, CallRequeued) if f.reason == "transfer"]
    assert requeued.queue == "supervisors"
    [ended] = _facts(stack, CallEnded)
    assert (ended.outcome, ended.queue, ended.original_queue) == (
        Outcome.ANSWERED,
        "supervisors",
        "support",
    )
    assert await stack.app[STORE].outbox.flush(10)
    row = await stack.app[STORE].pool.fetchrow(
        "select outcome, answered_by, queue from calls where call_id = $1", call.call_id
    )
    assert row is not None
    assert (row["outcome"], row["answered_by"], row["queue"]) == ("answered", "2001", "supervisors")
    [ground] = [r for r in stack.sim.ground_truth if r["type"] == "call"]
    assert [(ring["agent"], ring["ticket"]) for ring in ground["rings"]] == [
        (AGENT, call.ticket),
        (SUPERVISOR, call.ticket),
    ]
