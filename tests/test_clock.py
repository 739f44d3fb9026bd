"""The clocks' scheduling, and the virtual clock that an idle event loop moves."""

from __future__ import annotations

import asyncio
import time

import pytest

from hotline.clock import (
    ScaledClock,
    SystemClock,
    VirtualClock,
    virtual_clock_of,
    virtual_time_loop,
)

pytestmark = pytest.mark.unit

EPOCH = 1_800_000_000.0


def run_virtual(clock: VirtualClock, main: object) -> object:
    """Run coroutine ``main`` on a new virtual-time loop moving ``clock``."""
    with asyncio.Runner(loop_factory=lambda: virtual_time_loop(clock)) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def test_timers_fire_in_clock_order_at_their_exact_moment_and_cancelled_ones_never() -> None:
    clock = VirtualClock(EPOCH)
    fired: list[tuple[str, float]] = []

    async def main() -> None:
        assert virtual_clock_of() is clock
        clock.call_later(30.0, lambda: fired.append(("b", clock.now())))
        clock.call_at(EPOCH + 10.0, lambda: fired.append(("a", clock.now())))
        clock.call_later(30.0, lambda: fired.append(("c", clock.now())))
        clock.call_later(20.0, lambda: fired.append(("cancelled", clock.now()))).cancel()
        await clock.sleep(3600.0)

    started = time.monotonic()
    run_virtual(clock, main())
    assert fired == [("a", EPOCH + 10.0), ("b", EPOCH + 30.0), ("c", EPOCH + 30.0)]
    assert clock.now() == EPOCH + 3600.0
    # An hour of virtual time takes no hour; the bound is only there to catch a real wait.
    assert time.monotonic() - started < 60


def test_the_clock_waits_while_callbacks_are_ready_and_while_held() -> None:
    clock = VirtualClock(EPOCH)

    async def main() -> None:
        clock.call_later(5.0, lambda: None)
        for _ in range(100):  # a busy loop: ready callbacks on every turn
            await asyncio.sleep(0)
        assert clock.now() == EPOCH
        with clock.hold():
            await asyncio.sleep(0.05)  # real time: an idle loop, but the clock is held
            assert clock.now() == EPOCH
        await clock.sleep(1.0)
        assert clock.now() == EPOCH + 1.0

    run_virtual(clock, main())


def test_real_timers_run_and_do_not_hold_the_virtual_clock_back() -> None:
    clock = VirtualClock(EPOCH)
    fired: list[float] = []

    async def main() -> None:
        clock.call_later(100.0, lambda: fired.append(clock.now()))
        await asyncio.sleep(0.01)  # a real timer: the loop is idle meanwhile
        assert fired == [EPOCH + 100.0]
        assert clock.now() == EPOCH + 100.0
        await asyncio.sleep(0.01)  # nothing virtual is due: a plain wait
        assert clock.now() == EPOCH + 100.0

    run_virtual(clock, main())


def test_wall_clocks_schedule_on_the_loop() -> None:
    async def main() -> None:
        scaled = ScaledClock(1000.0)
        done = asyncio.Event()
        started = scaled.now()
        scaled.call_later(50.0, done.set)  # 50 ms of wall time
        await asyncio.wait_for(done.wait(), 10)
        assert scaled.now() - started >= 50.0 - 1e-3
        await SystemClock().sleep(0.0)
        assert SystemClock().wall_delay(-1.0) == 0.0

    asyncio.run(main())
