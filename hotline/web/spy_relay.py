"""Listen, whisper and barge forwarded to the instance that routes the agent's site.

Theory of operation
-------------------
A supervisor's ChanSpy Originate (:mod:`hotline.web.panels`) must leave from the
instance holding the lease of the agent's PBX: a standby's actions are fenced (it
does not route; only the active acts on the PBX), and another site's instance
has no connection to that PBX at all. With ``[redis] url`` and ``[service]
pbx_id``, an instance that is not the active of the agent's site forwards the
request instead: it publishes ``{"id", "reply", "agent_id", "device", "options"}``
on ``<prefix>live:<pbx_id>:spy`` (the agent's site) and waits
:data:`FORWARD_TIMEOUT` seconds for the answer on its own reply channel
``<prefix>live:spy-replies:<origin>``. Every instance of that site reads the
request, but only the one whose lease is active at that moment acts on it: it
finds the agent's device in its own router, sends the Originate on its own AMI
connection and answers ``{"id", "status", "message", "target"}`` (``status``:
``ok``, ``unknown_agent``, ``refused`` or ``unavailable``). No answer in time
(no active for the site, Redis down) is a clear 503 for the supervisor; nothing
is retried, so the PBX never rings the supervisor twice.

The supervisor's device comes from their user profile on the instance that
serves them (the audit is written there too); it must be a dial string the
agent's PBX can reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from hotline.web.redis_channel import follow

__all__ = ["FORWARD_TIMEOUT", "SPY_RELAY", "ForwardFailed", "SpyRelay", "SpyResult", "answer"]

log = structlog.get_logger("hotline.web.spy_relay")

FORWARD_TIMEOUT: Final = 5.0
"""Wall seconds a forwarded listen/whisper/barge waits for the site's active to answer."""

SpyResult = dict[str, str]
"""An answer: ``status`` (``ok``, ``unknown_agent``, ``refused``, ``unavailable``),
``message`` and ``target`` (the agent's device, when known)."""
Originate = Callable[[str, str, str], Awaitable[SpyResult]]
"""Send the Originate here: ``(agent_id, supervisor device, ChanSpy options)``."""


class ForwardFailed(Exception):
    """Nobody answered the forwarded request in time (no active for the site, or Redis)."""


class SpyRelay:
    """One instance's side: forwards requests, and acts on its site's while active."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        pbx_id: str,
        may_act: Callable[[], bool],
        originate: Originate,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.origin = secrets.token_hex(8)
        self.requests = self._channel(pbx_id)
        self.replies = f"{prefix}live:spy-replies:{self.origin}"
        self.may_act = may_act
        self.originate = originate
        self.forwarded = 0
        self.handled = 0
        self.ready = asyncio.Event()
        """Set once both channels are subscribed."""
        self._requests_ready = asyncio.Event()
        self._replies_ready = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[SpyResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _channel(self, pbx_id: str) -> str:
        return f"{self.prefix}live:{pbx_id}:spy"

    # -- the supervisor's instance --------------------------------------------------------

    async def forward(self, site: str, agent_id: str, device: str, options: str) -> SpyResult:
        """Have ``site``'s active ring ``device`` into ChanSpy on the agent's; its answer.
        Raises :class:`ForwardFailed` after :data:`FORWARD_TIMEOUT` without one."""
        request_id = secrets.token_hex(8)
        future: asyncio.Future[SpyResult] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {
            "id": request_id,
            "reply": self.replies,
            "agent_id": agent_id,
            "device": device,
            "options": options,
        }
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                await self.client.publish(self._channel(site), json.dumps(message))
                self.forwarded += 1
                return await future
        except (RedisError, OSError, TimeoutError) as exc:
            raise ForwardFailed(
                f"the active instance of pbx {site} did not answer ({type(exc).__name__})"
            ) from exc
        finally:
            self._waiting.pop(request_id, None)

    def on_reply(self, data: bytes) -> None:
        """An active's answer to one of our requests."""
        answer = json.loads(data)
        future = self._waiting.get(str(answer["id"]))
        if future is not None and not future.done():
            future.set_result({key: str(answer.get(key, "")) for key in _ANSWER})

    # -- the active of the site -----------------------------------------------------------

    def on_request(self, data: bytes) -> None:
        """A request for this site: acted on only while this instance is the active."""
        request = json.loads(data)
        if not self.may_act():
            return
        fields = [str(request[key]) for key in ("id", "reply", "agent_id", "device", "options")]
        task = asyncio.create_task(self._handle(*fields), name="spy-forwarded")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self, request_id: str, reply: str, agent_id: str, device: str, options: str
    ) -> None:
        result = await self.originate(agent_id, device, options)
        self.handled += 1
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                await self.client.publish(reply, json.dumps({"id": request_id, **result}))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("web.spy_reply_failed", error=f"{type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Read both channels until cancelled."""
        tasks = [
            asyncio.create_task(
                follow(
                    self.client, self.requests, self.on_request, subscribed=self._requests_ready
                ),
                name="spy-requests",
            ),
            asyncio.create_task(
                follow(self.client, self.replies, self.on_reply, subscribed=self._replies_ready),
                name="spy-replies",
            ),
        ]
        try:
            await self._requests_ready.wait()
            await self._replies_ready.wait()
            self.ready.set()
            await asyncio.gather(*tasks)
        finally:
            for task in (*tasks, *self._tasks):
                task.cancel()
            for task in (*tasks, *self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


_ANSWER: Final = ("status", "message", "target")


def answer(status: str, message: str = "", target: str = "") -> SpyResult:
    """An answer as the relay carries it."""
    return {"status": status, "message": message, "target": target}


SPY_RELAY: Final = web.AppKey("spy_relay", SpyRelay)
"""The instance's forwarding of supervisor actions, when the feed is shared through Redis."""
