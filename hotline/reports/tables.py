"""A report as one table per section, for people: CSV files (one per section, or all in a
zip) and an XLSX workbook (one sheet per section).

Sections: ``queues`` (one row per period and queue; by 15min/30min/hour these are
the intervals), ``agents``, ``tickets`` and ``repairs`` (by responsible party).
The first columns are the period (its first date, an interval's local start
``YYYY-MM-DD HH:MM``, or ``total``) and the queue, agent (with the agent's name)
or party (``*`` for all of them); then the figures of the row. Ratios are
percentages and durations are seconds: in CSV rounded to one decimal (the
header says ``_pct``); in XLSX typed numbers, ratios kept as fractions with a
percentage format (so a sum or chart in the spreadsheet works on the true
figure), durations with one decimal shown, and the header row frozen. An
agent's paused time is one column per pause reason seen in the report
(``paused_<reason>_seconds``). Empty cells have nothing to measure. A text cell a
spreadsheet would take for a formula is prefixed with ``'`` in CSV (XLSX cells
are typed as text, never formulas).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Final

from hotline.reports.aggregate import AgentRow, QueueRow, RepairRow, Report, TicketRow
from hotline.reports.period import SECTIONS

__all__ = ["SECTIONS", "Table", "render_csv_section", "render_xlsx", "render_zip", "tables"]

RATIOS: Final = frozenset(
    {
        "service_level",
        "abandon_rate",
        "within_rings_rate",
        "occupancy",
        "reply_on_time_rate",
        "repair_timeliness",
        "timeliness",
    }
)
_SECONDS: Final = frozenset({"asa", "aht", "longest_wait"})
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Table:
    """One section: its column names, each column's kind, and the rows of typed values.

    A kind is ``text``, ``int``, ``number``, ``seconds`` or ``ratio``."""

    name: str
    columns: list[str]
    kinds: list[str]
    rows: list[list[Any]]


def _kind(name: str, value: Any) -> str:
    if name in RATIOS:
        return "ratio"
    if name in _SECONDS or name.endswith("_seconds"):
        return "seconds"
    if isinstance(value, bool | int):
        return "int"
    return "number"


def _label(period: date | None) -> str:
    if period is None:
        return "total"
    if isinstance(period, datetime):
        return period.strftime("%Y-%m-%d %H:%M")
    return period.isoformat()


def _key(row: Any, key: str | None) -> list[Any]:
    """The row's key cell (``*`` for all of them), if the section has a key."""
    if not key:
        return []
    value = getattr(row, key)
    return [value if value is not None else "*"]


def _columns(
    figures: list[str], sample: Any, key: str | None, extra: list[str]
) -> tuple[list[str], list[str]]:
    """The names and kinds of a section's columns (the kinds from a sample row)."""
    columns = ["period", *([key] if key else []), *figures, *extra]
    kinds = ["text"] * (1 + bool(key))
    kinds += [
        "text" if f == "agent_name" else _kind(f, getattr(sample, f, 0) if sample else 0)
        for f in figures
    ]
    kinds += ["seconds"] * len(extra)
    return columns, kinds


def _table(
    name: str,
    rows: list[Any],
    row_type: type[Any],
    key: str | None,
    reasons: list[str] | None = None,
) -> Table:
    skip = {"period", "paused_by_reason", *([key] if key else [])}
    figures = [f.name for f in fields(row_type) if f.name not in skip]
    extra = [f"paused_{reason}_seconds" for reason in reasons or []]
    columns, kinds = _columns(figures, rows[0] if rows else None, key, extra)
    out: list[list[Any]] = []
    for row in rows:
        values: list[Any] = [_label(row.period), *_key(row, key)]
        values += [getattr(row, f) for f in figures]
        if reasons is not None:
            values += [row.paused_by_reason.get(reason) for reason in reasons]
        out.append(values)
    return Table(name, columns, kinds, out)


def tables(report: Report) -> list[Table]:
    """The report's sections as tables (see the module docstring)."""
    reasons = sorted({reason for row in report.agents for reason in row.paused_by_reason})
    return [
        _table("queues", report.queues, QueueRow, "queue"),
        _table("agents", report.agents, AgentRow, "agent", reasons),
        _table("tickets", report.tickets, TicketRow, None),
        _table("repairs", report.repairs, RepairRow, "party"),
    ]


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "ratio":
        return f"{value * 100:.1f}"
    if kind in ("seconds", "number") and isinstance(value, float):
        return f"{value:.1f}" if kind == "seconds" else f"{value:.2f}"
    text = str(value)
    return "'" + text if kind == "text" and text.startswith(_FORMULA_START) else text


def _csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [f"{c}_pct" if k == "ratio" else c for c, k in zip(table.columns, table.kinds, strict=True)]
    )
    for row in table.rows:
        writer.writerow(
            [_csv_cell(v, k) for v, k in zip(row, table.kinds, strict=True)],
        )
    return out.getvalue().encode()


def render_csv_section(report: Report, section: str) -> bytes:
    """One section of the report as a CSV table."""
    for table in tables(report):
        if table.name == section:
            return _csv(table)
    raise ValueError(f"unknown report section {section!r}")


def render_zip(report: Report) -> bytes:
    """Every section as its own CSV file (``queues.csv``, ...) in one zip."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for table in tables(report):
            info = zipfile.ZipInfo(f"{table.name}.csv", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _csv(table))
    return out.getvalue()


_FORMATS: Final = {"ratio": "0.0%", "seconds": "0.0", "number": "0.00", "int": "0"}


def render_xlsx(report: Report) -> bytes:
    """The report as an XLSX workbook: one sheet per section (see the module docstring)."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import TYPE_STRING
    from openpyxl.styles import Font

    book = Workbook(write_only=False)
    book.remove(book.active)
    bold = Font(bold=True)
    for table in tables(report):
        sheet = book.create_sheet(table.name)
        sheet.append(table.columns)
        for cell in sheet[1]:
            cell.font = bold
        for row in table.rows:
            sheet.append(row)
        for index, kind in enumerate(table.kinds, start=1):
            width = max(len(table.columns[index - 1]) + 2, 10)
            letter = sheet.cell(row=1, column=index).column_letter
            sheet.column_dimensions[letter].width = width
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                if kind == "text":
                    cell.data_type = TYPE_STRING
                else:
                    cell.number_format = _FORMATS[kind]
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
