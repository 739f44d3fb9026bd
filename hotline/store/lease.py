"""The router lease: one active instance per PBX (``[service] pbx_id``), fenced by an epoch.

Theory of operation
-------------------
Instances configured with the same ``pbx_id`` compete for one ``leases`` row in
PostgreSQL (migration ``0006_failover.sql``). Taking the row (free, released, or
expired by the *database's* clock) increments its ``epoch``; the holder renews
``expires_at = now() + ttl`` every ``ttl / 3`` seconds on a dedicated connection
(not the pool, which the outbox may saturate). A row and not an advisory lock:
an advisory lock is held by a connection, so a paused (``SIGSTOP``) or
half-partitioned active whose TCP connection stays open would keep it for ever;
an expiry bounds every failure, and the epoch comes with it.

The holder believes it holds the lease only until ``sent + ttl * SAFETY`` on its
own monotonic clock, where ``sent`` is when the last successful renewal was
*sent*: the database's expiry is later than that, so the holder stops acting
before anybody else can take over (given clocks that run at the same rate).
:attr:`Lease.active` compares the monotonic clock with that bound on every call,
so a process that wakes from a pause is not active from its first instruction,
before its lease task has even run. Once an active has lost its lease it never
becomes active again in the same process (:attr:`Lease.fenced`): its in-memory
model is stale; ``hotline serve`` exits with :data:`EXIT_FENCED` and the
supervisor starts it afresh, as a standby.

A standby tries to take the row every ``ttl / 6`` seconds, and at once when
the holder releases it (``NOTIFY hotline_lease`` on a graceful stop). A database
that cannot be reached is retried at the same pace; for a holder that is a
lost renewal, and a lost lease when the bound passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

import asyncpg
import structlog

__all__ = ["EXIT_FENCED", "SAFETY", "Lease", "LeaseRole"]

log = structlog.get_logger("hotline.store.lease")

EXIT_FENCED: Final = 5
"""``hotline serve``'s exit status when this instance lost the lease it held (stepped down)."""

SAFETY: Final = 0.8
"""The fraction of the ttl after a renewal was sent for which the holder believes it holds."""

LeaseRole = str
"""``"active"``, ``"standby"`` or ``"fenced"`` (held, then lost: never active again)."""

_ACQUIRE: Final = """
insert into leases as l (pbx_id, holder, epoch, acquired_at, expires_at)
values ($1, $2, 1, now(), now() + make_interval(secs => $3))
on conflict (pbx_id) do update
    set holder = excluded.holder, epoch = l.epoch + 1, acquired_at = now(),
        expires_at = excluded.expires_at
    where l.expires_at < now()
returning epoch, acquired_at
"""
_RENEW: Final = """
update leases set expires_at = now() + make_interval(secs => $4)
where pbx_id = $1 and holder = $2 and epoch = $3 and expires_at >= now()
returning epoch
"""
_RELEASE: Final = """
update leases set expires_at = now() - interval '1 second'
where pbx_id = $1 and holder = $2 and epoch = $3
"""
_CHANNEL: Final = "hotline_lease"


class Lease:
    """One instance's side of the lease for ``pbx_id``; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        pbx_id: str,
        *,
        ttl: float = 3.0,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``holder`` names this instance in the row (default: host name and a random id)."""
        if ttl <= 0:
            raise ValueError("the lease ttl must be positive")
        self.dsn = dsn
        self.pbx_id = pbx_id
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self._monotonic = monotonic
        self.epoch = 0
        self._valid_until = 0.0
        self.fenced = False
        self.takeovers = 0
        self.last_takeover: datetime | None = None
        self.became_active = asyncio.Event()
        self.stepped_down = asyncio.Event()
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    # -- what the engine and the endpoints read --------------------------------------------

    @property
    def active(self) -> bool:
        """True while this instance holds the lease by its own clock (checked on each call)."""
        if self.fenced or not self.epoch:
            return False
        if self._monotonic() < self._valid_until:
            return True
        self._lose("the lease ran out before a renewal succeeded")
        return False

    @property
    def role(self) -> LeaseRole:
        """``active``, ``standby`` or ``fenced``."""
        if self.active:
            return "active"
        return "fenced" if self.fenced else "standby"

    def current_epoch(self) -> int:
        """The epoch this instance writes with (0 before it first held the lease)."""
        return self.epoch

    # -- the task --------------------------------------------------------------------------

    def start(self) -> None:
        """Start competing for (and then renewing) the lease in a task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lease-{self.pbx_id}")

    async def close(self) -> None:
        """Stop; a holder releases the lease at once (a graceful hand-over)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.active and self._conn is not None and not self._conn.is_closed():
            try:
                async with asyncio.timeout(self.ttl):
                    await self._conn.execute(_RELEASE, self.pbx_id, self.holder, self.epoch)
                    await self._conn.execute("select pg_notify($1, $2)", _CHANNEL, self.pbx_id)
                log.info("lease.released", pbx_id=self.pbx_id, epoch=self.epoch)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("lease.release_failed", error=f"{type(exc).__name__}: {exc}")
        self.fenced = self.fenced or bool(self.epoch)
        await self._disconnect()

    async def _run(self) -> None:
        while not self.fenced:
            try:
                if self.epoch:
                    await self._renew()
                else:
                    await self._try_acquire()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("lease.database_error", error=f"{type(exc).__name__}: {exc}")
                await self._disconnect()
            if self.epoch:
                if not self.active:  # the bound passed without a renewal: stepped down
                    return
                await asyncio.sleep(self.ttl / 3)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.ttl / 6):
                        await self._wake.wait()

    async def _connection(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            conn = await asyncpg.connect(self.dsn, timeout=self.ttl / 3)
            self._conn = conn
            self._listening = False
        if not self._listening and not self.epoch:
            await self._conn.add_listener(_CHANNEL, self._notified)
            self._listening = True
        return self._conn

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()

    async def _try_acquire(self) -> None:
        async with asyncio.timeout(self.ttl / 3):
            conn = await self._connection()
            sent = self._monotonic()
            row = await conn.fetchrow(_ACQUIRE, self.pbx_id, self.holder, self.ttl)
        if row is None:
            return
        self.epoch = int(row["epoch"])
        self._valid_until = sent + self.ttl * SAFETY
        self.takeovers += 1
        self.last_takeover = row["acquired_at"]
        log.info("lease.acquired", pbx_id=self.pbx_id, epoch=self.epoch, holder=self.holder)
        self.became_active.set()

    async def _renew(self) -> None:
        # A slow renewal may take as long as the lease still holds (a loaded database).
        async with asyncio.timeout(max(self.ttl / 3, self._valid_until - self._monotonic())):
            conn = await self._connection()
            sent = self._monotonic()
            epoch = await conn.fetchval(_RENEW, self.pbx_id, self.holder, self.epoch, self.ttl)
        if epoch is None:
            self._lose("another instance holds the lease")
            return
        if self._monotonic() < self._valid_until:  # not while paused past the bound
            self._valid_until = sent + self.ttl * SAFETY

    def _lose(self, why: str) -> None:
        if self.fenced:
            return
        self.fenced = True
        log.error("lease.lost", pbx_id=self.pbx_id, epoch=self.epoch, reason=why)
        self.stepped_down.set()
