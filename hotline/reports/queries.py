"""The rows of a report, read from PostgreSQL, and :func:`build_report`.

Plain SQL on asyncpg. PostgreSQL does the counting: each query selects by a
timestamp in the range, labels each row with its calendar period (or interval),
and groups by period and queue and by period and agent (``GROUPING SETS``, one
scan for both), so what comes back is a few rows a group, whatever the number
of calls. The counts use the definitions of :mod:`hotline.domain.sla` (a wait
``<=`` the threshold is within it, a ring ``<=`` ``sla_rings`` x cadence is within
the rings, the same outcomes count as abandoned, missed and cancelled), with the
thresholds passed as parameters. Seconds are summed as ``numeric``, which is
exact and so independent of the order PostgreSQL adds the rows in (a parallel
or synchronised scan may change it), and rounded to a float once per group; a
group's figures therefore agree with the row-by-row sums of
:class:`~hotline.reports.aggregate.ReportBuilder` to about 1e-15 relative, and the
same data always gives the same figures. Periods are in the configured time zone:
``date_trunc(period, t at time zone tz)`` is the period's first date, and the
range is ``[from 00:00, to + 1 day 00:00)`` local time, so both dates are
included and the indexes on ``calls.arrived_at`` and ``tickets.opened_at`` /
``completed_at`` serve it. All queries run in one read-only, repeatable-read
transaction: one snapshot, so the calls, their rings and the tickets agree. The
agents' login and pause log (a few rows per agent a day) is still read row by
row, into :class:`~hotline.reports.presence.PresenceBuilder`.
"""

from __future__ import annotations

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
    select period, queue, agent, grouping(queue) = 1 as by_agent,
           count(*) filter (where outcome is null) as in_progress,
           count(*) filter (where answered) as answered,
           count(*) filter (where answered and within) as answered_within,
           count(*) filter (where abandoned) as abandoned,
           count(*) filter (where abandoned and within) as abandoned_within,
           count(*) filter (where abandoned and short) as short_abandoned,
           count(*) filter (where outcome is not null and not answered and not abandoned)
               as overflowed,
           coalesce(sum(wait::numeric) filter (where answered), 0)::float8 as answered_wait,
           coalesce(sum(talk) filter (where outcome is not null), 0)::float8 as talk,
           coalesce(sum(wrap_up::numeric) filter (where outcome is not null), 0)::float8
               as wrap_up,
           count(*) filter (where outcome = 'abandoned_waiting') as abandoned_waiting,
           count(*) filter (where outcome = 'abandoned_ringing') as abandoned_ringing,
           max(c.wait_seconds) filter (where outcome is not null) as longest_wait,
           count(survey_score) as survey_responses,
           coalesce(sum(survey_score), 0) as survey_total
    from (
        select {period} as period, c.original_queue as queue,
               case when c.outcome = 'answered' then c.answered_by end as agent,
               c.outcome, c.outcome = 'answered' as answered,
               coalesce(c.outcome in ('abandoned_waiting', 'abandoned_ringing'), false)
                   as abandoned,
               coalesce(c.wait_seconds, 0) <= $5 as within,
               coalesce(c.wait_seconds, 0) <= $6 as short, coalesce(c.wait_seconds, 0) as wait,
               c.wait_seconds,
               case when c.answered_at is not null then greatest(
                   extract(epoch from coalesce(c.talk_ended_at, c.ended_at) - c.answered_at),
                   0) end as talk,
               coalesce(c.wrap_up_seconds, 0) as wrap_up, c.survey_score
        from calls c
        where {in_range}
    ) c
    group by grouping sets ((period, queue), (period, agent))
    """,
    "c.arrived_at",
)
_OFFERS_SQL: Final = _range_query(
    """
    select period, queue, agent, grouping(queue) = 1 as by_agent,
           count(*) filter (where result = 'answered') as answered,
           count(*) filter (where result = 'answered' and ring_seconds <= $5)
               as answered_within,
           count(*) filter (where result = 'no_answer') as no_answer,
           count(*) filter (where result = 'busy') as busy,
           count(*) filter (where result = 'unavailable') as unavailable,
           count(*) filter (where result not in ('answered', 'no_answer', 'busy', 'unavailable'))
               as cancelled
    from (
        select {period} as period, c.original_queue as queue, o.agent_id as agent, o.result,
               o.ring_seconds
        from call_offers o join calls c on c.call_id = o.call_id
        where {in_range}
    ) o
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
        if now is None:
            now = await conn.fetchval("select now()")
        builder = ReportBuilder(
            request, rules, now=now, names=_names(settings), members=_members(settings)
        )
        await _add_calls(conn, builder, slot, args, rules)
        await _add_tickets(conn, builder, slot, args, now)
        presence = await _presence(conn, request, zone, now)
        builder.add_presence(presence.times, presence.logged_in)
    return builder.build(time_zone=zone)


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
    for row in await conn.fetch(_CALLS_SQL[slot], *args, *thresholds):
        by_agent = row["by_agent"]
        key = row["agent"] if by_agent else row["queue"]
        if key is not None:
            builder.add_call_group(_call_group(row, key), agent=by_agent)
    within = rules.sla_rings * rules.ring_cadence
    for row in await conn.fetch(_OFFERS_SQL[slot], *args, within):
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
    for row in await conn.fetch(_TICKETS_SQL[slot], *args, now):
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
    for row in await conn.fetch(_REPAIRS_SQL[slot], *args):
        builder.add_repair_group(
            RepairGroup(row["period"], row["party"], row["completed"], row["on_time"], row["late"])
        )
    for sql in (_CALLBACKS_SQL[slot], _CALLBACK_ENDS_SQL[slot]):
        for row in await conn.fetch(sql, *args):
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
