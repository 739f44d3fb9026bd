"""The panels' own API: the agent's screen-pop and the supervisor's actions.

- ``GET /api/panel/pop``: for a signed-in agent, the caller ringing on or talking
  to their phone right now (:meth:`Router.caller_on_phone`): the customer file
  (its read audited), the open tickets and recent ones, and ``ticket``: the
  call's own ticket (the router's, attached to the caller's open ticket or
  newly numbered), preselected. The router numbers a new ticket before the
  outbox stores it: when its row is not written yet the pop keeps looking for it
  (:data:`POP_STORE_WAIT` seconds at most) and, if it is still not
  there, answers ``pending: true`` with the number, and the panel asks again
  (it never shows "no ticket" for a call that has one). No caller, or an
  anonymous one: ``customer`` is null (the panel shows an empty form).
- ``POST /api/supervise/{agent_id}/{listen|whisper|barge}``: ring the
  supervisor's own device (``device`` of their user profile) into ChanSpy on the
  agent's device, as ``supervisor_spy.jsonl`` shows: ``Originate
  Channel=<supervisor device> Application=ChanSpy Data=<agent device>,q`` (``qw``
  to whisper, ``qB`` to barge), ``Async: true``.
- ``POST /api/supervise/{agent_id}/pause`` (with a reason) and ``.../logout``:
  force an agent's state.

Listen, whisper and barge leave from the instance that holds the lease of the
agent's PBX (the lease fences a standby's actions; another site's instance has
no connection to that PBX): any other instance forwards them to that active
through Redis (:mod:`hotline.web.spy_relay`, :func:`spy_relay_context`), or,
without Redis, answers 409 saying it is a standby.

Supervisor actions are for supervisors and admins only (403 for agents and the
integration token, which has no phone); every one is written to the audit log
(``supervisor.listen``, ``supervisor.pause``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as aioredis
from aiohttp import web

from hotline.ami.client import AmiError
from hotline.domain.commands import agent_command
from hotline.domain.routing import UnknownAgent
from hotline.engine import EngineError
from hotline.store.audit import AuditLog
from hotline.store.customers import Customers
from hotline.store.db import NotFound
from hotline.store.tickets import Ticket, TicketFilter
from hotline.web.agents import AGENT_SCHEMA, agent_json
from hotline.web.auth import USERS, principal_of, store_of
from hotline.web.customers import customer_json
from hotline.web.errors import json_error
from hotline.web.keys import AMI, ASKS, ENGINE, LEASE, SETTINGS
from hotline.web.openapi import Api, Input, record, scalar, string
from hotline.web.schema import Object, Text
from hotline.web.spy_relay import SPY_RELAY, ForwardFailed, SpyRelay, SpyResult, answer
from hotline.web.tickets import ticket_json

__all__ = ["POP_STORE_WAIT", "SPY_OPTIONS", "api", "originate_spy", "spy_relay_context"]

api = Api()

SPY_OPTIONS: Final = {"listen": "q", "whisper": "qw", "barge": "qB"}
"""ChanSpy's options per action (``supervisor_spy.jsonl``)."""
POP_STORE_WAIT: Final = 0.4
"""How long the screen-pop waits for the outbox to store the call's ticket (seconds)."""
POP_STORE_POLL: Final = 0.05
"""How often it looks for the row meanwhile (seconds)."""
SPY_TIMEOUT_MS: Final = 10_000
"""How long the supervisor's phone rings (the Originate's ``Timeout``)."""
_SUPERVISORS: Final = frozenset({"supervisor", "admin"})
_AGENT: Final = {"agent_id": Text(max_length=64, min_length=1, single_line=True)}
_OBJECT: Final = {"type": "object"}


def _supervisor_only(request: web.Request) -> None:
    if principal_of(request).role not in _SUPERVISORS:
        raise json_error(403, "forbidden", message="only supervisors may do this")


def _agent_device(request: web.Request, agent_id: str) -> str:
    agent = request.app[ENGINE].router.agents.get(agent_id)
    if agent is None:
        raise json_error(404, "not found", message="unknown agent", agent=agent_id)
    return agent.config.device


def _call_on_phone(request: web.Request, agent_id: str) -> tuple[str, str] | None:
    """The number and ticket of the caller ringing on or talking to the agent's phone."""
    router = request.app[ENGINE].router
    number = router.caller_on_phone(agent_id)
    if number is None:
        return None
    agent = router.agents[agent_id]
    offer = router.offers.get(agent.offer_id) if agent.offer_id else None
    call = router.calls.get(offer.call_id) if offer is not None else None
    return number, call.ticket if call is not None else ""


async def _stored_ticket(request: web.Request, number: str) -> Ticket | None:
    """The ticket's row; when not written yet, asked again until the outbox has written it
    or :data:`POP_STORE_WAIT` seconds have passed (``None`` then)."""
    tickets = store_of(request).tickets
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(POP_STORE_WAIT):
            while True:
                try:
                    return await tickets.get(number)
                except NotFound:
                    await asyncio.sleep(POP_STORE_POLL)
    return None


@api.operation(
    "GET",
    "/api/panel/pop",
    summary="The screen-pop: the file of the caller on the agent's phone now",
    tag="panels",
    response=record(
        {
            "number": string(nullable=True),
            "customer": {**_OBJECT, "nullable": True},
            "open_tickets": {"type": "array", "items": _OBJECT},
            "recent_tickets": {"type": "array", "items": _OBJECT},
            "preselected": string(nullable=True),
            "ticket": string(nullable=True),
            "pending": scalar("boolean"),
        }
    ),
)
async def screen_pop(request: web.Request, _: Input) -> web.Response:
    """The caller's customer file (audited), open and recent tickets; empty for none."""
    principal = principal_of(request)
    on_phone = None
    if principal.agent_id is not None:
        on_phone = _call_on_phone(request, principal.agent_id)
    number, ticket_number = on_phone or (None, None)
    body: dict[str, Any] = {
        "number": number,
        "customer": None,
        "open_tickets": [],
        "recent_tickets": [],
        "preselected": ticket_number or None,
        "ticket": ticket_number or None,
        "pending": False,
    }
    if not number:
        return web.json_response(body)
    if ticket_number and await _stored_ticket(request, ticket_number) is None:
        body["pending"] = True  # the outbox has not written it yet: the panel asks again
    store = store_of(request)
    customers = Customers(store.pool)
    found = await customers.find_by_phone(number)
    if found is None:
        return web.json_response(body)
    customer = await customers.read(found.id, actor=principal.name)
    moment = datetime.fromtimestamp(request.app[ENGINE].clock.now(), UTC)
    opened = await store.tickets.find(TicketFilter(customer_id=customer.id, open_only=True))
    recent = await store.tickets.find(TicketFilter(customer_id=customer.id), limit=5)
    body.update(
        customer=customer_json(customer),
        open_tickets=[ticket_json(ticket, moment) for ticket in opened],
        recent_tickets=[ticket_json(ticket, moment) for ticket in recent],
        preselected=ticket_number or (opened[0].number if opened else None),
    )
    return web.json_response(body)


def _routing_only(request: web.Request) -> None:
    """Refuse (409) on a standby without Redis to forward: only the lease holder sends
    actions to the PBX."""
    lease = request.app.get(LEASE)
    if lease is not None and not lease.active:
        raise json_error(
            409,
            "conflict",
            message=(
                f"this instance is a standby for pbx {lease.pbx_id}: only the active one "
                "sends actions to the PBX; use a wallboard served by the active instance"
            ),
        )


def _routes(app: web.Application) -> bool:
    """Whether this instance holds its PBX's lease (or has none: it always routes)."""
    lease = app.get(LEASE)
    return lease is None or lease.active


async def originate_spy(
    app: web.Application, agent_id: str, device: str, options: str
) -> SpyResult:
    """Ring ``device`` into ChanSpy on the agent's device, on this instance's AMI connection
    (as ``supervisor_spy.jsonl`` shows); the outcome as the spy relay carries it."""
    agent = app[ENGINE].router.agents.get(agent_id)
    if agent is None:
        return answer("unknown_agent", "unknown agent")
    target = agent.config.device
    try:
        result = await app[AMI].action(
            "Originate",
            [
                ("Channel", device),
                ("Application", "ChanSpy"),
                ("Data", f"{target},{options}"),
                ("Async", "true"),
                ("Timeout", str(SPY_TIMEOUT_MS)),
            ],
        )
    except (AmiError, OSError) as exc:
        return answer("unavailable", str(exc), target)
    if not result.ok:
        return answer("refused", result.response.get("Message") or "refused", target)
    return answer("ok", "", target)


def _checked(result: SpyResult, agent_id: str) -> None:
    """Raise the HTTP error an unsuccessful Originate means."""
    status = result["status"]
    if status == "unknown_agent":
        raise json_error(404, "not found", message="unknown agent", agent=agent_id)
    if status == "unavailable":
        raise json_error(503, "pbx unavailable", message=result["message"])
    if status != "ok":
        raise json_error(503, "pbx refused", message=result["message"] or "refused")


async def _spy(
    request: web.Request, action: str, agent_id: str, site: str | None = None
) -> web.Response:
    """Listen, whisper or barge for the signed-in supervisor on ``agent_id`` of ``site``
    (default: this instance's): sent here when this instance routes that site, otherwise
    forwarded to its active (:mod:`hotline.web.spy_relay`), or refused without Redis."""
    _supervisor_only(request)
    principal = principal_of(request)
    home = request.app[SETTINGS].service.pbx_id
    site = site or home
    relay = request.app.get(SPY_RELAY)
    local = site == home and _routes(request.app)
    if not local and relay is None:
        _routing_only(request)
        raise json_error(409, "conflict", message=f"the agent is on site {site}, not here")
    target = _agent_device(request, agent_id) if local else None
    assert principal.user_id is not None  # supervisors and admins are users
    user = await request.app[USERS].get(principal.user_id)
    if not user.device:
        raise json_error(409, "conflict", message="your user profile has no device to ring")
    detail: dict[str, Any] = {"device": user.device, "target": target}
    if not local:  # the target is the device the site's active knows
        detail["forwarded_to"] = site
    await AuditLog(store_of(request).pool).write(
        principal.name, f"supervisor.{action}", "agent", agent_id, detail
    )
    options = SPY_OPTIONS[action]
    if local:
        result = await originate_spy(request.app, agent_id, user.device, options)
    else:
        assert relay is not None
        try:
            result = await relay.forward(site, agent_id, user.device, options)
        except ForwardFailed as exc:
            raise json_error(503, "pbx unavailable", message=str(exc)) from exc
    _checked(result, agent_id)
    if ASKS in request.app:  # the agent's "ask a supervisor", answered
        request.app[ASKS].agent_joined(agent_id, site)
    return web.json_response({"action": action, "agent_id": agent_id, "device": user.device})


def _spy_operation(action: str) -> None:
    async def handler(request: web.Request, given: Input) -> web.Response:
        return await _spy(request, action, given.path["agent_id"])

    handler.__doc__ = f"Ring the supervisor's device to {action} on the agent's call."
    handler.__name__ = handler.__qualname__ = f"supervise_{action}"  # the route's name
    api.operation(
        "POST",
        f"/api/supervise/{{agent_id}}/{action}",
        summary=f"{action.capitalize()} on an agent's call (ChanSpy; audited)",
        tag="panels",
        path_params=_AGENT,
        response=record(
            {"action": string(), "agent_id": string(), "device": string()},
        ),
        errors=(409,),
    )(handler)


for _action in SPY_OPTIONS:
    _spy_operation(_action)


async def _force(request: web.Request, action: str, agent_id: str, reason: str) -> web.Response:
    _supervisor_only(request)
    principal = principal_of(request)
    _agent_device(request, agent_id)
    await AuditLog(store_of(request).pool).write(
        principal.name, f"supervisor.{action}", "agent", agent_id, {"reason": reason}
    )
    try:
        agent = await request.app[ENGINE].command(agent_command(action, agent_id, reason))
    except UnknownAgent as exc:
        raise json_error(404, "not found", message="unknown agent", agent=agent_id) from exc
    except EngineError as exc:
        raise json_error(503, "engine unavailable", message=str(exc)) from exc
    return web.json_response(agent_json(agent))


@api.operation(
    "POST",
    "/api/supervise/{agent_id}/pause",
    summary="Force-pause an agent (audited)",
    tag="panels",
    path_params=_AGENT,
    body=Object({"reason": Text(max_length=64, single_line=True)}),
    body_required=False,
    response=AGENT_SCHEMA,
)
async def force_pause(request: web.Request, given: Input) -> web.Response:
    """Pause the agent on a supervisor's order."""
    reason = given.body.get("reason", "").strip() or "supervisor"
    return await _force(request, "pause", given.path["agent_id"], reason)


@api.operation(
    "POST",
    "/api/supervise/{agent_id}/logout",
    summary="Force-log-out an agent (audited)",
    tag="panels",
    path_params=_AGENT,
    response=AGENT_SCHEMA,
)
async def force_logout(request: web.Request, given: Input) -> web.Response:
    """Log the agent out on a supervisor's order."""
    return await _force(request, "logout", given.path["agent_id"], "")


async def spy_relay_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: with ``[redis] url`` and ``[service] pbx_id``, the forwarding of
    listen/whisper/barge to (and, while active, from) the other instances."""
    settings = app[SETTINGS]
    if not (settings.redis_url and settings.service.pbx_id):
        yield
        return
    client = aioredis.Redis.from_url(settings.redis_url.reveal())

    async def originate(agent_id: str, device: str, options: str) -> SpyResult:
        return await originate_spy(app, agent_id, device, options)

    relay = app[SPY_RELAY] = SpyRelay(
        client,
        prefix=settings.redis_prefix,
        pbx_id=settings.service.pbx_id,
        may_act=lambda: _routes(app),
        originate=originate,
    )
    task = asyncio.create_task(relay.run(), name="spy-relay")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
