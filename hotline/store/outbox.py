"""The outbox: ticket and call writes that survive a PostgreSQL outage and a crash.

Theory of operation
-------------------
Producers (the engine's :class:`~hotline.store.records.Recorder`) call
:meth:`Outbox.put`, which is synchronous, O(1) and never waits on the database.
One writer task (:meth:`Outbox.run`) drains the records in the order they were
put, ``batch_size`` at a time, each batch in one transaction.

Where a record waits:

- **memory**: a deque of at most ``max_memory`` records, while the database
  keeps up;
- **spill files**: append-only JSON-lines segments in ``directory``
  (``spill-<n>.jsonl``). The outbox *spills* when memory is full, and from the
  first failed write until the files are drained again. While spilling, every
  new record is appended to the newest segment with one ``write(2)`` (so a
  process crash loses nothing already accepted), and the files are fsynced in
  batches every ``fsync_interval`` seconds (so a machine crash loses at most
  that much). When a write fails, the records still in memory are written to a
  new segment that sorts *before* the others, and fsynced, so memory is empty
  for the whole outage.

Order: memory holds older records than any file (memory only grows while
nothing is spilled), so the writer takes memory first, then the segments
oldest first; within a segment, line by line. Once the writer has caught up
with the newest segment and memory is empty, the segments are deleted and new
records go to memory again. A fully written segment that is not the newest is
deleted at once (rotation every ``segment_bytes``).

Failures:

- the database unreachable, a connection lost, a timeout (``write_timeout``
  per batch): the batch stays where it is, the connection is discarded, and
  the writer retries after an exponential back-off (``retry_initial`` doubling
  to ``retry_max``, with jitter). ``last_error`` says why;
- the database refusing a record's data (SQLSTATE classes 22 and 23), or a
  malformed record: the batch is retried one record at a time, each in its own
  savepoint, and the records that fail are moved to ``dead-letter.jsonl`` with
  the error (``dead`` counts them) instead of blocking the queue.

Exactly once: a batch is removed from the outbox only after its transaction
committed. A commit whose acknowledgement was lost, or segments replayed after
a crash, are written again, and the writes (``apply``) are idempotent on
natural keys, so the database ends with every record once.

Start and stop: a new outbox finds the segments a previous process left and
writes them first (a torn last line, from a crash in the middle of a write, is
dead-lettered). :meth:`close` gives the writer ``drain_timeout`` seconds to
finish (none while writes are failing), then spills whatever is still in
memory, so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeAlias, TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from hotline.store.db import Conn, Pool, is_data_error

__all__ = ["ApplyBatch", "Outbox", "OutboxClosed"]

log = structlog.get_logger("hotline.store.outbox")

_T = TypeVar("_T")
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

ApplyBatch = Callable[[Conn, Sequence[dict[str, Any]]], Awaitable[None]]
"""Writes records on a connection, inside the outbox's transaction; must be idempotent."""

_SEGMENT_PREFIX: Final = "spill-"
_FIRST_SEGMENT: Final = 1_000_000_000
_DEAD_LETTER: Final = "dead-letter.jsonl"


class OutboxClosed(RuntimeError):
    """A record was put after :meth:`Outbox.close`."""


@dataclass(slots=True)
class _Batch:
    records: list[dict[str, Any]]
    from_memory: bool
    end_offset: int = 0
    unreadable: list[tuple[bytes, str]] = field(default_factory=list)


def _segment_number(path: Path) -> int:
    return int(path.stem.removeprefix(_SEGMENT_PREFIX))


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _is_poison(exc: BaseException) -> bool:
    """Retrying cannot help: the data is refused, or the record is malformed."""
    return is_data_error(exc) or isinstance(exc, KeyError | TypeError | ValueError)


class Outbox:
    """See the module docstring."""

    def __init__(
        self,
        pool: Pool,
        apply: ApplyBatch,
        directory: str | Path,
        *,
        max_memory: int = 10_000,
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
        self.batch_size = batch_size
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.write_timeout = write_timeout
        self.written = 0
        self.spilled = 0
        self.dead = 0
        self.retries = 0
        self.batches = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.max_memory_seen = 0
        self._memory: deque[dict[str, Any]] = deque()
        self._segments: deque[Path] = deque()
        self._file_pending = 0
        self._spilling = False
        self._tail_fd: int | None = None
        self._tail_size = 0
        self._reader: BinaryIO | None = None
        self._read_offset = 0
        self._fsync_handle: asyncio.TimerHandle | None = None
        self._fsync_tasks: set[asyncio.Task[None]] = set()
        self._dir_dirty = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._recover()

    # -- what others read ---------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Records accepted and not yet written (memory and spill files)."""
        return len(self._memory) + self._file_pending

    @property
    def in_memory(self) -> int:
        """Records waiting in memory."""
        return len(self._memory)

    @property
    def on_disk(self) -> int:
        """Records waiting in spill files."""
        return self._file_pending

    @property
    def spilling(self) -> bool:
        """New records go to the spill files (memory full, or the database unreachable)."""
        return self._spilling

    def stats(self) -> dict[str, Any]:
        """Figures for metrics and health."""
        return {
            "backlog": self.backlog,
            "in_memory": self.in_memory,
            "on_disk": self.on_disk,
            "spilling": self._spilling,
            "writer_running": self._task is not None and not self._task.done(),
            "written": self.written,
            "batches": self.batches,
            "spilled": self.spilled,
            "dead": self.dead,
            "retries": self.retries,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    # -- producers ----------------------------------------------------------------------------

    def put(self, record: dict[str, Any]) -> None:
        """Accept a record; never blocks on the database (see the module docstring)."""
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        if not self._spilling and len(self._memory) < self.max_memory:
            self._memory.append(record)
            if len(self._memory) > self.max_memory_seen:
                self.max_memory_seen = len(self._memory)
        else:
            self._spilling = True
            self._append(_encode(record))
            self._file_pending += 1
            self.spilled += 1
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-writer")

    async def flush(self, timeout: float) -> bool:
        """Wait until everything accepted so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.backlog:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
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
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("outbox.writer_failed")
        self._closed = True
        if self._memory:
            self._spill_memory()
        if self._fsync_handle is not None:
            self._fsync_handle.cancel()
        for task in list(self._fsync_tasks):
            with contextlib.suppress(OSError):
                await task
        if self._tail_fd is not None:
            os.fsync(self._tail_fd)
            os.close(self._tail_fd)
            self._tail_fd = None
        self._fsync_directory()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- the writer ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Write batches until cancelled; see the module docstring."""
        delay = self.retry_initial
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            refused: list[tuple[dict[str, Any], str]] = []
            try:
                try:
                    await self._write(batch.records)
                except Exception as exc:
                    if not _is_poison(exc):
                        raise
                    refused = await self._write_each(batch.records)
            except Exception as exc:
                self._failed(exc)
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_initial
            self._done(batch, refused)

    async def _write(self, records: Sequence[dict[str, Any]]) -> None:
        async def body(conn: _Conn) -> None:
            await self.apply(conn, records)

        await self._in_transaction(body)

    async def _write_each(
        self, records: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], str]]:
        """Write one record per savepoint; returns the records refused, with the error."""

        async def body(conn: _Conn) -> list[tuple[dict[str, Any], str]]:
            refused: list[tuple[dict[str, Any], str]] = []
            for record in records:
                try:
                    async with conn.transaction():
                        await self.apply(conn, [record])
                except Exception as exc:
                    if not _is_poison(exc):
                        raise
                    refused.append((record, f"{type(exc).__name__}: {exc}"))
            return refused

        return await self._in_transaction(body)

    async def _in_transaction(self, body: Callable[[_Conn], Awaitable[_T]]) -> _T:
        """Run ``body`` in one transaction, all within ``write_timeout``.

        On anything but refused data the connection is terminated, not rolled
        back: on a stalled or broken link a ROLLBACK would wait too (the server
        rolls back when the connection goes).
        """
        conn: _Conn | None = None
        reusable = False
        try:
            async with asyncio.timeout(self.write_timeout):
                conn = await self.pool.acquire()
                transaction = conn.transaction()
                await transaction.start()
                try:
                    result = await body(conn)
                except Exception as exc:
                    if _is_poison(exc):
                        await transaction.rollback()
                        reusable = True
                    raise
                await transaction.commit()
                reusable = True
                return result
        finally:
            if conn is not None:
                if not reusable:
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                await self.pool.release(conn, timeout=self.write_timeout)

    def _failed(self, exc: BaseException) -> None:
        self.retries += 1
        self.last_error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        self.last_error_at = time.time()
        if self.retries == 1 or self.retries % 50 == 0:
            log.warning("outbox.write_failed", error=self.last_error, backlog=self.backlog)
        self._spilling = True
        if self._memory:
            self._spill_memory()

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay * random.uniform(0.5, 1.0))

    def _done(self, batch: _Batch, refused: list[tuple[dict[str, Any], str]]) -> None:
        """The batch is committed: remove it, and dead-letter what could not be written."""
        count = len(batch.records)
        for record, error in refused:
            self._write_dead(_encode({"error": error, "record": record}))
        for line, error in batch.unreadable:
            text = line.decode("utf-8", "replace").rstrip("\n")
            self._write_dead(_encode({"error": error, "line": text}))
        if batch.from_memory:
            for _ in range(count):
                self._memory.popleft()
        else:
            self._read_offset = batch.end_offset
            self._file_pending -= count + len(batch.unreadable)
            self._release_segments()
        if not self._memory and not self._segments:
            self._spilling = False
        self.written += count - len(refused)
        self.batches += 1
        if self.last_error is not None and self.retries:
            log.info("outbox.recovered", backlog=self.backlog)
            self.last_error = None
        self._progress.set()

    # -- memory and files ---------------------------------------------------------------------

    def _next_batch(self) -> _Batch | None:
        if self._memory:
            return _Batch(list(islice(self._memory, self.batch_size)), from_memory=True)
        while self._segments:
            batch = self._read_batch()
            if batch is not None:
                return batch
            if not self._release_segments():
                return None
        return None

    def _read_batch(self) -> _Batch | None:
        """The next lines of the oldest segment, or None when it has none (yet)."""
        segment = self._segments[0]
        if self._reader is None:
            self._reader = segment.open("rb")
            self._read_offset = 0
        reader = self._reader
        reader.seek(self._read_offset)
        records: list[dict[str, Any]] = []
        offset = self._read_offset
        unreadable: list[tuple[bytes, str]] = []
        is_tail = self._tail_fd is not None and len(self._segments) == 1
        while len(records) < self.batch_size:
            line = reader.readline()
            if not line:
                break
            if not line.endswith(b"\n"):
                if is_tail:
                    break
                unreadable.append((line, "torn line at the end of a spill file"))
                offset += len(line)
                continue
            offset += len(line)
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise TypeError("a record must be a JSON object")
            except (ValueError, TypeError) as exc:
                unreadable.append((line, f"unreadable spill line: {exc}"))
                continue
            records.append(record)
        if not records and not unreadable:
            return None
        return _Batch(records, from_memory=False, end_offset=offset, unreadable=unreadable)

    def _release_segments(self) -> bool:
        """Delete the oldest segment if it is fully written; True if one was deleted."""
        if not self._segments:
            return False
        segment = self._segments[0]
        is_tail = self._tail_fd is not None and len(self._segments) == 1
        size = self._tail_size if is_tail else segment.stat().st_size
        if self._read_offset < size:
            return False
        if is_tail and self._memory:
            return False
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._read_offset = 0
        self._segments.popleft()
        if is_tail:
            self._close_tail()
        segment.unlink(missing_ok=True)
        self._dir_dirty = True
        if not self._segments:
            self._spilling = False
            self._file_pending = 0
        return True

    def _append(self, line: bytes) -> None:
        if self._tail_fd is None or self._tail_size >= self.segment_bytes:
            self._open_tail()
        assert self._tail_fd is not None
        _write_all(self._tail_fd, line)
        self._tail_size += len(line)
        self._schedule_fsync()

    def _open_tail(self) -> None:
        if self._tail_fd is not None:
            self._close_tail()
        number = _segment_number(self._segments[-1]) + 1 if self._segments else _FIRST_SEGMENT
        path = self.directory / f"{_SEGMENT_PREFIX}{number:012d}.jsonl"
        self._tail_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._tail_size = 0
        self._segments.append(path)
        self._dir_dirty = True

    def _close_tail(self) -> None:
        if self._tail_fd is not None:
            os.fsync(self._tail_fd)
            os.close(self._tail_fd)
            self._tail_fd = None
            self._tail_size = 0

    def _spill_memory(self) -> None:
        """Write the records in memory to a new segment before all others, and fsync it."""
        number = _segment_number(self._segments[0]) - 1 if self._segments else _FIRST_SEGMENT
        path = self.directory / f"{_SEGMENT_PREFIX}{number:012d}.jsonl"
        data = b"".join(_encode(record) for record in self._memory)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._read_offset = 0
        self._segments.appendleft(path)
        self._file_pending += len(self._memory)
        self.spilled += len(self._memory)
        self._memory.clear()
        self._dir_dirty = True
        self._fsync_directory()

    def _schedule_fsync(self) -> None:
        if self._fsync_handle is None:
            loop = asyncio.get_running_loop()
            self._fsync_handle = loop.call_later(self.fsync_interval, self._start_fsync)

    def _start_fsync(self) -> None:
        self._fsync_handle = None
        if self._tail_fd is None:
            return
        duplicate = os.dup(self._tail_fd)
        task = asyncio.create_task(self._fsync(duplicate), name="outbox-fsync")
        self._fsync_tasks.add(task)
        task.add_done_callback(self._fsync_tasks.discard)

    async def _fsync(self, fd: int) -> None:
        try:
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        if self._dir_dirty:
            self._fsync_directory()

    def _fsync_directory(self) -> None:
        self._dir_dirty = False
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _recover(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = sorted(self.directory.glob(f"{_SEGMENT_PREFIX}*.jsonl"), key=_segment_number)
        for segment in segments:
            data = segment.read_bytes()
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            self._file_pending += lines
        self._segments.extend(segments)
        self._spilling = bool(segments)
        if segments:
            log.info("outbox.replaying", segments=len(segments), records=self._file_pending)

    def _write_dead(self, entry: bytes) -> None:
        self.dead += 1
        log.error("outbox.dead_letter", entry=entry.decode("utf-8", "replace")[:500])
        fd = os.open(self.directory / _DEAD_LETTER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(fd, entry)
            os.fsync(fd)
        finally:
            os.close(fd)
