"""Ticket numbers, allocated locally: ``T<YYYYMMDD>-<instance><sequence>``.

Routing never waits on the database for a number. The date is the local date in
the configured time zone; the instance letter keeps instances apart; the
sequence restarts each day. To stay unique across restarts without writing on
every call, sequences are reserved in blocks: the reservation is made durable
(written, fsynced, renamed) before any number of the block is handed out, so a
restart skips the unused rest of a block but never repeats a number.

The numbers handed out come from a pool of blocks already reserved, held in
memory, so allocating (under ``Router.handle``) does no I/O. Topping the pool up
is an effect the engine runs off its hot path, in three steps:
:meth:`TicketNumbers.shortfall` (pure: which days need a block, i.e. today when
fewer than half a block is left, and tomorrow within ``ahead`` seconds of
midnight), :meth:`TicketNumbers.reserve` (the durable I/O, safe in a worker
thread) and :meth:`TicketNumbers.add` (back on the engine's task). Only an
empty pool makes :meth:`TicketNumbers.allocate` reserve inline; ``stalls``
counts those times.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = [
    "FileSequenceStore",
    "MemorySequenceStore",
    "Reservation",
    "SequenceStore",
    "TicketNumbers",
]

Reservation = tuple[str, int, int]
"""A reserved block: ``(day, first, limit)``, the numbers ``first`` to ``limit - 1``."""


class SequenceStore(Protocol):
    """Durable per-day counters."""

    def reserve(self, day: str, count: int) -> int:
        """Reserve ``count`` numbers of ``day``; return the first one (1-based)."""
        ...


class MemorySequenceStore:
    """Counters in memory (tests, and the demo where nothing must survive)."""

    def __init__(self) -> None:
        """Start every day at 1."""
        self.next_free: dict[str, int] = {}

    def reserve(self, day: str, count: int) -> int:
        """Reserve the next ``count`` numbers."""
        first = self.next_free.get(day, 1)
        self.next_free[day] = first + count
        return first


class FileSequenceStore:
    """Counters in a small JSON file, replaced atomically on each reservation."""

    def __init__(self, path: str | Path) -> None:
        """Use ``path`` (created with its folder if missing)."""
        self.path = Path(path)

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{self.path}: unreadable ticket sequence file: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
            raise RuntimeError(f"{self.path}: ticket sequence file is not {{day: int}}")
        return data

    def reserve(self, day: str, count: int) -> int:
        """Reserve the next ``count`` numbers durably."""
        data = self._read()
        first = data.get(day, 1)
        kept = {d: n for d, n in data.items() if d >= day}
        kept[day] = first + count
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(kept, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        return first


class TicketNumbers:
    """Allocates ticket numbers from a pool of reserved blocks; see the module docstring.

    Called as ``(caller number, now)`` it is a router ticket allocator that opens
    a new ticket for every call.
    """

    def __init__(
        self,
        instance: str,
        zone: ZoneInfo,
        store: SequenceStore,
        *,
        block: int = 100,
        ahead: float = 600.0,
    ) -> None:
        """``block`` numbers are reserved at a time; tomorrow's first block is reserved
        ``ahead`` seconds before midnight."""
        self.instance = instance
        self.zone = zone
        self.store = store
        self.block = block
        self.ahead = ahead
        self.stalls = 0
        self._pool: dict[str, deque[list[int]]] = {}
        self._lock = threading.Lock()  # one reservation at a time: the store is not shared-safe
        self._days: list[tuple[float, float, str]] = []  # (start, end, day): the last two

    def __call__(self, number: str, now: float) -> str:  # noqa: ARG002 (the TicketAllocator signature)
        """A new number for the local date of ``now`` (every call gets a new ticket)."""
        return self.allocate(now)

    def _day(self, now: float) -> str:
        """The local date of ``now`` as ``YYYYMMDD``; the last two days' bounds are kept, so
        the engine's check on every turn does no time-zone arithmetic."""
        for start, end, day in self._days:
            if start <= now < end:
                return day
        local = datetime.fromtimestamp(now, self.zone)
        day = local.strftime("%Y%m%d")
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight.timestamp()
        end = (midnight + timedelta(days=1)).timestamp()
        if start <= now < end:  # else a day that does not start at 00:00 (kept uncached)
            self._days = [*self._days[-1:], (start, end, day)]
        return day

    def remaining(self, day: str) -> int:
        """How many reserved numbers of ``day`` are left in the pool."""
        return sum(limit - first for first, limit in self._pool.get(day, ()))

    def allocate(self, now: float) -> str:
        """The next number for the local date of ``now``, from the pool (no I/O unless empty)."""
        day = self._day(now)
        blocks = self._pool.get(day)
        if not blocks:
            self.stalls += 1
            self.add(self.reserve((day,)))
            blocks = self._pool[day]
        current = blocks[0]
        number = current[0]
        current[0] += 1
        if current[0] >= current[1]:
            blocks.popleft()
        for old in [d for d in self._pool if d < day]:
            del self._pool[old]
        return f"T{day}-{self.instance}{number:04d}"

    def shortfall(self, now: float) -> tuple[str, ...]:
        """The days that need a block reserved now (pure and cheap; see the module docstring)."""
        today = self._day(now)
        days = [today] if self.remaining(today) < max(1, self.block // 2) else []
        tomorrow = self._day(now + self.ahead)
        if tomorrow != today and not self.remaining(tomorrow):
            days.append(tomorrow)
        return tuple(days)

    def reserve(self, days: tuple[str, ...]) -> list[Reservation]:
        """Reserve one block per day durably (blocking I/O; may run in a worker thread)."""
        with self._lock:
            reservations = []
            for day in days:
                first = self.store.reserve(day, self.block)
                reservations.append((day, first, first + self.block))
            return reservations

    def add(self, reservations: list[Reservation]) -> None:
        """Put reserved blocks into the pool (on the task that allocates)."""
        for day, first, limit in reservations:
            self._pool.setdefault(day, deque()).append([first, limit])

    def top_up(self, now: float) -> None:
        """Reserve what :meth:`shortfall` asks for, inline (at start, before any call)."""
        days = self.shortfall(now)
        if days:
            self.add(self.reserve(days))
