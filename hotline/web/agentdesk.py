"""The agent panel's desk: callbacks due, click-to-call, and what the ticket form offers.

- ``GET /api/callbacks``: scheduled callbacks due before ``due_before`` (default:
  the next :data:`DUE_SOON_HOURS` hours), earliest first, each marked
  ``overdue`` when it is still not dialled :data:`OVERDUE_AFTER` after its due
  time (a click-to-call just made is due, not overdue). An agent sees only the callbacks
  assigned to their own agent id (``mine`` is implied; asking for another
  agent's is 403, audited as ``callback.denied``); supervisors, admins and the
  integration token see everyone's, or one agent's with ``agent``, or their own
  with ``mine=true``.
- ``POST /api/panel/call``: click-to-call. A callback on the ticket, due now,
  assigned to the caller's own agent: the callback scheduler hands it to the
  router, which rings the agent's own phone first (``Originate
  Channel=<agent device> Context=hotline-outbound Exten=<customer number>``) and
  the PBX dials the customer when the agent answers. One attempt, no retries.
  The number defaults to the ticket's customer's first phone. Needs a user with
  an agent id (403 otherwise); audited as ``callback.call_now``.
- ``GET /api/panel/form``: what the ticket form needs: the categories, the
  configured committed reply time for complaints (``[tickets]
  complaint_reply_hours``), the repair dispatch parties and the satisfaction scale.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from aiohttp import web

from hotline.store.audit import AuditLog
from hotline.store.callbacks import Callbacks
from hotline.store.customers import Customers
from hotline.store.rules import CATEGORIES, DISPATCH_PARTIES
from hotline.web.auth import Principal, principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.keys import CALLBACKS_DUE, SETTINGS
from hotline.web.openapi import Api, Input, array, record, scalar, string
from hotline.web.schema import Boolean, DateTime, Integer, Object, Text
from hotline.web.tickets import CALLBACK_SCHEMA, NAME_PATTERN, callback_json, now_of, visible_ticket

__all__ = ["DUE_SOON_HOURS", "OVERDUE_AFTER", "api"]

api = Api()

DUE_SOON_HOURS: Final = 2
"""How far ahead ``GET /api/callbacks`` looks by default."""
OVERDUE_AFTER: Final = timedelta(minutes=1)
"""A scheduled callback this long past its due time is overdue."""
SATISFACTION: Final = (1, 5)
"""The satisfaction scale (the tickets table's check)."""
_AGENT: Final = Text(max_length=64, pattern=NAME_PATTERN, description="an agent id")
_DUE_SCHEMA: Final = record({**CALLBACK_SCHEMA["properties"], "overdue": scalar("boolean")})


async def _whose_callbacks(request: web.Request, given: Input) -> str | None:
    """The agent id whose callbacks the principal lists (``None``: everyone's)."""
    principal = principal_of(request)
    wanted = given.query.get("agent")
    mine = given.query.get("mine", False)
    if principal.role != "agent":
        if mine:
            if principal.agent_id is None:
                raise json_error(403, "forbidden", message="you have no agent id")
            return principal.agent_id
        return wanted
    if principal.agent_id is None:
        raise json_error(403, "forbidden", message="you have no agent id")
    if wanted not in (None, principal.agent_id):
        await AuditLog(store_of(request).pool).write(
            principal.name, "callback.denied", "agent", wanted, {"operation": "list"}
        )
        raise json_error(403, "forbidden", message="agents see only their own callbacks")
    return principal.agent_id


@api.operation(
    "GET",
    "/api/callbacks",
    summary="Scheduled callbacks due soon (and overdue), earliest first; an agent's own only",
    tag="tickets",
    query={
        "mine": Boolean(description="only the callbacks assigned to my agent id"),
        "agent": _AGENT,
        "due_before": DateTime(description=f"default: now + {DUE_SOON_HOURS} h"),
        "limit": Integer(minimum=1, maximum=200, description="default 50"),
    },
    response=record({"callbacks": array(_DUE_SCHEMA), "now": string(fmt="date-time")}),
)
async def callbacks_due(request: web.Request, given: Input) -> web.Response:
    """The principal's (or, for supervisors, anyone's) callbacks due before the time."""
    agent_id = await _whose_callbacks(request, given)
    now = now_of(request)
    before = given.query.get("due_before") or now + timedelta(hours=DUE_SOON_HOURS)
    found = await Callbacks(store_of(request).pool).due(
        before, limit=given.query.get("limit", 50), assigned_to=agent_id
    )
    return web.json_response(
        {
            "callbacks": [
                {**callback_json(callback), "overdue": callback.due_at < now - OVERDUE_AFTER}
                for callback in found
            ],
            "now": now.isoformat(),
        }
    )


def _own_agent(principal: Principal) -> str:
    if principal.agent_id is None:
        raise json_error(403, "forbidden", message="only a user with an agent phone can call")
    return principal.agent_id


@api.operation(
    "POST",
    "/api/panel/call",
    summary="Click-to-call: the agent's own phone rings first, then the customer "
    "(a callback due now)",
    tag="panels",
    body=Object(
        {
            "ticket": Text(max_length=64, min_length=1, single_line=True),
            "phone": Text(max_length=33, pattern=r"\+?[0-9]{2,32}"),
        },
        required=frozenset({"ticket"}),
    ),
    response=CALLBACK_SCHEMA,
    status=201,
    errors=(404, 409),
)
async def call_now(request: web.Request, given: Input) -> web.Response:
    """Schedule a one-attempt callback due now on a visible ticket, to the agent's phone."""
    principal = principal_of(request)
    agent_id = _own_agent(principal)
    ticket = await visible_ticket(request, given.body["ticket"])
    store = store_of(request)
    phone = given.body.get("phone")
    if phone is None and ticket.customer_id is not None:
        customer = await Customers(store.pool).get(ticket.customer_id)
        phone = next(iter(customer.phones), None)
    if not phone:
        raise json_error(422, "invalid input", fields={"phone": "the ticket has no number"})
    callback = await Callbacks(store.pool).schedule(
        ticket.number,
        phone=phone,
        due_at=now_of(request),
        actor=principal.name,
        assigned_to=agent_id,
        note="click-to-call",
        max_attempts=1,
    )
    await AuditLog(store.pool).write(
        principal.name,
        "callback.call_now",
        "ticket",
        ticket.number,
        {"callback": callback.id, "agent_id": agent_id},
    )
    if CALLBACKS_DUE in request.app:
        request.app[CALLBACKS_DUE].set()  # the scheduler polls now, not at its next turn
    return web.json_response(callback_json(callback), status=201)


@api.operation(
    "GET",
    "/api/panel/form",
    summary="What the ticket form offers: categories, the complaints' committed reply "
    "time, dispatch parties, satisfaction scale",
    tag="panels",
    response=record(
        {
            "categories": array(string()),
            "complaint_reply_hours": scalar("number"),
            "dispatch_parties": array(string()),
            "satisfaction_min": scalar("integer"),
            "satisfaction_max": scalar("integer"),
        }
    ),
)
async def ticket_form(request: web.Request, _: Input) -> web.Response:
    """The form's choices and the configured complaint reply rule."""
    body: dict[str, Any] = {
        "categories": list(CATEGORIES),
        "complaint_reply_hours": request.app[SETTINGS].tickets.complaint_reply_hours,
        "dispatch_parties": list(DISPATCH_PARTIES),
        "satisfaction_min": SATISFACTION[0],
        "satisfaction_max": SATISFACTION[1],
    }
    return web.json_response(body)
