"""The panels' own records: shift handover notes, escalations and quality scores.

Tables of migration ``0007_panels.sql``:

- :class:`HandoverNotes`: a note for the next shift (free text, optional ticket
  links, optionally limited to some queues), with its author and time; each
  reader's read is recorded, so a panel shows the notes its user has not read.
- :class:`Escalations`: a ticket handed up to a supervisor with a reason
  (``escalation``), or a call transferred to another queue with a note
  (``transfer``); open until a supervisor resolves it.
- :class:`QualityScores`: a supervisor's scores of one call on the configured
  form, per agent over time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hotline.store.db import Db, InvalidChange, NotFound, from_row

__all__ = [
    "AgentQuality",
    "Escalation",
    "Escalations",
    "HandoverNote",
    "HandoverNotes",
    "QualityScore",
    "QualityScores",
]


@dataclass(frozen=True, slots=True)
class HandoverNote:
    """One handover note; ``read`` says whether the asking user has read it."""

    id: int
    author: str
    body: str
    tickets: tuple[str, ...]
    queues: tuple[str, ...]
    created_at: datetime
    read: bool = False


def _note(row: asyncpg.Record) -> HandoverNote:
    values = dict(row.items())
    values["tickets"] = tuple(values["tickets"])
    values["queues"] = tuple(values["queues"])
    return HandoverNote(**values)


_NOTE_SELECT = (
    "select n.id, n.author, n.body, n.tickets, n.queues, n.created_at, "
    "exists (select 1 from handover_reads r where r.note_id = n.id and r.reader = $1) as read "
    "from handover_notes n"
)
_NOTE_UNREAD = (
    " and not exists (select 1 from handover_reads r where r.note_id = n.id and r.reader = $1)"
)
# $2: the reader's queues, or null for every note.
_NOTE_VISIBLE = "($2::text[] is null or n.queues = '{}' or n.queues && $2::text[])"


class HandoverNotes:
    """The handover notes repository."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def write(
        self,
        author: str,
        body: str,
        *,
        tickets: Sequence[str] = (),
        queues: Sequence[str] = (),
    ) -> HandoverNote:
        """Store a note by ``author``; its author has read it."""
        row = await self.db.fetchrow(
            "with note as (insert into handover_notes (author, body, tickets, queues) "
            "values ($1, $2, $3, $4) returning *), "
            "seen as (insert into handover_reads (note_id, reader) select id, $1 from note) "
            "select id, author, body, tickets, queues, created_at, true as read from note",
            author,
            body,
            list(tickets),
            list(queues),
        )
        assert row is not None
        return _note(row)

    async def get(self, note_id: int, reader: str, queues: Sequence[str] | None) -> HandoverNote:
        """One note as ``reader`` (of ``queues``; ``None``: every queue) may see it."""
        row = await self.db.fetchrow(
            _NOTE_SELECT + " where n.id = $3 and " + _NOTE_VISIBLE,
            reader,
            None if queues is None else list(queues),
            note_id,
        )
        if row is None:
            raise NotFound(f"handover note {note_id} not found")
        return _note(row)

    async def mark_read(self, note_id: int, reader: str) -> None:
        """Record that ``reader`` has read the note (again: nothing changes)."""
        await self.db.execute(
            "insert into handover_reads (note_id, reader) values ($1, $2) on conflict do nothing",
            note_id,
            reader,
        )

    async def unread(
        self, reader: str, queues: Sequence[str] | None, *, since: datetime, limit: int = 50
    ) -> list[HandoverNote]:
        """The notes since ``since`` that ``reader`` may see and has not read, oldest first."""
        rows = await self.db.fetch(
            _NOTE_SELECT
            + " where n.created_at >= $3 and "
            + _NOTE_VISIBLE
            + _NOTE_UNREAD
            + " order by n.created_at, n.id limit $4",
            reader,
            None if queues is None else list(queues),
            since,
            limit,
        )
        return [_note(row) for row in rows]

    async def find(
        self,
        reader: str,
        queues: Sequence[str] | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        limit: int = 100,
    ) -> list[HandoverNote]:
        """Notes ``reader`` may see written in [since, until), optionally containing
        ``text`` (in the body, author or ticket links), newest first."""
        rows = await self.db.fetch(
            _NOTE_SELECT + " where " + _NOTE_VISIBLE + " "
            "and ($3::timestamptz is null or n.created_at >= $3) "
            "and ($4::timestamptz is null or n.created_at < $4) "
            "and ($5::text is null or strpos(lower(n.body), lower($5)) > 0 "
            "     or lower(n.author) = lower($5) or $5 = any (n.tickets)) "
            "order by n.created_at desc, n.id desc limit $6",
            reader,
            None if queues is None else list(queues),
            since,
            until,
            text,
            limit,
        )
        return [_note(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Escalation:
    """A ticket handed up (``escalation``) or a call transferred (``transfer``)."""

    id: int
    ticket: str
    ticket_queue: str | None
    ticket_assigned_to: str | None
    kind: str
    reason: str
    target_queue: str | None
    call_id: str | None
    raised_by: str
    raised_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None

    @property
    def open(self) -> bool:
        """Not resolved yet."""
        return self.resolved_at is None


_ESCALATION_SELECT = (
    "select e.id, t.number as ticket, t.queue as ticket_queue, "
    "t.assigned_to as ticket_assigned_to, e.kind, e.reason, e.target_queue, e.call_id, "
    "e.raised_by, e.raised_at, e.resolved_by, e.resolved_at, e.resolution "
    "from escalations e join tickets t on t.id = e.ticket_id"
)


class Escalations:
    """The escalations repository."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def raise_(
        self,
        ticket: str,
        reason: str,
        raised_by: str,
        *,
        kind: str = "escalation",
        target_queue: str | None = None,
        call_id: str | None = None,
    ) -> Escalation:
        """Escalate the ticket numbered ``ticket``."""
        escalation_id = await self.db.fetchval(
            "insert into escalations (ticket_id, kind, reason, target_queue, call_id, raised_by) "
            "select id, $2, $3, $4, $5, $6 from tickets where number = $1 returning id",
            ticket,
            kind,
            reason,
            target_queue,
            call_id,
            raised_by,
        )
        if escalation_id is None:
            raise NotFound(f"ticket {ticket} not found")
        return await self.get(escalation_id)

    async def get(self, escalation_id: int) -> Escalation:
        """One escalation."""
        row = await self.db.fetchrow(_ESCALATION_SELECT + " where e.id = $1", escalation_id)
        if row is None:
            raise NotFound(f"escalation {escalation_id} not found")
        return from_row(Escalation, row)

    async def find(
        self, *, open_only: bool = True, ticket: str | None = None, limit: int = 100
    ) -> list[Escalation]:
        """Escalations, newest first: the open ones, or all; optionally of one ticket."""
        rows = await self.db.fetch(
            _ESCALATION_SELECT + " where (not $1 or e.resolved_at is null) "
            "and ($2::text is null or t.number = $2) order by e.raised_at desc, e.id desc "
            "limit $3",
            open_only,
            ticket,
            limit,
        )
        return [from_row(Escalation, row) for row in rows]

    async def resolve(self, escalation_id: int, resolved_by: str, resolution: str) -> Escalation:
        """Close an open escalation; closing a closed one is :class:`InvalidChange`."""
        changed = await self.db.fetchval(
            "update escalations set resolved_by = $2, resolved_at = now(), resolution = $3 "
            "where id = $1 and resolved_at is null returning id",
            escalation_id,
            resolved_by,
            resolution,
        )
        if changed is None:
            await self.get(escalation_id)  # NotFound if it does not exist
            raise InvalidChange(f"escalation {escalation_id} is already resolved")
        return await self.get(escalation_id)


@dataclass(frozen=True, slots=True)
class QualityScore:
    """A supervisor's review of one call."""

    id: int
    call_id: str
    agent_id: str
    ticket: str
    reviewer: str
    scores: Mapping[str, int]
    total: float
    comments: str
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class AgentQuality:
    """One agent's reviews on one day: how many, and their mean total."""

    day: str
    reviews: int
    mean_total: float


_SCORE_SELECT = (
    "select q.id, q.call_id, q.agent_id, t.number as ticket, q.reviewer, q.scores, q.total, "
    "q.comments, q.scored_at from quality_scores q "
    "join calls c on c.call_id = q.call_id join tickets t on t.id = c.ticket_id"
)


class QualityScores:
    """The quality review repository."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def call_agent(self, call_id: str) -> str | None:
        """The agent who answered the recorded call ``call_id`` (``NotFound``: no such call)."""
        row = await self.db.fetchrow("select answered_by from calls where call_id = $1", call_id)
        if row is None:
            raise NotFound(f"call {call_id} not found")
        agent: str | None = row["answered_by"]
        return agent

    async def add(
        self,
        call_id: str,
        agent_id: str,
        reviewer: str,
        scores: Mapping[str, int],
        comments: str,
    ) -> QualityScore:
        """Store a review; ``total`` is the sum of the scores."""
        score_id = await self.db.fetchval(
            "insert into quality_scores (call_id, agent_id, reviewer, scores, total, comments) "
            "values ($1, $2, $3, $4, $5, $6) returning id",
            call_id,
            agent_id,
            reviewer,
            dict(scores),
            float(sum(scores.values())),
            comments,
        )
        row = await self.db.fetchrow(_SCORE_SELECT + " where q.id = $1", score_id)
        assert row is not None
        return _score(row)

    async def find(
        self,
        *,
        agent_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 200,
    ) -> list[QualityScore]:
        """Reviews, newest first, of one agent or all, scored in [since, until)."""
        rows = await self.db.fetch(
            _SCORE_SELECT + " where ($1::text is null or q.agent_id = $1) "
            "and ($2::timestamptz is null or q.scored_at >= $2) "
            "and ($3::timestamptz is null or q.scored_at < $3) "
            "order by q.scored_at desc, q.id desc limit $4",
            agent_id,
            since,
            until,
            limit,
        )
        return [_score(row) for row in rows]

    async def by_day(
        self,
        agent_id: str,
        time_zone: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AgentQuality]:
        """The agent's reviews per day (in ``time_zone``), oldest first."""
        rows = await self.db.fetch(
            "select to_char(q.scored_at at time zone $2, 'YYYY-MM-DD') as day, "
            "count(*)::int as reviews, avg(q.total)::float8 as mean_total "
            "from quality_scores q where q.agent_id = $1 "
            "and ($3::timestamptz is null or q.scored_at >= $3) "
            "and ($4::timestamptz is null or q.scored_at < $4) "
            "group by 1 order by 1",
            agent_id,
            time_zone,
            since,
            until,
        )
        return [AgentQuality(**dict(row.items())) for row in rows]


def _score(row: asyncpg.Record) -> QualityScore:
    values: dict[str, Any] = dict(row.items())
    return QualityScore(**values)
