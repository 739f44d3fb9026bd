"""The report roll-ups (migration 0009) equal the raw rows' aggregation: after the store's
inserts, a re-upsert of a call with another outcome, a replay of every record, and a new
connection pool (a restart); the incrementally kept roll-up tables equal a rebuild from the
raw rows, row for row; a week's totals are exactly its days'. Per-site reports: two sites'
calls in one database, each site's figures are its own, the whole centre's their sum. On a
real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hotline.config import Settings
from hotline.domain.effects import CallEnded, Fact
from hotline.domain.model import Outcome
from hotline.reports.period import parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import render, report_json
from hotline.store.db import Pool, create_pool, transaction
from hotline.store.records import Record, Recorder, apply_records
from hotline.store.rollup import configure_rollup
from tests.api_support import running_api
from tests.test_reports import (
    CONFIG,
    abandoned_call,
    answered_call,
    local,
    report_settings,
    run_report,
)

pytestmark = pytest.mark.integration

_TABLES = ("report_call_rollup", "report_offer_rollup", "report_ticket_rollup",
           "report_repair_rollup")  # fmt: skip


def records(facts: list[Fact], site: str = "") -> list[Record]:
    found: list[Record] = []
    recorder = Recorder(found.append, ring_cadence=5.0, monitor_dir="/rec", site=site)
    for fact in facts:
        recorder(fact)
    return found


async def write(pool: Pool, batch: list[Record]) -> None:
    async with transaction(pool) as conn:
        await apply_records(conn, batch)


def calls(prefix: str = "") -> list[Fact]:
    """Calls over 1-3 March in Shanghai, around midnights, with misses and abandons."""
    facts: list[Fact] = []
    for day in (1, 2, 3):
        for n, hour in enumerate((0, 9, 12, 23)):
            at = local(day, hour, 14, 59.5)
            name = f"{prefix}d{day}h{hour}"
            facts += answered_call(f"{name}a", "support" if n % 2 else "sales", at,
                                   agent=("1001", "1002")[n % 2], wait=7.5 * n, ring=5.0 * n,
                                   talk=40.0 + n, wrap_up=3.25,
                                   missed_first="1002" if n == 1 else None)  # fmt: skip
            facts += abandoned_call(f"{name}b", "support", at + 30, 2.5 * n)
    return facts


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    document.pop("generated_at")
    return document


async def both(pool: Pool, settings: Settings, period: str, **more: Any) -> dict[str, Any]:
    """The report from the roll-ups, checked equal to the one from the raw rows."""
    request = parse_request(period, "2026-03-01", "2026-03-03", **more)
    at = datetime.fromtimestamp(local(4), UTC)
    rolled = without_time(report_json(await build_report(pool, request, settings, now=at)))
    raw = await build_report(pool, request, settings, now=at, rollup=False)
    assert rolled == without_time(report_json(raw)), period
    return rolled


async def tables(pool: Pool) -> dict[str, list[Any]]:
    found = {}
    for table in _TABLES:
        rows = await pool.fetch(f"select * from {table}")  # noqa: S608
        found[table] = sorted((tuple(r.values()) for r in rows if _nonzero(table, r)), key=repr)
    return found


def _nonzero(table: str, row: Any) -> bool:
    counts = {
        "report_call_rollup": "calls",
        "report_offer_rollup": "offers",
        "report_ticket_rollup": "tickets",
        "report_repair_rollup": "completed",
    }
    return bool(row[counts[table]])


async def rolled_up(pool: Pool) -> bool:
    return bool(await pool.fetchval("select count(*) from report_call_rollup"))


async def test_the_roll_ups_equal_the_raw_rows_through_upserts_replays_and_a_restart(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    settings = report_settings(migrated_database_url, tmp_path)
    assert await configure_rollup(pg_pool, settings)
    assert not await configure_rollup(pg_pool, settings)  # the same rules: nothing rebuilt
    facts = calls()
    batch = records(facts)
    # Inserts: each call's records in order, arrival first (calls in progress on the way).
    half = len(batch) // 2
    await write(pg_pool, batch[:half])
    assert await rolled_up(pg_pool)
    for period in ("day", "15min"):
        await both(pg_pool, settings, period)
    await write(pg_pool, batch[half:])
    first = {period: await both(pg_pool, settings, period) for period in ("day", "week", "hour")}
    total = first["day"]["queues"][-1]
    assert (total["period"], total["queue"], total["offered"]) == (None, None, 24)
    # A week's totals are exactly the day report's (integer sums), floats and all.
    assert first["week"]["queues"][-1] == total
    assert first["week"]["agents"][-1] == first["day"]["agents"][-1]
    # Updates: an abandoned call re-upserted as overflowed, to another queue.
    ended = [
        f for f in facts if isinstance(f, CallEnded) and f.outcome is Outcome.ABANDONED_WAITING
    ]
    answered = [f for f in facts if isinstance(f, CallEnded) and f.outcome is Outcome.ANSWERED]
    moved = replace(answered[1], original_queue="sales")  # with its two rings
    changed = replace(ended[3], outcome=Outcome.OVERFLOWED, original_queue="sales")
    await write(pg_pool, records([changed, moved]))
    after = await both(pg_pool, settings, "day")
    assert after["queues"][-1]["overflowed"] == total["overflowed"] + 1
    queues = {(r["period"], r["queue"]): r for r in after["queues"]}
    before = {(r["period"], r["queue"]): r for r in first["day"]["queues"]}
    assert queues[(None, "sales")]["offers"] == before[(None, "sales")]["offers"] + 2
    # A replay of everything (and of the change) changes nothing.
    await write(pg_pool, batch + records([changed, moved]))
    assert await both(pg_pool, settings, "day") == after
    # A restart: a new pool, the store configuring the same rules again, another replay.
    pool = await create_pool(migrated_database_url, max_size=2)
    try:
        assert not await configure_rollup(pool, settings)
        await write(pool, batch[half:] + records([changed, moved]))
        assert await both(pool, settings, "day") == after
        for period in ("week", "month", "15min", "30min"):
            await both(pool, settings, period)
        # The roll-ups kept row by row equal a rebuild from the raw rows.
        kept = await tables(pool)
        await pool.execute("delete from report_rollup_rules")
        assert await configure_rollup(pool, settings)
        assert await tables(pool) == kept
    finally:
        await pool.close()


async def test_other_rules_read_the_raw_rows_until_the_roll_ups_are_rebuilt(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    settings = report_settings(migrated_database_url, tmp_path)
    await configure_rollup(pg_pool, settings)
    await write(pg_pool, records(calls()))
    other = report_settings(migrated_database_url, tmp_path, time_zone="UTC")
    # Counted for Shanghai: a UTC report reads the raw rows, and is right.
    utc = await both(pg_pool, other, "day")
    assert utc != await both(pg_pool, settings, "day")
    assert await configure_rollup(pg_pool, other)
    assert await both(pg_pool, other, "day") == utc


async def test_a_sites_report_has_its_own_calls_and_the_centre_their_sum(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    settings = report_settings(migrated_database_url, tmp_path)
    await configure_rollup(pg_pool, settings)
    north = calls("n")
    south = [f for f in calls("s") if "h23" not in getattr(f, "call_id", "")]
    await write(pg_pool, records(north, site="north"))
    await write(pg_pool, records(south, site="south"))
    centre = await both(pg_pool, settings, "day")
    sites = {site: await both(pg_pool, settings, "day", site=site) for site in ("north", "south")}
    nobody = await both(pg_pool, settings, "day", site="east")
    assert nobody["queues"] == nobody["agents"] == []
    totals = {site: document["queues"][-1] for site, document in sites.items()}
    assert totals["north"]["offered"] == 24
    assert totals["south"]["offered"] == 18
    for name in ("offered", "answered", "abandoned", "offers", "offers_missed",
                 "answered_within_threshold", "survey_responses"):  # fmt: skip
        assert centre["queues"][-1][name] == totals["north"][name] + totals["south"][name], name
    assert centre["queues"][-1]["talk_seconds"] == pytest.approx(
        totals["north"]["talk_seconds"] + totals["south"]["talk_seconds"], rel=1e-15
    )
    assert sites["north"]["site"] == "north"
    assert centre["site"] is None
    request = parse_request("day", "2026-03-01", "2026-03-03", "html", site="north")
    page = render(await build_report(pg_pool, request, settings), "html").decode()
    assert "Site north: its calls and rings" in page


async def test_the_command_and_the_api_take_a_site(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await write(pg_pool, records(calls("n"), site="north"))
    await write(pg_pool, records(calls("s")[:40], site="south"))
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG, encoding="utf-8")
    dates = ("--period", "month", "--from", "2026-03-01", "--to", "2026-03-03")
    north, centre, bad = await asyncio.gather(
        *(
            asyncio.to_thread(run_report, config, migrated_database_url, *dates, *more)
            for more in (("--site", "north"), (), ("--site", "no such site!"))
        )
    )
    assert (north.returncode, centre.returncode, north.stderr) == (0, 0, "")
    assert json.loads(north.stdout)["site"] == "north"
    assert json.loads(north.stdout)["queues"][-1]["offered"] == 24
    assert json.loads(centre.stdout)["queues"][-1]["offered"] > 24
    assert bad.returncode == 2
    assert "--site: must be a site name" in bad.stderr
    async with running_api(migrated_database_url, tmp_path / "api", users=False) as api:
        query = "/api/reports?period=month&from=2026-02-28&to=2026-03-04"
        by_site = await (await api.bearer("GET", query + "&site=north")).json()
        page = await (await api.bearer("GET", query + "&site=north&format=html")).text()
        sheet = await api.bearer("GET", query + "&site=north&format=xlsx")
        refused = await api.bearer("GET", query + "&site=a%20b")
        refused_body = await refused.json()
    assert by_site["site"] == "north"
    assert by_site["queues"][-1]["offered"] == 24
    assert "Site north: its calls and rings" in page
    assert (
        'filename="hotline-report-north-2026-02-28-2026-03-04.xlsx"'
        in (sheet.headers["Content-Disposition"])
    )
    assert refused.status == 422
    assert set(refused_body["fields"]) == {"site"}
