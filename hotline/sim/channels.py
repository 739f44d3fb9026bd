"""Channels and bridges of the simulated PBX, and how Asterisk 22 renders them in AMI.

Naming follows the recorded traces:

* a ``Local`` call is a pair of channels sharing one 8-hex suffix from a global
  counter, ``Local/<exten>@<context>-0000000a;1`` and ``...;2``; any other
  technology gets one channel, ``PJSIP/1001-0000000b``;
* a ``Uniqueid`` is ``<epoch seconds at creation>.<global sequence>`` unless the
  Originate chose one (``ChannelId``/``OtherChannelId``); a ``Linkedid`` is the
  Uniqueid of the oldest channel of the call.

Every channel event carries the *snapshot*: ``Channel, ChannelState,
ChannelStateDesc, CallerIDNum, CallerIDName, ConnectedLineNum, ConnectedLineName,
Language, AccountCode, Context, Exten, Priority, Uniqueid, Linkedid`` in that
order, optionally prefixed (``Dest``, ``LocalOne``, ``Spyer``, ...). Snapshots
are cached per prefix and rebuilt only after a field changes, since one channel
appears in dozens of events.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "BUSY",
    "CAUSE_TEXT",
    "DOWN",
    "RING",
    "RINGING",
    "STATE_DESC",
    "UP",
    "Bridge",
    "Channel",
    "ChannelRegistry",
    "Pairs",
    "snapshot_keys",
]

Pairs = list[tuple[str, str]]

DOWN: Final = 0
RING: Final = 4
RINGING: Final = 5
UP: Final = 6
BUSY: Final = 7
STATE_DESC: Final = ("Down", "Rsrvd", "OffHook", "Dialing", "Ring", "Ringing", "Up", "Busy")

CAUSE_TEXT: Final = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}

UNKNOWN: Final = "<unknown>"

_SNAPSHOT_KEYS: Final = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


@functools.cache
def snapshot_keys(prefix: str) -> tuple[str, ...]:
    """The snapshot keys with ``prefix`` (``Dest``: ``DestChannel``, ``DestChannelState``...)."""
    return tuple(prefix + key for key in _SNAPSHOT_KEYS)


class Channel:
    """One live channel: identity, state, caller IDs, dialplan location, variables, bridge.

    ``owner`` is the flow that drives the channel; ``on_gone`` and
    ``after_bridge`` are that flow's callbacks for the channel's hang-up and for
    its bridge ending. ``dialing`` is true for the outgoing half of an Originate
    or Dial until it is answered (it hangs up without a ``SoftHangupRequest``).
    """

    __slots__ = (
        "_snapshots",
        "after_bridge",
        "alive",
        "app",
        "app_data",
        "bridge",
        "cid_name",
        "cid_num",
        "conn_name",
        "conn_num",
        "context",
        "created_at",
        "device",
        "dialing",
        "exten",
        "hangup_cause",
        "linkedid",
        "name",
        "on_gone",
        "owner",
        "peer",
        "priority",
        "spies",
        "state",
        "tech",
        "uniqueid",
        "variables",
    )

    def __init__(
        self,
        *,
        name: str,
        uniqueid: str,
        linkedid: str,
        device: str,
        tech: str,
        context: str,
        exten: str,
        state: int,
        created_at: float,
    ) -> None:
        """A new channel at priority 1 of ``context``/``exten``."""
        self.name = name
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.device = device
        self.tech = tech
        self.state = state
        self.cid_num: str | None = None
        self.cid_name: str | None = None
        self.conn_num: str | None = None
        self.conn_name: str | None = None
        self.context = context
        self.exten = exten
        self.priority = 1
        self.created_at = created_at
        self.variables: dict[str, str] = {}
        self.app: str | None = None
        self.app_data = ""
        self.bridge: Bridge | None = None
        self.peer: Channel | None = None
        self.owner: Any = None
        self.on_gone: Callable[[Channel, float, str], None] | None = None
        self.after_bridge: Callable[[Channel, str], None] | None = None
        self.spies: list[Any] = []
        self.hangup_cause: int | None = None
        self.dialing = False
        self.alive = True
        self._snapshots: dict[str, Pairs] = {}

    def __repr__(self) -> str:
        """Name and state."""
        return f"<Channel {self.name} {STATE_DESC[self.state]}>"

    def snapshot(self, prefix: str = "") -> Pairs:
        """The snapshot headers, keys prefixed with ``prefix``. Do not mutate the result."""
        cached = self._snapshots.get(prefix)
        if cached is None:
            values = (
                self.name,
                str(self.state),
                STATE_DESC[self.state],
                self.cid_num or UNKNOWN,
                self.cid_name or UNKNOWN,
                self.conn_num or UNKNOWN,
                self.conn_name or UNKNOWN,
                "en",
                "",
                self.context,
                self.exten,
                str(self.priority),
                self.uniqueid,
                self.linkedid,
            )
            cached = self._snapshots[prefix] = list(zip(snapshot_keys(prefix), values, strict=True))
        return cached

    def set_state(self, state: int) -> None:
        """A new channel state (``Newstate``)."""
        self.state = state
        self._snapshots.clear()

    def goto(self, context: str, exten: str, priority: int = 1) -> None:
        """Move to a dialplan location."""
        self.context, self.exten, self.priority = context, exten, priority
        self._snapshots.clear()

    def step(self, priority: int, app: str | None, data: str = "") -> None:
        """Run ``app(data)`` at ``priority`` of the current extension."""
        self.priority = priority
        self.app, self.app_data = app, data
        self._snapshots.clear()

    def set_callerid(self, num: str | None, name: str | None) -> None:
        """The channel's caller ID."""
        self.cid_num, self.cid_name = num, name
        self._snapshots.clear()

    def set_connected(self, num: str | None, name: str | None) -> None:
        """The connected line (the other party)."""
        self.conn_num, self.conn_name = num, name
        self._snapshots.clear()

    def set_linkedid(self, linkedid: str) -> None:
        """Join another call's linked id (on bridging)."""
        self.linkedid = linkedid
        self._snapshots.clear()

    @property
    def half(self) -> int:
        """1 or 2 for the halves of a Local pair, 0 for a single channel."""
        if self.tech != "Local":
            return 0
        return 1 if self.name.endswith(";1") else 2


class Bridge:
    """A basic two-party bridge."""

    __slots__ = ("channels", "uniqueid")

    def __init__(self, uniqueid: str) -> None:
        """An empty bridge with the given id (a UUID, as in Asterisk)."""
        self.uniqueid = uniqueid
        self.channels: list[Channel] = []

    def header(self) -> Pairs:
        """The bridge snapshot headers, as in ``BridgeCreate``/``BridgeEnter``."""
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", UNKNOWN),
            ("BridgeName", UNKNOWN),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]


class ChannelRegistry:
    """The live channels by name, and the counters behind channel names and Uniqueids."""

    def __init__(self, system_name: str = "") -> None:
        """Counters start at zero, as on a freshly started Asterisk. ``system_name`` is
        ``asterisk.conf``'s ``systemname``: Asterisk then prefixes every Uniqueid with it
        (``<systemname>-<time>.<n>``, channel.c), which keeps several PBXs' ids apart."""
        self.system_name = system_name
        self.by_name: dict[str, Channel] = {}
        self._uniqueids: set[str] = set()
        self.created = 0
        self._sequence = 0
        self._suffix = 0

    def __len__(self) -> int:
        """Live channels."""
        return len(self.by_name)

    def uniqueid(self, now: float) -> str:
        """The next generated Uniqueid."""
        uniqueid = f"{int(now)}.{self._sequence}"
        if self.system_name:
            uniqueid = f"{self.system_name}-{uniqueid}"
        self._sequence += 1
        return uniqueid

    def suffix(self) -> str:
        """The next 8-hex channel-name suffix."""
        suffix = f"{self._suffix:08x}"
        self._suffix += 1
        return suffix

    def add(self, channel: Channel) -> None:
        """Register a new channel."""
        self.by_name[channel.name] = channel
        self._uniqueids.add(channel.uniqueid)
        self.created += 1

    def remove(self, channel: Channel) -> None:
        """Forget a channel that hung up."""
        if self.by_name.pop(channel.name, None) is not None:
            self._uniqueids.discard(channel.uniqueid)

    def holds_uniqueid(self, uniqueid: str) -> bool:
        """Whether a live channel has this Uniqueid (Asterisk refuses it as a ChannelId)."""
        return uniqueid in self._uniqueids

    def get(self, name: str) -> Channel | None:
        """A live channel by exact name."""
        return self.by_name.get(name)
