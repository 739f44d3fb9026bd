"""Exports for people: a CSV per section (alone or in a zip), rounded; an XLSX workbook whose
typed numbers equal the JSON's; from the renderers, the command line and the API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from hotline.reports.aggregate import Report
from hotline.reports.period import ReportError, parse_request
from hotline.reports.presence import AgentTime
from hotline.reports.render import render, report_json
from hotline.reports.tables import render_csv_section, render_xlsx, render_zip
from hotline.store.db import Pool
from tests.test_report_intervals import settings_with_names, store_day
from tests.test_reports import D1, hand_made, run_report

pytestmark = pytest.mark.integration

SECTIONS = ["queues", "agents", "tickets", "repairs"]


def sample() -> Report:
    builder = hand_made()
    builder.add_presence(
        {(D1, "1001"): AgentTime(3600.0, {"lunch": 600.0, "=cmd": 60.0})}, {D1: {"1001"}}
    )
    return builder.build(time_zone="UTC")


def test_each_section_is_its_own_csv_rounded_for_people() -> None:
    report = sample()
    queues = list(csv.DictReader(io.StringIO(render_csv_section(report, "queues").decode())))
    assert len(queues) == len(report.queues)
    first = queues[0]
    assert (first["period"], first["queue"], first["offered"]) == ("2026-03-02", "support", "6")
    assert (first["service_level_pct"], first["within_rings_rate_pct"]) == ("25.0", "25.0")
    assert (first["asa"], first["aht"], first["longest_wait"]) == ("15.0", "52.5", "60.0")
    assert "tickets" not in first
    assert (queues[-1]["period"], queues[-1]["queue"]) == ("total", "*")
    agents = list(csv.DictReader(io.StringIO(render_csv_section(report, "agents").decode())))
    lei = next(r for r in agents if (r["period"], r["agent"]) == ("2026-03-02", "1001"))
    assert (lei["login_seconds"], lei["paused_lunch_seconds"], lei["paused_seconds"]) == (
        "3600.0",
        "600.0",
        "660.0",
    )
    # occupancy (60 + 10) / (3600 - 660) = 2.38 %
    assert lei["occupancy_pct"] == "2.4"
    assert "paused_=cmd_seconds" in lei  # a header, not a cell: left as it is
    with pytest.raises(ValueError, match="unknown report section"):
        render_csv_section(report, "everything")


def test_the_zip_holds_one_csv_per_section() -> None:
    report = sample()
    archive = zipfile.ZipFile(io.BytesIO(render_zip(report)))
    assert archive.namelist() == [f"{name}.csv" for name in SECTIONS]
    for name in SECTIONS:
        assert archive.read(f"{name}.csv") == render_csv_section(report, name)
    assert render_zip(report) == render_zip(report)  # no timestamps inside: same bytes


def cell_values(sheet: Any) -> list[dict[str, Any]]:
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_workbook_has_a_typed_sheet_per_section_equal_to_the_json() -> None:
    report = sample()
    book = load_workbook(io.BytesIO(render_xlsx(report)))
    assert book.sheetnames == SECTIONS
    as_json = report_json(report)
    for name, key in (("queues", "queue"), ("agents", "agent"), ("repairs", "party")):
        sheet = book[name]
        assert sheet.freeze_panes == "A2"
        rows = cell_values(sheet)
        assert len(rows) == len(as_json[name])
        for row, expected in zip(rows, as_json[name], strict=True):
            assert row[key] == (expected[key] if expected[key] is not None else "*")
            for field, value in expected.items():
                if field in ("period", key, "paused_by_reason"):
                    continue
                # XLSX keeps 15 significant digits, as Excel does.
                exact = value if not isinstance(value, float) else pytest.approx(value, rel=1e-14)
                assert row[field] == exact, (name, field)
    queues = book["queues"]
    header = [c.value for c in queues[1]]
    level = queues.cell(row=2, column=header.index("service_level") + 1)
    assert (level.value, level.number_format) == (0.25, "0.0%")
    aht = queues.cell(row=2, column=header.index("aht") + 1)
    assert (aht.value, aht.number_format, aht.data_type) == (52.5, "0.0", "n")
    agents = book["agents"]
    header = [c.value for c in agents[1]]
    lunch = agents.cell(row=2, column=header.index("paused_lunch_seconds") + 1)
    assert lunch.value == 600.0
    ticket_rows = cell_values(book["tickets"])
    assert [r["period"] for r in ticket_rows] == [
        t["period"] or "total" for t in as_json["tickets"]
    ]


def test_a_section_is_for_csv_only() -> None:
    assert parse_request("day", "2026-03-02", "2026-03-02", "csv", "agents").section == "agents"
    with pytest.raises(ReportError) as wrong:
        parse_request("day", "2026-03-02", "2026-03-02", "xlsx", "agents")
    assert wrong.value.fields == {"section": "is for format csv only"}
    with pytest.raises(ReportError) as unknown:
        parse_request("day", "2026-03-02", "2026-03-02", "csv", "calls")
    assert set(unknown.value.fields) == {"section"}


async def test_the_command_writes_xlsx_zip_and_a_section(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await store_day(pg_pool)
    settings_with_names(migrated_database_url, tmp_path)  # the same agents as the config
    config = tmp_path / "hotline.toml"
    config.write_text(
        f"""
[service]
state_dir = "{tmp_path}"
time_zone = "Asia/Shanghai"
[ami]
url = "ami://hotline:secret@127.0.0.1:1"
[database]
outbox_dir = "{tmp_path / "outbox"}"
[[queues]]
name = "support"
[[queues]]
name = "sales"
[[agents]]
id = "1001"
name = "李雷"
device = "PJSIP/1001"
queues = ["support"]
[[agents]]
id = "1002"
device = "PJSIP/1002"
queues = ["support", "sales"]
""",
        encoding="utf-8",
    )
    dates = ("--period", "hour", "--from", "2026-03-02", "--to", "2026-03-02")
    xlsx, archive = tmp_path / "r.xlsx", tmp_path / "r.zip"
    as_json, as_xlsx, as_zip, agents, bad = await asyncio.gather(
        *(
            asyncio.to_thread(run_report, config, migrated_database_url, *args)
            for args in [
                dates,
                (*dates, "--format", "xlsx", "--out", str(xlsx)),
                (*dates, "--format", "zip", "--out", str(archive)),
                (*dates, "--format", "csv", "--section", "agents"),
                (*dates, "--format", "json", "--section", "agents"),
            ]
        )
    )
    for result in (as_json, as_xlsx, as_zip, agents):
        assert result.returncode == 0, result.stderr
    assert bad.returncode == 2
    assert "--section: is for format csv only" in bad.stderr
    report = json.loads(as_json.stdout)
    book = load_workbook(xlsx)
    sheet_agents = cell_values(book["agents"])
    lei = next(r for r in sheet_agents if (r["period"], r["agent"]) == ("total", "1001"))
    wanted = next(r for r in report["agents"] if (r["period"], r["agent"]) == (None, "1001"))
    assert (lei["agent_name"], lei["login_seconds"]) == ("李雷", 4200.0)
    assert lei["occupancy"] == wanted["occupancy"]
    assert lei["paused_lunch_seconds"] == wanted["paused_by_reason"]["lunch"] == 900.0
    assert zipfile.ZipFile(archive).namelist() == [f"{name}.csv" for name in SECTIONS]
    rows = list(csv.DictReader(io.StringIO(agents.stdout)))
    nine = next(r for r in rows if (r["period"], r["agent"]) == ("2026-03-02 09:00", "1001"))
    assert (nine["agent_name"], nine["login_seconds"], nine["paused_lunch_seconds"]) == (
        "李雷",
        "3600.0",
        "900.0",
    )
    assert render(sample(), "csv", "tickets").decode().startswith("period,tickets,")
    assert date(2026, 3, 2).isoformat() in {r["period"][:10] for r in rows}


async def test_without_dates_the_command_reports_today_and_this_month_so_far(
    migrated_database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(
        f'[service]\nstate_dir = "{tmp_path}"\ntime_zone = "Asia/Shanghai"\n'
        '[ami]\nurl = "ami://hotline:secret@127.0.0.1:1"\n'
        f'[database]\noutbox_dir = "{tmp_path / "outbox"}"\n'
        '[[queues]]\nname = "support"\n',
        encoding="utf-8",
    )
    today, month, since = await asyncio.gather(
        asyncio.to_thread(run_report, config, migrated_database_url),
        asyncio.to_thread(run_report, config, migrated_database_url, "--period", "month"),
        asyncio.to_thread(
            run_report, config, migrated_database_url, "--period", "week", "--to", "2026-03-04"
        ),
    )
    for result in (today, month, since):
        assert result.returncode == 0, result.stderr
    now = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    day = json.loads(today.stdout)
    assert (day["period"], day["from"], day["to"]) == ("day", now.isoformat(), now.isoformat())
    so_far = json.loads(month.stdout)
    assert (so_far["from"], so_far["to"]) == (now.replace(day=1).isoformat(), now.isoformat())
    week = json.loads(since.stdout)
    assert (week["from"], week["to"]) == ("2026-03-02", "2026-03-04")  # that Monday on
