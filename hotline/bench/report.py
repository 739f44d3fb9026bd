"""``hotline bench report``: the month report over a large month, per format.

Creates a fresh database beside the one ``--database-url`` names (dropped at
the end), migrates it, loads ``--calls`` synthetic calls of one month (30 days,
Asia/Shanghai) with their rings (one in four calls has a missed ring before the
answer; a third of the answered calls have a survey score) and a ticket each (a
tenth complaints, a tenth repairs with a dispatch party, scores on half), with
COPY, plus a login and logout a day for 50 agents, then times
:func:`~hotline.reports.queries.build_report` of the month and the rendering of
each format, best of ``--rounds``. The roll-ups are configured first (as the
service does at start), so the COPY fills them through the same statement
triggers that keep them in production, and the ``load`` step's seconds include
that. One JSON line per step. The figures are
deterministic (a seeded generator), so runs compare.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from hotline.bench.common import emit
from hotline.config import Settings, parse_settings
from hotline.reports.period import parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import render
from hotline.store.db import create_pool
from hotline.store.migrate import migrate
from hotline.store.rollup import configure_rollup

__all__ = ["run"]

_ZONE = ZoneInfo("Asia/Shanghai")
_START = datetime(2026, 11, 1, tzinfo=_ZONE)
_QUEUES = ("support", "sales", "repairs", "billing", "vip")
_AGENTS = [f"{2000 + n}" for n in range(50)]
_CHUNK = 50_000
_PARTIES = ("in_house", "developer_warranty", "equipment_vendor", "tenant_contractor")


def _settings(dsn: str, folder: str) -> Settings:
    return parse_settings(
        {
            "service": {"state_dir": folder, "time_zone": "Asia/Shanghai"},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {"url": dsn, "outbox_dir": f"{folder}/outbox"},
            "queues": [{"name": q} for q in _QUEUES],
            "agents": [
                {"id": a, "name": f"Agent {a}", "device": f"PJSIP/{a}", "queues": list(_QUEUES)}
                for a in _AGENTS
            ],
        },
        source="<bench report>",
        env={},
    )


def _ticket(n: int, arrived: datetime, rng: random.Random) -> tuple[Any, ...]:
    """Ticket ``n``: a tenth complaints, a tenth repairs with a party, half scored."""
    kind = rng.random()
    category = "complaint" if kind < 0.1 else "repair" if kind < 0.2 else "consultation"
    due = arrived + timedelta(hours=24)
    replied = arrived + timedelta(hours=rng.uniform(1, 30)) if category == "complaint" else None
    party = _PARTIES[n % 4] if category == "repair" else None
    dispatched = arrived + timedelta(hours=1) if party else None
    completed = arrived + timedelta(hours=rng.uniform(2, 72)) if party else None
    on_time = (completed <= arrived + timedelta(hours=48)) if completed else None
    score = rng.randint(1, 5) if n % 2 else None
    return (n, f"B{n:09d}", category, arrived, due, replied, party, dispatched, completed,
            on_time, score)  # fmt: skip


def _answered(
    n: int, arrived: datetime, wait: float, queue: str, rng: random.Random
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """An answered call (a third with a survey score) and its rings: a quarter have a missed
    ring first."""
    call_id = f"c{n}"
    agent = _AGENTS[n % len(_AGENTS)]
    answered = arrived + timedelta(seconds=wait)
    talk = rng.uniform(30, 400)
    ended = answered + timedelta(seconds=talk)
    survey = (1 + n % 5, ended) if n % 3 == 0 else (None, None)
    call = (call_id, n, "1390000" + str(n % 10000), queue, queue, "completed", arrived, "pbx",
            answered, agent, ended, ended, "answered", wait, rng.uniform(0, 30),
            *survey)  # fmt: skip
    ring = min(wait, rng.uniform(1, 20))
    offers = []
    if n % 4 == 0:
        missed = _AGENTS[(n + 1) % len(_AGENTS)]
        missed_end = arrived + timedelta(seconds=15)
        offers.append((f"{call_id}-0", call_id, missed, queue, arrived, arrived, "pbx",
                       missed_end, "pbx", "no_answer", 15.0, 3.0))  # fmt: skip
    start = answered - timedelta(seconds=ring)
    offers.append((f"{call_id}-1", call_id, agent, queue, start, start, "pbx", answered,
                   "pbx", "answered", ring, ring / 5))  # fmt: skip
    return call, offers


def _rows(calls: int) -> Iterator[tuple[list[tuple[Any, ...]], ...]]:
    """Chunks of (tickets, calls, offers) rows."""
    rng = random.Random(15)
    month = 30 * 86400
    tickets: list[tuple[Any, ...]] = []
    call_rows: list[tuple[Any, ...]] = []
    offers: list[tuple[Any, ...]] = []
    for n in range(1, calls + 1):
        arrived = _START + timedelta(seconds=month * n / (calls + 1))
        queue = _QUEUES[n % len(_QUEUES)]
        tickets.append(_ticket(n, arrived, rng))
        wait = rng.expovariate(1 / 20)
        fate = rng.random()
        if fate < 0.8:
            call, rings = _answered(n, arrived, wait, queue, rng)
            call_rows.append(call)
            offers += rings
        else:
            ended = arrived + timedelta(seconds=wait)
            outcome = "abandoned_waiting" if fate < 0.95 else "overflowed"
            call_rows.append((f"c{n}", n, "1390000" + str(n % 10000), queue, queue, "completed",
                              arrived, "pbx", None, None, None, ended, outcome, wait, None,
                              None, None))  # fmt: skip
        if n % _CHUNK == 0 or n == calls:
            yield tickets, call_rows, offers
            tickets, call_rows, offers = [], [], []


_TICKET_COLUMNS = ("id", "number", "category", "opened_at", "due_at", "replied_at",
                   "dispatch_party", "dispatched_at", "completed_at", "completed_on_time",
                   "satisfaction")  # fmt: skip
_CALL_COLUMNS = ("call_id", "ticket_id", "caller_number", "queue", "original_queue", "state",
                 "arrived_at", "arrival_source", "answered_at", "answered_by", "talk_ended_at",
                 "ended_at", "outcome", "wait_seconds", "wrap_up_seconds", "survey_score",
                 "survey_at")  # fmt: skip
_OFFER_COLUMNS = ("offer_id", "call_id", "agent_id", "queue", "requested_at", "ring_started_at",
                  "ring_start_source", "ended_at", "end_source", "result", "ring_seconds",
                  "rings")  # fmt: skip


async def _load(dsn: str, calls: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for tickets, call_rows, offers in _rows(calls):
            await conn.copy_records_to_table("tickets", records=tickets, columns=_TICKET_COLUMNS)
            await conn.copy_records_to_table("calls", records=call_rows, columns=_CALL_COLUMNS)
            await conn.copy_records_to_table("call_offers", records=offers, columns=_OFFER_COLUMNS)
        log = []
        for day in range(30):
            for number, agent in enumerate(_AGENTS):
                login = _START + timedelta(days=day, hours=8)
                for event, at in (("login", login), ("logout", login + timedelta(hours=9))):
                    log.append((agent, event, at, f"{agent}-{day}-{event}-{number}"))
        await conn.copy_records_to_table(
            "agent_state_log", records=log, columns=("agent_id", "event", "at", "dedup_key")
        )
        await conn.execute("analyze")
        offers_count = await conn.fetchval("select count(*) from call_offers")
        emit({"bench": "report", "step": "load", "calls": calls, "offers": offers_count,
              "tickets": calls, "seconds": round(time.perf_counter() - started, 2)})  # fmt: skip
    finally:
        await conn.close()


async def _time_with(dsn: str, rounds: int, settings: Settings) -> None:
    pool = await create_pool(dsn, max_size=1)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    try:
        for fmt in ("json", "html", "xlsx", "zip", "csv"):
            request = parse_request("month", "2026-11-01", "2026-11-30", fmt)
            best_query = best_render = float("inf")
            size = 0
            for _ in range(rounds):
                started = time.perf_counter()
                report = await build_report(pool, request, settings, now=now)
                queried = time.perf_counter()
                body = render(report, fmt)
                best_query = min(best_query, queried - started)
                best_render = min(best_render, time.perf_counter() - queried)
                size = len(body)
            emit({"bench": "report", "step": "month", "format": fmt,
                  "query_seconds": round(best_query, 3), "render_seconds": round(best_render, 3),
                  "total_seconds": round(best_query + best_render, 3), "bytes": size})  # fmt: skip
    finally:
        await pool.close()


async def _main(dsn: str, calls: int, rounds: int) -> None:
    name = f"hotline_bench_report_{int(time.time())}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    fresh = dsn.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(fresh)
        with tempfile.TemporaryDirectory() as folder:
            settings = _settings(fresh, folder)
        pool = await create_pool(fresh, max_size=1)
        try:
            await configure_rollup(pool, settings)
        finally:
            await pool.close()
        await _load(fresh, calls)
        await _time_with(fresh, rounds, settings)
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin.close()


def run(*, dsn: str, calls: int, rounds: int) -> None:
    """Load, time, print JSON lines (see the module docstring)."""
    asyncio.run(_main(dsn, calls, rounds))
