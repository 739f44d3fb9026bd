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
from typing import Any, Final
from zoneinfo import ZoneInfo

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
from hotline.reports.period import ReportRequest, interval_sql, local_start, periods
from hotline.reports.presence import PresenceBuilder, StateChange
from hotline.store.db import Pool

__all__ = ["build_report"]

_PERIOD: Final = "(date_trunc($1, {column} at time zone $2))::date"
_SLOT: Final = "date_bin($1, {column} at time zone $2, timestamp '2000-01-01')"
_IN_RANGE: Final = (
    "{column} >= ($3::date::timestamp at time zone $2) "
    "and {column} < (($4::date + 1)::timestamp at time zone $2)"
)


def _range_query(select: str, column: str) -> tuple[str, str]:
    """``select`` by calendar period and by interval (``$1`` a ``date_bin`` stride)."""
    in_range = _IN_RANGE.format(column=column)
    return (
        select.format(period=_PERIOD.format(column=column), in_range=in_range),
        select.format(period=_SLOT.format(column=column), in_range=in_range),
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
    select {period} as period, t.completed_on_time, t.dispatch_party
    from tickets t
    where {in_range}
    """,
    "t.completed_at",
)
_CALLBACKS_SQL: Final = _range_query(
    """
    select {period} as period, 'scheduled' as status
    from callbacks c
    where {in_range}
    """,
    "c.created_at",
)
_CALLBACK_ENDS_SQL: Final = _range_query(
    """
    select {period} as period, c.status
    from callbacks c
    where c.status in ('done', 'failed') and {in_range}
    """,
    "c.last_attempt_at",
)
_BOUNDS_SQL: Final = """
select ($1::date::timestamp at time zone $2) as start,
       (($3::date + 1)::timestamp at time zone $2) as "end"
"""
_STATE_BEFORE_SQL: Final = """
select agent_id, event, reason, at from (
    select distinct on (agent_id) id, agent_id, event, reason, at from agent_state_log
    where at < $1 and event in ('login', 'logout') order by agent_id, at desc, id desc
) sessions
union all
select agent_id, event, reason, at from (
    select distinct on (agent_id) id, agent_id, event, reason, at from agent_state_log
    where at < $1 and event in ('pause', 'unpause', 'logout') order by agent_id, at desc, id desc
) pauses
order by agent_id, at
"""
_STATE_IN_RANGE_SQL: Final = """
select agent_id, event, reason, at from agent_state_log
where at >= $1 and at < $2
order by agent_id, at, id
"""
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
    stride = interval_sql(request.period)
    slot = int(stride is not None)
    args: tuple[object, ...] = (stride or request.period, zone, request.first, request.last)
    names = {agent.id: agent.name for agent in settings.agents.values()}
    members: dict[str, set[str]] = {}
    for agent in settings.agents.values():
        for queue in agent.queues:
            members.setdefault(queue, set()).add(agent.id)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if now is None:
            now = await conn.fetchval("select now()")
        builder = ReportBuilder(
            request,
            SlaRules.of(settings),
            now=now,
            names=names,
            members={queue: frozenset(ids) for queue, ids in members.items()},
        )
        async for row in conn.cursor(_CALLS_SQL[slot], *args, prefetch=_PREFETCH):
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
        async for row in conn.cursor(_OFFERS_SQL[slot], *args, prefetch=_PREFETCH):
            builder.add_offer(
                OfferRow(
                    period=row["period"],
                    queue=row["queue"],
                    agent=row["agent_id"],
                    result=OfferResult(row["result"]),
                    ring_seconds=row["ring_seconds"],
                )
            )
        async for row in conn.cursor(_TICKETS_SQL[slot], *args, prefetch=_PREFETCH):
            builder.add_ticket(
                OpenedTicket(
                    period=row["period"],
                    category=row["category"],
                    due_at=row["due_at"],
                    replied_at=row["replied_at"],
                    satisfaction=row["satisfaction"],
                )
            )
        async for row in conn.cursor(_REPAIRS_SQL[slot], *args, prefetch=_PREFETCH):
            builder.add_repair(
                CompletedRepair(row["period"], row["completed_on_time"], row["dispatch_party"])
            )
        for sql in (_CALLBACKS_SQL[slot], _CALLBACK_ENDS_SQL[slot]):
            async for row in conn.cursor(sql, *args, prefetch=_PREFETCH):
                builder.add_callback(row["period"], row["status"])
        presence = await _presence(conn, request, zone, now)
        builder.add_presence(presence.times, presence.logged_in)
    return builder.build(time_zone=zone)


async def _presence(conn: Any, request: ReportRequest, zone: str, now: datetime) -> PresenceBuilder:
    """The agents' logged-in and paused time of the range, cut at its periods."""
    bounds = await conn.fetchrow(_BOUNDS_SQL, request.first, zone, request.last)
    tz = ZoneInfo(zone)
    found = periods(request)
    boundaries = [bounds["start"]]
    boundaries += [local_start(p.start).replace(tzinfo=tz) for p in found[1:]]
    builder = PresenceBuilder(boundaries, [p.start for p in found], bounds["end"], now)

    def change(row: Any) -> StateChange:
        return StateChange(row["agent_id"], row["event"], row["reason"], row["at"])

    for row in await conn.fetch(_STATE_BEFORE_SQL, bounds["start"]):
        builder.before(change(row))
    async for row in conn.cursor(
        _STATE_IN_RANGE_SQL, bounds["start"], bounds["end"], prefetch=_PREFETCH
    ):
        builder.add(change(row))
    builder.finish()
    return builder
