"""The end-to-end helpers' old home: everything now lives in :mod:`tests.support`."""

from __future__ import annotations

from tests.support import (
    MEASURED_MAX_WAIT,
    MEASURED_QUEUES,
    MEASURED_RING_TIMEOUT,
    MEASURED_WRAP_UP,
    OUTCOMES,
    QUEUES,
    RING_TIMEOUT,
    TIME_SCALE,
    WRAP_UP,
    call_centre,
    devices,
    ground_truth_calls,
    measured_call_centre,
    wait_settled,
)

__all__ = [
    "MEASURED_MAX_WAIT",
    "MEASURED_QUEUES",
    "MEASURED_RING_TIMEOUT",
    "MEASURED_WRAP_UP",
    "OUTCOMES",
    "QUEUES",
    "RING_TIMEOUT",
    "TIME_SCALE",
    "WRAP_UP",
    "call_centre",
    "devices",
    "ground_truth_calls",
    "measured_call_centre",
    "wait_settled",
]
