"""``hotline serve``: run the service from a configuration file."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from hotline.ami.client import AmiAuthError
from hotline.config import ConfigError, Settings, load_settings
from hotline.ivr.flow import FlowError
from hotline.ivr.service import reload_flows
from hotline.main import create_app
from hotline.store.lease import EXIT_FENCED
from hotline.store.migrate import MigrationError
from hotline.store.sites import SiteConflict
from hotline.web.keys import AMI, ENGINE, LEASE

__all__ = [
    "EXIT_ENGINE_STOPPED",
    "EXIT_FENCED",
    "EngineStopped",
    "HttpListenError",
    "SteppedDown",
    "register",
    "serve",
]

EXIT_ENGINE_STOPPED = 4
"""``hotline serve``'s exit status when the engine task ended while serving."""


class EngineStopped(RuntimeError):
    """The engine task ended although nobody stopped the service."""


class SteppedDown(RuntimeError):
    """This instance lost the PBX's lease it held (fenced); it must restart as a standby."""


log = structlog.get_logger("hotline.service")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class HttpListenError(Exception):
    """The HTTP address (``service.http_listen``) cannot be listened on, e.g. it is taken."""


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly and return.

    Raises :class:`HttpListenError` when the HTTP address cannot be bound; every
    resource started before that is closed first. Raises :class:`EngineStopped`
    when the engine task ends while serving.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    loop.add_signal_handler(signal.SIGHUP, reload_flows, app)
    runner = web.AppRunner(app, handle_signals=False)
    try:
        await runner.setup()
        await _listen(runner, settings)
        await _run_until_stopped(app, stop)
        log.info("service.stopping", reason="signal")
    finally:
        await _cleanup(runner, app)
        for signum in (*_STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(signum)


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    """Bind ``service.http_listen``, or raise :class:`HttpListenError`."""
    host, _, port = settings.service.http_listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    try:
        await site.start()
    except OSError as exc:
        raise HttpListenError(
            f"cannot listen on {settings.service.http_listen} (service.http_listen): "
            f"{os.strerror(exc.errno) if exc.errno else exc}"
        ) from exc
    log.info("service.listening", http=settings.service.http_listen, config=settings.source)


def _check_lease(lease: Any) -> None:
    """Raise :class:`SteppedDown` if the lease (when there is one) was lost."""
    if lease is not None and lease.stepped_down.is_set():
        raise SteppedDown(f"lost the lease of pbx {lease.pbx_id!r} (epoch {lease.epoch})")


async def _run_until_stopped(app: web.Application, stop: asyncio.Event) -> None:
    """Connect, then serve until ``stop``; raise if the lease or the engine goes first."""
    lease = app.get(LEASE)
    await _until(stop, _first(app[AMI].wait_connected(), lease))
    _check_lease(lease)
    await _until(stop, _first(app[ENGINE].ended.wait(), lease))
    _check_lease(lease)
    if not stop.is_set():
        failure = app[ENGINE].failure
        why = f"{type(failure).__name__}: {failure}" if failure else "it returned"
        raise EngineStopped(why)


async def _cleanup(runner: web.AppRunner, app: web.Application) -> None:
    """Close the app; a failure is only logged when stepping down (the database may be gone)."""
    try:
        await runner.cleanup()
    except Exception as exc:  # stepping down: the database may be what failed
        lease = app.get(LEASE)
        if lease is None or not lease.stepped_down.is_set():
            raise
        log.warning("service.cleanup_failed", error=f"{type(exc).__name__}: {exc}")


async def _first(work: Awaitable[object], lease: Any) -> None:
    """Wait for ``work``, or for the lease (when there is one) to be lost."""
    if lease is None:
        await work
        return
    working = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(lease.stepped_down.wait())
    try:
        await asyncio.wait({working, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, lost):
            task.cancel()
    if working.done() and not working.cancelled():
        working.result()


async def _until(stop: asyncio.Event, work: Awaitable[object]) -> None:
    """Wait for ``work`` (raising what it raises) unless ``stop`` is set first."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, stopping):
            task.cancel()
    if working.done() and not working.cancelled():
        working.result()


def _database_refusal(settings: Settings, without_database: bool) -> str | None:
    """Why ``serve`` will not start as configured (database-wise), or ``None``."""
    if settings.database_url.reveal():
        return None
    if not without_database:
        return (
            "no database configured ([database] url or HOTLINE_DATABASE_URL); "
            "pass --without-database to route calls without tickets, users or reports"
        )
    if settings.database.migrate_on_start:
        return "[database] migrate_on_start = true needs a database; unset it or configure one"
    return None


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"hotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    refusal = _database_refusal(settings, getattr(args, "without_database", False))
    if refusal:
        print(f"hotline: {refusal}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except MigrationError as exc:
        print(f"hotline: cannot migrate the database: {exc}", file=sys.stderr)
        return 2
    except SiteConflict as exc:
        print(f"hotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except HttpListenError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 3
    except FlowError as exc:
        print(f"hotline: invalid IVR flows ([agi] flows):\n{exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"hotline: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except AmiAuthError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 3
    except SteppedDown as exc:
        print(f"hotline: stepped down ({exc}); exiting to restart as a standby", file=sys.stderr)
        return EXIT_FENCED
    except EngineStopped as exc:
        print(f"hotline: the engine stopped ({exc}); exiting", file=sys.stderr)
        return EXIT_ENGINE_STOPPED
    except KeyboardInterrupt:
        return 0
    return 0


def register(commands: Any) -> None:
    """Add ``serve``."""
    serve_parser = commands.add_parser(
        "serve",
        help="run the service",
        description=(
            "Run the service: the AMI connection, routing, the JSON API and /metrics, until "
            "SIGTERM or SIGINT. It refuses to start without a database unless "
            "--without-database is given."
        ),
        epilog=(
            "examples:\n"
            "  hotline serve --config /etc/hotline/hotline.toml\n"
            "  hotline serve --config hotline.toml --without-database --log-level DEBUG"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve_parser.add_argument("--config", required=True, help="TOML configuration file")
    serve_parser.add_argument(
        "--without-database",
        action="store_true",
        help="route calls with no database (no tickets, users, reports: those answer 503)",
    )
    serve_parser.set_defaults(handler=_serve)
