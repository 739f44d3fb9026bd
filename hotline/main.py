"""The composition root: the one place that builds and wires the service.

:func:`create_app` makes the aiohttp application and starts, as ``cleanup_ctx``
entries in this order, the AMI client, the store (:mod:`hotline.store.resources`), the
sessions, the engine task with its router, metrics, persisted agent states and callback
scheduler, and finally the AMI connection; each entry's cleanup runs exactly when its
startup succeeded. The HTTP surface it serves is :mod:`hotline.web.app`.

Each resource (the AMI client, the store, the sessions, the engine task) is one
``cleanup_ctx`` entry, so its cleanup runs exactly when its startup succeeded. The engine
subscribes to the AMI client before the client connects, so it never misses a
``Connected``. When a database is configured, the store starts before the engine:
the engine then takes ticket numbers from the store's open-ticket view and
records its facts through the store's outbox. Before the engine task starts, the
agents' persisted states and sticky history are restored
(:mod:`hotline.store.agentstate`). The metrics (on their own
registry) count the engine's facts and read its live state at each scrape of
``/metrics``. The JSON API (:mod:`hotline.web.auth` and the modules it guards)
answers errors as JSON (:mod:`hotline.web.errors`) and describes itself at
``/api/openapi.json``; only ``/health`` (liveness), ``/ready`` (readiness,
:mod:`hotline.web.ready`), ``/metrics``, that document and the login are served
without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry

from hotline.ami.client import AmiClient
from hotline.clock import Clock, SystemClock
from hotline.config import Settings
from hotline.domain.model import AgentPresence
from hotline.domain.routing import Router
from hotline.engine import Engine, FactSink
from hotline.ivr import service as ivr
from hotline.prometheus import Metrics
from hotline.store.agentstate import PersistedAgents, open_agent_state
from hotline.store.lease import Lease
from hotline.store.resources import store_context
from hotline.store.scheduler import CallbackScheduler
from hotline.ticketno import FileSequenceStore, MemorySequenceStore, SequenceStore, TicketNumbers
from hotline.web import auth, desk_feed, live
from hotline.web.app import MIDDLEWARES, install
from hotline.web.errors import security_headers
from hotline.web.keys import (
    AMI,
    CALLBACKS_DUE,
    CLOCK,
    ENGINE,
    LEASE,
    METRICS,
    SETTINGS,
    STORE,
    TICKET_NUMBERS,
)
from hotline.web.live_sites import sites_context
from hotline.web.panels import spy_relay_context

__all__ = ["create_app"]


def _sequence_store(settings: Settings) -> SequenceStore:
    if settings.service.state_dir == ":memory:":
        return MemorySequenceStore()
    return FileSequenceStore(f"{settings.service.state_dir}/ticket-sequence.json")


def _ticket_numbers(settings: Settings) -> TicketNumbers:
    return TicketNumbers(
        settings.service.instance, settings.service.zone, _sequence_store(settings)
    )


async def _wake_when_active(lease: Lease, engine: Engine) -> None:
    await lease.became_active.wait()
    engine.wake()


async def _when_active(lease: Lease | None, work: Coroutine[object, object, None]) -> None:
    """Run ``work`` once this instance routes (a standby's scheduler would submit to nobody)."""
    if lease is not None:
        try:
            await lease.became_active.wait()
        except asyncio.CancelledError:
            work.close()
            raise
    await work


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    sinks: Sequence[FactSink] = (),
) -> web.Application:
    """The application: AMI client, store, sessions, engine task, the JSON API, health and
    metrics endpoints."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=1024 * 1024)
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app[CALLBACKS_DUE] = asyncio.Event()
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics(settings, CollectorRegistry(), clock=app[CLOCK])
    hub = live.new_hub(app)

    async def ami_client(app: web.Application) -> AsyncIterator[None]:
        app[AMI] = AmiClient(settings.ami, name=f"hotline-{settings.service.instance}")
        yield
        await app[AMI].close()

    async def store(app: web.Application) -> AsyncIterator[None]:
        if not settings.database_url:
            yield
            return
        app[TICKET_NUMBERS] = _ticket_numbers(settings)
        async with store_context(
            settings, app[TICKET_NUMBERS], clock=app[CLOCK], overdue=app[METRICS].set_overdue
        ) as store:
            app[STORE] = store
            yield

    async def engine(app: web.Application) -> AsyncIterator[None]:
        allocate: Callable[[str, float], str]
        engine_sinks: list[FactSink]
        if STORE in app:
            numbers = app[TICKET_NUMBERS]
            allocate = app[STORE].open_tickets.ticket_for
            engine_sinks = [*sinks, app[STORE].recorder]
        else:
            allocate = numbers = _ticket_numbers(settings)
            engine_sinks = list(sinks)
        engine_sinks.extend([app[METRICS].sink, hub.sink])
        router = Router(
            settings.routing,
            dict(settings.queues),
            settings.agents.values(),
            allocate,
            boot_id=secrets.token_hex(4),  # offer ids unique across processes (contract §2.8)
        )
        persisted = await open_agent_state(settings, app.get(STORE), router, app[CLOCK])
        engine_sinks.extend(persisted.sinks)
        lease = None
        if settings.service.pbx_id and STORE in app:  # an active/standby pair (issue 14)
            lease = app[LEASE] = Lease(
                settings.database_url.reveal(),
                settings.service.pbx_id,
                ttl=settings.service.lease_ttl,
                holder=f"{settings.service.instance}-{router.boot_id}",
            )
            app[STORE].recorder.epoch = lease.current_epoch

        async def reload() -> tuple[list[AgentPresence], dict[str, tuple[str, float]]]:
            again: PersistedAgents = await open_agent_state(
                settings, app.get(STORE), router, app[CLOCK]
            )
            return list(again.states), dict(again.sticky)

        app[ENGINE] = Engine(
            router,
            app[AMI],
            app[CLOCK],
            sinks=engine_sinks,
            ticket_numbers=numbers,
            lease=lease,
            reload=reload,
            durable=(lambda: app[STORE].outbox.in_memory == 0) if STORE in app else None,
        )
        app[ENGINE].restore(persisted.states, persisted.sticky)
        outbox = app[STORE].outbox if STORE in app else None
        app[METRICS].watch(
            app[ENGINE],
            outbox_backlog=(lambda: outbox.backlog) if outbox else None,
            outbox_dropped=(lambda: outbox.dropped) if outbox else None,
            lease=lease,
        )
        tasks = [asyncio.create_task(app[ENGINE].run(), name="engine")]
        if lease is not None:
            lease.start()
            tasks.append(asyncio.create_task(_wake_when_active(lease, app[ENGINE]), name="wake"))
        if STORE in app:
            scheduler = CallbackScheduler(
                app[STORE].pool,
                app[ENGINE].submit,
                app[CLOCK],
                interval=settings.tickets.callback_poll_interval,
                default_queue=settings.routing.default_queue,
                site=settings.service.pbx_id or None,  # several sites: its own callbacks
                woken=app[CALLBACKS_DUE],
            )
            tasks.append(
                asyncio.create_task(_when_active(lease, scheduler.run()), name="callback-scheduler")
            )
        yield
        if lease is not None:
            await lease.close()  # a graceful stop hands the lease over at once
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await persisted.close()

    async def connect(app: web.Application) -> AsyncIterator[None]:
        await app[AMI].start()
        yield

    app.cleanup_ctx.extend(
        [
            ami_client,
            store,
            auth.sessions_context,
            engine,
            live.live_context,
            desk_feed.desk_feed_context,
            spy_relay_context,
            sites_context,
            connect,
        ]
    )
    app.cleanup_ctx.append(ivr.ivr_context)
    install(app)
    return app
