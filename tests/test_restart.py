"""End to end: the service is restarted (or crashes) while the PBX goes on.

A crash is the first service losing the PBX for good: the sim drops every AMI
session and changes its secret, so the old process, still running without its
cleanup or outbox flush, can never act on the PBX again. A second service with a
new boot id (and the new secret) then connects to the same simulated PBX, on the
same clock. Everything is checked against the sim's ground truth.

On the e2e tier's virtual clock the tests wait for scenario states in scenario time
(:func:`tests.support.scenario_until`), and keep the clock still while a process
starts or flushes to PostgreSQL (:func:`tests.support.hold`): a restart takes no
scenario time, as it took next to none on the scaled clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from hotline.clock import virtual_clock_of
from hotline.domain.commands import Login
from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    Fact,
    OfferEnded,
)
from hotline.domain.model import Activity, AgentState, OfferResult, Outcome
from hotline.engine import Engine
from hotline.main import create_app
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, build_settings, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario, Uniform
from hotline.web.keys import ENGINE, STORE
from tests.e2e_support import OUTCOMES, devices, ground_truth_calls
from tests.support import hold, scenario_until

pytestmark = pytest.mark.e2e

RING_TIMEOUT = 25.0
QUEUES = [{"name": "support", "ring_timeout": RING_TIMEOUT, "wrap_up": 2.0}]
SECRET = "after-the-crash"


@dataclass
class Service:
    """A second service process on the stack's sim."""

    app: web.Application
    runner: web.AppRunner
    facts: list[Fact] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        """Its engine."""
        return self.app[ENGINE]

    async def login(self, *agent_ids: str) -> None:
        """Log agents in through the engine, as the API does."""
        for agent_id in agent_ids:
            await self.engine.command(Login(agent_id))


def crash(stack: Stack) -> None:
    """The first service loses the PBX for good (a crash, as far as the PBX can tell)."""
    stack.sim.server.credentials = ServerCredentials("hotline", SECRET)
    stack.sim.server.drop_all()


@asynccontextmanager
async def second_service(
    stack: Stack, scenario: Scenario, **settings_options: Any
) -> AsyncIterator[Service]:
    """Start another service process against the stack's sim; stop it at the end."""
    settings = build_settings(
        scenario, stack.sim.port, queues=QUEUES, secret=SECRET, **settings_options
    )
    # On the virtual clock, reconnect at once (a real back-off would let scenario time
    # run on meanwhile), as start_stack does.
    reconnect = (0.0, 0.0) if virtual_clock_of() is not None else (0.01, 0.2)
    settings = replace(
        settings,
        ami=replace(settings.ami, reconnect_min=reconnect[0], reconnect_max=reconnect[1]),
        service=replace(settings.service, instance="R"),
    )
    facts: list[Fact] = []
    app = create_app(settings, clock=stack.clock, sinks=[facts.append])
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    service = Service(app, runner, facts)
    try:
        # The new process starts at once in scenario time: nothing the PBX does meanwhile
        # waits for the (real-time) connection, login and resync.
        with hold(stack.clock):
            await service.engine.ami.wait_connected(10)
            await asyncio.wait_for(service.engine.synced.wait(), 10)
        yield service
    finally:
        await runner.cleanup()


async def until(stack: Stack, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition that the scenario makes true, checking it every 50 ms of
    scenario time."""
    await scenario_until(stack.clock, condition, timeout, what="the condition")


async def settled(stack: Stack, service: Service) -> None:
    """Every call is over on the PBX and the second service has applied every event."""
    await stack.sim.wait_idle(60)
    await until(stack, lambda: not service.engine.router.live_calls())


def ended_by_call(facts: list[Fact]) -> dict[str, CallEnded]:
    ended = [f for f in facts if isinstance(f, CallEnded)]
    by_call = {f.call_id: f for f in ended}
    assert len(by_call) == len(ended), "one outcome per call"
    return by_call


# -- a restart while agent legs ring ------------------------------------------------------------


def ringing_scenario() -> Scenario:
    """Three callers at once; every agent answers after 12 s and talks 6 s."""
    return Scenario(
        name="restart-while-ringing",
        seed=3,
        time_scale=4.0,
        arrivals=Arrivals(count=3, rate_per_minute=600, start_after=0.5, patience=Fixed(90.0)),
        agents=(
            AgentGroup(
                devices(2001, 2005), AgentBehaviour(answer_delay=Fixed(12.0), talk=Fixed(6.0))
            ),
        ),
    )


async def test_a_restart_while_agent_legs_ring_keeps_every_ring_and_cuts_nobody_off() -> None:
    scenario = ringing_scenario()
    stack = await start_stack(scenario, queues=QUEUES)
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        first = stack.engine.router
        await until(
            stack, lambda: sum(1 for o in first.offers.values() if o.leg_channel and o.open) == 3
        )
        ringing = {o.offer_id: o.agent_id for o in first.offers.values() if o.open}
        crash(stack)
        async with second_service(stack, scenario) as service:
            router = service.engine.router
            adopted = {o.offer_id: o.agent_id for o in router.offers.values() if o.open}
            assert adopted == ringing, "the predecessor's rings are live offers"
            for agent_id in ringing.values():
                assert router.agents[agent_id].activity is Activity.RINGING
            await service.login(*service.engine.router.agents)
            for agent_id in ringing.values():
                assert router.agents[agent_id].state is AgentState.RINGING, "no double booking"
            await settled(stack, service)
            facts = service.facts
    finally:
        await stack.close()

    truth = ground_truth_calls(stack)
    assert len(truth) == 3
    assert stack.sim.errors == []
    ended = ended_by_call(facts)
    assert set(ended) == set(truth)
    for call_id, record in truth.items():
        (ring,) = record["rings"]  # nobody else was rung: no double booking
        assert ring["outcome"] == "answered"
        assert ring["leg_id"] in ringing
        assert record["outcome"] == "answered"
        assert record["hung_up_by"] == "agent", "the answered call was never hung up"
        fact = ended[call_id]
        assert fact.outcome is Outcome.ANSWERED
        assert fact.answered_by == record["answered_by"].split("/")[1].split("@")[0]
        assert fact.answered_at is not None
        assert abs(fact.answered_at - record["answered_at"]) < 1e-3
    answered_offers = [f for f in facts if isinstance(f, OfferEnded)]
    assert {f.offer_id for f in answered_offers} == set(ringing)
    assert all(f.result is OfferResult.ANSWERED for f in answered_offers)
    assert not [
        f for f in facts if isinstance(f, AgentStateChanged) and f.state is AgentState.UNAVAILABLE
    ], "no innocent cool-down"


# -- callers who come and go while the service is down -----------------------------------------


def gap_scenario() -> Scenario:
    """Callers every couple of seconds, some patient, some not; nobody answers before the
    crash, and the agents of the new process answer after 1 s."""
    return Scenario(
        name="restart-gap",
        seed=8,
        time_scale=10.0,
        arrivals=Arrivals(
            count=10, rate_per_minute=40, start_after=0.5, patience=Uniform(2.0, 40.0)
        ),
        agents=(
            AgentGroup(
                devices(2001, 2002), AgentBehaviour(answer_delay=Fixed(1.0), talk=Fixed(2.0))
            ),
        ),
    )


async def test_callers_who_come_and_go_while_the_service_is_down_are_recorded() -> None:
    scenario = gap_scenario()
    stack = await start_stack(scenario, queues=QUEUES)
    try:
        stack.sim.start_arrivals()
        await until(stack, lambda: len(stack.engine.router.live_calls()) >= 1)
        crash(stack)
        down_since = stack.clock.now()

        def gone_unseen() -> list[dict[str, Any]]:
            return [r for r in ground_truth_calls(stack).values() if r["arrived_at"] > down_since]

        def waiting_unseen() -> list[str]:
            return [
                call.channel.uniqueid
                for call in stack.sim.core.calls.values()
                if call.record is not None and call.record.arrived_at > down_since
            ]

        await until(stack, lambda: bool(gone_unseen()) and bool(waiting_unseen()), 60)
        came_and_went = {r["call_id"] for r in gone_unseen()}
        adopted = set(waiting_unseen())
        async with second_service(stack, scenario) as service:
            await service.login("2001", "2002")
            await settled(stack, service)
            await until(stack, lambda: not stack.sim.core.db.get("hotline_journal"))
            facts = service.facts
    finally:
        await stack.close()

    truth = ground_truth_calls(stack)
    assert len(truth) == 10
    assert stack.sim.errors == []
    ended = ended_by_call(facts)
    assert set(ended) == set(truth), "every caller is recorded by the new process"
    for call_id, record in truth.items():
        fact = ended[call_id]
        assert fact.outcome is OUTCOMES[(record["outcome"], record["abandoned_while"])]
        assert abs(fact.arrived_at - record["arrived_at"]) < 1e-3, "the journal's arrival"
        assert abs(fact.ended_at - record["ended_at"]) < 1e-3
        if fact.answered_at is not None:
            assert abs(fact.answered_at - record["answered_at"]) < 1e-3
            assert fact.wait_seconds == fact.answered_at - fact.arrived_at
    for call_id in came_and_went:
        assert ended[call_id].outcome is Outcome.ABANDONED_WAITING
        assert ended[call_id].end_source == "journal"
    assert adopted
    assert all(ended[call_id].arrival_source == "journal" for call_id in adopted)


# -- a call answered before a crash, ended during the gap --------------------------------------


def answered_scenario() -> Scenario:
    """One caller, answered after 2 s; the talk ends while the service is down."""
    return Scenario(
        name="restart-answered",
        seed=4,
        time_scale=4.0,
        arrivals=Arrivals(count=1, rate_per_minute=60, start_after=0.5, patience=Fixed(90.0)),
        agents=(
            AgentGroup(
                devices(2001, 2001), AgentBehaviour(answer_delay=Fixed(2.0), talk=Fixed(4.0))
            ),
        ),
    )


async def call_row(dsn: str, call_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            """
            select outcome, answered_by, state, wait_seconds, offers,
                   extract(epoch from arrived_at)::float8 as arrived_at,
                   extract(epoch from answered_at)::float8 as answered_at,
                   extract(epoch from ended_at)::float8 as ended_at
            from calls where call_id = $1
            """,
            call_id,
        )
    finally:
        await conn.close()


async def test_a_call_answered_before_a_crash_and_ended_in_the_gap_is_recorded_answered(
    migrated_database_url: str, tmp_path: Path
) -> None:
    scenario = answered_scenario()
    dsn = migrated_database_url
    stack = await start_stack(
        scenario, queues=QUEUES, database_url=dsn, state_dir=str(tmp_path / "first")
    )
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await until(stack, lambda: any(isinstance(f, CallAnswered) for f in stack.facts))
        (answered,) = [f for f in stack.facts if isinstance(f, CallAnswered)]
        # The previous process had written the answer to PostgreSQL before it died.
        with hold(stack.clock):
            assert await stack.app[STORE].outbox.flush(30)
        crash(stack)
        await stack.sim.wait_idle(60)
        async with second_service(
            stack, scenario, database_url=dsn, state_dir=str(tmp_path / "second")
        ) as service:
            await until(stack, lambda: bool(ended_by_call(service.facts)))
            with hold(stack.clock):
                assert await service.app[STORE].outbox.flush(30)
            rows = await call_row(dsn, answered.call_id)
            facts = service.facts
    finally:
        await stack.close()

    record = ground_truth_calls(stack)[answered.call_id]
    assert record["outcome"] == "answered"
    (fact,) = ended_by_call(facts).values()
    assert fact.outcome is Outcome.ANSWERED
    assert fact.answered_by == "2001"
    assert fact.end_source == "journal"
    (row,) = rows  # exactly once
    assert row["outcome"] == "answered"
    assert row["answered_by"] == "2001"
    assert row["state"] == "completed"
    assert abs(row["arrived_at"] - record["arrived_at"]) < 1e-3
    assert abs(row["answered_at"] - record["answered_at"]) < 1e-2
    assert abs(row["ended_at"] - record["ended_at"]) < 1e-3
    assert abs(row["wait_seconds"] - (row["answered_at"] - row["arrived_at"])) < 1e-3
    assert row["offers"] >= 1


def talking_scenario() -> Scenario:
    """One caller, answered after 2 s, who talks for 20 s: long enough for a restart."""
    return Scenario(
        name="restart-talking",
        seed=5,
        time_scale=4.0,
        arrivals=Arrivals(count=1, rate_per_minute=60, start_after=0.5, patience=Fixed(90.0)),
        agents=(
            AgentGroup(
                devices(2001, 2001), AgentBehaviour(answer_delay=Fixed(2.0), talk=Fixed(20.0))
            ),
        ),
    )


async def test_a_call_answered_before_a_crash_and_still_talking_keeps_its_answer_time() -> None:
    scenario = talking_scenario()
    stack = await start_stack(scenario, queues=QUEUES)
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await until(stack, lambda: any(isinstance(f, CallAnswered) for f in stack.facts))
        crash(stack)
        async with second_service(stack, scenario) as service:
            assert stack.sim.core.calls, "still talking at the restart"
            await settled(stack, service)
            facts = service.facts
    finally:
        await stack.close()

    (record,) = ground_truth_calls(stack).values()
    (fact,) = ended_by_call(facts).values()
    assert record["outcome"] == "answered"
    assert fact.outcome is Outcome.ANSWERED
    assert fact.answered_by == "2001"
    assert fact.answered_at is not None
    assert abs(fact.answered_at - record["answered_at"]) < 1e-2, "the dialplan's answer time"
    assert abs(fact.arrived_at - record["arrived_at"]) < 1e-3, "the journal's arrival"
    assert fact.wait_seconds == fact.answered_at - fact.arrived_at
