"""End to end: the real service routes a simulated call centre over AMI, on a virtual clock.

Everything is checked against the simulated PBX's ground truth (what actually
happened on the PBX), never against the service's own log.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hotline.domain.effects import CallEnded, CallRequeued, OfferEnded
from hotline.domain.model import OfferResult, Outcome
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, start_stack
from tests.support import (
    OUTCOMES,
    QUEUES,
    WRAP_UP,
    call_centre,
    ground_truth_calls,
    wait_settled,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    running = await start_stack(call_centre(500, seed=11, rate_per_minute=22), queues=QUEUES)
    yield running
    await running.close()


async def test_500_calls_20_agents_every_outcome_matches_the_ground_truth(stack: Stack) -> None:
    await stack.login_all()
    stack.sim.start_arrivals()
    # Mid-run agent control through the API: a pause and a logout.
    await stack.sleep(180.0)
    await stack.agent("pause", "2001", "lunch")
    # At the ground truth's resolution (microseconds): on the virtual clock an agent is
    # rung in the very instant it is unpaused, which must not read as during the pause.
    paused_from = round(stack.clock.now(), 6)
    await stack.agent("logout", "2002")
    logged_out_from = round(stack.clock.now(), 6)
    await stack.sleep(240.0)
    paused_until = round(stack.clock.now(), 6)
    await stack.agent("unpause", "2001")
    await wait_settled(stack)

    truth = ground_truth_calls(stack)
    assert len(truth) == 500
    assert all(r["outcome"] != "open" for r in truth.values())
    assert stack.sim.errors == []

    ended = [f for f in stack.facts if isinstance(f, CallEnded)]
    by_call = {f.call_id: f for f in ended}
    assert len(ended) == len(by_call) == 500, "exactly one outcome per call"
    assert set(by_call) == set(truth)

    offers = offers_by_call(stack)
    orphans = orphan_rings(stack)
    for call_id, record in truth.items():
        assert_call_matches(call_id, record, by_call[call_id])
        ours = sorted(offers[call_id], key=lambda o: o.requested_at)
        assert_offers_match(call_id, record["rings"], orphans[call_id], ours)

    outcomes = {o for f in ended for o in [f.outcome]}
    assert outcomes >= {Outcome.ANSWERED, Outcome.ABANDONED_WAITING, Outcome.ABANDONED_RINGING}
    all_rings = [ring for record in truth.values() for ring in record["rings"]]
    assert {ring["outcome"] for ring in all_rings} >= {"answered", "no_answer", "busy"}

    # Every ring-no-answer put a still-waiting caller straight back in the queue.
    requeued = {(f.call_id, f.reason) for f in stack.facts if isinstance(f, CallRequeued)}
    for call_id, rings in offers.items():
        for offer in rings:
            if offer.result is OfferResult.NO_ANSWER and by_call[call_id].ended_at > offer.ended_at:
                assert (call_id, "ring no_answer") in requeued

    # No agent double-booked, wrap-up honoured, paused and logged-out agents never rung.
    busy = busy_spans(truth)
    assert_never_double_booked(busy)
    rung_2001 = [start for start, _, _ in busy["Local/2001@agents"]]
    assert not [t for t in rung_2001 if paused_from < t < paused_until]
    assert not [t for t in busy["Local/2002@agents"] if t[0] > logged_out_from]
    assert stack.engine.router.agents["2015"].pause_reason == "no answer"


def offers_by_call(stack: Stack) -> dict[str, list[OfferEnded]]:
    """The service's ended offers, per call."""
    offers: dict[str, list[OfferEnded]] = defaultdict(list)
    for fact in stack.facts:
        if isinstance(fact, OfferEnded):
            offers[fact.call_id].append(fact)
    return offers


def orphan_rings(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Per call, the agent legs the PBX made only after its caller had gone ("orphan" rings)."""
    orphans: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in stack.sim.ground_truth:
        if record["type"] == "ring":
            orphans[record["call_id"]].append(record)
    return orphans


def assert_call_matches(call_id: str, record: dict[str, Any], fact: CallEnded) -> None:
    """The service's outcome, answering agent and times are the ground truth's."""
    assert fact.outcome is OUTCOMES[(record["outcome"], record["abandoned_while"])], call_id
    if record["outcome"] == "answered":
        assert f"Local/{fact.answered_by}@agents" == record["answered_by"]
        assert fact.answered_at == pytest.approx(record["answered_at"], abs=1e-6)
    assert fact.arrived_at == pytest.approx(record["arrived_at"], abs=1e-6)


def assert_offers_match(
    call_id: str,
    rings: list[dict[str, Any]],
    orphans: list[dict[str, Any]],
    ours: list[OfferEnded],
) -> None:
    """One offer per ring of the call (then one cancelled offer per orphan ring), each with
    the ring's agent, result and times."""
    assert len(ours) == len(rings) + len(orphans), call_id
    for orphan, offer in zip(orphans, ours[len(rings) :], strict=True):
        assert orphan["agent"] == f"Local/{offer.agent_id}@agents"
        assert offer.result is OfferResult.CANCELLED
    for ring, offer in zip(rings, ours, strict=False):
        assert ring["agent"] == f"Local/{offer.agent_id}@agents"
        assert offer.result.value == ring["outcome"], (call_id, ring)
        assert offer.ended_at == pytest.approx(ring["ring_end"], abs=1e-6)
        if ring["ring_start"] is not None:
            assert offer.ring_start_source == "pbx"
            assert offer.ring_started_at == pytest.approx(ring["ring_start"], abs=1e-6)


def busy_spans(truth: dict[str, dict[str, Any]]) -> dict[str, list[tuple[float, float, str]]]:
    """Per agent device: (rung at, released at, ring outcome); an answered ring releases the
    agent at the call's end plus the wrap-up."""
    busy: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for record in truth.values():
        for ring in record["rings"]:
            release = ring["ring_end"]
            if ring["outcome"] == "answered":
                release = record["ended_at"] + WRAP_UP
            busy[ring["agent"]].append((ring["requested_at"], release, ring["outcome"]))
    return busy


def assert_never_double_booked(busy: dict[str, list[tuple[float, float, str]]]) -> None:
    """No agent rung again before its previous ring (or call and wrap-up) released it."""
    for agent, spans in busy.items():
        spans.sort()
        for (_, release, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= release - 0.05, f"{agent} rung at {start} before release {release}"


async def test_agent_api_requires_the_bearer_token_and_validates_input(stack: Stack) -> None:
    url = f"{stack.base_url}/api/agents/2001/login"
    async with stack.session.post(url) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    auth = {"Authorization": f"Bearer {stack.token}"}
    async with stack.session.post(url, headers={"Authorization": "Bearer wrong"}) as response:
        assert response.status == 401
    async with stack.session.post(f"{stack.base_url}/api/agents/9999/login", headers=auth) as r:
        assert r.status == 404
    async with stack.session.post(
        f"{stack.base_url}/api/agents/2001/pause", headers=auth, data=b"{not json"
    ) as response:
        assert response.status == 422
    async with stack.session.post(
        f"{stack.base_url}/api/agents/2001/pause", headers=auth, json={"reason": "x\r\ny"}
    ) as response:
        assert response.status == 422
        assert "reason" in (await response.json())["fields"]
    agent = await stack.agent("pause", "2003", "training")
    assert agent["state"] == "logged_out"  # a logged-out agent stays shown as logged out
    await stack.agent("login", "2001")
    agent = await stack.agent("pause", "2001", "training")
    assert agent["state"] == "paused"
    assert agent["pause_reason"] == "training"
    async with stack.session.get(f"{stack.base_url}/api/agents", headers=auth) as response:
        listed = {a["id"]: a for a in await response.json()}
    assert listed["2001"]["state"] == "paused"
    assert listed["2003"]["state"] == "logged_out"
    assert listed["2003"]["pause_reason"] == "training"
    async with stack.session.get(f"{stack.base_url}/health") as response:
        health = await response.json()
    assert health["pbx_connected"] is True


async def next_resync(stack: Stack, resyncs: int) -> float:
    """The clock's reading at the end of the engine's next resync after ``resyncs`` of them.

    The engine clears ``synced`` when it sees the connection drop and sets it at the end
    of a resync. Until the drop is seen this spins (``sleep(0)`` keeps a virtual clock
    still: the drop needs no scenario time); then the waiter on ``synced`` runs right
    after the resync, before the clock can move on.
    """
    engine = stack.engine
    while engine.resyncs <= resyncs:
        if engine.synced.is_set():
            await asyncio.sleep(0)
        else:
            await engine.synced.wait()
    return stack.clock.now()


def stack_journal(stack: Stack) -> dict[str, str]:
    return dict(stack.sim.core.db.get("hotline_journal", {}))


async def test_ami_connection_killed_three_times_mid_run_strands_nobody() -> None:
    running = await start_stack(call_centre(200, seed=5, rate_per_minute=30), queues=QUEUES)
    try:
        await running.login_all()
        running.sim.start_arrivals()
        outages: list[tuple[float, float]] = []
        credentials = running.sim.server.credentials
        for kill in range(3):
            await running.sleep(120.0)
            dropped = running.clock.now()
            resyncs = running.engine.resyncs
            if kill == 2:  # a long one: logins are refused for two scenario minutes
                running.sim.server.credentials = ServerCredentials("hotline", "changed")
            running.sim.server.drop_all()
            if kill == 2:
                await running.sleep(120.0)
                running.sim.server.credentials = credentials
            resynced_at = await asyncio.wait_for(next_resync(running, resyncs), 30)
            outages.append((dropped, resynced_at))
        await wait_settled(running)
        truth = ground_truth_calls(running)
        assert len(truth) == 200
        ended = [f for f in running.facts if isinstance(f, CallEnded)]
        assert len(ended) == len({f.call_id for f in ended}), "no duplicate outcomes"
        # A caller who came and went entirely inside an outage was never visible over
        # AMI: the dialplan's journal accounts for them at the next resync.
        unseen = {
            call_id
            for call_id, r in truth.items()
            if any(start <= r["arrived_at"] and r["ended_at"] <= end for start, end in outages)
        }
        assert unseen, "callers came and went during the long outage"
        assert {f.call_id for f in ended} == set(truth), "every caller accounted for"
        for fact in ended:
            if fact.call_id in unseen:
                assert fact.outcome is Outcome.ABANDONED_WAITING
                assert fact.end_source == "journal"
                assert abs(fact.ended_at - truth[fact.call_id]["ended_at"]) < 1e-3
        assert stack_journal(running) == {}, "every journal entry was cleaned up"
        assert running.engine.resyncs >= 4
        assert running.engine.router.live_calls() == []
        assert running.engine.router.waiting_calls() == []
        answered = sum(1 for f in ended if f.outcome is Outcome.ANSWERED)
        assert answered > 100
    finally:
        await running.close()
