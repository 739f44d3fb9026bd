"""``hotline serve``: run the service from a configuration file."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from hotline.ami.client import AmiAuthError
from hotline.config import ConfigError, Settings, load_settings
from hotline.store.migrate import MigrationError
from hotline.web.app import create_app
from hotline.web.keys import AMI

__all__ = ["register", "serve"]

log = structlog.get_logger("hotline.service")


async def serve(settings: Settings) -> None:
    """Run until cancelled (SIGINT/SIGTERM)."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    host, _, port = settings.service.http_listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    log.info("service.listening", http=settings.service.http_listen, config=settings.source)
    try:
        await app[AMI].wait_connected()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"hotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except MigrationError as exc:
        print(f"hotline: cannot migrate the database: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"hotline: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except AmiAuthError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0
    return 0


def register(commands: Any) -> None:
    """Add ``serve``."""
    serve_parser = commands.add_parser("serve", help="run the service")
    serve_parser.add_argument("--config", required=True, help="TOML configuration file")
    serve_parser.set_defaults(handler=_serve)
