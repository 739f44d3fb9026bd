"""Connections: the pool, the transaction helper, error classification, row mapping.

Repositories take a :data:`Db`, either the pool or one connection, so a caller
can group several repository calls in one transaction of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "Conn",
    "Db",
    "InvalidChange",
    "NotFound",
    "Pool",
    "create_pool",
    "from_row",
    "is_data_error",
    "jsonable",
    "transaction",
]

_T = TypeVar("_T")

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""One connection, from :func:`asyncpg.connect` or acquired from a pool."""
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
"""The connection pool."""
Db: TypeAlias = "Pool | Conn"
"""What repositories run on: the pool, or a connection (inside the caller's transaction)."""


class NotFound(LookupError):
    """The object asked for does not exist."""


class InvalidChange(ValueError):
    """A change that the rules (or the schema) refuse; the message says why."""


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, max_size: int = 10, connect_timeout: float = 5.0, command_timeout: float = 30.0
) -> Pool:
    """A pool that connects lazily (so it can be made while PostgreSQL is down).

    ``jsonb`` columns read and write as Python values.
    """
    pool: Pool = await asyncpg.create_pool(
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


def from_row(cls: type[_T], row: asyncpg.Record) -> _T:
    """A dataclass ``cls`` built from the columns of ``row`` named like its fields."""
    return cls(**{item.name: row[item.name] for item in fields(cls)})  # type: ignore[arg-type]


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 strings, for a jsonb column."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(item) for item in value]
    return value
