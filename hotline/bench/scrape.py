"""``hotline bench metrics``: how long a ``/metrics`` scrape takes with 500 agents x 50 queues.

The state is realistic: every agent serves five queues, 50,000 calls' worth of
facts have been counted (answers, misses, abandons, overflows, pauses with
several reasons), and the router holds 1,000 callers (half ringing an agent,
half waiting). One line is printed per renderer, timed over the same state:

* ``render``: :meth:`hotline.prometheus.Metrics.render`, the body ``/metrics``
  serves (goal: 20 ms);
* ``generate_latest``: ``prometheus_client.generate_latest(registry)`` on the
  same registry, the reference.

A third line times :meth:`~hotline.prometheus.Metrics.sink`, per fact.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hotline.ami.client import AmiClient
from hotline.bench.common import emit
from hotline.clock import ScaledClock
from hotline.config import Settings, parse_settings
from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRequeued,
    Fact,
    OfferEnded,
)
from hotline.domain.events import CallerWaiting
from hotline.domain.model import AgentState, OfferResult, Outcome
from hotline.domain.routing import Router
from hotline.engine import Engine
from hotline.prometheus import Metrics

__all__ = ["run"]

AGENTS = 500
QUEUES = 50
QUEUES_PER_AGENT = 5
CALLS = 50_000
LIVE_CALLERS = 1000
GOAL_MS = 20.0
_PAUSE_REASONS = ("lunch", "training", "meeting", "no answer")


def _settings() -> Settings:
    queues = [{"name": f"q{q:02d}"} for q in range(QUEUES)]
    agents = [
        {
            "id": f"a{n:03d}",
            "device": f"PJSIP/{1000 + n}",
            "queues": [f"q{(n + k * 10) % QUEUES:02d}" for k in range(QUEUES_PER_AGENT)],
        }
        for n in range(AGENTS)
    ]
    data = {"routing": {"default_queue": "q00"}, "queues": queues, "agents": agents}
    return parse_settings(data, source="<bench>", env={})


def _history(settings: Settings, start: float, rng: random.Random) -> list[Fact]:
    """The facts of ``CALLS`` calls and of the agents' shifts, in time order."""
    facts: list[Fact] = []
    agents = list(settings.agents)
    at = start
    for agent in agents:
        facts.append(
            AgentStateChanged(agent, AgentState.AVAILABLE, AgentState.LOGGED_OUT, None, at)
        )
    for n in range(CALLS):
        at += 0.5
        call_id, queue = f"c{n}", f"q{n % QUEUES:02d}"
        agent = agents[n % AGENTS]
        facts.append(CallArrived(call_id, "T", "139", queue, 0, at, "pbx"))
        ring = rng.uniform(1.0, 20.0)
        result = rng.choices(list(OfferResult), weights=(80, 8, 4, 2, 6))[0]
        offer = f"o{n}"
        facts.append(
            OfferEnded(offer, call_id, agent, queue, "T", at, at, "pbx", at + ring, "pbx", result)
        )
        if rng.random() < 0.02:
            facts.append(CallRequeued(call_id, f"q{(n + 1) % QUEUES:02d}", "overflow", at + 60))
        outcome = Outcome.ANSWERED if result is OfferResult.ANSWERED else rng.choice(list(Outcome))
        answered = at + ring if outcome is Outcome.ANSWERED else None
        if answered is not None:
            facts.append(CallAnswered(call_id, agent, queue, "T", at, answered, "pbx"))
            for state, previous, offset in (
                (AgentState.ON_CALL, AgentState.AVAILABLE, 0.0),
                (AgentState.WRAP_UP, AgentState.ON_CALL, 120.0),
                (AgentState.AVAILABLE, AgentState.WRAP_UP, 130.0),
            ):
                facts.append(AgentStateChanged(agent, state, previous, None, answered + offset))
        if rng.random() < 0.01:
            reason = rng.choice(_PAUSE_REASONS)
            facts.append(
                AgentStateChanged(agent, AgentState.PAUSED, AgentState.AVAILABLE, reason, at)
            )
            facts.append(
                AgentStateChanged(agent, AgentState.AVAILABLE, AgentState.PAUSED, None, at)
            )
        end = (answered or at + ring) + 120.0
        facts.append(
            CallEnded(
                call_id, f"PJSIP/t-{n}", call_id, "T", "139", queue, queue, 0, at, "pbx",
                answered, agent if answered else None, end if answered else None, end, "pbx",
                outcome, 1,
            )
        )  # fmt: skip
    return facts


def _live_state(settings: Settings, metrics: Metrics, now: float) -> Engine:
    """A router with every agent logged in and ``LIVE_CALLERS`` callers, watched by ``metrics``."""
    router = Router(settings.routing, dict(settings.queues), settings.agents.values(), _ticket)
    engine = Engine(router, AmiClient(settings.ami), ScaledClock(1.0, epoch=now))
    for agent in settings.agents:
        router.login(agent, now)
    for n in range(LIVE_CALLERS):
        queue = f"q{n % QUEUES:02d}"
        waiting = CallerWaiting(
            now - n, "pbx", f"l{n}", f"PJSIP/t-{n}", f"l{n}", "139", "", queue, 0
        )
        router.handle(waiting, now)
    engine.decision_latency["CallerWaiting"] = deque(random.random() * 1e-3 for _ in range(5000))
    metrics.watch(engine, outbox_backlog=lambda: 17)
    return engine


def _ticket(_number: str, _now: float) -> str:
    return "T"


def _time(render: Any, renders: int) -> list[float]:
    samples = []
    for _ in range(renders):
        started = time.perf_counter_ns()
        render()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(renders: int = 200, reference_renders: int = 30) -> None:
    """Build the state, time both renderers and the sink, print one JSON line each."""
    rng = random.Random(6)
    settings = _settings()
    now = 1_795_712_164.0
    registry = CollectorRegistry()
    metrics = Metrics(settings, registry, clock=ScaledClock(1.0, epoch=now + CALLS))
    facts = _history(settings, now, rng)
    started = time.perf_counter()
    for fact in facts:
        metrics.sink(fact)
    sink_seconds = time.perf_counter() - started
    engine = _live_state(settings, metrics, now + CALLS)
    body = metrics.render()
    samples = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
    base: dict[str, Any] = {
        "bench": "metrics",
        "agents": AGENTS,
        "queues": QUEUES,
        "queues_per_agent": QUEUES_PER_AGENT,
        "live_callers": len(engine.router.live_calls()),
        "samples": samples,
        "bytes": len(body),
    }
    for name, renderer, count in (
        ("render", metrics.render, renders),
        ("generate_latest", lambda: generate_latest(registry), reference_renders),
    ):
        timings = _time(renderer, count)
        emit(
            {
                **base,
                "renderer": name,
                "renders": count,
                "p50_ms": round(statistics.median(timings), 3),
                "p99_ms": round(_percentile(timings, 0.99), 3),
                "max_ms": round(max(timings), 3),
                "goal_ms": GOAL_MS,
            }
        )
    emit(
        {
            "bench": "metrics",
            "sink": "facts",
            "facts": len(facts),
            "facts_per_s": round(len(facts) / sink_seconds),
            "us_per_fact": round(sink_seconds / len(facts) * 1e6, 3),
        }
    )
