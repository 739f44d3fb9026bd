"""Injected time: the system clock, a scaled scenario clock, or a virtual clock.

Every figure Hotline measures is epoch seconds (the unit of AMI ``Timestamp``
headers). Whoever waits for a moment of the clock's time (the sim's flows, the
engine's deadlines, the store's periodic tasks) schedules through the clock,
never through the event loop directly: :meth:`Clock.call_at`,
:meth:`Clock.call_later` and :meth:`Clock.sleep`.

* :class:`SystemClock`: ``time.time()``; production.
* :class:`ScaledClock`: runs ``scale`` times faster than the wall, so a scenario
  with minutes of ringing and talking runs in seconds (``hotline bench e2e``, the
  demo). The sim's ``Timestamp`` headers, its ground truth and the engine's timers
  all read the same scaled time, so they still compare exactly, but every wall
  delay of a loaded machine becomes ``scale`` times more scenario time.
* :class:`VirtualClock`: scenario time that moves only when the process is idle
  (the tests). Only the clock is virtual; the event loop's own time stays real,
  so socket, database and HTTP timeouts keep working. A loop made by
  :func:`virtual_time_loop` polls its selector without blocking; when nothing is
  ready and no socket is readable, every in-process exchange (the sim and the
  service talk over loopback, whose writes are readable at once) has come to
  rest, and the clock jumps to its next deadline and runs what was due then.
  Results no longer depend on how fast the machine is. External processes
  (PostgreSQL, Redis) still answer in real time while virtual time may move on.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import selectors
import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Clock",
    "ScaledClock",
    "SystemClock",
    "VirtualClock",
    "virtual_clock_of",
    "virtual_time_loop",
]


class Clock(Protocol):
    """What the engine and the sim need to know about time."""

    def now(self) -> float:
        """Epoch seconds on this clock."""
        ...

    def wall_delay(self, seconds: float) -> float:
        """Real (event-loop) seconds that ``seconds`` of this clock's time take."""
        ...

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` on the running loop once this clock reads ``when``."""
        ...

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` on the running loop after ``delay`` seconds of this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...


class _LoopScheduled:
    """Scheduling on the event loop for clocks with a fixed wall rate."""

    def now(self) -> float:
        """Epoch seconds (overridden)."""
        raise NotImplementedError

    def wall_delay(self, seconds: float) -> float:
        """Wall seconds (overridden)."""
        raise NotImplementedError

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """``loop.call_later`` for the wall time until ``when``."""
        return self.call_later(when - self.now(), callback, *args)

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """``loop.call_later`` for the wall time ``delay`` takes."""
        return asyncio.get_running_loop().call_later(self.wall_delay(delay), callback, *args)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` for the wall time ``seconds`` takes."""
        await asyncio.sleep(self.wall_delay(seconds))


class SystemClock(_LoopScheduled):
    """The real clock: ``time.time()``, one clock second per wall second."""

    def now(self) -> float:
        """Epoch seconds."""
        return time.time()

    def wall_delay(self, seconds: float) -> float:
        """The same number of seconds (never negative)."""
        return max(seconds, 0.0)


class ScaledClock(_LoopScheduled):
    """A clock that starts at ``epoch`` and runs ``scale`` times faster than the wall.

    Within one process it counts from ``time.monotonic()``. Two processes share a
    clock by giving both the same ``epoch`` and ``anchor``: the wall time
    (``time.time()``) at which the clock reads ``epoch``.
    """

    def __init__(
        self, scale: float = 1.0, epoch: float | None = None, *, anchor: float | None = None
    ) -> None:
        """``epoch`` defaults to the current time; ``scale`` must be positive."""
        if scale <= 0:
            raise ValueError(f"time scale must be positive, got {scale}")
        self.scale = scale
        self.epoch = time.time() if epoch is None else epoch
        self.anchor = anchor
        self._origin = time.monotonic()

    def now(self) -> float:
        """Epoch seconds on the scaled clock."""
        if self.anchor is not None:
            return self.epoch + (time.time() - self.anchor) * self.scale
        return self.epoch + (time.monotonic() - self._origin) * self.scale

    def wall_delay(self, seconds: float) -> float:
        """Wall seconds for ``seconds`` of scaled time."""
        return max(seconds, 0.0) / self.scale

    def __repr__(self) -> str:
        """Scale and epoch."""
        return f"ScaledClock(scale={self.scale}, epoch={self.epoch:.6f})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class VirtualClock:
    """Scenario time that moves only when told to, or when its loop is idle.

    It reads ``epoch`` (default: the current time) until :meth:`advance` (or,
    on a :func:`virtual_time_loop`, an idle loop) moves it to the next deadline.
    Handles it returns are :class:`asyncio.TimerHandle` objects whose ``when()``
    is clock time; cancelling one is as cheap as on the loop.
    """

    def __init__(self, epoch: float | None = None) -> None:
        """Start at ``epoch`` (default: the current wall time)."""
        self.epoch = time.time() if epoch is None else epoch
        self._now = self.epoch
        self._timers: list[tuple[float, int, asyncio.TimerHandle, asyncio.AbstractEventLoop]] = []
        self._order = itertools.count()
        self._holds = 0
        self.advances = 0
        """How many times the clock has jumped to a deadline."""

    def now(self) -> float:
        """Epoch seconds on the virtual clock."""
        return self._now

    def wall_delay(self, seconds: float) -> float:  # noqa: ARG002 (the Clock protocol's signature)
        """No wall time corresponds to virtual time: always 0 (schedule with :meth:`call_at`)."""
        return 0.0

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` once the clock reads ``when`` (at once if it already does)."""
        loop = asyncio.get_running_loop()
        handle = asyncio.TimerHandle(max(when, self._now), callback, args, loop)
        heapq.heappush(self._timers, (handle.when(), next(self._order), handle, loop))
        return handle

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds of virtual time."""
        return self.call_at(self._now + max(delay, 0.0), callback, *args)

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of virtual time."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handle = self.call_later(seconds, _resolve, future)
        try:
            await future
        finally:
            handle.cancel()

    def next_deadline(self) -> float | None:
        """The earliest moment a live timer waits for, if any."""
        timers = self._timers
        while timers and timers[0][2].cancelled():
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    @property
    def held(self) -> bool:
        """Whether :meth:`hold` keeps the clock from moving on its own."""
        return self._holds > 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep an idle loop from moving the clock while inside (say, while waiting only for
        PostgreSQL): nothing due later fires meanwhile."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1

    def advance(self) -> bool:
        """Jump to the next deadline and make every timer due then ready on its loop.

        Returns ``False`` (and does nothing) when no timer is pending.
        """
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self._now = max(self._now, deadline)
        self.advances += 1
        timers = self._timers
        while timers and timers[0][0] <= self._now:
            _, _, handle, loop = heapq.heappop(timers)
            if not handle.cancelled():
                loop.call_soon(_run_unless_cancelled, handle)
        return True

    def __repr__(self) -> str:
        """Current time and pending timers."""
        return f"VirtualClock(now={self._now:.6f}, timers={len(self._timers)})"


def _run_unless_cancelled(handle: asyncio.TimerHandle) -> None:
    # Cancelled after it was made ready (by an earlier callback of the same batch).
    if not handle.cancelled():
        handle._run()  # its own runner keeps the context and reports errors


_TCP_INFO_SIZE = 216
"""Enough of ``struct tcp_info`` (Linux) for the fields below."""
_BYTES_RECEIVED, _NOTSENT_BYTES, _BYTES_SENT, _BYTES_RETRANS = 128, 144, 200, 208


@dataclass(frozen=True, slots=True)
class _Tcp:
    """A connected TCP socket the loop watches: its family and both addresses."""

    family: int
    local: Any
    peer: Any


class _IdleSelector(selectors.BaseSelector):
    """A selector that moves a :class:`VirtualClock` whenever the loop would block."""

    def __init__(self, clock: VirtualClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock
        self._tcp: dict[int, _Tcp | None] = {}
        self._check_tcp = sys.platform == "linux" and hasattr(socket, "TCP_INFO")

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """As the wrapped selector."""
        key = self._inner.register(fileobj, events, data)
        self._tcp.pop(key.fd, None)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        """As the wrapped selector."""
        key = self._inner.unregister(fileobj)
        self._tcp.pop(key.fd, None)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """As the wrapped selector."""
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Ready events; when there are none and the loop would wait, move the clock instead.

        ``timeout`` is 0 when the loop has callbacks ready, else the wall time to its
        next (real) timer, or ``None``. Real timers do not hold the virtual clock back:
        they belong to things outside the simulated world (keepalives, I/O timeouts).
        """
        if timeout == 0:
            return self._inner.select(0)
        clock = self._clock
        if clock.held or clock.next_deadline() is None:
            return self._inner.select(timeout)
        if self._in_flight():
            # Written by one end of an in-process connection, not yet readable at the
            # other (loopback delivery deferred to the kernel's softirq thread): not idle.
            return self._inner.select(0.0005 if timeout is None else min(timeout, 0.0005))
        events = self._inner.select(0)
        if events:
            return events
        clock.advance()
        return []

    def _in_flight(self) -> bool:
        """Whether bytes sent on a TCP connection between two of the loop's own sockets
        have not reached the other end's receive queue yet (Linux ``TCP_INFO``)."""
        if not self._check_tcp:
            return False
        counts: dict[tuple[Any, Any], tuple[int, int]] = {}
        for key in list(self._inner.get_map().values()):
            fd = key.fd
            tcp = self._tcp[fd] if fd in self._tcp else self._describe(fd)
            if tcp is None:
                continue
            sock = socket.socket(tcp.family, socket.SOCK_STREAM, 0, fileno=fd)
            try:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
            except OSError:
                continue
            finally:
                sock.detach()
            if len(info) < _TCP_INFO_SIZE:
                self._check_tcp = False  # an old kernel: trust loopback delivery
                return False
            (notsent,) = struct.unpack_from("I", info, _NOTSENT_BYTES)
            if notsent:
                return True
            (received,) = struct.unpack_from("Q", info, _BYTES_RECEIVED)
            (sent,) = struct.unpack_from("Q", info, _BYTES_SENT)
            (retransmitted,) = struct.unpack_from("Q", info, _BYTES_RETRANS)
            counts[(tcp.local, tcp.peer)] = (sent - retransmitted, received)
        for (local, peer), (sent, _) in counts.items():
            other = counts.get((peer, local))
            if other is not None and sent > other[1]:
                return True
        return False

    def _describe(self, fd: int) -> _Tcp | None:
        """Remember whether ``fd`` is a connected TCP socket, and its addresses."""
        tcp: _Tcp | None = None
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket (a pipe, an eventfd)
            self._tcp[fd] = None
            return None
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
                tcp = _Tcp(sock.family, sock.getsockname(), sock.getpeername())
        except OSError:  # listening, or not connected (registered again once it is)
            tcp = None
        sock.detach()
        self._tcp[fd] = tcp
        return tcp

    def close(self) -> None:
        """Close the wrapped selector."""
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        """As the wrapped selector."""
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        """As the wrapped selector."""
        return self._inner.get_map()


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VirtualClock] = (
    weakref.WeakKeyDictionary()
)


def virtual_time_loop(clock: VirtualClock | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop that moves ``clock`` (default: a new one) whenever it is idle.

    The loop's own time (``loop.time()``, socket and ``asyncio.timeout`` deadlines)
    stays real; :func:`virtual_clock_of` gives the clock back.
    """
    clock = clock or VirtualClock()
    loop = asyncio.SelectorEventLoop(selector=_IdleSelector(clock))
    _CLOCKS[loop] = clock
    return loop


def virtual_clock_of(loop: asyncio.AbstractEventLoop | None = None) -> VirtualClock | None:
    """The virtual clock ``loop`` (default: the running loop) moves, if it is a
    :func:`virtual_time_loop`."""
    return _CLOCKS.get(loop or asyncio.get_running_loop())
