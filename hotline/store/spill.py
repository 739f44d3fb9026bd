"""The outbox's disk side: the spill log (JSON-lines segments) and the dead letters.

Theory of operation
-------------------
The spill log is a directory of append-only segments ``spill-<n>.jsonl``, read
oldest (smallest ``n``) first, one JSON object per line. The newest segment is
the *tail*:

- :meth:`SpillLog.append` adds complete lines to the tail with ``write(2)``
  (a new tail every ``segment_bytes``). When a write fails (``ENOSPC``, ``EIO``)
  the tail is cut back to its previous size, so a segment never holds a partial
  line, and the error is raised: the caller keeps the records;
- :meth:`SpillLog.prepend` writes a batch as a new segment *before* all others
  and fsyncs it, in a worker thread (what memory held when the database went
  away: older than anything on disk);
- :meth:`SpillLog.read` returns the next lines of the oldest segment and
  :meth:`SpillLog.consume` moves past them once they are in the database,
  deleting each segment that is fully consumed (the tail only when the caller
  says nothing older waits in memory).

fsync never runs on the event loop: the tail is fsynced in a worker thread
``fsync_interval`` after an append, a rotated tail and the directory likewise.

Replay: a new :class:`SpillLog` counts the lines the segments of a previous
process hold; :meth:`SpillLog.repair` (run by the writer before it reads) cuts
a torn last line (a crash in the middle of a write) off each segment after
writing it to the dead letters, so the rest is replayed and the torn bytes are
reported, never silently dropped. Where the dead letter cannot be written the
segment is left as it is and the reader dead-letters the torn line later.

:class:`DeadLetters` appends entries to ``dead-letter.jsonl`` (fsynced, in a
thread). An entry it cannot write stays in memory (and in the error log) and is
written with the next one; a failing dead-letter write never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import structlog

__all__ = ["TORN", "Chunk", "DeadLetters", "SpillLog", "encode"]

log = structlog.get_logger("hotline.store.outbox")

TORN: Final = "torn line at the end of a spill file"
"""The error recorded with a torn line's bytes in the dead letters."""

_PREFIX: Final = "spill-"
_FIRST: Final = 1_000_000_000
_DEAD_LETTER: Final = "dead-letter.jsonl"


def encode(record: dict[str, Any]) -> bytes:
    """One spill or dead-letter line."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _number(path: Path) -> int:
    return int(path.stem.removeprefix(_PREFIX))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class Chunk:
    """Lines read from the oldest segment: the records, the unreadable lines, the end offset."""

    records: list[dict[str, Any]]
    unreadable: list[tuple[bytes, str]] = field(default_factory=list)
    end: int = 0

    @property
    def lines(self) -> int:
        """Lines this chunk covers."""
        return len(self.records) + len(self.unreadable)


class DeadLetters:
    """``dead-letter.jsonl``: what could never be written, with the reason."""

    def __init__(self, directory: Path) -> None:
        """Entries go to ``directory/dead-letter.jsonl``."""
        self.path = directory / _DEAD_LETTER
        self.unwritten: list[bytes] = []
        self.error: str | None = None
        self._retry_at = 0.0
        self._delay = 0.05
        self._inflight: asyncio.Future[None] | None = None

    async def add(self, entries: Iterable[dict[str, Any]]) -> None:
        """Log and append ``entries``, with any written earlier that failed; never raises."""
        for entry in entries:
            line = encode(entry)
            log.error("outbox.dead_letter", entry=line.decode("utf-8", "replace")[:500])
            self.unwritten.append(line)
        await self.retry(force=True)

    async def retry(self, *, force: bool = False) -> None:
        """Write the entries still in memory, if any (after a back-off unless ``force``);
        never raises."""
        if not self.unwritten or (not force and time.monotonic() < self._retry_at):
            return
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._write_unwritten())
        task = self._inflight
        try:
            await asyncio.shield(task)  # a cancelled caller must not leave its thread writing
        finally:
            if task.done():
                self._inflight = None

    async def _write_unwritten(self) -> None:
        count = len(self.unwritten)
        try:
            await asyncio.to_thread(self._append, b"".join(self.unwritten[:count]))
        except OSError as exc:
            if self.error is None:
                log.warning(
                    "outbox.dead_letter_unwritten", error=str(exc), held=len(self.unwritten)
                )
            self.error = f"{type(exc).__name__}: {exc}"
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, 5.0)
            return
        del self.unwritten[:count]
        self.error = None
        self._delay = 0.05

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


class SpillLog:
    """See the module docstring."""

    def __init__(self, directory: Path, *, segment_bytes: int, fsync_interval: float) -> None:
        """Use ``directory`` (created if missing); count the lines left by a previous process."""
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.segments: deque[Path] = deque()
        self._lines: dict[Path, int] = {}  # lines not yet consumed, per segment
        self.fsync_error: str | None = None
        """Why the last fsync failed, until one succeeds."""
        self._tail: Path | None = None
        self._tail_fd: int | None = None
        self._tail_size = 0
        self._reader: BinaryIO | None = None
        self._offset = 0
        self._fsync_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dir_dirty = False
        directory.mkdir(parents=True, exist_ok=True)
        found = sorted(directory.glob(f"{_PREFIX}*.jsonl"), key=_number)
        for segment in found:
            data = segment.read_bytes()
            torn = 0 if data.endswith(b"\n") or not data else 1
            self._lines[segment] = data.count(b"\n") + torn
        self.segments.extend(found)

    # -- replay -----------------------------------------------------------------------------

    async def repair(self, dead: DeadLetters) -> int:
        """Cut the torn last line off every segment a previous process left (reporting its
        bytes as a dead letter first); returns how many were cut."""
        repaired = 0
        for segment in [s for s in self.segments if s != self._tail]:
            torn = await asyncio.to_thread(_torn_tail, segment)
            if torn is None:
                continue
            size, data = torn
            await dead.add([{"error": TORN, "line": data.decode("utf-8", "replace")}])
            if dead.unwritten:
                continue  # kept as it is: the reader dead-letters it again later
            await asyncio.to_thread(_truncate, segment, size)
            self._lines[segment] -= 1
            repaired += 1
            log.warning("outbox.torn_line_repaired", segment=segment.name, bytes=len(data))
        return repaired

    # -- writing ----------------------------------------------------------------------------

    def append(self, data: bytes, lines: int) -> None:
        """Append complete lines to the tail; on OSError nothing was added (see the module
        docstring) and the error is raised."""
        if self._tail_fd is None or self._tail_size >= self.segment_bytes:
            self._open_tail()
        fd = self._tail_fd
        assert fd is not None
        try:
            _write_all(fd, data)
        except OSError:
            try:
                os.ftruncate(fd, self._tail_size)
            except OSError:
                # The partial line stays: end this tail, so nothing is glued to it; the
                # reader dead-letters the fragment as one more line.
                self._lines[self.segments[-1]] += 1
                self._close_tail()
            raise
        self._tail_size += len(data)
        self._lines[self.segments[-1]] += lines
        self._schedule_fsync()

    async def prepend(self, data: bytes, lines: int) -> None:
        """Write ``data`` as a new segment before all others and fsync it (in a thread);
        on OSError nothing was added and the error is raised."""
        number = _number(self.segments[0]) - 1 if self.segments else _FIRST
        path = self.directory / f"{_PREFIX}{number:012d}.jsonl"
        # Reserved now, so that a tail opened meanwhile is numbered after it. Nothing
        # has been read when memory is spilled (memory is written first), so the
        # reader starts again at the new first segment.
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._offset = 0
        self.segments.appendleft(path)
        self._lines[path] = 0
        try:
            await asyncio.to_thread(_write_new, path, data)
        except BaseException:
            self.segments.remove(path)
            del self._lines[path]
            raise
        self._lines[path] = lines

    def _open_tail(self) -> None:
        if self._tail_fd is not None:
            self._close_tail()
        number = _number(self.segments[-1]) + 1 if self.segments else _FIRST
        path = self.directory / f"{_PREFIX}{number:012d}.jsonl"
        self._tail_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._tail = path
        self._tail_size = 0
        self.segments.append(path)
        self._lines[path] = 0
        self._dir_dirty = True

    def _close_tail(self, *, sync: bool = True) -> None:
        """Stop appending to the tail; its fsync and close run in a thread."""
        fd, self._tail_fd, self._tail, self._tail_size = self._tail_fd, None, None, 0
        if fd is not None:
            self._in_thread(_sync_and_close if sync else os.close, fd)

    def _schedule_fsync(self) -> None:
        if self._fsync_handle is None:
            loop = asyncio.get_running_loop()
            self._fsync_handle = loop.call_later(self.fsync_interval, self._sync_tail)

    def _sync_tail(self) -> None:
        self._fsync_handle = None
        if self._tail_fd is not None:
            self._in_thread(_sync_and_close, os.dup(self._tail_fd))

    def _in_thread(self, function: Any, fd: int) -> None:
        """Run ``function(fd)`` (an fsync and close) in a thread, then the directory's fsync."""

        async def run() -> None:
            try:
                await asyncio.to_thread(function, fd)
                if self._dir_dirty:
                    self._dir_dirty = False
                    await asyncio.to_thread(_fsync_path, self.directory)
            except OSError as exc:
                if self.fsync_error is None:
                    log.error("outbox.fsync_failed", error=f"{type(exc).__name__}: {exc}")
                self.fsync_error = f"{type(exc).__name__}: {exc}"
            else:
                self.fsync_error = None

        task = asyncio.get_running_loop().create_task(run(), name="outbox-fsync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reading ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Lines on disk not yet consumed."""
        return sum(self._lines.values())

    @property
    def fully_read(self) -> bool:
        """Nothing waits on disk: every segment was consumed and deleted."""
        return not self.segments

    def read(self, limit: int) -> Chunk | None:
        """Up to ``limit`` records from the oldest segment, or None when it has no more."""
        if not self.segments:
            return None
        segment = self.segments[0]
        if self._reader is None:
            self._reader = segment.open("rb")
            self._offset = 0
        reader = self._reader
        reader.seek(self._offset)
        chunk = Chunk([], end=self._offset)
        while len(chunk.records) < limit:
            line = reader.readline()
            if not line:
                break
            if not line.endswith(b"\n"):
                if segment == self._tail:
                    break
                chunk.unreadable.append((line, TORN))
                chunk.end += len(line)
                continue
            chunk.end += len(line)
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise TypeError("a record must be a JSON object")
            except (ValueError, TypeError) as exc:
                chunk.unreadable.append((line, f"unreadable spill line: {exc}"))
                continue
            chunk.records.append(record)
        return chunk if chunk.lines else None

    def consume(self, chunk: Chunk) -> None:
        """The chunk's records are in the database: move past them."""
        self._offset = chunk.end
        self._lines[self.segments[0]] -= chunk.lines

    def release(self, *, tail: bool) -> bool:
        """Delete the oldest segment if fully consumed (the tail only if ``tail``); True if
        one was deleted."""
        if not self.segments:
            return False
        segment = self.segments[0]
        is_tail = segment == self._tail
        if is_tail and not tail:
            return False
        size = self._tail_size if is_tail else segment.stat().st_size
        if self._offset < size:
            return False
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._offset = 0
        self.segments.popleft()
        self._lines.pop(segment, None)
        if is_tail:
            self._close_tail(sync=False)
        segment.unlink(missing_ok=True)
        self._dir_dirty = True
        return True

    def forget_missing(self) -> int:
        """Drop the segments whose file is gone (deleted by hand); returns the lines lost."""
        lost = 0
        for segment in [s for s in self.segments if s != self._tail and not s.exists()]:
            if segment == self.segments[0] and self._reader is not None:
                self._reader.close()
                self._reader = None
                self._offset = 0
            self.segments.remove(segment)
            lost += self._lines.pop(segment, 0)
            log.error("outbox.segment_missing", segment=segment.name)
        return lost

    async def close(self) -> None:
        """fsync and close everything (in threads)."""
        if self._fsync_handle is not None:
            self._fsync_handle.cancel()
            self._fsync_handle = None
        self._close_tail()
        for task in list(self._tasks):
            await task
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_fsync_path, self.directory)
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    _fsync_path(path.parent)


def _torn_tail(path: Path) -> tuple[int, bytes] | None:
    """(the size to keep, the torn bytes) when the file does not end with a newline."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    keep = data.rfind(b"\n") + 1
    return keep, data[keep:]


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
