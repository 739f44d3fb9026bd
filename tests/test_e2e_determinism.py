"""On the virtual clock a sim + service run does not depend on how fast the machine is:
the same scenario gives the same facts, fact for fact, on a loop that keeps stalling."""

from __future__ import annotations

import asyncio
import time

import pytest

from hotline.clock import VirtualClock, virtual_time_loop
from hotline.domain.effects import CallEnded
from hotline.sim.harness import start_stack
from tests.support import QUEUES, call_centre, ground_truth_calls, wait_settled

pytestmark = pytest.mark.e2e

EPOCH = 1_800_000_000.0


async def facts_of_a_run(stall: bool) -> tuple[list[str], int]:
    """The facts of one run, and how many times the loop was stalled meanwhile.

    Each fact as its repr, with the process' boot id (random by design: offer ids
    must never repeat across processes) written as ``<boot>``.
    """
    stalls = 0
    loop = asyncio.get_running_loop()

    def stall_the_loop() -> None:
        # A slow machine: every 2 ms of wall time, the loop is blocked for 1 ms.
        nonlocal stalls
        stalls += 1
        time.sleep(0.001)
        handle[0] = loop.call_later(0.002, stall_the_loop)

    handle = [loop.call_later(0.002, stall_the_loop)] if stall else []
    stack = await start_stack(call_centre(150, seed=17, rate_per_minute=30), queues=QUEUES)
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await stack.sleep(120.0)
        await stack.agent("pause", "2003", "lunch")
        await wait_settled(stack)
        assert len(ground_truth_calls(stack)) == 150
    finally:
        for timer in handle:
            timer.cancel()
        await stack.close()
    boot = stack.engine.router.boot_id
    assert boot, "offer ids carry a boot id"
    return [repr(fact).replace(boot, "<boot>") for fact in stack.facts], stalls


def run(stall: bool) -> tuple[list[str], int]:
    """One run on a fresh virtual-time loop whose clock starts at ``EPOCH``."""
    with asyncio.Runner(loop_factory=lambda: virtual_time_loop(VirtualClock(EPOCH))) as runner:
        return runner.run(facts_of_a_run(stall))


def test_a_stalling_loop_gives_the_same_facts_as_a_free_one() -> None:
    free, _ = run(stall=False)
    stalled, stalls = run(stall=True)
    assert stalls > 10, "the loop really was stalled"
    assert sum(f.startswith(CallEnded.__name__ + "(") for f in free) == 150
    assert stalled == free
