"""AMI messages -> domain events, for the events a router uses; everything else -> None.

This is on the hot path of every AMI event, so it dispatches on the message name
through a table and touches headers only for the few events it translates (the
codec parses a message's headers only when they are read). Times come from the
event's ``Timestamp`` when present (source ``"pbx"``), else from the receive time
(source ``"recv"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hotline.ami.codec import Message
from hotline.domain.events import (
    CallerWaiting,
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DeviceStateChanged,
    DialEnded,
    DialResult,
    DomainEvent,
    LegChannelCreated,
    LineState,
    OriginateResult,
)

__all__ = [
    "CALL_WAITING_EVENT",
    "dial_status",
    "event_time",
    "line_state",
    "originate_reason",
    "translate",
]

CALL_WAITING_EVENT: Final = "HotlineCallWaiting"

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


def dial_status(status: str) -> DialResult:
    """A ``DialEnd`` ``DialStatus`` (any case); an unknown one is ``FAILED``."""
    return _DIAL_STATUSES.get(status.upper(), DialResult.FAILED)


def event_time(message: Message, received_at: float) -> tuple[float, str]:
    """The event's own ``Timestamp`` if it has a valid one, else the receive time."""
    stamp = message.get("Timestamp")
    if stamp:
        try:
            return float(stamp), "pbx"
        except ValueError:
            pass
    return received_at, "recv"


def _int(value: str | None, default: int = 0) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _user_event(message: Message, received_at: float) -> DomainEvent | None:
    if message.get("UserEvent") != CALL_WAITING_EVENT:
        return None
    at, source = event_time(message, received_at)
    skills = (message.get("HotlineSkills") or "").replace(" ", "").split(",")
    return CallerWaiting(
        at=at,
        source=source,
        uniqueid=message.get("Uniqueid") or "",
        channel=message.get("Channel") or "",
        linkedid=message.get("Linkedid") or "",
        number=message.get("CallerIDNum") or "",
        name=message.get("CallerIDName") or "",
        queue=(message.get("HotlineQueue") or "").strip(),
        priority=_int(message.get("HotlinePriority")),
        skills=frozenset(skill for skill in skills if skill),
        lang=message.get("HotlineLang") or None,
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
        at, source, message.get("Device") or "", (message.get("State") or "").upper()
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


def translate(message: Message, received_at: float) -> DomainEvent | None:
    """The domain event an AMI event means, or None if routing does not care."""
    translator = _TRANSLATORS.get(message.name)
    if translator is None or message.kind != "event":
        return None
    return translator(message, received_at)
