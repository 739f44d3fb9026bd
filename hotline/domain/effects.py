"""Effects: what the router asks the engine to do (AMI actions) and the facts it records.

Commands (:class:`OriginateAgentLeg`, :class:`HangupChannel`, :class:`RedirectChannel`,
:class:`SetChannelVariable`) become AMI actions. Facts are immutable records of what
happened, for the stores, the metrics and the live feeds; the router emits them and never
does I/O itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.domain.model import AgentPresence, AgentState, OfferResult, Outcome

__all__ = [
    "AgentPresenceChanged",
    "AgentStateChanged",
    "CallAnswered",
    "CallArrived",
    "CallEnded",
    "CallRequeued",
    "CallbackAttemptEnded",
    "Command",
    "DeleteJournalEntry",
    "Effect",
    "Fact",
    "HangupChannel",
    "OfferEnded",
    "OfferStarted",
    "OriginateAgentLeg",
    "RedirectChannel",
    "RoutingWarning",
    "SetChannelVariable",
    "WrapUpEnded",
]


@dataclass(frozen=True, slots=True)
class OriginateAgentLeg:
    """Ring an agent: ``Originate`` per the integration contract.

    Inbound calls go to the bridge context (``Exten=s``, with ``HOTLINE_CALLER``);
    callbacks go to the outbound context with the customer's number as ``Exten``
    and no caller channel.
    """

    offer_id: str
    device: str
    context: str
    caller_channel: str
    ticket: str
    caller_number: str
    caller_name: str
    timeout: float
    exten: str = "s"


@dataclass(frozen=True, slots=True)
class HangupChannel:
    """Hang up a channel (by name, or by Uniqueid when the name is not known yet)."""

    channel: str
    cause: int = 16


@dataclass(frozen=True, slots=True)
class RedirectChannel:
    """Send a channel to another place in the dialplan (an overflow target)."""

    channel: str
    context: str
    exten: str
    priority: str


@dataclass(frozen=True, slots=True)
class SetChannelVariable:
    """Set a channel variable (``Setvar``, as ``redirect_and_hangup.jsonl`` shows), e.g. a
    transferred caller's ``HOTLINE_QUEUE`` before the ``Redirect`` that re-announces them."""

    channel: str
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class DeleteJournalEntry:
    """The call is recorded: remove its entry from the dialplan's journal (``DBDel``)."""

    uniqueid: str


Command = (
    OriginateAgentLeg | HangupChannel | RedirectChannel | SetChannelVariable | DeleteJournalEntry
)


@dataclass(frozen=True, slots=True)
class CallArrived:
    """A caller started waiting."""

    call_id: str
    ticket: str
    number: str
    queue: str
    priority: int
    at: float
    source: str


@dataclass(frozen=True, slots=True)
class CallRequeued:
    """A caller moved to another queue (overflow) or returned after a failed ring."""

    call_id: str
    queue: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferStarted:
    """An agent leg was originated."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    ticket: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferEnded:
    """One ring ended: when it started and ended, where those times came from, and how."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    ticket: str
    requested_at: float
    ring_started_at: float
    ring_start_source: str
    ended_at: float
    end_source: str
    result: OfferResult

    @property
    def ring_seconds(self) -> float:
        """Seconds from the ring's start to its end."""
        return max(self.ended_at - self.ring_started_at, 0.0)


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """An agent answered a waiting caller."""

    call_id: str
    agent_id: str
    queue: str
    ticket: str
    arrived_at: float
    answered_at: float
    source: str

    @property
    def wait_seconds(self) -> float:
        """Seconds from HotlineCallWaiting to the answer."""
        return max(self.answered_at - self.arrived_at, 0.0)


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call reached its final outcome; everything a call record needs."""

    call_id: str
    channel: str
    linkedid: str
    ticket: str
    number: str
    queue: str
    original_queue: str
    priority: int
    arrived_at: float
    arrival_source: str
    answered_at: float | None
    answered_by: str | None
    talk_ended_at: float | None
    ended_at: float
    end_source: str
    outcome: Outcome
    offers: int

    @property
    def wait_seconds(self) -> float:
        """Seconds waited: to the answer, or to the caller leaving (or being sent away)."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return max(end - self.arrived_at, 0.0)


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    """An agent's wrap-up after an answered call ended (on the engine's clock)."""

    agent_id: str
    call_id: str
    queue: str
    started_at: float
    ended_at: float

    @property
    def seconds(self) -> float:
        """How long the wrap-up lasted."""
        return max(self.ended_at - self.started_at, 0.0)


@dataclass(frozen=True, slots=True)
class CallbackAttemptEnded:
    """One attempt of a callback ended: ``result`` is the customer's (answered, no_answer,
    busy, unavailable) or ``failed`` when the agent leg ended before the customer was
    reached."""

    callback_id: int
    ticket: str
    attempt: int
    agent_id: str
    leg_id: str
    result: str
    at: float
    source: str


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """An agent's display state changed."""

    agent_id: str
    state: AgentState
    previous: AgentState
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class AgentPresenceChanged:
    """An agent logged in or out, or was paused or unpaused (by a command, or by the router
    after missed rings): ``change`` is ``login``, ``logout``, ``pause`` or ``unpause``;
    ``reason`` is the pause's (for ``unpause``, the reason that ended); ``presence`` is
    the agent's persisted state afterwards. A logout also ends a pause."""

    change: str
    reason: str | None
    at: float
    presence: AgentPresence


@dataclass(frozen=True, slots=True)
class RoutingWarning:
    """Something odd but handled (an unknown queue, an event for a vanished call, ...)."""

    code: str
    detail: str
    call_id: str | None = None


Fact = (
    CallArrived
    | CallRequeued
    | OfferStarted
    | OfferEnded
    | CallAnswered
    | CallEnded
    | AgentStateChanged
    | AgentPresenceChanged
    | CallbackAttemptEnded
    | WrapUpEnded
    | RoutingWarning
)
Effect = Command | Fact
