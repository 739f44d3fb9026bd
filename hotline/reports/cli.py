"""``hotline report``: the period report of the configured database, as CSV, JSON or HTML.

    hotline report --config hotline.toml --period week --from 2026-11-02 \\
        --to 2026-11-29 --format html --out november.html

Dates are inclusive, in ``[service] time_zone``; ``--period`` groups by day, ISO
week or month, or by local 15-minute, 30-minute or hour slots (``15min``,
``30min``, ``hour``; a range of at most 62 days). Without ``--out`` the report
goes to standard output. ``--site PBX_ID`` limits the calls and rings to one
site's (``[service] pbx_id``); without it, the whole centre.
``HOTLINE_DATABASE_URL`` overrides ``[database] url``. A bad request (unknown
period or format, a date that does not parse, ``--from`` after ``--to``, a range
longer than :data:`~hotline.reports.period.MAX_DAYS` days, a site that is not a
name), a bad configuration,
an unreachable database or an unwritable output file is explained on stderr,
exit status 2. A range without calls or tickets is an empty report, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from hotline.config import ConfigError, Settings, load_settings_with_database
from hotline.reports.aggregate import Report
from hotline.reports.messages import LANGUAGES
from hotline.reports.period import (
    FORMATS,
    PERIODS,
    SECTIONS,
    ReportError,
    ReportRequest,
    parse_request,
    period_start,
)
from hotline.reports.queries import build_report
from hotline.reports.queuelog import stream_queue_log
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


def _default_start(period: str, last: str) -> str:
    """Without ``--from``: the start of the day, ISO week or month of ``last`` (today by
    default), so ``--period month`` alone is this month so far; ``last`` itself when it
    is not a date (:func:`parse_request` then says so)."""
    try:
        day = date.fromisoformat(last)
    except ValueError:
        return last
    if period not in ("week", "month"):
        return day.isoformat()
    return period_start(period, day).isoformat()


def _run(args: argparse.Namespace) -> int:
    try:
        try:
            first, last = args.start, args.end
            if first is None or last is None:
                today = datetime.now(ZoneInfo(_settings(args.config).service.time_zone)).date()
                last = last or today.isoformat()
                first = first or _default_start(args.period, last)
            request = parse_request(
                args.period, first, last, args.format, args.section, args.lang, args.site
            )
        except ReportError as exc:
            names = {
                "from": "--from",
                "to": "--to",
                "period": "--period",
                "format": "--format",
                "section": "--section",
                "lang": "--lang",
                "site": "--site",
            }
            raise _Refused(
                "; ".join(f"{names[field]}: {problem}" for field, problem in exc.fields.items())
            ) from exc
        settings = _settings(args.config)
        report = _report(settings, request)
        _write(render(report, request.format, request.section, request.lang), args.out)
    except _Refused as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    return 0


async def _queue_log(settings: Settings, first: date, last: date, out: Any) -> int:
    names = {agent.id: agent.name for agent in settings.agents.values()}
    conn = await asyncpg.connect(settings.database_url.reveal())
    lines = 0
    try:
        batches = stream_queue_log(conn, first, last, settings.service.time_zone, names)
        async for batch in batches:
            for line in batch:
                out.write(line + "\n")
                lines += 1
    finally:
        await conn.close()
    return lines


def _run_queue_log(args: argparse.Namespace) -> int:
    try:
        try:
            request = parse_request("day", args.start, args.end)
        except ReportError as exc:
            names = {"from": "--from", "to": "--to"}
            raise _Refused(
                "; ".join(f"{names[field]}: {problem}" for field, problem in exc.fields.items())
            ) from exc
        settings = _settings(args.config)
        target = args.out or args.append
        try:
            out = (
                open(target, "a" if args.append else "w", encoding="utf-8")  # noqa: SIM115
                if target
                else sys.stdout
            )
        except OSError as exc:
            raise _Refused(f"cannot write {target}: {exc.strerror or exc}") from exc
        try:
            asyncio.run(_queue_log(settings, request.first, request.last, out))
        except (OSError, TimeoutError) as exc:
            raise _Refused(f"cannot reach the database: {exc}") from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _Refused(f"the export failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
    except _Refused as exc:
        print(f"hotline queue-log: {exc}", file=sys.stderr)
        return 2
    return 0


def register(commands: Any) -> None:
    """Add ``report`` and ``queue-log``."""
    log = commands.add_parser(
        "queue-log",
        help="the recorded calls in Asterisk's queue_log format",
        description="Dates are inclusive, in [service] time_zone; calls by arrival.",
    )
    log.add_argument("--config", required=True, help="TOML configuration file")
    log.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    log.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    where = log.add_mutually_exclusive_group()
    where.add_argument("--out", help="write to this file (default: standard output)")
    where.add_argument("--append", metavar="FILE", help="append to this file")
    log.set_defaults(handler=_run_queue_log)
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
        "--period",
        default="day",
        metavar="|".join(PERIODS),
        help="group by day, week, month, or 15min/30min/hour slots",
    )
    parser.add_argument(
        "--from", dest="start", metavar="YYYY-MM-DD", help="default: the start of --to's period"
    )
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="default: today")
    parser.add_argument("--format", default="json", metavar="|".join(FORMATS), help="default json")
    parser.add_argument(
        "--section",
        metavar="|".join(SECTIONS),
        help="with --format csv: only this section's table, rounded for people",
    )
    parser.add_argument(
        "--lang", default="en", metavar="|".join(LANGUAGES), help="the HTML page's language"
    )
    parser.add_argument(
        "--site",
        metavar="PBX_ID",
        help="one site's calls and rings ([service] pbx_id); default: the whole centre",
    )
    parser.add_argument("--out", help="write to this file (default: standard output)")
    parser.set_defaults(handler=_run)
