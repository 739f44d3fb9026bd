-- Agent presence across restarts (and, for a standby instance, across processes):
-- who is logged in and who is paused, with the reason and since when; and the
-- append-only log of every login, logout, pause and unpause, for the reports.
--
-- Written by the outbox's ``agent`` record (AgentPresenceChanged): one statement
-- upserts agent_states (an older change never overwrites a newer one) and
-- appends the log row, keyed by dedup_key, so a replayed batch changes nothing.
-- Read once at start, before the first routing decision.

create table agent_states (
    agent_id         text primary key check (agent_id <> ''),
    logged_in        boolean not null,
    logged_in_since  timestamptz,
    pause_reason     text check (pause_reason <> ''),
    paused_since     timestamptz,
    changed_at       timestamptz not null,
    check (logged_in = (logged_in_since is not null)),
    check ((pause_reason is null) = (paused_since is null))
);

-- A logout also ends a pause; an unpause row carries the reason that ended.
create table agent_state_log (
    id          bigserial primary key,
    agent_id    text not null check (agent_id <> ''),
    event       text not null check (event in ('login', 'logout', 'pause', 'unpause')),
    reason      text,
    at          timestamptz not null,
    dedup_key   text not null unique
);
create index agent_state_log_agent on agent_state_log (agent_id, at);
create index agent_state_log_at on agent_state_log (at);
create trigger agent_state_log_append_only before update or delete on agent_state_log
    for each row execute function hotline_reject_change();
create trigger agent_state_log_no_truncate before truncate on agent_state_log
    for each statement execute function hotline_reject_change();

-- Sticky routing after a restart reads the calls answered within sticky_days
-- (the last agent who answered each number).
create index calls_answered on calls (answered_at) where answered_by is not null;
