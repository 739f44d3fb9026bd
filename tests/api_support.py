"""The JSON API on a real database for the ``test_api_*`` tests: settings, users, clients.

:func:`running_api` serves :func:`hotline.main.create_app` on a loopback port
(aiohttp's ``TestServer``) with a migrated PostgreSQL database, optionally Redis,
and these users (password :data:`PASSWORD`):

========== ============ ========= ===========================================
user       role         agent id  sees
========== ============ ========= ===========================================
``root``   admin                  everything, manages users
``sam``    supervisor             every ticket
``alice``  agent        1001      queue ``support`` (her agent's configuration)
``bob``    agent        1002      queue ``sales`` (his user record)
========== ============ ========= ===========================================

The AMI connection points at a closed port; the engine runs without a PBX.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from hotline.config import Settings, parse_settings
from hotline.main import create_app
from hotline.store.db import Pool
from hotline.store.users import Users
from hotline.web.keys import STORE

TOKEN = "integration-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def api_settings(
    dsn: str,
    folder: Path,
    *,
    redis_url: str = "",
    redis_prefix: str = "hotline:",
    web: dict[str, Any] | None = None,
    tickets: dict[str, Any] | None = None,
) -> Settings:
    """Settings for an API test: three queues, two agents, plain-HTTP cookies
    (``tickets``: more ``[tickets]`` settings, e.g. ``monitor_dir``)."""
    data: dict[str, Any] = {
        "service": {"state_dir": str(folder), "api_token": TOKEN},
        "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
        "database": {"url": dsn, "outbox_dir": str(folder / "outbox")},
        "tickets": {"monitor_dir": "/rec", "callback_max_attempts": 4, **(tickets or {})},
        "web": {"cookie_secure": False, **(web or {})},
        "queues": [{"name": "support"}, {"name": "sales"}, {"name": "billing"}],
        "agents": [
            {"id": "1001", "device": "PJSIP/1001", "queues": ["support"]},
            {"id": "1002", "device": "PJSIP/1002"},
        ],
    }
    if redis_url:
        data["redis"] = {"url": redis_url, "prefix": redis_prefix}
    return parse_settings(data, source="<api test>", env={})


async def add_users(pool: Pool) -> None:
    """The users of the module docstring."""
    users = Users(pool, hasher=FAST)
    await users.create("root", PASSWORD, role="admin")
    await users.create("sam", PASSWORD, role="supervisor")
    await users.create("alice", PASSWORD, role="agent", agent_id="1001")
    await users.create("bob", PASSWORD, role="agent", agent_id="1002", queues=["sales"])


@dataclass
class Signed:
    """A client with a session cookie; :meth:`call` adds the CSRF header."""

    client: TestClient[Any, Any]
    csrf: str
    me: dict[str, Any]

    async def call(
        self, method: str, path: str, *, json: Any = None, csrf: bool = True, **kwargs: Any
    ) -> ClientResponse:
        """Send a request as this user (with the session's CSRF token unless ``csrf`` is
        False)."""
        headers = dict(kwargs.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await self.client.request(method, path, json=json, headers=headers, **kwargs)


@dataclass
class RunningApi:
    """A served application and the clients opened on it."""

    server: TestServer
    settings: Settings
    clients: list[TestClient[Any, Any]] = field(default_factory=list)

    @property
    def pool(self) -> Pool:
        """The application's database pool."""
        return self.server.app[STORE].pool

    async def client(self) -> TestClient[Any, Any]:
        """A new client with a cookie jar of its own."""
        client: TestClient[Any, Any] = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return client

    async def bearer(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        """A request with the integration token."""
        client = self.clients[0] if self.clients else await self.client()
        headers = {**BEARER, **kwargs.pop("headers", {})}
        return await client.request(method, path, headers=headers, **kwargs)

    async def sign_in(self, username: str, password: str = PASSWORD) -> Signed:
        """A new client signed in as ``username``."""
        client = await self.client()
        response = await client.post(
            "/api/login", json={"username": username, "password": password}
        )
        assert response.status == 200, await response.text()
        me = await response.json()
        return Signed(client, me["csrf_token"], me)


@asynccontextmanager
async def running_api(
    dsn: str, folder: Path, *, users: bool = True, **options: Any
) -> AsyncIterator[RunningApi]:
    """Serve the API on ``dsn`` (see the module docstring); ``options`` go to
    :func:`api_settings`."""
    settings = api_settings(dsn, folder, **options)
    server = TestServer(create_app(settings))
    await server.start_server()
    running = RunningApi(server, settings)
    try:
        if users:
            await add_users(running.pool)
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await server.close()
