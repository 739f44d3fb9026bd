"""Shared pieces of the end-to-end tests: a simulated call centre and ground-truth helpers."""

from __future__ import annotations

import asyncio
from typing import Any

from hotline.domain.model import Outcome
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    Burst,
    Exponential,
    LogNormal,
    Normal,
    Scenario,
    Uniform,
)
from hotline.stack import Stack

WRAP_UP = 5.0
RING_TIMEOUT = 15.0
TIME_SCALE = 60.0


def devices(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"Local/{ext}@agents" for ext in range(first, last + 1))


def call_centre(
    calls: int, seed: int, rate_per_minute: float, repeat_share: float = 0.1
) -> Scenario:
    return Scenario(
        name=f"e2e-{calls}",
        seed=seed,
        noise=True,
        time_scale=TIME_SCALE,
        arrivals=Arrivals(
            count=calls,
            rate_per_minute=rate_per_minute,
            start_after=1.0,
            queues=(("support", 3.0), ("sales", 1.0)),
            priorities=((0, 8.0), (5, 2.0)),
            repeat_share=repeat_share,
            patience=LogNormal(mean=60.0, sigma=0.6),
        ),
        agents=(
            AgentGroup(
                devices(2001, 2014),
                AgentBehaviour(
                    answer_delay=LogNormal(mean=3.0, sigma=0.4),
                    no_answer=0.03,
                    busy=0.02,
                    talk=Normal(mean=50.0, sd=15.0),
                ),
            ),
            AgentGroup(devices(2015, 2017), AgentBehaviour(no_answer=1.0)),
            AgentGroup(
                devices(2018, 2020),
                AgentBehaviour(
                    answer_delay=Uniform(low=9.0, high=18.0), talk=Exponential(mean=40.0)
                ),
            ),
        ),
    )


QUEUES = [
    {
        "name": "support",
        "ring_timeout": RING_TIMEOUT,
        "wrap_up": WRAP_UP,
        "max_wait": 150,
        "overflow_target": "hotline-voicemail,s,1",
    },
    {"name": "sales", "ring_timeout": RING_TIMEOUT, "wrap_up": WRAP_UP, "strategy": "fewest_calls"},
]


async def wait_settled(stack: Stack, timeout: float = 120.0) -> None:
    """The sim has finished every call, and the engine has applied every event."""
    await stack.sim.wait_idle(timeout)
    async with asyncio.timeout(30):
        # Polling is fine here: the test waits on two other tasks' state.
        while stack.engine.router.live_calls() or len(stack.engine._subscription):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def ground_truth_calls(stack: Stack) -> dict[str, dict[str, Any]]:
    return {r["call_id"]: r for r in stack.sim.ground_truth if r["type"] == "call"}


OUTCOMES = {
    ("answered", None): Outcome.ANSWERED,
    ("abandoned", "waiting"): Outcome.ABANDONED_WAITING,
    ("abandoned", "ringing"): Outcome.ABANDONED_RINGING,
    ("redirected", None): Outcome.OVERFLOWED,
}


MEASURED_RING_TIMEOUT = 15.0
MEASURED_WRAP_UP = 3.0
MEASURED_MAX_WAIT = 40.0
MEASURED_QUEUES = [
    {
        "name": "support",
        "ring_timeout": MEASURED_RING_TIMEOUT,
        "wrap_up": MEASURED_WRAP_UP,
        "max_wait": MEASURED_MAX_WAIT,
        "overflow_target": "hotline-voicemail,s,1",
    },
    # Rings longer than three rings: answers after 15 s are possible here.
    {"name": "sales", "ring_timeout": 25.0, "wrap_up": MEASURED_WRAP_UP},
]
"""The queues of the figure-checking runs (metrics, reports)."""


def measured_call_centre(name: str, repeat_share: float) -> Scenario:
    """300 calls over about 11 minutes into two queues (with a burst of 45), three kinds of
    agent: a run that produces every outcome (some twenty overflows) and rings both under
    and over three rings."""
    devices = [f"Local/{ext}@agents" for ext in range(2001, 2014)]
    return Scenario(
        name=name,
        seed=23,
        noise=True,
        time_scale=80.0,
        arrivals=Arrivals(
            count=255,
            rate_per_minute=25,
            start_after=1.0,
            queues=(("support", 3.0), ("sales", 1.0)),
            repeat_share=repeat_share,
            patience=LogNormal(mean=50.0, sigma=0.9),
            bursts=(Burst(at=240.0, count=45, over=20.0),),
        ),
        agents=(
            # Answer after one to four rings, now and then no answer or busy.
            AgentGroup(
                tuple(devices[:8]),
                AgentBehaviour(
                    answer_delay=LogNormal(mean=7.0, sigma=0.5),
                    no_answer=0.05,
                    busy=0.04,
                    talk=Normal(mean=40.0, sd=12.0),
                ),
            ),
            AgentGroup(tuple(devices[8:10]), AgentBehaviour(no_answer=1.0)),
            # Slow: some answers come after the ring timeout (ring-no-answer).
            AgentGroup(
                tuple(devices[10:]),
                AgentBehaviour(answer_delay=Uniform(low=8.0, high=18.0), talk=Exponential(30.0)),
            ),
        ),
    )
