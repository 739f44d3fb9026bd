"""The outbox on a real small filesystem that fills up while PostgreSQL is unreachable.

Each test mounts its own tmpfs of a few hundred kilobytes (root only; the tests
skip, saying why, where mounting is impossible) and fills it with a ballast
file, so the spill log meets a real ``ENOSPC``; deleting the ballast is the disk
coming back. PostgreSQL is cut with the TCP proxy. ``put()`` must never raise,
and after the disk and the database come back every record is in PostgreSQL
exactly once, after a restart of the outbox too; what passes the memory cap is
counted (and exported as ``hotline_outbox_dropped_total``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from prometheus_client import CollectorRegistry

from hotline.ami.client import AmiClient
from hotline.config import ConfigError, parse_settings
from hotline.domain.routing import Router
from hotline.engine import Engine
from hotline.prometheus import Metrics
from hotline.store.db import Pool, create_pool
from hotline.store.outbox import Outbox
from hotline.store.records import Record, Recorder, apply_records
from hotline.store.spill import TORN
from tests.tcp_proxy import TcpProxy
from tests.test_metrics import FixedClock
from tests.test_metrics import settings as metrics_settings
from tests.test_outbox import (
    CADENCE,
    MONITOR,
    assert_exactly_once,
    count_calls,
    spill_files,
    synthetic_calls,
    wait_for,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DISK_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted tmpfs of DISK_BYTES, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the filesystem is full; returns it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


@pytest.fixture
async def proxied(migrated_database_url: str) -> AsyncIterator[tuple[TcpProxy, Pool]]:
    """A proxy in front of this test's database, and a pool that goes through it."""
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    pool = await create_pool(dsn, max_size=2, connect_timeout=0.5, command_timeout=5.0)
    try:
        yield proxy, pool
    finally:
        proxy.heal()
        await pool.close()
        await proxy.close()


def make_outbox(pool: Pool, folder: Path, **options: Any) -> Outbox:
    settings: dict[str, Any] = {
        "max_memory": 300,
        "max_held": 100_000,
        "batch_size": 200,
        "write_timeout": 1.0,
        "retry_initial": 0.02,
        "retry_max": 0.2,
        "fsync_interval": 0.02,
    }
    settings.update(options)
    return Outbox(pool, apply_records, folder, **settings)


def as_records(facts: list[Any]) -> list[Record]:
    records: list[Record] = []
    recorder = Recorder(records.append, ring_cadence=CADENCE, monitor_dir=MONITOR)
    for fact in facts:
        recorder(fact)
    return records


async def put_all(outbox: Outbox, records: list[Record], every: int = 40) -> None:
    """Put records as the engine would: in runs, yielding between them; put never raises."""
    for index, record in enumerate(records, 1):
        outbox.put(record)
        if index % every == 0:
            await asyncio.sleep(0)


@pytest.mark.parametrize("first_back", ["disk", "database"])
async def test_a_full_disk_during_an_outage_loses_nothing(
    migrated_database_url: str,
    proxied: tuple[TcpProxy, Pool],
    small_disk: Path,
    first_back: str,
) -> None:
    proxy, pool = proxied
    facts, expected = synthetic_calls(900, seed=11)
    records = as_records(facts)
    folder = small_disk / "outbox"
    outbox = make_outbox(pool, folder)
    outbox.start()
    quarter = len(records) // 4

    await put_all(outbox, records[:quarter])
    await wait_for(lambda: outbox.written > 0)
    proxy.break_("refuse")
    await put_all(outbox, records[quarter : 2 * quarter])
    await wait_for(lambda: outbox.retries >= 2 and outbox.in_memory == 0)
    assert outbox.on_disk > 0
    ballast = fill(small_disk)
    await put_all(outbox, records[2 * quarter : 3 * quarter])

    # The disk refuses the spill: the records wait in memory, the writer keeps going.
    assert outbox.held > 0
    assert outbox.dropped == 0
    assert outbox.writer_running
    problems = outbox.problems()
    assert "spill disk full" in problems
    assert any(reason.startswith("database unreachable since ") for reason in problems)
    await wait_for(lambda: outbox.retries >= 4)
    assert outbox.writer_running

    if first_back == "disk":
        ballast.unlink()
        await wait_for(lambda: outbox.held == 0)
        assert "spill disk full" not in outbox.problems()
        proxy.heal()
    else:
        proxy.heal()
        await wait_for(lambda: outbox.held == 0)
        ballast.unlink()
    await put_all(outbox, records[3 * quarter :])
    assert await outbox.flush(60)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.dropped == 0
    assert outbox.dead == 0
    assert spill_files(folder) == []
    await outbox.close()

    # A restart finds nothing left to write and writes nothing twice.
    again = make_outbox(pool, folder)
    assert again.backlog == 0
    assert again.problems() == ["outbox writer stopped"]
    again.start()
    assert again.problems() == []
    assert await again.flush(10)
    await again.close()
    await assert_exactly_once(migrated_database_url, expected)


async def test_a_restart_after_the_disk_came_back_replays_everything_once(
    migrated_database_url: str,
    proxied: tuple[TcpProxy, Pool],
    pg_pool: Pool,
    small_disk: Path,
) -> None:
    proxy, pool = proxied
    facts, expected = synthetic_calls(600, seed=12)
    records = as_records(facts)
    folder = small_disk / "outbox"
    proxy.break_("refuse")
    first = make_outbox(pool, folder)
    first.start()
    half = len(records) // 2
    await put_all(first, records[:half])
    await wait_for(lambda: first.retries >= 2 and first.in_memory == 0)
    ballast = fill(small_disk)
    await put_all(first, records[half:])
    assert first.held > 0

    ballast.unlink()  # the disk comes back while the database is still away
    await wait_for(lambda: first.held == 0)
    await first.close(drain_timeout=0.1)
    assert first.dropped == 0
    assert await count_calls(migrated_database_url) == 0

    second = make_outbox(pg_pool, folder)
    assert second.backlog == len(records)
    second.start()
    assert await second.flush(60)
    await assert_exactly_once(migrated_database_url, expected)
    assert second.dead == 0
    assert spill_files(folder) == []
    await second.close()


async def test_records_past_the_memory_cap_are_counted_and_exported(
    migrated_database_url: str,
    proxied: tuple[TcpProxy, Pool],
    small_disk: Path,
) -> None:
    proxy, pool = proxied
    facts, _ = synthetic_calls(300, seed=13)
    records = as_records(facts)
    folder = small_disk / "outbox"
    proxy.break_("refuse")
    outbox = make_outbox(pool, folder, max_memory=50, max_held=100)
    outbox.start()
    await put_all(outbox, records[:200])
    await wait_for(lambda: outbox.retries >= 2 and outbox.in_memory == 0)
    ballast = fill(small_disk)
    await put_all(outbox, records[200:])

    assert outbox.held == 100
    lost = outbox.dropped
    assert lost > 0
    # Every record put is waiting or counted as dropped: none vanished silently.
    assert outbox.backlog + lost == len(records)
    assert any(reason.startswith("outbox memory cap reached") for reason in outbox.problems())

    config = metrics_settings()
    metrics = Metrics(config, CollectorRegistry(), clock=FixedClock(0.0))
    router = Router(config.routing, dict(config.queues), config.agents.values(), lambda _n, _t: "T")
    engine = Engine(router, AmiClient(config.ami), FixedClock(0.0), sinks=[metrics.sink])
    metrics.watch(
        engine, outbox_backlog=lambda: outbox.backlog, outbox_dropped=lambda: outbox.dropped
    )
    exposition = metrics.render().decode()
    assert f"hotline_outbox_dropped_total {float(lost)!r}\n" in exposition

    ballast.unlink()
    proxy.heal()
    assert await outbox.flush(60)
    kept = len(records) - lost
    # The dropped records are the newest ones; everything before them is in PostgreSQL.
    conn = await asyncpg.connect(migrated_database_url)
    try:
        calls = {row[0] for row in await conn.fetch("select call_id from calls")}
    finally:
        await conn.close()
    arrived = {r["call_id"] for r in records[:kept] if r["k"] == "arrival"}
    assert calls == arrived
    assert outbox.dropped == lost
    await outbox.close()


async def test_a_torn_last_line_is_cut_off_and_reported_on_replay(
    migrated_database_url: str, proxied: tuple[TcpProxy, Pool], tmp_path: Path
) -> None:
    proxy, pool = proxied
    facts, expected = synthetic_calls(40, seed=14)
    records = as_records(facts)
    folder = tmp_path / "outbox"
    folder.mkdir()
    segment = folder / "spill-001000000000.jsonl"
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    torn = b'{"k":"offer","offer_id":"hl-to'
    segment.write_bytes(lines + torn)

    proxy.break_("refuse")
    outbox = make_outbox(pool, folder)
    outbox.start()
    # Repaired on replay, before anything is written: the torn bytes are cut off the
    # segment, the rest stays to be replayed ...
    await wait_for(lambda: outbox.dead == 1)
    assert segment.read_bytes() == lines
    assert outbox.backlog == len(records)
    # ... and the torn bytes are kept aside, with the reason.
    (entry,) = [json.loads(x) for x in (folder / "dead-letter.jsonl").read_text().splitlines()]
    assert entry == {"error": TORN, "line": torn.decode()}

    proxy.heal()
    assert await outbox.flush(30)
    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.dead == 1
    assert spill_files(folder) == []
    await outbox.close()


async def test_a_dead_letter_the_full_disk_refuses_does_not_stop_the_writer(
    migrated_database_url: str, pg_pool: Pool, small_disk: Path
) -> None:
    facts, expected = synthetic_calls(30, seed=15)
    records = as_records(facts)
    folder = small_disk / "outbox"
    outbox = make_outbox(pg_pool, folder)
    outbox.start()
    ballast = fill(small_disk)
    bad = {"k": "telepathy"}
    await put_all(outbox, [*records[:10], bad, *records[10:]])
    assert await outbox.flush(30)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.dead == 1
    assert outbox.writer_running
    assert not (folder / "dead-letter.jsonl").exists() or not (
        (folder / "dead-letter.jsonl").read_text()
    )

    ballast.unlink()
    await wait_for(lambda: (folder / "dead-letter.jsonl").exists())
    await wait_for(lambda: "telepathy" in (folder / "dead-letter.jsonl").read_text())
    (entry,) = [json.loads(x) for x in (folder / "dead-letter.jsonl").read_text().splitlines()]
    assert entry["record"] == bad
    assert "unknown record kind" in entry["error"]
    await outbox.close()


def test_the_memory_cap_for_a_full_disk_is_configured() -> None:
    base: dict[str, Any] = {
        "queues": [{"name": "support"}],
        "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
        "service": {"state_dir": "/var/lib/hotline"},
    }
    assert parse_settings(base, source="hotline.toml", env={}).database.outbox_max_held == 100_000
    tuned = parse_settings(
        {**base, "database": {"outbox_max_held": 5000}}, source="hotline.toml", env={}
    )
    assert tuned.database.outbox_max_held == 5000
    with pytest.raises(ConfigError) as caught:
        parse_settings({**base, "database": {"outbox_max_held": -1}}, source="hotline.toml", env={})
    assert caught.value.key == "database.outbox_max_held"
    assert ">= 0" in caught.value.problem


async def test_the_writer_restarts_itself_when_a_spill_file_is_deleted_under_it(
    migrated_database_url: str, proxied: tuple[TcpProxy, Pool], tmp_path: Path
) -> None:
    """An operator deletes a spill file during an outage: the writer fails on it, is
    restarted by its supervisor, counts the records of that file as dropped, and writes
    all the others."""
    proxy, pool = proxied
    facts, _ = synthetic_calls(120, seed=16)
    records = as_records(facts)
    folder = tmp_path / "outbox"
    proxy.break_("refuse")
    outbox = make_outbox(pool, folder, segment_bytes=4096)
    outbox.start()
    await put_all(outbox, records)
    await wait_for(lambda: outbox.retries >= 2 and outbox.in_memory == 0)
    segments = spill_files(folder)
    assert len(segments) >= 4
    victim = segments[2]
    gone = [json.loads(line) for line in victim.read_bytes().splitlines()]
    victim.unlink()

    proxy.heal()
    assert await outbox.flush(60)
    assert outbox.counters.crashes >= 1
    assert outbox.writer_running
    assert outbox.dropped == len(gone)
    assert outbox.problems() == []
    conn = await asyncpg.connect(migrated_database_url)
    try:
        calls = {row[0] for row in await conn.fetch("select call_id from calls")}
    finally:
        await conn.close()
    lost_arrivals = {r["call_id"] for r in gone if r["k"] == "arrival"}
    kept_arrivals = {r["call_id"] for r in records if r["k"] == "arrival"} - lost_arrivals
    assert calls >= kept_arrivals  # (a later record of a lost call may still add its row)
    await outbox.close()


def test_the_alert_fires_on_any_dropped_record() -> None:
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text(encoding="utf-8"))
    (rule,) = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "HotlineOutboxDropping"
    ]
    assert rule["expr"].strip() == "increase(hotline_outbox_dropped_total[5m]) > 0"
    assert rule["labels"]["severity"] == "critical"


async def test_records_put_while_memory_is_spilled_in_a_thread_are_kept_once(
    migrated_database_url: str, proxied: tuple[TcpProxy, Pool], tmp_path: Path
) -> None:
    """The memory spill runs in a thread; records put meanwhile go to a segment after it."""
    proxy, pool = proxied
    facts, expected = synthetic_calls(1500, seed=17)
    records = as_records(facts)
    folder = tmp_path / "outbox"
    outbox = make_outbox(pool, folder, max_memory=100_000)
    third = len(records) // 3
    await put_all(outbox, records[:third])  # all in memory: the writer is not started yet
    proxy.break_("refuse")
    outbox.start()
    await wait_for(lambda: outbox.spilling)  # the first write failed: memory is being spilled
    await put_all(outbox, records[third:], every=5)
    await wait_for(lambda: outbox.retries >= 2 and outbox.in_memory == 0)
    proxy.heal()
    assert await outbox.flush(60)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.counters.crashes == 0
    assert outbox.dead == 0
    assert outbox.dropped == 0
    await outbox.close()
