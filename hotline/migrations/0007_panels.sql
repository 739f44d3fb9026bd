-- The panels (issue 11): shift handover notes, escalations, quality review.
--
-- handover_notes: a note for the next shift (free text, optional ticket links),
-- with its author and time; handover_reads: who has read which note (a note is
-- "unread" for a user until a row here says otherwise).
create table handover_notes (
    id          bigserial primary key,
    author      text not null,
    body        text not null check (body <> '' and length(body) <= 4000),
    tickets     text[] not null default '{}',
    queues      text[] not null default '{}',
    created_at  timestamptz not null default now()
);
create index handover_notes_created on handover_notes (created_at);

create table handover_reads (
    note_id  bigint not null references handover_notes (id),
    reader   text not null,
    read_at  timestamptz not null default now(),
    primary key (note_id, reader)
);

-- Escalations: a ticket handed up to a supervisor with a reason (or a call
-- transferred to another queue: kind 'transfer'); open until a supervisor
-- resolves it.
create table escalations (
    id           bigserial primary key,
    ticket_id    bigint not null references tickets (id),
    kind         text not null default 'escalation' check (kind in ('escalation', 'transfer')),
    reason       text not null check (length(reason) <= 2000),
    target_queue text,
    call_id      text,
    raised_by    text not null,
    raised_at    timestamptz not null default now(),
    resolved_by  text,
    resolved_at  timestamptz,
    resolution   text
);
create index escalations_open on escalations (raised_at) where resolved_at is null;
create index escalations_ticket on escalations (ticket_id);

-- Quality review: a supervisor's scores of one call on the configured form
-- ([panels] quality_criteria), per agent over time.
create table quality_scores (
    id          bigserial primary key,
    call_id     text not null references calls (call_id),
    agent_id    text not null,
    reviewer    text not null,
    scores      jsonb not null check (jsonb_typeof(scores) = 'object'),
    total       double precision not null check (total >= 0),
    comments    text not null default '' check (length(comments) <= 4000),
    scored_at   timestamptz not null default now()
);
create index quality_scores_agent on quality_scores (agent_id, scored_at);
create index quality_scores_call on quality_scores (call_id);
