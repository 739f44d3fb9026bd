"""Who is asking: the session cookie or the bearer token, CSRF, roles, login and logout.

Theory of operation
-------------------
:func:`authenticate` (a middleware) turns every request, except those to
:data:`PUBLIC_PATHS`, into a :class:`Principal`, or answers 401:

- ``Authorization: Bearer <token>`` is for integrations. The configured
  ``[service] api_token`` is the *integration* principal: it sees and changes
  every ticket, reads customers (audited as ``token:integration``) and controls
  every agent, like a supervisor, but it does not manage users. A request with
  an ``Authorization`` header is judged by it alone: a wrong token is 401 even
  with a valid cookie beside it.
- Otherwise the ``hotline_session`` cookie from ``POST /api/login`` (see
  :mod:`hotline.web.sessions`). The user is read again at every request, so a
  user deactivated or given another role is affected at once.

Cookie-authenticated requests that may change something (every method but GET,
HEAD and OPTIONS) must carry the session's CSRF token in ``X-CSRF-Token``
(403 otherwise). Bearer requests are exempt: a browser never adds that header
by itself, so a forged cross-site request cannot carry it. The cookie is
``HttpOnly``, ``SameSite=Strict`` and ``Secure`` (``[web] cookie_secure``).

Roles (enforced by the handlers through the principal):

- ``agent``: the tickets of their queues (their user's ``queues`` plus those
  their agent serves in the configuration) and the tickets assigned to them
  (their agent id or user name); the customers of those tickets and the caller
  on their phone right now (:mod:`hotline.web.customers`); callbacks only to
  their own phone; control of their own agent only;
- ``supervisor``: every ticket and customer, every agent;
- ``admin``: as a supervisor, and the users;
- ``integration``: the bearer token, as above.

The login is rate-limited per (user name, client address) pair, with a higher
ceiling per client address (429 with ``Retry-After``), counted atomically
before the password is checked (:mod:`hotline.web.sessions`). So five typos
lock out one person at one address, not everyone behind the same NAT, and
nobody can lock a named user out from elsewhere. The client address is the TCP
peer, so behind a reverse proxy every client shares the proxy's address. A
failed login is written to the audit log (``user.login_failed``) and logged
with a keyed hash of the typed user name, never the name itself (it may be a
password typed into the wrong field).

Passwords: ``POST /api/me/password`` changes one's own (the current one is
asked); an admin resets anyone's through ``PATCH /api/users/{id}``. Either ends
every other session of that user: a session carries the user's password stamp
(:attr:`hotline.store.users.User.password_stamp`) from its login, and a session
whose stamp no longer matches is ended at its next request.

Session cookies of a shape the service never makes (or, with ``[web]
session_key``, without a valid signature) are refused before any Redis work,
and the Redis connections are a bounded, blocking pool (a request waits up to
:data:`REDIS_POOL_TIMEOUT` seconds for one), so unauthenticated load cannot take
every connection and leave signed-in users with 503s.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from hotline.config import Settings
from hotline.store.audit import AuditLog
from hotline.store.db import NotFound
from hotline.store.resources import Store
from hotline.store.tickets import Ticket, TicketScope
from hotline.store.users import MIN_PASSWORD_LENGTH, ROLES, User, Users, password_problem
from hotline.web.errors import json_error
from hotline.web.keys import SETTINGS, STORE
from hotline.web.openapi import SAFE_METHODS, Api, Input
from hotline.web.schema import Object, Text, ValidationFailed
from hotline.web.sessions import (
    LoginLimiter,
    MemoryLoginLimiter,
    MemorySessions,
    RedisLoginLimiter,
    RedisSessions,
    Session,
    SessionIds,
    SessionStore,
)

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "INTEGRATION",
    "LIMITER",
    "PAGE_PATHS",
    "PRINCIPAL",
    "PUBLIC_PATHS",
    "REDIS_POOL_SIZE",
    "REDIS_POOL_TIMEOUT",
    "SESSIONS",
    "STATIC_PREFIX",
    "USERS",
    "Principal",
    "api",
    "authenticate",
    "name_fingerprint",
    "principal_of",
    "sessions_context",
    "store_of",
]

log = structlog.get_logger("hotline.web.auth")

COOKIE: Final = "hotline_session"
CSRF_HEADER: Final = "X-CSRF-Token"
PAGE_PATHS: Final = frozenset({"/login", "/agent", "/wallboard", "/audit"})
"""The web pages' shells (see :mod:`hotline.web.pages`), public like ``/static/``."""
STATIC_PREFIX: Final = "/static/"
PUBLIC_PATHS: Final = frozenset(
    {"/health", "/ready", "/metrics", "/api/openapi.json", "/api/docs", "/api/login"}
)
"""Paths served without credentials; everything else answers 401 without them."""
INTEGRATION: Final = "integration"
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="hotline"'}
REDIS_POOL_SIZE: Final = 100
"""Most Redis connections one process opens (``?max_connections=N`` in the URL wins)."""
REDIS_POOL_TIMEOUT: Final = 5.0
"""Seconds a request waits for a free Redis connection before its 503."""
_NAME_KEY: Final = secrets.token_bytes(32)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for. ``name`` is the actor written to histories and the audit log:
    the user name, or ``token:integration`` (no user name can contain a colon)."""

    name: str
    role: str
    user_id: int | None = None
    agent_id: str | None = None
    queues: tuple[str, ...] = ()
    session: Session | None = None

    @property
    def is_admin(self) -> bool:
        """May manage users."""
        return self.role == "admin"

    @property
    def scope(self) -> TicketScope | None:
        """The tickets this principal may see; ``None`` for all of them."""
        if self.role != "agent":
            return None
        owners = (self.name,) if self.agent_id is None else (self.agent_id, self.name)
        return TicketScope(queues=self.queues, owners=owners)

    def sees(self, ticket: Ticket) -> bool:
        """Whether this principal may see ``ticket``."""
        scope = self.scope
        return scope is None or scope.allows(ticket)

    def controls(self, agent_id: str) -> bool:
        """Whether this principal may log in, log out or pause agent ``agent_id``."""
        return self.role != "agent" or agent_id == self.agent_id


_INTEGRATION_PRINCIPAL: Final = Principal(name=f"token:{INTEGRATION}", role=INTEGRATION)

PRINCIPAL = web.RequestKey("principal", Principal)
SESSIONS = web.AppKey("sessions", SessionStore)
LIMITER = web.AppKey("login_limiter", LoginLimiter)
USERS = web.AppKey("users", Users)


def principal_of(request: web.Request) -> Principal:
    """The request's principal (set by :func:`authenticate`)."""
    return request[PRINCIPAL]


def store_of(request: web.Request) -> Store:
    """The store, or 503 when no database is configured."""
    if STORE not in request.app:
        raise json_error(503, "no database configured")
    return request.app[STORE]


def _user_principal(user: User, settings: Settings, session: Session | None) -> Principal:
    queues = list(user.queues)
    agent = settings.agents.get(user.agent_id) if user.agent_id is not None else None
    if agent is not None:
        queues += [queue for queue in agent.queues if queue not in queues]
    return Principal(
        name=user.username,
        role=user.role,
        user_id=user.id,
        agent_id=user.agent_id,
        queues=tuple(queues),
        session=session,
    )


def name_fingerprint(name: str) -> str:
    """A keyed hash of a typed user name (the key lives in this process only), to log and
    audit failed logins without the name itself: it may be a password typed in the wrong
    field. The same name gives the same fingerprint for the life of the process."""
    digest = hmac.new(_NAME_KEY, name.lower().encode("utf-8", "surrogatepass"), "sha256")
    return "h:" + digest.hexdigest()[:16]


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings of any characters."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest(),
    )


def _unauthorized(message: str) -> web.HTTPException:
    return json_error(401, "unauthorized", message=message, headers=_WWW_AUTHENTICATE)


async def _identify(request: web.Request) -> Principal:
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        expected = settings.service.api_token.reveal()
        if scheme.lower() == "bearer" and expected and _same(token.strip(), expected):
            return _INTEGRATION_PRINCIPAL
        raise _unauthorized("the bearer token is not valid")
    session_id = request.cookies.get(COOKIE, "")
    sessions = request.app[SESSIONS]
    if session_id and sessions.ids.recognises(session_id):
        session = await sessions.get(session_id)
        if session is not None and USERS in request.app:
            try:
                user = await request.app[USERS].get(session.user_id)
            except NotFound:
                user = None
            if user is not None and user.active and _same(session.stamp, user.password_stamp):
                return _user_principal(user, settings, session)
            await sessions.delete(session_id)
    raise _unauthorized("sign in (POST /api/login) or send Authorization: Bearer <token>")


def _is_page(path: str) -> bool:
    """A page shell or a static file: public, they carry no data (:mod:`hotline.web.pages`)."""
    return path in PAGE_PATHS or path.startswith(STATIC_PREFIX)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set the request's :class:`Principal` or answer 401; check the CSRF token (403)."""
    if request.path in PUBLIC_PATHS or _is_page(request.path):
        return await handler(request)
    principal = await _identify(request)
    if principal.session is not None and request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not _same(given, principal.session.csrf_token):
            raise json_error(403, "csrf", message=f"send the session's {CSRF_HEADER} header")
    request[PRINCIPAL] = principal
    return await handler(request)


async def sessions_context(app: web.Application) -> AsyncIterator[None]:
    """The session store and login limiter (Redis when configured, else memory), and the
    users repository when a database is configured."""
    settings = app[SETTINGS]
    web_settings = settings.web
    idle = web_settings.session_idle_minutes * 60
    lifetime = web_settings.session_max_hours * 3600
    ids = SessionIds(web_settings.session_key.reveal())
    if STORE in app:
        app[USERS] = Users(app[STORE].pool)
    if not settings.redis_url:
        app[SESSIONS] = MemorySessions(idle=idle, lifetime=lifetime, ids=ids)
        app[LIMITER] = MemoryLoginLimiter(
            max_failures=web_settings.login_max_failures, window=web_settings.login_window
        )
        yield
        return
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url.reveal(), max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_TIMEOUT
    )
    client = aioredis.Redis(connection_pool=pool)
    prefix = settings.redis_prefix
    app[SESSIONS] = RedisSessions(client, prefix=prefix, idle=idle, lifetime=lifetime, ids=ids)
    app[LIMITER] = RedisLoginLimiter(
        client,
        prefix=prefix,
        max_failures=web_settings.login_max_failures,
        window=web_settings.login_window,
    )
    try:
        yield
    finally:
        await client.aclose()
        await pool.aclose()


# -- login, logout, me ----------------------------------------------------------------------

api = Api()

_STRING: Final = {"type": "string"}
ME_SCHEMA: Final = {
    "type": "object",
    "required": ["name", "role", "user_id", "agent_id", "queues", "csrf_token"],
    "properties": {
        "name": _STRING,
        "role": {"type": "string", "enum": [*ROLES, INTEGRATION]},
        "user_id": {"type": "integer", "nullable": True},
        "agent_id": {"type": "string", "nullable": True},
        "queues": {"type": "array", "items": _STRING},
        "csrf_token": {"type": "string", "nullable": True},
    },
}
LOGIN: Final = Object(
    {
        "username": Text(max_length=64, min_length=1, single_line=True),
        "password": Text(max_length=1024, min_length=1),
    },
    required=frozenset({"username", "password"}),
)


def _me(principal: Principal) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.role,
        "user_id": principal.user_id,
        "agent_id": principal.agent_id,
        "queues": list(principal.queues),
        "csrf_token": principal.session.csrf_token if principal.session is not None else None,
    }


def _set_cookie(response: web.StreamResponse, settings: Settings, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        path="/",
        httponly=True,
        secure=settings.web.cookie_secure,
        samesite="Strict",
    )


async def _count_attempt(request: web.Request, username: str) -> tuple[str, str]:
    """Count a password check against the (name, address) pair and the address, or answer
    429 when either is at its limit; returns both keys."""
    settings = request.app[SETTINGS]
    address = request.remote or "unknown"
    fingerprint = name_fingerprint(username)
    pair = f"pair:{fingerprint}|{address}"
    per_address = f"addr:{address}"
    wait = await request.app[LIMITER].attempt(
        [
            (pair, settings.web.login_max_failures),
            (per_address, settings.web.login_address_max_failures),
        ]
    )
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        log.info("web.login_blocked", user=fingerprint, address=address)
        raise json_error(
            429,
            "too many failed logins",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )
    return pair, per_address


@api.operation(
    "POST",
    "/api/login",
    summary="Sign in: sets the session cookie; answers the CSRF token",
    tag="auth",
    public=True,
    body=LOGIN,
    json_only=True,
    response=ME_SCHEMA,
    errors=(401, 429),
)
async def login(request: web.Request, given: Input) -> web.Response:
    """Check the user name and password (rate-limited), then start a session."""
    store = store_of(request)
    settings = request.app[SETTINGS]
    username: str = given.body["username"]
    address = request.remote or "unknown"
    fingerprint = name_fingerprint(username)
    pair, per_address = await _count_attempt(request, username)
    limiter = request.app[LIMITER]
    users = request.app[USERS]
    user = await users.authenticate(username, given.body["password"])
    if user is None:
        known = await users.by_username(username)
        log.info("web.login_failed", user=fingerprint, address=address)
        detail: dict[str, Any] = {"address": address, "name": fingerprint}
        if known is not None:
            detail["username"] = known.username
        await AuditLog(store.pool).write(
            "anonymous",
            "user.login_failed",
            "user",
            str(known.id) if known is not None else "",
            detail,
        )
        raise _unauthorized("wrong user name or password")
    await limiter.succeeded(pair, [per_address])
    session = await request.app[SESSIONS].create(user.id, user.password_stamp)
    await AuditLog(store.pool).write(
        user.username, "user.login", "user", str(user.id), {"address": request.remote}
    )
    log.info("web.login", username=user.username, role=user.role)
    response = web.json_response(_me(_user_principal(user, settings, session)))
    _set_cookie(response, settings, session.id)
    return response


@api.operation("POST", "/api/logout", summary="Sign out: ends the session", tag="auth", status=204)
async def logout(request: web.Request, _: Input) -> web.Response:
    """End the session (a bearer request has none: nothing changes)."""
    session = principal_of(request).session
    response = web.Response(status=204)
    if session is not None:
        await request.app[SESSIONS].delete(session.id)
        response.del_cookie(COOKIE, path="/")
    return response


@api.operation("GET", "/api/me", summary="Who is signed in", tag="auth", response=ME_SCHEMA)
async def me(request: web.Request, _: Input) -> web.Response:
    """The principal, with the session's CSRF token."""
    return web.json_response(_me(principal_of(request)))


PASSWORD_CHANGE: Final = Object(
    {
        "current_password": Text(max_length=1024, min_length=1),
        "new_password": Text(max_length=1024, min_length=MIN_PASSWORD_LENGTH),
    },
    required=frozenset({"current_password", "new_password"}),
)


@api.operation(
    "POST",
    "/api/me/password",
    summary="Change one's own password: ends every other session, answers a new one",
    tag="auth",
    body=PASSWORD_CHANGE,
    json_only=True,
    response=ME_SCHEMA,
    errors=(429,),
)
async def change_password(request: web.Request, given: Input) -> web.Response:
    """Check the current password (counted like a login: 429 past the limit), set the new
    one (422 when the rules refuse it), end every session of the user and start a new one
    for this client."""
    principal = principal_of(request)
    if principal.session is None or principal.user_id is None:
        raise json_error(403, "forbidden", message="only a signed-in user has a password")
    store = store_of(request)
    settings = request.app[SETTINGS]
    users = request.app[USERS]
    new_password: str = given.body["new_password"]
    problem = password_problem(new_password, principal.name)
    if problem is not None:
        raise ValidationFailed({"new_password": problem})
    pair, per_address = await _count_attempt(request, principal.name)
    if await users.authenticate(principal.name, given.body["current_password"]) is None:
        raise json_error(403, "forbidden", message="the current password is wrong")
    await request.app[LIMITER].succeeded(pair, [per_address])
    await users.set_password(principal.user_id, new_password)
    sessions = request.app[SESSIONS]
    await sessions.delete(principal.session.id)
    user = await users.get(principal.user_id)
    session = await sessions.create(user.id, user.password_stamp)
    await AuditLog(store.pool).write(
        user.username, "user.password_change", "user", str(user.id), {"address": request.remote}
    )
    response = web.json_response(_me(_user_principal(user, settings, session)))
    _set_cookie(response, settings, session.id)
    return response
