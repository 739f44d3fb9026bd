"""``hotline bench e2e``: the real service against the simulated PBX over loopback.

The sim runs in a child process (so the figures are the service's own); both
processes read one scaled clock anchored to the wall. The scenario is the
bundled ``load`` one (500 agents; a burst of 1,000 callers on top of a Poisson
stream, so about 1,000 calls are live at once), with ``--calls`` callers in all.
The service logs every agent in and routes until the sim has ended every call.

One JSON line: calls and outcomes; the decision latency from the
``HotlineCallWaiting`` bytes arriving to the Originate being written (p50/p99;
in this scenario those decisions all fall in the opening burst, queued behind
it), and the same per triggering event (``ChannelHungUp``: an agent freed by a
hang-up takes the next caller, the steady state);
events per wall second and per CPU second of the service's process (the whole
pipeline: socket, codec, translator, engine); the most calls live at once; and
the service's resident memory (peak, and sampled as the run progresses, to show
it stays flat over long runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import resource
import socket
import statistics
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from hotline.bench.common import emit
from hotline.clock import ScaledClock
from hotline.domain.commands import Login
from hotline.domain.effects import CallEnded, Fact
from hotline.main import create_app
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import build_settings
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario, load_scenario
from hotline.web.keys import ENGINE

__all__ = ["run"]

_SECRET = "bench-secret"  # noqa: S105 - loopback-only sim credential


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sim_child(
    conn: Connection, scenario: Scenario, port: int, scale: float, epoch: float, anchor: float
) -> None:
    async def main() -> None:
        clock = ScaledClock(scale, epoch, anchor=anchor)
        sim = SimPbx(
            scenario,
            clock=clock,
            credentials=ServerCredentials("hotline", _SECRET),
            keep_ground_truth=False,
            write_timeout=30.0,
        )
        await sim.start(host="127.0.0.1", port=port)
        conn.send("listening")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        sim.start_arrivals()
        await sim.wait_idle()
        conn.send({"events_sent": sim.events_sent, "errors": sim.errors[:5]})
        await sim.close()

    asyncio.run(main())


def _scenario(calls: int, noise: bool) -> Scenario:
    scenario = load_scenario("load")
    assert scenario.arrivals is not None
    burst = min(1000, calls // 2)
    bursts = tuple(dataclasses.replace(b, count=burst) for b in scenario.arrivals.bursts)
    arrivals = dataclasses.replace(
        scenario.arrivals, count=calls - burst, duration=None, bursts=bursts
    )
    return dataclasses.replace(scenario, arrivals=arrivals, noise=noise)


async def _run(calls: int, scale: float, noise: bool) -> dict[str, Any]:
    scenario = _scenario(calls, noise)
    port = _free_port()
    epoch, anchor = time.time(), time.time()
    clock = ScaledClock(scale, epoch, anchor=anchor)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_sim_child, args=(child, scenario, port, scale, epoch, anchor), daemon=True
    )
    process.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, parent.recv)
    settings = build_settings(scenario, port, secret=_SECRET)
    ended: list[CallEnded] = []

    def keep_outcomes(fact: Fact) -> None:
        if isinstance(fact, CallEnded):
            ended.append(fact)

    app = create_app(settings, clock=clock, sinks=[keep_outcomes])
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    engine = app[ENGINE]
    await engine.ami.wait_connected(30)
    async with asyncio.timeout(30):
        await engine.synced.wait()
    for agent_id in settings.agents:
        await engine.command(Login(agent_id))
    rss_start = _rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    events_before = engine.events_processed
    parent.send("go")
    samples: list[tuple[int, float]] = []
    peak_live = 0
    done = loop.run_in_executor(None, parent.recv)
    while not done.done():
        await asyncio.wait({done}, timeout=0.5)
        peak_live = max(peak_live, len(engine.router.live_calls()))
        samples.append((len(ended), _rss_mb()))
    summary = done.result()
    async with asyncio.timeout(60):
        while engine.router.live_calls() or len(ended) < calls:  # noqa: ASYNC110 - bench wait
            await asyncio.sleep(0.05)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    events = engine.events_processed - events_before
    latencies = sorted(engine.decision_latency.get("CallerWaiting", ()))
    p50, p99 = _p50_p99(latencies)
    by_trigger = _by_trigger(engine.decision_latency)
    await runner.cleanup()
    process.join(30)
    outcomes = _outcomes(ended)
    checkpoints = _checkpoints(samples, calls)
    return {
        "bench": "e2e",
        "calls": calls,
        "agents": len(settings.agents),
        "time_scale": scale,
        "noise": noise,
        "wall_s": round(wall, 2),
        "events": events,
        "events_per_wall_s": round(events / wall),
        "events_per_cpu_s": round(events / cpu) if cpu else None,
        "service_cpu_s": round(cpu, 2),
        "decision_p50_ms": p50,
        "decision_p99_ms": p99,
        "decisions": len(latencies),
        "decisions_by_trigger": by_trigger,
        "peak_live_calls": peak_live,
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_by_calls_done": checkpoints,
        "rss_growth_25_to_100_pct": round(
            100 * (checkpoints["100%"] - checkpoints["25%"]) / checkpoints["25%"], 1
        ),
        "outcomes": outcomes,
        "sim_events_sent": summary["events_sent"],
        "sim_errors": summary["errors"],
    }


def _p50_p99(latencies: list[float]) -> tuple[float | None, float | None]:
    """The median and 99th percentile of sorted ``latencies``, in milliseconds (3 places)."""
    if not latencies:
        return None, None
    p50 = round(1000 * statistics.median(latencies), 3)
    return p50, round(1000 * latencies[int(0.99 * len(latencies))], 3)


def _by_trigger(decision_latency: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Decisions, p50 and p99 (milliseconds) per trigger that has any."""
    return {
        trigger: {
            "decisions": len(values),
            "p50_ms": round(1000 * statistics.median(values), 3),
            "p99_ms": round(1000 * sorted(values)[int(0.99 * len(values))], 3),
        }
        for trigger, values in decision_latency.items()
        if values
    }


def _outcomes(ended: list[CallEnded]) -> dict[str, int]:
    """How many calls ended with each outcome."""
    outcomes: dict[str, int] = {}
    for fact in ended:
        outcomes[fact.outcome.value] = outcomes.get(fact.outcome.value, 0) + 1
    return outcomes


def _checkpoints(samples: list[tuple[int, float]], calls: int) -> dict[str, float]:
    """The RSS (MB) when 10, 25, 50, 75 and 100 % of ``calls`` had ended."""
    return {
        f"{int(100 * fraction)}%": round(
            next((rss for n, rss in samples if n >= fraction * calls), samples[-1][1]), 1
        )
        for fraction in (0.1, 0.25, 0.5, 0.75, 1.0)
    }


def run(calls: int = 3000, time_scale: float = 20.0, noise: bool = True) -> None:
    """Run the service against the sim and print one JSON line."""
    emit(asyncio.run(_run(calls, time_scale, noise)))
