"""Connections: the pool, transaction helper, error classification and time conversion.

Repositories take a :data:`Db`, either the pool or one connection, so a caller
can group several repository calls in one transaction of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "Conn",
    "Db",
    "InvalidChange",
    "NotFound",
    "create_pool",
    "from_epoch",
    "is_data_error",
    "to_epoch",
    "transaction",
]

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""One connection, from :func:`asyncpg.connect` or acquired from a pool."""
Db: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Conn"
"""What repositories run on: the pool, or a connection (inside the caller's transaction)."""


class NotFound(LookupError):
    """The object asked for does not exist."""


class InvalidChange(ValueError):
    """A change that the rules (or the schema) refuse; the message says why."""


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, max_size: int = 10, connect_timeout: float = 5.0, command_timeout: float = 30.0
) -> asyncpg.Pool[asyncpg.Record]:
    """A pool that connects lazily (so it can be made while PostgreSQL is down).

    ``jsonb`` columns read and write as Python values.
    """
    pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=connect_timeout,
        command_timeout=command_timeout,
        init=_init_connection,
    )
    return pool


@asynccontextmanager
async def transaction(db: Db) -> AsyncIterator[Conn]:
    """A transaction on ``db`` (a savepoint when ``db`` is already in one)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


def is_data_error(exc: BaseException) -> bool:
    """True when PostgreSQL refused the data itself (SQLSTATE class 22 or 23).

    Retrying such a statement fails again; every other error (connection lost,
    server shutting down, timeouts) may pass on a later attempt.
    """
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    state: str = getattr(exc, "sqlstate", "") or ""
    return state[:2] in ("22", "23")


def from_epoch(seconds: float) -> datetime:
    """Epoch seconds (as facts carry them) to an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def to_epoch(moment: datetime) -> float:
    """An aware datetime to epoch seconds."""
    return moment.timestamp()


def record_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A row as a plain dict."""
    return dict(row.items())
