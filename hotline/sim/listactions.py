"""The simulated PBX's listing actions: ``Status``, ``CoreShowChannels``, ``Command``
(``core show channels``), ``DeviceStateList`` and ``ExtensionStateList``, answered
as Asterisk 22 answers them (a response, the items as events, a ``...Complete``).
"""

from __future__ import annotations

from typing import Final

from hotline.ami.codec import Message
from hotline.sim.amiserver import AmiSession
from hotline.sim.channels import STATE_DESC, Channel, Pairs
from hotline.sim.core import Core

__all__ = [
    "command",
    "complete",
    "core_show_channels",
    "device_state_list",
    "extension_state_list",
    "status",
]

_UNKNOWN_COMMAND: Final = (
    "No such command '{0}' (type 'core show help {0}' for other possible commands)"
)


def status(core: Core, session: AmiSession, message: Message) -> None:
    """``Status``: one ``Status`` event per channel (or the one named), with ``Variables``."""
    name = message.get("Channel") or ""
    channels: list[Channel]
    if name:
        channel = core.channels.get(name)
        if channel is None:
            session.send_error(message, "No such channel")
            return
        channels = [channel]
    else:
        channels = list(core.channels.by_name.values())
    wanted = [v.strip() for v in (message.get("Variables") or "").split(",") if v.strip()]
    action_id = message.get("ActionID")
    tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
    session.send_response(
        message, "Success", [("EventList", "start"), ("Message", "Channel status will follow")]
    )
    now = core.clock.now()
    for channel in channels:
        pairs: Pairs = [("Event", "Status"), ("Privilege", "Call"), *channel.snapshot()]
        pairs += _status_details(channel, now)
        pairs += [("Variable", f"{v}={channel.variables.get(v, '(null)')}") for v in wanted]
        session.send(pairs + tail)
    complete(session, "StatusComplete", action_id, len(channels), items=True)


def core_show_channels(core: Core, session: AmiSession, message: Message) -> None:
    """``CoreShowChannels``: one ``CoreShowChannel`` event per channel."""
    action_id = message.get("ActionID")
    head: Pairs = [("ActionID", action_id)] if action_id is not None else []
    session.send_response(
        message, "Success", [("EventList", "start"), ("Message", "Channels will follow")]
    )
    now = core.clock.now()
    channels = list(core.channels.by_name.values())
    for channel in channels:
        session.send(
            [
                ("Event", "CoreShowChannel"),
                *head,
                *channel.snapshot(),
                ("Application", channel.app or ""),
                ("ApplicationData", channel.app_data),
                ("Duration", _hms(now - channel.created_at)),
                ("BridgeId", channel.bridge.uniqueid if channel.bridge else ""),
            ]
        )
    complete(session, "CoreShowChannelsComplete", action_id, len(channels))


def command(core: Core, session: AmiSession, message: Message) -> None:
    """``Command``: only ``core show channels``; anything else as Asterisk refuses it."""
    command = " ".join((message.get("Command") or "").split())
    if command == "core show channels":
        output = _core_show_channels_text(core)
        pairs: Pairs = [("Message", "Command output follows")]
        session.send_response(message, "Success", pairs + [("Output", line) for line in output])
        return
    session.send_response(
        message,
        "Error",
        [("Message", "Command output follows"), ("Output", _UNKNOWN_COMMAND.format(command))],
    )


def _core_show_channels_text(core: Core) -> list[str]:
    line = "{:<64.64} {:<32.32} {:<7.7} {:<30.30}"
    lines = [line.format("Channel", "Location", "State", "Application(Data)")]
    for channel in core.channels.by_name.values():
        location = f"{channel.exten}@{channel.context}:{channel.priority}"
        app = f"{channel.app}({channel.app_data})" if channel.app else "(None)"
        lines.append(line.format(channel.name, location, STATE_DESC[channel.state], app))
    channels, calls = (
        len(core.channels),
        len({ch.linkedid for ch in core.channels.by_name.values()}),
    )
    lines.append(f"{channels} active channel{'' if channels == 1 else 's'}")
    lines.append(f"{calls} active call{'' if calls == 1 else 's'}")
    processed = core.channels.created
    lines.append(f"{processed} call{'' if processed == 1 else 's'} processed")
    return lines


def device_state_list(core: Core, session: AmiSession, message: Message) -> None:
    """``DeviceStateList``: one ``DeviceStateChange`` per non-``Local/`` device."""
    action_id = message.get("ActionID")
    head: Pairs = [("ActionID", action_id)] if action_id is not None else []
    core = core
    # Real DeviceStateList never lists Local/ devices (devicestate_local.jsonl).
    devices = sorted(
        device
        for device in set(core.behaviours) | set(core.devices)
        if not device.startswith("Local/")
    )
    session.send_response(
        message,
        "Success",
        [("EventList", "start"), ("Message", "Device State Changes will follow")],
    )
    for device in devices:
        session.send(
            [
                ("Event", "DeviceStateChange"),
                *head,
                ("Device", device),
                ("State", core.device_state(device)),
            ]
        )
    complete(session, "DeviceStateListComplete", action_id, len(devices))


def extension_state_list(_core: Core, session: AmiSession, message: Message) -> None:
    """The sim's dialplan has no hints: an empty list (``devicestate_local.jsonl``)."""
    session.send_response(
        message,
        "Success",
        [("EventList", "start"), ("Message", "Extension Statuses will follow")],
    )
    complete(session, "ExtensionStateListComplete", message.get("ActionID"), 0)


def complete(
    session: AmiSession, name: str, action_id: str | None, count: int, *, items: bool = False
) -> None:
    """The event that ends an event list (``...Complete``, ``EventList: Complete``)."""
    pairs: Pairs = [("Event", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs += [("EventList", "Complete"), ("ListItems", str(count))]
    if items:
        pairs.append(("Items", str(count)))
    session.send(pairs)


def _hms(seconds: float) -> str:
    whole = max(int(seconds), 0)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _status_details(channel: Channel, now: float) -> Pairs:
    formats = "slin" if channel.tech == "Local" else "ulaw"
    return [
        ("Type", channel.tech),
        ("DNID", ""),
        ("EffectiveConnectedLineNum", channel.conn_num or "<unknown>"),
        ("EffectiveConnectedLineName", channel.conn_name or "<unknown>"),
        ("TimeToHangup", "0"),
        ("BridgeID", channel.bridge.uniqueid if channel.bridge else ""),
        ("Application", channel.app or "(null)"),
        ("Data", channel.app_data if channel.app else "(null)"),
        ("Nativeformats", f"({formats})"),
        ("Readformat", formats),
        ("Readtrans", ""),
        ("Writeformat", formats),
        ("Writetrans", ""),
        ("Callgroup", "0"),
        ("Pickupgroup", "0"),
        ("Seconds", str(max(int(now - channel.created_at), 0))),
    ]
