"""The rows of a report, read from PostgreSQL, and :func:`build_report`.

Plain SQL on asyncpg. Each query selects by a timestamp in the range and labels
each row with its calendar period, both in the configured time zone:
``date_trunc(period, t at time zone tz)`` is the period's first date, and the
range is ``[from 00:00, to + 1 day 00:00)`` local time, so both dates are
included and the indexes on ``calls.arrived_at`` and ``tickets.opened_at`` /
``completed_at`` serve it. All queries run in one read-only, repeatable-read
transaction: one snapshot, so the calls, their rings and the tickets agree. Rows
stream through a cursor into :class:`~hotline.reports.aggregate.ReportBuilder`,
so memory does not grow with the number of calls, in a fixed order, so the same
data always sums to the same figures (to the last bit of every float).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

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
from hotline.reports.period import ReportRequest
from hotline.store.db import Pool

__all__ = ["build_report"]

_PERIOD: Final = "(date_trunc($1, {column} at time zone $2))::date"
_IN_RANGE: Final = (
    "{column} >= ($3::date::timestamp at time zone $2) "
    "and {column} < (($4::date + 1)::timestamp at time zone $2)"
)


def _range_query(select: str, column: str) -> str:
    return select.format(
        period=_PERIOD.format(column=column), in_range=_IN_RANGE.format(column=column)
    )


_CALLS_SQL: Final = _range_query(
    """
    select {period} as period, c.original_queue as queue, c.outcome, c.wait_seconds,
           c.answered_by,
           case when c.answered_at is not null then greatest(
               extract(epoch from coalesce(c.talk_ended_at, c.ended_at) - c.answered_at)::float8,
               0) end as talk_seconds,
           c.wrap_up_seconds
    from calls c
    where {in_range}
    order by c.arrived_at, c.id
    """,
    "c.arrived_at",
)
_OFFERS_SQL: Final = _range_query(
    """
    select {period} as period, c.original_queue as queue, o.agent_id, o.result, o.ring_seconds
    from call_offers o join calls c on c.call_id = o.call_id
    where {in_range}
    order by c.arrived_at, o.id
    """,
    "c.arrived_at",
)
_TICKETS_SQL: Final = _range_query(
    """
    select {period} as period, t.category, t.due_at, t.replied_at, t.satisfaction
    from tickets t
    where {in_range}
    """,
    "t.opened_at",
)
_REPAIRS_SQL: Final = _range_query(
    """
    select {period} as period, t.completed_on_time
    from tickets t
    where {in_range}
    """,
    "t.completed_at",
)
_PREFETCH: Final = 2000
"""Rows fetched per round trip."""


async def build_report(
    pool: Pool, request: ReportRequest, settings: Settings, *, now: datetime | None = None
) -> Report:
    """The report ``request`` asks for, from the database behind ``pool``.

    Periods and dates are in ``[service] time_zone``; the figures use ``[routing]``
    and ``[sla]`` (see :mod:`hotline.reports.aggregate`). ``now`` (default: the
    database's) is when the report is made: complaints not replied to are judged
    as of then.
    """
    zone = settings.service.time_zone
    args = (request.period, zone, request.first, request.last)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if now is None:
            now = await conn.fetchval("select now()")
        builder = ReportBuilder(request, SlaRules.of(settings), now=now)
        async for row in conn.cursor(_CALLS_SQL, *args, prefetch=_PREFETCH):
            outcome = row["outcome"]
            builder.add_call(
                CallRow(
                    period=row["period"],
                    queue=row["queue"],
                    outcome=Outcome(outcome) if outcome is not None else None,
                    wait_seconds=row["wait_seconds"],
                    answered_by=row["answered_by"],
                    talk_seconds=row["talk_seconds"],
                    wrap_up_seconds=row["wrap_up_seconds"],
                )
            )
        async for row in conn.cursor(_OFFERS_SQL, *args, prefetch=_PREFETCH):
            builder.add_offer(
                OfferRow(
                    period=row["period"],
                    queue=row["queue"],
                    agent=row["agent_id"],
                    result=OfferResult(row["result"]),
                    ring_seconds=row["ring_seconds"],
                )
            )
        async for row in conn.cursor(_TICKETS_SQL, *args, prefetch=_PREFETCH):
            builder.add_ticket(
                OpenedTicket(
                    period=row["period"],
                    category=row["category"],
                    due_at=row["due_at"],
                    replied_at=row["replied_at"],
                    satisfaction=row["satisfaction"],
                )
            )
        async for row in conn.cursor(_REPAIRS_SQL, *args, prefetch=_PREFETCH):
            builder.add_repair(CompletedRepair(row["period"], row["completed_on_time"]))
    return builder.build(time_zone=zone)
