"""Agents' logged-in and paused time, from ``agent_state_log``, cut into report periods.

Theory of operation
-------------------
The log holds every ``login``, ``logout``, ``pause`` (with its reason) and
``unpause`` of an agent, with its time. An agent's state is two things: logged
in or not, and paused (with a reason) or not; a logout also ends a pause, a
login keeps one (as :class:`hotline.domain.routing.Router` does). The state at
the start of the range comes from the agent's last session event (login or
logout) and last pause event (pause, unpause or logout) before it; the events in
the range then change it. :class:`PresenceBuilder` turns that into segments of
constant state, clips them to the range and to ``now`` (a session still open is
counted up to the moment the report is made), and splits each at the period
boundaries, so every second of logged-in and paused time lands in exactly one
period. Paused time counts only while logged in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = ["AgentTime", "PresenceBuilder", "StateChange"]


@dataclass(frozen=True, slots=True)
class StateChange:
    """One row of ``agent_state_log``."""

    agent: str
    event: str
    reason: str | None
    at: datetime


@dataclass(slots=True)
class AgentTime:
    """An agent's time in one period: logged in, and paused by reason (seconds)."""

    logged_in: float = 0.0
    paused: dict[str, float] = field(default_factory=dict)

    @property
    def paused_total(self) -> float:
        """Every paused second, whatever the reason."""
        return sum(self.paused.values())

    def absorb(self, other: AgentTime) -> None:
        """Add ``other``'s time to this one."""
        self.logged_in += other.logged_in
        for reason, seconds in other.paused.items():
            self.paused[reason] = self.paused.get(reason, 0.0) + seconds


@dataclass(slots=True)
class _State:
    logged_in: bool = False
    pause: str | None = None
    since: datetime | None = None

    def apply(self, change: StateChange) -> None:
        if change.event == "login":
            self.logged_in = True
        elif change.event == "logout":
            self.logged_in = False
            self.pause = None
        elif change.event == "pause":
            self.pause = change.reason or "paused"
        elif change.event == "unpause":
            self.pause = None


class PresenceBuilder:
    """Logged-in and paused seconds per (period start, agent) over ``[start, end)``.

    ``boundaries`` are the aware start times of the periods, in order, the first
    being ``start``; ``labels`` the periods' labels, one per boundary.
    """

    def __init__(
        self,
        boundaries: list[datetime],
        labels: list[date],
        end: datetime,
        now: datetime,
    ) -> None:
        """Cut at ``boundaries``; count nothing after ``end`` or ``now``."""
        self._boundaries = boundaries
        self._labels = labels
        self._end = min(end, max(now, boundaries[0]))
        self._states: dict[str, _State] = {}
        self.times: dict[tuple[date, str], AgentTime] = {}
        self.logged_in: dict[date, set[str]] = {}

    def before(self, change: StateChange) -> None:
        """An event before the range (feed them in time order): sets the starting state."""
        self._states.setdefault(change.agent, _State()).apply(change)

    def add(self, change: StateChange) -> None:
        """An event in the range (feed them in time order per agent)."""
        state = self._states.setdefault(change.agent, _State())
        self._count(change.agent, state, change.at)
        state.apply(change)
        state.since = change.at

    def finish(self) -> None:
        """Count every agent's last state up to the end of the range."""
        for agent, state in self._states.items():
            self._count(agent, state, self._end)
            state.since = self._end

    def _count(self, agent: str, state: _State, until: datetime) -> None:
        start = max(state.since or self._boundaries[0], self._boundaries[0])
        until = min(until, self._end)
        if not state.logged_in or until <= start:
            return
        index = bisect.bisect_right(self._boundaries, start) - 1
        while start < until:
            following = (
                self._boundaries[index + 1] if index + 1 < len(self._boundaries) else self._end
            )
            piece_end = min(until, following)
            label = self._labels[index]
            time = self.times.setdefault((label, agent), AgentTime())
            seconds = (piece_end - start).total_seconds()
            time.logged_in += seconds
            if state.pause is not None:
                time.paused[state.pause] = time.paused.get(state.pause, 0.0) + seconds
            self.logged_in.setdefault(label, set()).add(agent)
            start = piece_end
            index += 1
