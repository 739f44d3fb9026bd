"""The live feed across instances: the active's views through Redis (pub/sub plus a copy).

Theory of operation
-------------------
Instances that share a ``[service] pbx_id`` and a ``[redis] url`` share one feed.
Only the active (the lease holder) routes, so only its router knows the centre:
its :class:`~hotline.web.live.LiveHub` hands the relay, after each batch of
facts, the full (unmasked) views of the queues and agents that changed. The
relay's publisher merges what is pending (so a slow Redis costs memory bounded
by the number of queues and agents, never a queue of messages) and writes it in
one Lua script that, atomically, increments ``<prefix>live:<pbx_id>:seq``,
stores each view in the hashes ``...:queues`` and ``...:agents`` (a copy of the
whole centre), and publishes ``"<seq> <json>"`` on the channel
``<prefix>live:<pbx_id>``. The first message of a new active, and the next after
a failed write, is ``full``: the hashes are replaced and every subscriber takes
it as a snapshot.

Every instance (the active too) subscribes and keeps a mirror of the views. A
subscriber reads the copy (sequence number and both hashes, in one
``MULTI``) after subscribing, then applies the messages with the next sequence
numbers, skipping older ones; a jump in the sequence, or a lost connection
(re-subscribed after a back-off), means reading the copy again, and the hub
sends every page a fresh snapshot. The hub serves its pages from the mirror
while it is not active; filtering by role and queue happens there, on each
instance, exactly as for local views: the channel carries full numbers, the
pages only what their principal may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

__all__ = ["RETRY_MAX", "RETRY_MIN", "LiveRelay", "Mirror"]

log = structlog.get_logger("hotline.web.live_relay")

RETRY_MIN: Final = 0.05
"""Wall seconds before the first retry after a Redis error (doubled up to :data:`RETRY_MAX`)."""
RETRY_MAX: Final = 2.0
"""The longest wait between two attempts to reach Redis."""

_PUBLISH: Final = """
local seq = redis.call('INCR', KEYS[1])
if ARGV[1] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
local queues = tonumber(ARGV[3])
local i = 4
for _ = 1, queues do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    i = i + 2
end
while i < #ARGV do
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    i = i + 2
end
redis.call('PUBLISH', KEYS[4], seq .. ' ' .. ARGV[2])
return seq
"""

View = dict[str, Any]


class Mirror(Protocol):
    """What the relay feeds: the hub's copy of the active's views."""

    def apply_remote(self, queues: dict[str, View], agents: dict[str, View], *, full: bool) -> None:
        """Take these views (``full``: they are the whole centre, a snapshot)."""


class _Gap(Exception):
    """The next message is not the one after the last applied: read the copy again."""


def _payload(full: bool, queues: dict[str, str], agents: dict[str, str]) -> str:
    """The channel's JSON, built from the views already encoded for the hashes."""
    encoded_queues = ",".join(f"{json.dumps(name)}:{view}" for name, view in queues.items())
    encoded_agents = ",".join(f"{json.dumps(name)}:{view}" for name, view in agents.items())
    return (
        f'{{"full":{"true" if full else "false"},'
        f'"queues":{{{encoded_queues}}},"agents":{{{encoded_agents}}}}}'
    )


def _decoded(mapping: dict[bytes, bytes]) -> dict[str, View]:
    return {key.decode(): json.loads(value) for key, value in mapping.items()}


class LiveRelay:
    """One instance's side of the shared feed for ``pbx_id``; see the module docstring."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        pbx_id: str,
        mirror: Mirror,
        may_publish: Callable[[], bool],
        wake: Callable[[], None],
    ) -> None:
        self.client = client
        base = f"{prefix}live:{pbx_id}"
        self.channel = base
        self._keys = [f"{base}:seq", f"{base}:queues", f"{base}:agents", base]
        self.mirror = mirror
        self.may_publish = may_publish
        self.wake = wake
        self.want_full = True
        """The hub's next publication must be the whole centre (start, or a lost write)."""
        self.last_seq = 0
        self.published = 0
        self.applied = 0
        self.resyncs = 0
        self.gaps = 0
        self.errors = 0
        self._script = client.register_script(_PUBLISH)
        self._full = False
        self._queues: dict[str, str] = {}
        self._agents: dict[str, str] = {}
        self._ready = asyncio.Event()
        self._retry = RETRY_MIN

    # -- the active's side ----------------------------------------------------------------

    def publish(self, queues: dict[str, View], agents: dict[str, View], *, full: bool) -> None:
        """Queue these views for the channel (merged with what is pending; never waits)."""
        if full:
            self.want_full = False
            self._full = True
            self._queues.clear()
            self._agents.clear()
        self._queues.update((name, json.dumps(view)) for name, view in queues.items())
        self._agents.update((name, json.dumps(view)) for name, view in agents.items())
        self._ready.set()

    async def run_publisher(self) -> None:
        """Write what is pending, until cancelled; a failed write asks the hub for a full one."""
        delay = RETRY_MIN
        while True:
            await self._ready.wait()
            self._ready.clear()
            full, queues, agents = self._full, self._queues, self._agents
            self._full, self._queues, self._agents = False, {}, {}
            if not self.may_publish():
                continue  # a standby or a fenced former active writes nothing
            args: list[str] = [
                "1" if full else "0",
                _payload(full, queues, agents),
                str(len(queues)),
            ]
            for name, view in (*queues.items(), *agents.items()):
                args += [name, view]
            try:
                await self._script(keys=self._keys, args=args)
            except (RedisError, OSError) as exc:
                self.errors += 1
                log.warning("web.live_publish_failed", error=f"{type(exc).__name__}: {exc}")
                self.want_full = True
                self.wake()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            self.published += 1

    # -- every instance's side ------------------------------------------------------------

    async def run_subscriber(self) -> None:
        """Mirror the channel, until cancelled; re-subscribe (and re-read) after an error."""
        while True:
            try:
                await self._subscribed()
            except (RedisError, OSError) as exc:
                self.errors += 1
                log.warning("web.live_subscribe_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._retry)
            self._retry = min(self._retry * 2, RETRY_MAX)

    async def _subscribed(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            await self._read_copy()
            self._retry = RETRY_MIN
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    self._on_message(message["data"])
                except _Gap:
                    self.gaps += 1
                    await self._read_copy()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read_copy(self) -> None:
        """The whole centre as the copy holds it, at one sequence number: a snapshot."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self._keys[0])
            pipe.hgetall(self._keys[1])
            pipe.hgetall(self._keys[2])
            seq, queues, agents = await pipe.execute()
        self.resyncs += 1
        self.last_seq = int(seq or 0)
        self.mirror.apply_remote(_decoded(queues), _decoded(agents), full=True)

    def _on_message(self, data: bytes) -> None:
        head, _, body = data.partition(b" ")
        seq = int(head)
        if seq <= self.last_seq:
            return  # already in the copy read after subscribing
        message = json.loads(body)
        if seq != self.last_seq + 1 and not message["full"]:
            raise _Gap
        self.last_seq = seq
        self.applied += 1
        self.mirror.apply_remote(message["queues"], message["agents"], full=message["full"])
