"""Ticket numbers, allocated locally: ``T<YYYYMMDD>-<instance><sequence>``.

Routing never waits on the database for a number. The date is the local date in
the configured time zone; the instance letter keeps instances apart; the
sequence restarts each day. To stay unique across restarts without writing on
every call, sequences are reserved in blocks: the reservation is made durable
(written, fsynced, renamed) before any number of the block is handed out, so a
restart skips the unused rest of a block but never repeats a number.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = ["FileSequenceStore", "MemorySequenceStore", "SequenceStore", "TicketNumbers"]


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
    """Allocates ticket numbers; see the module docstring.

    Called as ``(caller number, now)`` it is a router ticket allocator that opens
    a new ticket for every call.
    """

    def __init__(
        self, instance: str, zone: ZoneInfo, store: SequenceStore, *, block: int = 100
    ) -> None:
        """``block`` numbers are reserved at a time."""
        self.instance = instance
        self.zone = zone
        self.store = store
        self.block = block
        self._day = ""
        self._next = 0
        self._limit = 0

    def __call__(self, number: str, now: float) -> str:
        """A new number for the local date of ``now`` (every call gets a new ticket)."""
        return self.allocate(now)

    def allocate(self, now: float) -> str:
        """The next number for the local date of ``now``."""
        day = datetime.fromtimestamp(now, self.zone).strftime("%Y%m%d")
        if day != self._day or self._next >= self._limit:
            first = self.store.reserve(day, self.block)
            self._day, self._next, self._limit = day, first, first + self.block
        number = self._next
        self._next += 1
        return f"T{day}-{self.instance}{number:04d}"
