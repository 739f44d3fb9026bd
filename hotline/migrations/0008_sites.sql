-- Several sites (issue 14): several PBXs, each with its own active/standby pair
-- ([service] pbx_id), write to one database.
--
-- sites: which site claims each ticket letter ([service] instance). Ticket
-- numbers are unique by that letter, so a letter belongs to one pbx_id; an
-- instance whose letter another site claims is refused at start
-- (hotline.store.sites). A pair's two letters are both claimed by its pbx_id.
--
-- calls and call_offers say their site (pbx_id; '' for an instance without
-- pbx_id, and for rows written before this migration). Customers and tickets are
-- shared by every site.
--
-- Uniqueids are unique across PBXs only when each Asterisk has its own
-- systemname (asterisk.conf), which prefixes them. Should two sites still
-- produce the same call id, the second site's writes to the first site's call
-- are refused and logged in fenced_writes (reason 'site'), like an older
-- epoch's (reason 'epoch'): epochs compare only within one site's lease.

create table sites (
    instance      text primary key check (instance <> ''),
    pbx_id        text not null,
    claimed_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now()
);

alter table calls add column pbx_id text not null default '';
alter table call_offers add column pbx_id text not null default '';
create index calls_site_arrived on calls (pbx_id, arrived_at);

alter table fenced_writes add column reason text not null default 'epoch'
    check (reason in ('epoch', 'site'));

-- A row's site is kept: a write without one ('': a record spilled before this
-- migration) inherits it, a write from another site is refused.
create or replace function hotline_fence_call_update() returns trigger language plpgsql as $$
begin
    if new.pbx_id = '' then
        new.pbx_id := old.pbx_id;
    end if;
    if old.pbx_id <> '' and new.pbx_id <> old.pbx_id then
        insert into fenced_writes (tbl, call_id, epoch, current, reason)
        values (tg_table_name, old.call_id, new.epoch, old.epoch, 'site');
        return null;
    end if;
    if new.epoch < old.epoch then
        insert into fenced_writes (tbl, call_id, epoch, current)
        values (tg_table_name, old.call_id, new.epoch, old.epoch);
        return null;
    end if;
    return new;
end $$;

-- call_offers (which has pbx_id) and recordings (which has not) for a call.
create or replace function hotline_fence_call_child() returns trigger language plpgsql as $$
declare
    current_epoch bigint;
    current_site text;
    writer_site text := coalesce(to_jsonb(new) ->> 'pbx_id', '');
begin
    select epoch, pbx_id into current_epoch, current_site from calls where call_id = new.call_id;
    if current_site is not null and current_site <> '' and writer_site <> ''
       and writer_site <> current_site then
        insert into fenced_writes (tbl, call_id, epoch, current, reason)
        values (tg_table_name, new.call_id, new.epoch, current_epoch, 'site');
        return null;
    end if;
    if current_epoch is not null and new.epoch < current_epoch then
        insert into fenced_writes (tbl, call_id, epoch, current)
        values (tg_table_name, new.call_id, new.epoch, current_epoch);
        return null;
    end if;
    return new;
end $$;

-- Callbacks: each site's active runs a callback scheduler, so a callback belongs to
-- one site: the site of its ticket's latest call when it is scheduled, else none
-- ('') until a site's scheduler claims it (hotline.store.scheduler), atomically.
alter table callbacks add column pbx_id text not null default '';

create function hotline_callback_site() returns trigger language plpgsql as $$
declare
    site text;
begin
    if new.pbx_id = '' then
        select c.pbx_id into site from calls c
        where c.ticket_id = new.ticket_id order by c.arrived_at desc, c.id desc limit 1;
        new.pbx_id := coalesce(site, '');
    end if;
    return new;
end $$;

create trigger callbacks_site before insert on callbacks
    for each row execute function hotline_callback_site();
