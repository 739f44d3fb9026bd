"""Tickets: create, read, change (with a history row per change), list, overdue, repairs.

Every change goes through one transaction that locks the ticket row, writes the
new values and appends one ``ticket_events`` row per changed field (who, when,
old and new value). After the commit, the optional ``listener`` sees the new
ticket; the service uses it to keep the in-memory view of open tickets
(:class:`hotline.store.opentickets.OpenTickets`) current.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from hotline.store.db import Db, InvalidChange, NotFound, from_row, jsonable, transaction
from hotline.store.rules import (
    CATEGORIES,
    DISPATCH_PARTIES,
    OPEN_STATUSES,
    STATUSES,
    repair_on_time,
    reply_due,
    timeliness_rate,
)

__all__ = [
    "RepairTimeliness",
    "Ticket",
    "TicketEvent",
    "TicketFilter",
    "TicketListener",
    "TicketScope",
    "TicketState",
    "Tickets",
    "append_event",
    "scope_sql",
]

_SELECT: Final = """
select
    t.id, t.number, t.customer_id, t.category, t.status, t.priority, t.queue, t.subject,
    t.description, t.assigned_to, t.opened_at, t.last_call_at, t.due_at, t.replied_at,
    t.closed_at, t.dispatch_party, t.dispatch_contact, t.dispatched_at,
    t.dispatch_due_at, t.completed_at, t.completed_on_time, t.resolution, t.satisfaction,
    t.created_at, t.updated_at
from tickets t
"""
_OPEN_SQL: Final = "t.status in (" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"
_EDITABLE: Final = frozenset(
    {
        "customer_id",
        "category",
        "status",
        "priority",
        "queue",
        "subject",
        "description",
        "assigned_to",
        "due_at",
        "replied_at",
        "resolution",
        "satisfaction",
    }
)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket. ``completed_on_time`` is set when a dispatched repair is completed."""

    id: int
    number: str
    customer_id: int | None
    category: str
    status: str
    priority: int
    queue: str | None
    subject: str
    description: str
    assigned_to: str | None
    opened_at: datetime
    last_call_at: datetime | None
    due_at: datetime | None
    replied_at: datetime | None
    closed_at: datetime | None
    dispatch_party: str | None
    dispatch_contact: str | None
    dispatched_at: datetime | None
    dispatch_due_at: datetime | None
    completed_at: datetime | None
    completed_on_time: bool | None
    resolution: str | None
    satisfaction: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """A new call from the customer may land on it."""
        return self.status in OPEN_STATUSES

    def overdue(self, now: datetime) -> bool:
        """Its committed reply time has passed without a reply, and it is not closed."""
        return (
            self.due_at is not None
            and self.due_at < now
            and self.replied_at is None
            and self.status != "closed"
        )


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One row of a ticket's history."""

    id: int
    at: datetime
    actor: str
    kind: str
    field: str | None
    old_value: Any
    new_value: Any
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TicketScope:
    """The tickets one user may see: those of ``queues``, and those assigned to one of
    ``owners`` (the user's agent id and user name)."""

    queues: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()

    def allows(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` is in this scope."""
        return ticket.queue in self.queues or ticket.assigned_to in self.owners


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """What :meth:`Tickets.find` and :meth:`Tickets.count` select; ``None`` means any.

    ``queues`` limits to tickets of those queues; ``scope`` to what a user may see;
    ``overdue_at`` selects tickets overdue at that moment; ``site`` the tickets with a
    call taken by that site (``[service] pbx_id``; a ticket may have calls of several).
    """

    statuses: Sequence[str] | None = None
    open_only: bool = False
    category: str | None = None
    customer_id: int | None = None
    queues: Sequence[str] | None = None
    assigned_to: str | None = None
    overdue_at: datetime | None = None
    opened_from: datetime | None = None
    opened_until: datetime | None = None
    text: str | None = None
    scope: TicketScope | None = None
    site: str | None = None


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the call-to-ticket view needs of a ticket (times in epoch seconds)."""

    number: str
    customer_id: int | None
    status: str
    opened_at: float
    last_activity: float
    phones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RepairTimeliness:
    """Repairs completed in a period: how many were on time, late, or had no due time."""

    completed: int
    on_time: int
    late: int
    rate: float | None


TicketListener = Callable[[Ticket], None]
"""Called with the ticket after each committed change."""


def _ticket(row: asyncpg.Record) -> Ticket:
    return from_row(Ticket, row)


def _where(search: TicketFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if search.statuses is not None:
        clauses.append(f"t.status = any({arg(list(search.statuses))}::text[])")
    if search.open_only:
        clauses.append(_OPEN_SQL)
    if search.category is not None:
        clauses.append(f"t.category = {arg(search.category)}")
    if search.customer_id is not None:
        clauses.append(f"t.customer_id = {arg(search.customer_id)}")
    if search.queues is not None:
        clauses.append(f"t.queue = any({arg(list(search.queues))}::text[])")
    if search.assigned_to is not None:
        clauses.append(f"t.assigned_to = {arg(search.assigned_to)}")
    if search.scope is not None:
        clauses.append(scope_sql("t", search.scope, arg))
    if search.overdue_at is not None:
        clauses.append(
            f"t.due_at < {arg(search.overdue_at)} and t.replied_at is null "
            "and t.status <> 'closed' and t.due_at is not null"
        )
    if search.opened_from is not None:
        clauses.append(f"t.opened_at >= {arg(search.opened_from)}")
    if search.opened_until is not None:
        clauses.append(f"t.opened_at < {arg(search.opened_until)}")
    clauses.extend(_site_and_text(search, arg))
    return (" where " + " and ".join(clauses) if clauses else ""), args


_SITE_SQL: Final = "exists (select 1 from calls c where c.ticket_id = t.id and c.pbx_id = {})"


def _site_and_text(search: TicketFilter, arg: Callable[[Any], str]) -> list[str]:
    """The site and free-text conditions of ``search`` (``arg`` adds a parameter)."""
    clauses: list[str] = []
    if search.site is not None:
        clauses.append(_SITE_SQL.format(arg(search.site)))
    if search.text:
        escaped = search.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        placeholder = arg(f"%{escaped}%")
        clauses.append(
            f"(t.number ilike {placeholder} or t.subject ilike {placeholder} "
            f"or t.description ilike {placeholder})"
        )
    return clauses


def scope_sql(alias: str, scope: TicketScope, arg: Callable[[Any], str]) -> str:
    """The SQL condition that ticket ``alias`` is in ``scope``; ``arg`` adds a parameter and
    returns its placeholder."""
    queues = arg(list(scope.queues))
    owners = arg(list(scope.owners))
    return f"({alias}.queue = any({queues}::text[]) or {alias}.assigned_to = any({owners}::text[]))"


def _check(name: str, value: Any) -> None:
    checker = _CHECKS.get(name)
    if checker is not None:
        checker(name, value)


def _check_category(name: str, value: Any) -> None:
    if value not in CATEGORIES:
        raise InvalidChange(f"{name} must be one of {', '.join(CATEGORIES)}, got {value!r}")


def _check_status(name: str, value: Any) -> None:
    if value not in STATUSES:
        raise InvalidChange(f"{name} must be one of {', '.join(STATUSES)}, got {value!r}")
    if value == "dispatched":
        raise InvalidChange("a repair is dispatched with dispatch(), not by its status")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_satisfaction(name: str, value: Any) -> None:
    if value is not None and not (_is_int(value) and 1 <= value <= 5):
        raise InvalidChange(f"{name} must be 1 to 5, got {value!r}")


def _check_priority(name: str, value: Any) -> None:
    if not _is_int(value):
        raise InvalidChange(f"{name} must be an integer, got {value!r}")


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidChange(f"{name} must be text, got {value!r}")


def _check_time(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, datetime):
        raise InvalidChange(f"{name} must be a time, got {value!r}")


_CHECKS: Final[dict[str, Callable[[str, Any], None]]] = {
    "category": _check_category,
    "status": _check_status,
    "satisfaction": _check_satisfaction,
    "priority": _check_priority,
    "subject": _check_text,
    "description": _check_text,
    "due_at": _check_time,
    "replied_at": _check_time,
}
"""How each checked field of a ticket change is validated (others are not checked here)."""


class Tickets:
    """The tickets repository; see the module docstring."""

    def __init__(
        self,
        db: Db,
        *,
        complaint_reply_hours: float = 24.0,
        listener: TicketListener | None = None,
    ) -> None:
        """Run on ``db``; complaints get ``due_at`` = opened + ``complaint_reply_hours``."""
        self.db = db
        self.complaint_reply_hours = complaint_reply_hours
        self.listener = listener

    def _on(self, conn: Db) -> Tickets:
        return Tickets(conn, complaint_reply_hours=self.complaint_reply_hours)

    def _notify(self, ticket: Ticket) -> Ticket:
        if self.listener is not None:
            self.listener(ticket)
        return ticket

    async def get(self, number: str) -> Ticket:
        """The ticket with this number."""
        row = await self.db.fetchrow(_SELECT + " where t.number = $1", number)
        if row is None:
            raise NotFound(f"ticket {number} not found")
        return _ticket(row)

    async def _locked(self, number: str) -> Ticket:
        row = await self.db.fetchrow(_SELECT + " where t.number = $1 for update", number)
        if row is None:
            raise NotFound(f"ticket {number} not found")
        return _ticket(row)

    async def create(
        self,
        number: str,
        *,
        actor: str,
        customer_id: int | None = None,
        category: str = "consultation",
        subject: str = "",
        description: str = "",
        priority: int = 0,
        queue: str | None = None,
        assigned_to: str | None = None,
        opened_at: datetime | None = None,
        due_at: datetime | None = None,
    ) -> Ticket:
        """A new ticket numbered ``number`` (from :class:`hotline.ticketno.TicketNumbers`).

        A complaint without ``due_at`` gets its committed reply time.
        """
        for name, value in (("category", category), ("subject", subject), ("priority", priority)):
            _check(name, value)
        async with transaction(self.db) as conn:
            row = await conn.fetchrow(
                "insert into tickets (number, customer_id, category, subject, description, "
                "priority, queue, assigned_to, opened_at) "
                "values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now())) "
                "on conflict (number) do nothing returning opened_at",
                number,
                customer_id,
                category,
                subject,
                description,
                priority,
                queue,
                assigned_to,
                opened_at,
            )
            if row is None:
                raise InvalidChange(f"ticket {number} already exists")
            due = due_at or reply_due(category, row["opened_at"], self.complaint_reply_hours)
            if due is not None:
                await conn.execute("update tickets set due_at = $2 where number = $1", number, due)
            ticket = await self._on(conn).get(number)
            await append_event(conn, ticket.id, actor, "created", detail={"category": category})
        return self._notify(ticket)

    async def update(self, number: str, changes: Mapping[str, Any], *, actor: str) -> Ticket:
        """Change fields; one history row per field whose value really changes.

        Editable: customer_id, category, status (not ``dispatched``), priority,
        queue, subject, description, assigned_to, due_at, replied_at, resolution,
        satisfaction. Closing sets ``closed_at``; reopening clears it. Turning a
        ticket into a complaint gives it its committed reply time unless it has one.
        """
        unknown = sorted(set(changes) - _EDITABLE)
        if unknown:
            raise InvalidChange(f"ticket field {unknown[0]!r} cannot be changed")
        for name, value in changes.items():
            _check(name, value)
        async with transaction(self.db) as conn:
            current = await self._on(conn)._locked(number)
            wanted = dict(changes)
            status = wanted.get("status", current.status)
            if status != current.status:
                wanted["closed_at"] = None
                if status == "closed":
                    wanted["closed_at"] = await conn.fetchval("select now()")
            category = wanted.get("category", current.category)
            if category != current.category and current.due_at is None and "due_at" not in wanted:
                due = reply_due(category, current.opened_at, self.complaint_reply_hours)
                if due is not None:
                    wanted["due_at"] = due
            ticket = await self._apply(conn, current, wanted, actor, "changed")
        return self._notify(ticket)

    async def _apply(
        self,
        conn: Db,
        current: Ticket,
        wanted: Mapping[str, Any],
        actor: str,
        kind: str,
        detail: Mapping[str, Any] | None = None,
    ) -> Ticket:
        changed = {name: value for name, value in wanted.items() if getattr(current, name) != value}
        if not changed:
            return current
        assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(changed, 2))
        try:
            await conn.execute(
                f"update tickets set {assignments} where id = $1",  # noqa: S608
                current.id,
                *changed.values(),
            )
        except (asyncpg.CheckViolationError, asyncpg.ForeignKeyViolationError) as exc:
            raise InvalidChange(f"ticket {current.number}: {exc}") from exc
        for name, value in changed.items():
            await append_event(
                conn,
                current.id,
                actor,
                kind,
                field=name,
                old=getattr(current, name),
                new=value,
                detail=detail,
            )
        return await self._on(conn).get(current.number)

    async def dispatch(
        self,
        number: str,
        *,
        party: str,
        due_at: datetime | None,
        actor: str,
        contact: str | None = None,
        at: datetime | None = None,
    ) -> Ticket:
        """Dispatch a repair ticket to a responsible party (:data:`DISPATCH_PARTIES`).

        A repair not completed yet may be dispatched again (to another party).
        """
        if party not in DISPATCH_PARTIES:
            raise InvalidChange(
                f"party must be one of {', '.join(DISPATCH_PARTIES)}, got {party!r}"
            )
        async with transaction(self.db) as conn:
            current = await self._on(conn)._locked(number)
            if current.category != "repair":
                raise InvalidChange(f"ticket {number} is a {current.category}, not a repair")
            if current.completed_at is not None:
                raise InvalidChange(f"ticket {number}: the repair is already completed")
            if current.status not in OPEN_STATUSES:
                raise InvalidChange(f"ticket {number} is {current.status}")
            dispatched_at = at or await conn.fetchval("select now()")
            wanted = {
                "dispatch_party": party,
                "dispatch_contact": contact,
                "dispatched_at": dispatched_at,
                "dispatch_due_at": due_at,
                "status": "dispatched",
            }
            ticket = await self._apply(conn, current, wanted, actor, "dispatched")
        return self._notify(ticket)

    async def complete_repair(
        self,
        number: str,
        *,
        completed_at: datetime,
        actor: str,
        resolution: str | None = None,
    ) -> Ticket:
        """Record that a dispatched repair is done; sets whether it was on time, and resolves
        the ticket."""
        async with transaction(self.db) as conn:
            current = await self._on(conn)._locked(number)
            if current.dispatched_at is None:
                raise InvalidChange(f"ticket {number}: the repair was never dispatched")
            if current.completed_at is not None:
                raise InvalidChange(f"ticket {number}: the repair is already completed")
            try:
                on_time = repair_on_time(
                    current.dispatched_at, current.dispatch_due_at, completed_at
                )
            except ValueError as exc:
                raise InvalidChange(f"ticket {number}: {exc}") from exc
            wanted: dict[str, Any] = {
                "completed_at": completed_at,
                "completed_on_time": on_time,
                "status": "resolved",
            }
            if resolution is not None:
                wanted["resolution"] = resolution
            ticket = await self._apply(conn, current, wanted, actor, "repair_completed")
        return self._notify(ticket)

    async def add_note(self, number: str, text: str, *, actor: str) -> TicketEvent:
        """Append a note (``kind`` ``note``, the text in ``detail``) to a ticket's history."""
        ticket = await self.get(number)
        return await append_event(self.db, ticket.id, actor, "note", detail={"text": text})

    async def events(self, number: str) -> list[TicketEvent]:
        """The ticket's history, oldest first."""
        ticket = await self.get(number)
        rows = await self.db.fetch(
            "select id, at, actor, kind, field, old_value, new_value, detail "
            "from ticket_events where ticket_id = $1 order by id",
            ticket.id,
        )
        return [TicketEvent(**dict(row.items())) for row in rows]

    async def find(
        self, search: TicketFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[Ticket]:
        """Tickets matching ``search``, newest first, one page at a time."""
        where, args = _where(search or TicketFilter())
        rows = await self.db.fetch(
            f"{_SELECT}{where} order by t.opened_at desc, t.id desc "
            f"limit ${len(args) + 1} offset ${len(args) + 2}",
            *args,
            limit,
            offset,
        )
        return [_ticket(row) for row in rows]

    async def count(self, search: TicketFilter | None = None) -> int:
        """How many tickets match ``search``."""
        where, args = _where(search or TicketFilter())
        count: int = await self.db.fetchval(
            f"select count(*) from tickets t{where}",  # noqa: S608 (placeholders only)
            *args,
        )
        return count

    async def overdue(
        self, now: datetime, *, queues: Sequence[str] | None = None, limit: int = 100
    ) -> list[Ticket]:
        """Tickets overdue at ``now`` (due, not replied, not closed), most overdue first."""
        where, args = _where(TicketFilter(overdue_at=now, queues=queues))
        rows = await self.db.fetch(
            f"{_SELECT}{where} order by t.due_at, t.id limit ${len(args) + 1}", *args, limit
        )
        return [_ticket(row) for row in rows]

    async def overdue_count(self, now: datetime, *, queues: Sequence[str] | None = None) -> int:
        """How many tickets are overdue at ``now``."""
        return await self.count(TicketFilter(overdue_at=now, queues=queues))

    async def repair_timeliness(self, since: datetime, until: datetime) -> RepairTimeliness:
        """The repair timeliness of repairs completed in ``[since, until)``."""
        row = await self.db.fetchrow(
            "select count(*) as completed, "
            "count(*) filter (where completed_on_time) as on_time, "
            "count(*) filter (where not completed_on_time) as late "
            "from tickets where completed_at >= $1 and completed_at < $2",
            since,
            until,
        )
        assert row is not None
        return RepairTimeliness(
            completed=row["completed"],
            on_time=row["on_time"],
            late=row["late"],
            rate=timeliness_rate(row["on_time"], row["late"]),
        )

    async def states(self, *, changed_since: datetime | None = None) -> list[TicketState]:
        """What the call-to-ticket view needs: every open ticket (``changed_since`` None), or
        every ticket changed since then, or of a customer who got a phone number since then."""
        if changed_since is None:
            condition = _OPEN_SQL
            args: list[Any] = []
        else:
            condition = (
                f"t.updated_at > $1 or ({_OPEN_SQL} and t.customer_id in "  # noqa: S608
                "(select customer_id from customer_phones where created_at > $1))"
            )
            args = [changed_since]
        rows = await self.db.fetch(
            f"""
            select t.number, t.customer_id, t.status,
                   extract(epoch from t.opened_at)::float8 as opened_at,
                   extract(epoch from greatest(t.opened_at, t.last_call_at))::float8
                       as last_activity,
                   coalesce(array(select p.phone from customer_phones p
                                  where p.customer_id = t.customer_id), '{{}}') as phones
            from tickets t where {condition}
            order by last_activity
            """,  # noqa: S608
            *args,
        )
        return [
            TicketState(
                number=row["number"],
                customer_id=row["customer_id"],
                status=row["status"],
                opened_at=row["opened_at"],
                last_activity=row["last_activity"],
                phones=tuple(row["phones"]),
            )
            for row in rows
        ]


async def append_event(
    conn: Db,
    ticket_id: int,
    actor: str,
    kind: str,
    *,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    detail: Mapping[str, Any] | None = None,
) -> TicketEvent:
    """Append one row to a ticket's history (``field``, ``old``, ``new`` for a field change)."""
    row = await conn.fetchrow(
        "insert into ticket_events (ticket_id, actor, kind, field, old_value, new_value, detail) "
        "values ($1, $2, $3, $4, $5, $6, $7) "
        "returning id, at, actor, kind, field, old_value, new_value, detail",
        ticket_id,
        actor,
        kind,
        field,
        jsonable(old) if field is not None else None,
        jsonable(new) if field is not None else None,
        {key: jsonable(value) for key, value in (detail or {}).items()},
    )
    assert row is not None
    return TicketEvent(**dict(row.items()))
