"""Desk facts (escalations, handover notes) on the live feed, on every instance.

Theory of operation
-------------------
A desk fact is made by a web handler (:mod:`hotline.web.desk`), on whichever
instance served the request, not by the engine: so it does not travel with the
active's views (:mod:`hotline.web.live_relay`). :func:`push` hands it to this
instance's pages at once (:meth:`hotline.web.live.LiveHub.push_desk`) and, with
``[redis] url`` and ``[service] pbx_id``, publishes it on the channel
``<prefix>live:<pbx_id>:desk`` with this process's origin id; every other
instance's subscriber (:func:`desk_feed_context`) hands it to its own pages.
The message carries what the filter needs (:class:`Audience`), so every
instance filters it for its pages by role and queue exactly as the origin does.

Best effort across instances: a publication that fails (Redis down) or a
message lost while a subscriber reconnects is not replayed; the lists are
fetched again on every snapshot, which a page gets when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Final

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from hotline.web.auth import Principal
from hotline.web.keys import SETTINGS
from hotline.web.live import HUB
from hotline.web.redis_channel import follow

__all__ = [
    "DESK_CHANNEL",
    "DESK_FEED",
    "PUBLISH_TIMEOUT",
    "Audience",
    "DeskFeed",
    "desk_feed_context",
    "push",
]

log = structlog.get_logger("hotline.web.desk_feed")

PUBLISH_TIMEOUT: Final = 1.0
"""Wall seconds a handler waits for Redis to take a desk fact before giving up on it."""
DESK_CHANNEL: Final = "live:{pbx_id}:desk"
"""The channel, under ``[redis] prefix``."""


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may be sent a desk fact, as data (it crosses instances).

    ``queues``: the queues it concerns (an agent of one of them sees it); ``every_queue``:
    any agent sees it (a note for everyone); ``owners``: names or agent ids who see it
    whatever their queues; ``excluded``: the user name that is never sent it (a note's
    author). Supervising roles see everything but ``excluded``.
    """

    queues: tuple[str, ...] = ()
    every_queue: bool = False
    owners: tuple[str, ...] = ()
    excluded: str | None = None

    def admits(self, principal: Principal) -> bool:
        """Whether ``principal``'s pages get the fact."""
        if principal.name == self.excluded:
            return False
        scope = principal.scope
        if scope is None or self.every_queue:
            return True
        if set(self.queues) & set(principal.queues):
            return True
        return bool(set(self.owners) & {*scope.owners, principal.name})


class DeskFeed:
    """This instance's side of the desk channel."""

    def __init__(self, client: aioredis.Redis, *, channel: str, deliver: Any) -> None:
        """Publish to and read ``channel``; ``deliver(kind, payload, audience)`` hands a
        fact from another instance to this one's pages."""
        self.client = client
        self.channel = channel
        self.origin = secrets.token_hex(8)
        self.deliver = deliver
        self.published = 0
        self.received = 0
        self.errors = 0
        self.subscribed = asyncio.Event()
        """Set once the channel is subscribed (cleared while re-subscribing)."""

    async def publish(self, kind: str, payload: dict[str, Any], audience: Audience) -> None:
        """Send the fact to the other instances (best effort, bounded wait)."""
        message = json.dumps(
            {"origin": self.origin, "kind": kind, "payload": payload, "audience": asdict(audience)}
        )
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self.client.publish(self.channel, message)
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            log.warning("web.desk_publish_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.published += 1

    def on_message(self, data: bytes) -> None:
        """Deliver another instance's fact to this instance's pages."""
        message = json.loads(data)
        if message.get("origin") == self.origin:
            return
        given = message["audience"]
        audience = Audience(
            queues=tuple(given["queues"]),
            every_queue=bool(given["every_queue"]),
            owners=tuple(given["owners"]),
            excluded=given["excluded"],
        )
        self.received += 1
        self.deliver(message["kind"], message["payload"], audience)

    async def run(self) -> None:
        """Read the channel until cancelled; re-subscribe after an error."""
        await follow(
            self.client,
            self.channel,
            self.on_message,
            subscribed=self.subscribed,
            on_error=self._failed,
        )

    def _failed(self, _: BaseException) -> None:
        self.errors += 1


DESK_FEED: Final = web.AppKey("desk_feed", DeskFeed)
"""The instance's desk channel, when the feed is shared through Redis."""


def _deliver_local(
    app: web.Application, kind: str, payload: dict[str, Any], audience: Audience
) -> None:
    hub = app.get(HUB)
    if hub is not None:
        hub.push_desk(kind, payload, audience.admits)


async def push(
    request: web.Request, kind: str, payload: dict[str, Any], audience: Audience
) -> None:
    """Send a desk fact to the pages ``audience`` admits, here and on the other instances."""
    _deliver_local(request.app, kind, payload, audience)
    feed = request.app.get(DESK_FEED)
    if feed is not None:
        await feed.publish(kind, payload, audience)


async def desk_feed_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: with ``[redis] url`` and ``[service] pbx_id``, the desk channel's
    subscriber (see the module docstring); nothing otherwise."""
    settings = app[SETTINGS]
    if not (settings.redis_url and settings.service.pbx_id):
        yield
        return
    client = aioredis.Redis.from_url(settings.redis_url.reveal())
    channel = settings.redis_prefix + DESK_CHANNEL.format(pbx_id=settings.service.pbx_id)
    feed = app[DESK_FEED] = DeskFeed(
        client,
        channel=channel,
        deliver=lambda kind, payload, audience: _deliver_local(app, kind, payload, audience),
    )
    task = asyncio.create_task(feed.run(), name="desk-feed")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
