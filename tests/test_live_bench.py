"""``hotline bench live`` at a small size, as a user runs it: the JSON lines exist and are
sane (the figures are the README's, measured at full size; nothing here is timed)."""

from __future__ import annotations

import json

import pytest

from tests.support import run_hotline

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)  # a whole bench run in a child process (its own limit: 300 s)
def test_bench_live_prints_a_line_per_run_and_a_summary(migrated_database_url: str) -> None:
    result = run_hotline(
        "bench",
        "live",
        "--database-url",
        migrated_database_url,
        "--calls",
        "20",
        "--panels",
        "5",
        "--wallboards",
        "2",
        "--logged-in",
        "3",  # so that callers wait, and the wallboards show them
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # the sim's child process logs there too
    without, with_pages, summary = (json.loads(x) for x in lines if x.startswith('{"bench"'))
    assert [r["run"] for r in (without, with_pages, summary)] == [
        "without_pages",
        "with_pages",
        "summary",
    ]
    for record in (without, with_pages):
        assert record["calls"] == 20
        assert record["decisions"] > 0
        assert 0 < record["decision_p50_ms"] <= record["decision_p99_ms"]
        assert 0 < record["rss_start_mb"] <= record["rss_max_mb"]
    assert "wallboard_frame_p99_ms" not in without
    assert with_pages["pages_connected"] == 7
    assert with_pages["page_frames"] > 7  # a snapshot each, then deltas
    assert with_pages["wallboard_callers_seen"] > 0  # every wallboard sees the callers
    assert 0 <= with_pages["wallboard_frame_p50_ms"] <= with_pages["wallboard_frame_p99_ms"]
    assert with_pages["pages_dropped"] == 0
    assert summary["wallboard_frame_p99_ms"] == with_pages["wallboard_frame_p99_ms"]
    assert summary["decision_p99_ms_with_pages"] == with_pages["decision_p99_ms"]
    assert summary["decision_p99_added_ms"] == pytest.approx(
        with_pages["decision_p99_ms"] - without["decision_p99_ms"], abs=0.002
    )
    assert summary["rss_max_mb_with_pages"] > 0
