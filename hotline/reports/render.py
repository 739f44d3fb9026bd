"""A report as JSON or CSV (and the dispatch to every format, HTML included).

JSON: one object with what was asked (``period``, ``from``, ``to``,
``time_zone``), ``generated_at``, the ``rules`` the figures were measured
against, the calendar ``periods`` with the dates of each covered, and three lists
of rows, ``queues``, ``agents`` and ``tickets``, with the fields of
:class:`~hotline.reports.aggregate.QueueRow`, :class:`~hotline.reports.aggregate.AgentRow`
and :class:`~hotline.reports.aggregate.TicketRow`. A ``null`` period is the whole
range, a ``null`` queue or agent is all of them, and a ``null`` ratio has nothing
to measure. Seconds and ratios are full-precision numbers.

CSV: one section's table (``section``; without it the ``queues`` table, which by
15min/30min/hour is the intervals), rounded for people, and ``zip`` every
section's table; ``xlsx`` is a workbook of the same tables (see
:mod:`hotline.reports.tables`). There is no table mixing the sections.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date
from typing import Any, Final

from hotline.reports.aggregate import AgentRow, QueueRow, RepairRow, Report, TicketRow
from hotline.reports.page import render_html
from hotline.reports.tables import render_csv_section, render_xlsx, render_zip

__all__ = ["CONTENT_TYPES", "render", "render_json", "report_json"]

CONTENT_TYPES: Final = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}
"""The media type of each format."""


def _value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _row_json(row: QueueRow | AgentRow | TicketRow | RepairRow) -> dict[str, Any]:
    return {f.name: _value(getattr(row, f.name)) for f in fields(row)}


def report_json(report: Report) -> dict[str, Any]:
    """The report as a JSON-able object (see the module docstring)."""
    request = report.request
    return {
        "period": request.period,
        "from": request.first.isoformat(),
        "to": request.last.isoformat(),
        "time_zone": report.time_zone,
        "site": request.site,
        "generated_at": report.generated_at.isoformat(),
        "rules": {f.name: getattr(report.rules, f.name) for f in fields(report.rules)},
        "periods": [
            {"period": p.start.isoformat(), "from": p.first.isoformat(), "to": p.last.isoformat()}
            for p in report.periods
        ],
        "queues": [_row_json(row) for row in report.queues],
        "agents": [_row_json(row) for row in report.agents],
        "tickets": [_row_json(row) for row in report.tickets],
        "repairs": [_row_json(row) for row in report.repairs],
    }


def render_json(report: Report) -> bytes:
    """The report as a JSON document."""
    return (json.dumps(report_json(report), ensure_ascii=False, indent=1) + "\n").encode()


def render(report: Report, fmt: str, section: str | None = None, lang: str = "en") -> bytes:
    """The report in ``fmt`` (``csv``, ``json``, ``html``, ``xlsx`` or ``zip``) as bytes;
    ``section`` picks the table of CSV (default ``queues``, see
    :mod:`hotline.reports.tables`); ``lang`` is the HTML page's language."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv_section(report, section or "queues")
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "zip":
        return render_zip(report)
    if fmt == "html":
        return render_html(report, lang).encode()
    raise ValueError(f"unknown report format {fmt!r}")
