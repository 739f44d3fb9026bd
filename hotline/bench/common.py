"""Helpers shared by the benchmarks: JSON-line output and best-of-N timing."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["best_of", "emit"]


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line (with the Python version) and flush it."""
    record.setdefault("python", platform.python_version())
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


def best_of(rounds: int, run: Callable[[], int]) -> tuple[int, float]:
    """Run ``run`` ``rounds`` times; return its count and the fastest wall time in seconds."""
    best = float("inf")
    count = 0
    for _ in range(rounds):
        started = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - started)
    return count, best
