"""AMI messages -> domain events, for the events a router uses; everything else -> None.

This is on the hot path of every AMI event, so it dispatches on the message name
through a table and touches headers only for the few events it translates (the
codec parses a message's headers only when they are read). Times come from the
event's ``Timestamp`` when present (source ``"pbx"``), else from the receive time
(source ``"recv"``).

PBX values are validated here, at the edge, so the domain only ever sees sane
ones: a ``Timestamp`` that is not a believable epoch time (see :func:`event_time`)
is replaced by the receive time (and the event's source
says ``"recv"``); ``HotlinePriority`` is clamped to :data:`PRIORITY_RANGE`; NUL
and other control characters are removed from the caller's number and name
(and from the ids and queue a caller is recorded under); a ``HotlineCallWaiting``
without ``Uniqueid`` or ``Channel`` raises :class:`PbxValueError`, which the
engine logs, counts and skips.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from hotline.ami.codec import Message
from hotline.domain.events import (
    CallerWaiting,
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DeviceStateChanged,
    DeviceStatus,
    DialEnded,
    DialResult,
    DomainEvent,
    LegChannelCreated,
    LineState,
    OriginateResult,
)

__all__ = [
    "CALL_WAITING_EVENT",
    "EPOCH_RANGE",
    "MAX_CLOCK_SKEW",
    "PRIORITY_RANGE",
    "REJECT_REASONS",
    "TRANSLATED_EVENTS",
    "PbxValueError",
    "clamp_priority",
    "clean_text",
    "device_status",
    "dial_status",
    "event_time",
    "line_state",
    "originate_reason",
    "translate",
]

CALL_WAITING_EVENT: Final = "HotlineCallWaiting"
MAX_CLOCK_SKEW: Final = 86_400.0
"""A ``Timestamp`` further than this (seconds) from the receive time is not believed."""
EPOCH_RANGE: Final = (1e9, 4.2e9)
"""Believable ``Timestamp`` values: from 2001 to 2103 (epoch seconds)."""
PRIORITY_RANGE: Final = (-1000, 1000)
"""``HotlinePriority`` is clamped into this range (inclusive).

Clamped, not rejected: the caller is real and waiting, and a value past the
range still says "most" (or "least") urgent; rejecting would lose the call. The
bound keeps the value inside PostgreSQL's ``integer`` (a larger one made the
arrival record fail) and far above any priority a dialplan sets on purpose.
"""
REJECT_REASONS: Final = ("caller_without_id",)
"""Every :attr:`PbxValueError.reason` the translator uses (the metric starts them at 0)."""
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class PbxValueError(ValueError):
    """An AMI event the service must not act on; ``reason`` is a short, fixed label."""

    def __init__(self, reason: str, detail: str) -> None:
        """``reason`` labels the metric, ``detail`` goes to the log."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# AMI's vocabulary, decoded here so the domain never sees it.
_LINE_STATES: Final = {5: LineState.RINGING, 6: LineState.UP}  # ChannelState (AST_STATE_*)
_ORIGINATE_REASONS: Final = {  # OriginateResponse Reason (AST_CONTROL_* of the failed dial)
    4: DialResult.ANSWERED,
    3: DialResult.NO_ANSWER,
    5: DialResult.BUSY,
}
_DIAL_STATUSES: Final = {  # DialEnd DialStatus
    "ANSWER": DialResult.ANSWERED,
    "BUSY": DialResult.BUSY,
    "NOANSWER": DialResult.NO_ANSWER,
    "CANCEL": DialResult.NO_ANSWER,
    "CHANUNAVAIL": DialResult.UNAVAILABLE,
    "CONGESTION": DialResult.UNAVAILABLE,
}
_DEVICE_STATES: Final = {  # DeviceStateChange State (ast_devstate_str)
    "NOT_INUSE": DeviceStatus.IDLE,
    "INUSE": DeviceStatus.IN_USE,
    "BUSY": DeviceStatus.IN_USE,
    "RINGING": DeviceStatus.IN_USE,
    "RINGINUSE": DeviceStatus.IN_USE,
    "ONHOLD": DeviceStatus.IN_USE,
    "UNAVAILABLE": DeviceStatus.UNAVAILABLE,
}


def line_state(channel_state: int) -> LineState:
    """A ``ChannelState`` number as routing sees it: 5 rings, 6 is up, the rest is other."""
    return _LINE_STATES.get(channel_state, LineState.OTHER)


def originate_reason(reason: int, *, success: bool = False) -> DialResult:
    """An ``OriginateResponse`` ``Reason``: 3 no answer, 5 busy, anything else (0, 1, 8,
    ...) unavailable; a successful response is answered."""
    if success:
        return DialResult.ANSWERED
    result = _ORIGINATE_REASONS.get(reason, DialResult.UNAVAILABLE)
    return DialResult.UNAVAILABLE if result is DialResult.ANSWERED else result


def device_status(state: str) -> DeviceStatus:
    """A ``DeviceStateChange`` ``State`` (any case): NOT_INUSE is idle; INUSE, BUSY,
    RINGING, RINGINUSE and ONHOLD are in use; UNAVAILABLE is unavailable; anything else
    (UNKNOWN, INVALID, ...) is unknown."""
    return _DEVICE_STATES.get(state.upper(), DeviceStatus.UNKNOWN)


def dial_status(status: str) -> DialResult:
    """A ``DialEnd`` ``DialStatus`` (any case); an unknown one is ``FAILED``."""
    return _DIAL_STATUSES.get(status.upper(), DialResult.FAILED)


def event_time(message: Message, received_at: float) -> tuple[float, str]:
    """The event's own ``Timestamp`` if it is believable, else the receive time.

    Believable: a finite number in :data:`EPOCH_RANGE` and, when ``received_at`` is
    itself a real epoch time (not a test clock started at 0 replaying a recording),
    within :data:`MAX_CLOCK_SKEW` of it. NaN, infinities, ``1e300`` or a clock a
    day off are not.
    """
    stamp = message.get("Timestamp")
    if stamp:
        try:
            at = float(stamp)
        except ValueError:
            return received_at, "recv"
        low, high = EPOCH_RANGE
        if not low <= at <= high:  # also False for NaN
            return received_at, "recv"
        if low <= received_at <= high and abs(at - received_at) > MAX_CLOCK_SKEW:
            return received_at, "recv"
        return at, "pbx"
    return received_at, "recv"


def clean_text(value: str | None) -> str:
    """``value`` without NUL and other C0/C1 control characters (``""`` for None)."""
    if not value:
        return ""
    if value.isprintable():
        return value
    return _CONTROL.sub("", value)


def clamp_priority(value: str | None) -> int:
    """A priority header as an integer within :data:`PRIORITY_RANGE` (0 if unreadable)."""
    number = _int(value)
    low, high = PRIORITY_RANGE
    return min(max(number, low), high)


def _int(value: str | None, default: int = 0) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:  # also a string of more than 4300 digits
        return default


def _user_event(message: Message, received_at: float) -> DomainEvent | None:
    if message.get("UserEvent") != CALL_WAITING_EVENT:
        return None
    uniqueid = clean_text(message.get("Uniqueid")).strip()
    channel = clean_text(message.get("Channel")).strip()
    if not uniqueid or not channel:
        missing = "Uniqueid" if not uniqueid else "Channel"
        raise PbxValueError("caller_without_id", f"{CALL_WAITING_EVENT} without {missing}")
    at, source = event_time(message, received_at)
    skills = clean_text(message.get("HotlineSkills")).replace(" ", "").split(",")
    return CallerWaiting(
        at=at,
        source=source,
        uniqueid=uniqueid,
        channel=channel,
        linkedid=clean_text(message.get("Linkedid")),
        number=clean_text(message.get("CallerIDNum")),
        name=clean_text(message.get("CallerIDName")),
        queue=clean_text(message.get("HotlineQueue")).strip(),
        priority=clamp_priority(message.get("HotlinePriority")),
        skills=frozenset(skill for skill in skills if skill),
        lang=clean_text(message.get("HotlineLang")) or None,
        preferred_agent=clean_text(message.get("HotlineAgent")).strip() or None,
    )


def _newchannel(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    return LegChannelCreated(
        at, source, message.get("Uniqueid") or "", message.get("Channel") or ""
    )


def _newstate(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    return ChannelState(
        at,
        source,
        message.get("Uniqueid") or "",
        message.get("Channel") or "",
        line_state(_int(message.get("ChannelState"), -1)),
    )


def _originate_response(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    success = (message.get("Response") or "").lower() == "success"
    return OriginateResult(
        at=at,
        source=source,
        action_id=message.get("ActionID") or "",
        uniqueid=message.get("Uniqueid") or "",
        success=success,
        reason=originate_reason(_int(message.get("Reason"), -1), success=success),
    )


def _hangup(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    return ChannelHungUp(
        at,
        source,
        message.get("Uniqueid") or "",
        message.get("Channel") or "",
        _int(message.get("Cause")),
    )


def _bridge_enter(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    return ChannelBridged(
        at,
        source,
        message.get("Uniqueid") or "",
        message.get("Channel") or "",
        message.get("BridgeUniqueid") or "",
    )


def _device_state(message: Message, received_at: float) -> DomainEvent:
    at, source = event_time(message, received_at)
    return DeviceStateChanged(
        at, source, message.get("Device") or "", device_status(message.get("State") or "")
    )


def _dial_end(message: Message, received_at: float) -> DomainEvent | None:
    uniqueid = message.get("Uniqueid")
    if not uniqueid:
        return None  # an Originate's own dial: no dialing channel
    at, source = event_time(message, received_at)
    return DialEnded(
        at,
        source,
        uniqueid,
        message.get("DestUniqueid") or "",
        dial_status(message.get("DialStatus") or ""),
    )


_TRANSLATORS: Final[dict[str, Callable[[Message, float], DomainEvent | None]]] = {
    "UserEvent": _user_event,
    "Newchannel": _newchannel,
    "Newstate": _newstate,
    "OriginateResponse": _originate_response,
    "Hangup": _hangup,
    "BridgeEnter": _bridge_enter,
    "DeviceStateChange": _device_state,
    "DialEnd": _dial_end,
}

TRANSLATED_EVENTS: Final = frozenset(_TRANSLATORS)
"""Every AMI event name the translator reads; the shipped ``eventfilter`` passes exactly these."""


def translate(message: Message, received_at: float) -> DomainEvent | None:
    """The domain event an AMI event means, or None if routing does not care."""
    translator = _TRANSLATORS.get(message.name)
    if translator is None or message.kind != "event":
        return None
    return translator(message, received_at)
