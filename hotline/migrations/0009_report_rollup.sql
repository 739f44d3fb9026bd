-- Report roll-ups (issue 15): the sums a report reads, kept in the same transaction
-- as the rows they sum, so a month report of a million calls reads a few thousand
-- rows instead of grouping every call and ring.
--
-- The figures a report counts depend on the configured rules: a wait <= the
-- service-level threshold is within it, a wait <= the short-abandon threshold is a
-- short abandon, a ring <= sla_rings x ring_cadence is within the rings, and days are
-- local days of [service] time_zone. report_rollup_rules holds the one set of rules
-- the roll-ups are counted with; hotline_rollup_configure() sets it and, when it
-- changes, rebuilds every roll-up from the raw rows (the service calls it at start).
-- Without a rules row the triggers do nothing and reports read the raw rows; a
-- report whose rules differ from the row's reads the raw rows too.
--
-- Each roll-up row is a group of calls (or rings, tickets, repairs) with integer
-- counts and integer sums (nanoseconds; the talk, from timestamps, microseconds),
-- exactly the integers the raw-row report query sums, so a roll-up equals the raw
-- aggregation to the last bit and a week is exactly the sum of its days. Statement
-- triggers with transition tables subtract what the old rows contributed and add
-- what the new rows contribute (rows whose report columns did not change are left
-- out), in the writer's transaction: a replayed record that changes nothing changes
-- no sum, a re-upsert that changes a call moves it between groups, and nothing is
-- kept outside the database, so restarts do not matter. An update's old and new rows
-- go in one statement (signed -1 and 1). longest_wait is a max: when an ended call that
-- may have been a group's longest leaves it (another outcome, queue, agent, site or
-- wait) it is recomputed from the group's raw rows (an indexed range of one slot or
-- day); a wrap-up or survey score does not move a call. Groups that drop to zero stay
-- (reports skip them).
--
-- grain 's': the local 15-minute slot of the arrival (30-minute and hour slots are
-- unions of them), grain 'd': the local day. A call's rings and everything about it
-- belong to the call's arrival slot/day, queue asked for (original_queue) and site.

create table report_rollup_rules (
    only_row                 boolean primary key default true check (only_row),
    time_zone                text not null,
    service_level_threshold  double precision not null,
    short_abandon_threshold  double precision not null,
    ring_within              double precision not null,
    built_at                 timestamptz not null default now()
);

create table report_call_rollup (
    grain             "char" not null check (grain in ('s', 'd')),
    bucket            timestamp not null,
    pbx_id            text not null,
    by_agent          boolean not null,
    key               text not null,
    outcome           text not null,  -- '' while in progress
    within            boolean not null,
    short             boolean not null,
    calls             bigint not null,
    wait_ns           bigint not null,
    talk_us           bigint not null,
    wrap_up_ns        bigint not null,
    longest_wait      double precision,
    survey_responses  bigint not null,
    survey_total      bigint not null,
    primary key (grain, bucket, pbx_id, by_agent, key, outcome, within, short)
);

create table report_offer_rollup (
    grain     "char" not null check (grain in ('s', 'd')),
    bucket    timestamp not null,
    pbx_id    text not null,
    by_agent  boolean not null,
    key       text not null,
    result    text not null,
    within    boolean not null,
    offers    bigint not null,
    primary key (grain, bucket, pbx_id, by_agent, key, result, within)
);

create table report_ticket_rollup (
    day           date primary key,
    tickets       bigint not null,
    complaints    bigint not null,
    on_time       bigint not null,
    replied_late  bigint not null,
    repairs       bigint not null,
    s1            bigint not null,
    s2            bigint not null,
    s3            bigint not null,
    s4            bigint not null,
    s5            bigint not null
);

create table report_repair_rollup (
    day        date not null,
    party      text not null,
    completed  bigint not null,
    on_time    bigint not null,
    late       bigint not null,
    primary key (day, party)
);

-- Complaints not replied to are judged late as of the report's time: counted from
-- the raw rows, which this keeps cheap.
create index tickets_unreplied_complaints on tickets (opened_at)
    where category = 'complaint' and replied_at is null;

-- The statements, with %1$s the source rows: a table, a transition table or a
-- subquery with the raw table's columns and "sign", 1 for a row that adds to its
-- groups and -1 for one that leaves them (an update's old and new rows, in one
-- statement).
create function hotline_rollup_calls_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
src as (
    select s.*, s.arrived_at at time zone rules.time_zone as local_at,
           coalesce(s.wait_seconds, 0) <= rules.service_level_threshold as within,
           coalesce(s.wait_seconds, 0) <= rules.short_abandon_threshold as short
    from %1$s s, rules
), parts as (
    select g.grain,
           case g.grain when 's' then date_bin('15 minutes', src.local_at, timestamp '2000-01-01')
                else date_trunc('day', src.local_at) end as bucket,
           src.pbx_id, p.by_agent,
           case when p.by_agent then src.answered_by else src.original_queue end as key,
           coalesce(src.outcome, '') as outcome, src.within, src.short,
           sum(src.sign) as calls,
           coalesce(sum(src.sign * (coalesce(src.wait_seconds, 0) * 1e9)::int8), 0) as wait_ns,
           coalesce(sum(src.sign * (greatest(date_part('epoch',
               coalesce(src.talk_ended_at, src.ended_at) - src.answered_at), 0) * 1e6)::int8), 0)
               as talk_us,
           coalesce(sum(src.sign * (coalesce(src.wrap_up_seconds, 0) * 1e9)::int8), 0)
               as wrap_up_ns,
           max(src.wait_seconds) filter (where src.outcome is not null and src.sign > 0)
               as longest_wait,
           sum(src.sign * (src.survey_score is not null)::int) as survey_responses,
           coalesce(sum(src.sign * src.survey_score), 0) as survey_total
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    join (values (false), (true)) p (by_agent)
        on not p.by_agent or (src.outcome = 'answered' and src.answered_by is not null)
    group by 1, 2, 3, 4, 5, 6, 7, 8
)
insert into report_call_rollup as t
select grain, bucket, pbx_id, by_agent, key, outcome, within, short, calls, wait_ns, talk_us,
       wrap_up_ns, longest_wait, survey_responses, survey_total
from parts
on conflict (grain, bucket, pbx_id, by_agent, key, outcome, within, short) do update set
    calls = t.calls + excluded.calls,
    wait_ns = t.wait_ns + excluded.wait_ns,
    talk_us = t.talk_us + excluded.talk_us,
    wrap_up_ns = t.wrap_up_ns + excluded.wrap_up_ns,
    longest_wait = greatest(t.longest_wait, excluded.longest_wait),
    survey_responses = t.survey_responses + excluded.survey_responses,
    survey_total = t.survey_total + excluded.survey_total
$q$
$sql$;

-- After ended calls left their groups (another outcome, queue, agent, site, arrival or
-- wait): each group's longest wait again from its raw rows, when a call that left may
-- have been the longest. %1$s: the rows that left (the raw table's columns).
create function hotline_rollup_calls_left_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
src as (
    select s.*, s.arrived_at at time zone rules.time_zone as local_at,
           coalesce(s.wait_seconds, 0) <= rules.service_level_threshold as within,
           coalesce(s.wait_seconds, 0) <= rules.short_abandon_threshold as short
    from %1$s s, rules
    where s.outcome is not null
), groups as (
    select g.grain,
           case g.grain when 's' then date_bin('15 minutes', src.local_at, timestamp '2000-01-01')
                else date_trunc('day', src.local_at) end as bucket,
           src.pbx_id, p.by_agent,
           case when p.by_agent then src.answered_by else src.original_queue end as key,
           src.outcome, src.within, src.short, max(src.wait_seconds) as wait
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    join (values (false), (true)) p (by_agent)
        on not p.by_agent or (src.outcome = 'answered' and src.answered_by is not null)
    group by 1, 2, 3, 4, 5, 6, 7, 8
)
update report_call_rollup t set longest_wait = (
    select max(c.wait_seconds) from calls c, rules
    where c.arrived_at >= (t.bucket at time zone rules.time_zone) - interval '3 hours'
      and c.arrived_at < (t.bucket at time zone rules.time_zone) + case t.grain
          when 's' then interval '15 minutes' else interval '1 day' end + interval '3 hours'
      and case t.grain when 's'
               then date_bin('15 minutes', c.arrived_at at time zone rules.time_zone,
                             timestamp '2000-01-01')
               else date_trunc('day', c.arrived_at at time zone rules.time_zone) end = t.bucket
      and c.pbx_id = t.pbx_id and c.outcome = t.outcome
      and (coalesce(c.wait_seconds, 0) <= rules.service_level_threshold) = t.within
      and (coalesce(c.wait_seconds, 0) <= rules.short_abandon_threshold) = t.short
      and case when t.by_agent then c.answered_by = t.key else c.original_queue = t.key end)
from groups g
where (t.grain, t.bucket, t.pbx_id, t.by_agent, t.key, t.outcome, t.within, t.short)
    = (g.grain, g.bucket, g.pbx_id, g.by_agent, g.key, g.outcome, g.within, g.short)
  and t.longest_wait <= g.wait
$q$
$sql$;

-- %1$s: rows with agent_id, result, ring_seconds, their call's arrived_at,
-- original_queue and pbx_id, and sign.
create function hotline_rollup_offers_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
src as (
    select s.*, s.arrived_at at time zone rules.time_zone as local_at,
           s.ring_seconds <= rules.ring_within as within
    from %1$s s, rules
), parts as (
    select g.grain,
           case g.grain when 's' then date_bin('15 minutes', src.local_at, timestamp '2000-01-01')
                else date_trunc('day', src.local_at) end as bucket,
           src.pbx_id, p.by_agent,
           case when p.by_agent then src.agent_id else src.original_queue end as key,
           src.result, src.within, sum(src.sign) as offers
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    cross join (values (false), (true)) p (by_agent)
    group by 1, 2, 3, 4, 5, 6, 7
)
insert into report_offer_rollup as t
select grain, bucket, pbx_id, by_agent, key, result, within, offers from parts
on conflict (grain, bucket, pbx_id, by_agent, key, result, within) do update set
    offers = t.offers + excluded.offers
$q$
$sql$;

-- %1$s: tickets rows with sign.
create function hotline_rollup_tickets_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
parts as (
    select (s.opened_at at time zone rules.time_zone)::date as day, sum(s.sign) as tickets,
           coalesce(sum(s.sign) filter (where s.category = 'complaint'), 0) as complaints,
           coalesce(sum(s.sign) filter (where s.category = 'complaint'
               and s.replied_at <= s.due_at), 0) as on_time,
           coalesce(sum(s.sign) filter (where s.category = 'complaint'
               and s.replied_at > s.due_at), 0) as replied_late,
           coalesce(sum(s.sign) filter (where s.category = 'repair'), 0) as repairs,
           coalesce(sum(s.sign) filter (where s.satisfaction = 1), 0) as s1,
           coalesce(sum(s.sign) filter (where s.satisfaction = 2), 0) as s2,
           coalesce(sum(s.sign) filter (where s.satisfaction = 3), 0) as s3,
           coalesce(sum(s.sign) filter (where s.satisfaction = 4), 0) as s4,
           coalesce(sum(s.sign) filter (where s.satisfaction = 5), 0) as s5
    from %1$s s, rules
    group by 1
), tickets_changed as (
    insert into report_ticket_rollup as t
    select * from parts
    on conflict (day) do update set
        tickets = t.tickets + excluded.tickets,
        complaints = t.complaints + excluded.complaints,
        on_time = t.on_time + excluded.on_time,
        replied_late = t.replied_late + excluded.replied_late,
        repairs = t.repairs + excluded.repairs,
        s1 = t.s1 + excluded.s1, s2 = t.s2 + excluded.s2, s3 = t.s3 + excluded.s3,
        s4 = t.s4 + excluded.s4, s5 = t.s5 + excluded.s5
), repairs as (
    select (s.completed_at at time zone rules.time_zone)::date as day,
           coalesce(s.dispatch_party, 'unassigned') as party, sum(s.sign) as completed,
           coalesce(sum(s.sign) filter (where s.completed_on_time), 0) as on_time,
           coalesce(sum(s.sign) filter (where not s.completed_on_time), 0) as late
    from %1$s s, rules
    where s.completed_at is not null
    group by 1, 2
)
insert into report_repair_rollup as t
select * from repairs
on conflict (day, party) do update set
    completed = t.completed + excluded.completed,
    on_time = t.on_time + excluded.on_time,
    late = t.late + excluded.late
$q$
$sql$;

-- An update's rows whose values of ``cols`` (a row constructor over o. / n.) changed:
-- the old ones with sign -1 and the new ones with sign 1.
create function hotline_rollup_changed(old_cols text, new_cols text) returns text
language sql immutable as $sql$
select format(
    '(select o.*, -1 as sign from old_rows o join new_rows n on n.id = o.id '
    'where (%1$s) is distinct from (%2$s) '
    'union all '
    'select n.*, 1 as sign from old_rows o join new_rows n on n.id = o.id '
    'where (%1$s) is distinct from (%2$s))', old_cols, new_cols)
$sql$;

-- The offers of the calls in %1$s (with sign), with the calls' attributes.
create function hotline_rollup_offers_of(calls_source text) returns text
language sql immutable as $$
select format(
    '(select o.agent_id, o.result, o.ring_seconds, c.arrived_at, c.original_queue, '
    'c.pbx_id, c.sign from %s c join call_offers o on o.call_id = c.call_id)', calls_source)
$$;

-- The trigger functions of the frequent writes run their statement as static SQL,
-- made here from the same templates, so PL/pgSQL plans it once per connection
-- rather than at every write; the rare ones (a call moving, rows deleted) EXECUTE it.
do $do$
declare
    report_old text := 'o.arrived_at, o.pbx_id, o.original_queue, o.answered_by, '
        'o.answered_at, o.outcome, o.wait_seconds, o.talk_ended_at, o.ended_at, '
        'o.wrap_up_seconds, o.survey_score';
    tickets_old text := 'o.opened_at, o.category, o.replied_at, o.due_at, o.satisfaction, '
        'o.completed_at, o.dispatch_party, o.completed_on_time';
begin
    execute format($f$
        create function hotline_rollup_calls_inserted() returns trigger language plpgsql as $b$
        begin
            if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
                %s;
            end if;
            return null;
        end $b$ $f$,
        format(hotline_rollup_calls_sql(), '(select n.*, 1 as sign from new_rows n)'));
    execute format($f$
        create function hotline_rollup_calls_updated() returns trigger language plpgsql as $b$
        begin
            if not exists (select 1 from report_rollup_rules) or not exists (
                select 1 from old_rows o join new_rows n on n.id = o.id
                where (%1$s) is distinct from (%2$s)) then
                return null;
            end if;
            %3$s;
            if exists (select 1 from old_rows o join new_rows n on n.id = o.id
                       where o.outcome is not null
                         and (o.arrived_at, o.pbx_id, o.original_queue, o.answered_by,
                              o.outcome, o.wait_seconds)
                             is distinct from
                             (n.arrived_at, n.pbx_id, n.original_queue, n.answered_by,
                              n.outcome, n.wait_seconds)) then
                execute format(hotline_rollup_calls_left_sql(),
                    '(select o.* from old_rows o join new_rows n on n.id = o.id '
                    'where (o.arrived_at, o.pbx_id, o.original_queue, o.answered_by, '
                    'o.outcome, o.wait_seconds) is distinct from (n.arrived_at, n.pbx_id, '
                    'n.original_queue, n.answered_by, n.outcome, n.wait_seconds))');
            end if;
            if exists (select 1 from old_rows o join new_rows n on n.id = o.id
                       where (o.arrived_at, o.pbx_id, o.original_queue)
                             is distinct from (n.arrived_at, n.pbx_id, n.original_queue)) then
                execute format(hotline_rollup_offers_sql(), hotline_rollup_offers_of(
                    hotline_rollup_changed('o.arrived_at, o.pbx_id, o.original_queue',
                                           'n.arrived_at, n.pbx_id, n.original_queue')));
            end if;
            return null;
        end $b$ $f$,
        report_old, replace(report_old, 'o.', 'n.'),
        format(hotline_rollup_calls_sql(),
               hotline_rollup_changed(report_old, replace(report_old, 'o.', 'n.'))));
    execute format($f$
        create function hotline_rollup_offers_inserted() returns trigger language plpgsql as $b$
        begin
            if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
                %s;
            end if;
            return null;
        end $b$ $f$,
        format(hotline_rollup_offers_sql(), '(select n.agent_id, n.result, n.ring_seconds, '
            'c.arrived_at, c.original_queue, c.pbx_id, 1 as sign '
            'from new_rows n join calls c on c.call_id = n.call_id)'));
    execute format($f$
        create function hotline_rollup_tickets_inserted() returns trigger language plpgsql as $b$
        begin
            if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
                %s;
            end if;
            return null;
        end $b$ $f$,
        format(hotline_rollup_tickets_sql(), '(select n.*, 1 as sign from new_rows n)'));
    execute format($f$
        create function hotline_rollup_tickets_updated() returns trigger language plpgsql as $b$
        begin
            if not exists (select 1 from report_rollup_rules) or not exists (
                select 1 from old_rows o join new_rows n on n.id = o.id
                where (%1$s) is distinct from (%2$s)) then
                return null;
            end if;
            %3$s;
            return null;
        end $b$ $f$,
        tickets_old, replace(tickets_old, 'o.', 'n.'),
        format(hotline_rollup_tickets_sql(),
               hotline_rollup_changed(tickets_old, replace(tickets_old, 'o.', 'n.'))));
end $do$;

create function hotline_rollup_calls_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_calls_sql(), '(select o.*, -1 as sign from old_rows o)');
        execute format(hotline_rollup_calls_left_sql(), 'old_rows');
    end if;
    return null;
end $$;

create function hotline_rollup_offers_updated() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
        execute format(hotline_rollup_offers_sql(), '(select o.agent_id, o.result, '
            'o.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id, -1 as sign '
            'from old_rows o join calls c on c.call_id = o.call_id '
            'union all select n.agent_id, n.result, n.ring_seconds, c.arrived_at, '
            'c.original_queue, c.pbx_id, 1 from new_rows n join calls c on c.call_id = n.call_id)');
    end if;
    return null;
end $$;

create function hotline_rollup_offers_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_offers_sql(), '(select o.agent_id, o.result, '
            'o.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id, -1 as sign '
            'from old_rows o join calls c on c.call_id = o.call_id)');
    end if;
    return null;
end $$;

create function hotline_rollup_tickets_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_tickets_sql(), '(select o.*, -1 as sign from old_rows o)');
    end if;
    return null;
end $$;

create trigger calls_rollup_insert after insert on calls
    referencing new table as new_rows
    for each statement execute function hotline_rollup_calls_inserted();
create trigger calls_rollup_update after update on calls
    referencing old table as old_rows new table as new_rows
    for each statement execute function hotline_rollup_calls_updated();
create trigger calls_rollup_delete after delete on calls
    referencing old table as old_rows
    for each statement execute function hotline_rollup_calls_deleted();
create trigger call_offers_rollup_insert after insert on call_offers
    referencing new table as new_rows
    for each statement execute function hotline_rollup_offers_inserted();
create trigger call_offers_rollup_update after update on call_offers
    referencing old table as old_rows new table as new_rows
    for each statement execute function hotline_rollup_offers_updated();
create trigger call_offers_rollup_delete after delete on call_offers
    referencing old table as old_rows
    for each statement execute function hotline_rollup_offers_deleted();
create trigger tickets_rollup_insert after insert on tickets
    referencing new table as new_rows
    for each statement execute function hotline_rollup_tickets_inserted();
create trigger tickets_rollup_update after update on tickets
    referencing old table as old_rows new table as new_rows
    for each statement execute function hotline_rollup_tickets_updated();
create trigger tickets_rollup_delete after delete on tickets
    referencing old table as old_rows
    for each statement execute function hotline_rollup_tickets_deleted();

-- Count the roll-ups with these rules: when they differ from the current ones (or
-- there are none), every roll-up is rebuilt from the raw rows, with the writers of
-- calls, rings and tickets held off meanwhile. True if it rebuilt.
create function hotline_rollup_configure(
    zone text, service_level double precision, short_abandon double precision,
    ring double precision
) returns boolean language plpgsql as $$
begin
    lock table report_rollup_rules in exclusive mode;
    if exists (select 1 from report_rollup_rules r
               where (r.time_zone, r.service_level_threshold, r.short_abandon_threshold,
                      r.ring_within) = (zone, service_level, short_abandon, ring)) then
        return false;
    end if;
    lock table calls, call_offers, tickets in share mode;
    delete from report_rollup_rules;
    insert into report_rollup_rules
        (time_zone, service_level_threshold, short_abandon_threshold, ring_within)
    values (zone, service_level, short_abandon, ring);
    truncate report_call_rollup, report_offer_rollup, report_ticket_rollup, report_repair_rollup;
    execute format(hotline_rollup_calls_sql(), '(select c.*, 1 as sign from calls c)');
    execute format(hotline_rollup_offers_sql(),
                   hotline_rollup_offers_of('(select c.*, 1 as sign from calls c)'));
    execute format(hotline_rollup_tickets_sql(), '(select t.*, 1 as sign from tickets t)');
    return true;
end $$;
