"""What many test modules share: the CLI, free ports, waiting for a condition, the
simulated call centres, and waiting for a sim + service run to settle.

Waiting is never a fixed sleep: :func:`eventually` polls a condition with a
generous limit, :func:`wait_settled` waits for the sim's own idle signal and the
engine's public backlog. On the e2e tier's virtual clock
(:func:`hotline.clock.virtual_time_loop`) scenario time passes only while the
process is idle, so :meth:`hotline.sim.harness.Stack.sleep` waits scenario seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from hotline.clock import Clock, VirtualClock
from hotline.domain.model import Outcome
from hotline.sim.harness import Stack
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    Burst,
    Exponential,
    Fixed,
    LogNormal,
    Normal,
    Scenario,
    Uniform,
)

__all__ = [
    "OUTCOMES",
    "call_centre",
    "devices",
    "eventually",
    "free_port",
    "ground_truth_calls",
    "hold",
    "measured_agents",
    "measured_call_centre",
    "run_hotline",
    "scenario_until",
    "spin_until",
    "steady_call_centre",
    "wait_settled",
]


def run_hotline(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hotline ARGS`` to completion; its output is captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,
    *,
    what: str = "the condition",
    interval: float = 0.01,
) -> None:
    """Return as soon as ``condition()`` (sync or async) holds; fail after ``timeout`` wall
    seconds. ``interval`` is the polling period, not a wait for anything."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"{what} did not hold within {timeout} s") from None


async def spin_until(condition: Callable[[], bool], timeout: float = 30.0, *, what: str) -> None:
    """Return as soon as ``condition()`` holds, checking on every turn of the event loop.

    For waits on in-process work only (the engine catching up, a reconnect to the sim):
    a loop with ready callbacks never moves the virtual clock, so no scenario time passes
    while this waits; on a real clock it is :func:`eventually` without a polling period.
    """
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # noqa: ASYNC110 - no event says it; see the docstring
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(f"{what} did not hold within {timeout} s") from None


async def scenario_until(
    clock: Clock,
    condition: Callable[[], bool],
    timeout: float = 60.0,
    *,
    what: str,
    step: float = 0.05,
    interval: float = 0.01,
) -> None:
    """Return as soon as ``condition()`` holds, checking it whenever ``step`` seconds of
    scenario time (on ``clock``) or ``interval`` wall seconds have passed, whichever comes
    first; fail after ``timeout`` wall seconds.

    For waits on the scenario (a caller arriving, an agent answering): on a virtual clock a
    wall-time poll would let the clock run on by as much as the machine computes between
    two checks, so a state that lasts seconds of scenario time could pass unseen. Here at
    most ``step`` scenario seconds pass between checks. The wall ``interval`` covers a loop
    that is never idle (a flood, a reconnect storm), where the virtual clock stands still.
    """
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                scenario_step = asyncio.ensure_future(clock.sleep(step))
                try:
                    await asyncio.wait({scenario_step}, timeout=interval)
                finally:
                    scenario_step.cancel()
    except TimeoutError:
        raise AssertionError(f"{what} did not hold within {timeout} s") from None


# -- simulated call centres -------------------------------------------------------------------

WRAP_UP = 5.0
RING_TIMEOUT = 15.0
TIME_SCALE = 60.0
"""The wall-clock speed-up of :func:`call_centre` when it runs on a scaled clock (benchmarks)."""


def devices(first: int, last: int) -> tuple[str, ...]:
    """``Local/<ext>@agents`` for every extension from ``first`` to ``last``."""
    return tuple(f"Local/{ext}@agents" for ext in range(first, last + 1))


def call_centre(
    calls: int, seed: int, rate_per_minute: float, repeat_share: float = 0.1
) -> Scenario:
    """Twenty agents of three kinds (prompt, never answering, slow) serving two queues."""
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
"""The queues of :func:`call_centre`."""


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

LONG_RING_AGENT = "Local/2014@agents"
"""The agent of :func:`measured_call_centre` who always answers after 16 to 20 seconds,
past three rings (15 s): it serves only sales, whose ring timeout is 25 s (see
:func:`measured_agents`), so the run has rings answered past three rings by construction."""


def measured_call_centre(name: str, repeat_share: float) -> Scenario:
    """300 calls over about 11 minutes into two queues (with a burst of 45), four kinds of
    agent: a run that produces every outcome (some twenty overflows) and rings both under
    and over three rings (the latter by construction: :data:`LONG_RING_AGENT`). Run it with
    ``agents=measured_agents()`` and ``queues=MEASURED_QUEUES``."""
    agents = [f"Local/{ext}@agents" for ext in range(2001, 2014)]
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
                tuple(agents[:8]),
                AgentBehaviour(
                    answer_delay=LogNormal(mean=7.0, sigma=0.5),
                    no_answer=0.05,
                    busy=0.04,
                    talk=Normal(mean=40.0, sd=12.0),
                ),
            ),
            AgentGroup(tuple(agents[8:10]), AgentBehaviour(no_answer=1.0)),
            # Slow: some answers come after the ring timeout (ring-no-answer).
            AgentGroup(
                tuple(agents[10:]),
                AgentBehaviour(answer_delay=Uniform(low=8.0, high=18.0), talk=Exponential(30.0)),
            ),
            # Always past three rings; sales only (its ring timeout is longer).
            AgentGroup(
                (LONG_RING_AGENT,),
                AgentBehaviour(answer_delay=Uniform(low=16.0, high=20.0), talk=Exponential(30.0)),
            ),
        ),
    )


def measured_agents() -> list[dict[str, Any]]:
    """The agents of :func:`measured_call_centre`: every one serves both queues, but
    :data:`LONG_RING_AGENT` only sales."""
    return [
        {
            "id": device.split("/", 1)[1].split("@", 1)[0],
            "device": device,
            "queues": ["sales"] if device == LONG_RING_AGENT else ["support", "sales"],
        }
        for device in [*devices(2001, 2013), LONG_RING_AGENT]
    ]


def steady_call_centre(
    agents: int, calls: int, *, time_scale: float = 40.0, patience: float = 60.0
) -> Scenario:
    """``calls`` callers at 30 a minute for ``agents`` alike agents (a 20 s talk); on a 40x
    clock 400 of them take 20 wall seconds. Run it with ``queues=STEADY_QUEUES``."""
    agent_devices = devices(2001, 2000 + agents)
    return Scenario(
        name="prometheus",
        seed=3,
        time_scale=time_scale,
        arrivals=Arrivals(
            count=calls,
            rate_per_minute=30,
            start_after=0.5,
            queues=(("support", 3.0), ("sales", 1.0)),
            patience=LogNormal(mean=patience, sigma=0.5),
        ),
        agents=(
            AgentGroup(
                agent_devices,
                AgentBehaviour(
                    answer_delay=LogNormal(mean=6.0, sigma=0.5),
                    no_answer=0.05,
                    busy=0.03,
                    talk=Fixed(20.0),
                ),
            ),
        ),
    )


STEADY_QUEUES = [
    {"name": "support", "wrap_up": 2.0, "max_wait": 40, "overflow_target": "hotline-voicemail,s,1"},
    {"name": "sales", "wrap_up": 2.0},
]
"""The queues of :func:`steady_call_centre`."""


# -- a sim + service run ----------------------------------------------------------------------


async def wait_settled(stack: Stack, timeout: float = 120.0) -> None:
    """The sim has finished every call, the engine has applied every event, and the PBX
    has answered every action the engine sent (a journal clean-up, say)."""
    await stack.sim.wait_idle(timeout)
    engine = stack.engine

    def caught_up() -> bool:
        return not engine.router.live_calls() and engine.pending == 0

    await spin_until(caught_up, what="the engine caught up with the sim")
    # Actions are answered in order: once this one is, so is every one written before it.
    await engine.ami.action("Ping", timeout=30)
    await spin_until(caught_up, what="the engine applied the answers")


@contextlib.contextmanager
def hold(clock: Clock) -> Iterator[None]:
    """Keep a virtual ``clock`` still inside (waiting only for PostgreSQL, say); a no-op on
    a real or scaled clock."""
    if isinstance(clock, VirtualClock):
        with clock.hold():
            yield
    else:
        yield


def ground_truth_calls(stack: Stack) -> dict[str, dict[str, Any]]:
    """The sim's ground-truth call records by call id."""
    return {r["call_id"]: r for r in stack.sim.ground_truth if r["type"] == "call"}


OUTCOMES = {
    ("answered", None): Outcome.ANSWERED,
    ("abandoned", "waiting"): Outcome.ABANDONED_WAITING,
    ("abandoned", "ringing"): Outcome.ABANDONED_RINGING,
    ("redirected", None): Outcome.OVERFLOWED,
}
"""The service's outcome for each ground-truth ``(outcome, abandoned_while)``."""


CHROMIUM: str = "/usr/bin/chromium"
"""Debian's chromium: the browser tests never download one."""

FLAGS: list[str] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium's flags for the browser tests: headless, no sandbox (root in CI), quiet."""
