"""The rows of a report, read from PostgreSQL, and :func:`build_report`.

Roll-ups first: migration ``0009_report_rollup.sql`` keeps, in the writers'
transactions, the sums of the calls and rings per local 15-minute slot and per
local day (by site, queue or agent, outcome and threshold flags) and of the
tickets and repairs per day, counted with the rules of
:func:`hotline.store.rollup.rollup_rules`. When the report's rules are those, it
reads them (``_ROLLUP_*``: a few thousand rows for a month of a million calls);
otherwise, or with ``rollup=False``, it groups the raw rows as described below.
Both give the same integers, so the same figures. ``ReportRequest.site`` keeps
one site's calls and rings (``calls.pbx_id``).

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
microseconds) and stay integers up to the report's rows
(:class:`~hotline.reports.aggregate.CallGroup`): integer sums are exact, so they
do not depend on the order PostgreSQL adds the rows in (a parallel or
synchronised scan changes it) and the same data always gives the same figures,
and they are cheap (a ``numeric`` sum of the floats costs about twice as much).
A total is then within half a nanosecond a call of the row-by-row float sums of
:class:`~hotline.reports.aggregate.ReportBuilder`, far below the microseconds
the timestamps keep.

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
from dataclasses import dataclass
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
from hotline.store.rollup import rollup_rules

__all__ = ["build_report"]

_PERIOD: Final = "(date_trunc($1, {column} at time zone $2))::date"
_SLOT: Final = "date_bin($1, {column} at time zone $2, timestamp '2000-01-01')"
_IN_RANGE: Final = (
    "{column} >= ($3::date::timestamp at time zone $2) "
    "and {column} < (($4::date + 1)::timestamp at time zone $2)"
)
_SITE: Final = "(${n}::text is null or c.pbx_id = ${n})"
"""A site's calls only (``calls.pbx_id``), or every site's when the parameter is null."""


def _range_query(select: str, column: str, site: int = 0) -> tuple[str, str]:
    """``select`` by calendar period and by interval (``$1`` a ``date_bin`` stride);
    ``site``: the number of the site parameter, if any."""
    in_range = _IN_RANGE.format(column=column)
    if site:
        in_range += " and " + _SITE.format(n=site)
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
           coalesce(sum(wait_ns) filter (where answered), 0)::int8 as answered_wait_ns,
           coalesce(sum(talk_us) filter (where outcome is not null), 0)::int8 as talk_us,
           coalesce(sum(wrap_up_ns) filter (where outcome is not null), 0)::int8 as wrap_up_ns,
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
    site=7,
)
_QUALITY_SQL: Final = _range_query(
    """
    select {period} as period, q.agent_id as agent, count(*)::int8 as reviews,
           sum(q.total) as total
    from quality_scores q join calls c on c.call_id = q.call_id
    where {in_range}
    group by 1, 2
    """,
    "c.arrived_at",
    site=5,
)
"""Quality reviews per agent, in the period of the call reviewed (a few a day: raw rows)."""
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
    site=6,
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
_ROLLUP_PERIOD: Final = {
    "d": "(date_trunc($1, r.bucket))::date",
    "s": "date_bin($1, r.bucket, timestamp '2000-01-01')",
}
_ROLLUP_RANGE: Final = (
    "r.grain = '{grain}' and r.bucket >= $2::date and r.bucket < $3::date + 1 "
    "and ($4::text is null or r.pbx_id = $4)"
)


def _rollup_query(select: str) -> tuple[str, str]:
    """``select`` of a roll-up by calendar period (the days) and by interval (the slots)."""
    return tuple(  # type: ignore[return-value]
        select.format(period=_ROLLUP_PERIOD[g], in_range=_ROLLUP_RANGE.format(grain=g))
        for g in ("d", "s")
    )


_ROLLUP_CALLS_SQL: Final = _rollup_query(
    """
    select {period} as period, r.by_agent,
           case when r.by_agent then null else r.key end as queue,
           case when r.by_agent then r.key end as agent,
           coalesce(sum(r.calls) filter (where r.outcome = ''), 0)::int8 as in_progress,
           coalesce(sum(r.calls) filter (where r.outcome = 'answered'), 0)::int8 as answered,
           coalesce(sum(r.calls) filter (where r.outcome = 'answered' and r.within), 0)::int8
               as answered_within,
           coalesce(sum(r.calls) filter (where r.outcome in
               ('abandoned_waiting', 'abandoned_ringing')), 0)::int8 as abandoned,
           coalesce(sum(r.calls) filter (where r.within and r.outcome in
               ('abandoned_waiting', 'abandoned_ringing')), 0)::int8 as abandoned_within,
           coalesce(sum(r.calls) filter (where r.short and r.outcome in
               ('abandoned_waiting', 'abandoned_ringing')), 0)::int8 as short_abandoned,
           coalesce(sum(r.calls) filter (where r.outcome not in
               ('', 'answered', 'abandoned_waiting', 'abandoned_ringing')), 0)::int8
               as overflowed,
           coalesce(sum(r.wait_ns) filter (where r.outcome = 'answered'), 0)::int8
               as answered_wait_ns,
           coalesce(sum(r.talk_us) filter (where r.outcome <> ''), 0)::int8 as talk_us,
           coalesce(sum(r.wrap_up_ns) filter (where r.outcome <> ''), 0)::int8 as wrap_up_ns,
           coalesce(sum(r.calls) filter (where r.outcome = 'abandoned_waiting'), 0)::int8
               as abandoned_waiting,
           coalesce(sum(r.calls) filter (where r.outcome = 'abandoned_ringing'), 0)::int8
               as abandoned_ringing,
           max(r.longest_wait) filter (where r.outcome <> '') as longest_wait,
           sum(r.survey_responses)::int8 as survey_responses,
           sum(r.survey_total)::int8 as survey_total
    from report_call_rollup r
    where {in_range} and r.calls <> 0
    group by 1, 2, r.key
    """
)
_ROLLUP_OFFERS_SQL: Final = _rollup_query(
    """
    select {period} as period, r.by_agent,
           case when r.by_agent then null else r.key end as queue,
           case when r.by_agent then r.key end as agent,
           coalesce(sum(r.offers) filter (where r.result = 'answered'), 0)::int8 as answered,
           coalesce(sum(r.offers) filter (where r.result = 'answered' and r.within), 0)::int8
               as answered_within,
           coalesce(sum(r.offers) filter (where r.result = 'no_answer'), 0)::int8 as no_answer,
           coalesce(sum(r.offers) filter (where r.result = 'busy'), 0)::int8 as busy,
           coalesce(sum(r.offers) filter (where r.result = 'unavailable'), 0)::int8
               as unavailable,
           coalesce(sum(r.offers) filter (where r.result not in
               ('answered', 'no_answer', 'busy', 'unavailable')), 0)::int8 as cancelled
    from report_offer_rollup r
    where {in_range} and r.offers <> 0
    group by 1, 2, r.key
    """
)
_ROLLUP_TICKETS_SQL: Final = """
with summed as (
    select (date_trunc($1, r.day))::date as period, sum(r.tickets)::int8 as tickets,
           sum(r.complaints)::int8 as complaints, sum(r.on_time)::int8 as on_time,
           sum(r.replied_late)::int8 as replied_late, sum(r.repairs)::int8 as repairs,
           sum(r.s1)::int8 as s1, sum(r.s2)::int8 as s2, sum(r.s3)::int8 as s3,
           sum(r.s4)::int8 as s4, sum(r.s5)::int8 as s5
    from report_ticket_rollup r
    where r.day >= $2::date and r.day <= $3::date and r.tickets <> 0
    group by 1
), unreplied as (
    select (date_trunc($1, t.opened_at at time zone $5))::date as period, count(*) as late
    from tickets t
    where t.category = 'complaint' and t.replied_at is null and t.due_at < $4
      and t.opened_at >= ($2::date::timestamp at time zone $5)
      and t.opened_at < (($3::date + 1)::timestamp at time zone $5)
    group by 1
)
select s.*, s.replied_late + coalesce(u.late, 0) as late
from summed s left join unreplied u on u.period = s.period
"""
_ROLLUP_REPAIRS_SQL: Final = """
select (date_trunc($1, r.day))::date as period, r.party, sum(r.completed)::int8 as completed,
       sum(r.on_time)::int8 as on_time, sum(r.late)::int8 as late
from report_repair_rollup r
where r.day >= $2::date and r.day <= $3::date and r.completed <> 0
group by 1, 2
"""
_ROLLUP_RULES_SQL: Final = """
select exists (select 1 from report_rollup_rules
               where time_zone = $1 and service_level_threshold = $2
                 and short_abandon_threshold = $3 and ring_within = $4)
"""
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
    pool: Pool,
    request: ReportRequest,
    settings: Settings,
    *,
    now: datetime | None = None,
    rollup: bool = True,
) -> Report:
    """The report ``request`` asks for, from the database behind ``pool``.

    Periods and dates are in ``[service] time_zone``; the figures use ``[routing]``
    and ``[sla]`` (see :mod:`hotline.reports.aggregate`). ``now`` (default: the
    database's) is when the report is made: complaints not replied to are judged
    as of then. The sums come from the roll-ups (migration 0009) when they are
    counted with these rules, else (or with ``rollup`` false) from the raw rows;
    both give the same figures. ``request.site`` limits the calls and rings to one
    site's (``pbx_id``).
    """
    zone = settings.service.time_zone
    rules = SlaRules.of(settings)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(_SETTINGS)
        if now is None:
            now = await conn.fetchval("select now()")
        builder = ReportBuilder(
            request, rules, now=now, names=_names(settings), members=_members(settings)
        )
        query = _Query(request, zone, rules)
        if rollup and await conn.fetchval(_ROLLUP_RULES_SQL, *rollup_rules(settings)):
            await _add_rolled_up(conn, builder, query, now)
        else:
            await _add_calls(conn, builder, query)
            await _add_tickets(conn, builder, query, now)
        async for row in conn.cursor(_QUALITY_SQL[query.slot], *query.raw, request.site):
            builder.add_quality(row["period"], row["agent"], row["reviews"], row["total"])
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


@dataclass(frozen=True, slots=True)
class _Query:
    """The parameters of the queries of one report."""

    request: ReportRequest
    zone: str
    rules: SlaRules

    @property
    def slot(self) -> int:
        """1 for an interval report, 0 for a calendar one (the index of its query)."""
        return int(interval_sql(self.request.period) is not None)

    @property
    def raw(self) -> tuple[object, ...]:
        """``$1..$4`` of the raw-row queries."""
        request = self.request
        stride = interval_sql(request.period)
        return (stride or request.period, self.zone, request.first, request.last)

    @property
    def rolled(self) -> tuple[object, ...]:
        """``$1..$4`` of the roll-up queries."""
        request = self.request
        stride = interval_sql(request.period)
        return (stride or request.period, request.first, request.last, request.site)


async def _add_call_rows(conn: Any, builder: ReportBuilder, sql: str, args: Any) -> None:
    async for row in conn.cursor(sql, *args, prefetch=_PREFETCH):
        by_agent = row["by_agent"]
        key = row["agent"] if by_agent else row["queue"]
        if key is not None:
            builder.add_call_group(_call_group(row, key), agent=by_agent)


async def _add_offer_rows(conn: Any, builder: ReportBuilder, sql: str, args: Any) -> None:
    async for row in conn.cursor(sql, *args, prefetch=_PREFETCH):
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


async def _add_calls(conn: Any, builder: ReportBuilder, query: _Query) -> None:
    """The calls and the rings from the raw rows, summed per period and queue and per
    period and agent."""
    rules, site = query.rules, query.request.site
    thresholds = (rules.service_level_threshold, rules.short_abandon_threshold)
    await conn.execute(_HASH_GROUPS)
    await _add_call_rows(conn, builder, _CALLS_SQL[query.slot], (*query.raw, *thresholds, site))
    within = rules.sla_rings * rules.ring_cadence
    await _add_offer_rows(conn, builder, _OFFERS_SQL[query.slot], (*query.raw, within, site))
    await conn.execute(_SORT_AGAIN)


async def _add_rolled_up(conn: Any, builder: ReportBuilder, query: _Query, now: datetime) -> None:
    """The calls, the rings, the tickets and the repairs from the roll-ups (the tickets of
    an interval report from the raw rows: the ticket roll-ups are by day)."""
    await _add_call_rows(conn, builder, _ROLLUP_CALLS_SQL[query.slot], query.rolled)
    await _add_offer_rows(conn, builder, _ROLLUP_OFFERS_SQL[query.slot], query.rolled)
    if query.slot:
        await _add_tickets(conn, builder, query, now)
        return
    dates = query.rolled[:3]
    tickets = conn.cursor(_ROLLUP_TICKETS_SQL, *dates, now, query.zone, prefetch=_PREFETCH)
    async for row in tickets:
        builder.add_ticket_group(_ticket_group(row))
    async for row in conn.cursor(_ROLLUP_REPAIRS_SQL, *dates, prefetch=_PREFETCH):
        builder.add_repair_group(
            RepairGroup(row["period"], row["party"], row["completed"], row["on_time"], row["late"])
        )
    await _add_callbacks(conn, builder, query)


def _call_group(row: Any, key: str) -> CallGroup:
    tally = CallTally(
        answered=row["answered"],
        answered_within=row["answered_within"],
        abandoned=row["abandoned"],
        abandoned_within=row["abandoned_within"],
        short_abandoned=row["short_abandoned"],
        overflowed=row["overflowed"],
    )
    return CallGroup(
        period=row["period"],
        key=key,
        tally=tally,
        in_progress=row["in_progress"],
        talk_us=row["talk_us"],
        wrap_up_ns=row["wrap_up_ns"],
        answered_wait_ns=row["answered_wait_ns"],
        abandoned_waiting=row["abandoned_waiting"],
        abandoned_ringing=row["abandoned_ringing"],
        longest_wait=row["longest_wait"],
        survey_responses=row["survey_responses"],
        survey_score_total=row["survey_total"],
    )


def _ticket_group(row: Any) -> TicketGroup:
    return TicketGroup(
        period=row["period"],
        tickets=row["tickets"],
        complaints=row["complaints"],
        complaints_on_time=row["on_time"],
        complaints_late=row["late"],
        repairs=row["repairs"],
        scores=(row["s1"], row["s2"], row["s3"], row["s4"], row["s5"]),
    )


async def _add_tickets(conn: Any, builder: ReportBuilder, query: _Query, now: datetime) -> None:
    """The tickets opened, the repairs completed and the callbacks, summed per period."""
    slot, args = query.slot, query.raw
    async for row in conn.cursor(_TICKETS_SQL[slot], *args, now, prefetch=_PREFETCH):
        builder.add_ticket_group(_ticket_group(row))
    async for row in conn.cursor(_REPAIRS_SQL[slot], *args, prefetch=_PREFETCH):
        builder.add_repair_group(
            RepairGroup(row["period"], row["party"], row["completed"], row["on_time"], row["late"])
        )
    await _add_callbacks(conn, builder, query)


async def _add_callbacks(conn: Any, builder: ReportBuilder, query: _Query) -> None:
    """The callbacks scheduled and ended, per period (from the raw rows, a few a day)."""
    for sql in (_CALLBACKS_SQL[query.slot], _CALLBACK_ENDS_SQL[query.slot]):
        async for row in conn.cursor(sql, *query.raw, prefetch=_PREFETCH):
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
