"""The live model of the ACD: agents, calls and offers (one ring of one agent for one call).

These are plain mutable records owned by :class:`hotline.domain.routing.Router`;
nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hotline.domain.events import DeviceStatus
from hotline.domain.offerstate import (
    HANGUP_SENT_STATES,
    OPEN_STATES,
    OfferEvent,
    OfferState,
    next_state,
)
from hotline.domain.settings import AgentConfig

__all__ = [
    "Activity",
    "Agent",
    "AgentPresence",
    "AgentState",
    "Call",
    "CallState",
    "Offer",
    "OfferResult",
    "Outcome",
    "TimeSource",
]

TimeSource = str
"""Where a measured time came from: ``"pbx"`` (the event's Timestamp), ``"recv"``
(when the event was received), ``"written"`` (when the Originate was written) or
``"resync"`` (found during a resynchronisation)."""


class Activity(StrEnum):
    """What an agent is doing with the hotline right now."""

    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class AgentState(StrEnum):
    """The one state an agent is shown in (panels, metrics)."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"
    BUSY_ELSEWHERE = "busy_elsewhere"


class CallState(StrEnum):
    """Where an inbound call is in the ACD."""

    WAITING = "waiting"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class Outcome(StrEnum):
    """The one final outcome of every call that arrives."""

    ANSWERED = "answered"
    ABANDONED_WAITING = "abandoned_waiting"
    ABANDONED_RINGING = "abandoned_ringing"
    OVERFLOWED = "overflowed"


class OfferResult(StrEnum):
    """How one ring ended."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """What survives a restart of an agent's state: logged in or not, paused or not (with
    the reason), and since when (``None`` when not logged in / not paused)."""

    agent_id: str
    logged_in: bool
    logged_in_since: float | None
    pause_reason: str | None
    paused_since: float | None


@dataclass(slots=True, eq=False)
class Agent:
    """An agent's live state."""

    config: AgentConfig
    skills: frozenset[str]
    logged_in: bool = False
    activity: Activity = Activity.IDLE
    pause_reason: str | None = None
    device_state: DeviceStatus = DeviceStatus.UNKNOWN
    unavailable_until: float | None = None
    retry_not_before: float = 0.0
    idle_since: float = 0.0
    wrap_up_until: float | None = None
    wrap_up_started: float = 0.0
    wrap_up_call: tuple[str, str] | None = None  # (call id, queue) being wrapped up
    calls_answered: int = 0
    consecutive_misses: int = 0
    offer_id: str | None = None
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    logged_in_since: float = 0.0
    paused_since: float = 0.0

    @property
    def id(self) -> str:
        """The agent's id."""
        return self.config.id

    @property
    def device_busy_elsewhere(self) -> bool:
        """The device is in use, and not by a hotline leg of ours."""
        return self.activity is Activity.IDLE and self.device_state is DeviceStatus.IN_USE

    @property
    def presence(self) -> AgentPresence:
        """The persisted part of the state (see :class:`AgentPresence`)."""
        return AgentPresence(
            self.id,
            self.logged_in,
            self.logged_in_since if self.logged_in else None,
            self.pause_reason,
            self.paused_since if self.pause_reason is not None else None,
        )

    def derive_state(self) -> AgentState:
        """The display state, from the underlying flags."""
        if not self.logged_in:
            return AgentState.LOGGED_OUT
        if self.activity is Activity.RINGING:
            return AgentState.RINGING
        if self.activity is Activity.ON_CALL:
            return AgentState.ON_CALL
        if self.activity is Activity.WRAP_UP:
            return AgentState.WRAP_UP
        if self.pause_reason is not None:
            return AgentState.PAUSED
        if self.unavailable_until is not None or self.device_state is DeviceStatus.UNAVAILABLE:
            return AgentState.UNAVAILABLE
        if self.device_busy_elsewhere:
            return AgentState.BUSY_ELSEWHERE
        return AgentState.AVAILABLE


@dataclass(slots=True, eq=False)
class Call:
    """An inbound call, from its HotlineCallWaiting to its outcome."""

    call_id: str
    channel: str
    linkedid: str
    number: str
    name: str
    queue: str
    priority: int
    skills: frozenset[str]
    lang: str | None
    arrived_at: float
    arrival_source: TimeSource
    queue_entered_at: float
    ticket: str
    seq: int
    state: CallState = CallState.WAITING
    offers: list[str] = field(default_factory=list)
    missed_by: dict[str, int] = field(default_factory=dict)
    overflows: int = 0
    overflow_due: bool = False
    answered_by: str | None = None
    answered_at: float | None = None
    talk_ended_at: float | None = None
    ended_at: float | None = None
    end_source: TimeSource | None = None
    outcome: Outcome | None = None
    original_queue: str = ""
    callback_id: int | None = None
    callback_attempt: int = 0
    callback_result: str | None = None
    assigned_agent: str | None = None
    preferred_agent: str | None = None

    @property
    def is_callback(self) -> bool:
        """True for a callback (an outbound attempt), False for an inbound caller."""
        return self.callback_id is not None


@dataclass(slots=True, eq=False)
class Offer:
    """One ring: the agent leg originated for one call to one agent.

    ``offer_id`` is both the Originate's ActionID and its ChannelId, so the leg's
    ``;1`` Uniqueid equals it and every event of the leg is known from its
    ``Newchannel`` on.
    """

    offer_id: str
    call_id: str
    agent_id: str
    device: str
    queue: str
    requested_at: float
    ring_timeout: float
    ring_started_at: float | None = None
    ring_start_source: TimeSource | None = None
    ended_at: float | None = None
    end_source: TimeSource | None = None
    result: OfferResult | None = None
    leg_channel: str | None = None
    leg_uniqueids: set[str] = field(default_factory=set)
    state: OfferState = OfferState.RINGING
    leg_hung_up: bool = False  # the PBX's Hangup of the leg was seen
    guard_extensions: int = 0

    @property
    def open(self) -> bool:
        """True until the PBX has said how the Originate ended (or it was written off)."""
        return self.state in OPEN_STATES

    @property
    def hangup_sent(self) -> bool:
        """The router has already asked the PBX to hang this (cancelled) ring's leg up."""
        return self.state in HANGUP_SENT_STATES

    def advance(self, event: OfferEvent) -> None:
        """Move along the lifecycle (:mod:`hotline.domain.offerstate`); a bad step raises."""
        self.state = next_state(self.state, event)
