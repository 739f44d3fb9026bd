"""Callbacks: scheduled on a ticket, attempted, retried by a :class:`RetryPolicy`.

Each attempt is one ``callback_attempts`` row; the callback itself carries the
count, the last result, the next due time and its status (``scheduled``,
``done``, ``failed`` after the last allowed attempt, or ``cancelled``). The
ticket's history gets a row when a callback is scheduled and after each attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from hotline.store.db import Db, InvalidChange, NotFound, from_row, transaction
from hotline.store.rules import CALLBACK_RESULTS, RetryPolicy, next_callback
from hotline.store.tickets import Tickets, append_event

__all__ = ["Callback", "CallbackAttempt", "Callbacks"]

_SELECT: Final = """
select
    b.id, t.number as ticket_number, b.phone, b.due_at, b.status, b.attempts,
    b.max_attempts, b.last_attempt_at, b.last_result, b.outcome, b.assigned_to,
    b.created_by, b.note, b.created_at, t.queue
from callbacks b join tickets t on t.id = b.ticket_id
"""


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback to a customer about a ticket."""

    id: int
    ticket_number: str
    phone: str
    due_at: datetime
    status: str
    attempts: int
    max_attempts: int
    last_attempt_at: datetime | None
    last_result: str | None
    outcome: str | None
    assigned_to: str | None
    created_by: str
    note: str
    created_at: datetime
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """One attempt of a callback."""

    attempt: int
    at: datetime
    agent_id: str | None
    result: str
    note: str


def _callback(row: asyncpg.Record) -> Callback:
    return from_row(Callback, row)


class Callbacks:
    """The callbacks repository; see the module docstring."""

    def __init__(self, db: Db, *, policy: RetryPolicy | None = None) -> None:
        """Run on ``db``, retrying by ``policy`` (the defaults of :class:`RetryPolicy`)."""
        self.db = db
        self.policy = policy or RetryPolicy()

    async def get(self, callback_id: int) -> Callback:
        """The callback with this id."""
        row = await self.db.fetchrow(_SELECT + " where b.id = $1", callback_id)
        if row is None:
            raise NotFound(f"callback {callback_id} not found")
        return _callback(row)

    async def schedule(
        self,
        ticket_number: str,
        *,
        phone: str,
        due_at: datetime,
        actor: str,
        assigned_to: str | None = None,
        note: str = "",
        max_attempts: int | None = None,
    ) -> Callback:
        """Schedule a callback on a ticket."""
        attempts = self.policy.max_attempts if max_attempts is None else max_attempts
        if attempts < 1:
            raise InvalidChange("max_attempts must be at least 1")
        if not phone.strip():
            raise InvalidChange("a callback needs a phone number")
        async with transaction(self.db) as conn:
            ticket = await Tickets(conn).get(ticket_number)
            callback_id = await conn.fetchval(
                "insert into callbacks (ticket_id, phone, due_at, max_attempts, assigned_to, "
                "created_by, note) values ($1, $2, $3, $4, $5, $6, $7) returning id",
                ticket.id,
                phone.strip(),
                due_at,
                attempts,
                assigned_to,
                actor,
                note,
            )
            await append_event(
                conn,
                ticket.id,
                actor,
                "callback_scheduled",
                detail={"callback_id": callback_id, "due_at": due_at},
            )
            return await Callbacks(conn).get(callback_id)

    async def due(
        self,
        now: datetime,
        *,
        limit: int = 10,
        assigned_to: str | None = None,
        site: str | None = None,
    ) -> list[Callback]:
        """Scheduled callbacks due at ``now``, earliest first (optionally of one agent; with
        ``site``, only that site's and those of no site yet, see :meth:`claim`)."""
        rows = await self.db.fetch(
            _SELECT + " where b.status = 'scheduled' and b.due_at <= $1 "
            "and ($2::text is null or b.assigned_to = $2) "
            "and ($4::text is null or b.pbx_id = $4 or b.pbx_id = '') "
            "order by b.due_at, b.id limit $3",
            now,
            assigned_to,
            limit,
            site,
        )
        return [_callback(row) for row in rows]

    async def claim(self, callback_id: int, site: str) -> bool:
        """Make the callback ``site``'s if it belongs to no site yet; whether it is ``site``'s.

        A callback's site is its ticket's latest call's, set when it is scheduled
        (migration ``0008_sites.sql``); one with none is dialled by the first site whose
        scheduler claims it, so two sites never dial the same callback."""
        claimed = await self.db.fetchval(
            "update callbacks set pbx_id = $2 where id = $1 and pbx_id in ('', $2) returning id",
            callback_id,
            site,
        )
        return claimed is not None

    async def next_due(self, *, assigned_to: str | None = None) -> Callback | None:
        """The scheduled callback due soonest (even if in the future), if any."""
        row = await self.db.fetchrow(
            _SELECT + " where b.status = 'scheduled' "
            "and ($1::text is null or b.assigned_to = $1) order by b.due_at, b.id limit 1",
            assigned_to,
        )
        return _callback(row) if row is not None else None

    async def record_attempt(
        self,
        callback_id: int,
        *,
        result: str,
        at: datetime,
        agent_id: str | None = None,
        note: str = "",
        outcome: str | None = None,
        attempt: int | None = None,
    ) -> Callback:
        """Record an attempt and apply the retry rules; ``outcome`` (what was agreed, why it
        failed) is kept on the callback.

        With ``attempt`` (the engine's writes, replayed by the outbox after a crash)
        the call is idempotent: an attempt already recorded changes nothing, and an
        attempt made while the callback was cancelled is recorded without reviving it.
        """
        if result not in CALLBACK_RESULTS:
            raise InvalidChange(f"result must be one of {', '.join(CALLBACK_RESULTS)}")
        async with transaction(self.db) as conn:
            row = await conn.fetchrow(
                "select b.ticket_id, b.status, b.attempts, b.max_attempts from callbacks b "
                "where b.id = $1 for update",
                callback_id,
            )
            if row is None:
                raise NotFound(f"callback {callback_id} not found")
            if attempt is not None and attempt <= row["attempts"]:
                return await Callbacks(conn).get(callback_id)
            if row["status"] != "scheduled":
                if attempt is None:
                    raise InvalidChange(f"callback {callback_id} is {row['status']}")
                await conn.execute(
                    "insert into callback_attempts (callback_id, attempt, at, agent_id, result, "
                    "note) values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
                    callback_id,
                    attempt,
                    at,
                    agent_id,
                    result,
                    note or f"made while the callback was {row['status']}",
                )
                return await Callbacks(conn).get(callback_id)
            attempt = row["attempts"] + 1
            decision = next_callback(result, attempt, row["max_attempts"], at, self.policy)
            await conn.execute(
                "insert into callback_attempts (callback_id, attempt, at, agent_id, result, note) "
                "values ($1, $2, $3, $4, $5, $6)",
                callback_id,
                attempt,
                at,
                agent_id,
                result,
                note,
            )
            await conn.execute(
                "update callbacks set attempts = $2, last_attempt_at = $3, last_result = $4, "
                "status = $5, due_at = coalesce($6, due_at), outcome = coalesce($7, outcome) "
                "where id = $1",
                callback_id,
                attempt,
                at,
                result,
                decision.status,
                decision.due_at,
                outcome,
            )
            await append_event(
                conn,
                row["ticket_id"],
                agent_id or "system",
                "callback_attempt",
                detail={
                    "callback_id": callback_id,
                    "attempt": attempt,
                    "result": result,
                    "status": decision.status,
                    "next_due_at": decision.due_at,
                },
            )
            return await Callbacks(conn).get(callback_id)

    async def cancel(self, callback_id: int, *, actor: str, reason: str = "") -> Callback:
        """Cancel a scheduled callback."""
        async with transaction(self.db) as conn:
            ticket_id = await conn.fetchval(
                "update callbacks set status = 'cancelled', outcome = $2 "
                "where id = $1 and status = 'scheduled' returning ticket_id",
                callback_id,
                reason or "cancelled",
            )
            if ticket_id is None:
                current = await Callbacks(conn).get(callback_id)
                raise InvalidChange(f"callback {callback_id} is {current.status}")
            await append_event(
                conn,
                ticket_id,
                actor,
                "callback_cancelled",
                detail={"callback_id": callback_id, "reason": reason},
            )
            return await Callbacks(conn).get(callback_id)

    async def for_ticket(self, ticket_number: str) -> list[Callback]:
        """A ticket's callbacks, oldest first."""
        rows = await self.db.fetch(
            _SELECT + " where t.number = $1 order by b.created_at, b.id", ticket_number
        )
        return [_callback(row) for row in rows]

    async def attempts(self, callback_id: int) -> list[CallbackAttempt]:
        """A callback's attempts, in order."""
        rows = await self.db.fetch(
            "select attempt, at, agent_id, result, note from callback_attempts "
            "where callback_id = $1 order by attempt",
            callback_id,
        )
        return [from_row(CallbackAttempt, row) for row in rows]
