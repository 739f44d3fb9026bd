"""The outbox's statistics: counters, the current database and disk failures, the problems.

:class:`OutboxStats` is plain data the outbox updates as it goes; it logs the
first failure of each outage and the recovery (not every retry), and
:meth:`OutboxStats.problems` turns the current state into the short reasons
readiness reports.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

__all__ = ["OutboxStats"]

log = structlog.get_logger("hotline.store.outbox")


def _describe(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class OutboxStats:
    """What the outbox has done, and what is failing now."""

    written: int = 0
    """Records committed."""
    batches: int = 0
    """Transactions committed."""
    spilled: int = 0
    """Records written to the spill files."""
    dead: int = 0
    """Records and lines set aside as dead letters."""
    retries: int = 0
    """Failed database writes (each retried)."""
    dropped: int = 0
    """Records lost: past the memory cap while the disk failed, or unsaved at close."""
    crashes: int = 0
    """Unexpected writer errors (the writer restarts after each)."""
    max_memory_seen: int = 0
    """The largest number of records the memory queue held."""
    last_error: str | None = None
    """Why the last database write failed, until one succeeds."""
    last_error_at: float | None = None
    failing_since: float | None = None
    """When the database writes started failing (this outage)."""
    disk_error: str | None = None
    """Why the last spill write failed, until one succeeds."""
    disk_error_since: float | None = None

    def write_failed(self, exc: BaseException, backlog: int) -> None:
        """A database write failed (it will be retried)."""
        self.retries += 1
        self.last_error = _describe(exc)
        self.last_error_at = time.time()
        if self.failing_since is None:
            self.failing_since = self.last_error_at
        if self.retries == 1 or self.retries % 50 == 0:
            log.warning("outbox.write_failed", error=self.last_error, backlog=backlog)

    def write_succeeded(self, records: int, backlog: int) -> None:
        """A batch of ``records`` was committed."""
        self.written += records
        self.batches += 1
        if self.last_error is not None:
            log.info("outbox.recovered", backlog=backlog)
            self.last_error = None
            self.failing_since = None

    def disk_failed(self, exc: OSError, held: int) -> None:
        """A spill write failed; the records stay in memory."""
        first = self.disk_error is None
        self.disk_error = _describe(exc)
        if first:
            self.disk_error_since = time.time()
            log.error("outbox.spill_failed", error=self.disk_error, held=held)

    def disk_succeeded(self) -> None:
        """A spill write succeeded."""
        if self.disk_error is not None:
            log.info("outbox.spill_recovered")
            self.disk_error = None
            self.disk_error_since = None

    def drop(self, count: int, reason: str) -> None:
        """``count`` records are lost; logged on the first and every 1000th."""
        before = self.dropped
        self.dropped += count
        if before == 0 or before // 1000 != self.dropped // 1000:
            log.error("outbox.records_dropped", reason=reason, dropped=self.dropped)

    def problems(self, *, writer_running: bool, memory_full: bool) -> list[str]:
        """Short reasons the outbox is not healthy; empty when it is."""
        reasons: list[str] = []
        if not writer_running:
            reasons.append("outbox writer stopped")
        if self.disk_error is not None:
            full = "No space" in self.disk_error or "ENOSPC" in self.disk_error
            reasons.append("spill disk full" if full else f"spill disk failing: {self.disk_error}")
        if memory_full:
            reasons.append(f"outbox memory cap reached ({self.dropped} records dropped)")
        if self.failing_since is not None:
            reasons.append(f"database unreachable since {_iso(self.failing_since)}")
        return reasons

    def as_dict(self) -> dict[str, Any]:
        """Every figure, for health and metrics."""
        return asdict(self)
