"""A Redis pub/sub channel shared by the instances of a centre: bounded publication, and a
subscriber that re-subscribes after an error (used by :mod:`hotline.web.desk_feed` and
:mod:`hotline.web.ask_feed`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

__all__ = ["RETRY_MAX", "RETRY_MIN", "follow"]

log = structlog.get_logger("hotline.web.redis_channel")

RETRY_MIN: Final = 0.05
"""Wall seconds before the first re-subscription after an error (doubled each time)."""
RETRY_MAX: Final = 2.0
"""The longest wait between two attempts to subscribe."""


async def follow(
    client: aioredis.Redis,
    channel: str,
    on_message: Callable[[bytes], None],
    *,
    subscribed: asyncio.Event,
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Read ``channel`` until cancelled, handing each message's data to ``on_message`` (a
    message it cannot parse, ``ValueError``/``KeyError``/``TypeError``, is skipped). After
    each (re-)subscription ``on_subscribed`` runs (e.g. reading a copy kept beside the
    channel), then ``subscribed`` is set; it is cleared while re-subscribing. A Redis or
    socket error is handed to ``on_error`` and retried after a growing back-off."""
    retry = RETRY_MIN
    while True:
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            if on_subscribed is not None:
                await on_subscribed()
            subscribed.set()
            retry = RETRY_MIN
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None and message.get("type") == "message":
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        on_message(message["data"])
        except (RedisError, OSError) as exc:
            if on_error is not None:
                on_error(exc)
            log.warning("web.channel_failed", channel=channel, error=f"{type(exc).__name__}: {exc}")
        finally:
            subscribed.clear()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(retry)
        retry = min(retry * 2, RETRY_MAX)
