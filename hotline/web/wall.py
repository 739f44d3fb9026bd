"""The wallboard's alerts and its actions on waiting callers; "ask a supervisor".

Alerts (the rules: :mod:`hotline.domain.alerts`) are computed here, on the
server, from the live state: every :data:`ALERT_INTERVAL` seconds of the
service's clock from the router's live state (the same figures as the queues'
views: service level under target, a wait over the limit, callers with nobody
available; on an instance that does not route, from the mirrored views), every
:data:`COMPLAINT_INTERVAL` from the tickets store (complaints past their
committed reply time), and at once when an agent asks for a supervisor. When the
set changes, the live feed pushes the whole list, newest first, to the
supervising pages (``{"type": "alerts", ...}``, :meth:`LiveHub.push_alerts`); a
page that connects gets it after its snapshot. An alert is cleared when its
condition ends.

"Ask a supervisor" (``POST /api/panel/ask``): an agent talking to a caller
raises an ``ask`` alert with the agent, the caller's number, the call and its
ticket. A supervisor answers it from the wallboard with one click:
``POST /api/wallboard/alerts/{id}/whisper`` (or ``barge``) rings the
supervisor's own device into ChanSpy on the agent's (the path of
:mod:`hotline.web.panels`), or ``.../dismiss``; either resolves it, and so do a
listen, whisper or barge from the agent's tile and the call ending (or leaving
the agent).

Waiting callers (``POST /api/wallboard/calls/{call_id}/priority`` and
``.../move``): the router's own queue changes (see
:mod:`hotline.domain.routing.waiting` for the rules: a moved caller keeps their
arrival time; the service level counts on the queue that answers).

Supervisors and admins only (403 for agents and the integration token; reading
the alerts is also open to the integration token); every action is audited
(``agent.ask_supervisor``, ``supervisor.ask_answered``, ``supervisor.alert_dismiss``,
``supervisor.priority``, ``supervisor.move``).

With several instances (``[redis] url`` and ``[service] pbx_id``), each computes
the queue and complaint alerts itself (from the mirrored views when it does not
route), and the asks are shared by every instance of the centre through Redis
(:mod:`hotline.web.ask_feed`): raised, answered, dismissed or ended on any
instance, the same list shows on every wallboard, and an instance that starts
reads the asks open now. An ask whose call ended is resolved by the instance that
routes that call (the active of the ask's ``site``). Answering with whisper or
barge rings the supervisor through the PBX of the agent's call: from any other
instance (a standby, another site) the Originate is forwarded to that site's
active (:mod:`hotline.web.spy_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from hotline.clock import Clock
from hotline.domain.alerts import Alert, AlertBoard, Condition, QueueFigures, queue_conditions
from hotline.domain.commands import CallerCommand, MoveCaller, SetPriority
from hotline.domain.model import AgentState, Call, CallState
from hotline.domain.routing import Router
from hotline.domain.routing.transfer import UnknownQueue
from hotline.domain.routing.waiting import PRIORITY_LIMIT, NotWaiting
from hotline.engine import EngineError
from hotline.store.audit import AuditLog
from hotline.store.resources import Store
from hotline.web.ask_feed import AskFeed
from hotline.web.auth import USERS, principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.keys import ASKS, CLOCK, ENGINE, SETTINGS, STORE
from hotline.web.live import HUB, SUPERVISING_ROLES, LiveHub
from hotline.web.openapi import Api, Input, array, record, scalar, string
from hotline.web.panels import _spy, _supervisor_only
from hotline.web.schema import Integer, Object, Text

__all__ = [
    "ALERTS",
    "ALERT_INTERVAL",
    "COMPLAINT_INTERVAL",
    "AlertCenter",
    "api",
    "install",
]

log = structlog.get_logger("hotline.web.wall")

api = Api()

ALERT_INTERVAL: Final = 1.0
"""Clock seconds between two evaluations of the queue rules (and of the open asks)."""
COMPLAINT_INTERVAL: Final = 30.0
"""Clock seconds between two looks at the overdue complaints in the tickets store."""
_OBJECT: Final = {"type": "object"}
_CALL: Final = {"call_id": Text(max_length=128, min_length=1, single_line=True)}
_ALERT: Final = {"id": Text(max_length=128, min_length=1, single_line=True)}
_QUEUE: Final = Text(max_length=64, min_length=1, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CALL_SCHEMA: Final = record(
    {
        "call_id": string(),
        "queue": string(),
        "priority": scalar("integer"),
        "ticket": string(),
    }
)


class AlertCenter:
    """The alerts that hold now; pushes the list to the feed when it changes."""

    def __init__(self, hub: LiveHub, clock: Clock) -> None:
        self.hub = hub
        self.clock = clock
        self.board = AlertBoard()
        self.store: Store | None = None
        self.site = ""
        """This instance's ``pbx_id`` (its asks carry it as ``site``)."""
        self.shared: AskFeed | None = None
        """The asks shared with the other instances (:mod:`hotline.web.ask_feed`)."""

    # -- rules --------------------------------------------------------------------------

    def evaluate(self) -> bool:
        """Apply the queue rules to the queues' views now and drop the asks whose call
        ended; push when something changed. True if it did."""
        now = self.clock.now()
        hub, router = self.hub, self.hub.router
        if hub.remote:  # this instance does not route: the active's views, mirrored
            figures = [_figures(view) for _, view in sorted(hub.remote_queues.items())]
        else:
            figures = self._local_figures(router) if router is not None else []
        conditions: list[Condition] = []
        for queue in figures:
            conditions += queue_conditions(queue, now)
        changed = self.board.replace("queue:", conditions, now)
        if router is not None and not hub.remote:
            changed |= self._drop_ended_asks(router)
        if changed:
            self.publish()
        return changed

    def _local_figures(self, router: Router) -> list[QueueFigures]:
        """The queues' figures from the router, in one pass over its calls and agents (not
        the views: they sort every queue's callers, too much each second under load)."""
        waiting: dict[str, int] = dict.fromkeys(router.queues, 0)
        oldest: dict[str, float] = {}
        for call in router.calls.values():
            if call.state is CallState.WAITING and not call.is_callback and call.queue in waiting:
                waiting[call.queue] += 1
                if call.queue_entered_at < oldest.get(call.queue, math.inf):
                    oldest[call.queue] = call.queue_entered_at
        available: dict[str, int] = dict.fromkeys(router.queues, 0)
        for agent in router.agents.values():
            if agent.state is AgentState.AVAILABLE:
                for name in agent.config.queues:
                    available[name] = available.get(name, 0) + 1
        sla = self.hub.settings.sla
        return [
            QueueFigures(
                name=name,
                waiting=waiting[name],
                longest_since=oldest.get(name),
                available=available[name],
                service_level=self.hub.service_level_today(name),
                service_level_target=sla.service_level_target,
                longest_wait_limit=sla.longest_wait_limit,
            )
            for name in sorted(router.queues)
        ]

    def _drop_ended_asks(self, router: Router) -> bool:
        """Resolve the asks of this site whose call ended or left the agent (this instance
        routes them: it decides for every instance)."""
        changed = False
        for alert in list(self.board.alerts.values()):
            detail = alert.condition.detail
            if alert.condition.kind != "ask" or detail.get("site", "") != self.site:
                continue
            call = router.call_of_agent(detail["agent_id"])
            if call is None or call.call_id != detail["call_id"]:
                self._resolved(alert.condition.key)
                changed = True
        return changed

    def _resolved(self, key: str) -> Alert | None:
        alert = self.board.resolve(key)
        if alert is not None and self.shared is not None:
            self.shared.resolved(key)
        return alert

    async def check_complaints(self) -> bool:
        """Raise an alert per complaint past its committed reply time (the tickets store's
        rule), clear the others; push when something changed. True if it did."""
        if self.store is None:
            return False
        now = self.clock.now()
        overdue = await self.store.tickets.overdue(datetime.fromtimestamp(now, UTC))
        conditions = [
            Condition(
                f"complaint:{ticket.number}",
                "complaint_overdue",
                {
                    "ticket": ticket.number,
                    "queue": ticket.queue,
                    "subject": ticket.subject,
                    "due_at": ticket.due_at.timestamp() if ticket.due_at else None,
                },
            )
            for ticket in overdue
            if ticket.category == "complaint"
        ]
        changed = self.board.replace("complaint:", conditions, now)
        if changed:
            self.publish()
        return changed

    def ask(self, agent_id: str, agent_name: str, call: Call, note: str) -> Alert:
        """Raise an agent's "ask a supervisor" alert for the call they are on (one per
        call: asking again keeps the first)."""
        for alert in self.board.alerts.values():
            if alert.condition.kind == "ask" and alert.condition.detail["call_id"] == call.call_id:
                return alert
        condition = Condition(
            f"ask:{secrets.token_hex(6)}",  # unique across the instances
            "ask",
            {
                "site": self.site,
                "agent_id": agent_id,
                "agent": agent_name,
                "number": call.number,
                "call_id": call.call_id,
                "ticket": call.ticket,
                "queue": call.queue,
                "note": note,
            },
        )
        alert = self.board.raise_(condition, self.clock.now())
        if self.shared is not None:
            self.shared.raised(alert.to_json())
        self.publish()
        return alert

    def agent_joined(self, agent_id: str, site: str | None = None) -> None:
        """A supervisor listens, whispers or barges on the call of the agent of ``site``
        (default: this instance's), from the alert or the agent's tile: the agent's
        requests are answered, on every instance."""
        site = self.site if site is None else site
        keys = [
            key
            for key, alert in self.board.alerts.items()
            if alert.condition.kind == "ask"
            and alert.condition.detail["agent_id"] == agent_id
            and alert.condition.detail.get("site", "") == site
        ]
        for key in keys:
            self._resolved(key)
        if keys:
            self.publish()

    def resolve(self, key: str) -> Alert | None:
        """Clear one alert (pushing the change; an ask is resolved on every instance)."""
        alert = self._resolved(key)
        if alert is not None:
            self.publish()
        return alert

    # -- the asks of the other instances (:class:`hotline.web.ask_feed.AskFeed`) ------------

    def adopt(self, ask: dict[str, Any]) -> None:
        """Hold an ask as the feed sends it (raised here or on another instance)."""
        alert = _ask_alert(ask)
        if alert is not None and self.board.alerts.get(alert.condition.key) != alert:
            self.board.alerts[alert.condition.key] = alert
            self.publish()

    def forget(self, ask_id: str) -> None:
        """Drop an ask resolved on another instance (or here)."""
        if self.board.resolve(ask_id) is not None:
            self.publish()

    def adopt_all(self, asks: list[dict[str, Any]]) -> None:
        """Hold exactly these asks (the shared copy, read after subscribing)."""
        wanted = {alert.condition.key: alert for alert in map(_ask_alert, asks) if alert}
        held = {key: a for key, a in self.board.alerts.items() if a.condition.kind == "ask"}
        if held == wanted:
            return
        for key in held.keys() - wanted.keys():
            del self.board.alerts[key]
        self.board.alerts.update(wanted)
        self.publish()

    def publish(self) -> None:
        """Push the whole list, newest first, to the supervising pages."""
        self.hub.push_alerts(self.json())

    def json(self) -> list[dict[str, Any]]:
        """The alerts, newest first, as the feed and the API send them."""
        return [alert.to_json() for alert in self.board.newest_first()]

    # -- the task -----------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate the rules every :data:`ALERT_INTERVAL`, the complaints every
        :data:`COMPLAINT_INTERVAL`, until cancelled."""
        every = max(round(COMPLAINT_INTERVAL / ALERT_INTERVAL), 1)
        for turn in itertools.count():
            if turn % every == 0:
                try:
                    async with asyncio.timeout(30.0):
                        await self.check_complaints()
                except (
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    log.warning("wall.complaints_failed", error=f"{type(exc).__name__}: {exc}")
            self.evaluate()
            await self.clock.sleep(ALERT_INTERVAL)


def _ask_alert(ask: dict[str, Any]) -> Alert | None:
    """An ask as the feed sends it (:meth:`Alert.to_json`) as an alert; None if it is not one."""
    detail = {k: v for k, v in ask.items() if k not in ("id", "kind", "since")}
    key, since = ask.get("id"), ask.get("since")
    if ask.get("kind") != "ask" or not isinstance(key, str) or not key.startswith("ask:"):
        return None
    if not isinstance(since, int | float) or not isinstance(detail.get("agent_id"), str):
        return None
    return Alert(Condition(key, "ask", detail), float(since))


def _figures(view: dict[str, Any]) -> QueueFigures:
    """A queue's live view (:mod:`hotline.web.live`) as the rules' figures."""
    return QueueFigures(
        name=view["name"],
        waiting=view["waiting_count"],
        longest_since=view["longest_since"],
        available=view["agents"].get(AgentState.AVAILABLE.value, 0),
        service_level=view["today"]["service_level"],
        service_level_target=view["targets"]["service_level"],
        longest_wait_limit=view["targets"]["longest_wait"],
    )


ALERTS: Final = web.AppKey("wall_alerts", AlertCenter)


async def _alerts_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the alert task (after the live feed's context: the hub has its
    router)."""
    center = app[ALERTS]
    center.store = app.get(STORE)
    settings = app[SETTINGS]
    center.site = settings.service.pbx_id
    tasks = [asyncio.create_task(center.run(), name="wall-alerts")]
    client = None
    if settings.redis_url and settings.service.pbx_id:  # the asks shared by the centre
        client = aioredis.Redis.from_url(settings.redis_url.reveal())
        center.shared = AskFeed(client, prefix=settings.redis_prefix, holder=center)
        tasks.append(asyncio.create_task(center.shared.run(), name="ask-feed"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if client is not None:
            await client.aclose()


def install(app: web.Application) -> None:
    """Give ``app`` its alert centre and the task that keeps it (call after the live feed's
    hub and context are in place)."""
    app[ALERTS] = app[ASKS] = AlertCenter(app[HUB], app[CLOCK])
    app.cleanup_ctx.append(_alerts_context)


# -- the API ----------------------------------------------------------------------------------


@api.operation(
    "GET",
    "/api/wallboard/alerts",
    summary="The wallboard's alerts now, newest first (the feed pushes the same list)",
    tag="panels",
    response=record({"alerts": array(_OBJECT)}),
)
async def list_alerts(request: web.Request, _: Input) -> web.Response:
    """Every alert that holds now; times in epoch seconds, as in the feed."""
    if principal_of(request).role not in SUPERVISING_ROLES:
        raise json_error(403, "forbidden", message="only supervisors see the alerts")
    return web.json_response({"alerts": request.app[ALERTS].json()})


@api.operation(
    "POST",
    "/api/panel/ask",
    summary="Ask a supervisor: alert the supervisors on duty about the agent's call",
    tag="panels",
    body=Object({"note": Text(max_length=500)}),
    body_required=False,
    response=record({"alert": _OBJECT}),
    errors=(409,),
)
async def ask_supervisor(request: web.Request, given: Input) -> web.Response:
    """Raise an "ask" alert for the call the signed-in agent is talking to (audited)."""
    principal = principal_of(request)
    if principal.agent_id is None:
        raise json_error(403, "forbidden", message="only an agent on a call can ask")
    engine = request.app[ENGINE]
    call = engine.router.call_of_agent(principal.agent_id)
    if call is None:
        raise json_error(409, "conflict", message="you are not talking to a caller")
    agent = engine.router.agents[principal.agent_id]
    name = agent.config.name or principal.agent_id
    if principal.user_id is not None:  # the agent as the supervisors know them
        name = (await request.app[USERS].get(principal.user_id)).display_name or name
    note = given.body.get("note", "").strip()
    alert = request.app[ALERTS].ask(principal.agent_id, name, call, note)
    await AuditLog(store_of(request).pool).write(
        principal.name,
        "agent.ask_supervisor",
        "call",
        call.call_id,
        {"alert": alert.condition.key, "ticket": call.ticket, "agent": principal.agent_id},
    )
    return web.json_response({"alert": alert.to_json()})


def _ask(request: web.Request, alert_id: str) -> Alert:
    alert = request.app[ALERTS].board.alerts.get(alert_id)
    if alert is None or alert.condition.kind != "ask":
        raise json_error(404, "not found", message="no such open request", alert=alert_id)
    return alert


async def _answer(request: web.Request, action: str, alert_id: str) -> web.Response:
    _supervisor_only(request)
    alert = _ask(request, alert_id)
    detail = alert.condition.detail
    # Audited as supervisor.<action>; resolves the agent's requests once the PBX took it.
    response = await _spy(request, action, detail["agent_id"], detail.get("site") or None)
    await AuditLog(store_of(request).pool).write(
        principal_of(request).name,
        "supervisor.ask_answered",
        "call",
        detail["call_id"],
        {
            "alert": alert_id,
            "action": action,
            "agent": detail["agent_id"],
            "ticket": detail["ticket"],
        },
    )
    return response


def _answer_operation(action: str) -> None:
    async def handler(request: web.Request, given: Input) -> web.Response:
        return await _answer(request, action, given.path["id"])

    handler.__doc__ = f"Answer an agent's request: {action} on their call (ChanSpy)."
    handler.__name__ = handler.__qualname__ = f"answer_{action}"
    api.operation(
        "POST",
        f"/api/wallboard/alerts/{{id}}/{action}",
        summary=f"Answer an agent's request for a supervisor: {action} (audited)",
        tag="panels",
        path_params=_ALERT,
        response=record({"action": string(), "agent_id": string(), "device": string()}),
        errors=(409,),
    )(handler)


for _action in ("whisper", "barge"):
    _answer_operation(_action)


@api.operation(
    "POST",
    "/api/wallboard/alerts/{id}/dismiss",
    summary="Dismiss an agent's request for a supervisor (audited)",
    tag="panels",
    path_params=_ALERT,
    response=record({"dismissed": string()}),
)
async def dismiss_alert(request: web.Request, given: Input) -> web.Response:
    """Resolve an "ask" alert without joining the call."""
    _supervisor_only(request)
    alert_id = given.path["id"]
    detail = _ask(request, alert_id).condition.detail
    request.app[ALERTS].resolve(alert_id)
    await AuditLog(store_of(request).pool).write(
        principal_of(request).name,
        "supervisor.alert_dismiss",
        "call",
        detail["call_id"],
        {"alert": alert_id, "agent": detail["agent_id"], "ticket": detail["ticket"]},
    )
    return web.json_response({"dismissed": alert_id})


async def _on_caller(
    request: web.Request, command: CallerCommand, action: str, extra: dict[str, Any]
) -> web.Response:
    """Apply a command on a waiting caller for a supervisor, audited with ``extra``."""
    _supervisor_only(request)
    engine = request.app[ENGINE]
    before = engine.router.calls.get(command.call_id)
    was = (before.queue, before.priority) if before is not None else None
    try:
        call = await engine.caller_command(command)
    except NotWaiting as exc:
        if was is None:
            raise json_error(
                404, "not found", message="no such caller", call=command.call_id
            ) from exc
        raise json_error(409, "conflict", message="the caller is no longer waiting") from exc
    except UnknownQueue as exc:
        raise json_error(
            422, "invalid input", fields={"queue": "is not a configured queue"}
        ) from exc
    except EngineError as exc:
        raise json_error(503, "engine unavailable", message=str(exc)) from exc
    assert was is not None
    await AuditLog(store_of(request).pool).write(
        principal_of(request).name,
        f"supervisor.{action}",
        "call",
        call.call_id,
        {"ticket": call.ticket, "from_queue": was[0], "from_priority": was[1], **extra},
    )
    return web.json_response(
        {
            "call_id": call.call_id,
            "queue": call.queue,
            "priority": call.priority,
            "ticket": call.ticket,
        }
    )


@api.operation(
    "POST",
    "/api/wallboard/calls/{call_id}/priority",
    summary="Give a waiting caller a new priority (re-ordered by the routing rules; audited)",
    tag="panels",
    path_params=_CALL,
    body=Object(
        {"priority": Integer(minimum=-PRIORITY_LIMIT, maximum=PRIORITY_LIMIT)},
        required=frozenset({"priority"}),
    ),
    response=_CALL_SCHEMA,
    errors=(409,),
)
async def set_priority(request: web.Request, given: Input) -> web.Response:
    """Raise (or lower) a waiting caller's priority."""
    priority = given.body["priority"]
    command = SetPriority(given.path["call_id"], priority)
    return await _on_caller(request, command, "priority", {"priority": priority})


@api.operation(
    "POST",
    "/api/wallboard/calls/{call_id}/move",
    summary="Move a waiting caller to another queue, keeping their wait (audited)",
    tag="panels",
    path_params=_CALL,
    body=Object({"queue": _QUEUE}, required=frozenset({"queue"})),
    response=_CALL_SCHEMA,
    errors=(409,),
)
async def move_caller(request: web.Request, given: Input) -> web.Response:
    """Move a waiting caller to ``queue``."""
    queue = given.body["queue"]
    if queue not in request.app[ENGINE].router.queues:
        raise json_error(422, "invalid input", fields={"queue": "is not a configured queue"})
    return await _on_caller(
        request, MoveCaller(given.path["call_id"], queue), "move", {"queue": queue}
    )
