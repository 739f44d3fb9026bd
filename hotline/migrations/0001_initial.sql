-- Hotline schema, version 1: customers, tickets, calls, offers, recordings,
-- callbacks, users and the audit log.
--
-- Conventions: every time is timestamptz; every enumerated text column has a
-- CHECK; the natural keys that make the outbox's writes idempotent are UNIQUE
-- (calls.call_id, call_offers.offer_id, tickets.number, customer_phones.phone,
-- recordings.path, ticket_events.dedup_key). ticket_events and audit_log are
-- append-only: a trigger rejects UPDATE, DELETE and TRUNCATE.

create function hotline_touch_updated_at() returns trigger
language plpgsql as $$
begin
    -- Only a real change moves updated_at, so re-applying a record is a no-op.
    if new is distinct from old then
        new.updated_at := now();
    end if;
    return new;
end
$$;

create function hotline_reject_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
        using errcode = 'integrity_constraint_violation';
end
$$;

-- Customers: one household, one file; a file may have several phone numbers.
create table customers (
    id          bigserial primary key,
    name        text not null default '',
    household   text,
    unit        text,
    address     text,
    tags        text[] not null default '{}',
    notes       text not null default '',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create trigger customers_touch before update on customers
    for each row execute function hotline_touch_updated_at();
create index customers_name on customers (lower(name));
create index customers_household on customers (lower(household)) where household is not null;

create table customer_phones (
    phone        text primary key check (phone <> ''),
    customer_id  bigint not null references customers (id) on delete cascade,
    label        text,
    -- clock_timestamp(): numbers added in one transaction keep their order.
    created_at   timestamptz not null default clock_timestamp()
);
create index customer_phones_customer on customer_phones (customer_id);
create index customer_phones_created on customer_phones (created_at);

-- The customer for a phone number, created (with the number) when it is new.
-- Safe against a concurrent creation of the same number: the loser's empty
-- customer row is removed and the winner's id returned.
create function hotline_customer_for_phone(p_phone text) returns bigint
language plpgsql as $$
declare
    found_id bigint;
    created_id bigint;
begin
    select customer_id into found_id from customer_phones where phone = p_phone;
    if found_id is not null then
        return found_id;
    end if;
    insert into customers default values returning id into created_id;
    insert into customer_phones (phone, customer_id) values (p_phone, created_id)
        on conflict (phone) do nothing;
    if found then
        return created_id;
    end if;
    delete from customers where id = created_id;
    select customer_id into found_id from customer_phones where phone = p_phone;
    return found_id;
end
$$;

-- Users: agents, supervisors and admins.
create table users (
    id             bigserial primary key,
    username       text not null check (username ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    display_name   text not null default '',
    role           text not null check (role in ('agent', 'supervisor', 'admin')),
    agent_id       text,
    queues         text[] not null default '{}',
    password_hash  text not null check (password_hash like '$argon2%'),
    active         boolean not null default true,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    last_login_at  timestamptz
);
create unique index users_username on users (lower(username));
create unique index users_agent on users (agent_id) where agent_id is not null;
create trigger users_touch before update on users
    for each row execute function hotline_touch_updated_at();

-- Tickets: every call lands on one.
create table tickets (
    id                bigserial primary key,
    number            text not null unique,
    customer_id       bigint references customers (id),
    category          text not null default 'consultation'
        check (category in ('consultation', 'complaint', 'repair', 'suggestion', 'other')),
    status            text not null default 'open'
        check (status in ('open', 'in_progress', 'dispatched', 'resolved', 'closed')),
    priority          integer not null default 0,
    queue             text,
    subject           text not null default '',
    description       text not null default '',
    assigned_to       text,
    opened_at         timestamptz not null default now(),
    last_call_at      timestamptz,
    due_at            timestamptz,
    replied_at        timestamptz,
    closed_at         timestamptz,
    dispatch_party    text check (dispatch_party in
        ('in_house', 'developer_warranty', 'equipment_vendor', 'tenant_contractor')),
    dispatch_contact  text,
    dispatched_at     timestamptz,
    dispatch_due_at   timestamptz,
    completed_at      timestamptz,
    completed_on_time boolean,
    resolution        text,
    satisfaction      smallint check (satisfaction between 1 and 5),
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    check (dispatched_at is null or dispatch_party is not null),
    check (completed_at is null or dispatched_at is not null),
    check (completed_at is null or completed_at >= dispatched_at),
    check ((status = 'closed') = (closed_at is not null))
);
create trigger tickets_touch before update on tickets
    for each row execute function hotline_touch_updated_at();
-- Open tickets by customer (the screen-pop and the call-to-ticket rule).
create index tickets_open_by_customer on tickets (customer_id, last_call_at desc)
    where status in ('open', 'in_progress', 'dispatched');
-- Overdue tickets: due_at < now() and replied_at is null and status not closed.
create index tickets_overdue on tickets (due_at)
    where replied_at is null and status <> 'closed' and due_at is not null;
create index tickets_updated on tickets (updated_at);
create index tickets_queue_opened on tickets (queue, opened_at);
create index tickets_completed on tickets (completed_at) where completed_at is not null;

-- Ticket events: the append-only history of who changed what and when.
create table ticket_events (
    id          bigserial primary key,
    ticket_id   bigint not null references tickets (id),
    at          timestamptz not null default now(),
    actor       text not null,
    kind        text not null,
    field       text,
    old_value   jsonb,
    new_value   jsonb,
    detail      jsonb not null default '{}',
    dedup_key   text unique
);
create index ticket_events_ticket on ticket_events (ticket_id, id);
create trigger ticket_events_append_only before update or delete on ticket_events
    for each row execute function hotline_reject_change();
create trigger ticket_events_no_truncate before truncate on ticket_events
    for each statement execute function hotline_reject_change();

-- Calls: one row per inbound call, keyed by the caller channel's Uniqueid.
create table calls (
    id              bigserial primary key,
    call_id         text not null unique,
    linkedid        text,
    channel         text,
    ticket_id       bigint not null references tickets (id),
    customer_id     bigint references customers (id),
    caller_number   text not null,
    queue           text not null,
    original_queue  text not null,
    priority        integer not null default 0,
    state           text not null default 'in_progress'
        check (state in ('in_progress', 'completed')),
    arrived_at      timestamptz not null,
    arrival_source  text not null,
    answered_at     timestamptz,
    answered_by     text,
    answer_source   text,
    talk_ended_at   timestamptz,
    ended_at        timestamptz,
    end_source      text,
    outcome         text check (outcome in
        ('answered', 'abandoned_waiting', 'abandoned_ringing', 'overflowed')),
    wait_seconds    double precision check (wait_seconds >= 0),
    offers          integer check (offers >= 0),
    check ((state = 'completed') = (outcome is not null and ended_at is not null))
);
-- Calls by day and queue (reports): a range on arrived_at within a queue.
create index calls_by_queue_day on calls (queue, arrived_at);
create index calls_by_day on calls (arrived_at);
create index calls_ticket on calls (ticket_id);
create index calls_customer on calls (customer_id, arrived_at desc);

-- Call offers: one row per agent ring.
create table call_offers (
    id                 bigserial primary key,
    offer_id           text not null unique,
    call_id            text not null references calls (call_id),
    agent_id           text not null,
    queue              text not null,
    requested_at       timestamptz not null,
    ring_started_at    timestamptz not null,
    ring_start_source  text not null,
    ended_at           timestamptz not null,
    end_source         text not null,
    result             text not null
        check (result in ('answered', 'no_answer', 'busy', 'unavailable', 'cancelled')),
    ring_seconds       double precision not null check (ring_seconds >= 0),
    rings              double precision not null check (rings >= 0)
);
create index call_offers_call on call_offers (call_id);
create index call_offers_agent on call_offers (agent_id, ring_started_at);

-- Recordings: the MixMonitor file of an answered offer, linked to ticket and call.
create table recordings (
    id          bigserial primary key,
    path        text not null unique,
    ticket_id   bigint not null references tickets (id),
    call_id     text not null references calls (call_id),
    offer_id    text not null,
    agent_id    text,
    started_at  timestamptz not null
);
create index recordings_ticket on recordings (ticket_id);
create index recordings_call on recordings (call_id);

-- Callbacks: scheduled on a ticket; every attempt recorded.
create table callbacks (
    id               bigserial primary key,
    ticket_id        bigint not null references tickets (id),
    phone            text not null check (phone <> ''),
    due_at           timestamptz not null,
    status           text not null default 'scheduled'
        check (status in ('scheduled', 'done', 'failed', 'cancelled')),
    attempts         integer not null default 0 check (attempts >= 0),
    max_attempts     integer not null default 3 check (max_attempts >= 1),
    last_attempt_at  timestamptz,
    last_result      text check (last_result in
        ('answered', 'no_answer', 'busy', 'unavailable', 'failed')),
    outcome          text,
    assigned_to      text,
    created_by       text not null,
    note             text not null default '',
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);
create trigger callbacks_touch before update on callbacks
    for each row execute function hotline_touch_updated_at();
create index callbacks_due on callbacks (due_at) where status = 'scheduled';
create index callbacks_ticket on callbacks (ticket_id);

create table callback_attempts (
    id           bigserial primary key,
    callback_id  bigint not null references callbacks (id),
    attempt      integer not null check (attempt >= 1),
    at           timestamptz not null,
    agent_id     text,
    result       text not null
        check (result in ('answered', 'no_answer', 'busy', 'unavailable', 'failed')),
    note         text not null default '',
    unique (callback_id, attempt)
);

-- Audit log: every read of a customer file (and other sensitive actions).
create table audit_log (
    id           bigserial primary key,
    at           timestamptz not null default now(),
    actor        text not null,
    action       text not null,
    object_type  text not null,
    object_id    text not null,
    detail       jsonb not null default '{}'
);
create index audit_log_object on audit_log (object_type, object_id, at);
create index audit_log_actor on audit_log (actor, at);
create trigger audit_log_append_only before update or delete on audit_log
    for each row execute function hotline_reject_change();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function hotline_reject_change();
