"""Period reports: requests, the arithmetic by hand, the renderers, the queries on a real
PostgreSQL (time zone and inclusive dates), the command line, the API, and the overdue
tickets gauge fed by the store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from hotline.config import Settings, parse_settings
from hotline.domain.effects import (
    CallAnswered,
    CallArrived,
    CallEnded,
    Fact,
    OfferEnded,
    WrapUpEnded,
)
from hotline.domain.model import OfferResult, Outcome
from hotline.main import create_app
from hotline.reports.aggregate import (
    AgentRow,
    CallRow,
    CompletedRepair,
    OfferRow,
    OpenedTicket,
    QueueRow,
    Report,
    ReportBuilder,
    SlaRules,
    TicketRow,
)
from hotline.reports.charts import Series, bar_chart
from hotline.reports.period import MAX_DAYS, ReportError, ReportRequest, parse_request, periods
from hotline.reports.queries import build_report
from hotline.reports.render import render, render_json, report_json
from hotline.store.db import Pool, transaction
from hotline.store.records import Record, Recorder, apply_records
from hotline.store.tickets import Tickets
from hotline.web.keys import STORE
from hotline.web.reports import REPORT_SCHEMA
from tests.api_support import running_api
from tests.support import eventually, run_hotline

pytestmark = pytest.mark.integration

RULES = SlaRules(
    ring_cadence=5.0,
    sla_rings=3,
    service_level_threshold=15.0,
    short_abandon_threshold=5.0,
    service_level_target=0.8,
)
D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
NOW = datetime(2026, 3, 20, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- the request ----------------------------------------------------------------------------


def test_a_request_is_checked_field_by_field() -> None:
    good = parse_request("week", "2026-03-01", "2026-03-31", "html")
    assert (good.period, good.first, good.last, good.format, good.days) == (
        "week",
        date(2026, 3, 1),
        date(2026, 3, 31),
        "html",
        31,
    )
    assert parse_request("day", "2026-03-01", "2026-03-01").format == "json"
    with pytest.raises(ReportError) as bad:
        parse_request("year", "2026-02-30", "yesterday", "pdf")
    assert set(bad.value.fields) == {"period", "from", "to", "format"}
    assert "day, week, month" in bad.value.fields["period"]
    fullwidth = "\uff12\uff10\uff12\uff16-03-01"
    for text in ("2026-W10-1", "20260301", fullwidth, "0001-01-01", "9999-12-31", ""):
        with pytest.raises(ReportError) as refused:
            parse_request("day", text, "2026-03-01")
        assert set(refused.value.fields) == {"from"}, text
    with pytest.raises(ReportError) as backwards:
        parse_request("day", "2026-03-02", "2026-03-01")
    assert backwards.value.fields == {"to": "must not be before from (2026-03-02)"}
    last = date(2024, 1, 1) + timedelta(days=MAX_DAYS - 1)
    assert parse_request("month", "2024-01-01", last.isoformat()).days == MAX_DAYS
    with pytest.raises(ReportError, match="at most 366 days"):
        parse_request("month", "2024-01-01", (last + timedelta(days=1)).isoformat())


def test_periods_are_calendar_periods_clipped_to_the_range() -> None:
    # 2026-03-01 is a Sunday: ISO weeks start on the Monday before.
    weeks = periods(ReportRequest("week", date(2026, 3, 1), date(2026, 3, 10)))
    assert [(p.start, p.first, p.last) for p in weeks] == [
        (date(2026, 2, 23), date(2026, 3, 1), date(2026, 3, 1)),
        (date(2026, 3, 2), date(2026, 3, 2), date(2026, 3, 8)),
        (date(2026, 3, 9), date(2026, 3, 9), date(2026, 3, 10)),
    ]
    months = periods(ReportRequest("month", date(2025, 12, 31), date(2026, 2, 1)))
    assert [(p.start, p.first, p.last) for p in months] == [
        (date(2025, 12, 1), date(2025, 12, 31), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 1), date(2026, 2, 1)),
    ]
    days = periods(ReportRequest("day", date(2024, 2, 28), date(2024, 3, 1)))
    assert [p.start for p in days] == [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]


# -- the arithmetic, by hand ------------------------------------------------------------------


def hand_made() -> ReportBuilder:
    """Two days, two queues, three agents; the expected figures are worked in the tests."""
    builder = ReportBuilder(ReportRequest("day", D1, D2), RULES, now=NOW)
    calls = [
        CallRow(D1, "support", Outcome.ANSWERED, 10.0, "1001", 60.0, 10.0),
        CallRow(D1, "support", Outcome.ANSWERED, 20.0, "1002", 30.0, 5.0),
        CallRow(D1, "support", Outcome.ABANDONED_WAITING, 3.0),
        CallRow(D1, "support", Outcome.ABANDONED_RINGING, 30.0),
        CallRow(D1, "support", Outcome.OVERFLOWED, 60.0),
        CallRow(D1, "support", None, None),
        CallRow(D2, "sales", Outcome.ANSWERED, 5.0, "1001", 20.0, None),
    ]
    offers = [
        OfferRow(D1, "support", "1001", OfferResult.ANSWERED, 15.0),  # exactly 3 rings: within
        OfferRow(D1, "support", "1002", OfferResult.NO_ANSWER, 15.0),
        OfferRow(D1, "support", "1002", OfferResult.ANSWERED, 16.0),
        OfferRow(D1, "support", "1003", OfferResult.CANCELLED, 4.0),
        OfferRow(D1, "support", "1003", OfferResult.BUSY, 1.0),
        OfferRow(D2, "sales", "1001", OfferResult.ANSWERED, 2.0),
    ]
    for call in calls:
        builder.add_call(call)
    for offer in offers:
        builder.add_offer(offer)
    return builder


def built(builder: ReportBuilder) -> Report:
    return builder.build(time_zone="UTC")


def test_queue_figures_by_hand() -> None:
    report = built(hand_made())
    rows = {(r.period, r.queue): r for r in report.queues}
    assert list(rows) == [
        (D1, "support"),
        (D1, None),
        (D2, "sales"),
        (D2, None),
        (None, "sales"),
        (None, "support"),
        (None, None),
    ]
    support = rows[(D1, "support")]
    assert support == QueueRow(
        period=D1,
        queue="support",
        offered=6,
        answered=2,
        abandoned=2,
        short_abandoned=1,
        overflowed=1,
        in_progress=1,
        abandoned_waiting=1,
        abandoned_ringing=1,
        longest_wait=60.0,  # the overflowed call
        agents_logged_in=None,  # no presence recorded
        answered_within_threshold=1,
        service_level=1 / 4,  # 1 within / (5 ended - 1 short abandon)
        abandon_rate=1 / 4,  # (2 abandoned - 1 short) / (5 - 1)
        offers=5,
        offers_answered=2,
        offers_answered_within_rings=1,
        offers_missed=2,
        offers_cancelled=1,
        within_rings_rate=1 / 4,  # 1 / (2 answered + 2 missed)
        asa=15.0,  # (10 + 20) / 2
        aht=52.5,  # (60 + 30 + 10 + 5) / 2
        wait_seconds_answered=30.0,
        talk_seconds=90.0,
        wrap_up_seconds=15.0,
    )
    assert replace(rows[(D1, None)], queue="support") == support
    assert replace(rows[(None, "support")], period=D1) == support
    sales = rows[(D2, "sales")]
    assert (sales.offered, sales.service_level, sales.asa, sales.aht) == (1, 1.0, 5.0, 20.0)
    assert sales.within_rings_rate == 1.0
    total = rows[(None, None)]
    assert (total.offered, total.answered, total.in_progress) == (7, 3, 1)
    assert total.service_level == 2 / 5
    assert total.asa == pytest.approx(35 / 3)
    assert total.aht == pytest.approx(125 / 3)
    assert (total.offers, total.offers_answered_within_rings) == (6, 2)
    assert total.within_rings_rate == 2 / 5


def test_agent_figures_by_hand() -> None:
    report = built(hand_made())
    rows = {(r.period, r.agent): r for r in report.agents}
    assert rows[(D1, "1001")] == AgentRow(
        period=D1,
        agent="1001",
        agent_name=None,
        offered=1,
        answered=1,
        answered_within_rings=1,
        missed=0,
        missed_no_answer=0,
        missed_busy=0,
        missed_unavailable=0,
        abandoned=0,
        within_rings_rate=1.0,
        login_seconds=0.0,
        paused_seconds=0.0,
        paused_by_reason={},
        available_seconds=0.0,
        occupancy=None,  # no logged-in time recorded
        calls_handled=1,
        answered_within_threshold=1,
        service_level=1.0,
        asa=10.0,
        aht=70.0,
        wait_seconds_answered=10.0,
        talk_seconds=60.0,
        wrap_up_seconds=10.0,
    )
    slow = rows[(D1, "1002")]
    assert (slow.offered, slow.answered, slow.answered_within_rings, slow.missed) == (2, 1, 0, 1)
    assert (slow.within_rings_rate, slow.service_level, slow.asa, slow.aht) == (0.0, 0.0, 20, 35)
    never = rows[(D1, "1003")]
    assert (never.offered, never.answered, never.missed, never.abandoned) == (2, 0, 1, 1)
    assert never.within_rings_rate == 0.0  # 0 / (0 answered + 1 busy); the cancelled ring is out
    assert (never.missed_no_answer, never.missed_busy, slow.missed_no_answer) == (0, 1, 1)
    assert (never.calls_handled, never.service_level, never.asa, never.aht) == (0, None, None, None)
    over_range = rows[(None, "1001")]
    assert (over_range.offered, over_range.calls_handled) == (2, 2)
    assert over_range.aht == 45.0  # (60 + 10 + 20 + no wrap-up yet) / 2
    everyone = rows[(None, None)]
    assert (everyone.offered, everyone.answered, everyone.missed, everyone.abandoned) == (
        6,
        3,
        2,
        1,
    )


def test_ticket_figures_by_hand() -> None:
    builder = ReportBuilder(ReportRequest("day", D1, D2), RULES, now=NOW)
    opened = datetime(2026, 3, 2, 9, tzinfo=UTC)
    due = opened + timedelta(hours=24)
    for ticket in [
        OpenedTicket(D1, "complaint", due, due, satisfaction=5),  # on time, at the boundary
        OpenedTicket(D1, "complaint", due, due + timedelta(seconds=1), satisfaction=1),  # late
        OpenedTicket(D1, "complaint", due, None),  # not replied, past due at NOW: late
        OpenedTicket(D2, "complaint", NOW + timedelta(hours=1), None),  # not due yet: pending
        OpenedTicket(D2, "complaint", None, None),  # no committed reply time: pending
        OpenedTicket(D2, "repair", satisfaction=4),
        OpenedTicket(D2, "consultation", satisfaction=4),
    ]:
        builder.add_ticket(ticket)
    for repair in [
        CompletedRepair(D2, True),
        CompletedRepair(D2, False),
        CompletedRepair(D2, None),
    ]:
        builder.add_repair(repair)
    rows = {row.period: row for row in built(builder).tickets}

    assert list(rows) == [D1, D2, None]
    assert rows[D1] == TicketRow(
        period=D1,
        tickets=3,
        complaints=3,
        complaints_on_time=1,
        complaints_late=2,
        complaints_pending=0,
        reply_on_time_rate=1 / 3,
        repairs=0,
        repairs_completed=0,
        repairs_on_time=0,
        repairs_late=0,
        repair_timeliness=None,
        satisfaction_count=2,
        satisfaction_average=3.0,
        satisfaction_1=1,
        satisfaction_2=0,
        satisfaction_3=0,
        satisfaction_4=0,
        satisfaction_5=1,
        callbacks_scheduled=0,
        callbacks_done=0,
        callbacks_failed=0,
    )
    second = rows[D2]
    assert (second.complaints, second.complaints_pending, second.reply_on_time_rate) == (2, 2, None)
    assert (second.repairs, second.repairs_completed, second.repair_timeliness) == (1, 3, 0.5)
    whole = rows[None]
    assert (whole.tickets, whole.complaints, whole.reply_on_time_rate) == (7, 5, 1 / 3)
    assert (whole.satisfaction_count, whole.satisfaction_average) == (4, 3.5)
    assert [whole.satisfaction_1, whole.satisfaction_4, whole.satisfaction_5] == [1, 2, 1]


def test_nothing_in_the_range_is_an_empty_report() -> None:
    report = built(ReportBuilder(ReportRequest("month", D1, D2), RULES, now=NOW))
    assert not report.has_calls
    assert (report.queues, report.agents, report.tickets) == ([], [], [])
    assert [p.start for p in report.periods] == [date(2026, 3, 1)]


# -- renderers --------------------------------------------------------------------------------


def json_schema(openapi: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` becomes a ``null`` type."""
    if isinstance(openapi, list):
        return [json_schema(item) for item in openapi]
    if not isinstance(openapi, dict):
        return openapi
    schema = {key: json_schema(value) for key, value in openapi.items() if key != "nullable"}
    if openapi.get("nullable"):
        schema["type"] = [schema["type"], "null"]
    if "properties" in schema:
        schema["additionalProperties"] = False
    return schema


def test_json_has_every_row_and_matches_the_documented_schema() -> None:
    report = built(hand_made())
    document = json.loads(render_json(report))

    jsonschema.validate(document, json_schema(REPORT_SCHEMA))
    assert document == json.loads(json.dumps(report_json(report)))
    assert (document["period"], document["from"], document["to"]) == (
        "day",
        "2026-03-02",
        "2026-03-03",
    )
    assert document["rules"]["service_level_threshold"] == 15.0
    assert [p["period"] for p in document["periods"]] == ["2026-03-02", "2026-03-03"]
    assert len(document["queues"]) == 7
    assert len(document["agents"]) == len(report.agents)
    total = document["queues"][-1]
    assert (total["period"], total["queue"], total["offered"]) == (None, None, 7)
    assert document["queues"][0]["service_level"] == 0.25
    never = next(r for r in document["agents"] if r["agent"] == "1003" and r["period"])
    assert never["asa"] is None

    empty = json.loads(
        render_json(built(ReportBuilder(ReportRequest("day", D1, D1), RULES, now=NOW)))
    )
    jsonschema.validate(empty, json_schema(REPORT_SCHEMA))
    assert (empty["queues"], empty["agents"], empty["tickets"]) == ([], [], [])


def test_plain_csv_is_the_queue_table_with_a_header() -> None:
    builder = hand_made()
    builder.add_ticket(OpenedTicket(D1, "complaint", NOW, NOW, satisfaction=3))
    report = built(builder)
    body = render(report, "csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))

    assert body == render(report, "csv", "queues")
    assert len(rows) == len(report.queues)
    first = rows[0]
    assert (first["period"], first["queue"], first["offered"]) == ("2026-03-02", "support", "6")
    assert (first["service_level_pct"], first["aht"]) == ("25.0", "52.5")
    assert "tickets" not in first
    assert "calls_handled" not in first
    assert "section" not in first
    grand = rows[-1]
    assert (grand["period"], grand["queue"], grand["offered"]) == ("total", "*", "7")
    empty = render(built(ReportBuilder(ReportRequest("day", D1, D1), RULES, now=NOW)), "csv")
    assert len(empty.decode().splitlines()) == 1
    assert empty.decode().startswith("period,queue,offered,")


def test_csv_cells_that_look_like_formulas_are_defused() -> None:
    builder = ReportBuilder(ReportRequest("day", D1, D1), RULES, now=NOW)
    builder.add_call(CallRow(D1, "=HYPERLINK(1)", Outcome.ABANDONED_WAITING, 1.0))
    rows = list(csv.DictReader(io.StringIO(render(built(builder), "csv").decode())))
    assert rows[0]["queue"] == "'=HYPERLINK(1)"


class _Links(HTMLParser):
    """Every ``src`` and ``href`` attribute of a page's real tags (not of escaped text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 (the HTMLParser callback)
        self.links += [
            value or "" for name, value in attrs if name in ("src", "href", "xlink:href")
        ]


def external_links(page: str) -> list[str]:
    """The links of ``page`` that leave it (anything but ``#fragment``)."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    return [link for link in parser.links if not link.startswith("#")]


def test_html_is_self_contained_with_svg_charts_and_escaped_values() -> None:
    builder = hand_made()
    hostile = '<script>alert("x")</script>'
    builder.add_call(CallRow(D2, hostile, Outcome.ANSWERED, 2.0, '"><img src=//evil>', 5.0, 1.0))
    builder.add_ticket(OpenedTicket(D1, "complaint", NOW, NOW, satisfaction=4))
    page = render(built(builder), "html").decode()

    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 4  # service level, calls by outcome, rings per agent, scores
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert external_links(page) == []
    assert "://" not in page
    for loader in ("<link", "<script", "<iframe", "<object", "@import", "url("):
        assert loader not in page
    assert "Within 3 rings" in page
    assert "25.0 %" in page  # the support queue's service level on the first day
    assert "52.5 s" in page  # its AHT
    assert "No calls" not in page

    empty = render(built(ReportBuilder(ReportRequest("week", D1, D2), RULES, now=NOW)), "html")
    assert b"No calls in this period." in empty
    assert b"No tickets" in empty
    assert b"<svg" not in empty


def test_a_chart_draws_a_bar_per_value_and_escapes_its_text() -> None:
    svg = bar_chart(
        "A & B",
        ["d1", "<d2>"],
        [Series("s<1>", [0.5, None], "#000"), Series("s2", [1.0, 0.25], "#111")],
        top=1.0,
        target=("target", 0.8),
    )
    assert svg.count("<rect") == 3 + 2  # three values, two legend keys
    for escaped in ("&lt;d2&gt;", "s&lt;1&gt;", "A &amp; B"):
        assert escaped in svg
    stacked = bar_chart(
        "n", ["d1"], [Series("a", [2.0], "#000"), Series("b", [3.0], "#111")], stacked=True
    )
    heights = [
        float(h)
        for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="13" height="([^"]+)"', stacked)
    ]
    assert heights == pytest.approx([50.0, 75.0])  # 2 and 3 on an axis to 8, over 200 px
    assert 'text-anchor="end">8</text>' in stacked  # ticks at 0, 2, 4, 6, 8


# -- the queries on PostgreSQL ----------------------------------------------------------------


def local(day: int, hour: int = 0, minute: int = 0, second: float = 0.0) -> float:
    """Epoch seconds of 2026-03-``day`` at that local time in Shanghai (UTC+8)."""
    start = datetime(2026, 3, 1, tzinfo=SHANGHAI) + timedelta(days=day - 1)
    return (start + timedelta(hours=hour, minutes=minute, seconds=second)).timestamp()


def answered_call(
    call_id: str,
    queue: str,
    at: float,
    *,
    agent: str,
    wait: float,
    ring: float,
    talk: float,
    wrap_up: float,
    missed_first: str | None = None,
) -> list[Fact]:
    """The facts of a call answered by ``agent`` after ``wait`` s, ``ring`` s of its ring."""
    ticket = f"T-{call_id}"
    answered = at + wait
    facts: list[Fact] = [CallArrived(call_id, ticket, "13900139000", queue, 0, at, "pbx")]
    if missed_first is not None:
        facts.append(
            OfferEnded(
                f"{call_id}-0",
                call_id,
                missed_first,
                queue,
                ticket,
                at,
                at,
                "pbx",
                at + 15.0,
                "pbx",
                OfferResult.NO_ANSWER,
            )
        )
    facts += [
        OfferEnded(
            f"{call_id}-1",
            call_id,
            agent,
            queue,
            ticket,
            answered - ring,
            answered - ring,
            "pbx",
            answered,
            "pbx",
            OfferResult.ANSWERED,
        ),
        CallAnswered(call_id, agent, queue, ticket, at, answered, "pbx"),
        CallEnded(
            call_id=call_id,
            channel=f"PJSIP/t-{call_id}",
            linkedid=call_id,
            ticket=ticket,
            number="13900139000",
            queue=queue,
            original_queue=queue,
            priority=0,
            arrived_at=at,
            arrival_source="pbx",
            answered_at=answered,
            answered_by=agent,
            talk_ended_at=answered + talk,
            ended_at=answered + talk + 0.002,
            end_source="pbx",
            outcome=Outcome.ANSWERED,
            offers=2 if missed_first else 1,
        ),
        WrapUpEnded(agent, call_id, queue, answered + talk, answered + talk + wrap_up),
    ]
    return facts  # fmt: skip


def abandoned_call(call_id: str, queue: str, at: float, wait: float) -> list[Fact]:
    ticket = f"T-{call_id}"
    return [
        CallArrived(call_id, ticket, "13900139001", queue, 0, at, "pbx"),
        CallEnded(call_id=call_id, channel=f"PJSIP/t-{call_id}", linkedid=call_id, ticket=ticket,
                  number="13900139001", queue=queue, original_queue=queue, priority=0,
                  arrived_at=at, arrival_source="pbx", answered_at=None, answered_by=None,
                  talk_ended_at=None, ended_at=at + wait, end_source="pbx",
                  outcome=Outcome.ABANDONED_WAITING, offers=0),
    ]  # fmt: skip


def to_records(facts: Sequence[Fact]) -> list[Record]:
    records: list[Record] = []
    recorder = Recorder(records.append, ring_cadence=5.0, monitor_dir="/rec")
    for fact in facts:
        recorder(fact)
    return records


async def write(pool: Pool, facts: Sequence[Fact]) -> None:
    async with transaction(pool) as conn:
        await apply_records(conn, to_records(facts))


def report_settings(dsn: str, folder: Path, time_zone: str = "Asia/Shanghai") -> Settings:
    return parse_settings(
        {
            "service": {"state_dir": str(folder), "time_zone": time_zone},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {"url": dsn, "outbox_dir": str(folder / "outbox")},
            "queues": [{"name": "support"}, {"name": "sales"}],
            "agents": [
                {"id": "1001", "device": "PJSIP/1001"},
                {"id": "1002", "device": "PJSIP/1002"},
            ],
        },
        source="<report test>",
        env={},
    )


async def store_sample_calls(pool: Pool) -> None:
    """Calls around the local midnights of 1, 2 and 3 March 2026 in Shanghai."""
    await write(
        pool,
        [
            *abandoned_call("before", "support", local(1) - 0.5, 2.0),  # 28 Feb, 23:59:59.5
            *answered_call("b", "support", local(1), agent="1001", wait=12.0, ring=4.0,
                           talk=100.0, wrap_up=8.0),
            *abandoned_call("c", "sales", local(1, 23, 59, 59), 3.0),
            *answered_call("d", "support", local(2), agent="1002", wait=20.0, ring=16.0,
                           talk=50.0, wrap_up=0.0, missed_first="1001"),
            *abandoned_call("after", "support", local(3), 9.0),
        ],
    )  # fmt: skip


async def test_wrap_up_records_fill_the_call_row_idempotently(pg_pool: Pool) -> None:
    facts = answered_call(
        "w", "support", local(1), agent="1001", wait=1, ring=1, talk=10, wrap_up=7.5
    )
    records = to_records(facts)
    assert [r["k"] for r in records][-2:] == ["end", "wrap_up"]
    assert records[-1] == {"k": "wrap_up", "call_id": "w", "agent_id": "1001", "seconds": 7.5,
                           "ended_at": local(1) + 1 + 10 + 7.5, "epoch": 0,
                           "pbx_id": ""}  # fmt: skip
    async with transaction(pg_pool) as conn:
        # In one batch the wrap-up is written after the call, whatever the batch's order.
        await apply_records(conn, [records[-1], *records[:-1]])
    for _ in range(2):
        async with transaction(pg_pool) as conn:
            await apply_records(conn, records)
    row = await pg_pool.fetchrow(
        "select wrap_up_seconds, extract(epoch from wrap_up_ended_at)::float8 as ended "
        "from calls where call_id = 'w'"
    )
    assert row is not None
    assert row["wrap_up_seconds"] == 7.5
    assert row["ended"] == pytest.approx(local(1) + 18.5, abs=1e-6)


async def test_dates_are_inclusive_and_grouped_in_the_configured_time_zone(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await store_sample_calls(pg_pool)
    settings = report_settings(migrated_database_url, tmp_path)

    days = await build_report(pg_pool, parse_request("day", "2026-03-01", "2026-03-02"), settings)
    weeks = await build_report(pg_pool, parse_request("week", "2026-03-01", "2026-03-02"), settings)
    month = await build_report(
        pg_pool, parse_request("month", "2026-03-01", "2026-03-31"), settings
    )
    in_utc = await build_report(
        pg_pool,
        parse_request("day", "2026-03-01", "2026-03-02"),
        replace(settings, service=replace(settings.service, time_zone="UTC")),
    )

    by_day = {(r.period, r.queue): r for r in days.queues}
    assert set(by_day) == {
        (date(2026, 3, 1), "support"),
        (date(2026, 3, 1), "sales"),
        (date(2026, 3, 1), None),
        (date(2026, 3, 2), "support"),
        (date(2026, 3, 2), None),
        (None, "support"),
        (None, "sales"),
        (None, None),
    }
    first = by_day[(date(2026, 3, 1), "support")]
    assert (first.offered, first.answered, first.answered_within_threshold) == (1, 1, 1)
    assert (first.asa, first.wrap_up_seconds) == (12.0, 8.0)
    assert first.aht == pytest.approx(108.0, abs=1e-5)
    assert first.talk_seconds == pytest.approx(100.0, abs=1e-5)
    assert by_day[(date(2026, 3, 1), "sales")].short_abandoned == 1
    second = by_day[(date(2026, 3, 2), "support")]
    assert (second.offers, second.offers_missed, second.offers_answered_within_rings) == (2, 1, 0)
    assert (second.service_level, second.within_rings_rate) == (0.0, 0.0)
    assert second.aht == pytest.approx(50.0, abs=1e-5)
    assert by_day[(None, None)].offered == 3  # the calls just before and after are left out
    agents = {(r.period, r.agent): r for r in days.agents}
    assert (agents[(None, "1001")].offered, agents[(None, "1001")].missed) == (2, 1)
    assert agents[(None, "1002")].calls_handled == 1
    # Sunday 1 March belongs to the week of Monday 23 February.
    assert [(r.period, r.offered) for r in weeks.queues if r.queue is None] == [
        (date(2026, 2, 23), 2),
        (date(2026, 3, 2), 1),
        (None, 3),
    ]
    assert [(r.period, r.offered) for r in month.queues if r.queue is None] == [
        (date(2026, 3, 1), 4),
        (None, 4),
    ]
    # In UTC, 1 March 00:00 in Shanghai is still 28 February: other calls, other days.
    assert {(r.period, r.offered) for r in in_utc.queues if r.queue is None} == {
        (date(2026, 3, 1), 2),
        (date(2026, 3, 2), 1),
        (None, 3),
    }
    empty = await build_report(pg_pool, parse_request("day", "2026-04-01", "2026-04-30"), settings)
    assert (empty.queues, empty.agents, empty.tickets) == ([], [], [])
    assert len(empty.periods) == 30


async def test_ticket_figures_from_the_repository(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    tickets = Tickets(pg_pool, complaint_reply_hours=24)
    opened = datetime(2026, 3, 1, 10, tzinfo=SHANGHAI)
    await tickets.create("C-on-time", actor="t", category="complaint", opened_at=opened)
    await tickets.update(
        "C-on-time", {"replied_at": opened + timedelta(hours=23), "satisfaction": 5}, actor="t"
    )
    await tickets.create("C-late", actor="t", category="complaint", opened_at=opened)
    await tickets.update(
        "C-late", {"replied_at": opened + timedelta(hours=25), "satisfaction": 2}, actor="t"
    )
    await tickets.create("C-open", actor="t", category="complaint", opened_at=opened)
    await tickets.create("R-1", actor="t", category="repair", opened_at=opened - timedelta(days=3))
    await tickets.dispatch(
        "R-1", party="in_house", due_at=opened, actor="t", at=opened - timedelta(days=2)
    )
    await tickets.complete_repair("R-1", completed_at=opened - timedelta(hours=1), actor="t")
    await tickets.create("R-2", actor="t", category="repair", opened_at=opened)
    await tickets.dispatch("R-2", party="in_house", due_at=opened, actor="t", at=opened)
    await tickets.complete_repair("R-2", completed_at=opened + timedelta(days=1), actor="t")
    settings = report_settings(migrated_database_url, tmp_path)
    request = parse_request("day", "2026-03-01", "2026-03-02")

    before_due = await build_report(pg_pool, request, settings, now=opened + timedelta(hours=2))
    after_due = await build_report(pg_pool, request, settings, now=opened + timedelta(days=2))

    rows = {row.period: row for row in before_due.tickets}
    first = rows[date(2026, 3, 1)]
    assert (first.tickets, first.complaints, first.repairs) == (4, 3, 1)
    assert (first.complaints_on_time, first.complaints_late, first.complaints_pending) == (1, 1, 1)
    assert first.reply_on_time_rate == 0.5
    assert (first.repairs_completed, first.repairs_on_time, first.repair_timeliness) == (1, 1, 1.0)
    assert (first.satisfaction_count, first.satisfaction_average) == (2, 3.5)
    second = rows[date(2026, 3, 2)]
    assert (second.tickets, second.repairs_completed, second.repairs_late) == (0, 1, 1)
    total = rows[None]
    assert (total.repairs_completed, total.repair_timeliness) == (2, 0.5)
    assert repr(total.repair_timeliness) == repr(
        (
            await tickets.repair_timeliness(
                opened - timedelta(hours=10), opened + timedelta(days=2)
            )
        ).rate
    )
    late = next(row for row in after_due.tickets if row.period is None)
    assert (late.complaints_late, late.complaints_pending, late.reply_on_time_rate) == (2, 0, 1 / 3)


# -- the command line -------------------------------------------------------------------------

CONFIG = """
[service]
time_zone = "Asia/Shanghai"

[[queues]]
name = "support"

[[queues]]
name = "sales"

[[agents]]
id = "1001"
device = "PJSIP/1001"

[[agents]]
id = "1002"
device = "PJSIP/1002"
"""


def run_report(config: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": dsn}
    return run_hotline("report", "--config", str(config), *args, env=env)


async def test_the_report_command_writes_each_format(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await store_sample_calls(pg_pool)
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG, encoding="utf-8")
    dates = ("--from", "2026-03-01", "--to", "2026-03-02")
    out = tmp_path / "report.html"

    as_json, as_csv, as_html, empty_json, empty_csv, empty_html = await asyncio.gather(
        *(
            asyncio.to_thread(run_report, config, migrated_database_url, *args)
            for args in [
                ("--period", "day", *dates),
                ("--period", "week", *dates, "--format", "csv"),
                ("--period", "month", *dates, "--format", "html", "--out", str(out)),
                ("--period", "day", "--from", "2027-01-01", "--to", "2027-01-31"),
                (
                    "--period",
                    "day",
                    "--from",
                    "2027-01-01",
                    "--to",
                    "2027-01-31",
                    "--format",
                    "csv",
                ),
                (
                    "--period",
                    "day",
                    "--from",
                    "2027-01-01",
                    "--to",
                    "2027-01-01",
                    "--format",
                    "html",
                ),
            ]
        )
    )

    for result in (as_json, as_csv, as_html, empty_json, empty_csv, empty_html):
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    document = json.loads(as_json.stdout)
    assert document["time_zone"] == "Asia/Shanghai"
    total = document["queues"][-1]
    assert (total["period"], total["queue"], total["offered"], total["answered"]) == (
        None,
        None,
        3,
        2,
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    weekly = [r for r in rows if r["queue"] == "*"]
    assert [(r["period"], r["offered"]) for r in weekly] == [
        ("2026-02-23", "2"),
        ("2026-03-02", "1"),
        ("total", "3"),
    ]
    assert as_html.stdout == ""
    page = out.read_text(encoding="utf-8")
    assert "<svg" in page
    assert "2026-03-01" in page
    assert external_links(page) == []
    empty = json.loads(empty_json.stdout)
    assert (empty["queues"], empty["agents"], empty["tickets"]) == ([], [], [])
    assert len(empty["periods"]) == 31
    assert [line.split(",")[:3] for line in empty_csv.stdout.splitlines()] == [
        ["period", "queue", "offered"]
    ]
    assert "No calls in this period." in empty_html.stdout


async def test_the_report_command_explains_bad_input(
    migrated_database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG, encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text("[service\n", encoding="utf-8")
    dates = ("--from", "2026-03-01", "--to", "2026-03-02")
    dsn = migrated_database_url
    day = ("--period", "day")
    nowhere = str(tmp_path / "no" / "such" / "dir.json")
    cases: list[tuple[Path, str, tuple[str, ...], str]] = [
        (config, dsn, ("--period", "year", *dates), "--period: must be one of day, week, month"),
        (config, dsn, (*day, *dates, "--format", "pdf"), "--format: must be one of csv, json"),
        (config, dsn, (*day, "--from", "2026-02-30", "--to", "x"), "--from: must be a date"),
        (config, dsn, (*day, "--from", "2026-03-02", "--to", "2026-03-01"), "--to: must not be"),
        (config, dsn, (*day, "--from", "2020-01-01", "--to", "2026-03-01"), "at most 366 days"),
        (config, dsn, (*day, *dates, "--out", nowhere), "cannot write"),
        (broken, dsn, (*day, *dates), "invalid configuration"),
        (config, "", (*day, *dates), "no database configured"),
        (config, "postgresql://nobody@127.0.0.1:1/none", (*day, *dates), "cannot reach"),
    ]

    results = await asyncio.gather(
        *(asyncio.to_thread(run_report, path, dsn, *args) for path, dsn, args, _ in cases)
    )

    for (_, _, args, message), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


# -- the API ----------------------------------------------------------------------------------


async def test_the_api_serves_reports_to_supervisors_and_admins(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        await store_sample_calls(api.pool)
        query = "/api/reports?period=day&from=2026-02-28&to=2026-03-03"
        sam = await api.sign_in("sam")
        root = await api.sign_in("root")
        alice = await api.sign_in("alice")
        as_json = await sam.call("GET", query)
        document = await as_json.json()
        as_csv = await root.call("GET", query + "&format=csv")
        csv_text = await as_csv.text()
        as_html = await api.bearer("GET", query + "&format=html")
        page = await as_html.text()
        refused = await alice.call("GET", query)
        refused_body = await refused.json()
        anonymous = await (await api.client()).get(query)
        spec = await (await api.bearer("GET", "/api/openapi.json")).json()

    assert as_json.status == 200
    assert as_json.content_type == "application/json"
    jsonschema.validate(document, json_schema(REPORT_SCHEMA))
    # The API's settings are in UTC: 1 March 00:00 in Shanghai is 28 February there.
    assert [r["offered"] for r in document["queues"] if r["queue"] is None] == [2, 2, 1, 5]
    assert as_csv.status == 200
    assert as_csv.content_type == "text/csv"
    assert as_csv.charset == "utf-8"
    assert (
        'filename="hotline-report-2026-02-28-2026-03-03.csv"'
        in as_csv.headers["Content-Disposition"]
    )
    assert csv_text.splitlines()[0].startswith("period,queue,offered,answered,")
    assert as_html.status == 200
    assert as_html.content_type == "text/html"
    assert as_html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<svg" in page
    assert external_links(page) == []
    assert refused.status == 403
    assert refused_body["error"] == "forbidden"
    assert anonymous.status == 401
    operation = spec["paths"]["/api/reports"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "text/html",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/zip",
    }
    assert {p["name"] for p in operation["parameters"]} == {
        "period",
        "from",
        "to",
        "format",
        "section",
        "lang",
        "site",
    }


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("period=year&from=2026-03-01&to=2026-03-02", {"period"}),
        ("period=day&from=2026-3-1&to=2026-03-02", {"from"}),
        ("period=day&from=2026-02-30&to=2026-13-01", {"from", "to"}),
        ("period=day&from=2026-03-02&to=2026-03-01", {"to"}),
        ("period=day&from=2024-01-01&to=2026-03-01", {"to"}),
        ("period=day&from=2026-03-01&to=2026-03-02&format=pdf", {"format"}),
        ("period=day&from=2026-03-01", {"to"}),
        ("period=day&from=2026-03-01&to=2026-03-02&queue=x", {"queue"}),
    ],
)
async def test_bad_report_parameters_are_422_naming_the_fields(
    migrated_database_url: str, tmp_path: Path, query: str, fields: set[str]
) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        response = await api.bearer("GET", f"/api/reports?{query}")
        body = await response.json()
    assert response.status == 422
    assert body["error"] == "validation"
    assert set(body["fields"]) == fields


async def test_an_empty_range_is_an_empty_report_over_the_api(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        response = await api.bearer(
            "GET", "/api/reports?period=month&from=2026-01-01&to=2026-12-31"
        )
        document = await response.json()
        page = await (
            await api.bearer(
                "GET", "/api/reports?period=day&from=2026-01-01&to=2026-01-01&format=html"
            )
        ).text()
    assert response.status == 200
    assert (document["queues"], document["agents"], document["tickets"]) == ([], [], [])
    assert len(document["periods"]) == 12
    assert "No calls in this period." in page


# -- the overdue tickets gauge ----------------------------------------------------------------


async def complaints_overdue(client: TestClient[Any, Any], count: int) -> bool:
    """Whether the overdue gauge shows ``count`` complaints."""
    return (await overdue_gauge(client)).get("complaint") == count


async def overdue_gauge(client: TestClient[Any, Any]) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {
        sample.labels["category"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hotline_tickets_overdue"
    }


async def test_the_overdue_gauge_follows_the_complaints_in_postgresql(
    migrated_database_url: str, tmp_path: Path
) -> None:
    settings = parse_settings(
        {
            "service": {"state_dir": str(tmp_path)},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {
                "url": migrated_database_url,
                "outbox_dir": str(tmp_path / "outbox"),
                "reconcile_interval": 0.1,
            },
            "queues": [{"name": "support"}],
            "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
        },
        env={},
    )
    server = TestServer(create_app(settings))
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        at_start = await overdue_gauge(client)
        repository = Tickets(server.app[STORE].pool, complaint_reply_hours=1)
        long_ago = datetime.now(UTC) - timedelta(hours=3)
        await repository.create("T-late", actor="t", category="complaint", opened_at=long_ago)
        await repository.create("T-fresh", actor="t", category="complaint")
        await repository.create("T-asked", actor="t", category="consultation", opened_at=long_ago)
        # The store's reconciliation task updates the gauge: poll it.
        await eventually(lambda: complaints_overdue(client, 1), 10, what="one overdue")
        seen = await overdue_gauge(client)
        await repository.update("T-late", {"replied_at": datetime.now(UTC)}, actor="t")
        await eventually(lambda: complaints_overdue(client, 0), 10, what="none overdue")
    finally:
        await client.close()

    assert at_start == dict.fromkeys(
        ("consultation", "complaint", "repair", "suggestion", "other"), 0.0
    )
    assert seen["complaint"] == 1
    assert seen["consultation"] == 0
