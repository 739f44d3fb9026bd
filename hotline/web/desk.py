"""The panels' desk work: shift handover notes, escalations and transfers.

- ``POST /api/handover``: a note for the next shift (free text, optional links to
  tickets the author may see, optionally for some queues only; an agent may
  address only their own queues). ``GET /api/handover/unread``: the notes of the
  last :data:`HANDOVER_WINDOW_DAYS` days the user may see and has not read (the
  panel shows them at the start of the shift); ``POST /api/handover/{id}/read``
  marks one read; ``GET /api/handover?day=YYYY-MM-DD`` (a day in the configured
  time zone, or ``from``/``until``, and ``q``) searches them.
- ``POST /api/tickets/{number}/escalate``: hand a ticket up to a supervisor with a
  reason (the ticket must be visible to the principal); ``GET /api/escalations``
  lists the open ones (an agent sees those of tickets they may see);
  ``POST /api/escalations/{id}/resolve`` closes one (supervisors and admins).
- ``POST /api/panel/transfer``: the agent's "transfer": the caller they are
  talking to goes back into ``hotline-inbound`` for another queue (``[panels]
  supervisor_queue`` unless one of ``transfer_queues`` is named), with a note;
  the call keeps its ticket, so the supervisor rung next gets the same ticket
  (:mod:`hotline.domain.routing.transfer`). The note is stored as an escalation
  of kind ``transfer`` on that ticket. ``GET /api/panel/options`` tells the panel
  the transfer targets and the quality form.

Each new note, escalation (or transfer) and resolution is pushed on the live
feed (:mod:`hotline.web.desk_feed`, on every instance) to the pages that may see it:
the escalations as ``GET /api/escalations`` would list them for the page's
user, a note to the users whose queues it addresses (every user when it names
none), not to its author. The panels no longer poll for them.

Every change is written to the audit log (``handover.write``, ``ticket.escalate``,
``call.transfer``, ``supervisor.resolve_escalation``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from hotline.domain.commands import Transfer
from hotline.domain.routing import UnknownAgent
from hotline.engine import EngineError
from hotline.store.audit import AuditLog
from hotline.store.db import NotFound
from hotline.store.desk import Escalation, Escalations, HandoverNote, HandoverNotes
from hotline.store.resources import Store
from hotline.web.auth import Principal, principal_of, store_of
from hotline.web.desk_feed import Audience, push
from hotline.web.errors import json_error
from hotline.web.keys import ENGINE, SETTINGS
from hotline.web.openapi import Api, Input, array, enum, record, scalar, string
from hotline.web.schema import Array, Boolean, DateTime, Integer, Object, Text
from hotline.web.tickets import now_of, visible_ticket

__all__ = [
    "DAY",
    "HANDOVER_WINDOW_DAYS",
    "api",
    "day_range",
    "escalation_json",
    "note_json",
    "supervisor_only",
]

api = Api()

HANDOVER_WINDOW_DAYS: Final = 7
"""How far back the unread handover notes reach."""
SUPERVISORS: Final = frozenset({"supervisor", "admin"})
DAY: Final = Text(
    max_length=10, pattern=r"\d{4}-\d{2}-\d{2}", description="a day (YYYY-MM-DD), local time"
)
_NAME: Final = Text(max_length=64, min_length=1, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TICKET: Final = Text(max_length=64, min_length=1, single_line=True)
_ID: Final = {"id": Integer(minimum=1, maximum=2**63 - 1)}

NOTE_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "author": string(),
        "body": string(),
        "tickets": array(string()),
        "queues": array(string()),
        "created_at": string(fmt="date-time"),
        "read": scalar("boolean"),
    }
)
ESCALATION_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "ticket": string(),
        "kind": enum(("escalation", "transfer")),  # migration 0007's check
        "reason": string(),
        "target_queue": string(nullable=True),
        "call_id": string(nullable=True),
        "raised_by": string(),
        "raised_at": string(fmt="date-time"),
        "open": scalar("boolean"),
        "resolved_by": string(nullable=True),
        "resolved_at": string(fmt="date-time", nullable=True),
        "resolution": string(nullable=True),
    }
)


def supervisor_only(request: web.Request) -> Principal:
    """The principal, or 403 unless a supervisor or an admin."""
    principal = principal_of(request)
    if principal.role not in SUPERVISORS:
        raise json_error(403, "forbidden", message="only supervisors may do this")
    return principal


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def note_json(note: HandoverNote) -> dict[str, Any]:
    """The API's view of a handover note."""
    return {
        "id": note.id,
        "author": note.author,
        "body": note.body,
        "tickets": list(note.tickets),
        "queues": list(note.queues),
        "created_at": note.created_at.isoformat(),
        "read": note.read,
    }


def escalation_json(escalation: Escalation) -> dict[str, Any]:
    """The API's view of an escalation."""
    return {
        "id": escalation.id,
        "ticket": escalation.ticket,
        "kind": escalation.kind,
        "reason": escalation.reason,
        "target_queue": escalation.target_queue,
        "call_id": escalation.call_id,
        "raised_by": escalation.raised_by,
        "raised_at": escalation.raised_at.isoformat(),
        "open": escalation.open,
        "resolved_by": escalation.resolved_by,
        "resolved_at": _iso(escalation.resolved_at),
        "resolution": escalation.resolution,
    }


def day_range(
    request: web.Request, query: dict[str, Any] | Any
) -> tuple[datetime | None, datetime | None]:
    """``day`` (in the configured time zone), else ``from`` and ``until``, as a range."""
    day = query.get("day")
    if day is None:
        return query.get("from"), query.get("until")
    zone = ZoneInfo(request.app[SETTINGS].service.time_zone)
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=zone)
    except ValueError as exc:
        raise json_error(422, "invalid input", fields={"day": "is not a date"}) from exc
    return start, start + timedelta(days=1)


def _note_queues(principal: Principal) -> tuple[str, ...] | None:
    """The queues whose notes the principal sees; ``None``: every note."""
    return principal.queues if principal.role == "agent" else None


# -- handover notes ---------------------------------------------------------------------------


@api.operation(
    "POST",
    "/api/handover",
    summary="Write a shift handover note",
    tag="panels",
    body=Object(
        {
            "body": Text(max_length=4000, min_length=1),
            "tickets": Array(_TICKET, max_items=10),
            "queues": Array(_NAME, max_items=20),
        },
        required=frozenset({"body"}),
    ),
    response=NOTE_SCHEMA,
    status=201,
)
async def write_note(request: web.Request, given: Input) -> web.Response:
    """Store a note for the next shift, with its author and time."""
    principal = principal_of(request)
    body = given.body["body"].strip()
    if not body:
        raise json_error(422, "invalid input", fields={"body": "is empty"})
    queues = given.body.get("queues", [])
    unknown = [queue for queue in queues if queue not in request.app[SETTINGS].queues]
    if unknown:
        raise json_error(422, "invalid input", fields={"queues": f"unknown queue {unknown[0]}"})
    if principal.role == "agent" and not set(queues) <= set(principal.queues):
        raise json_error(403, "forbidden", message="you may address only your own queues")
    tickets = given.body.get("tickets", [])
    for number in tickets:
        try:
            await visible_ticket(request, number)
        except NotFound as exc:
            raise json_error(422, "invalid input", fields={"tickets": str(exc)}) from exc
    store = store_of(request)
    note = await HandoverNotes(store.pool).write(
        principal.name, body, tickets=tickets, queues=queues
    )
    await AuditLog(store.pool).write(
        principal.name, "handover.write", "handover", str(note.id), {"tickets": tickets}
    )
    unread = {**note_json(note), "read": False}  # by everyone it is pushed to
    audience = Audience(queues=note.queues, every_queue=not note.queues, excluded=note.author)
    await push(request, "handover", {"event": "new", "note": unread}, audience)
    return web.json_response(note_json(note), status=201)


@api.operation(
    "GET",
    "/api/handover/unread",
    summary="The handover notes the user has not read yet (oldest first)",
    tag="panels",
    response=record({"notes": array(NOTE_SCHEMA)}),
)
async def unread_notes(request: web.Request, _: Input) -> web.Response:
    """Notes of the last days, by others, that this user has not read."""
    principal = principal_of(request)
    since = now_of(request) - timedelta(days=HANDOVER_WINDOW_DAYS)
    notes = await HandoverNotes(store_of(request).pool).unread(
        principal.name, _note_queues(principal), since=since
    )
    return web.json_response({"notes": [note_json(note) for note in notes]})


@api.operation(
    "POST",
    "/api/handover/{id}/read",
    summary="Mark a handover note read",
    tag="panels",
    path_params=_ID,
    response=NOTE_SCHEMA,
)
async def read_note(request: web.Request, given: Input) -> web.Response:
    """Record that the user has read the note."""
    principal = principal_of(request)
    notes = HandoverNotes(store_of(request).pool)
    queues = _note_queues(principal)
    await notes.get(given.path["id"], principal.name, queues)  # 404 if not visible
    await notes.mark_read(given.path["id"], principal.name)
    return web.json_response(note_json(await notes.get(given.path["id"], principal.name, queues)))


@api.operation(
    "GET",
    "/api/handover",
    summary="Search handover notes by day (or time range) and text, newest first",
    tag="panels",
    query={
        "day": DAY,
        "from": DateTime(),
        "until": DateTime(),
        "q": Text(max_length=100, single_line=True),
        "limit": Integer(minimum=1, maximum=500),
    },
    response=record({"notes": array(NOTE_SCHEMA)}),
)
async def find_notes(request: web.Request, given: Input) -> web.Response:
    """The notes the user may see written that day (or in the range)."""
    principal = principal_of(request)
    since, until = day_range(request, given.query)
    notes = await HandoverNotes(store_of(request).pool).find(
        principal.name,
        _note_queues(principal),
        since=since,
        until=until,
        text=given.query.get("q"),
        limit=given.query.get("limit", 100),
    )
    return web.json_response({"notes": [note_json(note) for note in notes]})


# -- escalations ------------------------------------------------------------------------------


def _sees_escalation(principal: Principal, escalation: Escalation) -> bool:
    scope = principal.scope
    if scope is None:
        return True
    return (
        escalation.ticket_queue in scope.queues
        or escalation.ticket_assigned_to in scope.owners
        or escalation.raised_by == principal.name
    )


async def _push_escalation(request: web.Request, event: str, escalation: Escalation) -> None:
    """Tell the pages that may see it (as ``GET /api/escalations`` would list it for them)."""
    owners = (escalation.ticket_assigned_to, escalation.raised_by)
    audience = Audience(
        queues=(escalation.ticket_queue,) if escalation.ticket_queue else (),
        owners=tuple(owner for owner in owners if owner),
    )
    await push(
        request,
        "escalation",
        {"event": event, "escalation": escalation_json(escalation)},
        audience,
    )


@api.operation(
    "POST",
    "/api/tickets/{number}/escalate",
    summary="Escalate a ticket to a supervisor with a reason",
    tag="panels",
    path_params={"number": _TICKET},
    body=Object({"reason": Text(max_length=2000, min_length=1)}, required=frozenset({"reason"})),
    response=ESCALATION_SCHEMA,
    status=201,
)
async def escalate(request: web.Request, given: Input) -> web.Response:
    """Hand the ticket up; it shows as escalated on both panels until resolved."""
    principal = principal_of(request)
    ticket = await visible_ticket(request, given.path["number"])
    reason = given.body["reason"].strip()
    if not reason:
        raise json_error(422, "invalid input", fields={"reason": "is empty"})
    store = store_of(request)
    escalation = await Escalations(store.pool).raise_(ticket.number, reason, principal.name)
    await AuditLog(store.pool).write(
        principal.name, "ticket.escalate", "ticket", ticket.number, {"reason": reason}
    )
    await _push_escalation(request, "opened", escalation)
    return web.json_response(escalation_json(escalation), status=201)


@api.operation(
    "GET",
    "/api/escalations",
    summary="Escalations and transfers, newest first (open ones unless all=true)",
    tag="panels",
    query={"all": Boolean(), "ticket": _TICKET},
    response=record({"escalations": array(ESCALATION_SCHEMA)}),
)
async def list_escalations(request: web.Request, given: Input) -> web.Response:
    """The escalations the principal may see."""
    principal = principal_of(request)
    found = await Escalations(store_of(request).pool).find(
        open_only=not given.query.get("all", False), ticket=given.query.get("ticket")
    )
    visible = [escalation_json(e) for e in found if _sees_escalation(principal, e)]
    return web.json_response({"escalations": visible})


@api.operation(
    "POST",
    "/api/escalations/{id}/resolve",
    summary="Resolve an escalation (supervisors; audited)",
    tag="panels",
    path_params=_ID,
    body=Object({"resolution": Text(max_length=2000)}),
    body_required=False,
    response=ESCALATION_SCHEMA,
    errors=(409,),
)
async def resolve_escalation(request: web.Request, given: Input) -> web.Response:
    """Close the escalation with an optional resolution."""
    principal = supervisor_only(request)
    store = store_of(request)
    resolution = given.body.get("resolution", "").strip()
    escalation = await Escalations(store.pool).resolve(given.path["id"], principal.name, resolution)
    await AuditLog(store.pool).write(
        principal.name,
        "supervisor.resolve_escalation",
        "ticket",
        escalation.ticket,
        {"escalation": escalation.id, "resolution": resolution},
    )
    await _push_escalation(request, "resolved", escalation)
    return web.json_response(escalation_json(escalation))


# -- transfer ---------------------------------------------------------------------------------


def _transfer_targets(request: web.Request) -> list[str]:
    settings = request.app[SETTINGS]
    targets = list(settings.panels.transfer_queues or settings.queues)
    first = settings.panels.supervisor_queue
    if first:
        targets = [first, *(queue for queue in targets if queue != first)]
    return targets


@api.operation(
    "GET",
    "/api/panel/options",
    summary="What the panels offer: transfer targets and the quality review form",
    tag="panels",
    response=record(
        {
            "transfer_queues": array(string()),
            "supervisor_queue": string(nullable=True),
            "quality_criteria": array(string()),
            "quality_max": scalar("integer"),
        }
    ),
)
async def panel_options(request: web.Request, _: Input) -> web.Response:
    """The transfer targets (the supervisors' queue first) and the quality form."""
    panels = request.app[SETTINGS].panels
    return web.json_response(
        {
            "transfer_queues": _transfer_targets(request),
            "supervisor_queue": panels.supervisor_queue or None,
            "quality_criteria": list(panels.quality_criteria),
            "quality_max": panels.quality_max,
        }
    )


TRANSFER_STORE_WAIT: Final = 5.0
"""Seconds a transfer waits for the outbox to write the call's ticket (just answered)."""


async def _raise_transfer(
    store: Store, ticket: str, note: str, actor: str, queue: str, call_id: str
) -> Escalation | None:
    """The transfer's escalation on ``ticket``; when the ticket's row is not written yet
    (the call was answered a moment ago, the outbox lags), once more after the outbox has
    written what it holds; ``None`` if it still is not there (the database is away)."""
    escalations = Escalations(store.pool)
    for attempt in range(2):
        try:
            return await escalations.raise_(
                ticket, note, actor, kind="transfer", target_queue=queue, call_id=call_id
            )
        except NotFound:
            if attempt or not await store.outbox.flush(TRANSFER_STORE_WAIT):
                return None
    return None


@api.operation(
    "POST",
    "/api/panel/transfer",
    summary="Transfer the caller on the agent's phone to another queue, with a note",
    tag="panels",
    body=Object(
        {"queue": _NAME, "note": Text(max_length=2000)},
    ),
    body_required=False,
    response=record(
        {
            "call_id": string(),
            "ticket": string(),
            "queue": string(),
            "escalation": {**ESCALATION_SCHEMA, "nullable": True},
        }
    ),
    errors=(409,),
)
async def transfer(request: web.Request, given: Input) -> web.Response:
    """Send the agent's caller back into ``hotline-inbound`` for the queue; same ticket."""
    principal = principal_of(request)
    if principal.agent_id is None:
        raise json_error(403, "forbidden", message="only an agent on a call can transfer it")
    targets = _transfer_targets(request)
    queue = given.body.get("queue") or request.app[SETTINGS].panels.supervisor_queue
    if not queue or queue not in targets:
        raise json_error(422, "invalid input", fields={"queue": "is not a transfer target"})
    engine = request.app[ENGINE]
    call = engine.router.call_of_agent(principal.agent_id)
    if call is None:
        raise json_error(409, "conflict", message="you are not talking to a caller")
    call_id, ticket = call.call_id, call.ticket
    try:
        await engine.command(Transfer(principal.agent_id, queue))
    except UnknownAgent as exc:
        raise json_error(404, "not found", message="unknown agent") from exc
    except ValueError as exc:
        raise json_error(409, "conflict", message="you are not talking to a caller") from exc
    except EngineError as exc:
        raise json_error(503, "engine unavailable", message=str(exc)) from exc
    note = given.body.get("note", "").strip()
    store = store_of(request)
    await AuditLog(store.pool).write(
        principal.name, "call.transfer", "call", call_id, {"queue": queue, "ticket": ticket}
    )
    escalation = await _raise_transfer(store, ticket, note, principal.name, queue, call_id)
    if escalation is not None:
        await _push_escalation(request, "opened", escalation)
    return web.json_response(
        {
            "call_id": call_id,
            "ticket": ticket,
            "queue": queue,
            "escalation": escalation_json(escalation) if escalation is not None else None,
        }
    )
