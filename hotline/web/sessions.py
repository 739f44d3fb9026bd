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
Failed logins are counted per key in fixed windows: the first failure opens a
window of ``window`` seconds; once a key's limit is reached in it, the key is
blocked until the window ends, and a login for it is refused (429) before the
password is even checked. The login (:mod:`hotline.web.auth`) uses two keys: the
(user name, client address) pair with ``login_max_failures``, and the client
address alone with the higher ``login_address_max_failures``.

:meth:`LoginLimiter.attempt` checks every key and counts the attempt against
each in one atomic step (a Lua script in Redis; no ``await`` in between in
memory), *before* the password is checked: so 200 parallel wrong passwords are
counted as 200, and all but the first few get 429. A success then gives the
attempt back (:meth:`LoginLimiter.succeeded`): the pair's count is cleared and
the address's is decremented.

Session ids (:class:`SessionIds`) are 43 random URL-safe characters; with a
``[web] session_key`` they are followed by ``.`` and a 22-character HMAC of
them. A cookie of another shape, or with a wrong HMAC, is refused by
:meth:`SessionIds.recognises` before any Redis work.

Both live in Redis when ``[redis] url`` is configured, so every instance shares
them and a restart keeps them. Without Redis they live in this process's
memory: correct for a single instance only, and a restart logs everybody out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

import redis.asyncio as aioredis

__all__ = [
    "LoginLimiter",
    "MemoryLoginLimiter",
    "MemorySessions",
    "RedisLoginLimiter",
    "RedisSessions",
    "Session",
    "SessionIds",
    "SessionStore",
]

Now = Callable[[], float]
_PRUNE_EVERY: Final = 1024
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""The shape of ``secrets.token_urlsafe(32)``: an unsigned session id."""
_SIGNED_ID: Final = re.compile(r"(?P<token>[A-Za-z0-9_-]{43})\.(?P<mac>[A-Za-z0-9_-]{22})")
"""A signed session id: the token, a dot, and 16 bytes of its HMAC-SHA256 in base64url."""
_ATTEMPT: Final = """
local wait = 0
for i, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
        local ttl = redis.call('PTTL', key)
        if ttl < 0 then
            redis.call('PEXPIRE', key, ARGV[1])
            ttl = tonumber(ARGV[1])
        end
        if ttl > wait then
            wait = ttl
        end
    end
end
if wait > 0 then
    return wait
end
for _, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    if count == 1 or redis.call('PTTL', key) < 0 then
        redis.call('PEXPIRE', key, ARGV[1])
    end
end
return 0
"""
"""Refuse when any key is at its limit (answer the longest wait, ms); else count one
attempt against every key, the first one starting the window. ``ARGV[1]`` is the window
(ms), ``ARGV[i + 1]`` the limit of ``KEYS[i]``."""
_GIVE_BACK: Final = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 1 then
    redis.call('DECR', KEYS[1])
else
    redis.call('DEL', KEYS[1])
end
return 0
"""
"""Give one counted attempt back; a count back at zero is deleted."""
_COUNT_FAILURE: Final = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""
"""Count a failure and start the window with the first one, atomically (Redis 6.2 has no
``PEXPIRE ... NX``)."""


class SessionIds:
    """Makes session ids, and recognises them without any I/O (see the module docstring):
    signed with ``key`` when one is given, else random only."""

    def __init__(self, key: str = "") -> None:
        """``key``: the ``[web] session_key`` secret's value, or empty for unsigned ids."""
        self._key = key.encode("utf-8", "surrogatepass")

    def __repr__(self) -> str:
        """Never the key."""
        return f"SessionIds(signed={bool(self._key)})"

    def _mac(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode("ascii"), "sha256").digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def new(self) -> str:
        """A new random id (signed when there is a key)."""
        token = secrets.token_urlsafe(32)
        return f"{token}.{self._mac(token)}" if self._key else token

    def recognises(self, session_id: str) -> bool:
        """Whether ``session_id`` could be one of ours: the right shape, and with a key the
        right HMAC. A forged cookie is refused here at no Redis cost."""
        if not self._key:
            return _SESSION_ID.fullmatch(session_id) is not None
        match = _SIGNED_ID.fullmatch(session_id)
        return match is not None and hmac.compare_digest(match["mac"], self._mac(match["token"]))


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``id`` is the cookie value; both secrets stay out of ``repr``."""

    id: str = field(repr=False)
    user_id: int
    csrf_token: str = field(repr=False)
    created_at: float
    stamp: str = field(default="", repr=False)
    """The user's password stamp at login: once the password changes, it no longer matches
    and :mod:`hotline.web.auth` ends the session."""


class SessionStore(Protocol):
    """Where sessions live (see the module docstring)."""

    ids: SessionIds
    """How this store's session ids are made and recognised."""

    async def create(self, user_id: int, stamp: str = "") -> Session:
        """A new session for ``user_id`` whose password stamp is ``stamp``."""
        ...

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id (its idle time restarts), else ``None``."""
        ...

    async def delete(self, session_id: str) -> None:
        """End a session (logout)."""
        ...

    async def restamp(self, session_id: str, stamp: str) -> None:
        """Give a live session a new password stamp (the user changed their own password
        in it, and it stays signed in)."""
        ...


def _new_session(ids: SessionIds, user_id: int, now: float, stamp: str) -> Session:
    return Session(ids.new(), user_id, secrets.token_urlsafe(32), now, stamp)


class MemorySessions:
    """Sessions in this process's memory (a single instance only)."""

    def __init__(
        self,
        *,
        idle: float,
        lifetime: float,
        now: Now = time.time,
        ids: SessionIds | None = None,
    ) -> None:
        """Sessions end after ``idle`` seconds unused, or ``lifetime`` seconds after login;
        ``ids`` makes their ids (unsigned by default)."""
        self.ids = ids or SessionIds()
        self.idle = idle
        self.lifetime = lifetime
        self.now = now
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._created = 0

    def __len__(self) -> int:
        """How many sessions are held (some may have expired unseen)."""
        return len(self._sessions)

    async def create(self, user_id: int, stamp: str = "") -> Session:
        """A new session for ``user_id`` whose password stamp is ``stamp``."""
        now = self.now()
        self._created += 1
        if self._created % _PRUNE_EVERY == 0:
            self._prune(now)
        session = _new_session(self.ids, user_id, now, stamp)
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

    async def restamp(self, session_id: str, stamp: str) -> None:
        """Give a live session a new password stamp."""
        key = _digest(session_id)
        held = self._sessions.get(key)
        if held is not None:
            self._sessions[key] = (replace(held[0], stamp=stamp), held[1])

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
        ids: SessionIds | None = None,
    ) -> None:
        """Sessions end after ``idle`` seconds unused, or ``lifetime`` seconds after login;
        ``ids`` makes their ids (unsigned by default)."""
        self.ids = ids or SessionIds()
        self.client = client
        self.prefix = prefix
        self.idle = idle
        self.lifetime = lifetime
        self.now = now

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{_digest(session_id)}"

    def _ttl(self, created_at: float, now: float) -> int:
        return max(1, math.ceil(min(self.idle, created_at + self.lifetime - now)))

    async def create(self, user_id: int, stamp: str = "") -> Session:
        """A new session for ``user_id`` whose password stamp is ``stamp``."""
        now = self.now()
        session = _new_session(self.ids, user_id, now, stamp)
        value = json.dumps(
            {
                "user_id": user_id,
                "csrf": session.csrf_token,
                "created_at": session.created_at,
                "stamp": stamp,
            }
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
        return Session(
            session_id,
            int(data["user_id"]),
            str(data["csrf"]),
            created_at,
            str(data.get("stamp", "")),
        )

    async def delete(self, session_id: str) -> None:
        """End a session."""
        await self.client.delete(self._key(session_id))

    async def restamp(self, session_id: str, stamp: str) -> None:
        """Give a live session a new password stamp (its expiry unchanged)."""
        key = self._key(session_id)
        raw = await self.client.get(key)
        if raw is not None:
            data = json.loads(raw)
            data["stamp"] = stamp
            await self.client.set(key, json.dumps(data), keepttl=True, xx=True)


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

    async def attempt(self, limits: Sequence[tuple[str, int]]) -> float | None:
        """Atomically: seconds until the most blocked of the keys may try again when one is
        at its limit (nothing counted), else ``None`` with one attempt counted against
        each. ``limits`` holds (key, limit) pairs."""
        ...

    async def succeeded(self, cleared: str, given_back: Sequence[str]) -> None:
        """After a successful :meth:`attempt`: forget ``cleared``'s count and give the
        attempt back to each of ``given_back``."""
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

    async def attempt(self, limits: Sequence[tuple[str, int]]) -> float | None:
        """See :meth:`LoginLimiter.attempt`; atomic because nothing here awaits."""
        now = self.now()
        waits = [
            ends - now
            for (count, ends), limit in (
                (self._counts.get(key, (0, now)), limit) for key, limit in limits
            )
            if count >= limit and ends > now
        ]
        if waits:
            return max(waits)
        if len(self._counts) >= _PRUNE_EVERY:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        for key, _ in limits:
            count, ends = self._counts.get(key, (0, now))
            if ends <= now:
                count, ends = 0, now + self.window
            self._counts[key] = (count + 1, ends)
        return None

    async def succeeded(self, cleared: str, given_back: Sequence[str]) -> None:
        """See :meth:`LoginLimiter.succeeded`."""
        self._counts.pop(cleared, None)
        for key in given_back:
            count, ends = self._counts.get(key, (0, 0.0))
            if count > 1:
                self._counts[key] = (count - 1, ends)
            else:
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

    async def attempt(self, limits: Sequence[tuple[str, int]]) -> float | None:
        """See :meth:`LoginLimiter.attempt`: one Lua script, so parallel attempts count."""
        window_ms = math.ceil(self.window * 1000)
        keys = [self._key(key) for key, _ in limits]
        wait_ms = await self.client.eval(
            _ATTEMPT, len(keys), *keys, window_ms, *(limit for _, limit in limits)
        )
        return int(wait_ms) / 1000 if int(wait_ms) > 0 else None

    async def succeeded(self, cleared: str, given_back: Sequence[str]) -> None:
        """See :meth:`LoginLimiter.succeeded`."""
        await self.client.delete(self._key(cleared))
        for key in given_back:
            await self.client.eval(_GIVE_BACK, 1, self._key(key))
