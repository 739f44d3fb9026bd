"""The pure ticket and callback rules: no database, time as an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hotline.store.rules import (
    CallbackDecision,
    RetryPolicy,
    next_callback,
    repair_on_time,
    reply_due,
    should_attach,
    timeliness_rate,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = 86_400.0


def test_attach_rules() -> None:
    assert should_attach("open", 0.0, 400 * DAY, 7)
    assert should_attach("recent", 10 * DAY, 17 * DAY, 7)
    assert not should_attach("recent", 10 * DAY, 17 * DAY + 1, 7)
    assert not should_attach("never", 100.0, 100.0, 7)
    with pytest.raises(ValueError, match="unknown attach rule"):
        should_attach("sometimes", 0.0, 0.0, 7)


def test_only_complaints_have_a_committed_reply_time() -> None:
    assert reply_due("complaint", T0, 24) == T0 + timedelta(hours=24)
    assert reply_due("complaint", T0, 4.5) == T0 + timedelta(hours=4, minutes=30)
    for category in ("consultation", "repair", "suggestion", "other"):
        assert reply_due(category, T0, 24) is None


def test_repair_on_time() -> None:
    due = T0 + timedelta(hours=48)
    assert repair_on_time(T0, due, due) is True
    assert repair_on_time(T0, due, due - timedelta(hours=1)) is True
    assert repair_on_time(T0, due, due + timedelta(seconds=1)) is False
    assert repair_on_time(T0, due, None) is None
    assert repair_on_time(T0, None, due) is None
    with pytest.raises(ValueError, match="before it was dispatched"):
        repair_on_time(T0, due, T0 - timedelta(minutes=1))


def test_timeliness_rate() -> None:
    assert timeliness_rate(3, 1) == 0.75
    assert timeliness_rate(0, 2) == 0.0
    assert timeliness_rate(0, 0) is None


def test_callback_retries_follow_the_policy() -> None:
    policy = RetryPolicy(max_attempts=4, delays=(60.0, 600.0), busy_delay=30.0)
    assert next_callback("answered", 1, 4, T0, policy) == CallbackDecision("done", None)
    assert next_callback("no_answer", 1, 4, T0, policy) == CallbackDecision(
        "scheduled", T0 + timedelta(seconds=60)
    )
    assert next_callback("unavailable", 2, 4, T0, policy).due_at == T0 + timedelta(seconds=600)
    # The last delay repeats.
    assert next_callback("failed", 3, 4, T0, policy).due_at == T0 + timedelta(seconds=600)
    assert next_callback("busy", 1, 4, T0, policy).due_at == T0 + timedelta(seconds=30)
    assert next_callback("no_answer", 4, 4, T0, policy) == CallbackDecision("failed", None)
    assert next_callback("answered", 4, 4, T0, policy).status == "done"
    with pytest.raises(ValueError, match="unknown callback result"):
        next_callback("voicemail", 1, 4, T0, policy)
