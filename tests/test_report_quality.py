"""Quality reviews feed the reports: each agent's reviews and mean total per period, in the
period of the call reviewed, per site; in every format (JSON, the agents' CSV and XLSX
columns, the HTML table, in both languages). On a real PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from hotline.reports.period import parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import render, report_json
from hotline.store.db import Pool
from hotline.store.rollup import configure_rollup
from tests.test_report_rollup import calls, records, write
from tests.test_reports import report_settings

pytestmark = pytest.mark.integration


async def _score(pool: Pool, call_id: str, agent: str, total: float) -> None:
    await pool.execute(
        "insert into quality_scores (call_id, agent_id, reviewer, scores, total)"
        " values ($1, $2, 'sam', '{}'::jsonb, $3)",
        call_id,
        agent,
        total,
    )


async def test_quality_reviews_show_per_agent_and_period_in_every_format(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    settings = report_settings(migrated_database_url, tmp_path)
    await configure_rollup(pg_pool, settings)
    await write(pg_pool, records(calls("n"), site="north"))
    # Agent 1001 answers the calls at hours 0 and 12 (even n), 1002 those at 9 and 23.
    await _score(pg_pool, "nd1h0a", "1001", 16.0)
    await _score(pg_pool, "nd1h12a", "1001", 12.0)
    await _score(pg_pool, "nd2h9a", "1002", 18.0)
    request = parse_request("day", "2026-03-01", "2026-03-03")
    document = report_json(await build_report(pg_pool, request, settings))
    rows = {(row["period"], row["agent"]): row for row in document["agents"]}
    assert rows[("2026-03-01", "1001")]["quality_reviews"] == 2
    assert rows[("2026-03-01", "1001")]["quality_average"] == pytest.approx(14.0)
    assert rows[("2026-03-02", "1002")]["quality_reviews"] == 1
    assert rows[("2026-03-02", "1002")]["quality_average"] == pytest.approx(18.0)
    assert rows[("2026-03-03", "1001")]["quality_reviews"] == 0
    assert rows[("2026-03-03", "1001")]["quality_average"] is None
    assert rows[(None, "1001")]["quality_reviews"] == 2  # the range's total of the agent
    assert rows[(None, None)]["quality_reviews"] == 3
    assert rows[(None, None)]["quality_average"] == pytest.approx(46.0 / 3)

    other_site = parse_request("day", "2026-03-01", "2026-03-03", site="south")
    elsewhere = report_json(await build_report(pg_pool, other_site, settings))
    assert all(row["quality_reviews"] == 0 for row in elsewhere["agents"])

    report = await build_report(pg_pool, request, settings)
    book = openpyxl.load_workbook(io.BytesIO(render(report, "xlsx")))
    sheet = book["agents"]
    header = [cell.value for cell in sheet[1]]
    reviews, average = header.index("quality_reviews"), header.index("quality_average")
    total = [r for r in sheet.iter_rows(values_only=True) if r[0] == "total" and r[1] == "*"]
    assert total[0][reviews] == 3
    assert total[0][average] == pytest.approx(46.0 / 3)

    for language, title in (("en", "Quality score"), ("zh", "质检均分")):
        page = render(report, "html", lang=language).decode()
        assert title in page
        assert "15.33" in page  # 46 / 3, as the page rounds it
