"""Injected time: the system clock, or a scaled scenario clock shared by the sim and the engine.

Every figure Hotline measures is epoch seconds (the unit of AMI ``Timestamp``
headers). A :class:`ScaledClock` runs ``scale`` times faster than the wall: a
scenario with minutes of ringing and talking then runs in seconds, and the sim's
``Timestamp`` headers, its ground truth and the engine's timers all read the same
scaled time, so they still compare exactly.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    """What the engine and the sim need to know about time."""

    def now(self) -> float:
        """Epoch seconds on this clock."""
        ...

    def wall_delay(self, seconds: float) -> float:
        """Real (event-loop) seconds that ``seconds`` of this clock's time take."""
        ...


class SystemClock:
    """The real clock: ``time.time()``, one clock second per wall second."""

    def now(self) -> float:
        """Epoch seconds."""
        return time.time()

    def wall_delay(self, seconds: float) -> float:
        """The same number of seconds."""
        return seconds


class ScaledClock:
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
