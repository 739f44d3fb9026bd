"""The agents' "ask a supervisor" requests, shared by every instance of the centre.

Theory of operation
-------------------
An ask is raised by the instance that routes the agent's call (the agent's panel
asks it, :mod:`hotline.web.wall`), but any supervisor, on any instance of any
site, may answer or dismiss it. With ``[redis] url`` and ``[service] pbx_id``
each instance's :class:`~hotline.web.wall.AlertCenter` shares its asks here:

- the copy: the hash ``<prefix>live:asks`` (field: the ask's id, value: its alert
  as the feed sends it, with its ``site``), expiring :data:`ASK_TTL` seconds after
  the last ask raised, so a forgotten one cannot outlive a working day;
- the changes: ``{"op": "raise", "ask": {...}}`` or ``{"op": "resolve", "id": ...}``
  on the channel ``<prefix>live:asks:changes``, each written with its change to the
  hash in one ``MULTI``.

Every instance subscribes, then reads the whole hash (so an instance that starts,
or reconnects to Redis, gets the asks open now) and applies the changes that
follow; applying is idempotent (an ask raised twice is one ask, a resolved one
stays resolved), so a change that arrives while the copy is read does no harm.
An instance's own changes are queued (never waiting in the request) and written
in order by one task, retried after a Redis error; the instance's own board is
changed at once. The prefix is the centre's: every site shares the one hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from hotline.web.redis_channel import RETRY_MAX, RETRY_MIN, follow

__all__ = ["ASK_TTL", "PENDING_LIMIT", "AskFeed", "AskHolder"]

log = structlog.get_logger("hotline.web.ask_feed")

ASK_TTL: Final = 8 * 3600
"""Seconds the copy of the asks lives after the last one raised."""
PENDING_LIMIT: Final = 1000
"""Changes kept for Redis while it cannot be reached (the oldest are dropped beyond)."""


class AskHolder(Protocol):
    """What the feed keeps up to date: an instance's alert centre."""

    def adopt(self, ask: dict[str, Any]) -> None:
        """Hold this ask (as the feed sends it)."""
        ...  # pragma: no cover

    def forget(self, ask_id: str) -> None:
        """Drop this ask."""
        ...  # pragma: no cover

    def adopt_all(self, asks: list[dict[str, Any]]) -> None:
        """Hold exactly these asks."""
        ...  # pragma: no cover


class AskFeed:
    """One instance's side of the shared asks; see the module docstring."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, holder: AskHolder) -> None:
        self.client = client
        self.key = f"{prefix}live:asks"
        self.channel = f"{prefix}live:asks:changes"
        self.holder = holder
        self.origin = secrets.token_hex(8)
        self.published = 0
        self.received = 0
        self.errors = 0
        self.subscribed = asyncio.Event()
        """Set once the channel is subscribed and the copy read (cleared while re-subscribing)."""
        self._pending: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()

    # -- this instance's changes -------------------------------------------------------

    def raised(self, ask: dict[str, Any]) -> None:
        """Share an ask raised here (queued; never waits)."""
        self._queue({"op": "raise", "ask": ask})

    def resolved(self, ask_id: str) -> None:
        """Share that an ask was resolved here (queued; never waits)."""
        self._queue({"op": "resolve", "id": ask_id})

    def _queue(self, change: dict[str, Any]) -> None:
        if len(self._pending) >= PENDING_LIMIT:
            dropped = self._pending.popleft()
            log.warning("web.ask_change_dropped", op=dropped["op"])
        self._pending.append(change)
        self._ready.set()

    async def run_writer(self) -> None:
        """Write the queued changes in order, until cancelled; retry after an error."""
        delay = RETRY_MIN
        while True:
            await self._ready.wait()
            while self._pending:
                change = self._pending[0]
                try:
                    await self._write(change)
                except (RedisError, OSError) as exc:
                    self.errors += 1
                    log.warning("web.ask_write_failed", error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_MIN
                if self._pending and self._pending[0] is change:
                    self._pending.popleft()
                self.published += 1
            self._ready.clear()

    async def _write(self, change: dict[str, Any]) -> None:
        message = json.dumps({"origin": self.origin, **change})
        async with asyncio.timeout(RETRY_MAX * 2), self.client.pipeline(transaction=True) as pipe:
            if change["op"] == "raise":
                pipe.hset(self.key, change["ask"]["id"], json.dumps(change["ask"]))
                pipe.expire(self.key, ASK_TTL)
            else:
                pipe.hdel(self.key, change["id"])
            pipe.publish(self.channel, message)
            await pipe.execute()

    # -- every instance's side ---------------------------------------------------------

    async def read_copy(self) -> None:
        """Hold exactly the asks of the copy (after subscribing: a snapshot)."""
        stored = await self.client.hgetall(self.key)
        asks = []
        for value in stored.values():
            with contextlib.suppress(ValueError):
                asks.append(json.loads(value))
        self.holder.adopt_all(asks)

    def on_message(self, data: bytes) -> None:
        """Apply one change (ours too: applying is idempotent)."""
        message = json.loads(data)
        if message.get("origin") != self.origin:
            self.received += 1
        if message["op"] == "raise":
            self.holder.adopt(message["ask"])
        elif message["op"] == "resolve":
            self.holder.forget(str(message["id"]))

    async def run(self) -> None:
        """Subscribe (reading the copy each time) and write this instance's changes, until
        cancelled."""
        writer = asyncio.create_task(self.run_writer(), name="ask-writer")
        try:
            await follow(
                self.client,
                self.channel,
                self.on_message,
                subscribed=self.subscribed,
                on_subscribed=self.read_copy,
                on_error=self._failed,
            )
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _failed(self, _: BaseException) -> None:
        self.errors += 1
