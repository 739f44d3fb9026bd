"""Ticket numbers come from a pool reserved ahead: no I/O under ``Router.handle``.

The pool is topped up by the engine in a worker thread (the fsync'd reservation),
off the hot path; only an empty pool reserves inline, and that is counted.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from hotline.ami.client import AmiClient, AmiSettings
from hotline.clock import SystemClock
from hotline.config import QueueConfig, RoutingConfig
from hotline.domain.commands import Login
from hotline.domain.effects import CallArrived
from hotline.domain.events import CallerWaiting
from hotline.domain.routing import Router
from hotline.engine import Engine
from hotline.ticketno import FileSequenceStore, MemorySequenceStore, SequenceStore, TicketNumbers
from tests.routing_helpers import T0, Pbx, agent

pytestmark = pytest.mark.integration

UTC = ZoneInfo("UTC")
MIDNIGHT = 1_795_737_600.0  # 2026-11-27 00:00 UTC
assert MIDNIGHT % 86_400 == 0


class WatchedStore:
    """A real sequence store that records each reservation's thread, and can forbid them."""

    def __init__(self, inner: SequenceStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, int]] = []  # (day, count, thread id)
        self.forbidden = False

    def reserve(self, day: str, count: int) -> int:
        """Reserve through the real store, unless reservations are forbidden right now."""
        assert not self.forbidden, f"a reservation for {day} while they are forbidden"
        self.calls.append((day, count, threading.get_ident()))
        return self.inner.reserve(day, count)


def test_a_topped_up_pool_serves_numbers_without_reserving() -> None:
    store = WatchedStore(MemorySequenceStore())
    numbers = TicketNumbers("A", UTC, store, block=10)
    numbers.top_up(T0)
    assert len(store.calls) == 1
    store.forbidden = True
    issued = [numbers.allocate(T0) for _ in range(5)]
    assert issued == [f"T20261126-A{n:04d}" for n in range(1, 6)]
    assert numbers.shortfall(T0) == ()  # 5 of 10 left: not low yet
    numbers.allocate(T0)
    assert numbers.shortfall(T0) == ("20261126",)  # 4 left: below half a block
    store.forbidden = False
    numbers.add(numbers.reserve(numbers.shortfall(T0)))
    store.forbidden = True
    issued += [numbers.allocate(T0) for _ in range(9)]
    assert issued[-1] == "T20261126-A0015"
    assert len(set(issued)) == len(issued) == 14
    assert numbers.stalls == 0


def test_an_empty_pool_reserves_inline_and_counts_a_stall() -> None:
    store = WatchedStore(MemorySequenceStore())
    numbers = TicketNumbers("B", UTC, store, block=3)
    assert [numbers.allocate(T0) for _ in range(4)] == [
        "T20261126-B0001",
        "T20261126-B0002",
        "T20261126-B0003",
        "T20261126-B0004",
    ]
    assert numbers.stalls == 2
    assert [call[:2] for call in store.calls] == [("20261126", 3), ("20261126", 3)]


def test_tomorrow_is_reserved_before_midnight() -> None:
    store = WatchedStore(MemorySequenceStore())
    numbers = TicketNumbers("A", UTC, store, block=10, ahead=600.0)
    numbers.top_up(MIDNIGHT - 3600)
    assert numbers.shortfall(MIDNIGHT - 3600) == ()
    assert numbers.shortfall(MIDNIGHT - 300) == ("20261127",)
    numbers.top_up(MIDNIGHT - 300)
    store.forbidden = True
    assert numbers.allocate(MIDNIGHT - 1) == "T20261126-A0001"
    assert numbers.allocate(MIDNIGHT + 1) == "T20261127-A0001"
    assert numbers.remaining("20261126") == 0  # yesterday's rest left the pool
    assert numbers.stalls == 0


def test_router_handle_does_no_io_when_the_pool_is_topped_up(tmp_path: Path) -> None:
    store = WatchedStore(FileSequenceStore(tmp_path / "ticket-sequence.json"))
    numbers = TicketNumbers("A", UTC, store, block=100)
    router = Router(RoutingConfig(), {"support": QueueConfig("support")}, [agent("1001")], numbers)
    pbx = Pbx(router)
    numbers.top_up(pbx.now)
    store.forbidden = True  # any reservation under handle() fails the test
    tickets: list[str] = []
    for _ in range(40):
        _, effects = pbx.caller(number=f"1390000{len(tickets):04d}")
        tickets += [e.ticket for e in effects if isinstance(e, CallArrived)]
    assert len(set(tickets)) == 40
    assert json.loads((tmp_path / "ticket-sequence.json").read_text()) == {"20261126": 101}


class StillClock(SystemClock):
    """A clock that does not move (the engine's timers never fire here)."""

    def now(self) -> float:
        """Always T0."""
        return T0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (generous limit: a loaded machine is slow)."""
    for _ in range(4000):
        if condition():
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


async def test_the_engine_tops_the_pool_up_in_a_worker_thread(tmp_path: Path) -> None:
    store = WatchedStore(FileSequenceStore(tmp_path / "ticket-sequence.json"))
    numbers = TicketNumbers("A", UTC, store, block=4)
    router = Router(RoutingConfig(), {"support": QueueConfig("support")}, [agent("1001")], numbers)
    clock = StillClock()
    engine = Engine(
        router,
        AmiClient(AmiSettings.from_url("ami://u@127.0.0.1:1")),
        clock,
        ticket_numbers=numbers,
    )

    def served(uid: str) -> bool:
        return uid in router.calls and not numbers.shortfall(T0)

    task = asyncio.create_task(engine.run())
    try:
        for index in range(10):
            uid = f"{T0}.{index}"
            engine.submit(
                CallerWaiting(T0, "pbx", uid, f"PJSIP/t-{index}", uid, "139", "", "support", 0)
            )
            await eventually(partial(served, uid), f"call {index} and a full pool")
    finally:
        engine.stop()
        await task
    loop_thread = threading.get_ident()
    assert store.calls[0][2] == loop_thread  # the start-up reservation, before any call
    assert len(store.calls) >= 3
    assert all(thread != loop_thread for _, _, thread in store.calls[1:])
    assert numbers.stalls == 0
    assert len({call.ticket for call in router.calls.values()}) == 10
    assert json.loads((tmp_path / "ticket-sequence.json").read_text()) == {
        "20261126": 1 + 4 * len(store.calls)
    }


async def test_an_unreadable_sequence_file_is_logged_and_the_engine_keeps_running(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ticket-sequence.json"
    path.write_text("not json", encoding="utf-8")
    numbers = TicketNumbers("A", UTC, FileSequenceStore(path), block=4)
    router = Router(RoutingConfig(), {"support": QueueConfig("support")}, [agent("1001")], numbers)
    engine = Engine(
        router,
        AmiClient(AmiSettings.from_url("ami://u@127.0.0.1:1")),
        StillClock(),
        ticket_numbers=numbers,
    )
    with capture_logs() as logs:
        task = asyncio.create_task(engine.run())
        try:
            agent_after = await asyncio.wait_for(engine.command(Login("1001")), 60)
        finally:
            engine.stop()
            await task
    assert agent_after.logged_in
    [failure] = [line for line in logs if line["event"] == "engine.ticket_reserve_failed"]
    assert "unreadable ticket sequence file" in failure["error"]
    assert path.read_text(encoding="utf-8") == "not json"  # nothing overwritten


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/Santiago"])
def test_the_numbers_date_is_the_local_date_across_midnights_and_clock_changes(zone: str) -> None:
    # Every 7 minutes for a year, in zones with and without daylight saving (Santiago's
    # clock changes at midnight): the cached day bounds give the date the zone gives.
    tz = ZoneInfo(zone)
    numbers = TicketNumbers("A", tz, MemorySequenceStore())
    start = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    for step in range(0, 365 * 24 * 60, 7):
        now = start + step * 60.0
        expected = datetime.fromtimestamp(now, tz).strftime("%Y%m%d")
        assert numbers.allocate(now).startswith(f"T{expected}-A"), (zone, now)
