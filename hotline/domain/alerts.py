"""The wallboard's alerts: which conditions hold now, and since when.

Pure: the rules take plain figures and ``now``; :class:`AlertBoard` keeps the
alerts that hold, each with the moment it was first raised, and says whether a
new set of conditions changed anything (so the feed pushes only changes).

The rules, per queue (:func:`queue_conditions`):

- ``service_level``: today's service level is known and under its target;
- ``long_wait``: the longest waiting caller has waited more than the limit;
- ``nobody_available``: callers are waiting and no agent of the queue is available.

Besides those, the service raises ``complaint_overdue`` (a complaint past its
committed reply time, from the tickets store) and ``ask`` (an agent asked for a
supervisor on a call); each kind is replaced as a group (:meth:`AlertBoard.replace`)
or raised and resolved one by one (:meth:`AlertBoard.raise_`, :meth:`AlertBoard.resolve`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Alert", "AlertBoard", "Condition", "QueueFigures", "queue_conditions"]


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What the queue rules look at, for one queue at one moment."""

    name: str
    waiting: int
    longest_since: float | None
    available: int
    service_level: float | None
    service_level_target: float
    longest_wait_limit: float


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition that holds: ``key`` names it (the same condition keeps its key),
    ``kind`` is its rule, ``detail`` what the wallboard shows."""

    key: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    """A condition that holds, raised at ``since``."""

    condition: Condition
    since: float

    def to_json(self) -> dict[str, Any]:
        """The alert as the feed and the API send it."""
        return {
            "id": self.condition.key,
            "kind": self.condition.kind,
            "since": self.since,
            **dict(self.condition.detail),
        }


def queue_conditions(figures: QueueFigures, now: float) -> list[Condition]:
    """The queue's conditions that hold at ``now`` (see the module docstring)."""
    name = figures.name
    found: list[Condition] = []
    level = figures.service_level
    if level is not None and level < figures.service_level_target:
        found.append(
            Condition(
                f"queue:{name}:service_level",
                "service_level",
                {"queue": name, "value": level, "target": figures.service_level_target},
            )
        )
    since = figures.longest_since
    if since is not None and now - since > figures.longest_wait_limit:
        found.append(
            Condition(
                f"queue:{name}:long_wait",
                "long_wait",
                {"queue": name, "longest_since": since, "limit": figures.longest_wait_limit},
            )
        )
    if figures.waiting > 0 and figures.available == 0:
        found.append(
            Condition(
                f"queue:{name}:nobody_available",
                "nobody_available",
                {"queue": name, "waiting": figures.waiting},
            )
        )
    return found


class AlertBoard:
    """The alerts that hold now, keyed by their condition's key."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    def replace(self, prefix: str, conditions: Iterable[Condition], now: float) -> bool:
        """Make the alerts whose key starts with ``prefix`` exactly ``conditions``: new ones
        are raised at ``now``, those still holding keep their moment (with the new detail),
        the others are cleared. True if anything changed."""
        wanted = {condition.key: condition for condition in conditions}
        changed = False
        for key in [key for key in self.alerts if key.startswith(prefix) and key not in wanted]:
            del self.alerts[key]
            changed = True
        for key, condition in wanted.items():
            if not key.startswith(prefix):
                raise ValueError(f"condition {key!r} is outside {prefix!r}")
            held = self.alerts.get(key)
            if held is None or held.condition != condition:
                since = held.since if held is not None else now
                self.alerts[key] = Alert(condition, since)
                changed = True
        return changed

    def raise_(self, condition: Condition, now: float) -> Alert:
        """Raise one alert (or keep the one with that key)."""
        held = self.alerts.get(condition.key)
        if held is None:
            held = self.alerts[condition.key] = Alert(condition, now)
        return held

    def resolve(self, key: str) -> Alert | None:
        """Clear one alert; the alert, or ``None`` if it was not raised."""
        return self.alerts.pop(key, None)

    def newest_first(self) -> list[Alert]:
        """Every alert, the most recently raised first."""
        return sorted(self.alerts.values(), key=lambda alert: (-alert.since, alert.condition.key))
