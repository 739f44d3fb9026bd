"""Authentication of the JSON API: every route guarded, sessions, CSRF, bearer, rate limit."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse, web

from hotline.store.users import Users
from hotline.web.auth import COOKIE, LIMITER, PAGE_PATHS, PUBLIC_PATHS, USERS
from hotline.web.openapi import OPENAPI
from hotline.web.sessions import MemoryLoginLimiter, MemorySessions
from tests.api_support import FAST, PASSWORD, running_api

pytestmark = pytest.mark.integration

_PARAMETER = re.compile(r"{(\w+)(:[^}]*)?}")


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, concrete path) the router serves, parameters filled in."""
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("path") or info.get("formatter", "")
        routes.append((route.method, _PARAMETER.sub("1", template)))
    return routes


async def test_every_route_needs_credentials_except_the_public_ones(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        client = await api.client()
        routes = _routes(api.server.app)
        assert len(routes) > 30
        answered = {}
        for method, path in routes:
            response = await client.request(method, path)
            answered[(method, path)] = response.status
            if path in PUBLIC_PATHS or path in PAGE_PATHS:  # page shells: no data in them
                assert response.status != 401, (method, path)
            else:
                assert response.status == 401, (method, path, response.status)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                if method != "HEAD":
                    assert (await response.json())["error"] == "unauthorized"
        # Unknown paths and methods do not reveal anything either.
        for method, path in [("GET", "/api/nothing"), ("DELETE", "/api/tickets"), ("GET", "/")]:
            assert (await client.request(method, path)).status == 401
        document = api.server.app[OPENAPI]

    assert {
        "/health",
        "/ready",
        "/metrics",
        "/api/openapi.json",
        "/api/docs",
        "/api/login",
    } == PUBLIC_PATHS
    assert answered[("GET", "/health")] == 200
    assert answered[("GET", "/ready")] == 200  # no PBX, but still within its grace
    assert answered[("GET", "/api/openapi.json")] == 200
    assert answered[("POST", "/api/login")] == 422  # no body: a validation error, not a 401
    # Every /api route and the service's own endpoints are in the OpenAPI document, and
    # public ones say so.
    documented = {
        (method.upper(), _PARAMETER.sub("1", path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    service = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
    api_routes = {(m, p) for m, p in routes if p.startswith("/api") and m != "HEAD"}
    assert api_routes | service == documented
    assert service <= {(m, p) for m, p in routes}
    for _, path in service:
        assert document["paths"][path]["get"]["security"] == []
    login = document["paths"]["/api/login"]["post"]
    assert login["security"] == []
    assert document["paths"]["/api/tickets"]["post"]["security"] == [
        {"bearer": []},
        {"session": [], "csrf": []},
    ]


async def test_login_cookie_is_secure_httponly_and_samesite(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path, web={"cookie_secure": True}) as api:
        client = await api.client()
        response = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert response.status == 200
        cookie = response.headers["Set-Cookie"]
        body = await response.json()

    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "SameSite=Strict" in cookie
    assert body["name"] == "alice"
    assert body["role"] == "agent"
    assert body["agent_id"] == "1001"
    assert body["queues"] == ["support"]  # from the agent's configuration
    assert len(body["csrf_token"]) >= 40
    assert body["csrf_token"] not in cookie


async def test_session_csrf_and_logout(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        alice = await api.sign_in("alice")
        me = await alice.call("GET", "/api/me", csrf=False)
        assert me.status == 200
        assert (await me.json())["csrf_token"] == alice.csrf

        ticket = {"subject": "leaking tap", "queue": "support"}
        missing = await alice.call("POST", "/api/tickets", json=ticket, csrf=False)
        assert missing.status == 403
        assert (await missing.json())["error"] == "csrf"
        wrong = await alice.call(
            "POST", "/api/tickets", json=ticket, csrf=False, headers={"X-CSRF-Token": "nope"}
        )
        assert wrong.status == 403
        assert await api.pool.fetchval("select count(*) from tickets") == 0
        created = await alice.call("POST", "/api/tickets", json=ticket)
        assert created.status == 201

        session_id = alice.client.session.cookie_jar.filter_cookies(api.server.make_url("/"))[
            COOKIE
        ].value
        assert (await alice.call("POST", "/api/logout", csrf=False)).status == 403
        assert (await alice.call("POST", "/api/logout")).status == 204
        assert (await alice.call("GET", "/api/me")).status == 401
        # The session is gone on the server, not just from the browser.
        replay = await (await api.client()).get("/api/me", cookies={COOKIE: session_id})
        assert replay.status == 401


async def test_bearer_token_is_the_integration_principal(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        me = await api.bearer("GET", "/api/me")
        assert await me.json() == {
            "name": "token:integration",
            "role": "integration",
            "user_id": None,
            "agent_id": None,
            "queues": [],
            "csrf_token": None,
        }
        # No CSRF header needed: a bearer token is never sent by a browser on its own.
        created = await api.bearer("POST", "/api/tickets", json={"queue": "sales"})
        assert created.status == 201
        assert (await api.bearer("GET", "/api/users")).status == 403
        # A wrong token is refused even beside a valid session cookie.
        sam = await api.sign_in("sam")
        both = await sam.call("GET", "/api/me", headers={"Authorization": "Bearer wrong"})
        assert both.status == 401
        assert (
            await sam.call("GET", "/api/me", headers={"Authorization": "Basic x"})
        ).status == 401
        unicode = await sam.call("GET", "/api/me", headers={"Authorization": "Bearer é"})
        assert unicode.status == 401


async def test_a_deactivated_users_session_stops_working(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        alice = await api.sign_in("alice")
        assert (await alice.call("GET", "/api/tickets")).status == 200
        user = await Users(api.pool).by_username("alice")
        assert user is not None
        await Users(api.pool).update(user.id, active=False)
        assert (await alice.call("GET", "/api/tickets")).status == 401
        client = await api.client()
        again = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert again.status == 401


async def test_login_is_rate_limited_per_user_name_and_per_address(
    migrated_database_url: str, tmp_path: Path
) -> None:
    options = {"login_window": 60, "login_address_max_failures": 8}
    async with running_api(migrated_database_url, tmp_path, web=options) as api:
        client = await api.client()

        async def login(username: str, password: str) -> ClientResponse:
            return await client.post(
                "/api/login", json={"username": username, "password": password}
            )

        for _ in range(5):
            assert (await login("alice", "wrong password")).status == 401
        blocked = await login("alice", PASSWORD)  # even the right password, for now
        assert blocked.status == 429
        retry_after = int(blocked.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert (await blocked.json())["retry_after"] == retry_after
        # Issue 9 item 16: the lock is per (name, address) pair; the address has a higher
        # ceiling (8 here), so alice's five typos do not lock out sam behind the same NAT...
        assert (await login("sam", "wrong password")).status == 401
        assert (await login("bob", "wrong password")).status == 401
        assert (await login("bob", "wrong password")).status == 401
        # ... until the address reaches its own ceiling: then every name is blocked from it.
        assert (await login("sam", PASSWORD)).status == 429
        rows = await api.pool.fetchval("select count(*) from audit_log where action = 'user.login'")
        assert rows == 0


async def test_login_block_ends_with_the_window_and_success_clears_the_name(
    migrated_database_url: str, tmp_path: Path
) -> None:
    options = {"login_window": 1, "login_max_failures": 3, "login_address_max_failures": 3}
    async with running_api(migrated_database_url, tmp_path, web=options) as api:
        # The users' cheap hashes stay as they are (no rehash to argon2's default cost at the
        # first login): on a loaded machine that rehash alone could outlast the 1 s window.
        api.server.app[USERS].hasher = FAST
        # The limiter's clock, moved by hand: password hashing on a loaded machine may take
        # longer than the window, which must not end before the test says so.
        limiter = api.server.app[LIMITER]
        assert isinstance(limiter, MemoryLoginLimiter)
        moment = [1000.0]
        limiter.now = lambda: moment[0]
        client = await api.client()
        wrong = {"username": "alice", "password": "wrong password"}
        right = {"username": "alice", "password": PASSWORD}
        for _ in range(2):
            assert (await client.post("/api/login", json=wrong)).status == 401
        assert (await client.post("/api/login", json=right)).status == 200
        # The success cleared the (name, address) count; the address's is now 2 of 3.
        assert (await client.post("/api/login", json=wrong)).status == 401
        assert (await client.post("/api/login", json=right)).status == 429
        moment[0] += 1.1  # the window (1 s) has passed
        assert (await client.post("/api/login", json=right)).status == 200


async def test_sessions_and_login_limits_in_redis(
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,
) -> None:
    async with running_api(
        migrated_database_url, tmp_path, redis_url=redis_server_url, redis_prefix=redis_prefix
    ) as api:
        sam = await api.sign_in("sam")
        session_id = sam.client.session.cookie_jar.filter_cookies(api.server.make_url("/"))[
            COOKIE
        ].value
        key = f"{redis_prefix}session:{hashlib.sha256(session_id.encode()).hexdigest()}"
        keys = [k.decode() async for k in redis_client.scan_iter(match=f"{redis_prefix}*")]
        assert keys == [key]  # stored under a hash: a dump of Redis holds no usable cookie
        assert 0 < await redis_client.ttl(key) <= 480 * 60
        stored = await redis_client.get(key)
        assert stored is not None
        assert session_id.encode() not in stored

        client = await api.client()
        for _ in range(5):
            bad = await client.post("/api/login", json={"username": "bob", "password": "x"})
            assert bad.status == 401
        assert (
            await client.post("/api/login", json={"username": "bob", "password": "x"})
        ).status == 429
        counters = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}login:*")]
        assert len(counters) == 2  # the name and the address
        for counter in counters:
            assert 0 < await redis_client.pttl(counter) <= 300_000

        assert (await sam.call("POST", "/api/logout")).status == 204
        assert await redis_client.exists(key) == 0


async def test_memory_sessions_expire_when_idle_and_at_their_lifetime() -> None:
    now = [1000.0]
    sessions = MemorySessions(idle=60, lifetime=300, now=lambda: now[0])
    session = await sessions.create(7)
    assert session.id not in repr(session)
    assert session.csrf_token not in repr(session)
    for _ in range(5):
        now[0] += 50
        assert await sessions.get(session.id) == session  # each use restarts the idle time
    now[0] += 61
    assert await sessions.get(session.id) is None
    other = await sessions.create(8)
    for _ in range(5):
        now[0] += 55
        assert await sessions.get(other.id) is not None
    now[0] += 30
    assert await sessions.get(other.id) is None  # used all along, but past its lifetime
    assert await sessions.get("forged") is None


async def test_memory_login_limiter_counts_per_key_in_windows() -> None:
    now = [0.0]
    limiter = MemoryLoginLimiter(max_failures=3, window=10, now=lambda: now[0])
    for _ in range(3):
        assert await limiter.blocked(["user:a", "addr:x"]) is None
        await limiter.failed(["user:a", "addr:x"])
    assert await limiter.blocked(["user:a"]) == 10
    assert await limiter.blocked(["user:b", "addr:x"]) == 10
    assert await limiter.blocked(["user:b", "addr:y"]) is None
    now[0] = 4
    await limiter.clear("user:a")
    assert await limiter.blocked(["user:a"]) is None
    assert await limiter.blocked(["addr:x"]) == 6
    now[0] = 10
    assert await limiter.blocked(["addr:x"]) is None


async def test_a_login_must_be_json_so_no_html_form_can_forge_one(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        client = await api.client()
        forged = await client.post(
            "/api/login",
            data=f'{{"username": "alice", "password": "{PASSWORD}"}}',
            headers={"Content-Type": "text/plain"},
        )
        assert forged.status == 415
        assert COOKIE not in forged.cookies
