-- Failover (issue 14): one active router per PBX, and fencing of an older active.
--
-- leases: one row per [service] pbx_id. The holder renews expires_at (database
-- time, so the hosts' clocks do not matter); a standby takes the row once it has
-- expired (or was released), and every take increments epoch.
--
-- Fencing: calls, call_offers and recordings carry the epoch of the instance that
-- wrote them. A write for a call from an older epoch than the call's row holds is
-- skipped (the triggers below), so an old active that wakes up cannot overwrite
-- what the new one recorded. Rows written before this migration have epoch 0.

create table leases (
    pbx_id       text primary key check (pbx_id <> ''),
    holder       text not null,
    epoch        bigint not null check (epoch > 0),
    acquired_at  timestamptz not null,
    expires_at   timestamptz not null
);

alter table calls add column epoch bigint not null default 0;
alter table call_offers add column epoch bigint not null default 0;
alter table recordings add column epoch bigint not null default 0;

-- Writes refused by the fence, for the operator and the failover tests.
create table fenced_writes (
    id        bigserial primary key,
    tbl       text not null,
    call_id   text not null,
    epoch     bigint not null,
    current   bigint not null,
    at        timestamptz not null default now()
);

create function hotline_fence_call_update() returns trigger language plpgsql as $$
begin
    if new.epoch < old.epoch then
        insert into fenced_writes (tbl, call_id, epoch, current)
        values (tg_table_name, old.call_id, new.epoch, old.epoch);
        return null;
    end if;
    return new;
end $$;

create function hotline_fence_call_child() returns trigger language plpgsql as $$
declare
    current_epoch bigint;
begin
    select epoch into current_epoch from calls where call_id = new.call_id;
    if current_epoch is not null and new.epoch < current_epoch then
        insert into fenced_writes (tbl, call_id, epoch, current)
        values (tg_table_name, new.call_id, new.epoch, current_epoch);
        return null;
    end if;
    return new;
end $$;

create trigger calls_fence before update on calls
    for each row execute function hotline_fence_call_update();
create trigger call_offers_fence before insert on call_offers
    for each row execute function hotline_fence_call_child();
create trigger recordings_fence before insert on recordings
    for each row execute function hotline_fence_call_child();
