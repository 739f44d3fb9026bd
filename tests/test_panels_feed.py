"""An agent's live feed on the running service with the simulated PBX: never another
queue's callers; pages closed with GOING_AWAY at shutdown (hotline/web/live.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode

from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.store.users import Users
from hotline.web.keys import STORE
from tests.api_support import FAST, PASSWORD

pytestmark = pytest.mark.e2e

SUPPORT_CALLER = "13900139003"
SALES_CALLER = "13700137007"


def two_queue_scenario(name: str = "feed") -> Scenario:
    """Two callers, one each for support and sales, and one agent (2001, support only) who
    never answers: both stay waiting, so each page's view of them can be checked."""
    return Scenario(
        name=name,
        seed=5,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(
            count=2,
            rate_per_minute=120.0,
            queues=(("support", 1.0), ("sales", 1.0)),
            numbers=(SUPPORT_CALLER, SALES_CALLER),
            patience=Fixed(900.0),
        ),
        agents=(AgentGroup(("Local/2001@agents",), AgentBehaviour(no_answer=1.0)),),
    )


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        two_queue_scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[{"name": "support"}, {"name": "sales"}],
        agents=[{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
    )
    users = Users(running.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001")
    await users.create("sam", PASSWORD, role="supervisor")
    try:
        yield running
    finally:
        if running.session.closed:  # the test stopped the service
            await running.sim.close()
        else:
            await running.close()


async def _feed(
    stack: Stack, client: aiohttp.ClientSession, username: str
) -> aiohttp.ClientWebSocketResponse:
    """Sign in and open the feed with the session cookie (sent by hand: it is ``Secure``)."""
    async with client.post(
        f"{stack.base_url}/api/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        cookie = response.cookies["hotline_session"].value
    return await client.ws_connect(
        f"{stack.base_url}/api/live", headers={"Cookie": f"hotline_session={cookie}"}
    )


async def test_an_agents_feed_never_carries_another_queues_callers(stack: Stack) -> None:
    async with aiohttp.ClientSession() as client:
        await _check_feeds(stack, client)


async def _check_feeds(stack: Stack, client: aiohttp.ClientSession) -> None:
    agent_ws, boss_ws = await _feed(stack, client, "ann"), await _feed(stack, client, "sam")
    stack.sim.start_arrivals()
    seen: set[str] = set()
    while seen != {SUPPORT_CALLER, SALES_CALLER}:  # the supervisor sees both callers
        frame = json.loads((await boss_ws.receive(timeout=60)).data)
        for queue in frame["queues"]:
            seen.update(call["number"] for call in queue["waiting"])
    agent_frames: list[str] = []
    while True:  # everything the agent was sent by now
        try:
            agent_frames.append((await agent_ws.receive(timeout=1)).data)
        except TimeoutError:
            break
    assert agent_frames
    text = "".join(agent_frames)
    assert SALES_CALLER not in text
    assert SALES_CALLER[-4:] not in text  # not even masked: not the agent's queue
    assert '"sales"' not in text
    await stack.stop_service()  # shutdown: pages closed with GOING_AWAY
    closing = await asyncio.wait_for(boss_ws.receive(), 30)
    while closing.type is aiohttp.WSMsgType.TEXT:  # deltas sent before the shutdown
        closing = await asyncio.wait_for(boss_ws.receive(), 30)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == WSCloseCode.GOING_AWAY
