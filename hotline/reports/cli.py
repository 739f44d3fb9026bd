"""``hotline report``: the period report of the configured database, as CSV, JSON or HTML.

    hotline report --config hotline.toml --period week --from 2026-11-02 \\
        --to 2026-11-29 --format html --out november.html

Dates are inclusive, in ``[service] time_zone``; ``--period`` groups by day, ISO
week or month. Without ``--out`` the report goes to standard output.
``HOTLINE_DATABASE_URL`` overrides ``[database] url``. A bad request (unknown
period or format, a date that does not parse, ``--from`` after ``--to``, a range
longer than :data:`~hotline.reports.period.MAX_DAYS` days), a bad configuration,
an unreachable database or an unwritable output file is explained on stderr,
exit status 2. A range without calls or tickets is an empty report, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from hotline.config import ConfigError, Settings, load_settings_with_database
from hotline.reports.aggregate import Report
from hotline.reports.period import FORMATS, PERIODS, ReportError, ReportRequest, parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import render
from hotline.store.db import create_pool

__all__ = ["register"]


class _Refused(Exception):
    """A problem to explain to the user (exit status 2)."""


def _settings(path: str) -> Settings:
    try:
        return load_settings_with_database(path)
    except ConfigError as exc:
        raise _Refused(f"invalid configuration: {exc}") from exc


async def _build(settings: Settings, request: ReportRequest) -> Report:
    pool = await create_pool(settings.database_url.reveal(), max_size=1)
    try:
        return await build_report(pool, request, settings)
    finally:
        await pool.close()


def _report(settings: Settings, request: ReportRequest) -> Report:
    try:
        return asyncio.run(_build(settings, request))
    except (OSError, TimeoutError) as exc:
        raise _Refused(f"cannot reach the database: {exc}") from exc
    except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError) as exc:
        raise _Refused(f"the database schema is not current (run hotline migrate): {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _Refused(f"the report failed: {type(exc).__name__}: {exc}") from exc


def _write(body: bytes, out: str | None) -> None:
    if out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    try:
        Path(out).write_bytes(body)
    except OSError as exc:
        raise _Refused(f"cannot write {out}: {exc.strerror or exc}") from exc


def _run(args: argparse.Namespace) -> int:
    try:
        start, end = args.start, args.end
        if start is None or end is None:
            # Omitted dates default to today in [service] time_zone.
            today = datetime.now(_settings(args.config).service.zone).date().isoformat()
            end = end or (today if start is None or start <= today else start)
            start = start or end
        try:
            request = parse_request(args.period, start, end, args.format)
        except ReportError as exc:
            names = {"from": "--from", "to": "--to", "period": "--period", "format": "--format"}
            raise _Refused(
                "; ".join(f"{names[field]}: {problem}" for field, problem in exc.fields.items())
            ) from exc
        settings = _settings(args.config)
        _write(render(_report(settings, request), request.format), args.out)
    except _Refused as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    return 0


def register(commands: Any) -> None:
    """Add ``report``."""
    parser = commands.add_parser(
        "report",
        help="calls per queue and agent, and ticket figures, over a range of dates",
        description=(
            "Dates are inclusive, in [service] time_zone; without --from/--to, today there."
        ),
        epilog=(
            "examples:\n"
            "  hotline report --config hotline.toml --period day\n"
            "  hotline report --config hotline.toml --period week --from 2026-11-02 "
            "--to 2026-11-29 --format html --out november.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="TOML configuration file")
    parser.add_argument(
        "--period", required=True, metavar="|".join(PERIODS), help="group by day, week or month"
    )
    parser.add_argument(
        "--from", dest="start", metavar="YYYY-MM-DD", help="first date (default: today)"
    )
    parser.add_argument(
        "--to", dest="end", metavar="YYYY-MM-DD", help="last date (default: today, or --from)"
    )
    parser.add_argument("--format", default="json", metavar="|".join(FORMATS), help="default json")
    parser.add_argument("--out", help="write to this file (default: standard output)")
    parser.set_defaults(handler=_run)
