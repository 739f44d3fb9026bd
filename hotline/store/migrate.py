"""The migration runner: ordered SQL files applied once each, in order, under a lock.

Theory of operation
-------------------
A migration is a file ``NNNN_name.sql`` in the migrations directory; ``NNNN``
(four or more digits) orders them and is the version. The runner:

1. takes a session-level ``pg_advisory_lock`` on one connection, so two
   instances starting at once run one after the other (the second then finds
   nothing to do);
2. creates ``schema_migrations`` (version, name, sha256 checksum, applied_at)
   if it does not exist;
3. checks the history before changing anything: every applied version must
   still be there under the same file name with the same checksum, and no
   pending file may sort before an applied one. Any mismatch raises
   :class:`MigrationError` naming the file, and nothing is applied;
4. applies each pending file in its own transaction, together with its
   ``schema_migrations`` row, so a failing file leaves no trace and the
   files before it stay applied.

Checksums are taken over the file's text with line endings normalised to LF,
so a checkout with CRLF does not look edited.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from hotline.config import Settings
from hotline.store.db import Conn

__all__ = [
    "DEFAULT_MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "migrate",
]

DEFAULT_MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[1] / "migrations"
"""``hotline/migrations/``: shipped inside the package (package data)."""

_FILE: Final = re.compile(r"^(\d{4,})_([a-z0-9_]+)\.sql$")
_LOCK_KEY: Final = 0x686F746C696E65  # "hotline"
_HISTORY: Final = """
create table if not exists schema_migrations (
    version     text primary key,
    name        text not null,
    checksum    text not null,
    applied_at  timestamptz not null default now()
)
"""


class MigrationError(RuntimeError):
    """The migrations cannot be applied; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file."""

    version: str
    name: str
    sql: str
    checksum: str


def load_migrations(directory: str | Path = DEFAULT_MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``directory``, in order.

    Every ``.sql`` file must be named ``NNNN_name.sql``, and versions must be unique.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise MigrationError(f"{folder}: migrations directory not found")
    migrations: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration must be named NNNN_name.sql")
        version = match.group(1)
        if version in migrations:
            raise MigrationError(
                f"{path}: version {version} is also used by {migrations[version].name}"
            )
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        migrations[version] = Migration(version, path.name, text, checksum)
    return sorted(migrations.values(), key=lambda m: int(m.version))


def _check_history(
    migrations: list[Migration], applied: dict[str, tuple[str, str]], folder: str
) -> list[Migration]:
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items(), key=lambda item: int(item[0])):
        migration = by_version.get(version)
        if migration is None or migration.name != name:
            found = f" (found {migration.name} instead)" if migration is not None else ""
            raise MigrationError(
                f"{folder}/{name}: applied to the database but missing from the "
                f"migrations directory{found}; it was renamed or deleted"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{folder}/{name}: edited after it was applied (checksum {checksum[:12]} "
                f"in the database, {migration.checksum[:12]} on disk); "
                "write a new migration instead of editing an applied one"
            )
    pending = [m for m in migrations if m.version not in applied]
    _check_order(pending, applied, folder)
    return pending


def _check_order(
    pending: list[Migration], applied: dict[str, tuple[str, str]], folder: str
) -> None:
    """A pending migration must sort after every applied one."""
    if applied and pending:
        latest = max(applied, key=int)
        early = [m for m in pending if int(m.version) < int(latest)]
        if early:
            raise MigrationError(
                f"{folder}/{early[0].name}: sorts before the applied {applied[latest][0]}; "
                "give it a higher number"
            )


async def apply_migrations(
    conn: Conn, directory: str | Path = DEFAULT_MIGRATIONS_DIR
) -> list[Migration]:
    """Apply the pending migrations on ``conn``; returns those applied (empty: up to date)."""
    migrations = load_migrations(directory)
    await conn.execute("select pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_HISTORY)
        rows = await conn.fetch("select version, name, checksum from schema_migrations")
        applied = {row["version"]: (row["name"], row["checksum"]) for row in rows}
        pending = _check_history(migrations, applied, str(directory))
        for migration in pending:
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "insert into schema_migrations (version, name, checksum) "
                        "values ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{directory}/{migration.name}: {exc}") from exc
        return pending
    finally:
        if not conn.is_closed():
            await conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)


async def migrate(
    dsn: str, directory: str | Path = DEFAULT_MIGRATIONS_DIR, *, timeout: float = 10.0
) -> list[Migration]:
    """Connect to ``dsn`` and apply the pending migrations."""
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        return await apply_migrations(conn, directory)
    finally:
        await conn.close()


def migrations_dir(settings: Settings) -> str:
    """The configured migrations directory, or the source tree's ``migrations/``."""
    return settings.database.migrations_dir or str(DEFAULT_MIGRATIONS_DIR)
