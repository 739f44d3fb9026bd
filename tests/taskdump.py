"""What a hung test was waiting for: every unfinished asyncio task, with its await chain.

pytest-timeout's thread method prints every thread's stack when a test runs past its
timeout, but a wedged event loop shows there only as the loop running some callback.
This plugin's timer fires a few seconds earlier and prints each live task's chain of
awaits (read from another thread: a diagnostic, racy by nature, never an assertion).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from types import CoroutineType, FrameType
from typing import Any

import pytest

EARLY = 5.0
"""Seconds before pytest-timeout's own dump."""

_TIMERS: dict[str, threading.Timer] = {}


def _frame_of(awaitable: Any) -> FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _next_of(awaitable: Any) -> Any:
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, name, None)
        if inner is not None:
            return inner
    return None


def dump_tasks(title: str) -> None:
    """Print every unfinished asyncio task of the process and what it awaits."""
    lines = [f"\n{'+' * 20} asyncio tasks of {title} {'+' * 20}"]
    tasks = [obj for obj in gc.get_objects() if isinstance(obj, asyncio.Task)]
    for task in tasks:
        if task.done():
            continue
        lines.append(f"task {task.get_name()}:")
        awaitable: Any = task.get_coro()
        for _ in range(60):
            if awaitable is None:
                break
            frame = _frame_of(awaitable)
            if frame is not None:
                code = frame.f_code
                lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            elif not isinstance(awaitable, CoroutineType):
                lines.append(f"    awaiting {awaitable!r}"[:300])
            awaitable = _next_of(awaitable)
    print("\n".join(lines), file=sys.stderr, flush=True)


@pytest.hookimpl
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Start the early timer beside pytest-timeout's own (which this leaves to run)."""
    timeout = getattr(settings, "timeout", 0) or 0
    if timeout > 2 * EARLY:
        timer = threading.Timer(timeout - EARLY, dump_tasks, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
        _TIMERS[item.nodeid] = timer


@pytest.hookimpl
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    """Cancel the early timer with pytest-timeout's own."""
    timer = _TIMERS.pop(item.nodeid, None)
    if timer is not None:
        timer.cancel()
