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
from hotline.web.keys import AMI, ENGINE

__all__ = ["EXIT_ENGINE_STOPPED", "EngineStopped", "register", "serve"]

EXIT_ENGINE_STOPPED = 4
"""``hotline serve``'s exit status when the engine task ended while serving."""


class EngineStopped(RuntimeError):
    """The engine task ended although nobody stopped the service."""


log = structlog.get_logger("hotline.service")


async def serve(settings: Settings) -> None:
    """Run until cancelled (SIGINT/SIGTERM); raise :class:`EngineStopped` if the engine ends."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    host, _, port = settings.service.http_listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    log.info("service.listening", http=settings.service.http_listen, config=settings.source)
    try:
        await app[AMI].wait_connected()
        await app[ENGINE].ended.wait()
        failure = app[ENGINE].failure
        raise EngineStopped(f"{type(failure).__name__}: {failure}" if failure else "it returned")
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
    except EngineStopped as exc:
        print(f"hotline: the engine stopped ({exc}); exiting", file=sys.stderr)
        return EXIT_ENGINE_STOPPED
    except KeyboardInterrupt:
        return 0
    return 0


def register(commands: Any) -> None:
    """Add ``serve``."""
    serve_parser = commands.add_parser("serve", help="run the service")
    serve_parser.add_argument("--config", required=True, help="TOML configuration file")
    serve_parser.set_defaults(handler=_serve)
