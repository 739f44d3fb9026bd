"""What a report asks for: a grouping, an inclusive range of dates, a format; checked.

Dates are calendar dates in the configured time zone and both ends are
included: ``from`` 2026-11-02 ``to`` 2026-11-08 covers 2026-11-02 00:00 to
2026-11-09 00:00 local time. The grouping cuts the range into calendar periods
(PostgreSQL's ``date_trunc``): days, ISO weeks (Monday to Sunday) or months; the
first and last periods are partial when the range does not start or end on their
boundaries, and :func:`periods` says which dates of each are covered.

The intervals ``15min``, ``30min`` and ``hour`` cut each local day into slots
(PostgreSQL's ``date_bin`` on local time) for staffing against the arrival
curve; their label is the slot's local start (a naive :class:`datetime`, which
is a :class:`date` too), and a range of intervals covers at most
:data:`MAX_INTERVAL_DAYS` days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from hotline.reports.messages import LANGUAGES

__all__ = [
    "FORMATS",
    "INTERVALS",
    "MAX_DAYS",
    "MAX_INTERVAL_DAYS",
    "PERIODS",
    "SECTIONS",
    "Period",
    "ReportError",
    "ReportRequest",
    "interval_sql",
    "local_start",
    "parse_request",
    "period_end",
    "period_start",
    "periods",
]

INTERVALS: Final = {"15min": 15, "30min": 30, "hour": 60}
"""The intervals shorter than a day, with their length in minutes."""
PERIODS: Final = ("day", "week", "month", "15min", "30min", "hour")
FORMATS: Final = ("csv", "json", "html", "xlsx", "zip")
SECTIONS: Final = ("queues", "agents", "tickets", "repairs")
MAX_DAYS: Final = 366
"""The longest range one report covers (a leap year): a bound on the work one request asks."""
MAX_INTERVAL_DAYS: Final = 62
"""The longest range a report by interval covers (two months of slots)."""
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SITE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A site's name, as ``[service] pbx_id`` allows."""
_EARLIEST: Final = date(1900, 1, 1)
_LATEST: Final = date(9998, 12, 31)


class ReportError(ValueError):
    """The request is not acceptable: ``fields`` maps each offending field to its problem."""

    def __init__(self, fields: dict[str, str]) -> None:
        """Collect the per-field messages."""
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """A checked request: group by ``period`` over ``first`` to ``last`` (both included)."""

    period: str
    first: date
    last: date
    format: str = "json"
    section: str | None = None
    lang: str = "en"
    site: str | None = None
    """One site's calls and rings (``[service] pbx_id``); None: the whole centre."""

    @property
    def days(self) -> int:
        """How many dates the range covers."""
        return (self.last - self.first).days + 1


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar period: its ``start`` (its label), and the dates of it the range covers.

    For an interval, ``start`` is the slot's local start (a naive datetime) and
    ``first`` and ``last`` its date."""

    start: date
    first: date
    last: date


def _date(name: str, text: str, problems: dict[str, str]) -> date | None:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        problems[name] = f"must be a date YYYY-MM-DD, got {text[:40]!r}"
        return None
    if not _EARLIEST <= day <= _LATEST:
        problems[name] = f"must be from {_EARLIEST} to {_LATEST}, got {text}"
        return None
    return day


def _check_choices(
    period: str, fmt: str, section: str | None, lang: str, problems: dict[str, str]
) -> None:
    """Note every value that is not one of its choices."""
    if lang not in LANGUAGES:
        problems["lang"] = f"must be one of {', '.join(LANGUAGES)}, got {lang[:40]!r}"
    if section is not None and section not in SECTIONS:
        problems["section"] = f"must be one of {', '.join(SECTIONS)}, got {section[:40]!r}"
    elif section is not None and fmt != "csv":
        problems["section"] = "is for format csv only"
    if period not in PERIODS:
        problems["period"] = f"must be one of {', '.join(PERIODS)}, got {period[:40]!r}"
    if fmt not in FORMATS:
        problems["format"] = f"must be one of {', '.join(FORMATS)}, got {fmt[:40]!r}"


def _check_range(period: str, first: date, last: date, problems: dict[str, str]) -> None:
    """Note a range that runs backwards or is longer than allowed."""
    days = (last - first).days + 1
    if first > last:
        problems["to"] = f"must not be before from ({first.isoformat()})"
    elif days > MAX_DAYS:
        problems["to"] = f"the range may cover at most {MAX_DAYS} days"
    elif period in INTERVALS and days > MAX_INTERVAL_DAYS:
        problems["to"] = f"a range by {period} may cover at most {MAX_INTERVAL_DAYS} days"


def parse_request(
    period: str,
    first: str,
    last: str,
    fmt: str = "json",
    section: str | None = None,
    lang: str = "en",
    site: str | None = None,
) -> ReportRequest:
    """Check the raw values of a request; raises :class:`ReportError` naming every bad one.

    ``section`` (queues, agents, tickets, repairs) asks for one table, in CSV only;
    ``lang`` (en, zh) is the language of the HTML page; ``site`` a site's ``pbx_id``
    (None: the whole centre)."""
    problems: dict[str, str] = {}
    _check_choices(period, fmt, section, lang, problems)
    if site is not None and not _SITE.fullmatch(site):
        problems["site"] = f"must be a site name (letters, digits, _.-), got {site[:40]!r}"
    first_date = _date("from", first, problems)
    last_date = _date("to", last, problems)
    if first_date is not None and last_date is not None:
        _check_range(period, first_date, last_date, problems)
    if problems or first_date is None or last_date is None:
        raise ReportError(problems)
    return ReportRequest(period, first_date, last_date, fmt, section, lang, site)


def period_start(period: str, day: date) -> date:
    """The first date of the ``period`` (day, ISO week, month) that contains ``day``."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def _next_start(period: str, start: date) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def interval_sql(period: str) -> timedelta | None:
    """The ``date_bin`` stride of an interval, None for a calendar period."""
    minutes = INTERVALS.get(period)
    return None if minutes is None else timedelta(minutes=minutes)


def period_end(period: str, start: date) -> date:
    """The start of the period after the one starting at ``start`` (a datetime for slots)."""
    minutes = INTERVALS.get(period)
    if minutes is not None:
        assert isinstance(start, datetime)
        return start + timedelta(minutes=minutes)
    return _next_start(period, start)


def local_start(start: date) -> datetime:
    """A period's label as a naive local datetime (midnight for a calendar period)."""
    return start if isinstance(start, datetime) else datetime.combine(start, time())


def periods(request: ReportRequest) -> list[Period]:
    """Every calendar period the range touches, in order, with the dates of it covered."""
    minutes = INTERVALS.get(request.period)
    if minutes is not None:
        slot = datetime.combine(request.first, time())
        end = datetime.combine(request.last + timedelta(days=1), time())
        slots: list[Period] = []
        while slot < end:
            slots.append(Period(slot, slot.date(), slot.date()))
            slot += timedelta(minutes=minutes)
        return slots
    found: list[Period] = []
    start = period_start(request.period, request.first)
    while start <= request.last:
        following = _next_start(request.period, start)
        found.append(
            Period(start, max(start, request.first), min(following - timedelta(1), request.last))
        )
        start = following
    return found
