"""The tickets API: list and search, create, read, change, notes, history, repairs
(dispatch and completion), callbacks, and a ticket's calls and recordings.

Every operation on one ticket answers 404 for an unknown number and 403 when the
principal may not see the ticket (an agent: not of their queues and not assigned
to them; see :mod:`hotline.web.auth`). Lists only ever hold visible tickets.
Agents may not move a ticket to a queue that is not theirs nor assign it to
someone else (403), nor open a ticket for, or point a ticket at, a customer they
may not see (403, audited: :func:`hotline.web.customers.check_customer_access`).
An agent schedules callbacks only through their own phone: the callback is
assigned to their own agent id (another one is 403, audited as
``callback.denied``). A change the ticket's state does not allow (dispatching a
consultation, completing a repair never dispatched) is 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from hotline.domain.model import Outcome
from hotline.store.audit import AuditLog
from hotline.store.callbacks import Callback, Callbacks
from hotline.store.calls import Call, Calls
from hotline.store.customers import Customers
from hotline.store.db import NotFound
from hotline.store.recordings import Recording, Recordings
from hotline.store.resources import retry_policy
from hotline.store.rules import CATEGORIES, DISPATCH_PARTIES, STATUSES
from hotline.store.tickets import Ticket, TicketEvent, TicketFilter
from hotline.web.auth import Principal, principal_of, store_of
from hotline.web.customers import check_customer_access
from hotline.web.errors import json_error
from hotline.web.keys import CLOCK, SETTINGS, TICKET_NUMBERS
from hotline.web.openapi import Api, Input, array, enum, record, scalar, string
from hotline.web.recordings import audio_url, may_play
from hotline.web.schema import (
    Boolean,
    DateTime,
    Integer,
    Object,
    Text,
    Type,
    ValidationFailed,
)

__all__ = ["CALLBACK_SCHEMA", "NAME_PATTERN", "api", "callback_json", "ticket_json"]

api = Api()

NAME_PATTERN: Final = "[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
"""Queue names, agent ids and user names."""
_BIGINT: Final = 2**63 - 1
_NUMBER: Final = {"number": Text(max_length=64, min_length=1, single_line=True)}
_NAME: Final = Text(max_length=64, pattern=NAME_PATTERN)
_OPTIONAL_NAME: Final = Text(max_length=64, pattern=NAME_PATTERN, nullable=True)
_SITE: Final = Text(
    max_length=64, pattern=NAME_PATTERN, description="only this site's ([service] pbx_id)"
)
_SITE_TICKETS: Final = Text(
    max_length=64,
    pattern=NAME_PATTERN,
    description="only tickets with a call taken by this site ([service] pbx_id)",
)
_CUSTOMER_ID: Final = Integer(minimum=1, maximum=_BIGINT, nullable=True)
_PRIORITY: Final = Integer(minimum=-1000, maximum=1000)
_SUBJECT: Final = Text(max_length=200, single_line=True)
_DESCRIPTION: Final = Text(max_length=10_000)
_EDITABLE_STATUSES: Final = tuple(status for status in STATUSES if status != "dispatched")

_TIME: Final = string(fmt="date-time")
_OPTIONAL_TIME: Final = string(fmt="date-time", nullable=True)
_OPTIONAL_TEXT: Final = string(nullable=True)
TICKET_SCHEMA: Final = record(
    {
        "number": string(),
        "customer_id": scalar("integer", nullable=True),
        "category": enum(CATEGORIES),
        "status": enum(STATUSES),
        "priority": scalar("integer"),
        "queue": _OPTIONAL_TEXT,
        "subject": string(),
        "description": string(),
        "assigned_to": _OPTIONAL_TEXT,
        "opened_at": _TIME,
        "last_call_at": _OPTIONAL_TIME,
        "due_at": _OPTIONAL_TIME,
        "replied_at": _OPTIONAL_TIME,
        "closed_at": _OPTIONAL_TIME,
        "overdue": scalar("boolean"),
        "dispatch_party": enum(DISPATCH_PARTIES, nullable=True),
        "dispatch_contact": _OPTIONAL_TEXT,
        "dispatched_at": _OPTIONAL_TIME,
        "dispatch_due_at": _OPTIONAL_TIME,
        "completed_at": _OPTIONAL_TIME,
        "completed_on_time": scalar("boolean", nullable=True),
        "resolution": _OPTIONAL_TEXT,
        "satisfaction": scalar("integer", nullable=True),
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
_JSON_VALUE: Final = {"nullable": True, "description": "any JSON value"}
EVENT_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "at": _TIME,
        "actor": string(),
        "kind": string(),
        "field": _OPTIONAL_TEXT,
        "old_value": _JSON_VALUE,
        "new_value": _JSON_VALUE,
        "detail": {"type": "object"},
    }
)
CALLBACK_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "ticket_number": string(),
        "phone": string(),
        "due_at": _TIME,
        "status": enum(("scheduled", "done", "failed", "cancelled")),
        "attempts": scalar("integer"),
        "max_attempts": scalar("integer"),
        "last_attempt_at": _OPTIONAL_TIME,
        "last_result": _OPTIONAL_TEXT,
        "outcome": _OPTIONAL_TEXT,
        "assigned_to": _OPTIONAL_TEXT,
        "queue": _OPTIONAL_TEXT,
        "created_by": string(),
        "note": string(),
        "created_at": _TIME,
    }
)
CALL_SCHEMA: Final = record(
    {
        "call_id": string(),
        "ticket_number": string(),
        "customer_id": scalar("integer", nullable=True),
        "caller_number": string(),
        "queue": string(),
        "original_queue": string(),
        "priority": scalar("integer"),
        "state": enum(("in_progress", "completed")),  # the calls table's check
        "arrived_at": _TIME,
        "answered_at": _OPTIONAL_TIME,
        "answered_by": _OPTIONAL_TEXT,
        "talk_ended_at": _OPTIONAL_TIME,
        "ended_at": _OPTIONAL_TIME,
        "outcome": enum(Outcome, nullable=True),
        "wait_seconds": scalar("number", nullable=True),
        "offers": scalar("integer", nullable=True),
        "site": string(),
    }
)
RECORDING_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "path": string(),
        "ticket_number": string(),
        "call_id": string(),
        "offer_id": string(),
        "agent_id": _OPTIONAL_TEXT,
        "started_at": _TIME,
        "audio_url": string(),
        "playable": scalar("boolean"),
    }
)
PAGE_SCHEMA: Final = record(
    {
        "items": array(TICKET_SCHEMA),
        "total": scalar("integer"),
        "limit": scalar("integer"),
        "offset": scalar("integer"),
    }
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_json(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """The API's view of a ticket (``overdue`` as of ``now``)."""
    return {
        "number": ticket.number,
        "customer_id": ticket.customer_id,
        "category": ticket.category,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "subject": ticket.subject,
        "description": ticket.description,
        "assigned_to": ticket.assigned_to,
        "opened_at": _time(ticket.opened_at),
        "last_call_at": _time(ticket.last_call_at),
        "due_at": _time(ticket.due_at),
        "replied_at": _time(ticket.replied_at),
        "closed_at": _time(ticket.closed_at),
        "overdue": ticket.overdue(now),
        "dispatch_party": ticket.dispatch_party,
        "dispatch_contact": ticket.dispatch_contact,
        "dispatched_at": _time(ticket.dispatched_at),
        "dispatch_due_at": _time(ticket.dispatch_due_at),
        "completed_at": _time(ticket.completed_at),
        "completed_on_time": ticket.completed_on_time,
        "resolution": ticket.resolution,
        "satisfaction": ticket.satisfaction,
        "created_at": _time(ticket.created_at),
        "updated_at": _time(ticket.updated_at),
    }


def _event_json(event: TicketEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": _time(event.at),
        "actor": event.actor,
        "kind": event.kind,
        "field": event.field,
        "old_value": event.old_value,
        "new_value": event.new_value,
        "detail": dict(event.detail),
    }


def callback_json(callback: Callback) -> dict[str, Any]:
    """The API's view of a callback."""
    return {
        "id": callback.id,
        "ticket_number": callback.ticket_number,
        "phone": callback.phone,
        "due_at": _time(callback.due_at),
        "status": callback.status,
        "attempts": callback.attempts,
        "max_attempts": callback.max_attempts,
        "last_attempt_at": _time(callback.last_attempt_at),
        "last_result": callback.last_result,
        "outcome": callback.outcome,
        "assigned_to": callback.assigned_to,
        "queue": callback.queue,
        "created_by": callback.created_by,
        "note": callback.note,
        "created_at": _time(callback.created_at),
    }


def _call_json(call: Call) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "ticket_number": call.ticket_number,
        "customer_id": call.customer_id,
        "caller_number": call.caller_number,
        "queue": call.queue,
        "original_queue": call.original_queue,
        "priority": call.priority,
        "state": call.state,
        "arrived_at": _time(call.arrived_at),
        "answered_at": _time(call.answered_at),
        "answered_by": call.answered_by,
        "talk_ended_at": _time(call.talk_ended_at),
        "ended_at": _time(call.ended_at),
        "outcome": call.outcome,
        "wait_seconds": call.wait_seconds,
        "offers": call.offers,
        "site": call.pbx_id,
    }


def _recording_json(recording: Recording, principal: Principal) -> dict[str, Any]:
    return {
        "id": recording.id,
        "path": recording.path,
        "ticket_number": recording.ticket_number,
        "call_id": recording.call_id,
        "offer_id": recording.offer_id,
        "agent_id": recording.agent_id,
        "started_at": _time(recording.started_at),
        "audio_url": audio_url(recording.id),
        "playable": may_play(principal, recording),
    }


def now_of(request: web.Request) -> datetime:
    """The service clock's now, as an aware datetime."""
    return datetime.fromtimestamp(request.app[CLOCK].now(), UTC)


async def visible_ticket(request: web.Request, number: str) -> Ticket:
    """The ticket ``number``: 404 when unknown, 403 when the principal may not see it."""
    ticket = await store_of(request).tickets.get(number)
    if not principal_of(request).sees(ticket):
        raise json_error(403, "forbidden", message=f"ticket {number} is not in your queues")
    return ticket


async def _check_references(request: web.Request, body: dict[str, Any]) -> None:
    """The customer, queue and agent a ticket is given must exist (422 otherwise)."""
    settings = request.app[SETTINGS]
    problems: dict[str, str] = {}
    if body.get("queue") is not None and body["queue"] not in settings.queues:
        problems["queue"] = "is not a configured queue"
    if body.get("customer_id") is not None:
        try:
            await Customers(store_of(request).pool).get(body["customer_id"])
        except NotFound:
            problems["customer_id"] = "no such customer"
    if problems:
        raise ValidationFailed(problems)


def _check_placement(principal: Principal, body: dict[str, Any]) -> None:
    """An agent keeps tickets within their own queues and assigned to themselves."""
    scope = principal.scope
    if scope is None:
        return
    if "queue" in body and body["queue"] is not None and body["queue"] not in scope.queues:
        raise json_error(403, "forbidden", message="agents may only use their own queues")
    if "assigned_to" in body and body["assigned_to"] not in (None, *scope.owners):
        raise json_error(403, "forbidden", message="agents may only assign tickets to themselves")


# -- the collection -------------------------------------------------------------------------

_LIST_QUERY: Final[dict[str, Type]] = {
    "status": Text(enum=STATUSES),
    "open": Boolean(description="true: only open, in_progress and dispatched tickets"),
    "category": Text(enum=CATEGORIES),
    "queue": _NAME,
    "customer": Integer(minimum=1, maximum=_BIGINT),
    "assigned_to": _NAME,
    "overdue": Boolean(description="true: only tickets past their reply time; false: any"),
    "q": Text(max_length=100, single_line=True, description="in number, subject, description"),
    "site": _SITE_TICKETS,
    "opened_from": DateTime(),
    "opened_until": DateTime(),
    "limit": Integer(minimum=1, maximum=200, description="page size, default 50"),
    "offset": Integer(minimum=0, maximum=100_000, description="default 0"),
}


@api.operation(
    "GET",
    "/api/tickets",
    summary="Visible tickets, newest first, filtered and paginated",
    tag="tickets",
    query=_LIST_QUERY,
    response=PAGE_SCHEMA,
)
async def list_tickets(request: web.Request, given: Input) -> web.Response:
    """A page of the tickets the principal may see that match the filters."""
    store = store_of(request)
    query = given.query
    now = now_of(request)
    search = TicketFilter(
        statuses=[query["status"]] if "status" in query else None,
        open_only=query.get("open", False),
        category=query.get("category"),
        customer_id=query.get("customer"),
        queues=[query["queue"]] if "queue" in query else None,
        assigned_to=query.get("assigned_to"),
        overdue_at=now if query.get("overdue") else None,
        opened_from=query.get("opened_from"),
        opened_until=query.get("opened_until"),
        text=query.get("q") or None,
        scope=principal_of(request).scope,
        site=query.get("site"),
    )
    limit = query.get("limit", 50)
    offset = query.get("offset", 0)
    tickets = await store.tickets.find(search, limit=limit, offset=offset)
    return web.json_response(
        {
            "items": [ticket_json(ticket, now) for ticket in tickets],
            "total": await store.tickets.count(search),
            "limit": limit,
            "offset": offset,
        }
    )


_CREATE: Final = Object(
    {
        "customer_id": _CUSTOMER_ID,
        "category": Text(enum=CATEGORIES),
        "subject": _SUBJECT,
        "description": _DESCRIPTION,
        "priority": _PRIORITY,
        "queue": _OPTIONAL_NAME,
        "assigned_to": _OPTIONAL_NAME,
        "due_at": DateTime(nullable=True, description="committed reply time"),
    }
)


@api.operation(
    "POST",
    "/api/tickets",
    summary="Open a ticket (an agent's own ticket when no queue or assignee is given)",
    tag="tickets",
    body=_CREATE,
    body_required=False,
    response=TICKET_SCHEMA,
    status=201,
)
async def create_ticket(request: web.Request, given: Input) -> web.Response:
    """A new ticket numbered by the service."""
    store = store_of(request)
    principal = principal_of(request)
    body = dict(given.body)
    _check_placement(principal, body)
    await _check_references(request, body)
    if body.get("customer_id") is not None:
        await check_customer_access(request, body["customer_id"], "ticket.create")
    if principal.scope is not None and body.get("queue") is None and not body.get("assigned_to"):
        body["assigned_to"] = principal.agent_id or principal.name
    number = request.app[TICKET_NUMBERS].allocate(request.app[CLOCK].now())
    ticket = await store.tickets.create(number, actor=principal.name, **body)
    return web.json_response(
        ticket_json(ticket, now_of(request)),
        status=201,
        headers={"Location": f"/api/tickets/{ticket.number}"},
    )


# -- one ticket ------------------------------------------------------------------------------


@api.operation(
    "GET",
    "/api/tickets/{number}",
    summary="One ticket",
    tag="tickets",
    path_params=_NUMBER,
    response=TICKET_SCHEMA,
)
async def get_ticket(request: web.Request, given: Input) -> web.Response:
    """The ticket, if the principal may see it."""
    ticket = await visible_ticket(request, given.path["number"])
    return web.json_response(ticket_json(ticket, now_of(request)))


_CHANGE: Final = Object(
    {
        "customer_id": _CUSTOMER_ID,
        "category": Text(enum=CATEGORIES),
        "status": Text(enum=_EDITABLE_STATUSES, description="dispatched: use /dispatch"),
        "priority": _PRIORITY,
        "queue": _OPTIONAL_NAME,
        "subject": _SUBJECT,
        "description": _DESCRIPTION,
        "assigned_to": _OPTIONAL_NAME,
        "due_at": DateTime(nullable=True, description="committed reply time"),
        "replied_at": DateTime(nullable=True),
        "resolution": Text(max_length=2000, nullable=True),
        "satisfaction": Integer(minimum=1, maximum=5, nullable=True),
    },
    min_properties=1,
)


@api.operation(
    "PATCH",
    "/api/tickets/{number}",
    summary="Change fields (one history row per changed field)",
    tag="tickets",
    path_params=_NUMBER,
    body=_CHANGE,
    response=TICKET_SCHEMA,
    errors=(409,),
)
async def update_ticket(request: web.Request, given: Input) -> web.Response:
    """Change the given fields of a visible ticket."""
    number = given.path["number"]
    current = await visible_ticket(request, number)
    principal = principal_of(request)
    body = dict(given.body)
    _check_placement(principal, body)
    await _check_references(request, body)
    customer_id = body.get("customer_id")
    if customer_id is not None and customer_id != current.customer_id:
        await check_customer_access(request, customer_id, "ticket.update")
    ticket = await store_of(request).tickets.update(number, body, actor=principal.name)
    return web.json_response(ticket_json(ticket, now_of(request)))


_NOTE: Final = Object({"text": Text(max_length=4000, min_length=1)}, required=frozenset({"text"}))


@api.operation(
    "POST",
    "/api/tickets/{number}/notes",
    summary="Add a note to the ticket's history",
    tag="tickets",
    path_params=_NUMBER,
    body=_NOTE,
    response=EVENT_SCHEMA,
    status=201,
)
async def add_note(request: web.Request, given: Input) -> web.Response:
    """Append a note to a visible ticket."""
    number = given.path["number"]
    await visible_ticket(request, number)
    event = await store_of(request).tickets.add_note(
        number, given.body["text"], actor=principal_of(request).name
    )
    return web.json_response(_event_json(event), status=201)


@api.operation(
    "GET",
    "/api/tickets/{number}/events",
    summary="The ticket's history, oldest first",
    tag="tickets",
    path_params=_NUMBER,
    response=array(EVENT_SCHEMA),
)
async def ticket_events(request: web.Request, given: Input) -> web.Response:
    """Who changed what and when, with the notes."""
    number = given.path["number"]
    await visible_ticket(request, number)
    events = await store_of(request).tickets.events(number)
    return web.json_response([_event_json(event) for event in events])


_DISPATCH: Final = Object(
    {
        "party": Text(enum=DISPATCH_PARTIES),
        "due_at": DateTime(nullable=True, description="when the repair must be done"),
        "contact": Text(max_length=200, single_line=True, nullable=True),
    },
    required=frozenset({"party"}),
)


@api.operation(
    "POST",
    "/api/tickets/{number}/dispatch",
    summary="Dispatch a repair to a responsible party",
    tag="tickets",
    path_params=_NUMBER,
    body=_DISPATCH,
    response=TICKET_SCHEMA,
    errors=(409,),
)
async def dispatch_ticket(request: web.Request, given: Input) -> web.Response:
    """Dispatch a visible repair ticket (409 when it is not an open, uncompleted repair)."""
    number = given.path["number"]
    await visible_ticket(request, number)
    body = given.body
    ticket = await store_of(request).tickets.dispatch(
        number,
        party=body["party"],
        due_at=body.get("due_at"),
        contact=body.get("contact"),
        actor=principal_of(request).name,
    )
    return web.json_response(ticket_json(ticket, now_of(request)))


_COMPLETE: Final = Object(
    {
        "completed_at": DateTime(description="default: now"),
        "resolution": Text(max_length=2000),
    }
)


@api.operation(
    "POST",
    "/api/tickets/{number}/complete",
    summary="Record that a dispatched repair is done (sets completed_on_time; resolves it)",
    tag="tickets",
    path_params=_NUMBER,
    body=_COMPLETE,
    body_required=False,
    response=TICKET_SCHEMA,
    errors=(409,),
)
async def complete_repair(request: web.Request, given: Input) -> web.Response:
    """Complete a visible dispatched repair (409 when never dispatched or already done)."""
    number = given.path["number"]
    await visible_ticket(request, number)
    ticket = await store_of(request).tickets.complete_repair(
        number,
        completed_at=given.body.get("completed_at") or now_of(request),
        resolution=given.body.get("resolution"),
        actor=principal_of(request).name,
    )
    return web.json_response(ticket_json(ticket, now_of(request)))


_CALLBACK: Final = Object(
    {
        "phone": Text(max_length=33, pattern=r"\+?[0-9]{2,32}"),
        "due_at": DateTime(),
        "assigned_to": Text(
            max_length=64, pattern=NAME_PATTERN, nullable=True, description="an agent id"
        ),
        "note": Text(max_length=1000),
        "max_attempts": Integer(minimum=1, maximum=10),
    },
    required=frozenset({"phone", "due_at"}),
)


@api.operation(
    "POST",
    "/api/tickets/{number}/callbacks",
    summary="Schedule a callback to the customer (to an agent, or the ticket's queue); "
    "max_attempts defaults to [tickets] callback_max_attempts",
    tag="tickets",
    path_params=_NUMBER,
    body=_CALLBACK,
    response=CALLBACK_SCHEMA,
    status=201,
    errors=(409,),
)
async def schedule_callback(request: web.Request, given: Input) -> web.Response:
    """Schedule a callback on a visible ticket."""
    number = given.path["number"]
    await visible_ticket(request, number)
    body = given.body
    principal = principal_of(request)
    assigned_to = body.get("assigned_to")
    if assigned_to is not None and assigned_to not in request.app[SETTINGS].agents:
        raise ValidationFailed({"assigned_to": "is not a configured agent"})
    if principal.scope is not None:
        if principal.agent_id is None or assigned_to not in (None, principal.agent_id):
            await AuditLog(store_of(request).pool).write(
                principal.name,
                "callback.denied",
                "ticket",
                number,
                {"assigned_to": assigned_to, "phone": body["phone"]},
            )
            raise json_error(
                403, "forbidden", message="agents schedule callbacks only to their own phone"
            )
        assigned_to = principal.agent_id
    policy = retry_policy(request.app[SETTINGS])
    callback = await Callbacks(store_of(request).pool, policy=policy).schedule(
        number,
        phone=body["phone"],
        due_at=body["due_at"],
        actor=principal.name,
        assigned_to=assigned_to,
        note=body.get("note", ""),
        max_attempts=body.get("max_attempts"),
    )
    return web.json_response(callback_json(callback), status=201)


@api.operation(
    "GET",
    "/api/tickets/{number}/callbacks",
    summary="The ticket's callbacks, oldest first",
    tag="tickets",
    path_params=_NUMBER,
    response=array(CALLBACK_SCHEMA),
)
async def ticket_callbacks(request: web.Request, given: Input) -> web.Response:
    """The callbacks scheduled on a visible ticket."""
    number = given.path["number"]
    await visible_ticket(request, number)
    callbacks = await Callbacks(store_of(request).pool).for_ticket(number)
    return web.json_response([callback_json(callback) for callback in callbacks])


@api.operation(
    "GET",
    "/api/tickets/{number}/calls",
    summary="The calls recorded against the ticket, oldest first",
    tag="tickets",
    path_params=_NUMBER,
    query={"site": _SITE},
    response=array(CALL_SCHEMA),
)
async def ticket_calls(request: web.Request, given: Input) -> web.Response:
    """The calls of a visible ticket (only one site's with ``site``)."""
    number = given.path["number"]
    await visible_ticket(request, number)
    site = given.query.get("site")
    calls = await Calls(store_of(request).pool).for_ticket(number, site=site)
    return web.json_response([_call_json(call) for call in calls])


@api.operation(
    "GET",
    "/api/tickets/{number}/recordings",
    summary="The ticket's recordings, oldest first (playable: the user may play it at audio_url)",
    tag="tickets",
    path_params=_NUMBER,
    response=array(RECORDING_SCHEMA),
)
async def ticket_recordings(request: web.Request, given: Input) -> web.Response:
    """The recordings of a visible ticket."""
    number = given.path["number"]
    await visible_ticket(request, number)
    recordings = await Recordings(store_of(request).pool).for_ticket(number)
    principal = principal_of(request)
    return web.json_response([_recording_json(item, principal) for item in recordings])
