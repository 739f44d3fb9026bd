"""The shared state of the simulated PBX, and how its channels hang up.

Theory of operation
-------------------
:class:`Core` owns the live channels, bridges, devices, AstDB and the timers,
and is the one place that changes them: legs (:mod:`hotline.sim.legs`) and
targets (:mod:`hotline.sim.calls`) ask it to create, announce, bridge and hang
up channels, so the events come out in Asterisk's shapes.

Hang-ups all go through :meth:`Core.teardown`, which reproduces the two shapes
the traces show for a Local pair: a *soft* hang-up of one half (the ``Hangup()``
application, a manager ``Hangup``, a bridge ending) gives ``SoftHangupRequest``
on it, ``HangupRequest`` on its peer, ``Hangup`` on it, then
``SoftHangupRequest`` and ``Hangup`` on the peer; a *hard* one (the Originate
giving up on the ring, app_dial dropping its called channel) gives only
``Hangup`` on it. A peer still being dialled gets no ``SoftHangupRequest``. A
channel leaving a two-party bridge dissolves it: the other channel gets
``BridgeLeave``, ``BridgeDestroy`` follows, and that channel's dialplan goes on
(the caller's ``Hangup`` at priority 7, the agent leg's after ``Bridge``).
``by`` travels with every hang-up, so the ground truth knows who caused it.

``DeviceStateChange`` follows every ``Newstate`` and ``Hangup`` of a channel,
for its device. Every delay is scenario time, scheduled with :meth:`Core.later`
on the event loop through the injected clock; a callback that raises is logged
and counted in :attr:`Core.errors` instead of stopping the PBX. Random draws
come from per-device ``random.Random`` instances seeded from the scenario seed,
so a device behaves the same way for the same sequence of offers.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from collections.abc import Callable
from typing import Any, Final

import structlog

from hotline.clock import Clock
from hotline.sim.amiserver import AmiSession
from hotline.sim.calls import BridgeTarget, InboundCall, OutboundTarget, SpyTarget
from hotline.sim.channels import DOWN, RING, RINGING, UP, Bridge, Channel, ChannelRegistry, Pairs
from hotline.sim.events import Wire
from hotline.sim.groundtruth import CallbackRecord, GroundTruth, RingRecord
from hotline.sim.legs import (
    AgentPhone,
    CustomerPhone,
    HangupTarget,
    InvalidPhone,
    Leg,
    MissingPhone,
    OriginateOrigin,
    OriginateRequest,
    Phone,
    SupervisorPhone,
    Target,
    number_or,
    seconds_text,
)
from hotline.sim.scenario import AgentBehaviour, Arrival, Fixed, Scenario

__all__ = ["Core"]

log = structlog.get_logger("hotline.sim.pbx")

KNOWN_TECHS: Final = frozenset({"PJSIP", "SIP", "IAX2", "DAHDI"})
DEFAULT_AGENT: Final = AgentBehaviour()


# -- the core --------------------------------------------------------------------------------------


class _Device:
    """A device's live channels and private-call state."""

    __slots__ = ("channels", "name", "private")

    def __init__(self, name: str) -> None:
        self.name = name
        self.channels: list[Channel] = []
        self.private = False


class Core:
    """The shared state of the PBX: channels, bridges, devices, AstDB, timers, ground truth."""

    def __init__(
        self,
        *,
        wire: Wire,
        clock: Clock,
        scenario: Scenario,
        ground_truth: GroundTruth,
        system_name: str = "",
    ) -> None:
        """Everything the flows need; the event loop is the running one; ``system_name``
        prefixes the Uniqueids (see :class:`ChannelRegistry`)."""
        self.wire = wire
        self.clock = clock
        self.scenario = scenario
        self.gt = ground_truth
        self.channels = ChannelRegistry(system_name)
        self.db: dict[str, dict[str, str]] = {}
        self.globals: dict[str, str] = {
            "HOTLINE_DIAL_PREFIX": "Local/",
            "HOTLINE_DIAL_SUFFIX": "@callers",
        }
        self.calls: dict[str, InboundCall] = {}
        self.peak_calls = 0
        self.ended_calls: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.callbacks: set[OutboundTarget] = set()
        self.legs: set[Leg] = set()
        self.behaviours: dict[str, AgentBehaviour] = scenario.agent_behaviours()
        self.devices: dict[str, _Device] = {}
        self.errors: list[str] = []
        self.closed = False
        self.on_idle: Callable[[], None] | None = None
        self._rngs: dict[str, random.Random] = {}
        self._bridge_ids = random.Random(f"{scenario.seed}/bridges")
        self._linked: collections.Counter[str] = collections.Counter()
        self._loop = asyncio.get_running_loop()

    # -- time --------------------------------------------------------------------------------------

    def later(self, delay: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``delay`` scenario seconds."""
        return self.clock.call_later(delay, self._run_timer, callback, args)

    def _run_timer(self, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self.closed:
            return
        try:
            callback(*args)
        except Exception as exc:  # a flow bug must not stop the PBX; tests assert on errors
            log.exception(
                "sim.flow_failed", callback=getattr(callback, "__qualname__", repr(callback))
            )
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def rng(self, key: str) -> random.Random:
        """A random stream for ``key`` (a device), seeded from the scenario seed."""
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = random.Random(f"{self.scenario.seed}/{key}")
        return rng

    # -- channels ----------------------------------------------------------------------------------

    def _register(self, channel: Channel) -> None:
        self.channels.add(channel)
        self._linked[channel.linkedid] += 1
        device = self.devices.get(channel.device)
        if device is None:
            device = self.devices[channel.device] = _Device(channel.device)
        device.channels.append(channel)

    def local_pair(
        self,
        exten: str,
        context: str,
        *,
        uniqueids: tuple[str | None, str | None],
        linkedid: str | None,
        app: str,
        variables: list[tuple[str, str]],
    ) -> tuple[Channel, Channel]:
        """A new Local pair, announced with ``Newchannel`` on both halves."""
        now = self.clock.now()
        base = f"Local/{exten}@{context}-{self.channels.suffix()}"
        uid1, uid2 = uniqueids
        if uid1 is None:
            uid1 = self.channels.uniqueid(now)
        if uid2 is None:
            uid2 = f"{uid1};2" if uniqueids[0] is not None else self.channels.uniqueid(now)
        device = f"Local/{exten}@{context}"
        linked = linkedid or uid1
        kwargs = {
            "device": device,
            "tech": "Local",
            "context": context,
            "exten": exten,
            "created_at": now,
        }
        ch1 = Channel(name=f"{base};1", uniqueid=uid1, linkedid=linked, state=DOWN, **kwargs)  # type: ignore[arg-type]
        ch2 = Channel(name=f"{base};2", uniqueid=uid2, linkedid=linked, state=RING, **kwargs)  # type: ignore[arg-type]
        ch1.peer, ch2.peer = ch2, ch1
        for channel in (ch1, ch2):
            self._register(channel)
            self.wire.newchannel(channel)
            self.wire.cel(channel, "CHAN_START")
        self.run(ch1, 1, app, "(Outgoing Line)")
        for name, value in variables:
            for channel in (ch1, ch2):
                channel.variables[name] = value
                self.wire.varset(channel, name, value)
        return ch1, ch2

    def single_channel(
        self,
        tech: str,
        resource: str,
        *,
        uniqueid: str | None,
        linkedid: str | None,
        variables: list[tuple[str, str]],
    ) -> Channel:
        """A new channel of a non-Local technology (``PJSIP/1001-0000000b``)."""
        now = self.clock.now()
        uid = uniqueid or self.channels.uniqueid(now)
        channel = Channel(
            name=f"{tech}/{resource}-{self.channels.suffix()}",
            uniqueid=uid,
            linkedid=linkedid or uid,
            device=f"{tech}/{resource}",
            tech=tech,
            context="from-internal",
            exten=resource,
            state=DOWN,
            created_at=now,
        )
        self._register(channel)
        self.wire.newchannel(channel)
        self.wire.cel(channel, "CHAN_START")
        for name, value in variables:
            channel.variables[name] = value
            self.wire.varset(channel, name, value)
        return channel

    def announce_callerid(self, leg: Leg, callerid: tuple[str | None, str | None] | None) -> None:
        """``NewCallerid``/``NewConnectedLine`` for a new leg, as an Originate or a Dial sets it."""
        ch1, ch2, wire = leg.channel, leg.ch2, self.wire
        dialer = leg.origin.caller
        if dialer is not None:
            number = ch1.exten
            ch1.set_callerid(number, dialer.cid_name)
            ch1.set_connected(dialer.cid_num, dialer.cid_name)
            wire.new_callerid(ch1)
            wire.new_connected_line(ch1)
            if ch2 is not None:
                ch2.set_callerid(dialer.cid_num, dialer.cid_name)
                ch2.set_connected(number, dialer.cid_name)
                wire.new_callerid(ch2)
                wire.new_connected_line(ch2)
            return
        if callerid is None:
            return
        num, name = callerid
        ch1.set_callerid(num, name)
        wire.new_callerid(ch1)
        ch1.set_connected(num, name)
        wire.new_connected_line(ch1)
        if ch2 is not None:
            ch2.set_callerid(num, name)
            ch2.set_connected(num, name)
            wire.new_callerid(ch2)
            wire.new_connected_line(ch2)

    def run(self, channel: Channel, priority: int, app: str | None, data: str = "") -> None:
        """The channel runs ``app(data)`` at ``priority`` (``Newexten``)."""
        channel.step(priority, app, data)
        self.wire.newexten(channel)

    def set_var(self, channel: Channel, name: str, value: str) -> None:
        """Set a channel variable (``VarSet``)."""
        channel.variables[name] = value
        self.wire.varset(channel, name, value)

    def start_recording(self, channel: Channel, priority: int) -> None:
        """``MixMonitor(${HOTLINE_TICKET}-${UNIQUEID}.wav)``."""
        ticket = channel.variables.get("HOTLINE_TICKET", "")
        filename = f"{ticket}-{channel.uniqueid}.wav"
        self.run(channel, priority, "MixMonitor", filename)
        self.set_var(channel, "MIXMONITOR_FILENAME", f"/var/spool/asterisk/monitor/{filename}")
        self.wire.mixmonitor_start(channel)

    def newstate(self, channel: Channel, state: int) -> float:
        """``Newstate`` and the device's ``DeviceStateChange``; returns the Timestamp."""
        channel.set_state(state)
        stamp = self.wire.newstate(channel)
        if state == UP:
            self.wire.cel(channel, "ANSWER")
        self.device_changed(channel.device)
        return stamp

    # -- devices -----------------------------------------------------------------------------------

    def device_in_use(self, device: str) -> bool:
        """Whether the device has a live channel or a private call."""
        known = self.devices.get(device)
        return known is not None and (bool(known.channels) or known.private)

    def device_state(self, device: str) -> str:
        """The device state Asterisk would report."""
        known = self.devices.get(device)
        if known is None:
            return "NOT_INUSE"
        if known.private:
            return "INUSE"
        channels = known.channels
        if not channels:
            return "NOT_INUSE"
        if device.startswith("Local/") or any(ch.state == UP for ch in channels):
            return "INUSE"
        return "RINGING" if any(ch.state == RINGING for ch in channels) else "INUSE"

    def device_changed(self, device: str) -> None:
        """``DeviceStateChange`` with the device's current state."""
        self.wire.device_state(device, self.device_state(device))

    def set_private_call(self, device: str, active: bool) -> None:
        """Start or end a private (non-hotline) call on a device."""
        known = self.devices.get(device)
        if known is None:
            known = self.devices[device] = _Device(device)
        known.private = active
        self.device_changed(device)

    def agent_phone(self, device: str) -> AgentPhone:
        """The phone of an agent device, with its scenario behaviour and AstDB overrides."""
        behaviour = self.behaviours.get(device, DEFAULT_AGENT)
        db = None
        if device.startswith("Local/") and device.endswith("@agents"):
            db = self.db.get(f"agent/{device[6:].partition('@')[0]}")
        return AgentPhone(behaviour, self.rng(device), db)

    def phone_for(
        self, device: str, *, customer: bool = False, patience: float | None = None
    ) -> Phone:
        """The far end of a dial string."""
        tech, slash, resource = device.partition("/")
        if not slash or not resource:
            return MissingPhone()
        if tech == "Local":
            exten, _, context = resource.partition("@")
            context = context.split("/")[0]
            if context == "agents":
                return self.agent_phone(f"Local/{exten}@agents")
            if context == "callers":
                spec = self.scenario.customers
                return CustomerPhone(
                    answer_delay=spec.answer_delay,
                    no_answer=spec.no_answer,
                    busy=spec.busy,
                    patience=patience if patience is not None else spec.patience,
                    rng=self.rng(f"customer/{exten}"),
                    party="customer" if customer else "caller",
                )
            if context == "supervisors":
                return SupervisorPhone(self.scenario.supervisors.listen, self.rng(device))
            return InvalidPhone()
        if tech.upper() in KNOWN_TECHS:
            return self.agent_phone(device)
        return MissingPhone()

    # -- hang-ups and bridges ----------------------------------------------------------------------

    def teardown(self, channel: Channel, cause: int, *, soft: bool, by: str) -> None:
        """Hang up ``channel`` and its Local peer in Asterisk's order (see the module doc)."""
        if not channel.alive:
            return
        wire = self.wire
        peer = channel.peer if channel.peer is not None and channel.peer.alive else None
        if soft:
            wire.soft_hangup_request(channel, cause)
        if peer is not None:
            wire.hangup_request(peer, cause)
        bridges = [self._leave_bridge(channel)]
        self._hangup(
            channel, channel.hangup_cause if channel.hangup_cause is not None else cause, by
        )
        if peer is not None:
            bridges.append(self._leave_bridge(peer))
            if not peer.dialing:
                wire.soft_hangup_request(peer, 16)
            self._hangup(peer, peer.hangup_cause if peer.hangup_cause is not None else cause, by)
        for bridge in bridges:
            if bridge is not None:
                self._dissolve(bridge, by)

    def remote_hangup(self, channel: Channel, cause: int, *, by: str) -> None:
        """The far end of a single (non-Local) channel hangs up."""
        if channel.alive:
            self.wire.hangup_request(channel, cause)
            bridge = self._leave_bridge(channel)
            self.wire.soft_hangup_request(channel, cause)
            self._hangup(channel, cause, by)
            if bridge is not None:
                self._dissolve(bridge, by)

    def hangup_now(
        self, channel: Channel, cause: int, by: str, *, device_state: str | None = None
    ) -> None:
        """Just ``Hangup`` (a channel that never got anywhere)."""
        if channel.alive:
            self._hangup(channel, cause, by, device_state=device_state)

    def manager_hangup(self, channel: Channel, cause: int) -> None:
        """A manager ``Hangup`` action."""
        for spy in channel.spies:
            if isinstance(spy, SpyTarget) and spy.defers_hangup(channel):
                return
        self.teardown(channel, cause, soft=True, by="manager")

    def _hangup(
        self, channel: Channel, cause: int, by: str, *, device_state: str | None = None
    ) -> None:
        for spy in list(channel.spies):
            spy.channel_leaving(channel)
        wire = self.wire
        stamp = wire.hangup(channel, cause)
        channel.alive = False
        self.channels.remove(channel)
        device = self.devices.get(channel.device)
        if device is not None:
            device.channels.remove(channel)
            if not device.channels and not device.private:
                del self.devices[channel.device]
        if device_state is not None:
            wire.device_state(channel.device, device_state)
        else:
            self.device_changed(channel.device)
        linked = self._linked
        linked[channel.linkedid] -= 1
        if wire.noise:
            wire.cel(
                channel,
                "HANGUP",
                extra=f'{{"hangupcause":{cause},"hangupsource":"","dialstatus":""}}',
            )
            wire.cel(channel, "CHAN_END")
            if linked[channel.linkedid] <= 0:
                wire.cel(channel, "LINKEDID_END")
        if linked[channel.linkedid] <= 0:
            del linked[channel.linkedid]
        if channel.on_gone is not None:
            channel.on_gone(channel, stamp, by)
        if not self.channels.by_name:
            self.check_idle()

    def bridge(self, first: Channel, second: Channel) -> Bridge:
        """Put two channels in a new basic bridge; the second joins the first's Linkedid."""
        wire = self.wire
        bridge = Bridge(str(uuid.UUID(int=self._bridge_ids.getrandbits(128), version=4)))
        wire.bridge_create(bridge)
        if second.linkedid != first.linkedid:
            self._linked[second.linkedid] -= 1
            if self._linked[second.linkedid] <= 0:
                del self._linked[second.linkedid]
            second.set_linkedid(first.linkedid)
            self._linked[first.linkedid] += 1
        for channel, other in ((first, second), (second, first)):
            bridge.channels.append(channel)
            channel.bridge = bridge
            wire.varset(channel, "BRIDGEPEER", other.name)
            wire.bridge_enter(bridge, channel)
            wire.cel(channel, "BRIDGE_ENTER", extra=f'{{"bridge_id":"{bridge.uniqueid}"}}')
        return bridge

    def unbridge(self, channel: Channel, by: str) -> None:
        """Take a channel out of its bridge (a Redirect); the other side's dialplan goes on."""
        bridge = self._leave_bridge(channel)
        if bridge is not None:
            self._dissolve(bridge, by)

    def _leave_bridge(self, channel: Channel) -> Bridge | None:
        bridge = channel.bridge
        if bridge is None:
            return None
        bridge.channels.remove(channel)
        channel.bridge = None
        self.wire.varset(channel, "BRIDGEPEER", "")
        self.wire.bridge_leave(bridge, channel)
        self.wire.cel(channel, "BRIDGE_EXIT", extra=f'{{"bridge_id":"{bridge.uniqueid}"}}')
        return bridge

    def _dissolve(self, bridge: Bridge, by: str) -> None:
        if len(bridge.channels) != 1:
            if not bridge.channels:
                self.wire.bridge_destroy(bridge)
            return
        last = bridge.channels.pop()
        last.bridge = None
        self.wire.varset(last, "BRIDGEPEER", "")
        self.wire.bridge_leave(bridge, last)
        self.wire.cel(last, "BRIDGE_EXIT", extra=f'{{"bridge_id":"{bridge.uniqueid}"}}')
        self.wire.bridge_destroy(bridge)
        if last.alive and last.after_bridge is not None:
            last.after_bridge(last, by)

    # -- entry points ------------------------------------------------------------------------------

    def originate(self, request: OriginateRequest, session: AmiSession | None) -> Leg:
        """Start an ``Originate``: a leg to ``request.channel`` with the right target."""
        now = self.wire.stamp()
        variables = request.variables
        varmap = dict(variables)
        callerid = request.callerid
        if request.application is not None:
            location: Pairs = [("Application", request.application), ("Data", request.data)]
            target: Target = (
                SpyTarget(self, request.data)
                if request.application.lower() == "chanspy"
                else HangupTarget(location)
            )
        else:
            context = request.context or "default"
            location = [("Context", context), ("Exten", request.exten)]
            target = self._target_for(request, context, varmap, now)
        patience = number_or(varmap.get("PATIENCE"), -1.0)
        phone = self.phone_for(request.channel, patience=patience if patience >= 0 else None)
        leg = Leg(
            self,
            device=request.channel,
            phone=phone,
            target=target,
            origin=OriginateOrigin(self, request, session, location),
            callerid=callerid,
            variables=variables,
            uniqueids=(request.channel_id, request.other_channel_id),
        )
        leg.start()
        return leg

    def _target_for(
        self, request: OriginateRequest, context: str, variables: dict[str, str], now: float
    ) -> Target:
        if context == "hotline-inbound":
            return InboundCall(self, exten=request.exten)
        if context == "hotline-bridge":
            ring = RingRecord(
                agent=request.channel,
                leg_id=None,
                action_id=request.action_id or "",
                ticket=variables.get("HOTLINE_TICKET", ""),
                requested_at=now,
            )
            return BridgeTarget(
                self,
                context=context,
                exten=request.exten,
                caller=variables.get("HOTLINE_CALLER", ""),
                ring=ring,
            )
        if context == "hotline-outbound":
            record = CallbackRecord(
                ticket=variables.get("HOTLINE_TICKET", ""),
                agent=request.channel,
                leg_id=None,
                number=request.exten,
                requested_at=now,
            )
            return OutboundTarget(self, number=request.exten, record=record)
        return HangupTarget([("Context", context), ("Exten", request.exten)])

    def arrive(self, arrival: Arrival) -> None:
        """A scenario caller dials in: the same channels and events as an Originate into
        ``hotline-inbound``, without an ``OriginateResponse``."""
        preset: Pairs = [
            ("HOTLINE_QUEUE", arrival.queue),
            ("HOTLINE_PRIORITY", str(arrival.priority)),
        ]
        if arrival.skills:
            preset.append(("HOTLINE_SKILLS", ",".join(arrival.skills)))
        if arrival.lang:
            preset.append(("HOTLINE_LANG", arrival.lang))
        if arrival.agent:
            preset.append(("HOTLINE_STICKY_AGENT", arrival.agent))
        request = OriginateRequest(
            channel=f"Local/{arrival.number}@callers",
            context="hotline-inbound",
            exten="400",
            priority=1,
            application=None,
            data="",
            timeout=30.0,
            callerid=(arrival.number, arrival.name),
            variables=[("PATIENCE", seconds_text(round(arrival.patience, 1)))],
            action_id=None,
            channel_id=None,
            other_channel_id=None,
            is_async=True,
        )
        phone = CustomerPhone(
            answer_delay=Fixed(0.0),
            no_answer=0.0,
            busy=0.0,
            patience=arrival.patience,
            rng=self.rng("arrivals"),
            party="caller",
        )
        leg = Leg(
            self,
            device=request.channel,
            phone=phone,
            target=InboundCall(self, preset=preset),
            origin=OriginateOrigin(
                self, request, None, [("Context", "hotline-inbound"), ("Exten", "400")]
            ),
            callerid=request.callerid,
            variables=request.variables,
        )
        leg.start()

    def redirect(self, channel: Channel, context: str, exten: str, priority: int) -> None:
        """A manager ``Redirect``."""
        stamp = self.wire.stamp()
        call = self.calls.get(channel.name)
        if call is not None:
            call.redirect(context, exten, priority, stamp)
            return
        self.unbridge(channel, "redirect")
        channel.goto(context, exten, priority)
        self.run(channel, priority, "Hangup")
        self.teardown(channel, 16, soft=True, by="redirect")

    def check_idle(self) -> None:
        """Tell the owner when nothing is live any more."""
        if self.on_idle is not None and not self.legs and not len(self.channels):
            self.on_idle()

    def close(self) -> None:
        """Stop all timers' effects and write what is still open to the ground truth."""
        self.closed = True
        for call in list(self.calls.values()):
            call.close_open()
        for callback in list(self.callbacks):
            callback.close_open()
