"""A report as JSON or CSV (and the dispatch to every format, HTML included).

JSON: one object with what was asked (``period``, ``from``, ``to``,
``time_zone``), ``generated_at``, the ``rules`` the figures were measured
against, the calendar ``periods`` with the dates of each covered, and three lists
of rows, ``queues``, ``agents`` and ``tickets``, with the fields of
:class:`~hotline.reports.aggregate.QueueRow`, :class:`~hotline.reports.aggregate.AgentRow`
and :class:`~hotline.reports.aggregate.TicketRow`. A ``null`` period is the whole
range, a ``null`` queue or agent is all of them, and a ``null`` ratio has nothing
to measure. Seconds and ratios are full-precision numbers.

CSV: one table, one header (the legacy export; ``section`` gives one section's
table, and ``zip`` every section's, rounded for people, see
:mod:`hotline.reports.tables`; ``xlsx`` is a workbook of the same tables). The
column ``section`` is ``queue``, ``agent`` or ``tickets``;
``period`` is the period's first date or ``total``; ``name`` is the queue or agent,
or ``*`` for all of them; then the union of the sections' fields, empty where a
field does not apply to the section or has nothing to measure. A text cell that a
spreadsheet would take for a formula is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import date
from typing import Any, Final

from hotline.reports.aggregate import AgentRow, QueueRow, RepairRow, Report, TicketRow
from hotline.reports.page import render_html
from hotline.reports.tables import render_csv_section, render_xlsx, render_zip

__all__ = ["CONTENT_TYPES", "CSV_COLUMNS", "render", "render_csv", "render_json", "report_json"]

CONTENT_TYPES: Final = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}
"""The media type of each format."""

_KEYS: Final = frozenset({"period", "queue", "agent"})


def _figures(row_type: type[Any]) -> list[str]:
    return [f.name for f in fields(row_type) if f.name not in _KEYS]


def _union(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return list(seen)


CSV_COLUMNS: Final = [
    "section",
    "period",
    "name",
    *_union(_figures(QueueRow), _figures(AgentRow), _figures(TicketRow)),
]
"""The CSV header."""
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ";".join(f"{_cell(key)}={_cell(seconds)}" for key, seconds in value.items())
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_rows(
    section: str, rows: Sequence[QueueRow | AgentRow | TicketRow], key: str | None
) -> Iterable[list[str]]:
    for row in rows:
        figures = _row_json(row)
        name = figures.pop(key) if key is not None else ""
        period = figures.pop("period")
        values = {
            "section": section,
            "period": period if period is not None else "total",
            "name": name if name is not None else "*",
            **figures,
        }
        yield [_cell(values.get(column)) for column in CSV_COLUMNS]


def render_csv(report: Report) -> bytes:
    """The report as one CSV table (see the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_rows("queue", report.queues, "queue"))
    writer.writerows(_csv_rows("agent", report.agents, "agent"))
    writer.writerows(_csv_rows("tickets", report.tickets, None))
    return out.getvalue().encode()


def render(report: Report, fmt: str, section: str | None = None, lang: str = "en") -> bytes:
    """The report in ``fmt`` (``csv``, ``json``, ``html``, ``xlsx`` or ``zip``) as bytes;
    ``section`` picks one table of CSV (see :mod:`hotline.reports.tables`); ``lang`` is
    the HTML page's language."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report) if section is None else render_csv_section(report, section)
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "zip":
        return render_zip(report)
    if fmt == "html":
        return render_html(report, lang).encode()
    raise ValueError(f"unknown report format {fmt!r}")
