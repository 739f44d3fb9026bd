"""Server-side sessions and the login rate limit, in Redis or in memory.

Sessions
--------
A session is created at login: a random id (``secrets.token_urlsafe(32)``, the
cookie's value) and a CSRF token bound to it. The store keeps, under the
SHA-256 of the id (so a dump of Redis holds no usable cookie), the user id, the
CSRF token and the login time. A session ends ``idle`` seconds after its last
use (every read extends it) and at the latest ``lifetime`` seconds after the
login, or at logout.

The login rate limit
--------------------
Failed logins are counted per key (``user:<name>`` and ``addr:<client
address>``) in fixed windows: the first failure opens a window of ``window``
seconds; once ``max_failures`` failures are counted in it, the key is blocked
until the window ends, and a login for it is refused (429) before the password
is even checked. A successful login clears the user-name key, not the address.

Both live in Redis when ``[redis] url`` is configured, so every instance shares
them and a restart keeps them. Without Redis they live in this process's
memory: correct for a single instance only, and a restart logs everybody out.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import redis.asyncio as aioredis

__all__ = [
    "LoginLimiter",
    "MemoryLoginLimiter",
    "MemorySessions",
    "RedisLoginLimiter",
    "RedisSessions",
    "Session",
    "SessionStore",
]

Now = Callable[[], float]
_PRUNE_EVERY: Final = 1024
_COUNT_FAILURE: Final = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""
"""Count a failure and start the window with the first one, atomically (Redis 6.2 has no
``PEXPIRE ... NX``)."""


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``id`` is the cookie value; both secrets stay out of ``repr``."""

    id: str = field(repr=False)
    user_id: int
    csrf_token: str = field(repr=False)
    created_at: float


class SessionStore(Protocol):
    """Where sessions live (see the module docstring)."""

    async def create(self, user_id: int) -> Session:
        """A new session for ``user_id``."""
        ...

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id (its idle time restarts), else ``None``."""
        ...

    async def delete(self, session_id: str) -> None:
        """End a session (logout)."""
        ...


def _new_session(user_id: int, now: float) -> Session:
    return Session(secrets.token_urlsafe(32), user_id, secrets.token_urlsafe(32), now)


class MemorySessions:
    """Sessions in this process's memory (a single instance only)."""

    def __init__(self, *, idle: float, lifetime: float, now: Now = time.time) -> None:
        """Sessions end after ``idle`` seconds unused, or ``lifetime`` seconds after login."""
        self.idle = idle
        self.lifetime = lifetime
        self.now = now
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._created = 0

    def __len__(self) -> int:
        """How many sessions are held (some may have expired unseen)."""
        return len(self._sessions)

    async def create(self, user_id: int) -> Session:
        """A new session for ``user_id``."""
        now = self.now()
        self._created += 1
        if self._created % _PRUNE_EVERY == 0:
            self._prune(now)
        session = _new_session(user_id, now)
        self._sessions[_digest(session.id)] = (session, now + self.idle)
        return session

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id (its idle time restarts), else ``None``."""
        key = _digest(session_id)
        held = self._sessions.get(key)
        if held is None:
            return None
        session, expires_at = held
        now = self.now()
        if now >= expires_at or now >= session.created_at + self.lifetime:
            del self._sessions[key]
            return None
        self._sessions[key] = (session, now + self.idle)
        return session

    async def delete(self, session_id: str) -> None:
        """End a session."""
        self._sessions.pop(_digest(session_id), None)

    def _prune(self, now: float) -> None:
        expired = [
            key
            for key, (session, expires_at) in self._sessions.items()
            if now >= expires_at or now >= session.created_at + self.lifetime
        ]
        for key in expired:
            del self._sessions[key]


class RedisSessions:
    """Sessions in Redis under ``<prefix>session:<sha256 of id>``, expiring by TTL."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        idle: float,
        lifetime: float,
        now: Now = time.time,
    ) -> None:
        """Sessions end after ``idle`` seconds unused, or ``lifetime`` seconds after login."""
        self.client = client
        self.prefix = prefix
        self.idle = idle
        self.lifetime = lifetime
        self.now = now

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{_digest(session_id)}"

    def _ttl(self, created_at: float, now: float) -> int:
        return max(1, math.ceil(min(self.idle, created_at + self.lifetime - now)))

    async def create(self, user_id: int) -> Session:
        """A new session for ``user_id``."""
        now = self.now()
        session = _new_session(user_id, now)
        value = json.dumps(
            {"user_id": user_id, "csrf": session.csrf_token, "created_at": session.created_at}
        )
        await self.client.set(self._key(session.id), value, ex=self._ttl(now, now), nx=True)
        return session

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id (its idle time restarts), else ``None``."""
        key = self._key(session_id)
        raw = await self.client.get(key)
        if raw is None:
            return None
        data = json.loads(raw)
        now = self.now()
        created_at = float(data["created_at"])
        if now >= created_at + self.lifetime:
            await self.client.delete(key)
            return None
        await self.client.expire(key, self._ttl(created_at, now))
        return Session(session_id, int(data["user_id"]), str(data["csrf"]), created_at)

    async def delete(self, session_id: str) -> None:
        """End a session."""
        await self.client.delete(self._key(session_id))


class LoginLimiter(Protocol):
    """Counts failed logins per key (see the module docstring)."""

    async def blocked(self, keys: Sequence[str]) -> float | None:
        """Seconds until the most blocked of ``keys`` may try again, or ``None``."""
        ...

    async def failed(self, keys: Sequence[str]) -> None:
        """Count one failed login against each key."""
        ...

    async def clear(self, key: str) -> None:
        """Forget a key's failures (after a successful login)."""
        ...


class MemoryLoginLimiter:
    """The login rate limit in this process's memory (a single instance only)."""

    def __init__(self, *, max_failures: int, window: float, now: Now = time.monotonic) -> None:
        """Block a key after ``max_failures`` failures within ``window`` seconds."""
        self.max_failures = max_failures
        self.window = window
        self.now = now
        self._counts: dict[str, tuple[int, float]] = {}

    async def blocked(self, keys: Sequence[str]) -> float | None:
        """Seconds until the most blocked of ``keys`` may try again, or ``None``."""
        now = self.now()
        waits = [
            ends - now
            for count, ends in (self._counts.get(key, (0, now)) for key in keys)
            if count >= self.max_failures and ends > now
        ]
        return max(waits) if waits else None

    async def failed(self, keys: Sequence[str]) -> None:
        """Count one failed login against each key."""
        now = self.now()
        if len(self._counts) >= _PRUNE_EVERY:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        for key in keys:
            count, ends = self._counts.get(key, (0, now))
            if ends <= now:
                count, ends = 0, now + self.window
            self._counts[key] = (count + 1, ends)

    async def clear(self, key: str) -> None:
        """Forget a key's failures."""
        self._counts.pop(key, None)


class RedisLoginLimiter:
    """The login rate limit in Redis: ``<prefix>login:<key>`` counters expiring with their
    window."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str, max_failures: int, window: float
    ) -> None:
        """Block a key after ``max_failures`` failures within ``window`` seconds."""
        self.client = client
        self.prefix = prefix
        self.max_failures = max_failures
        self.window = window

    def _key(self, key: str) -> str:
        return (
            f"{self.prefix}login:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"
        )

    async def blocked(self, keys: Sequence[str]) -> float | None:
        """Seconds until the most blocked of ``keys`` may try again, or ``None``."""
        waits: list[float] = []
        for key in keys:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self._key(key))
                pipe.pttl(self._key(key))
                count, ttl_ms = await pipe.execute()
            if count is not None and int(count) >= self.max_failures and ttl_ms > 0:
                waits.append(ttl_ms / 1000)
        return max(waits) if waits else None

    async def failed(self, keys: Sequence[str]) -> None:
        """Count one failed login against each key; the first failure starts the window."""
        window_ms = math.ceil(self.window * 1000)
        for key in keys:
            await self.client.eval(_COUNT_FAILURE, 1, self._key(key), window_ms)

    async def clear(self, key: str) -> None:
        """Forget a key's failures."""
        await self.client.delete(self._key(key))
