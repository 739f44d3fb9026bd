"""A report as one self-contained HTML page: inline CSS, inline SVG charts, tables.

Nothing is loaded from anywhere (no script, stylesheet, font or image URL), so
the page can be mailed, archived or opened offline. Every value from the
database is escaped. Charts (see :mod:`hotline.reports.charts`): the service
level of each queue per period against the target, the calls per period
stacked by outcome, each agent's rate of rings answered within N rings, and
the satisfaction scores. The tables come first (a supervisor reads numbers),
headed by the service level, the rings answered within N rings and the abandon
rate side by side, so no one figure hides the others. The page is in English or
Chinese (:mod:`hotline.reports.messages`); the generated time is in the report's
time zone, to the second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import date, datetime
from html import escape
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from hotline.reports.aggregate import (
    SATISFACTION_SCORES,
    AgentRow,
    QueueRow,
    RepairRow,
    Report,
    TicketRow,
)
from hotline.reports.charts import PALETTE, Series, bar_chart
from hotline.reports.messages import translate

__all__ = ["render_html"]

_R = TypeVar("_R")

_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
div.headline { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
div.headline div { flex: 1 1 10em; padding: 0.6em 1em; background: #f4f4f4; }
div.headline b { display: block; font-size: 1.8em; }
div.headline span { color: #555; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin: 0.2em 0; }
p.empty { font-size: 1.1em; padding: 1em; background: #f4f4f4; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
td { white-space: nowrap; }
th { background: #f4f4f4; font-weight: 600; }
td.key, th.key { text-align: left; }
tr.total td { font-weight: 600; background: #fafafa; }
.figure { overflow-x: auto; margin: 0.5em 0 1.5em; }
svg.chart .grid { stroke: #e4e4e4; }
svg.chart .axis { stroke: #888; }
svg.chart .target { stroke: #c0392b; stroke-dasharray: 4 3; stroke-width: 1.5; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #444; }
svg.chart text.title { font: 600 14px system-ui, sans-serif; fill: #222; }
svg.chart text.axis-label { font: 12px system-ui, sans-serif; fill: #555; }
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


_LANG: Final = ContextVar("report_lang", default="en")
"""The language of the page being rendered (set by :func:`render_html`)."""


def _t(text: str, **values: object) -> str:
    return translate(_LANG.get(), text, **values)


def _period(value: date | None) -> str:
    if value is None:
        return _t("Total")
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else value.isoformat()


def _name(value: str | None) -> str:
    return _t("All") if value is None else value


def _agent(row: AgentRow) -> str:
    if row.agent is None:
        return _t("All")
    if row.agent_name and row.agent_name != row.agent:
        return f"{row.agent_name} ({row.agent})"
    return row.agent


def _table(
    rows: Sequence[_R],
    columns: Sequence[tuple[str, str, Callable[[_R], Any]]],
    is_total: Callable[[_R], bool],
) -> str:
    """A table: ``columns`` are (heading, tooltip, cell); key columns come first."""
    head = "".join(
        f'<th class="{"key" if i < 2 else ""}" title="{escape(tip)}">{escape(_t(heading))}</th>'
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


def _score(value: float | None) -> str:
    return _DASH if value is None else f"{value:.2f}"


def _survey_columns() -> list[tuple[str, str, Callable[[Any], Any]]]:
    """The post-call survey's columns, for queue and agent rows alike."""
    return [
        ("Survey responses", "calls with a post-call survey score",
         lambda r: r.survey_responses),
        ("Survey score", "average post-call survey score (1-5)",
         lambda r: _score(r.survey_average)),
    ]  # fmt: skip


def _queue_table(report: Report) -> str:
    rings = report.rules.sla_rings
    columns: list[tuple[str, str, Callable[[QueueRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Queue", "the queue the caller asked for", lambda r: _name(r.queue)),
        ("Offered", "calls that arrived", lambda r: r.offered),
        ("Answered", "", lambda r: r.answered),
        ("Abandoned", "the caller hung up before an answer", lambda r: r.abandoned),
        ("While waiting", "abandoned while waiting", lambda r: r.abandoned_waiting),
        ("While ringing", "abandoned while an agent rang", lambda r: r.abandoned_ringing),
        ("Short", "abandons within the short-abandon threshold", lambda r: r.short_abandoned),
        ("Overflowed", "sent out of the hotline after max_wait", lambda r: r.overflowed),
        ("In progress", "not ended when the report was made", lambda r: r.in_progress),
        ("Service level", "answered within the threshold / (calls - short abandons)",
         lambda r: _pct(r.service_level)),
        ("Abandon rate", "abandoned after the short threshold / (calls - short abandons)",
         lambda r: _pct(r.abandon_rate)),
        (_t("Within {rings} rings", rings=rings),
         f"rings answered within {rings} rings / (answered + missed)",
         lambda r: _pct(r.within_rings_rate)),
        ("ASA", "average wait of the answered calls", lambda r: _secs(r.asa)),
        ("AHT", "(talk + wrap-up) / answered calls", lambda r: _secs(r.aht)),
        ("Longest wait", "the longest wait of a call that ended", lambda r: _secs(r.longest_wait)),
        ("Agents logged in", "agents of the queue logged in during the period",
         lambda r: _DASH if r.agents_logged_in is None else r.agents_logged_in),
        *_survey_columns(),
    ]  # fmt: skip
    return _table(report.queues, columns, lambda r: r.period is None or r.queue is None)


def _agent_table(report: Report) -> str:
    rings = report.rules.sla_rings
    columns: list[tuple[str, str, Callable[[AgentRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Agent", "name (id)", _agent),
        ("Offered", "rings offered to the agent", lambda r: r.offered),
        ("Answered", "rings answered", lambda r: r.answered),
        ("Missed", "no answer, busy or unavailable", lambda r: r.missed),
        ("No answer", "ring-no-answer", lambda r: r.missed_no_answer),
        ("Busy", "the device was busy", lambda r: r.missed_busy),
        ("Abandoned", "the caller hung up while it rang", lambda r: r.abandoned),
        (_t("Within {rings} rings", rings=rings),
         f"answered within {rings} rings / (answered + missed)",
         lambda r: _pct(r.within_rings_rate)),
        ("Calls", "calls the agent answered and talked on", lambda r: r.calls_handled),
        ("Service level", "of those calls, answered within the threshold",
         lambda r: _pct(r.service_level)),
        ("ASA", "average wait of those calls", lambda r: _secs(r.asa)),
        ("AHT", "(talk + wrap-up) / those calls", lambda r: _secs(r.aht)),
        *_survey_columns(),
        ("Quality reviews", "calls of the period scored on the quality form",
         lambda r: r.quality_reviews),
        ("Quality score", "average total of those reviews",
         lambda r: _score(r.quality_average)),
    ]  # fmt: skip
    return _table(report.agents, columns, lambda r: r.period is None or r.agent is None)


def _duration(seconds: float) -> str:
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def _agent_time_table(report: Report) -> str:
    reasons = sorted({reason for row in report.agents for reason in row.paused_by_reason})
    columns: list[tuple[str, str, Callable[[AgentRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Agent", "name (id)", _agent),
        ("Logged in", "h:mm:ss logged in", lambda r: _duration(r.login_seconds)),
        ("Paused", "h:mm:ss paused (while logged in)", lambda r: _duration(r.paused_seconds)),
        *[(f"{_t('Paused')}: {reason}", f"paused for {reason}",
           lambda r, reason=reason: _duration(r.paused_by_reason.get(reason, 0.0)))
          for reason in reasons],
        ("Available", "logged in - paused - talk - wrap-up",
         lambda r: _duration(r.available_seconds)),
        ("Talk", "talk time of the calls handled", lambda r: _duration(r.talk_seconds)),
        ("Wrap-up", "wrap-up time after them", lambda r: _duration(r.wrap_up_seconds)),
        ("Occupancy", "(talk + wrap-up) / (logged in - paused)", lambda r: _pct(r.occupancy)),
    ]  # fmt: skip
    return _table(report.agents, columns, lambda r: r.period is None or r.agent is None)


def _repair_table(report: Report) -> str:
    columns: list[tuple[str, str, Callable[[RepairRow], Any]]] = [
        ("Period", "first date of the period", lambda r: _period(r.period)),
        ("Party", "responsible party", lambda r: _name(r.party)),
        ("Completed", "repairs completed", lambda r: r.completed),
        ("On time", "completed by the dispatch due time", lambda r: r.on_time),
        ("Late", "completed after it", lambda r: r.late),
        ("Timeliness", "on time / (on time + late)", lambda r: _pct(r.timeliness)),
    ]
    return _table(report.repairs, columns, lambda r: r.period is None or r.party is None)


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
        ("Callbacks", "callbacks scheduled", lambda r: r.callbacks_scheduled),
        ("Done", "callbacks done", lambda r: r.callbacks_done),
        ("Failed", "callbacks failed for good", lambda r: r.callbacks_failed),
    ]  # fmt: skip
    return _table(report.tickets, columns, lambda r: r.period is None)


def _figure(svg: str) -> str:
    return f'<div class="figure">{svg}</div>'


def _service_level_chart(report: Report, starts: list[date], labels: list[str]) -> str:
    queues = sorted({r.queue for r in report.queues if r.queue is not None})
    levels = {(r.period, r.queue): r.service_level for r in report.queues}
    series = [
        Series(queue, [levels.get((s, queue)) for s in starts], PALETTE[n % len(PALETTE)])
        for n, queue in enumerate(queues)
    ]
    return bar_chart(
        _t("Service level per queue and period"),
        labels,
        series,
        top=1.0,
        label=_pct,
        target=(_t("target"), report.rules.service_level_target),
        x_label=_t("Period"),
        y_label=_t("Service level"),
    )


def _outcome_chart(report: Report, starts: list[date], labels: list[str]) -> str:
    every = {r.period: r for r in report.queues if r.queue is None}

    def values(field: str) -> list[float | None]:
        return [getattr(every[s], field) if s in every else None for s in starts]

    series = [Series(_t(name), values(f), PALETTE[n]) for n, (f, name) in enumerate(_OUTCOMES)]
    return bar_chart(
        _t("Calls per period by outcome"),
        labels,
        series,
        stacked=True,
        x_label=_t("Period"),
        y_label=_t("calls"),
    )


def _rings_chart(report: Report, agents: list[AgentRow]) -> str:
    rings = report.rules.sla_rings
    return bar_chart(
        _t("Rings answered within {rings} rings, per agent", rings=rings),
        [_agent(r) for r in agents],
        [
            Series(
                _t("within {rings} rings", rings=rings),
                [r.within_rings_rate for r in agents],
                PALETTE[0],
            )
        ],
        top=1.0,
        label=_pct,
        x_label=_t("Agent"),
        y_label=_t("Within {rings} rings", rings=rings),
    )


def _call_charts(report: Report) -> list[str]:
    starts = [p.start for p in report.periods]
    labels = [_period(start) for start in starts]
    charts = [
        _service_level_chart(report, starts, labels),
        _outcome_chart(report, starts, labels),
    ]
    agents = [r for r in report.agents if r.period is None and r.agent is not None]
    if agents:
        charts.append(_rings_chart(report, agents))
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
            _t("Satisfaction scores"),
            [str(s) for s in SATISFACTION_SCORES],
            [Series(_t("tickets"), counts, PALETTE[2])],
            x_label=_t("score"),
            y_label=_t("tickets"),
        )
    )


def _headline(report: Report) -> str:
    total = next((r for r in report.queues if r.period is None and r.queue is None), None)
    if total is None:
        return ""
    rings = report.rules.sla_rings
    figures = [
        (_t("Service level"), _pct(total.service_level)),
        (_t("Within {rings} rings", rings=rings), _pct(total.within_rings_rate)),
        (_t("Abandon rate"), _pct(total.abandon_rate)),
        (_t("Offered"), str(total.offered)),
        (_t("Answered"), str(total.answered)),
        (_t("Abandoned"), str(total.abandoned)),
    ]
    cells = "".join(f"<div><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in figures)
    return f'<div class="headline">{cells}</div>'


def render_html(report: Report, lang: str = "en") -> str:
    """The report as a complete HTML document in ``lang`` (``en`` or ``zh``; see the
    module docstring)."""
    token = _LANG.set(lang)
    try:
        return _page(report, lang)
    finally:
        _LANG.reset(token)


def _page(report: Report, lang: str) -> str:
    request = report.request
    rules = report.rules
    title = _t(
        "Hotline report {first} to {last}",
        first=request.first.isoformat(),
        last=request.last.isoformat(),
    )
    generated = report.generated_at.astimezone(ZoneInfo(report.time_zone))
    meta = _t(
        "By {period}, dates inclusive, time zone {zone}; generated {at}.",
        period=_t(request.period),
        zone=report.time_zone,
        at=generated.strftime("%Y-%m-%d %H:%M:%S %z"),
    )
    site = (
        _t(
            "Site {site}: its calls and rings; tickets and agents' time for the whole centre.",
            site=request.site,
        )
        if request.site
        else _t("The whole centre: every site.")
    )
    rule = _t(
        "Service level: answered within {threshold} s, short abandons (within {short} s) "
        "left out, target {target}. Within {rings} rings: rang at most {rings} \u00d7 "
        "{cadence} s.",
        threshold=f"{rules.service_level_threshold:g}",
        short=f"{rules.short_abandon_threshold:g}",
        target=_pct(rules.service_level_target),
        rings=rules.sla_rings,
        cadence=f"{rules.ring_cadence:g}",
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(lang)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(meta)}</p>',
        f'<p class="meta site">{escape(site)}</p>',
        f'<p class="meta">{escape(rule)}</p>',
        _headline(report),
        f"<h2>{escape(_t('Calls'))}</h2>",
    ]
    if report.has_calls:
        parts += [f"<h3>{escape(_t('Per queue'))}</h3>", _queue_table(report)]
        if report.agents:
            parts += [f"<h3>{escape(_t('Per agent'))}</h3>", _agent_table(report)]
    else:
        parts.append(f'<p class="empty">{escape(_t("No calls in this period."))}</p>')
    if any(r.login_seconds for r in report.agents):
        parts += [f"<h3>{escape(_t('Agent time'))}</h3>", _agent_time_table(report)]
    if report.has_calls:
        parts += _call_charts(report)
    parts.append(f"<h2>{escape(_t('Tickets'))}</h2>")
    if report.tickets:
        parts.append(_ticket_table(report))
        if report.repairs:
            parts += [
                f"<h3>{escape(_t('Repairs by responsible party'))}</h3>",
                _repair_table(report),
            ]
        parts.append(_satisfaction_chart(report))
    else:
        parts.append(
            f'<p class="empty">'
            f"{escape(_t('No tickets opened or repairs completed in this period.'))}</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
