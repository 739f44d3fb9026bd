"""The migration runner against a real, empty PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from hotline.store.migrate import DEFAULT_MIGRATIONS_DIR, MigrationError, load_migrations, migrate
from tests.support import run_hotline

pytestmark = pytest.mark.integration

CONFIG = """
[[queues]]
name = "support"

[[agents]]
id = "1001"
device = "PJSIP/1001"
queues = ["support"]
"""

EXPECTED_TABLES = {
    "agent_state_log",
    "agent_states",
    "audit_log",
    "call_offers",
    "callback_attempts",
    "callbacks",
    "calls",
    "customer_phones",
    "customers",
    "escalations",
    "fenced_writes",
    "handover_notes",
    "handover_reads",
    "leases",
    "quality_scores",
    "recordings",
    "report_call_rollup",
    "report_offer_rollup",
    "report_repair_rollup",
    "report_rollup_rules",
    "report_ticket_rollup",
    "schema_migrations",
    "site_agents",
    "sites",
    "ticket_events",
    "tickets",
    "users",
}


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of the migrations, free to edit."""
    folder = tmp_path / "migrations"
    shutil.copytree(DEFAULT_MIGRATIONS_DIR, folder)
    return folder


async def fetch_tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


async def fetch_history(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select version, name, checksum from schema_migrations order by version"
        )
    finally:
        await conn.close()
    return [(row["version"], row["name"], row["checksum"]) for row in rows]


async def test_from_zero_every_migration_is_applied_and_recorded(database_url: str) -> None:
    files = load_migrations()
    assert files[0].name == "0001_initial.sql"

    applied = await migrate(database_url)

    assert [m.name for m in applied] == [m.name for m in files]
    assert await fetch_tables(database_url) == EXPECTED_TABLES
    assert await fetch_history(database_url) == [(m.version, m.name, m.checksum) for m in files]


async def test_reapplying_is_a_no_op(database_url: str) -> None:
    await migrate(database_url)
    history = await fetch_history(database_url)

    assert await migrate(database_url) == []
    assert await fetch_history(database_url) == history
    assert await fetch_tables(database_url) == EXPECTED_TABLES


async def test_a_new_file_is_applied_after_the_others(
    database_url: str, migrations_copy: Path
) -> None:
    await migrate(database_url, migrations_copy)
    (migrations_copy / "0099_notes.sql").write_text(
        "alter table customers add column vip boolean not null default false;\n", encoding="utf-8"
    )

    applied = await migrate(database_url, migrations_copy)

    assert [m.name for m in applied] == ["0099_notes.sql"]
    assert (await fetch_history(database_url))[-1][:2] == ("0099", "0099_notes.sql")


async def test_an_edited_applied_migration_is_refused(
    database_url: str, migrations_copy: Path
) -> None:
    await migrate(database_url, migrations_copy)
    initial = migrations_copy / "0001_initial.sql"
    initial.write_text(initial.read_text(encoding="utf-8") + "\n-- tweak\n", encoding="utf-8")
    (migrations_copy / "0099_more.sql").write_text("create table more (id int);\n")

    with pytest.raises(MigrationError, match=r"0001_initial\.sql: edited after it was applied"):
        await migrate(database_url, migrations_copy)
    assert "more" not in await fetch_tables(database_url)


async def test_line_endings_do_not_count_as_an_edit(
    database_url: str, migrations_copy: Path
) -> None:
    await migrate(database_url, migrations_copy)
    initial = migrations_copy / "0001_initial.sql"
    initial.write_bytes(initial.read_bytes().replace(b"\n", b"\r\n"))

    assert await migrate(database_url, migrations_copy) == []


async def test_a_renamed_or_deleted_applied_migration_is_refused(
    database_url: str, migrations_copy: Path
) -> None:
    await migrate(database_url, migrations_copy)
    (migrations_copy / "0001_initial.sql").rename(migrations_copy / "0001_first.sql")
    with pytest.raises(MigrationError, match=r"0001_initial\.sql: applied .* renamed or deleted"):
        await migrate(database_url, migrations_copy)

    (migrations_copy / "0001_first.sql").unlink()
    with pytest.raises(MigrationError, match=r"0001_initial\.sql: applied .* missing"):
        await migrate(database_url, migrations_copy)


async def test_a_new_file_sorting_before_an_applied_one_is_refused(
    database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "0095_late.sql").write_text("create table late (id int);\n")
    await migrate(database_url, migrations_copy)
    (migrations_copy / "0093_early.sql").write_text("create table early (id int);\n")

    with pytest.raises(MigrationError, match=r"0093_early\.sql: sorts before the applied"):
        await migrate(database_url, migrations_copy)
    assert "early" not in await fetch_tables(database_url)


async def test_a_failing_migration_leaves_no_trace(
    database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "9000_broken.sql").write_text(
        "create table half (id int);\ncreate table customers (id int);\n"
    )

    with pytest.raises(MigrationError, match=r"9000_broken\.sql: .*already exists"):
        await migrate(database_url, migrations_copy)

    tables = await fetch_tables(database_url)
    assert "half" not in tables
    assert "customers" in tables
    history = [row[1] for row in await fetch_history(database_url)]
    assert history == [m.name for m in load_migrations()]  # the ones before it stay applied


def test_badly_named_files_are_refused(migrations_copy: Path) -> None:
    (migrations_copy / "fix-things.sql").write_text("select 1;\n")
    with pytest.raises(MigrationError, match=r"fix-things\.sql: a migration must be named"):
        load_migrations(migrations_copy)


def test_duplicate_versions_are_refused(migrations_copy: Path) -> None:
    (migrations_copy / "0001_other.sql").write_text("select 1;\n")
    with pytest.raises(MigrationError, match=r"version 0001 is also used by"):
        load_migrations(migrations_copy)


async def test_concurrent_runners_serialize(database_url: str) -> None:
    results = await asyncio.gather(*(migrate(database_url) for _ in range(4)))

    applied = sorted(len(result) for result in results)
    assert applied == [0, 0, 0, len(load_migrations())]
    assert len(await fetch_history(database_url)) == len(load_migrations())


def run_migrate(config: Path, dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": dsn}
    return run_hotline("migrate", "--config", str(config), *extra, env=env)


async def test_the_migrate_command(
    database_url: str, tmp_path: Path, migrations_copy: Path
) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG, encoding="utf-8")

    first = await asyncio.to_thread(run_migrate, config, database_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"applied {m.name}" for m in load_migrations()]

    again = await asyncio.to_thread(run_migrate, config, database_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "database is up to date"

    initial = migrations_copy / "0001_initial.sql"
    initial.write_text(initial.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
    refused = await asyncio.to_thread(
        run_migrate, config, database_url, "--dir", str(migrations_copy)
    )
    assert refused.returncode == 2
    assert "0001_initial.sql: edited after it was applied" in refused.stderr


async def test_the_migrate_command_explains_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(CONFIG, encoding="utf-8")

    unreachable = await asyncio.to_thread(
        run_migrate, config, "postgresql://nobody@127.0.0.1:1/none"
    )
    assert unreachable.returncode == 2
    assert "cannot reach the database" in unreachable.stderr

    unconfigured = await asyncio.to_thread(run_migrate, config, "")
    assert unconfigured.returncode == 2
    assert "no database configured" in unconfigured.stderr
