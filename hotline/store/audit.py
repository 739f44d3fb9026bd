"""The audit log: who read or did what, when. Append-only (a trigger rejects changes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hotline.store.db import Db, jsonable

__all__ = ["AuditEntry", "AuditLog"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-log entry."""

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: Mapping[str, Any]


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(**dict(row.items()))


class AuditLog:
    """The audit-log repository."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def write(
        self,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry, e.g. ``write("alice", "customer.read", "customer", "42")``."""
        row = await self.db.fetchrow(
            "insert into audit_log (actor, action, object_type, object_id, detail) "
            "values ($1, $2, $3, $4, $5) "
            "returning id, at, actor, action, object_type, object_id, detail",
            actor,
            action,
            object_type,
            object_id,
            {key: jsonable(value) for key, value in (detail or {}).items()},
        )
        assert row is not None
        return _entry(row)

    async def find(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first: written in [since, until);
        ``action`` is an action (``customer.read``) or a prefix ending in a dot
        (``supervisor.``)."""
        rows = await self.db.fetch(
            """
            select id, at, actor, action, object_type, object_id, detail from audit_log
            where ($1::text is null or object_type = $1)
              and ($2::text is null or object_id = $2)
              and ($3::text is null or actor = $3)
              and ($4::timestamptz is null or at >= $4)
              and ($6::timestamptz is null or at < $6)
              and ($7::text is null or action = $7
                   or (right($7, 1) = '.' and left(action, length($7)) = $7))
            order by at desc, id desc
            limit $5
            """,
            object_type,
            object_id,
            actor,
            since,
            limit,
            until,
            action,
        )
        return [_entry(row) for row in rows]
