"""The AMI events of the simulated PBX, rendered exactly as Asterisk 22 writes them.

:class:`Wire` is the only place that formats events. Each method builds the
headers in the order of the recorded traces, stamps them with the scenario
clock (``Timestamp``, inserted after ``Privilege`` as ``timestampevents = yes``
does), and hands them to :meth:`AmiServer.broadcast`, which encodes each event
once for every connected client. Every method returns the ``Timestamp`` it
wrote, as a float equal to the header's value, so the ground truth can record
exactly the times the clients saw.

The noise events (``CEL``, ``VarSet``, ``Newexten``) are only built when noise
is on; they cost nothing otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

from hotline.clock import Clock
from hotline.sim.amiserver import AmiServer
from hotline.sim.channels import CAUSE_TEXT, UNKNOWN, Bridge, Channel, Pairs

__all__ = ["Wire"]

CALL: Final = "call,all"
USER: Final = "user,all"
DIALPLAN: Final = "dialplan,all"
_CALLING_PRES: Final = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


class Wire:
    """Formats, stamps and broadcasts the events of the simulated PBX."""

    def __init__(self, server: AmiServer, clock: Clock, *, noise: bool) -> None:
        """Events go to ``server``'s clients, stamped by ``clock``."""
        self.server = server
        self.clock = clock
        self.noise = noise
        self.sent = 0
        self._event_time: tuple[int, str] = (-1, "")

    def stamp(self) -> float:
        """The current scenario time, rounded as a ``Timestamp`` header is."""
        return float(f"{self.clock.now():.6f}")

    def emit(self, name: str, privilege: str, body: Iterable[tuple[str, str]]) -> float:
        """Broadcast one event; returns its ``Timestamp``."""
        text = f"{self.clock.now():.6f}"
        self.sent += 1
        server = self.server
        if server.sessions:
            pairs: Pairs = [("Event", name), ("Privilege", privilege), ("Timestamp", text)]
            pairs.extend(body)
            server.broadcast(pairs, timestamp=False)
        return float(text)

    # -- channel lifecycle ----------------------------------------------------------------------

    def channel(self, name: str, channel: Channel, *extra: tuple[str, str]) -> float:
        """An event made of the channel snapshot and ``extra`` headers."""
        body = channel.snapshot()
        return self.emit(name, CALL, [*body, *extra] if extra else body)

    def newchannel(self, channel: Channel) -> float:
        """``Newchannel``."""
        return self.channel("Newchannel", channel)

    def newstate(self, channel: Channel) -> float:
        """``Newstate`` with the channel's current state."""
        return self.channel("Newstate", channel)

    def new_callerid(self, channel: Channel) -> float:
        """``NewCallerid``."""
        return self.channel("NewCallerid", channel, _CALLING_PRES)

    def new_connected_line(self, channel: Channel) -> float:
        """``NewConnectedLine``."""
        return self.channel("NewConnectedLine", channel)

    def soft_hangup_request(self, channel: Channel, cause: int) -> float:
        """``SoftHangupRequest``."""
        return self.channel("SoftHangupRequest", channel, ("Cause", str(cause)))

    def hangup_request(self, channel: Channel, cause: int) -> float:
        """``HangupRequest``."""
        return self.channel("HangupRequest", channel, ("Cause", str(cause)))

    def hangup(self, channel: Channel, cause: int) -> float:
        """``Hangup`` with ``Cause`` and ``Cause-txt``."""
        text = CAUSE_TEXT.get(cause, "Unknown")
        return self.channel("Hangup", channel, ("Cause", str(cause)), ("Cause-txt", text))

    def local_bridge(self, one: Channel, two: Channel) -> float:
        """``LocalBridge`` for the two halves of a Local pair."""
        body = [*one.snapshot("LocalOne"), *two.snapshot("LocalTwo")]
        body += [("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "Yes")]
        return self.emit("LocalBridge", CALL, body)

    def user_event(self, channel: Channel, name: str, headers: Iterable[tuple[str, str]]) -> float:
        """``UserEvent``: the snapshot first, then ``UserEvent`` and the event's own headers."""
        return self.emit("UserEvent", USER, [*channel.snapshot(), ("UserEvent", name), *headers])

    def mixmonitor_start(self, channel: Channel) -> float:
        """``MixMonitorStart``."""
        return self.channel("MixMonitorStart", channel)

    # -- dialling ----------------------------------------------------------------------------------

    def dial_begin(self, caller: Channel | None, dest: Channel, dial_string: str) -> float:
        """``DialBegin``; ``caller`` is None for an Originate (no calling channel)."""
        body = [*caller.snapshot()] if caller is not None else []
        body += [*dest.snapshot("Dest"), ("DialString", dial_string)]
        return self.emit("DialBegin", CALL, body)

    def dial_state(self, caller: Channel | None, dest: Channel, status: str) -> float:
        """``DialState`` (``RINGING``)."""
        body = [*caller.snapshot()] if caller is not None else []
        body += [*dest.snapshot("Dest"), ("DialStatus", status)]
        return self.emit("DialState", CALL, body)

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> float:
        """``DialEnd`` with ``DialStatus`` (``ANSWER``, ``BUSY``, ``NOANSWER``, ``CANCEL``)."""
        body = [*caller.snapshot()] if caller is not None else []
        body += [*dest.snapshot("Dest"), ("DialStatus", status)]
        return self.emit("DialEnd", CALL, body)

    def originate_response(
        self,
        *,
        action_id: str | None,
        success: bool,
        channel: str,
        location: Pairs,
        reason: int,
        uniqueid: str,
        cid_num: str | None,
        cid_name: str | None,
    ) -> float:
        """``OriginateResponse``; ``location`` is Context/Exten or Application/Data.

        Without an ActionID in the Originate, Asterisk writes none here either.
        """
        body: Pairs = [("ActionID", action_id)] if action_id is not None else []
        body.append(("Response", "Success" if success else "Failure"))
        body += [("Channel", channel), *location, ("Reason", str(reason))]
        body += [("Uniqueid", uniqueid), ("CallerIDNum", cid_num or UNKNOWN)]
        body.append(("CallerIDName", cid_name or UNKNOWN))
        return self.emit("OriginateResponse", CALL, body)

    # -- bridges, devices, spying ------------------------------------------------------------------

    def bridge_create(self, bridge: Bridge) -> float:
        """``BridgeCreate``."""
        return self.emit("BridgeCreate", CALL, bridge.header())

    def bridge_enter(self, bridge: Bridge, channel: Channel) -> float:
        """``BridgeEnter``; the channel must already be counted in the bridge."""
        return self.emit("BridgeEnter", CALL, [*bridge.header(), *channel.snapshot()])

    def bridge_leave(self, bridge: Bridge, channel: Channel) -> float:
        """``BridgeLeave``; the channel must already be removed from the bridge."""
        return self.emit("BridgeLeave", CALL, [*bridge.header(), *channel.snapshot()])

    def bridge_destroy(self, bridge: Bridge) -> float:
        """``BridgeDestroy``."""
        return self.emit("BridgeDestroy", CALL, bridge.header())

    def device_state(self, device: str, state: str) -> float:
        """``DeviceStateChange``."""
        return self.emit("DeviceStateChange", CALL, [("Device", device), ("State", state)])

    def chanspy(self, name: str, spyer: Channel, spyee: Channel) -> float:
        """``ChanSpyStart`` or ``ChanSpyStop``."""
        return self.emit(name, CALL, [*spyer.snapshot("Spyer"), *spyee.snapshot("Spyee")])

    # -- noise -------------------------------------------------------------------------------------

    def newexten(self, channel: Channel) -> None:
        """``Newexten`` for the application the channel just started (noise)."""
        if self.noise:
            body = [*channel.snapshot(), ("Extension", channel.exten)]
            body += [("Application", channel.app or ""), ("AppData", channel.app_data)]
            self.emit("Newexten", DIALPLAN, body)

    def varset(self, channel: Channel, variable: str, value: str) -> None:
        """``VarSet`` (noise)."""
        if self.noise:
            self.emit(
                "VarSet", DIALPLAN, [*channel.snapshot(), ("Variable", variable), ("Value", value)]
            )

    def cel(self, channel: Channel, event: str, extra: str = "", peer: str = "") -> None:
        """A ``CEL`` record (noise)."""
        if not self.noise:
            return
        now = self.clock.now()
        second = int(now)
        if self._event_time[0] != second:
            self._event_time = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)))
        body = [
            ("EventName", event),
            ("AccountCode", ""),
            ("CallerIDnum", channel.cid_num or ""),
            ("CallerIDname", channel.cid_name or ""),
            ("CallerIDani", ""),
            ("CallerIDrdnis", ""),
            ("CallerIDdnid", ""),
            ("Exten", channel.exten),
            ("Context", channel.context),
            ("Channel", channel.name),
            ("Application", channel.app or ""),
            ("AppData", channel.app_data),
            ("EventTime", self._event_time[1]),
            ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", channel.uniqueid),
            ("LinkedID", channel.linkedid),
            ("Userfield", ""),
            ("Peer", peer),
            ("PeerAccount", ""),
            ("Extra", extra),
        ]
        self.emit("CEL", CALL, body)
