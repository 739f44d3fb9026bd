"""Ticket and callback rules that need no database: pure functions of their inputs.

Time is always an argument, so tests need no clock and no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "CALLBACK_RESULTS",
    "CATEGORIES",
    "DISPATCH_PARTIES",
    "OPEN_STATUSES",
    "STATUSES",
    "CallbackDecision",
    "RetryPolicy",
    "next_callback",
    "repair_on_time",
    "reply_due",
    "should_attach",
    "timeliness_rate",
]

CATEGORIES: Final = ("consultation", "complaint", "repair", "suggestion", "other")
OPEN_STATUSES: Final = ("open", "in_progress", "dispatched")
"""A ticket in one of these is open: a new call from its customer may land on it."""
STATUSES: Final = (*OPEN_STATUSES, "resolved", "closed")
DISPATCH_PARTIES: Final = (
    "in_house",
    "developer_warranty",
    "equipment_vendor",
    "tenant_contractor",
)
"""Who a repair is dispatched to: in-house maintenance, the developer's warranty,
an equipment vendor, or the tenant's own contractor."""
CALLBACK_RESULTS: Final = ("answered", "no_answer", "busy", "unavailable", "failed")
_DAY: Final = 86_400.0


def should_attach(rule: str, last_activity: float, now: float, attach_days: float) -> bool:
    """Whether a new call goes on the caller's open ticket, last active at ``last_activity``.

    ``rule`` is ``"open"`` (always), ``"recent"`` (when the ticket's last call or
    opening is at most ``attach_days`` days before ``now``) or ``"never"``.
    """
    if rule == "open":
        return True
    if rule == "recent":
        return now - last_activity <= attach_days * _DAY
    if rule == "never":
        return False
    raise ValueError(f"unknown attach rule {rule!r}")


def reply_due(category: str, opened_at: datetime, complaint_reply_hours: float) -> datetime | None:
    """The committed reply time of a ticket: complaints only, ``complaint_reply_hours`` after
    it was opened."""
    if category != "complaint":
        return None
    return opened_at + timedelta(hours=complaint_reply_hours)


def repair_on_time(
    dispatched_at: datetime, due_at: datetime | None, completed_at: datetime | None
) -> bool | None:
    """Whether a dispatched repair was completed by its due time.

    ``None`` when it is not completed yet or had no due time (it counts in
    neither the on-time nor the late figures). A completion before the dispatch
    is impossible and raises ``ValueError``.
    """
    if completed_at is None or due_at is None:
        return None
    if completed_at < dispatched_at:
        raise ValueError("a repair cannot be completed before it was dispatched")
    return completed_at <= due_at


def timeliness_rate(on_time: int, late: int) -> float | None:
    """The repair timeliness rate: on time ÷ (on time + late); ``None`` with no repairs."""
    total = on_time + late
    return on_time / total if total else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How callbacks are retried.

    After an unanswered attempt number *n*, the next is ``delays[n - 1]`` seconds
    later (the last delay repeats); after a busy line, ``busy_delay`` seconds.
    A callback is given up after ``max_attempts`` attempts.
    """

    max_attempts: int = 3
    delays: tuple[float, ...] = field(default=(900.0, 3600.0, 14_400.0))
    busy_delay: float = 300.0


@dataclass(frozen=True, slots=True)
class CallbackDecision:
    """What follows an attempt: ``status`` (``scheduled``, ``done`` or ``failed``) and,
    when scheduled, the next ``due_at``."""

    status: str
    due_at: datetime | None


def next_callback(
    result: str, attempts: int, max_attempts: int, at: datetime, policy: RetryPolicy
) -> CallbackDecision:
    """The callback's state after attempt number ``attempts`` ended with ``result`` at ``at``."""
    if result not in CALLBACK_RESULTS:
        raise ValueError(f"unknown callback result {result!r}")
    if result == "answered":
        return CallbackDecision("done", None)
    if attempts >= max_attempts:
        return CallbackDecision("failed", None)
    if result == "busy":
        delay = policy.busy_delay
    else:
        delay = policy.delays[min(attempts, len(policy.delays)) - 1] if policy.delays else 0.0
    return CallbackDecision("scheduled", at + timedelta(seconds=delay))
