"""The storage resource of the service: pool, migrations, open-ticket view, recorder, outbox.

:func:`store_context` starts, in order: the migrations (when
``[database] migrate_on_start``), the connection pool, the warmed
:class:`OpenTickets` view, the outbox and its writer task, the
:class:`Recorder` sink, and the reconciliation task that keeps the view in step
with the database and, after each pass, counts the overdue open tickets by
category for the ``hotline_tickets_overdue`` gauge; it stops them in reverse
order. The web application runs it as a ``cleanup_ctx`` before the engine, which
then allocates tickets with ``store.open_tickets.ticket_for`` and records facts
with ``store.recorder``.

PostgreSQL being down at start does not stop the service: the pool connects
lazily, the view starts empty and is warmed by the first reconciliation that
reaches the database, and the outbox keeps every record until it can write it.
Only an explicitly requested migration must succeed.

Before warming the view it claims the instance's ticket letter and its agent ids
for its site (:mod:`hotline.store.sites`): a letter or an agent id another site
claims refuses the start
(:class:`~hotline.store.sites.SiteConflict`); an unreachable database is retried
by the reconciliation task, and a conflict found then is kept in
``Store.site_conflict`` (``/ready`` is red).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

import asyncpg
import structlog

from hotline.clock import Clock, SystemClock
from hotline.config import Settings
from hotline.store.db import Pool, create_pool
from hotline.store.migrate import migrate, migrations_dir
from hotline.store.opentickets import OpenTickets
from hotline.store.outbox import Outbox
from hotline.store.records import Recorder, apply_records
from hotline.store.rollup import configure_rollup_at_start
from hotline.store.rules import CATEGORIES, RetryPolicy
from hotline.store.sites import SiteConflict, claim_agents, claim_letter
from hotline.store.tickets import TicketFilter, Tickets
from hotline.ticketno import TicketNumbers

__all__ = [
    "OverdueSink",
    "Store",
    "claim_site",
    "count_overdue",
    "reconcile_once",
    "store_context",
]

log = structlog.get_logger("hotline.store")

_SLACK: Final = timedelta(seconds=60)
"""Reconciliation re-reads this far back: a transaction may commit after a pass that
started later than its ``updated_at``."""

OverdueSink = Callable[[Mapping[str, int]], None]
"""Takes the overdue open tickets by category (``Metrics.set_overdue``)."""


@dataclass(slots=True)
class Store:
    """What :func:`store_context` provides."""

    pool: Pool
    open_tickets: OpenTickets
    outbox: Outbox
    recorder: Recorder
    tickets: Tickets
    reconciled_at: datetime | None = None
    site_claimed: bool = False
    site_conflict: str | None = None

    def stats(self) -> dict[str, Any]:
        """Figures for health and metrics."""
        return {
            "outbox": self.outbox.stats(),
            "open_tickets": len(self.open_tickets),
            "reconciled_at": self.reconciled_at.isoformat() if self.reconciled_at else None,
        }


def retry_policy(settings: Settings) -> RetryPolicy:
    """The callback retry rules of ``[tickets]``."""
    tickets = settings.tickets
    return RetryPolicy(
        max_attempts=tickets.callback_max_attempts,
        delays=tickets.callback_retry_delays,
        busy_delay=tickets.callback_busy_delay,
    )


async def reconcile_once(store: Store, now: float) -> None:
    """One reconciliation pass: a full warm-up the first time, then the tickets changed
    since the previous pass (with a safety margin)."""
    async with store.pool.acquire() as conn:
        moment: datetime = await conn.fetchval("select now()")
        since = store.reconciled_at - _SLACK if store.reconciled_at is not None else None
        states = await Tickets(conn).states(changed_since=since)
    store.open_tickets.load(states)
    store.open_tickets.prune(now)
    store.reconciled_at = moment


async def count_overdue(store: Store, now: float) -> dict[str, int]:
    """The tickets overdue at ``now`` (the repository's rule: due, not replied, not closed),
    by category; every category is present."""
    at = datetime.fromtimestamp(now, UTC)
    return {
        category: await store.tickets.count(TicketFilter(overdue_at=at, category=category))
        for category in CATEGORIES
    }


async def _reconcile_and_count(store: Store, clock: Clock, overdue: OverdueSink | None) -> None:
    await reconcile_once(store, clock.now())
    if overdue is not None:
        overdue(await count_overdue(store, clock.now()))


async def claim_site(store: Store, settings: Settings) -> None:
    """Claim this instance's ticket letter and agent ids for its site
    (:mod:`hotline.store.sites`) once;
    a conflict found after the start (the database was down then) is kept in
    ``site_conflict`` for ``/ready`` and logged."""
    if store.site_claimed or store.site_conflict is not None:
        return
    service = settings.service
    try:
        await claim_letter(store.pool, service.instance, service.pbx_id)
        await claim_agents(store.pool, service.pbx_id, list(settings.agents))
    except SiteConflict as exc:
        store.site_conflict = str(exc)
        log.error("store.site_conflict", error=str(exc))
        raise
    store.site_claimed = True


async def _reconcile_forever(
    store: Store, clock: Clock, interval: float, overdue: OverdueSink | None, settings: Settings
) -> None:
    while True:
        await clock.sleep(interval)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the pass completes, and this loop then never ends (a hung shutdown).
            with contextlib.suppress(SiteConflict):  # kept in store.site_conflict
                async with asyncio.timeout(30.0):
                    await claim_site(store, settings)
            async with asyncio.timeout(30.0):
                await _reconcile_and_count(store, clock, overdue)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("store.reconcile_failed", error=f"{type(exc).__name__}: {exc}")


@asynccontextmanager
async def store_context(
    settings: Settings,
    numbers: TicketNumbers,
    *,
    clock: Clock | None = None,
    warm_timeout: float = 10.0,
    overdue: OverdueSink | None = None,
) -> AsyncIterator[Store]:
    """Storage for ``settings`` (which must have a database URL); see the module docstring.

    ``clock`` (the engine's) dates the attach rule's "recent" and what is overdue;
    ``reconcile_interval`` is in its seconds. ``overdue`` gets the overdue counts
    after each reconciliation (on the store's task, never the engine's).
    """
    clock = clock or SystemClock()
    dsn = settings.database_url.reveal()
    database = settings.database
    if database.migrate_on_start:
        applied = await migrate(dsn, migrations_dir(settings))
        log.info("store.migrated", applied=[m.name for m in applied])
    pool = await create_pool(dsn, max_size=database.pool_size)
    try:
        await configure_rollup_at_start(pool, settings)
        open_tickets = OpenTickets(
            numbers.allocate, rule=settings.tickets.attach, attach_days=settings.tickets.attach_days
        )
        outbox = Outbox(
            pool,
            partial(apply_records, policy=retry_policy(settings)),
            database.outbox_dir,
            max_memory=database.outbox_max_memory,
            batch_size=database.outbox_batch,
            max_held=database.outbox_max_held,
        )
        store = Store(
            pool=pool,
            open_tickets=open_tickets,
            outbox=outbox,
            recorder=Recorder(
                outbox.put,
                ring_cadence=settings.routing.ring_cadence,
                monitor_dir=settings.tickets.monitor_dir,
                site=settings.service.pbx_id,
            ),
            tickets=Tickets(
                pool,
                complaint_reply_hours=settings.tickets.complaint_reply_hours,
                listener=open_tickets.observe,
            ),
        )
        try:  # a site conflict refuses the start; an unreachable database is retried later
            async with asyncio.timeout(warm_timeout):
                await claim_site(store, settings)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("store.site_claim_failed", error=f"{type(exc).__name__}: {exc}")
        try:
            async with asyncio.timeout(warm_timeout):
                await _reconcile_and_count(store, clock, overdue)
            log.info("store.warmed", open_tickets=len(open_tickets))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("store.warm_failed", error=f"{type(exc).__name__}: {exc}")
        outbox.start()
        reconciler = asyncio.create_task(
            _reconcile_forever(store, clock, database.reconcile_interval, overdue, settings),
            name="store-reconcile",
        )
        try:
            yield store
        finally:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
            await outbox.close()
    finally:
        await _close_pool(pool)


POOL_CLOSE_TIMEOUT: Final = 5.0
"""Seconds a stopping store waits for its connections to close gracefully."""


async def _close_pool(pool: Pool) -> None:
    """Close the pool; with the database unreachable (a query stalled on a dead link, a
    cancelled query's cancel request), terminate its connections after
    :data:`POOL_CLOSE_TIMEOUT` instead of waiting out each command's timeout: a process
    stepping down for a lost database must exit at once (the outbox has spilled)."""
    try:
        async with asyncio.timeout(POOL_CLOSE_TIMEOUT):
            await pool.close()
    except TimeoutError:
        log.warning("store.pool_close_timeout", seconds=POOL_CLOSE_TIMEOUT)
        pool.terminate()
