"""The rows of a report, read from PostgreSQL, and :func:`build_report`.

Plain SQL on asyncpg. PostgreSQL does the counting: each query selects by a
timestamp in the range, labels each row with its calendar period (or interval),
and groups by period and queue and by period and agent, so what comes back is
one row a group, whatever the number of calls. The counts use the definitions
of :mod:`hotline.domain.sla` (a wait ``<=`` the threshold is within it, a ring
``<=`` ``sla_rings`` x cadence is within the rings, the same outcomes count as
abandoned, missed and cancelled), with the thresholds passed as parameters.

The calls and the rings are summed in two steps: first per period, queue, agent
and the flags each definition needs (outcome, within the threshold, short;
result, within the rings), a few hundred groups a period, then those groups per
period and queue and per period and agent (``GROUPING SETS``). Seconds are
summed as whole nanoseconds (the talk, which comes from timestamps, as
microseconds): integer sums are exact, so they do not depend on the order
PostgreSQL adds the rows in (a parallel or synchronised scan changes it) and the
same data always gives the same figures, and they are cheap (a ``numeric`` sum
of the floats costs about twice as much). A total is then within half a
nanosecond a call of the row-by-row float sums of
:class:`~hotline.reports.aggregate.ReportBuilder`, far below the microseconds the
timestamps keep.

Periods are in the configured time zone: ``date_trunc(period, t at time zone
tz)`` is the period's first date, and the range is ``[from 00:00, to + 1 day
00:00)`` local time, so both dates are included and the indexes on
``calls.arrived_at`` and ``tickets.opened_at`` / ``completed_at`` serve it. All
queries run in one read-only, repeatable-read transaction: one snapshot, so the
calls, their rings and the tickets agree; it turns JIT compilation off (it cost
seconds of compiling for a query that runs once), gives the hash joins and
aggregates more memory (``_SETTINGS``), and has the calls and rings grouped by
hashing rather than sorting (``_HASH_GROUPS``). The agents' login and pause log (a few
rows per agent a day) is still read row by row, into
:class:`~hotline.reports.presence.PresenceBuilder`.

The service's engine shares the event loop, so nothing here holds it long: the
grouped rows (up to a few hundred thousand for 15-minute intervals over two
months) come through cursors in batches, the loop running between them, and
:meth:`~hotline.reports.aggregate.ReportBuilder.build`, which adds up the totals
and makes the rows, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from hotline.config import Settings
from hotline.domain.sla import CallTally
from hotline.reports.aggregate import (
    CallGroup,
    OfferGroup,
    RepairGroup,
    Report,
    ReportBuilder,
    SlaRules,
    TicketGroup,
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
    with parts as (
        select {period} as period, c.original_queue as queue,
               case when c.outcome = 'answered' then c.answered_by end as agent,
               c.outcome, coalesce(c.wait_seconds, 0) <= $5 as within,
               coalesce(c.wait_seconds, 0) <= $6 as short, count(*) as calls,
               sum((coalesce(c.wait_seconds, 0) * 1e9)::int8) as wait_ns,
               sum((greatest(date_part('epoch', coalesce(c.talk_ended_at, c.ended_at)
                   - c.answered_at), 0) * 1e6)::int8) as talk_us,
               sum((coalesce(c.wrap_up_seconds, 0) * 1e9)::int8) as wrap_up_ns,
               max(c.wait_seconds) as longest_wait,
               count(c.survey_score) as survey_responses,
               coalesce(sum(c.survey_score), 0) as survey_total
        from calls c
        where {in_range}
        group by 1, 2, 3, 4, 5, 6
    ), marked as (
        select *, outcome = 'answered' as answered,
               coalesce(outcome in ('abandoned_waiting', 'abandoned_ringing'), false) as abandoned
        from parts
    )
    select period, queue, agent, grouping(queue) = 1 as by_agent,
           coalesce(sum(calls) filter (where outcome is null), 0)::int8 as in_progress,
           coalesce(sum(calls) filter (where answered), 0)::int8 as answered,
           coalesce(sum(calls) filter (where answered and within), 0)::int8 as answered_within,
           coalesce(sum(calls) filter (where abandoned), 0)::int8 as abandoned,
           coalesce(sum(calls) filter (where abandoned and within), 0)::int8
               as abandoned_within,
           coalesce(sum(calls) filter (where abandoned and short), 0)::int8 as short_abandoned,
           coalesce(sum(calls) filter (where outcome is not null and not answered
               and not abandoned), 0)::int8 as overflowed,
           (coalesce(sum(wait_ns) filter (where answered), 0) / 1e9)::float8 as answered_wait,
           (coalesce(sum(talk_us) filter (where outcome is not null), 0) / 1e6)::float8 as talk,
           (coalesce(sum(wrap_up_ns) filter (where outcome is not null), 0) / 1e9)::float8
               as wrap_up,
           coalesce(sum(calls) filter (where outcome = 'abandoned_waiting'), 0)::int8
               as abandoned_waiting,
           coalesce(sum(calls) filter (where outcome = 'abandoned_ringing'), 0)::int8
               as abandoned_ringing,
           max(longest_wait) filter (where outcome is not null) as longest_wait,
           sum(survey_responses)::int8 as survey_responses,
           sum(survey_total)::int8 as survey_total
    from marked
    group by grouping sets ((period, queue), (period, agent))
    """,
    "c.arrived_at",
)
_OFFERS_SQL: Final = _range_query(
    """
    with parts as (
        select {period} as period, c.original_queue as queue, o.agent_id as agent, o.result,
               o.ring_seconds <= $5 as within, count(*) as offers
        from call_offers o join calls c on c.call_id = o.call_id
        where {in_range}
        group by 1, 2, 3, 4, 5
    )
    select period, queue, agent, grouping(queue) = 1 as by_agent,
           coalesce(sum(offers) filter (where result = 'answered'), 0)::int8 as answered,
           coalesce(sum(offers) filter (where result = 'answered' and within), 0)::int8
               as answered_within,
           coalesce(sum(offers) filter (where result = 'no_answer'), 0)::int8 as no_answer,
           coalesce(sum(offers) filter (where result = 'busy'), 0)::int8 as busy,
           coalesce(sum(offers) filter (where result = 'unavailable'), 0)::int8 as unavailable,
           coalesce(sum(offers) filter (where result not in
               ('answered', 'no_answer', 'busy', 'unavailable')), 0)::int8 as cancelled
    from parts
    group by grouping sets ((period, queue), (period, agent))
    """,
    "c.arrived_at",
)
_TICKETS_SQL: Final = _range_query(
    """
    select {period} as period, count(*) as tickets,
           count(*) filter (where t.category = 'complaint') as complaints,
           count(*) filter (where t.category = 'complaint' and t.replied_at <= t.due_at)
               as on_time,
           count(*) filter (where t.category = 'complaint' and (t.replied_at > t.due_at
               or (t.replied_at is null and t.due_at < $5))) as late,
           count(*) filter (where t.category = 'repair') as repairs,
           count(*) filter (where t.satisfaction = 1) as s1,
           count(*) filter (where t.satisfaction = 2) as s2,
           count(*) filter (where t.satisfaction = 3) as s3,
           count(*) filter (where t.satisfaction = 4) as s4,
           count(*) filter (where t.satisfaction = 5) as s5
    from tickets t
    where {in_range}
    group by 1
    """,
    "t.opened_at",
)
_REPAIRS_SQL: Final = _range_query(
    """
    select {period} as period, coalesce(t.dispatch_party, 'unassigned') as party,
           count(*) as completed,
           count(*) filter (where t.completed_on_time) as on_time,
           count(*) filter (where not t.completed_on_time) as late
    from tickets t
    where {in_range}
    group by 1, 2
    """,
    "t.completed_at",
)
_CALLBACKS_SQL: Final = _range_query(
    """
    select {period} as period, 'scheduled' as status, count(*) as count
    from callbacks c
    where {in_range}
    group by 1
    """,
    "c.created_at",
)
_CALLBACK_ENDS_SQL: Final = _range_query(
    """
    select {period} as period, c.status, count(*) as count
    from callbacks c
    where c.status in ('done', 'failed') and {in_range}
    group by 1, 2
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
_SETTINGS: Final = "set local jit = off; set local work_mem = '64MB'"
"""For the report's transaction only: no JIT compiling (about 4 s of it for the month
query of a million calls), and enough memory to hash a month's calls in one batch."""
_HASH_GROUPS: Final = "set local enable_sort = off"
"""While the calls and rings are grouped: PostgreSQL takes every value of
``date_trunc(...)`` of a timestamp for its own group (a million groups for a month of
a million calls, where there are a few hundred) and so plans to sort the rows to group
them; hashing them is about twice as fast."""
_SORT_AGAIN: Final = "set local enable_sort = on"
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
    rules = SlaRules.of(settings)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(_SETTINGS)
        if now is None:
            now = await conn.fetchval("select now()")
        builder = ReportBuilder(
            request, rules, now=now, names=_names(settings), members=_members(settings)
        )
        await _add_calls(conn, builder, slot, args, rules)
        await _add_tickets(conn, builder, slot, args, now)
        presence = await _presence(conn, request, zone, now)
        builder.add_presence(presence.times, presence.logged_in)
    return await asyncio.to_thread(builder.build, time_zone=zone)


def _names(settings: Settings) -> dict[str, str]:
    return {agent.id: agent.name for agent in settings.agents.values()}


def _members(settings: Settings) -> dict[str, frozenset[str]]:
    members: dict[str, set[str]] = {}
    for agent in settings.agents.values():
        for queue in agent.queues:
            members.setdefault(queue, set()).add(agent.id)
    return {queue: frozenset(ids) for queue, ids in members.items()}


async def _add_calls(
    conn: Any, builder: ReportBuilder, slot: int, args: tuple[object, ...], rules: SlaRules
) -> None:
    """The calls and the rings, summed per period and queue and per period and agent."""
    thresholds = (rules.service_level_threshold, rules.short_abandon_threshold)
    await conn.execute(_HASH_GROUPS)
    async for row in conn.cursor(_CALLS_SQL[slot], *args, *thresholds, prefetch=_PREFETCH):
        by_agent = row["by_agent"]
        key = row["agent"] if by_agent else row["queue"]
        if key is not None:
            builder.add_call_group(_call_group(row, key), agent=by_agent)
    within = rules.sla_rings * rules.ring_cadence
    async for row in conn.cursor(_OFFERS_SQL[slot], *args, within, prefetch=_PREFETCH):
        by_agent = row["by_agent"]
        key = row["agent"] if by_agent else row["queue"]
        if key is not None:
            builder.add_offer_group(
                OfferGroup(
                    period=row["period"],
                    key=key,
                    answered=row["answered"],
                    answered_within=row["answered_within"],
                    no_answer=row["no_answer"],
                    busy=row["busy"],
                    unavailable=row["unavailable"],
                    cancelled=row["cancelled"],
                ),
                agent=by_agent,
            )
    await conn.execute(_SORT_AGAIN)


def _call_group(row: Any, key: str) -> CallGroup:
    tally = CallTally(
        answered=row["answered"],
        answered_within=row["answered_within"],
        abandoned=row["abandoned"],
        abandoned_within=row["abandoned_within"],
        short_abandoned=row["short_abandoned"],
        overflowed=row["overflowed"],
        answered_wait_seconds=row["answered_wait"],
    )
    return CallGroup(
        period=row["period"],
        key=key,
        tally=tally,
        in_progress=row["in_progress"],
        talk_seconds=row["talk"],
        wrap_up_seconds=row["wrap_up"],
        abandoned_waiting=row["abandoned_waiting"],
        abandoned_ringing=row["abandoned_ringing"],
        longest_wait=row["longest_wait"],
        survey_responses=row["survey_responses"],
        survey_score_total=row["survey_total"],
    )


async def _add_tickets(
    conn: Any, builder: ReportBuilder, slot: int, args: tuple[object, ...], now: datetime
) -> None:
    """The tickets opened, the repairs completed and the callbacks, summed per period."""
    async for row in conn.cursor(_TICKETS_SQL[slot], *args, now, prefetch=_PREFETCH):
        builder.add_ticket_group(
            TicketGroup(
                period=row["period"],
                tickets=row["tickets"],
                complaints=row["complaints"],
                complaints_on_time=row["on_time"],
                complaints_late=row["late"],
                repairs=row["repairs"],
                scores=(row["s1"], row["s2"], row["s3"], row["s4"], row["s5"]),
            )
        )
    async for row in conn.cursor(_REPAIRS_SQL[slot], *args, prefetch=_PREFETCH):
        builder.add_repair_group(
            RepairGroup(row["period"], row["party"], row["completed"], row["on_time"], row["late"])
        )
    for sql in (_CALLBACKS_SQL[slot], _CALLBACK_ENDS_SQL[slot]):
        async for row in conn.cursor(sql, *args, prefetch=_PREFETCH):
            builder.add_callback(row["period"], row["status"], row["count"])


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
