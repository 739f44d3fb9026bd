"""Metrics: counting facts by hand, agent time, live gauges, rendering, and the ground truth.

The hand-fed tests pin every rule (attribution, boundaries, time accounting) on
a fixed clock. The end-to-end test runs a time-scaled call centre through the
real service and the simulated PBX, scrapes ``/metrics`` over HTTP, and checks
every counter and histogram against what the sim's ground truth implies.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hotline.ami.client import AmiClient
from hotline.clock import SystemClock
from hotline.config import Settings, parse_settings
from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRequeued,
    Command,
    Effect,
    Fact,
    OfferEnded,
    RoutingWarning,
)
from hotline.domain.events import CallerWaiting
from hotline.domain.model import AgentState, OfferResult, Outcome
from hotline.domain.routing import Router
from hotline.domain.sla import CallTally, service_level, tally_call
from hotline.engine import Engine
from hotline.prometheus import MAX_PAUSE_REASONS, Metrics, ring_buckets, wait_buckets
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import (
    Scenario,
)
from hotline.web.scrape import CONTENT_TYPE
from tests.support import (
    MEASURED_MAX_WAIT,
    MEASURED_QUEUES,
    MEASURED_RING_TIMEOUT,
    MEASURED_WRAP_UP,
    OUTCOMES,
    measured_agents,
    measured_call_centre,
    wait_settled,
)

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
BOUNDED_LABELS = {"queue", "agent", "outcome", "state", "reason", "le", "category", "stage"}
BOUNDED_LABELS |= {"pbx_id", "role"}  # failover: the one configured pbx_id; 3 roles
BOUNDED_LABELS |= {"score"}  # the IVR survey: 1-5
BOUNDED_LABELS |= {"time_zone"}  # the one configured time zone
# stage: the engine-error stages, hotline.engine.ENGINE_STAGES (five fixed values)
# The exporter conventions (one series each, or one per configured agent or GC generation):
# hotline_build_info{version,python}, hotline_agent_info{agent,name}, python_info, python_gc_*.
BOUNDED_LABELS |= {"version", "python", "name", "generation"}
BOUNDED_LABELS |= {"implementation", "major", "minor", "patchlevel"}


class FixedClock(SystemClock):
    """A clock that only moves when told to."""

    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def settings() -> Settings:
    return parse_settings(
        {
            "queues": [{"name": "support"}, {"name": "sales"}],
            "agents": [
                {"id": "1001", "device": "PJSIP/1001", "queues": ["support", "sales"]},
                {"id": "1002", "device": "PJSIP/1002", "queues": ["sales"]},
            ],
        },
        env={},
    )


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def offer(
    offer_id: str,
    call_id: str,
    agent: str,
    queue: str,
    ring: tuple[float, float],
    result: OfferResult,
) -> OfferEnded:
    return OfferEnded(
        offer_id, call_id, agent, queue, "T", ring[0], ring[0], "pbx", ring[1], "pbx", result
    )


def ended(
    call_id: str,
    queue: str,
    outcome: Outcome,
    arrived: float,
    end: float,
    *,
    answer: tuple[str, float, float] | None = None,
    original: str | None = None,
) -> CallEnded:
    """``answer`` is (agent, answered_at, talk_ended_at)."""
    return CallEnded(
        call_id=call_id,
        channel=f"PJSIP/trunk-{call_id}",
        linkedid=call_id,
        ticket="T",
        number="13900000000",
        queue=queue,
        original_queue=original or queue,
        priority=0,
        arrived_at=arrived,
        arrival_source="pbx",
        answered_at=answer[1] if answer else None,
        answered_by=answer[0] if answer else None,
        talk_ended_at=answer[2] if answer else None,
        ended_at=end,
        end_source="pbx",
        outcome=outcome,
        offers=1,
    )


def feed(metrics: Metrics, facts: Iterable[Fact]) -> None:
    for fact in facts:
        metrics.sink(fact)


HAND_FACTS: list[Fact] = [
    # c1: rings exactly 3 rings (15.0 s, within), answered after a 15.2 s wait (not within).
    CallArrived("c1", "T", "139", "support", 0, 100.0, "pbx"),
    offer("o1", "c1", "1001", "support", (100.2, 115.2), OfferResult.ANSWERED),
    CallAnswered("c1", "1001", "support", "T", 100.0, 115.2, "pbx"),
    ended("c1", "support", Outcome.ANSWERED, 100.0, 175.5, answer=("1001", 115.2, 175.0)),
    # c2: a ring-no-answer, a busy, then the caller gives up after 20 s.
    CallArrived("c2", "T", "139", "support", 0, 200.0, "pbx"),
    offer("o2", "c2", "1002", "support", (200.1, 215.1), OfferResult.NO_ANSWER),
    CallRequeued("c2", "support", "ring no_answer", 215.1),
    offer("o3", "c2", "1001", "support", (215.2, 215.3), OfferResult.BUSY),
    ended("c2", "support", Outcome.ABANDONED_WAITING, 200.0, 220.0),
    # c3: a short abandon in sales (3 s).
    CallArrived("c3", "T", "139", "sales", 0, 300.0, "pbx"),
    ended("c3", "sales", Outcome.ABANDONED_WAITING, 300.0, 303.0),
    # c4: overflows from support to sales, answered there in 1 ring after 100 s.
    CallArrived("c4", "T", "139", "support", 0, 400.0, "pbx"),
    CallRequeued("c4", "sales", "overflow", 490.0),
    offer("o4", "c4", "1002", "sales", (496.0, 500.0), OfferResult.ANSWERED),
    CallAnswered("c4", "1002", "sales", "T", 400.0, 500.0, "pbx"),
    ended(
        "c4",
        "sales",
        Outcome.ANSWERED,
        400.0,
        530.0,
        answer=("1002", 500.0, 530.0),
        original="support",
    ),
    # c5: redirected out of sales after 90 s; c6 answered in sales within 4 s.
    CallArrived("c5", "T", "139", "sales", 0, 600.0, "pbx"),
    ended("c5", "sales", Outcome.OVERFLOWED, 600.0, 690.0),
    CallArrived("c6", "T", "139", "sales", 0, 700.0, "pbx"),
    offer("o6", "c6", "1001", "sales", (700.5, 704.0), OfferResult.ANSWERED),
    CallAnswered("c6", "1001", "sales", "T", 700.0, 704.0, "pbx"),
    ended("c6", "sales", Outcome.ANSWERED, 700.0, 764.0, answer=("1001", 704.0, 764.0)),
    RoutingWarning("stray_leg", "agent leg not tracked"),
]


def test_calls_offers_and_histograms_counted_by_hand() -> None:
    metrics = Metrics(settings(), CollectorRegistry(), clock=FixedClock(1000.0))
    feed(metrics, HAND_FACTS)
    s = parse(metrics.render().decode())

    assert value(s, "hotline_calls_arrived_total", queue="support") == 3
    assert value(s, "hotline_calls_arrived_total", queue="sales") == 3
    calls = {
        ("support", "answered"): 2,  # c4 counts for support, the queue it asked for
        ("support", "abandoned_waiting"): 1,
        ("sales", "abandoned_waiting"): 1,
        ("sales", "overflowed"): 1,
        ("sales", "answered"): 1,
    }
    for queue in ("support", "sales"):
        for outcome in Outcome:
            expected = calls.get((queue, outcome.value), 0)
            assert value(s, "hotline_calls_total", queue=queue, outcome=outcome.value) == expected
    assert value(s, "hotline_calls_answered_within_threshold_total", queue="support") == 0
    assert value(s, "hotline_calls_answered_within_threshold_total", queue="sales") == 1
    assert value(s, "hotline_calls_abandoned_within_threshold_total", queue="sales") == 1
    assert value(s, "hotline_calls_abandoned_within_threshold_total", queue="support") == 0
    assert value(s, "hotline_calls_short_abandoned_total", queue="sales") == 1
    assert value(s, "hotline_queue_overflows_total", queue="support") == 1  # c4 left support
    assert value(s, "hotline_queue_overflows_total", queue="sales") == 1  # c5 left the hotline

    assert value(s, "hotline_offers_total", queue="support", outcome="answered") == 2
    assert value(s, "hotline_offers_total", queue="support", outcome="no_answer") == 1
    assert value(s, "hotline_offers_total", queue="support", outcome="busy") == 1
    assert value(s, "hotline_offers_total", queue="sales", outcome="answered") == 1
    assert value(s, "hotline_offers_answered_within_sla_total", queue="support") == 2
    assert value(s, "hotline_agent_offers_total", agent="1001", outcome="answered") == 2
    assert value(s, "hotline_agent_offers_total", agent="1001", outcome="busy") == 1
    assert value(s, "hotline_agent_offers_total", agent="1002", outcome="no_answer") == 1
    assert value(s, "hotline_agent_offers_answered_within_sla_total", agent="1001") == 2
    assert value(s, "hotline_agent_offers_answered_within_sla_total", agent="1002") == 1

    # Ring to answer: 15.0 s falls in the le=15 bucket (<=), 4.0 s and 3.5 s in le=5.
    ring = {"queue": "support"}
    assert value(s, "hotline_ring_to_answer_seconds_bucket", le="10.0", **ring) == 1
    assert value(s, "hotline_ring_to_answer_seconds_bucket", le="15.0", **ring) == 2
    assert value(s, "hotline_ring_to_answer_seconds_count", **ring) == 2
    assert value(s, "hotline_ring_to_answer_seconds_sum", **ring) == pytest.approx(19.0)
    sales = {"queue": "sales", "outcome": "answered"}
    assert value(s, "hotline_wait_seconds_bucket", le="5.0", **sales) == 1
    assert value(s, "hotline_wait_seconds_sum", **sales) == pytest.approx(4.0)
    support = {"queue": "support", "outcome": "answered"}
    assert value(s, "hotline_wait_seconds_bucket", le="15.0", **support) == 0  # 15.2 s
    assert value(s, "hotline_wait_seconds_bucket", le="20.0", **support) == 1
    assert value(s, "hotline_wait_seconds_bucket", le="120.0", **support) == 2  # c4: 100 s
    assert value(s, "hotline_wait_seconds_count", **support) == 2
    assert value(s, "hotline_wait_seconds_sum", **support) == pytest.approx(115.2)

    # Talk: answer to end of talk, PBX time; by agent and by the queue asked for.
    assert value(s, "hotline_agent_talk_seconds_total", agent="1001") == pytest.approx(119.8)
    assert value(s, "hotline_agent_talk_seconds_total", agent="1002") == pytest.approx(30.0)
    assert value(s, "hotline_queue_talk_seconds_total", queue="support") == pytest.approx(89.8)
    assert value(s, "hotline_queue_talk_seconds_total", queue="sales") == pytest.approx(60.0)
    assert value(s, "hotline_routing_warnings_total", reason="stray_leg") == 1

    # The service level from the counters is the domain's, on the same calls.
    tally = sum(
        (
            tally_call(f.outcome, f.wait_seconds, 15.0, 5.0)
            for f in HAND_FACTS
            if isinstance(f, CallEnded) and f.original_queue == "sales"
        ),
        CallTally(),
    )
    within = value(s, "hotline_calls_answered_within_threshold_total", queue="sales")
    total = sum(value(s, "hotline_calls_total", queue="sales", outcome=o.value) for o in Outcome)
    short = value(s, "hotline_calls_short_abandoned_total", queue="sales")
    assert within / (total - short) == service_level(tally) == 0.5


def state_change(
    agent: str, state: AgentState, previous: AgentState, at: float, reason: str | None = None
) -> AgentStateChanged:
    return AgentStateChanged(agent, state, previous, reason, at)


def test_agent_time_comes_from_state_changes_and_grows_live() -> None:
    clock = FixedClock(1500.0)
    metrics = Metrics(settings(), CollectorRegistry(), clock=clock)
    out, available, ringing, on_call, wrap_up, paused = (
        AgentState.LOGGED_OUT,
        AgentState.AVAILABLE,
        AgentState.RINGING,
        AgentState.ON_CALL,
        AgentState.WRAP_UP,
        AgentState.PAUSED,
    )
    feed(
        metrics,
        [
            state_change("1001", available, out, 1000.0),
            CallArrived("c1", "T", "139", "sales", 0, 1009.0, "pbx"),
            state_change("1001", ringing, available, 1010.0),
            CallAnswered("c1", "1001", "sales", "T", 1009.0, 1012.0, "pbx"),
            state_change("1001", on_call, ringing, 1012.0),
            state_change("1001", wrap_up, on_call, 1072.0),
            state_change("1001", available, wrap_up, 1082.0),
            state_change("1001", paused, available, 1100.0, "lunch"),
            state_change("1001", available, paused, 1400.0),
        ],
    )
    s = parse(metrics.render().decode())
    # 1000-1500 logged in, of which 1100-1400 paused for lunch and 1072-1082 in wrap-up;
    # the interval still open (available since 1400) is counted up to the scrape.
    assert value(s, "hotline_agent_logged_in_seconds_total", agent="1001") == 500.0
    assert value(s, "hotline_agent_paused_seconds_total", agent="1001", reason="lunch") == 300.0
    assert value(s, "hotline_agent_wrap_up_seconds_total", agent="1001") == 10.0
    assert value(s, "hotline_queue_wrap_up_seconds_total", queue="sales") == 10.0
    assert value(s, "hotline_queue_wrap_up_seconds_total", queue="support") == 0.0
    for queue in ("support", "sales"):  # 1001 serves both; staffed = logged in, not paused
        assert value(s, "hotline_queue_staffed_seconds_total", queue=queue) == 200.0
    assert value(s, "hotline_agent_logged_in_seconds_total", agent="1002") == 0.0

    clock.at = 1600.0
    later = parse(metrics.render().decode())
    assert value(later, "hotline_agent_logged_in_seconds_total", agent="1001") == 600.0
    metrics.sink(state_change("1001", out, available, 1650.0))
    clock.at = 2000.0
    closed = parse(metrics.render().decode())
    assert value(closed, "hotline_agent_logged_in_seconds_total", agent="1001") == 650.0
    assert value(closed, "hotline_queue_staffed_seconds_total", queue="sales") == 350.0


def test_pause_reasons_beyond_the_limit_share_one_label() -> None:
    metrics = Metrics(settings(), CollectorRegistry(), clock=FixedClock(0.0))
    at = 0.0
    metrics.sink(state_change("1001", AgentState.AVAILABLE, AgentState.LOGGED_OUT, at))
    for n in range(MAX_PAUSE_REASONS + 5):
        metrics.sink(state_change("1001", AgentState.PAUSED, AgentState.AVAILABLE, at + 1, f"r{n}"))
        metrics.sink(state_change("1001", AgentState.AVAILABLE, AgentState.PAUSED, at + 2))
        at += 2
    reasons = {
        dict(labels)["reason"]: sample
        for (name, labels), sample in parse(metrics.render().decode()).items()
        if name == "hotline_agent_paused_seconds_total"
    }
    assert len(reasons) == MAX_PAUSE_REASONS + 1
    assert reasons["other"] == 5.0
    assert reasons["r0"] == 1.0


def test_render_is_what_generate_latest_writes() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(settings(), registry, clock=FixedClock(2000.0))
    feed(metrics, HAND_FACTS)
    metrics.sink(state_change("1001", AgentState.AVAILABLE, AgentState.LOGGED_OUT, 1000.0))
    metrics.sink(
        state_change("1001", AgentState.PAUSED, AgentState.AVAILABLE, 1500.0, 'a "quoted"\\ one')
    )
    metrics.set_overdue({"complaint": 3, "repair": 0})
    ours = metrics.render().decode()
    reference = generate_latest(registry).decode()
    assert parse(ours) == parse(reference)
    families = {(f.name, f.type) for f in text_string_to_metric_families(ours)}
    assert families == {(f.name, f.type) for f in text_string_to_metric_families(reference)}
    assert ("hotline_wait_seconds", "histogram") in families
    assert ("hotline_tickets_overdue", "gauge") in families
    paused = {"agent": "1001", "reason": 'a "quoted"\\ one'}
    assert value(parse(ours), "hotline_agent_paused_seconds_total", **paused) == 500.0


def test_the_registry_is_injected_and_names_are_checked() -> None:
    before = set(REGISTRY._names_to_collectors)
    registry = CollectorRegistry()
    Metrics(settings(), registry, clock=FixedClock(0.0))
    assert set(REGISTRY._names_to_collectors) == before  # never the global registry
    assert "hotline_calls_total" in registry._names_to_collectors
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(settings(), registry, clock=FixedClock(0.0))
    Metrics(settings(), CollectorRegistry(), clock=FixedClock(0.0))  # a second registry is fine


def test_buckets_are_ring_multiples_plus_the_thresholds() -> None:
    assert ring_buckets(5.0) == (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    assert wait_buckets(6.0, 18.0, 5.0) == (5.0, 6.0, 12.0, 18.0, 24.0, 36.0, 72.0, 144.0, 360.0)


async def test_live_gauges_read_the_router_and_engine_at_scrape_time() -> None:
    config = settings()
    clock = FixedClock(5000.0)
    registry = CollectorRegistry()
    metrics = Metrics(config, registry, clock=clock)
    router = Router(config.routing, dict(config.queues), config.agents.values(), lambda _n, _t: "T")
    engine = Engine(router, AmiClient(config.ami), clock, sinks=[metrics.sink])
    assert not any(
        name.startswith("hotline_queue_waiting") for name, _ in parse(metrics.render().decode())
    ), "no live gauges before watch()"
    backlog = [42]
    metrics.watch(engine, outbox_backlog=lambda: backlog[0])

    def apply(effects: list[Effect]) -> None:
        """What the engine does with the router's effects that the metrics can see: the facts
        go to its sinks (the commands would go to the PBX, which is not connected here)."""
        for effect in effects:
            if not isinstance(effect, Command):
                for sink in engine.sinks:
                    sink(effect)

    for call_id, queue, at in (("c1", "sales", 4900.0), ("c2", "sales", 4990.0)):
        waiting = CallerWaiting(
            at, "pbx", call_id, f"PJSIP/t-{call_id}", call_id, "139", "", queue, 0
        )
        apply(router.handle(waiting, clock.now()))
    apply(router.login("1001", clock.now()))  # rings c1 at once
    apply(router.login("1002", clock.now()))  # rings c2
    apply(router.pause("1002", "training", clock.now()))
    for seconds in [0.001] * 98 + [0.004, 0.009]:
        for observe in engine.decision_observers:
            observe("CallerWaiting", seconds)
    s = parse(metrics.render().decode())
    assert value(s, "hotline_queue_waiting_calls", queue="sales") == 2  # both ringing
    assert value(s, "hotline_queue_longest_wait_seconds", queue="sales") == 100.0
    assert value(s, "hotline_queue_waiting_calls", queue="support") == 0
    assert value(s, "hotline_queue_longest_wait_seconds", queue="support") == 0
    assert value(s, "hotline_queue_available_agents", queue="sales") == 0
    assert value(s, "hotline_queue_logged_in_agents", queue="sales") == 2
    assert value(s, "hotline_queue_staffed_agents", queue="sales") == 1  # 1002 is paused
    assert value(s, "hotline_queue_staffed_agents", queue="support") == 1
    assert value(s, "hotline_agents", state="ringing") == 2
    assert value(s, "hotline_agents", state="logged_out") == 0
    assert value(s, "hotline_agent_state", agent="1001", state="ringing") == 1
    assert value(s, "hotline_agent_state", agent="1001", state="available") == 0
    assert value(s, "hotline_ami_up") == 0
    assert value(s, "hotline_outbox_backlog") == 42
    assert value(s, "hotline_routing_decision_seconds_bucket", le="0.001") == 98
    assert value(s, "hotline_routing_decision_seconds_bucket", le="0.005") == 99
    assert value(s, "hotline_routing_decision_seconds_bucket", le="0.01") == 100
    assert value(s, "hotline_routing_decision_seconds_count") == 100
    assert value(s, "hotline_routing_decision_seconds_sum") == pytest.approx(0.111)
    assert value(s, "hotline_service_level_threshold_seconds") == 15.0
    assert value(s, "hotline_service_level_target_ratio") == 0.8
    assert s == parse(generate_latest(registry).decode())  # the live gauges render alike
    clock.at = 5010.0
    backlog[0] = 0
    s = parse(metrics.render().decode())
    assert value(s, "hotline_queue_longest_wait_seconds", queue="sales") == 110.0
    assert value(s, "hotline_outbox_backlog") == 0


# -- end to end: the service's /metrics against the sim's ground truth --------------------------

RING_TIMEOUT = MEASURED_RING_TIMEOUT
WRAP_UP = MEASURED_WRAP_UP
MAX_WAIT = MEASURED_MAX_WAIT
QUEUES = MEASURED_QUEUES


def call_centre() -> Scenario:
    """The shared figure-checking run."""
    return measured_call_centre("metrics-ground-truth", repeat_share=0.1)


async def settle(stack: Stack) -> None:
    """The sim has finished every call and the engine has applied every event."""
    await wait_settled(stack)


async def scrape(stack: Stack) -> Samples:
    async with stack.session.get(f"{stack.base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        return parse(await response.text())


def agent_id(device: str) -> str:
    return device.split("/", 1)[1].split("@", 1)[0]


def agent_times(facts: list[Fact], stack: Stack) -> dict[str, dict[str, float]]:
    """Logged-in, wrap-up, paused and staffed seconds, recomputed from the state changes."""
    times: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    since: dict[str, tuple[AgentState, float, str | None]] = {}
    for fact in facts:
        if not isinstance(fact, AgentStateChanged):
            continue
        if fact.agent_id in since:
            state, start, reason = since[fact.agent_id]
            spent = fact.at - start
            if state is not AgentState.LOGGED_OUT:
                times[fact.agent_id]["logged_in"] += spent
            if state is AgentState.WRAP_UP:
                times[fact.agent_id]["wrap_up"] += spent
            if state is AgentState.PAUSED:
                times[fact.agent_id][f"paused:{reason or 'paused'}"] += spent
            elif state is not AgentState.LOGGED_OUT:
                for queue in stack.settings.agents[fact.agent_id].queues:
                    times[queue]["staffed"] += spent
        since[fact.agent_id] = (fact.state, fact.at, fact.reason)
    return times


async def test_metrics_match_the_ground_truth_of_a_simulated_call_centre() -> None:
    stack = await start_stack(call_centre(), queues=QUEUES, agents=measured_agents())
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await stack.sleep(80.0)
        await stack.agent("pause", "2001", "lunch")
        await stack.sleep(80.0)
        await stack.agent("unpause", "2001")
        await settle(stack)
        for agent in stack.settings.agents:
            await stack.agent("logout", agent)  # closes every agent's time interval
        metrics = await scrape(stack)
    finally:
        await stack.close()

    assert stack.sim.errors == []
    truth = [r for r in stack.sim.ground_truth if r["type"] == "call"]
    assert len(truth) == 300
    queue_of = {r["call_id"]: r["queue"] for r in truth}
    orphans = [r for r in stack.sim.ground_truth if r["type"] == "ring"]
    assert all(r["call_id"] in queue_of for r in orphans)
    facts = {f.offer_id: f for f in stack.facts if isinstance(f, OfferEnded)}
    ended = {f.call_id: f for f in stack.facts if isinstance(f, CallEnded)}
    sla_seconds = stack.settings.routing.sla_rings * stack.settings.routing.ring_cadence

    # Labels come from the bounded sets only; nothing is labelled per call.
    call_ids = set(queue_of)
    for _, series in metrics:
        assert {name for name, _ in series} <= BOUNDED_LABELS
        assert not {v for _, v in series} & call_ids

    # The service's outcome of every call is the ground truth's (else the routing is wrong,
    # and every figure below with it).
    disagree = [
        (r["call_id"], r["outcome"], r["abandoned_while"], ended[r["call_id"]].outcome.value)
        for r in truth
        if ended[r["call_id"]].outcome is not OUTCOMES[(r["outcome"], r["abandoned_while"])]
    ]
    assert disagree == [], disagree

    check_call_metrics(metrics, truth, ended, stack.settings)
    rings = [(r["queue"], ring) for r in truth for ring in r["rings"]]
    rings += [(queue_of[r["call_id"]], r) for r in orphans]
    offers = ring_figures(rings, facts, sla_seconds)
    check_offer_metrics(metrics, offers, len(facts))
    check_agent_metrics(metrics, stack, offers, talk_figures(truth, ended))
    check_end_state(metrics, stack)


@dataclass
class CallFigures:
    """Per queue (and outcome) from the ground truth: calls, waits, within thresholds."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    waits: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    within: Counter[str] = field(default_factory=Counter)
    abandoned_within: Counter[str] = field(default_factory=Counter)
    short_abandoned: Counter[str] = field(default_factory=Counter)


def call_figures(
    truth: list[dict[str, Any]], ended: dict[str, CallEnded], threshold: float, short: float
) -> CallFigures:
    """Calls: one outcome each, by the queue asked for; wait thresholds with the same <= rule."""
    figures = CallFigures()
    for record in truth:
        outcome = OUTCOMES[(record["outcome"], record["abandoned_while"])]
        queue = record["queue"]
        figures.calls[(queue, outcome.value)] += 1
        if outcome is Outcome.OVERFLOWED:
            # Redirected on the service's own max_wait timer: the service's decision time
            # (not a PBX Timestamp) ends this wait, so the sum compares with the fact's.
            wait = ended[record["call_id"]].wait_seconds
        else:
            wait = (record["answered_at"] or record["ended_at"]) - record["arrived_at"]
        figures.waits[(queue, outcome.value)].append(wait)
        figures.within[queue] += outcome is Outcome.ANSWERED and wait <= threshold
        abandoned = outcome.value.startswith("abandoned")
        figures.abandoned_within[queue] += abandoned and wait <= threshold
        figures.short_abandoned[queue] += abandoned and wait <= short
    return figures


def check_call_metrics(
    metrics: Samples, truth: list[dict[str, Any]], ended: dict[str, CallEnded], settings: Settings
) -> None:
    """The call metrics of both queues against the ground truth."""
    threshold = settings.sla.service_level_threshold
    short = settings.sla.short_abandon_threshold
    figures = call_figures(truth, ended, threshold, short)
    calls = figures.calls
    assert {outcome for _, outcome in calls} == {o.value for o in Outcome}, "every outcome occurs"
    bounds = wait_buckets(5.0, threshold, short)
    for queue in ("support", "sales"):
        arrived = value(metrics, "hotline_calls_arrived_total", queue=queue)
        assert arrived == sum(n for (q, _), n in calls.items() if q == queue)
        for outcome in Outcome:
            check_wait_metrics(
                metrics, queue, outcome, figures.waits[(queue, outcome.value)], bounds
            )
        assert (
            value(metrics, "hotline_calls_answered_within_threshold_total", queue=queue)
            == (figures.within[queue])
        )
        assert (
            value(metrics, "hotline_calls_abandoned_within_threshold_total", queue=queue)
            == (figures.abandoned_within[queue])
        )
        assert (
            value(metrics, "hotline_calls_short_abandoned_total", queue=queue)
            == (figures.short_abandoned[queue])
        )
    assert (
        value(metrics, "hotline_queue_overflows_total", queue="support")
        == calls[("support", "overflowed")]
    )


def check_wait_metrics(
    metrics: Samples, queue: str, outcome: Outcome, expected: list[float], bounds: Iterable[float]
) -> None:
    """Calls, and the wait histogram (count, sum, buckets), of one queue and outcome."""
    labels = {"queue": queue, "outcome": outcome.value}
    assert value(metrics, "hotline_calls_total", **labels) == len(expected)
    assert value(metrics, "hotline_wait_seconds_count", **labels) == len(expected)
    assert value(metrics, "hotline_wait_seconds_sum", **labels) == pytest.approx(
        sum(expected), abs=0.01 * max(len(expected), 1)
    )
    for bound in bounds:
        le = {"le": repr(bound), **labels}
        assert value(metrics, "hotline_wait_seconds_bucket", **le) == sum(
            w <= bound for w in expected
        ), (le, sorted(expected))


@dataclass
class RingFigures:
    """Offers by queue and by agent, answered rings' seconds, within the SLA's rings."""

    offers: Counter[tuple[str, str]] = field(default_factory=Counter)
    agent_offers: Counter[tuple[str, str]] = field(default_factory=Counter)
    ring_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    within_rings: Counter[str] = field(default_factory=Counter)
    agent_within: Counter[str] = field(default_factory=Counter)


def ring_figures(
    rings: list[tuple[str, dict[str, Any]]], facts: dict[str, OfferEnded], sla_seconds: float
) -> RingFigures:
    """Offers: every ring of every call, plus the legs made after their caller had gone."""
    figures = RingFigures()
    for queue, ring in rings:
        agent = agent_id(ring["agent"])
        figures.offers[(queue, ring["outcome"])] += 1
        figures.agent_offers[(agent, ring["outcome"])] += 1
        if ring["outcome"] != "answered":
            continue
        if ring["ring_start"] is None:
            # The leg never rang (answered at once): the service starts the ring when it
            # wrote the Originate, a time the PBX never saw; compare with the fact's.
            start = facts[ring["action_id"]].ring_started_at
        else:
            start = ring["ring_start"]
        seconds = ring["ring_end"] - start
        figures.ring_seconds[queue].append(seconds)
        figures.within_rings[queue] += seconds <= sla_seconds
        figures.agent_within[agent] += seconds <= sla_seconds
    return figures


def check_offer_metrics(metrics: Samples, figures: RingFigures, offer_facts: int) -> None:
    """The offer and ring-to-answer metrics of both queues against the ground truth."""
    offers = figures.offers
    assert sum(offers.values()) == offer_facts
    assert {outcome for _, outcome in offers} >= {"answered", "no_answer", "busy", "cancelled"}
    for queue in ("support", "sales"):
        for result in OfferResult:
            assert (
                value(metrics, "hotline_offers_total", queue=queue, outcome=result.value)
                == (offers[(queue, result.value)])
            ), (queue, result)
        expected = figures.ring_seconds[queue]
        assert value(metrics, "hotline_ring_to_answer_seconds_count", queue=queue) == len(expected)
        assert value(metrics, "hotline_ring_to_answer_seconds_sum", queue=queue) == pytest.approx(
            sum(expected), abs=0.01 * len(expected)
        )
        for bound in ring_buckets(5.0):
            assert value(
                metrics, "hotline_ring_to_answer_seconds_bucket", queue=queue, le=repr(bound)
            ) == sum(s <= bound for s in expected)
        assert (
            value(metrics, "hotline_offers_answered_within_sla_total", queue=queue)
            == (figures.within_rings[queue])
        )
    within_rings, ring_seconds = figures.within_rings, figures.ring_seconds
    assert 0 < within_rings["sales"] < len(ring_seconds["sales"]), "both sides of 3 rings"


def talk_figures(
    truth: list[dict[str, Any]], ended: dict[str, CallEnded]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per agent: talk seconds by the facts' PBX times, and by the ground truth.

    Talk runs from the answer to the end of the talk: the agent leg's Hangup when the agent
    hangs up first. The ground truth has no such time (its ended_at is the caller's Hangup,
    which the sim sends a few scenario milliseconds later), so talk is checked exactly
    against the facts' PBX times, and against the ground truth as "at most, and nearly, its
    length".
    """
    talk: dict[str, float] = defaultdict(float)
    truth_talk: dict[str, float] = defaultdict(float)
    for record in truth:
        if record["outcome"] == "answered":
            fact = ended[record["call_id"]]
            assert fact.answered_at == record["answered_at"]
            assert fact.answered_at is not None
            assert fact.talk_ended_at is not None
            assert fact.talk_ended_at <= record["ended_at"] == fact.ended_at
            agent = agent_id(record["answered_by"])
            talk[agent] += fact.talk_ended_at - fact.answered_at
            truth_talk[agent] += record["ended_at"] - record["answered_at"]
    return talk, truth_talk


def check_agent_metrics(
    metrics: Samples,
    stack: Stack,
    figures: RingFigures,
    talks: tuple[dict[str, float], dict[str, float]],
) -> None:
    """Agents: offers by result, answered within three rings, talk, wrap-up, pause and
    logged-in time; the queues' staffed time."""
    talk, truth_talk = talks
    times = agent_times(stack.facts, stack)
    for agent in stack.settings.agents:
        for result in OfferResult:
            assert (
                value(metrics, "hotline_agent_offers_total", agent=agent, outcome=result.value)
                == (figures.agent_offers[(agent, result.value)])
            )
        assert (
            value(metrics, "hotline_agent_offers_answered_within_sla_total", agent=agent)
            == (figures.agent_within[agent])
        )
        answered = figures.agent_offers[(agent, "answered")]
        talked = value(metrics, "hotline_agent_talk_seconds_total", agent=agent)
        assert talked == pytest.approx(talk[agent], abs=1e-6)
        assert truth_talk[agent] - 0.1 * answered <= talked <= truth_talk[agent] + 1e-6
        # Wrap-up, pause and logged-in time run on the engine's clock (its state changes).
        assert value(metrics, "hotline_agent_logged_in_seconds_total", agent=agent) == (
            pytest.approx(times[agent]["logged_in"], abs=1e-6)
        )
        assert value(metrics, "hotline_agent_wrap_up_seconds_total", agent=agent) == (
            pytest.approx(times[agent]["wrap_up"], abs=1e-6)
        )
    assert value(metrics, "hotline_agent_paused_seconds_total", agent="2001", reason="lunch") == (
        pytest.approx(times["2001"]["paused:lunch"], abs=1e-6)
    )
    assert times["2001"]["paused:lunch"] > 0
    assert (
        value(metrics, "hotline_agent_paused_seconds_total", agent="2009", reason="no answer") > 0
    )
    for queue in ("support", "sales"):
        assert value(metrics, "hotline_queue_staffed_seconds_total", queue=queue) == (
            pytest.approx(times[queue]["staffed"], abs=1e-6)
        )


def check_end_state(metrics: Samples, stack: Stack) -> None:
    """After the run: nobody waits, everyone is logged out, the AMI is up."""
    assert value(metrics, "hotline_queue_waiting_calls", queue="support") == 0
    assert value(metrics, "hotline_agents", state="logged_out") == len(stack.settings.agents)
    assert value(metrics, "hotline_ami_up") == 1
    assert value(metrics, "hotline_ami_events_total") == stack.engine.events_processed > 0
