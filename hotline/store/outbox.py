"""The outbox: ticket and call writes that survive a PostgreSQL outage, a full disk and a crash.

Theory of operation
-------------------
Producers (the engine's :class:`~hotline.store.records.Recorder`) call
:meth:`Outbox.put`, which is synchronous, O(1), never waits on the database and
never raises into its caller (only :class:`OutboxClosed` after :meth:`close`).
One writer task drains the records in the order they were put, ``batch_size``
at a time, each batch in one transaction (:mod:`hotline.store.pgwriter`).

Where a record waits, oldest first:

- **memory**: a deque of at most ``max_memory`` records, while the database
  keeps up;
- **the spill log** (:mod:`hotline.store.spill`): JSON-lines segments in
  ``directory``. The outbox *spills* when memory is full, and from the first
  failed write until everything is written again: every new record is appended
  to the newest segment with one ``write(2)`` (a process crash loses nothing
  accepted), fsynced in a thread every ``fsync_interval`` seconds (a machine
  crash loses at most that much). When a database write fails, the records in
  memory go to a new segment before the others;
- **held**: when the disk refuses a write (full, failing), records stay in
  memory behind everything on disk, up to ``max_held``; a record past that cap
  is dropped and counted (``counters.dropped``, ``hotline_outbox_dropped_total``,
  an error log line). The writer tries the disk again (with back-off) and moves
  them there when it takes writes; and once the spill log is written, it writes
  them to the database straight from memory.

Order: the writer takes memory, then the spill log oldest first, line by line,
then the held records; new records join behind the part they belong to, so the
database sees them in the order they were put. Segments fully written are
deleted, and once nothing waits, new records go to memory again.

Failures (:mod:`hotline.store.outboxstats` counts them and :meth:`problems`
names the current ones):

- the database unreachable, a connection lost, a timeout: the batch stays where
  it is and the writer retries after an exponential back-off (``retry_initial``
  doubling to ``retry_max``, with jitter);
- the database refusing a record's data, or a malformed record: the record goes
  to ``dead-letter.jsonl`` with the error instead of blocking the queue; a dead
  letter that cannot be written stays in memory and is retried, never raised;
- anything unexpected in the writer: logged, counted (``counters.crashes``), and
  the writer starts again after a back-off (a supervisor task), so it resumes
  by itself when the disk or the database comes back.

Exactly once: a batch leaves the outbox only after its transaction committed. A
commit whose acknowledgement was lost, or segments replayed after a crash, are
written again, and the writes (``apply``) are idempotent on natural keys.

Start and stop: a new outbox finds the segments a previous process left; its
writer first cuts a torn last line off them (reported as a dead letter), then
writes them. :meth:`close` gives the writer ``drain_timeout`` seconds to finish
(none while writes are failing), then spills whatever is still in memory; what
the disk refuses then is lost, and counted and logged as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import structlog

from hotline.store.db import Pool
from hotline.store.outboxstats import OutboxStats
from hotline.store.pgwriter import ApplyBatch, PgWriter, Refused
from hotline.store.spill import Chunk, DeadLetters, SpillLog, encode

__all__ = ["ApplyBatch", "Outbox", "OutboxClosed"]

log = structlog.get_logger("hotline.store.outbox")


class OutboxClosed(RuntimeError):
    """A record was put after :meth:`Outbox.close`."""


@dataclass(slots=True)
class _Batch:
    source: Literal["memory", "disk", "held"]
    records: list[dict[str, Any]]
    chunk: Chunk | None = None


class Outbox:
    """See the module docstring."""

    def __init__(
        self,
        pool: Pool,
        apply: ApplyBatch,
        directory: str | Path,
        *,
        max_memory: int = 10_000,
        max_held: int = 100_000,
        batch_size: int = 500,
        segment_bytes: int = 8 << 20,
        fsync_interval: float = 0.05,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        write_timeout: float = 15.0,
    ) -> None:
        """Use ``directory`` for spill files (created if missing; leftovers are replayed)."""
        self.pool = pool
        self.apply = apply
        self.directory = Path(directory)
        self.max_memory = max_memory
        self.max_held = max_held
        self.batch_size = batch_size
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.counters = OutboxStats()
        self._writer = PgWriter(pool, apply, write_timeout=write_timeout)
        self._spill = SpillLog(
            self.directory, segment_bytes=segment_bytes, fsync_interval=fsync_interval
        )
        self._dead = DeadLetters(self.directory)
        self._memory: deque[dict[str, Any]] = deque()
        self._held: deque[dict[str, Any]] = deque()
        self._spilling = bool(self._spill.segments)
        self._repaired = False
        self._disk_retry_at = 0.0
        self._disk_delay = retry_initial
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._memory_spill: asyncio.Future[None] | None = None
        if self._spill.segments:
            log.info(
                "outbox.replaying", segments=len(self._spill.segments), records=self._spill.pending
            )

    # -- what others read ---------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Records accepted and not yet written (memory, spill files, held)."""
        return len(self._memory) + self._spill.pending + len(self._held)

    @property
    def in_memory(self) -> int:
        """Records waiting in memory (the queue and those held while the disk fails)."""
        return len(self._memory) + len(self._held)

    @property
    def on_disk(self) -> int:
        """Records waiting in spill files."""
        return self._spill.pending

    @property
    def held(self) -> int:
        """Records kept in memory because the disk refused them."""
        return len(self._held)

    @property
    def spilling(self) -> bool:
        """New records go to the spill files (memory full, or the database unreachable)."""
        return self._spilling

    @property
    def writer_running(self) -> bool:
        """The writer task (its supervisor) is alive."""
        return self._task is not None and not self._task.done()

    @property
    def written(self) -> int:
        """Records committed."""
        return self.counters.written

    @property
    def spilled(self) -> int:
        """Records written to spill files."""
        return self.counters.spilled

    @property
    def dead(self) -> int:
        """Records and lines set aside as dead letters."""
        return self.counters.dead

    @property
    def dropped(self) -> int:
        """Records lost past the memory cap while the disk failed (or unsaved at close)."""
        return self.counters.dropped

    @property
    def retries(self) -> int:
        """Failed database writes."""
        return self.counters.retries

    @property
    def batches(self) -> int:
        """Transactions committed."""
        return self.counters.batches

    @property
    def last_error(self) -> str | None:
        """Why the last database write failed, until one succeeds."""
        return self.counters.last_error

    @property
    def last_error_at(self) -> float | None:
        """When the last database write failed."""
        return self.counters.last_error_at

    @property
    def max_memory_seen(self) -> int:
        """The most records the memory queue held."""
        return self.counters.max_memory_seen

    def problems(self) -> list[str]:
        """Short reasons the outbox is unhealthy (writer stopped, disk full, database
        unreachable since ...); empty when all is well."""
        if self._closed:
            return ["outbox closed"]
        reasons = self.counters.problems(
            writer_running=self.writer_running, memory_full=len(self._held) >= self.max_held
        )
        if self._spill.fsync_error is not None:
            reasons.append(f"spill fsync failing: {self._spill.fsync_error}")
        return reasons

    def stats(self) -> dict[str, Any]:
        """Figures for metrics and health."""
        return {
            "backlog": self.backlog,
            "in_memory": self.in_memory,
            "on_disk": self.on_disk,
            "held": self.held,
            "spilling": self._spilling,
            "writer_running": self.writer_running,
            **self.counters.as_dict(),
            "problems": self.problems(),
        }

    # -- producers ----------------------------------------------------------------------------

    def put(self, record: dict[str, Any]) -> None:
        """Accept a record; never blocks and never raises (see the module docstring)."""
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        try:
            self._accept(record)
        except Exception:
            log.exception("outbox.put_failed")
            self.counters.drop(1, "unexpected error")
        self._wake.set()

    def _accept(self, record: dict[str, Any]) -> None:
        if not self._spilling and len(self._memory) < self.max_memory:
            self._memory.append(record)
            if len(self._memory) > self.counters.max_memory_seen:
                self.counters.max_memory_seen = len(self._memory)
            return
        self._spilling = True
        if not self._held:
            try:
                self._spill.append(encode(record), 1)
            except OSError as exc:
                self.counters.disk_failed(exc, held=len(self._held))
            else:
                self.counters.spilled += 1
                self.counters.disk_succeeded()
                return
        if len(self._held) < self.max_held:
            self._held.append(record)
        else:
            self.counters.drop(1, "memory cap reached while the spill disk fails")

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervised writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="outbox-writer")

    async def flush(self, timeout: float) -> bool:
        """Wait until everything accepted so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.backlog:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
        return True

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Let the writer drain for up to ``drain_timeout`` s (unless the database is failing
        anyway), stop it, and spill what is left."""
        if self._closed:
            return
        if self._task is not None:
            if self.last_error is None:
                await self.flush(drain_timeout)
            self._stop.set()
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._closed = True
        if self._memory_spill is not None:
            await asyncio.wait([self._memory_spill])
            self._memory_spill = None
        await self._spill_memory()
        self._unhold()
        lost = len(self._memory) + len(self._held)
        if lost:
            self.counters.drop(lost, "the spill disk refused them at close")
            self._memory.clear()
            self._held.clear()
        await self._dead.retry(force=True)
        await self._spill.close()

    # -- the writer ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run the writer; after an unexpected error, log it and start it again."""
        delay = self.retry_initial
        while not self._stop.is_set():
            try:
                await self.run()
            except Exception:
                self.counters.crashes += 1
                log.exception("outbox.writer_crashed", crashes=self.counters.crashes)
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)

    async def run(self) -> None:
        """Write batches until stopped; see the module docstring."""
        if not self._repaired:
            self._repaired = True
            self.counters.dead += await self._spill.repair(self._dead)
        lost = self._spill.forget_missing()
        if lost:
            self.counters.drop(lost, "their spill file was deleted")
        delay = self.retry_initial
        while not self._stop.is_set():
            await self._dead.retry()
            self._retry_disk()
            batch = self._next_batch()
            if batch is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_timeout()):
                        await self._wake.wait()
                continue
            try:
                refused = await self._writer.write(batch.records)
            except Exception as exc:
                self.counters.write_failed(exc, self.backlog)
                self._spilling = True
                await self._spill_memory()
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_initial
            await self._done(batch, refused)

    def _idle_timeout(self) -> float | None:
        if self._held:
            return max(self._disk_retry_at - time.monotonic(), 0.001)
        if self._dead.unwritten:
            return self.retry_max
        return None

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):
                await self._stop.wait()

    async def _done(self, batch: _Batch, refused: Refused) -> None:
        """The batch is committed: remove it, and dead-letter what could not be written."""
        count = len(batch.records)
        if batch.source == "memory":
            for _ in range(count):
                self._memory.popleft()
        elif batch.source == "held":
            for _ in range(count):
                self._held.popleft()
        else:
            assert batch.chunk is not None
            self._spill.consume(batch.chunk)
        while self._spill.release(tail=not self._memory):
            pass
        self._settle()
        self.counters.write_succeeded(count - len(refused), self.backlog)
        entries = [{"error": error, "record": record} for record, error in refused]
        if batch.chunk is not None:
            entries += [
                {"error": error, "line": line.decode("utf-8", "replace").rstrip("\n")}
                for line, error in batch.chunk.unreadable
            ]
        if entries:
            self.counters.dead += len(entries)
            await self._dead.add(entries)
        self._progress.set()

    # -- memory and disk ----------------------------------------------------------------------

    def _next_batch(self) -> _Batch | None:
        if self._memory:
            return _Batch("memory", list(islice(self._memory, self.batch_size)))
        while self._spill.segments:
            chunk = self._spill.read(self.batch_size)
            if chunk is not None:
                return _Batch("disk", chunk.records, chunk)
            if not self._spill.release(tail=True):
                break
        if self._held and self._spill.fully_read:
            return _Batch("held", list(islice(self._held, self.batch_size)))
        self._settle()
        return None

    def _settle(self) -> None:
        """Back to normal once nothing waits: new records go to memory again."""
        if not self._memory and not self._spill.segments and not self._held:
            self._spilling = False
            self.counters.disk_succeeded()  # nothing depends on the disk any more

    async def _spill_memory(self) -> None:
        """Move the records in memory to a segment before all others (fsynced); they stay
        in memory if the disk refuses. Cancelling the caller does not interrupt it (its
        thread would go on writing): :meth:`close` waits for it."""
        if self._memory_spill is None:
            self._memory_spill = asyncio.ensure_future(self._spill_memory_now())
        task = self._memory_spill
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._memory_spill = None

    async def _spill_memory_now(self) -> None:
        if not self._memory:
            return
        count = len(self._memory)
        data = b"".join(encode(record) for record in self._memory)
        try:
            await self._spill.prepend(data, count)
        except OSError as exc:
            self.counters.disk_failed(exc, held=self.in_memory)
            return
        self.counters.disk_succeeded()
        self.counters.spilled += count
        self._memory.clear()

    def _retry_disk(self) -> None:
        """Try the disk again (with back-off) while records are held."""
        if not self._held or time.monotonic() < self._disk_retry_at:
            return
        if self._unhold():
            self._disk_delay = self.retry_initial
            self._disk_retry_at = 0.0
        else:
            self._disk_retry_at = time.monotonic() + self._disk_delay
            self._disk_delay = min(self._disk_delay * 2, self.retry_max)

    def _unhold(self) -> bool:
        """Append the held records to the spill log; True when none is left held."""
        if not self._held:
            return True
        count = len(self._held)
        try:
            self._spill.append(b"".join(encode(record) for record in self._held), count)
        except OSError as exc:
            self.counters.disk_failed(exc, held=count)
            return False
        self.counters.disk_succeeded()
        self.counters.spilled += count
        self._held.clear()
        return True
