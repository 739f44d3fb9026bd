"""``hotline queue-log``: the recorded calls as app_queue's queue_log, line shapes as in the
real Asterisk 22 log (tests/traces/queue_log.txt), and a small reader of the format giving
the same per-queue counts as the report."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hotline.reports.period import parse_request
from hotline.reports.queries import build_report
from hotline.store.db import Pool
from tests.test_report_intervals import settings_with_names, store_day

pytestmark = pytest.mark.integration

TRACE = Path(__file__).parent / "traces" / "queue_log.txt"
CONFIG = """
[service]
state_dir = "{folder}"
time_zone = "Asia/Shanghai"
[ami]
url = "ami://hotline:secret@127.0.0.1:1"
[database]
outbox_dir = "{folder}/outbox"
[[queues]]
name = "support"
[[queues]]
name = "sales"
[[agents]]
id = "1001"
name = "Agent 1001"
device = "PJSIP/1001"
queues = ["support"]
[[agents]]
id = "1002"
device = "PJSIP/1002"
queues = ["support", "sales"]
"""


def shapes(lines: list[str]) -> dict[str, int]:
    """Each event's number of fields."""
    return {line.split("|")[4]: len(line.split("|")) for line in lines}


def per_queue(lines: list[str]) -> dict[str, Counter[str]]:
    """A small queue_log reader: each queue's count of each event."""
    counts: dict[str, Counter[str]] = {}
    for line in lines:
        _, call_id, queue, _, event, *_ = line.split("|")
        if call_id not in ("NONE", "MANAGER"):
            counts.setdefault(queue, Counter())[event] += 1
    return counts


def run(config: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "queue-log", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOTLINE_DATABASE_URL": dsn},
    )


async def test_the_queue_log_has_app_queues_lines_and_the_reports_counts(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await store_day(pg_pool)
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG.format(folder=tmp_path), encoding="utf-8")
    appended = tmp_path / "queue_log"
    appended.write_text("1795711177|NONE|NONE|NONE|QUEUESTART|\n", encoding="utf-8")
    dates = ("--from", "2026-03-01", "--to", "2026-03-02")
    written, again, bad = await asyncio.gather(
        asyncio.to_thread(run, config, migrated_database_url, *dates),
        asyncio.to_thread(run, config, migrated_database_url, *dates, "--append", str(appended)),
        asyncio.to_thread(run, config, migrated_database_url, "--from", "x", "--to", "2026-03-02"),
    )
    assert (written.returncode, again.returncode, bad.returncode) == (0, 0, 2), written.stderr
    assert "--from: must be a date" in bad.stderr
    lines = written.stdout.splitlines()
    assert appended.read_text(encoding="utf-8").splitlines() == [
        "1795711177|NONE|NONE|NONE|QUEUESTART|",
        *lines,
    ]

    # Every event has the shape app_queue gives it.
    real = shapes(TRACE.read_text(encoding="utf-8").splitlines())
    ours = shapes(lines)
    assert set(ours) == {"ENTERQUEUE", "RINGNOANSWER", "CONNECT", "COMPLETEAGENT", "ABANDON"}
    assert {event: real[event] for event in ours} == ours
    times = [int(line.split("|")[0]) for line in lines]
    assert times == sorted(times)
    assert any("|support|Agent 1001|CONNECT|12|a-1|4" in line for line in lines)  # config name
    assert any("|support|1002|RINGNOANSWER|15000" in line for line in lines)  # no name: the id

    settings = settings_with_names(migrated_database_url, tmp_path)
    report = await build_report(pg_pool, parse_request("day", "2026-03-01", "2026-03-02"), settings)
    counts = per_queue(lines)
    totals = {r.queue: r for r in report.queues if r.period is None and r.queue is not None}
    assert set(counts) == set(totals)
    for queue, row in totals.items():
        got = counts[queue]
        assert got["ENTERQUEUE"] == row.offered, queue
        assert got["CONNECT"] == got["COMPLETEAGENT"] == row.answered, queue
        assert got["ABANDON"] == row.abandoned, queue
        assert got["EXITWITHTIMEOUT"] == row.overflowed, queue
        assert got["RINGNOANSWER"] == row.offers_missed, queue
        assert got["RINGCANCELED"] == row.offers_cancelled, queue
