"""A report as one self-contained HTML page: inline CSS, inline SVG charts, tables.

Nothing is loaded from anywhere (no script, stylesheet, font or image URL), so
the page can be mailed, archived or opened offline. Every value from the
database is escaped. Charts (see :mod:`hotline.reports.charts`): the service
level of each queue per period against the target, the calls per period
stacked by outcome, each agent's rate of rings answered within N rings, and
the satisfaction scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from html import escape
from typing import Any, Final, TypeVar

from hotline.reports.aggregate import (
    SATISFACTION_SCORES,
    AgentRow,
    QueueRow,
    Report,
    TicketRow,
)
from hotline.reports.charts import PALETTE, Series, bar_chart

__all__ = ["render_html"]

_R = TypeVar("_R")

_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin: 0.2em 0; }
p.empty { font-size: 1.1em; padding: 1em; background: #f4f4f4; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f4; font-weight: 600; }
td.key, th.key { text-align: left; }
tr.total td { font-weight: 600; background: #fafafa; }
.figure { overflow-x: auto; margin: 0.5em 0 1.5em; }
svg.chart .grid { stroke: #e4e4e4; }
svg.chart .axis { stroke: #888; }
svg.chart .target { stroke: #c0392b; stroke-dasharray: 4 3; stroke-width: 1.5; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #444; }
"""
_DASH: Final = "\u2013"
_OUTCOMES: Final = (
    ("answered", "answered"),
    ("abandoned", "abandoned"),
    ("overflowed", "overflowed"),
    ("in_progress", "in progress"),
)


def _pct(value: float | None) -> str:
    return _DASH if value is None else f"{value * 100:.1f} %"


def _secs(value: float | None) -> str:
    return _DASH if value is None else f"{value:.1f} s"


def _period(value: date | None) -> str:
    if value is None:
        return "Total"
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else value.isoformat()


def _name(value: str | None) -> str:
    return "All" if value is None else value


def _table(
    rows: Sequence[_R],
    columns: Sequence[tuple[str, str, Callable[[_R], Any]]],
    is_total: Callable[[_R], bool],
) -> str:
    """A table: ``columns`` are (heading, tooltip, cell); key columns come first."""
    head = "".join(
        f'<th class="{"key" if i < 2 else ""}" title="{escape(tip)}">{escape(heading)}</th>'
        for i, (heading, tip, _) in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"key" if i < 2 else ""}">{escape(str(cell(row)))}</td>'
            for i, (_, _, cell) in enumerate(columns)
        )
        body.append(f'<tr class="{"total" if is_total(row) else ""}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _queue_table(report: Report) -> str:
    rings = report.rules.sla_rings
    columns: list[tuple[str, str, Callable[[QueueRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Queue", "the queue the caller asked for", lambda r: _name(r.queue)),
        ("Offered", "calls that arrived", lambda r: r.offered),
        ("Answered", "", lambda r: r.answered),
        ("Abandoned", "the caller hung up before an answer", lambda r: r.abandoned),
        ("Short", "abandons within the short-abandon threshold", lambda r: r.short_abandoned),
        ("Overflowed", "sent out of the hotline after max_wait", lambda r: r.overflowed),
        ("In progress", "not ended when the report was made", lambda r: r.in_progress),
        ("Service level", "answered within the threshold / (calls - short abandons)",
         lambda r: _pct(r.service_level)),
        ("Abandon rate", "abandoned after the short threshold / (calls - short abandons)",
         lambda r: _pct(r.abandon_rate)),
        (f"Within {rings} rings", f"rings answered within {rings} rings / (answered + missed)",
         lambda r: _pct(r.within_rings_rate)),
        ("ASA", "average wait of the answered calls", lambda r: _secs(r.asa)),
        ("AHT", "(talk + wrap-up) / answered calls", lambda r: _secs(r.aht)),
    ]  # fmt: skip
    return _table(report.queues, columns, lambda r: r.period is None or r.queue is None)


def _agent_table(report: Report) -> str:
    rings = report.rules.sla_rings
    columns: list[tuple[str, str, Callable[[AgentRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Agent", "", lambda r: _name(r.agent)),
        ("Offered", "rings offered to the agent", lambda r: r.offered),
        ("Answered", "rings answered", lambda r: r.answered),
        ("Missed", "no answer, busy or unavailable", lambda r: r.missed),
        ("Abandoned", "the caller hung up while it rang", lambda r: r.abandoned),
        (f"Within {rings} rings", f"answered within {rings} rings / (answered + missed)",
         lambda r: _pct(r.within_rings_rate)),
        ("Calls", "calls the agent answered and talked on", lambda r: r.calls_handled),
        ("Service level", "of those calls, answered within the threshold",
         lambda r: _pct(r.service_level)),
        ("ASA", "average wait of those calls", lambda r: _secs(r.asa)),
        ("AHT", "(talk + wrap-up) / those calls", lambda r: _secs(r.aht)),
    ]  # fmt: skip
    return _table(report.agents, columns, lambda r: r.period is None or r.agent is None)


def _ticket_table(report: Report) -> str:
    columns: list[tuple[str, str, Callable[[TicketRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Tickets", "tickets opened", lambda r: r.tickets),
        ("Complaints", "complaints opened", lambda r: r.complaints),
        ("On time", "replied by the committed reply time", lambda r: r.complaints_on_time),
        ("Late", "replied late, or not replied and past due", lambda r: r.complaints_late),
        ("Pending", "not yet due, or no committed time", lambda r: r.complaints_pending),
        ("Replied on time", "on time / (on time + late)", lambda r: _pct(r.reply_on_time_rate)),
        ("Repairs", "repairs opened", lambda r: r.repairs),
        ("Completed", "repairs completed", lambda r: r.repairs_completed),
        ("On time", "completed by the dispatch due time", lambda r: r.repairs_on_time),
        ("Late", "completed after it", lambda r: r.repairs_late),
        ("Timeliness", "on time / (on time + late)", lambda r: _pct(r.repair_timeliness)),
        ("Rated", "tickets with a satisfaction score", lambda r: r.satisfaction_count),
        ("Average", "average score, 1 to 5",
         lambda r: _DASH if r.satisfaction_average is None else f"{r.satisfaction_average:.2f}"),
        *[(str(s), f"tickets scored {s}", lambda r, s=s: getattr(r, f"satisfaction_{s}"))
          for s in SATISFACTION_SCORES],
    ]  # fmt: skip
    return _table(report.tickets, columns, lambda r: r.period is None)


def _figure(svg: str) -> str:
    return f'<div class="figure">{svg}</div>'


def _call_charts(report: Report) -> list[str]:
    starts = [p.start for p in report.periods]
    labels = [_period(start) for start in starts]
    queues = sorted({r.queue for r in report.queues if r.queue is not None})
    levels = {(r.period, r.queue): r for r in report.queues}
    service_levels = [
        Series(
            queue,
            [levels[(s, queue)].service_level if (s, queue) in levels else None for s in starts],
            PALETTE[n % len(PALETTE)],
        )
        for n, queue in enumerate(queues)
    ]
    every = {r.period: r for r in report.queues if r.queue is None}
    outcomes = [
        Series(
            name,
            [getattr(every[s], field) if s in every else None for s in starts],
            PALETTE[n],
        )
        for n, (field, name) in enumerate(_OUTCOMES)
    ]
    agents = [r for r in report.agents if r.period is None and r.agent is not None]
    rings = report.rules.sla_rings
    charts = [
        bar_chart(
            "Service level per queue and period",
            labels,
            service_levels,
            top=1.0,
            label=_pct,
            target=("target", report.rules.service_level_target),
        ),
        bar_chart("Calls per period by outcome", labels, outcomes, stacked=True),
    ]
    if agents:
        charts.append(
            bar_chart(
                f"Rings answered within {rings} rings, per agent",
                [r.agent or "" for r in agents],
                [
                    Series(
                        f"within {rings} rings", [r.within_rings_rate for r in agents], PALETTE[0]
                    )
                ],
                top=1.0,
                label=_pct,
            )
        )
    return [_figure(chart) for chart in charts]


def _satisfaction_chart(report: Report) -> str:
    total = next((r for r in report.tickets if r.period is None), None)
    if total is None or total.satisfaction_count == 0:
        return ""
    counts: list[float | None] = [
        float(getattr(total, f"satisfaction_{s}")) for s in SATISFACTION_SCORES
    ]
    return _figure(
        bar_chart(
            "Satisfaction scores",
            [str(s) for s in SATISFACTION_SCORES],
            [Series("tickets", counts, PALETTE[2])],
        )
    )


def render_html(report: Report) -> str:
    """The report as a complete HTML document (see the module docstring)."""
    request = report.request
    rules = report.rules
    title = f"Hotline report {request.first.isoformat()} to {request.last.isoformat()}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">By {escape(request.period)}, dates inclusive, time zone '
        f"{escape(report.time_zone)}; generated {escape(report.generated_at.isoformat())}.</p>",
        f'<p class="meta">Service level: answered within {rules.service_level_threshold:g} s, '
        f"short abandons (within {rules.short_abandon_threshold:g} s) left out, target "
        f"{_pct(rules.service_level_target)}. Within {rules.sla_rings} rings: rang at most "
        f"{rules.sla_rings} \u00d7 {rules.ring_cadence:g} s.</p>",
        "<h2>Calls</h2>",
    ]
    if report.has_calls:
        parts += _call_charts(report)
        parts += ["<h3>Per queue</h3>", _queue_table(report)]
        if report.agents:
            parts += ["<h3>Per agent</h3>", _agent_table(report)]
    else:
        parts.append('<p class="empty">No calls in this period.</p>')
    parts.append("<h2>Tickets</h2>")
    if report.tickets:
        parts += [_satisfaction_chart(report), _ticket_table(report)]
    else:
        parts.append('<p class="empty">No tickets opened or repairs completed in this period.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
