"""The outbox's PostgreSQL side: one batch of records in one transaction.

:meth:`PgWriter.write` runs the outbox's ``apply`` on a pooled connection in one
transaction, all within ``write_timeout``. When the database refuses a record's
data (SQLSTATE classes 22 and 23) or a record is malformed, the batch is
written again one record per savepoint, and the records refused are returned
with their error instead of blocking the queue. Anything else (the database
unreachable, a connection lost, a timeout) is raised: the caller keeps the
batch and retries.

On anything but refused data the connection is terminated, not rolled back: on
a stalled or broken link a ROLLBACK would wait too (the server rolls back when
the connection goes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from hotline.store.db import Conn, Pool, is_data_error

__all__ = ["ApplyBatch", "PgWriter", "Refused", "is_poison"]

_T = TypeVar("_T")
_Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

ApplyBatch = Callable[[Conn, Sequence[dict[str, Any]]], Awaitable[None]]
"""Writes records on a connection, inside the outbox's transaction; must be idempotent."""

Refused: TypeAlias = list[tuple[dict[str, Any], str]]
"""Records the database refused, each with the error."""


def is_poison(exc: BaseException) -> bool:
    """Retrying cannot help: the data is refused, or the record is malformed."""
    return is_data_error(exc) or isinstance(exc, KeyError | TypeError | ValueError)


class PgWriter:
    """See the module docstring."""

    def __init__(self, pool: Pool, apply: ApplyBatch, *, write_timeout: float) -> None:
        """Write with ``apply`` on connections of ``pool``."""
        self.pool = pool
        self.apply = apply
        self.write_timeout = write_timeout

    async def write(self, records: Sequence[dict[str, Any]]) -> Refused:
        """Commit ``records``; returns those refused (see the module docstring)."""

        async def body(conn: _Conn) -> None:
            await self.apply(conn, records)

        try:
            await self._in_transaction(body)
        except Exception as exc:
            if not is_poison(exc):
                raise
            return await self._write_each(records)
        return []

    async def _write_each(self, records: Sequence[dict[str, Any]]) -> Refused:
        async def body(conn: _Conn) -> Refused:
            refused: Refused = []
            for record in records:
                try:
                    async with conn.transaction():
                        await self.apply(conn, [record])
                except Exception as exc:
                    if not is_poison(exc):
                        raise
                    refused.append((record, f"{type(exc).__name__}: {exc}"))
            return refused

        return await self._in_transaction(body)

    async def _in_transaction(self, body: Callable[[_Conn], Awaitable[_T]]) -> _T:
        conn: _Conn | None = None
        reusable = False
        try:
            async with asyncio.timeout(self.write_timeout):
                conn = await self.pool.acquire()
                transaction = conn.transaction()
                await transaction.start()
                try:
                    result = await body(conn)
                except Exception as exc:
                    if is_poison(exc):
                        await transaction.rollback()
                        reusable = True
                    raise
                await transaction.commit()
                reusable = True
                return result
        finally:
            if conn is not None:
                if not reusable:
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                await self.pool.release(conn, timeout=self.write_timeout)
