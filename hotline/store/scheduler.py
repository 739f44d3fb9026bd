"""Due callbacks from PostgreSQL into the engine, without the engine ever waiting on it.

A task polls the scheduled callbacks that are due (every ``callback_poll_interval``
seconds of the engine's clock) and submits each to the engine as a
:class:`~hotline.domain.events.CallbackDue` for attempt ``attempts + 1``. The
router then treats it as a low-priority demand for an agent with the queue's
skills (or the assigned agent); its result comes back as a fact and is written
through the outbox, which advances ``attempts`` and applies the retry rules.

A callback is submitted again only once the database shows the previous
attempt recorded, so a slow write never causes a second ring. This is a single
instance's view: two instances of one site would each submit the same callback
(only a site's active runs its scheduler). Several sites on one database each
run one: a scheduler with a ``site`` submits only that site's callbacks, after
claiming those of no site yet (:meth:`Callbacks.claim`), so no callback is
dialled by two sites. :meth:`CallbackScheduler.wake` ends the wait at once (a
click-to-call is due now: the agent's phone need not wait for the next poll;
the web app sets the event it was given, ``woken``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from hotline.clock import Clock
from hotline.domain.events import CallbackDue
from hotline.store.callbacks import Callbacks
from hotline.store.db import Pool

__all__ = ["CallbackScheduler"]

log = structlog.get_logger("hotline.store.scheduler")


class CallbackScheduler:
    """Submits due callbacks to the engine; see the module docstring."""

    def __init__(
        self,
        pool: Pool,
        submit: Callable[[CallbackDue], None],
        clock: Clock,
        *,
        interval: float,
        default_queue: str,
        batch: int = 100,
        site: str | None = None,
        woken: asyncio.Event | None = None,
    ) -> None:
        """``submit`` hands an event to the engine (it must not block); ``site`` is the
        ``[service] pbx_id`` whose callbacks it dials (``None``: every callback); setting
        ``woken`` is :meth:`wake`."""
        self.site = site
        self.pool = pool
        self.submit = submit
        self.clock = clock
        self.interval = interval
        self.default_queue = default_queue
        self.batch = batch
        self._attempt_in_flight: dict[int, int] = {}
        self._woken = woken if woken is not None else asyncio.Event()

    def wake(self) -> None:
        """Poll now instead of at the end of the interval (nothing if not running)."""
        self._woken.set()

    async def poll(self) -> int:
        """Submit every callback due now whose previous attempt is recorded; how many."""
        now = self.clock.now()
        callbacks = Callbacks(self.pool)
        due = await callbacks.due(
            datetime.fromtimestamp(now, UTC), limit=self.batch, site=self.site
        )
        count = 0
        for callback in due:
            attempt = callback.attempts + 1
            if self._attempt_in_flight.get(callback.id, 0) >= attempt:
                continue
            if self.site is not None and not await callbacks.claim(callback.id, self.site):
                continue  # another site claimed it first
            self._attempt_in_flight[callback.id] = attempt
            self.submit(
                CallbackDue(
                    at=now,
                    source="recv",
                    callback_id=callback.id,
                    ticket=callback.ticket_number,
                    number=callback.phone,
                    queue=callback.queue or self.default_queue,
                    attempt=attempt,
                    assigned_agent=callback.assigned_to,
                )
            )
            count += 1
        return count

    async def run(self) -> None:
        """Poll until cancelled; a database error is logged and the next poll retries."""
        while True:
            try:
                await self.poll()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("store.callback_poll_failed", error=f"{type(exc).__name__}: {exc}")
            await self._pause()

    async def _pause(self) -> None:
        """Wait ``interval`` on the clock, or until :meth:`wake`."""
        if not self._woken.is_set():
            sleeping = asyncio.ensure_future(self.clock.sleep(self.interval))
            woken = asyncio.ensure_future(self._woken.wait())
            try:
                await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Cancelled, never awaited: awaiting them here would swallow a cancellation
                # of this task that arrived meanwhile, and the loop would poll for ever.
                sleeping.cancel()
                woken.cancel()
        self._woken.clear()
