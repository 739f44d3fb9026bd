"""The reports API: ``GET /api/reports?period=&from=&to=&format=&site=``.

The same report as ``hotline report`` (see :mod:`hotline.reports`), for
supervisors, admins and the integration token (which :mod:`hotline.web.auth`
treats as a supervisor); agents get 403. A bad parameter (unknown period or
format, a date that does not parse, ``from`` after ``to``, a range of more than
:data:`~hotline.reports.period.MAX_DAYS` days) is 422 naming each offending
field. A range without calls or tickets is an empty report, 200.

JSON is the default; ``format=csv`` answers ``text/csv`` as an attachment, and
``format=html`` a self-contained page, served with a Content-Security-Policy that
lets it load nothing at all. Complaints not replied to are judged as of the
service's clock.

The engine shares this event loop, so a report never holds it long: rows stream
from PostgreSQL in batches (the loop runs between them), and the rendering, whose
cost grows with the number of rows, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from hotline.reports.aggregate import AgentRow, QueueRow, RepairRow, TicketRow
from hotline.reports.messages import LANGUAGES
from hotline.reports.period import FORMATS, PERIODS, SECTIONS, ReportError, parse_request
from hotline.reports.queries import build_report
from hotline.reports.render import CONTENT_TYPES, render
from hotline.store.rules import DISPATCH_PARTIES
from hotline.web.auth import INTEGRATION, principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.keys import CLOCK, SETTINGS
from hotline.web.openapi import Api, Input, array, enum, record, scalar, string
from hotline.web.schema import Text, ValidationFailed

__all__ = ["READERS", "REPORT_SCHEMA", "api"]

api = Api()

READERS: Final = frozenset({"supervisor", "admin", INTEGRATION})
"""The roles that may read reports."""

_DATE: Final = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_QUERY: Final = {
    "period": Text(
        enum=PERIODS,
        description="group by 15min, 30min, hour (local slots), day, ISO week or month",
    ),
    "from": Text(max_length=10, pattern=_DATE, description="first date, included (YYYY-MM-DD)"),
    "to": Text(max_length=10, pattern=_DATE, description="last date, included (YYYY-MM-DD)"),
    "format": Text(
        enum=FORMATS, description="json (default), csv, html, xlsx, or zip (a CSV per section)"
    ),
    "section": Text(enum=SECTIONS, description="with format=csv: only this section's table"),
    "lang": Text(enum=LANGUAGES, description="the HTML page's language: en (default) or zh"),
    "site": Text(
        max_length=64,
        pattern="[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        description="one site's calls and rings ([service] pbx_id); default: the whole centre",
    ),
}
_KINDS: Final[dict[str, dict[str, Any]]] = {
    "int": scalar("integer"),
    "float": scalar("number"),
    "float | None": scalar("number", nullable=True),
    "int | None": scalar("integer", nullable=True),
    "dict[str, float]": {"type": "object", "additionalProperties": scalar("number")},
    "str | None": string(nullable=True),
    "date | None": string(nullable=True, fmt="date"),
}


_PERIOD_LABEL: Final = {
    **string(nullable=True),
    "description": "the period's first date, or an interval's local start (YYYY-MM-DDTHH:MM:SS)",
}


_PARTY: Final = enum(DISPATCH_PARTIES, nullable=True)
"""A repair row's responsible party (none: every party)."""


def _row_schema(row_type: type[Any]) -> dict[str, Any]:
    named = {"period": _PERIOD_LABEL, "party": _PARTY}
    return record({f.name: named.get(f.name) or _KINDS[str(f.type)] for f in fields(row_type)})


_DAY: Final = string(fmt="date")
REPORT_SCHEMA: Final = record(
    {
        "period": enum(PERIODS),
        "from": _DAY,
        "to": _DAY,
        "time_zone": string(),
        "site": {**string(nullable=True), "description": "the site (pbx_id); null: every site"},
        "generated_at": string(fmt="date-time"),
        "rules": record(
            {
                "ring_cadence": scalar("number"),
                "sla_rings": scalar("integer"),
                "service_level_threshold": scalar("number"),
                "short_abandon_threshold": scalar("number"),
                "service_level_target": scalar("number"),
            }
        ),
        "periods": array(record({"period": string(), "from": _DAY, "to": _DAY})),
        "queues": array(_row_schema(QueueRow)),
        "agents": array(_row_schema(AgentRow)),
        "tickets": array(_row_schema(TicketRow)),
        "repairs": array(_row_schema(RepairRow)),
    }
)
"""The JSON report (see :mod:`hotline.reports.render`)."""
_HTML_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@api.operation(
    "GET",
    "/api/reports",
    summary="Calls per queue and agent, and ticket figures, by period over inclusive dates "
    "in the configured time zone (supervisors and admins)",
    tag="reports",
    query=_QUERY,
    query_required=frozenset({"period", "from", "to"}),
    response=REPORT_SCHEMA,
    other_media={
        "text/csv": {"type": "string"},
        "text/html": {"type": "string"},
        CONTENT_TYPES["xlsx"]: {"type": "string", "format": "binary"},
        CONTENT_TYPES["zip"]: {"type": "string", "format": "binary"},
    },
)
async def report(request: web.Request, given: Input) -> web.Response:
    """The report, in the format asked for."""
    if principal_of(request).role not in READERS:
        raise json_error(403, "forbidden", message="reports are for supervisors and admins")
    query = given.query
    try:
        wanted = parse_request(
            query["period"],
            query["from"],
            query["to"],
            query.get("format", "json"),
            query.get("section"),
            query.get("lang", "en"),
            query.get("site"),
        )
    except ReportError as exc:
        raise ValidationFailed(exc.fields) from exc
    now = datetime.fromtimestamp(request.app[CLOCK].now(), UTC)
    built = await build_report(store_of(request).pool, wanted, request.app[SETTINGS], now=now)
    media, _, _ = CONTENT_TYPES[wanted.format].partition(";")
    body = await asyncio.to_thread(render, built, wanted.format, wanted.section, wanted.lang)
    response = web.Response(body=body, content_type=media)
    if wanted.format in ("csv", "html"):
        response.charset = "utf-8"
    if wanted.format in ("csv", "xlsx", "zip"):
        part = f"-{wanted.section}" if wanted.section else ""
        dates = f"{wanted.first.isoformat()}-{wanted.last.isoformat()}"
        where = f"-{wanted.site}" if wanted.site else ""
        name = f"hotline-report{where}-{dates}{part}.{wanted.format}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if wanted.format == "html":
        response.headers["Content-Security-Policy"] = _HTML_POLICY
    return response
