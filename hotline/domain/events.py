"""Domain events: what the router reacts to, already translated from AMI (or from the API).

Each carries ``at`` (epoch seconds) and ``source`` (``"pbx"`` when ``at`` is the
event's own ``Timestamp``, ``"recv"`` when it is the receive time). The router
never reads a clock; the engine passes ``now`` alongside each event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "CallbackDue",
    "CallerWaiting",
    "ChannelBridged",
    "ChannelHungUp",
    "ChannelInfo",
    "ChannelState",
    "DeviceStateChanged",
    "DeviceStatus",
    "DialEnded",
    "DialResult",
    "DomainEvent",
    "JournalEntry",
    "LegChannelCreated",
    "LineState",
    "OriginateRejected",
    "OriginateResult",
    "PbxSnapshot",
]


class LineState(StrEnum):
    """What a channel's new state means to routing (the translator decodes AMI's numbers)."""

    RINGING = "ringing"
    UP = "up"
    OTHER = "other"


class DeviceStatus(StrEnum):
    """A device's aggregate state as routing sees it (the translator decodes AMI's
    ``DeviceStateChange`` words)."""

    IDLE = "idle"
    IN_USE = "in_use"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class DialResult(StrEnum):
    """How ringing or dialing one party ended (decoded from AMI ``Reason``/``DialStatus``).

    The values are the words stored for a callback attempt's result.
    """

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CallerWaiting:
    """``UserEvent: HotlineCallWaiting``: a caller entered the hotline and waits for an agent."""

    at: float
    source: str
    uniqueid: str
    channel: str
    linkedid: str
    number: str
    name: str
    queue: str
    priority: int
    skills: frozenset[str] = frozenset()
    lang: str | None = None
    preferred_agent: str | None = None


@dataclass(frozen=True, slots=True)
class LegChannelCreated:
    """``Newchannel``: a channel now exists (the router keeps only its agent legs)."""

    at: float
    source: str
    uniqueid: str
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelState:
    """``Newstate``: a channel's state changed (it rings, it is up, or something else)."""

    at: float
    source: str
    uniqueid: str
    channel: str
    state: LineState


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """``OriginateResponse``: how an async Originate ended.

    ``success`` is the leg answered (``reason`` is then ``ANSWERED``); otherwise
    ``reason`` says why it did not.
    """

    at: float
    source: str
    action_id: str
    uniqueid: str
    success: bool
    reason: DialResult


@dataclass(frozen=True, slots=True)
class OriginateRejected:
    """The PBX refused the Originate action itself, or it could not be sent."""

    at: float
    source: str
    action_id: str
    message: str
    connection_lost: bool = False


@dataclass(frozen=True, slots=True)
class ChannelHungUp:
    """``Hangup``: a channel is gone."""

    at: float
    source: str
    uniqueid: str
    channel: str
    cause: int


@dataclass(frozen=True, slots=True)
class ChannelBridged:
    """``BridgeEnter``: a channel entered a bridge."""

    at: float
    source: str
    uniqueid: str
    channel: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class DialEnded:
    """``DialEnd`` from a channel's own ``Dial()``: how dialing ``dest_uniqueid`` ended."""

    at: float
    source: str
    uniqueid: str
    dest_uniqueid: str
    status: DialResult


@dataclass(frozen=True, slots=True)
class CallbackDue:
    """A scheduled callback is due: ring an agent, then dial the customer.

    ``attempt`` is the attempt this makes (1 for the first); ``assigned_agent``
    limits it to one agent.
    """

    at: float
    source: str
    callback_id: int
    ticket: str
    number: str
    queue: str
    attempt: int
    assigned_agent: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    """``DeviceStateChange``: a device's aggregate state, decoded (:class:`DeviceStatus`)."""

    at: float
    source: str
    device: str
    state: DeviceStatus


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One live channel, as ``CoreShowChannels`` and ``Status`` describe it after a reconnect."""

    uniqueid: str
    channel: str
    linkedid: str
    context: str
    exten: str
    state: LineState
    application: str
    application_data: str
    bridge_id: str
    duration: float
    number: str
    name: str
    variables: Mapping[str, str] = field(default_factory=dict)
    device: str = ""
    """The device the channel belongs to (``Local/2001@agents``, ``PJSIP/1001``)."""
    own_leg: bool = False
    """The ``;1`` half of an agent leg one of our processes originated (its ChannelId)."""
    caller_channel: str = ""
    """``HOTLINE_CALLER``: the caller an agent leg is for."""
    ticket: str = ""
    """``HOTLINE_TICKET``: the ticket of the call an agent leg is for."""
    answered_at: float | None = None
    """``HOTLINE_ANSWERED_AT``: when an agent leg answered (``hotline-bridge``)."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The dialplan's journal of one inbound caller (AstDB ``hotline_journal``).

    Written when the caller starts waiting; ``ended_at`` is added by the caller's
    hangup handler, with the answer (time, agent leg, ticket) if the caller was
    bridged to an agent. It lets a reconnecting router account for callers who came
    and went while it was disconnected, which no AMI event will ever tell it.
    """

    uniqueid: str
    arrived_at: float
    queue: str
    priority: int
    number: str
    ended_at: float | None = None
    answered_at: float | None = None
    """Set when an agent leg was bridged to the caller (``hotline-bridge``)."""
    agent_device: str = ""
    """The answering agent leg's device, decoded from its channel name."""
    agent_leg: str = ""
    """The answering agent leg's Uniqueid (our offer id)."""
    ticket: str = ""
    """The answering agent leg's ``HOTLINE_TICKET``."""


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    """Everything live on the PBX after a (re)connect: channels, device states, the journal."""

    at: float
    channels: tuple[ChannelInfo, ...]
    device_states: Mapping[str, DeviceStatus] = field(default_factory=dict)
    journal: tuple[JournalEntry, ...] = ()


DomainEvent = (
    CallerWaiting
    | LegChannelCreated
    | ChannelState
    | OriginateResult
    | OriginateRejected
    | ChannelHungUp
    | ChannelBridged
    | DeviceStateChanged
    | DialEnded
    | CallbackDue
)
