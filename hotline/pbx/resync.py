"""Build a :class:`PbxSnapshot` from the replies a reconnecting router asks for.

``CoreShowChannels`` gives every live channel with its ``Duration`` (HH:MM:SS),
``Application`` and ``BridgeId``; ``Status`` with ``Variables:`` gives the
contract's channel variables (unset ones read ``(null)``); ``DeviceStateList``
gives device states, but never those of ``Local/`` devices
(``devicestate_local.jsonl``), so a device with a live channel counts as
``INUSE`` here. See ``resync_status.jsonl`` and ``reconnect_while_ringing.jsonl``.

The AMI vocabulary is decoded here, not in the domain: a channel's device from
its name, our own agent legs by their ``hl-`` Uniqueid (the ChannelId we chose),
``HOTLINE_CALLER`` and ``HOTLINE_TICKET`` into :class:`ChannelInfo` fields.

``DBGetTree Family=hotline_journal`` answers one ``DBGetTreeResponse`` per
entry, with no ``Family`` header and ``Key: /hotline_journal/<uniqueid>``; an
empty family is a ``Success`` with ``ListItems: 0`` (``journal_dbgettree.jsonl``).

Values are validated here as in :mod:`hotline.pbx.translate`: a ``Duration``
past :data:`MAX_DURATION` (or not a number) reads 0, callers' numbers and names
lose their control characters, and ``HOTLINE_PRIORITY`` is clamped. A journal
entry whose times are not believable epoch times (NaN, infinities, ``1e300``, an
arrival more than a day in the future, an end before the arrival) is skipped with
a warning; the others get a clamped priority and a cleaned number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Final

import structlog

from hotline.ami.codec import Message
from hotline.domain.events import ChannelInfo, JournalEntry, LineState, PbxSnapshot
from hotline.domain.routing import LEG_ID_PREFIX
from hotline.pbx.translate import (
    EPOCH_RANGE,
    MAX_CLOCK_SKEW,
    PRIORITY_RANGE,
    clamp_priority,
    clean_text,
    device_status,
    line_state,
)

__all__ = [
    "JOURNAL_FAMILY",
    "MAX_DURATION",
    "STATUS_VARIABLES",
    "build_snapshot",
    "device_of",
    "parse_duration",
    "parse_journal",
]

log = structlog.get_logger("hotline.pbx")

JOURNAL_FAMILY: Final = "hotline_journal"
MAX_DURATION: Final = 31 * 86_400
"""The longest believable channel ``Duration`` (seconds); a longer one reads 0."""

_IDLE_STATES: Final = frozenset({"NOT_INUSE", "UNKNOWN", ""})

STATUS_VARIABLES: Final = (
    "HOTLINE_QUEUE",
    "HOTLINE_PRIORITY",
    "HOTLINE_TICKET",
    "HOTLINE_CALLER",
    "HOTLINE_SKILLS",
    "HOTLINE_LANG",
    "HOTLINE_STICKY_AGENT",
    "HOTLINE_ANSWERED_AT",
)


def parse_duration(text: str | None) -> float:
    """``HH:MM:SS`` (or plain seconds) to seconds; 0 for anything unreadable or absurd
    (negative, or longer than :data:`MAX_DURATION`: ``1`` and 400 zeros is not a float)."""
    if not text or len(text) > 32:
        return 0.0
    try:
        parts = [int(part) for part in text.split(":")]
    except ValueError:
        return 0.0
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    if not 0 <= seconds <= MAX_DURATION:
        return 0.0
    return float(seconds)


def parse_journal(items: Iterable[Message]) -> tuple[JournalEntry, ...]:
    """Entries from the ``DBGetTreeResponse`` items of ``DBGetTree Family=hotline_journal``.

    An item's ``Key`` is ``/hotline_journal/<caller Uniqueid>`` and its ``Val``
    reads ``<arrived>|<queue>|<priority>|<number>``; the caller's hangup handler
    appends ``|<ended>``, and for a caller bridged to an agent also
    ``|<answered>|<agent channel>|<agent Uniqueid>|<ticket>``. Items of other
    families and malformed ones are skipped.
    """
    prefix = f"/{JOURNAL_FAMILY}/"
    entries = []
    for item in items:
        key, value = item.get("Key") or "", item.get("Val") or ""
        if not key.startswith(prefix) or len(key) == len(prefix):
            continue
        fields = value.split("|")
        if len(fields) not in (4, 5, 9):
            continue
        try:
            arrived = float(fields[0])
            priority = int(fields[2] or "0")
            ended = float(fields[4]) if len(fields) > 4 else None
            answered = float(fields[5]) if len(fields) == 9 else None
        except ValueError:
            continue
        entry = JournalEntry(key[len(prefix) :], arrived, fields[1], priority, fields[3], ended)
        if answered is not None:
            entry = replace(
                entry,
                answered_at=answered,
                agent_device=device_of(fields[6]),
                agent_leg=fields[7],
                ticket=fields[8],
            )
        entries.append(entry)
    return tuple(entries)


def device_of(channel: str) -> str:
    """The device of a channel name.

    ``Local/2001@agents-00000011;1`` gives ``Local/2001@agents`` and
    ``PJSIP/1001-0000000a`` gives ``PJSIP/1001``.
    """
    name = channel.split(";", 1)[0]
    base, sep, suffix = name.rpartition("-")
    if sep and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix):
        return base
    return name


def _epoch(text: str | None) -> float | None:
    """A dialplan ``STRFTIME(,,%s.%3q)`` time; None when unset or unreadable."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _variables(status: Message | None) -> dict[str, str]:
    if status is None:
        return {}
    variables = {}
    for item in status.getall("Variable"):
        name, sep, value = item.partition("=")
        value = clean_text(value)
        if sep and value != "(null)" and value != "":
            variables[name] = value
    if "HOTLINE_PRIORITY" in variables:
        variables["HOTLINE_PRIORITY"] = str(clamp_priority(variables["HOTLINE_PRIORITY"]))
    return variables


def _channel_info(channel: Message, status: Message | None) -> ChannelInfo:
    """One live channel: its ``CoreShowChannel`` item and its ``Status`` item (variables)."""
    uniqueid = channel.get("Uniqueid") or ""
    try:
        state = line_state(int(channel.get("ChannelState") or "-1"))
    except ValueError:
        state = LineState.OTHER
    variables = _variables(status)
    name = channel.get("Channel") or ""
    return ChannelInfo(
        uniqueid=uniqueid,
        channel=name,
        linkedid=channel.get("Linkedid") or "",
        context=channel.get("Context") or "",
        exten=channel.get("Exten") or "",
        state=state,
        application=channel.get("Application") or "",
        application_data=channel.get("ApplicationData") or "",
        bridge_id=channel.get("BridgeId") or "",
        duration=parse_duration(channel.get("Duration")),
        number=clean_text(channel.get("CallerIDNum")),
        name=clean_text(channel.get("CallerIDName")),
        variables=variables,
        device=device_of(name),
        own_leg=uniqueid.startswith(LEG_ID_PREFIX) and ";" not in uniqueid,
        caller_channel=variables.get("HOTLINE_CALLER", ""),
        ticket=variables.get("HOTLINE_TICKET", ""),
        answered_at=_epoch(variables.get("HOTLINE_ANSWERED_AT")),
    )


def build_snapshot(
    at: float,
    channels: Iterable[Message],
    statuses: Iterable[Message],
    device_states: Iterable[Message] = (),
    journal: Iterable[Message] = (),
) -> PbxSnapshot:
    """Merge ``CoreShowChannel`` and ``Status`` items by Uniqueid into a snapshot."""
    status_by_uid = {status.get("Uniqueid") or "": status for status in statuses}
    infos = [
        _channel_info(channel, status_by_uid.get(channel.get("Uniqueid") or ""))
        for channel in channels
    ]
    states = {
        device.get("Device") or "": (device.get("State") or "").upper() for device in device_states
    }
    for info in infos:
        if info.device and states.get(info.device, "NOT_INUSE") in _IDLE_STATES:
            states[info.device] = "INUSE"
    return PbxSnapshot(
        at=at,
        channels=tuple(infos),
        device_states={device: device_status(state) for device, state in states.items()},
        journal=_believable_journal(parse_journal(journal), at),
    )


def _believable_time(value: float) -> bool:
    low, high = EPOCH_RANGE
    return math.isfinite(value) and low <= value <= high


def _believable_journal(entries: Iterable[JournalEntry], at: float) -> tuple[JournalEntry, ...]:
    """The entries whose times can be believed, with clamped priorities and clean numbers."""
    kept = []
    for entry in entries:
        arrived, ended = entry.arrived_at, entry.ended_at
        if (
            not _believable_time(arrived)
            or (_believable_time(at) and arrived > at + MAX_CLOCK_SKEW)
            or (ended is not None and (not _believable_time(ended) or ended < arrived))
        ):
            log.warning("pbx.journal_entry_skipped", uniqueid=entry.uniqueid, reason="bad times")
            continue
        kept.append(
            replace(
                entry,
                uniqueid=clean_text(entry.uniqueid),
                number=clean_text(entry.number),
                queue=clean_text(entry.queue),
                priority=min(max(entry.priority, PRIORITY_RANGE[0]), PRIORITY_RANGE[1]),
            )
        )
    return tuple(kept)
