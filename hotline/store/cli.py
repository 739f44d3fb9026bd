"""``hotline migrate``: apply the pending migrations to the configured database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg

from hotline.config import ConfigError, load_settings_with_database
from hotline.store.migrate import MigrationError, migrate, migrations_dir

__all__ = ["register"]


def _migrate(args: argparse.Namespace) -> int:
    try:
        settings = load_settings_with_database(args.config)
    except ConfigError as exc:
        print(f"hotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    directory = args.dir or migrations_dir(settings)
    try:
        applied = asyncio.run(migrate(settings.database_url.reveal(), directory))
    except MigrationError as exc:
        print(f"hotline: migration refused: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:
        print(f"hotline: cannot reach the database: {exc}", file=sys.stderr)
        return 2
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"hotline: migration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for migration in applied:
        print(f"applied {migration.name}")
    if not applied:
        print("database is up to date")
    return 0


def register(commands: Any) -> None:
    """Add ``migrate``."""
    parser = commands.add_parser("migrate", help="apply the pending database migrations")
    parser.add_argument("--config", required=True, help="TOML configuration file")
    parser.add_argument("--dir", help="migrations directory (default: [database] migrations_dir)")
    parser.set_defaults(handler=_migrate)
