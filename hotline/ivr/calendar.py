"""Business hours with a holiday and make-up-workday calendar.

A day is a working day when it is listed in ``workdays`` (a make-up workday, e.g.
a Saturday worked in exchange for a holiday), or when it is not listed in
``holidays`` and its weekday has hours. Within a working day the office is open
during its weekday's hours (a make-up workday uses ``workday_hours``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["WEEKDAYS", "BusinessCalendar", "next_open", "parse_hours"]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_hours(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` as (opens, closes); raises ``ValueError`` when malformed."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"hours must look like 09:00-18:00, got {text!r}")
    opens, closes = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if closes <= opens:
        raise ValueError(f"hours close before they open: {text!r}")
    return opens, closes


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening hours per weekday, holidays and make-up workdays, in one time zone."""

    time_zone: str = "Asia/Shanghai"
    hours: Mapping[str, tuple[time, time]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    workday_hours: tuple[time, time] = (time(9), time(18))

    def is_open(self, moment: datetime) -> bool:
        """Whether the hotline is staffed at ``moment`` (an aware datetime)."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        day = local.date()
        if day in self.workdays:
            window: tuple[time, time] | None = self.workday_hours
        elif day in self.holidays:
            window = None
        else:
            window = self.hours.get(WEEKDAYS[local.weekday()])
        if window is None:
            return False
        return window[0] <= local.time().replace(tzinfo=None) < window[1]


def next_open(calendar: BusinessCalendar, moment: datetime, *, days: int = 60) -> datetime:
    """The first time at or after ``moment`` the hotline is staffed (``moment`` if none soon)."""
    zone = ZoneInfo(calendar.time_zone)
    local = moment.astimezone(zone)
    for offset in range(days + 1):
        day = local.date().toordinal() + offset
        current = date.fromordinal(day)
        if current in calendar.workdays:
            window: tuple[time, time] | None = calendar.workday_hours
        elif current in calendar.holidays:
            window = None
        else:
            window = calendar.hours.get(WEEKDAYS[current.weekday()])
        if window is None:
            continue
        opens = datetime.combine(current, window[0], zone)
        closes = datetime.combine(current, window[1], zone)
        if closes <= local:
            continue
        return max(opens, local)
    return moment
