"""``hotline bench sim``: how many AMI events per second the simulated PBX emits under load.

The sim runs in this process; a naive FIFO router (:mod:`hotline.sim.driver`)
runs in a child process and connects over loopback, so calls are really
offered, answered and hung up, and every event really crosses a socket. The
scenario (``load`` by default: 500 agents, a burst of 1,000 callers on top of a
Poisson stream) runs at a high time scale so that the sim, not the scenario's
clock, is the bottleneck. One JSON line per noise setting: events emitted,
wall and CPU seconds of the sim's process, events per wall second and per CPU
second, the peak of live inbound calls, and the calls' outcomes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import sys
import time
from typing import Any

from hotline.bench.common import emit
from hotline.clock import ScaledClock
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario, load_scenario

__all__ = ["run"]


async def _one(
    scenario: Scenario, source: str, time_scale: float, timeout: float
) -> dict[str, Any]:
    sim = SimPbx(scenario, clock=ScaledClock(time_scale), write_timeout=10.0)
    await sim.start()
    router = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotline.sim.driver",
        "--port",
        str(sim.port),
        "--scenario",
        source,
    )
    try:
        async with asyncio.timeout(30):
            while not any(session.authenticated for session in sim.server.sessions):
                if router.returncode is not None:
                    raise RuntimeError(f"the router exited with status {router.returncode}")
                await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter(), time.process_time()
        sim.start_arrivals()
        await sim.wait_idle(timeout)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        if router.returncode is None:
            router.terminate()
        await router.wait()
        await sim.close()
    calls = [r for r in sim.ground_truth if r["type"] == "call"]
    outcomes = collections.Counter(r["outcome"] for r in calls)
    return {
        "bench": "sim",
        "scenario": scenario.name,
        "noise": scenario.noise,
        "time_scale": time_scale,
        "agents": len(scenario.agent_behaviours()),
        "calls": len(calls),
        "peak_live_calls": sim.peak_calls,
        "outcomes": dict(outcomes),
        "events": sim.events_sent,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(sim.events_sent / wall),
        "events_per_cpu_s": round(sim.events_sent / cpu) if cpu > 0 else None,
        "slow_disconnects": sim.server.slow_disconnects,
        "errors": len(sim.errors),
    }


def run(scenario_name: str, time_scale: float, noise_modes: list[bool], timeout: float) -> None:
    """Run the benchmark once per noise setting and print one JSON line each."""
    base = load_scenario(scenario_name)
    for noise in noise_modes:
        scenario = dataclasses.replace(base, noise=noise)
        emit(asyncio.run(_one(scenario, scenario_name, time_scale, timeout)))
