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
-- kept outside the database, so restarts do not matter. longest_wait is a max: when
-- rows leave a group it is recomputed from the group's raw rows (an indexed range of
-- one slot or day). Call groups that drop to zero are deleted; ring, ticket and
-- repair groups at zero stay (reports skip them).
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

-- The statements, with %1$s the source rows (a table, a transition table or a
-- subquery with the columns of the raw table) and %2$s the sign (1 or -1).
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
           count(*) as calls,
           coalesce(sum((coalesce(src.wait_seconds, 0) * 1e9)::int8), 0) as wait_ns,
           coalesce(sum((greatest(date_part('epoch', coalesce(src.talk_ended_at, src.ended_at)
               - src.answered_at), 0) * 1e6)::int8), 0) as talk_us,
           coalesce(sum((coalesce(src.wrap_up_seconds, 0) * 1e9)::int8), 0) as wrap_up_ns,
           max(src.wait_seconds) filter (where src.outcome is not null) as longest_wait,
           count(src.survey_score) as survey_responses,
           coalesce(sum(src.survey_score), 0) as survey_total
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    join (values (false), (true)) p (by_agent)
        on not p.by_agent or (src.outcome = 'answered' and src.answered_by is not null)
    group by 1, 2, 3, 4, 5, 6, 7, 8
)
insert into report_call_rollup as t
select grain, bucket, pbx_id, by_agent, key, outcome, within, short,
       %2$s * calls, %2$s * wait_ns, %2$s * talk_us, %2$s * wrap_up_ns,
       case when %2$s > 0 then longest_wait end, %2$s * survey_responses, %2$s * survey_total
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

-- After rows left their groups: the groups' longest wait again from the raw rows,
-- and the groups left empty deleted. %1$s: the rows that left.
create function hotline_rollup_calls_left_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
src as (
    select s.*, s.arrived_at at time zone rules.time_zone as local_at,
           coalesce(s.wait_seconds, 0) <= rules.service_level_threshold as within,
           coalesce(s.wait_seconds, 0) <= rules.short_abandon_threshold as short
    from %1$s s, rules
), groups as (
    select distinct g.grain,
           case g.grain when 's' then date_bin('15 minutes', src.local_at, timestamp '2000-01-01')
                else date_trunc('day', src.local_at) end as bucket,
           src.pbx_id, p.by_agent,
           case when p.by_agent then src.answered_by else src.original_queue end as key,
           coalesce(src.outcome, '') as outcome, src.within, src.short
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    join (values (false), (true)) p (by_agent)
        on not p.by_agent or (src.outcome = 'answered' and src.answered_by is not null)
), emptied as (
    delete from report_call_rollup t using groups g
    where (t.grain, t.bucket, t.pbx_id, t.by_agent, t.key, t.outcome, t.within, t.short)
        = (g.grain, g.bucket, g.pbx_id, g.by_agent, g.key, g.outcome, g.within, g.short)
      and t.calls = 0
    returning t.grain
)
update report_call_rollup t set longest_wait = (
    select max(c.wait_seconds) from calls c, rules
    where c.arrived_at >= (t.bucket at time zone rules.time_zone) - interval '1 day'
      and c.arrived_at < (t.bucket at time zone rules.time_zone) + interval '2 days'
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
  and g.outcome <> '' and t.calls <> 0
$q$
$sql$;

-- %1$s: rows with agent_id, result, ring_seconds and their call's arrived_at,
-- original_queue, pbx_id.
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
           src.result, src.within, count(*) as offers
    from src
    cross join (values ('s'::"char"), ('d'::"char")) g (grain)
    cross join (values (false), (true)) p (by_agent)
    group by 1, 2, 3, 4, 5, 6, 7
)
insert into report_offer_rollup as t
select grain, bucket, pbx_id, by_agent, key, result, within, %2$s * offers from parts
on conflict (grain, bucket, pbx_id, by_agent, key, result, within) do update set
    offers = t.offers + excluded.offers
$q$
$sql$;

-- %1$s: tickets rows.
create function hotline_rollup_tickets_sql() returns text language sql immutable as $sql$
select $q$
with rules as (select * from report_rollup_rules),
parts as (
    select (s.opened_at at time zone rules.time_zone)::date as day, count(*) as tickets,
           count(*) filter (where s.category = 'complaint') as complaints,
           count(*) filter (where s.category = 'complaint' and s.replied_at <= s.due_at)
               as on_time,
           count(*) filter (where s.category = 'complaint' and s.replied_at > s.due_at)
               as replied_late,
           count(*) filter (where s.category = 'repair') as repairs,
           count(*) filter (where s.satisfaction = 1) as s1,
           count(*) filter (where s.satisfaction = 2) as s2,
           count(*) filter (where s.satisfaction = 3) as s3,
           count(*) filter (where s.satisfaction = 4) as s4,
           count(*) filter (where s.satisfaction = 5) as s5
    from %1$s s, rules
    group by 1
), tickets_changed as (
    insert into report_ticket_rollup as t
    select day, %2$s * tickets, %2$s * complaints, %2$s * on_time, %2$s * replied_late,
           %2$s * repairs, %2$s * s1, %2$s * s2, %2$s * s3, %2$s * s4, %2$s * s5
    from parts
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
           coalesce(s.dispatch_party, 'unassigned') as party, count(*) as completed,
           count(*) filter (where s.completed_on_time) as on_time,
           count(*) filter (where not s.completed_on_time) as late
    from %1$s s, rules
    where s.completed_at is not null
    group by 1, 2
), repairs_changed as (
    insert into report_repair_rollup as t
    select day, party, %2$s * completed, %2$s * on_time, %2$s * late from repairs
    on conflict (day, party) do update set
        completed = t.completed + excluded.completed,
        on_time = t.on_time + excluded.on_time,
        late = t.late + excluded.late
)
select 1
$q$
$sql$;

-- The columns of each table the roll-ups read: rows whose values of them did not
-- change are left out of an update's contribution.
create function hotline_rollup_changed(cols text) returns text
language sql immutable as $sql$
select format(
    '(select o.* from old_rows o join new_rows n on n.id = o.id where (%1$s) is distinct from (%2$s))',
    (select string_agg('o.' || c, ', ') from unnest(string_to_array(cols, ',')) c),
    (select string_agg('n.' || c, ', ') from unnest(string_to_array(cols, ',')) c))
$sql$;

create function hotline_rollup_changed_new(cols text) returns text
language sql immutable as $sql$
select format(
    '(select n.* from old_rows o join new_rows n on n.id = o.id where (%1$s) is distinct from (%2$s))',
    (select string_agg('o.' || c, ', ') from unnest(string_to_array(cols, ',')) c),
    (select string_agg('n.' || c, ', ') from unnest(string_to_array(cols, ',')) c))
$sql$;

create function hotline_rollup_call_columns() returns text language sql immutable as $$
select 'arrived_at,pbx_id,original_queue,answered_by,answered_at,outcome,wait_seconds,'
       'talk_ended_at,ended_at,wrap_up_seconds,survey_score'
$$;

create function hotline_rollup_ticket_columns() returns text language sql immutable as $$
select 'opened_at,category,replied_at,due_at,satisfaction,completed_at,dispatch_party,'
       'completed_on_time'
$$;

-- The offers of the calls in %1$s, with the calls' attributes.
create function hotline_rollup_offers_of(calls_source text) returns text
language sql immutable as $$
select format(
    '(select o.agent_id, o.result, o.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id '
    'from %s c join call_offers o on o.call_id = c.call_id)', calls_source)
$$;

create function hotline_rollup_calls_inserted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
        execute format(hotline_rollup_calls_sql(), 'new_rows', 1);
    end if;
    return null;
end $$;

create function hotline_rollup_calls_updated() returns trigger language plpgsql as $$
declare
    cols text := hotline_rollup_call_columns();
    moved text := 'arrived_at,pbx_id,original_queue';
begin
    if not exists (select 1 from report_rollup_rules) or not exists (select 1 from new_rows) then
        return null;
    end if;
    if not exists (select 1 from old_rows o join new_rows n on n.id = o.id
                   where (o.arrived_at, o.pbx_id, o.original_queue, o.answered_by,
                          o.answered_at, o.outcome, o.wait_seconds, o.talk_ended_at,
                          o.ended_at, o.wrap_up_seconds, o.survey_score)
                         is distinct from
                         (n.arrived_at, n.pbx_id, n.original_queue, n.answered_by,
                          n.answered_at, n.outcome, n.wait_seconds, n.talk_ended_at,
                          n.ended_at, n.wrap_up_seconds, n.survey_score)) then
        return null;
    end if;
    execute format(hotline_rollup_calls_sql(), hotline_rollup_changed(cols), -1);
    execute format(hotline_rollup_calls_sql(), hotline_rollup_changed_new(cols), 1);
    execute format(hotline_rollup_calls_left_sql(), hotline_rollup_changed(cols));
    if exists (select 1 from old_rows o join new_rows n on n.id = o.id
               where (o.arrived_at, o.pbx_id, o.original_queue)
                     is distinct from (n.arrived_at, n.pbx_id, n.original_queue)) then
        execute format(hotline_rollup_offers_sql(),
                       hotline_rollup_offers_of(hotline_rollup_changed(moved)), -1);
        execute format(hotline_rollup_offers_sql(),
                       hotline_rollup_offers_of(hotline_rollup_changed_new(moved)), 1);
    end if;
    return null;
end $$;

create function hotline_rollup_calls_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_calls_sql(), 'old_rows', -1);
        execute format(hotline_rollup_calls_left_sql(), 'old_rows');
    end if;
    return null;
end $$;

create function hotline_rollup_offers_inserted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
        execute format(hotline_rollup_offers_sql(), '(select n.agent_id, n.result, '
            'n.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id from new_rows n '
            'join calls c on c.call_id = n.call_id)', 1);
    end if;
    return null;
end $$;

create function hotline_rollup_offers_updated() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
        execute format(hotline_rollup_offers_sql(), '(select o.agent_id, o.result, '
            'o.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id from old_rows o '
            'join calls c on c.call_id = o.call_id)', -1);
        execute format(hotline_rollup_offers_sql(), '(select n.agent_id, n.result, '
            'n.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id from new_rows n '
            'join calls c on c.call_id = n.call_id)', 1);
    end if;
    return null;
end $$;

create function hotline_rollup_offers_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_offers_sql(), '(select o.agent_id, o.result, '
            'o.ring_seconds, c.arrived_at, c.original_queue, c.pbx_id from old_rows o '
            'join calls c on c.call_id = o.call_id)', -1);
    end if;
    return null;
end $$;

create function hotline_rollup_tickets_inserted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from new_rows) then
        execute format(hotline_rollup_tickets_sql(), 'new_rows', 1);
    end if;
    return null;
end $$;

create function hotline_rollup_tickets_updated() returns trigger language plpgsql as $$
declare
    cols text := hotline_rollup_ticket_columns();
begin
    if not exists (select 1 from report_rollup_rules) or not exists (
        select 1 from old_rows o join new_rows n on n.id = o.id
        where (o.opened_at, o.category, o.replied_at, o.due_at, o.satisfaction,
               o.completed_at, o.dispatch_party, o.completed_on_time)
              is distinct from
              (n.opened_at, n.category, n.replied_at, n.due_at, n.satisfaction,
               n.completed_at, n.dispatch_party, n.completed_on_time)) then
        return null;
    end if;
    execute format(hotline_rollup_tickets_sql(), hotline_rollup_changed(cols), -1);
    execute format(hotline_rollup_tickets_sql(), hotline_rollup_changed_new(cols), 1);
    return null;
end $$;

create function hotline_rollup_tickets_deleted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from report_rollup_rules) and exists (select 1 from old_rows) then
        execute format(hotline_rollup_tickets_sql(), 'old_rows', -1);
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
    execute format(hotline_rollup_calls_sql(), 'calls', 1);
    execute format(hotline_rollup_offers_sql(), hotline_rollup_offers_of('calls'), 1);
    execute format(hotline_rollup_tickets_sql(), 'tickets', 1);
    return true;
end $$;
