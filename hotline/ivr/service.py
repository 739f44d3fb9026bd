"""The IVR inside ``hotline serve``: the FastAGI server, the store behind the flows, reloads.

With ``[agi] enabled``, :func:`ivr_context` (a ``cleanup_ctx`` of the web
application) loads the flows from ``[agi] flows`` (a broken set stops the start,
like a broken configuration), starts the FastAGI server on ``[agi] listen`` and
stops it on shutdown. Reloads (SIGHUP, or ``POST /api/ivr/reload`` by an admin or
the integration token) replace the flows only with a set that validates; the
service goes on with the last good set otherwise and says so (log and response).

:class:`StoreIvrServices` answers the flows' questions from the store: the
caller's open ticket (and who it is assigned to) and customer tags; it schedules
callbacks through the callbacks repository (opening the caller's ticket first if
the caller has none yet) and records survey scores on the call and its ticket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiohttp import web

from hotline.agi.server import AgiServer
from hotline.clock import Clock
from hotline.ivr.runner import CallerInfo, FlowHolder, IvrRunner
from hotline.store.callbacks import Callbacks
from hotline.store.customers import Customers
from hotline.store.db import NotFound, transaction
from hotline.store.resources import Store, retry_policy
from hotline.store.tickets import Tickets, append_event
from hotline.web.auth import principal_of
from hotline.web.errors import json_error
from hotline.web.keys import CLOCK, METRICS, SETTINGS, STORE
from hotline.web.openapi import Api, Input, array, record, scalar, string

__all__ = [
    "IVR",
    "IVR_RUNNER",
    "IVR_SERVER",
    "NoStoreServices",
    "StoreIvrServices",
    "api",
    "ivr_context",
]

log = structlog.get_logger("hotline.ivr")

IVR: Final = web.AppKey("ivr", FlowHolder)
IVR_SERVER: Final = web.AppKey("ivr_server", AgiServer)
IVR_RUNNER: Final = web.AppKey("ivr_runner", IvrRunner)
ACTOR: Final = "ivr"


class NoStoreServices:
    """Without a database: no tickets or tags are known, nothing can be scheduled or stored."""

    def __init__(self, clock: Clock) -> None:
        """Times from ``clock``."""
        self.clock = clock

    async def caller(self, number: str) -> CallerInfo:  # noqa: ARG002 (the services' protocol)
        """Nothing is known."""
        return CallerInfo()

    async def schedule_callback(
        self,
        number: str,  # noqa: ARG002
        queue: str,  # noqa: ARG002
        language: str,  # noqa: ARG002
        due_at: datetime,  # noqa: ARG002 (protocol)
    ) -> str | None:
        """Cannot schedule."""
        return None

    async def record_survey(self, uniqueid: str, score: int) -> bool:  # noqa: ARG002 (the services' protocol)
        """Cannot store."""
        return False

    def now(self) -> datetime:
        """The clock's time."""
        return datetime.fromtimestamp(self.clock.now(), UTC)


class StoreIvrServices(NoStoreServices):
    """The flows' questions and actions, answered by the store."""

    def __init__(self, store: Store, clock: Clock, *, max_attempts: int | None = None) -> None:
        """Over ``store``'s pool and open-ticket view."""
        super().__init__(clock)
        self.store = store
        self.max_attempts = max_attempts

    async def caller(self, number: str) -> CallerInfo:
        """The open ticket of the view, its agent (the assignee, else who last answered a
        call on it), and the customer's tags."""
        ticket = self.store.open_tickets.lookup(number)
        agent = None
        tickets = Tickets(self.store.pool)
        if ticket is not None:
            try:
                agent = (await tickets.get(ticket.number)).assigned_to
            except NotFound:
                agent = None
            if agent is None:  # the agent who last answered a call on it, as sticky routing
                agent = await self.store.pool.fetchval(
                    "select c.answered_by from calls c join tickets t on t.id = c.ticket_id"
                    " where t.number = $1 and c.answered_by is not null"
                    " order by c.answered_at desc limit 1",
                    ticket.number,
                )
        customer = await Customers(self.store.pool).find_by_phone(number)
        tags = frozenset(customer.tags) if customer is not None else frozenset()
        return CallerInfo(ticket=ticket.number if ticket else None, agent=agent, tags=tags)

    async def schedule_callback(
        self, number: str, queue: str, language: str, due_at: datetime
    ) -> str | None:
        """A callback at ``due_at`` on the caller's ticket (opened now if there is none)."""
        if not number.lstrip("+").isdigit():
            return None
        ticket_number = self.store.open_tickets.ticket_for(number, self.clock.now())
        tickets = Tickets(self.store.pool)
        try:
            await tickets.get(ticket_number)
        except NotFound:
            customer = await Customers(self.store.pool).find_or_create(number)
            await tickets.create(
                ticket_number,
                actor=ACTOR,
                customer_id=customer.id,
                queue=queue,
                subject="after-hours callback (IVR)",
            )
        callbacks = Callbacks(self.store.pool)
        await callbacks.schedule(
            ticket_number,
            phone=number,
            due_at=due_at,
            actor=ACTOR,
            note=f"IVR after hours, language {language}",
            max_attempts=self.max_attempts,
        )
        log.info("ivr.callback_scheduled", ticket=ticket_number, due_at=due_at.isoformat())
        return ticket_number

    async def record_survey(self, uniqueid: str, score: int) -> bool:
        """Store ``score`` on the call ``uniqueid`` and its ticket, once (False: no such call,
        or already scored)."""
        async with transaction(self.store.pool) as conn:
            ticket_id = await conn.fetchval(
                "update calls set survey_score = $2, survey_at = now() "
                "where call_id = $1 and survey_score is null returning ticket_id",
                uniqueid,
                score,
            )
            if ticket_id is None:
                return False
            await conn.execute(
                "update tickets set survey_score = $2, survey_at = now() where id = $1",
                ticket_id,
                score,
            )
            await append_event(
                conn, ticket_id, ACTOR, "survey", detail={"call": uniqueid, "score": score}
            )
        return True


async def ivr_context(app: web.Application) -> AsyncIterator[None]:
    """Start the IVR (flows and FastAGI server) when ``[agi] enabled``; stop it after."""
    settings = app[SETTINGS]
    if not settings.agi.enabled:
        yield
        return
    holder = FlowHolder(settings.agi.flows)
    services: NoStoreServices
    if STORE in app:
        policy = retry_policy(settings)
        services = StoreIvrServices(app[STORE], app[CLOCK], max_attempts=policy.max_attempts)
    else:
        services = NoStoreServices(app[CLOCK])
    metrics = app.get(METRICS)
    runner = IvrRunner(holder, services, survey_observer=metrics.survey if metrics else None)
    server = AgiServer(runner, settings.agi)
    await server.start()
    app[IVR] = holder
    app[IVR_RUNNER] = runner
    app[IVR_SERVER] = server
    try:
        yield
    finally:
        await server.close()


def reload_flows(app: web.Application) -> list[str] | None:
    """Reload the flows (SIGHUP); the problems, or None when the IVR is off."""
    if IVR not in app:
        return None
    return app[IVR].reload()


api = Api()

_STATUS: Final = record(
    {
        "flows": array(string()),
        "loads": scalar("integer"),
        "failures": scalar("integer"),
        "last_error": string(nullable=True),
        "problems": array(string()),
        "sessions_active": scalar("integer"),
        "sessions_started": scalar("integer"),
        "sessions_failed": scalar("integer"),
        "hangups": scalar("integer"),
        "survey_offered": scalar("integer"),
        "survey_responses": scalar("integer"),
        "survey_response_rate": scalar("number", nullable=True),
    }
)


def _status(app: web.Application, problems: list[str]) -> dict[str, Any]:
    holder, stats, runner = app[IVR], app[IVR_SERVER].stats, app[IVR_RUNNER]
    offered = runner.survey_offered
    return {
        "flows": sorted(holder.flows.flows),
        "loads": holder.loads,
        "failures": holder.failures,
        "last_error": holder.last_error,
        "problems": problems,
        "sessions_active": stats.active,
        "sessions_started": stats.started,
        "sessions_failed": stats.failed,
        "hangups": stats.hangups,
        "survey_offered": offered,
        "survey_responses": runner.survey_responses,
        "survey_response_rate": runner.survey_responses / offered if offered else None,
    }


@api.operation(
    "GET",
    "/api/ivr",
    summary="The IVR: flows in service, reload results, sessions, survey responses",
    tag="ivr",
    response=_STATUS,
    errors=(409,),
)
async def status(request: web.Request, _: Input) -> web.Response:
    """The IVR's state since this process started (any signed-in principal)."""
    if IVR not in request.app:
        raise json_error(409, "ivr_disabled", message="the IVR is off ([agi] enabled = false)")
    return web.json_response(_status(request.app, []))


@api.operation(
    "POST",
    "/api/ivr/reload",
    summary="Reload the IVR flows (a broken set keeps the last good one in service)",
    tag="ivr",
    response=_STATUS,
    errors=(409,),
)
async def reload(request: web.Request, _: Input) -> web.Response:
    """Reload the flows; 200 with the problems (empty when the new set is in service)."""
    principal = principal_of(request)
    if not (principal.is_admin or principal.role == "integration"):
        raise json_error(403, "forbidden", message="only admins reload the IVR flows")
    if IVR not in request.app:
        raise json_error(409, "ivr_disabled", message="the IVR is off ([agi] enabled = false)")
    problems = request.app[IVR].reload()
    return web.json_response(_status(request.app, problems))
