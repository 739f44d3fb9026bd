"""The report's figures come from GROUP BY in PostgreSQL: they equal what the row-by-row
:class:`~hotline.reports.aggregate.ReportBuilder` makes of the same rows (every edge of the
definitions: waits and rings exactly at the thresholds, calls in progress, every ring result),
and they carry the post-call survey's responses and average per queue and agent, in JSON,
CSV, XLSX and HTML. On a real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from hotline.config import Settings
from hotline.domain.model import OfferResult, Outcome
from hotline.reports.aggregate import (
    CallRow,
    CompletedRepair,
    OfferRow,
    OpenedTicket,
    Report,
    ReportBuilder,
    SlaRules,
)
from hotline.reports.period import parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import render, report_json
from hotline.store.db import Pool
from tests.test_reports import SHANGHAI, report_settings

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=SHANGHAI)
NOW = datetime(2026, 3, 4, 12, tzinfo=SHANGHAI)
QUEUES = ("support", "sales")
AGENTS = ("1001", "1002", "1003")
RESULTS = ("answered", "no_answer", "busy", "unavailable", "cancelled")
PARTIES = ("in_house", "equipment_vendor")


def sample(count: int) -> tuple[list[tuple[Any, ...]], ...]:
    """Tickets, calls and rings over 1-3 March: waits and rings on a 2.5 s grid (so some are
    exactly 5 s and 15 s), a few calls in progress, every ring result, survey scores."""
    rng = random.Random(9)
    tickets, calls, offers = [], [], []
    for n in range(1, count + 1):
        arrived = START + timedelta(seconds=rng.uniform(0, 3 * 86400))
        category = rng.choice(("complaint", "repair", "consultation"))
        due = arrived + timedelta(hours=rng.choice((-100, 24)))
        replied = arrived + timedelta(hours=rng.uniform(0, 48)) if rng.random() < 0.6 else None
        party = rng.choice(PARTIES) if category == "repair" and rng.random() < 0.8 else None
        completed = arrived + timedelta(hours=rng.uniform(1, 40)) if party else None
        on_time = rng.choice((True, False, None)) if completed else None
        score = rng.choice((None, 1, 2, 3, 4, 5))
        tickets.append((n, f"S{n:06d}", category, arrived, due, replied, party,
                        arrived if party else None, completed, on_time, score))  # fmt: skip
        queue = rng.choice(QUEUES)
        wait = 2.5 * rng.randint(0, 12)
        fate = rng.choice(("answered", "answered", "abandoned_waiting", "abandoned_ringing",
                           "overflowed", None))  # fmt: skip
        agent = rng.choice(AGENTS)
        answered = arrived + timedelta(seconds=wait) if fate == "answered" else None
        talk = rng.uniform(10, 300)
        ended = (answered or arrived + timedelta(seconds=wait)) + timedelta(seconds=talk)
        survey = rng.choice((1, 2, 3, 4, 5)) if fate == "answered" and n % 2 else None
        calls.append((f"s{n}", n, "13900139000", queue, queue,
                      "completed" if fate else "in_progress", arrived, "pbx", answered,
                      agent if answered else None, ended if answered else None,
                      ended if fate else None, fate, wait if fate else None,
                      rng.uniform(0, 20) if answered and n % 3 else None, survey,
                      ended if survey else None))  # fmt: skip
        for ring in range(rng.randint(0, 3)):
            result = "answered" if answered and ring == 0 else rng.choice(RESULTS[1:])
            seconds = 2.5 * rng.randint(0, 8)
            offers.append((f"s{n}-{ring}", f"s{n}", rng.choice(AGENTS), queue, arrived,
                           arrived, "pbx", arrived + timedelta(seconds=seconds), "pbx", result,
                           seconds, seconds / 5))  # fmt: skip
    return tickets, calls, offers


async def load(pool: Pool, count: int) -> None:
    tickets, calls, offers = sample(count)
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("tickets", records=tickets, columns=(
            "id", "number", "category", "opened_at", "due_at", "replied_at", "dispatch_party",
            "dispatched_at", "completed_at", "completed_on_time", "satisfaction"))  # fmt: skip
        await conn.copy_records_to_table("calls", records=calls, columns=(
            "call_id", "ticket_id", "caller_number", "queue", "original_queue", "state",
            "arrived_at", "arrival_source", "answered_at", "answered_by", "talk_ended_at",
            "ended_at", "outcome", "wait_seconds", "wrap_up_seconds", "survey_score",
            "survey_at"))  # fmt: skip
        await conn.copy_records_to_table("call_offers", records=offers, columns=(
            "offer_id", "call_id", "agent_id", "queue", "requested_at", "ring_started_at",
            "ring_start_source", "ended_at", "end_source", "result", "ring_seconds",
            "rings"))  # fmt: skip


_ROWS = """
select (c.arrived_at at time zone 'Asia/Shanghai')::date as period, c.original_queue as queue,
       c.outcome, c.wait_seconds, c.answered_by, c.wrap_up_seconds, c.survey_score,
       case when c.answered_at is not null then greatest(
           extract(epoch from coalesce(c.talk_ended_at, c.ended_at) - c.answered_at)::float8,
           0) end as talk_seconds
from calls c order by c.id
"""
_OFFERS = """
select (c.arrived_at at time zone 'Asia/Shanghai')::date as period, c.original_queue as queue,
       o.agent_id, o.result, o.ring_seconds
from call_offers o join calls c using (call_id) order by o.id
"""
_TICKETS = """
select (opened_at at time zone 'Asia/Shanghai')::date as opened,
       (completed_at at time zone 'Asia/Shanghai')::date as completed, *
from tickets order by id
"""


async def row_by_row(pool: Pool, settings: Settings) -> Report:
    """The report of 1-3 March by day, made by feeding every row to the builder."""
    members: dict[str, set[str]] = {}
    for agent in settings.agents.values():
        for queue in agent.queues:
            members.setdefault(queue, set()).add(agent.id)
    builder = ReportBuilder(
        parse_request("day", "2026-03-01", "2026-03-03"),
        SlaRules.of(settings),
        now=NOW,
        names={agent.id: agent.name for agent in settings.agents.values()},
        members={queue: frozenset(ids) for queue, ids in members.items()},
    )
    for r in await pool.fetch(_ROWS):
        outcome = Outcome(r["outcome"]) if r["outcome"] else None
        builder.add_call(CallRow(r["period"], r["queue"], outcome, r["wait_seconds"],
                                 r["answered_by"], r["talk_seconds"], r["wrap_up_seconds"],
                                 r["survey_score"]))  # fmt: skip
    for r in await pool.fetch(_OFFERS):
        builder.add_offer(OfferRow(r["period"], r["queue"], r["agent_id"],
                                   OfferResult(r["result"]), r["ring_seconds"]))  # fmt: skip
    for r in await pool.fetch(_TICKETS):
        builder.add_ticket(OpenedTicket(r["opened"], r["category"], r["due_at"],
                                        r["replied_at"], r["satisfaction"]))  # fmt: skip
        if r["completed"] is not None and r["completed"] <= date(2026, 3, 3):
            builder.add_repair(CompletedRepair(r["completed"], r["completed_on_time"],
                                               r["dispatch_party"]))  # fmt: skip
    return builder.build(time_zone="Asia/Shanghai")


def same(grouped: Any, streamed: Any, where: str = "") -> None:
    """Equal; floats within 1 µs (SQL sums whole nanoseconds, half a nanosecond a call off the
    builder's float sums, and at most 1500 calls a sum here)."""
    if isinstance(streamed, float):
        assert grouped == pytest.approx(streamed, rel=0, abs=1e-6), where
    elif isinstance(streamed, dict):
        assert set(grouped) == set(streamed), where
        for key in streamed:
            same(grouped[key], streamed[key], f"{where}.{key}")
    elif isinstance(streamed, list):
        assert len(grouped) == len(streamed), where
        for index, (one, other) in enumerate(zip(grouped, streamed, strict=True)):
            same(one, other, f"{where}[{index}]")
    else:
        assert grouped == streamed, where


async def test_the_grouped_figures_equal_the_row_by_row_ones(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await load(pg_pool, 1500)
    settings = report_settings(migrated_database_url, tmp_path)
    request = parse_request("day", "2026-03-01", "2026-03-03")
    grouped = report_json(await build_report(pg_pool, request, settings, now=NOW))
    streamed = report_json(await row_by_row(pg_pool, settings))
    for document in (grouped, streamed):
        document.pop("generated_at")
    same(grouped, streamed)
    queues = {(r["period"], r["queue"]): r for r in grouped["queues"]}
    total = queues[(None, None)]
    assert total["offered"] == 1500
    # The sample reaches every edge the definitions have.
    for edge in ("in_progress", "short_abandoned", "abandoned_ringing", "overflowed",
                 "offers_cancelled", "offers_missed"):  # fmt: skip
        assert total[edge] > 0, edge
    exactly = await pg_pool.fetchval(
        "select count(*) from calls where wait_seconds in (5, 15) and outcome is not null"
    )
    rings = await pg_pool.fetchval("select count(*) from call_offers where ring_seconds = 15")
    assert exactly > 0
    assert rings > 0
    assert {r["party"] for r in grouped["repairs"]} == {None, "in_house", "equipment_vendor"}
    assert grouped["tickets"][-1]["complaints_late"] > 0
    # A second run is the same to the last bit.
    again = report_json(await build_report(pg_pool, request, settings, now=NOW))
    again.pop("generated_at")
    assert again == grouped


async def test_survey_responses_and_average_per_queue_and_agent_in_every_format(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await load(pg_pool, 300)
    scored = await pg_pool.fetch(
        "select original_queue, answered_by, survey_score, "
        "(arrived_at at time zone 'Asia/Shanghai')::date as day from calls "
        "where survey_score is not null"
    )
    # Expected by hand from the rows inserted.
    by_queue: dict[tuple[date | None, str | None], list[int]] = {}
    by_agent: dict[tuple[date | None, str | None], list[int]] = {}
    for row in scored:
        for period in (row["day"], None):
            for key in (row["original_queue"], None):
                by_queue.setdefault((period, key), []).append(row["survey_score"])
            for key in (row["answered_by"], None):
                by_agent.setdefault((period, key), []).append(row["survey_score"])
    assert len(scored) > 20
    settings = report_settings(migrated_database_url, tmp_path)
    request = parse_request("day", "2026-03-01", "2026-03-03")
    report = await build_report(pg_pool, request, settings, now=NOW)

    def check(rows: list[Any], key: str, expected: dict[Any, list[int]]) -> None:
        for row in rows:
            scores = expected.get((row.period, getattr(row, key)), [])
            assert row.survey_responses == len(scores)
            average = sum(scores) / len(scores) if scores else None
            assert row.survey_average == (None if average is None else pytest.approx(average))

    check(report.queues, "queue", by_queue)
    check(report.agents, "agent", by_agent)
    total = next(r for r in report.queues if r.period is None and r.queue is None)
    assert total.survey_responses == len(scored)

    document = json.loads(render(report, "json"))
    json_total = next(r for r in document["queues"] if r["period"] is None and r["queue"] is None)
    assert (json_total["survey_responses"], json_total["survey_average"]) == (
        total.survey_responses,
        total.survey_average,
    )
    agents_csv = list(csv.DictReader(io.StringIO(render(report, "csv", "agents").decode())))
    every = next(r for r in agents_csv if (r["period"], r["agent"]) == ("total", "*"))
    assert int(every["survey_responses"]) == len(scored)
    assert every["survey_average"] == f"{sum(r['survey_score'] for r in scored) / len(scored):.2f}"

    book = load_workbook(io.BytesIO(render(report, "xlsx")))
    sheet = book["queues"]
    header = [cell.value for cell in sheet[1]]
    rows = [dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(2)]
    last = next(r for r in rows if (r["period"], r["queue"]) == ("total", "*"))
    assert last["survey_responses"] == total.survey_responses
    assert last["survey_average"] == pytest.approx(total.survey_average, rel=1e-14)
    cell = sheet.cell(row=2, column=header.index("survey_average") + 1)
    assert cell.number_format == "0.00"

    for lang, heading in (("en", "Survey score"), ("zh", "满意度调查均分")):
        page = render(report, "html", lang=lang).decode()
        assert heading in page
        assert f"{total.survey_average:.2f}" in page
