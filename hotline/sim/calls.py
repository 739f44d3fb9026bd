"""The Asterisk side of the simulated PBX: channels, the contract's dialplan, and hang-ups.

Theory of operation
-------------------
Everything that happens on a real Asterisk in the integration contract
(ARCHITECTURE.md section 2) is modelled as *legs* and *targets* on a shared
:class:`Core`:

* A :class:`Leg` is one outgoing call from the PBX to a device: an
  ``Originate`` (from a client, or a scenario caller arriving), or the ``Dial``
  of a callback. It creates the channels (a Local pair, or one channel for
  ``PJSIP/...``), announces them (``Newchannel``, ``NewCallerid``,
  ``NewConnectedLine``, ``LocalBridge``, ``DialBegin``), and then lets the
  device's :class:`Phone` decide: busy (``Newstate`` 7 on ``;2``, Reason 5),
  ring (``Newstate`` 5 on ``;1``, ``DialState`` RINGING) and answer after a
  delay or never (Reason 3 at the Originate's ``Timeout``), or answer at once.
  Its *origin* (:class:`OriginateOrigin` or :class:`DialOrigin`) writes the
  outcome the way each does: ``OriginateResponse`` or ``DialEnd``.
* A *target* is what the leg's ``;1`` runs once answered: :class:`InboundCall`
  (``hotline-inbound``: ``HotlineCallWaiting``, then ``Wait(600)``),
  :class:`BridgeTarget` (``hotline-bridge``: ``MixMonitor`` and
  ``Bridge(${HOTLINE_CALLER})``), :class:`OutboundTarget` (``hotline-outbound``:
  ``MixMonitor`` and ``Dial`` to the customer), :class:`SpyTarget`
  (``ChanSpy``), or :class:`HangupTarget` for a context the sim has no dialplan
  for. Targets also keep the ground truth of their calls.
* The phone hangs up after its talk time (agents), patience (callers and
  customers, only while not bridged) or listening time (supervisors).

Hang-ups all go through :meth:`Core.teardown`, which reproduces the two shapes
seen in the traces for a Local pair: a *soft* hang-up of one half (the
``Hangup()`` application, a manager ``Hangup``, a bridge ending) gives
``SoftHangupRequest`` on it, ``HangupRequest`` on its peer, ``Hangup`` on it,
then ``SoftHangupRequest`` and ``Hangup`` on the peer; a *hard* one (the
Originate giving up on the ring, app_dial dropping its called channel) gives
only ``Hangup`` on it. A peer still being dialled gets no
``SoftHangupRequest``. A channel leaving a two-party bridge dissolves it: the
other channel gets ``BridgeLeave``, ``BridgeDestroy`` follows, and that
channel's dialplan continues (the caller's ``Hangup`` at priority 7, the agent
leg's ``Hangup`` after ``Bridge``).

``DeviceStateChange`` follows every ``Newstate`` and ``Hangup`` of a channel,
for its device. No ``MixMonitorStop`` is sent: the recording stops with the
channel, and Asterisk 22 sends no event for that (see every ``backend_*`` trace).

Every delay is scenario time, scheduled with :meth:`Core.later` on the event
loop through the injected clock. Random draws come from per-device
``random.Random`` instances seeded from the scenario seed, so a device behaves
the same way for the same sequence of offers.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog

from hotline.clock import Clock
from hotline.sim.amiserver import AmiSession
from hotline.sim.channels import (
    BUSY,
    DOWN,
    RING,
    RINGING,
    UP,
    Bridge,
    Channel,
    ChannelRegistry,
    Pairs,
)
from hotline.sim.events import Wire
from hotline.sim.groundtruth import CallbackRecord, CallRecord, GroundTruth, RingRecord
from hotline.sim.scenario import AgentBehaviour, Arrival, Distribution, Fixed, Scenario

__all__ = [
    "ANSWER_SETTLE",
    "BridgeTarget",
    "Core",
    "InboundCall",
    "Leg",
    "OriginateRequest",
    "OutboundTarget",
    "SpyTarget",
]

log = structlog.get_logger("hotline.sim.pbx")

ANSWER_SETTLE: Final = 0.5
"""``Answer()`` on a Local channel waits this long for media (visible in every trace)."""
SPY_START_DELAY: Final = 0.1
SPY_RESCAN: Final = 1.0
INBOUND_WAIT: Final = 600.0
NEVER_ANSWER_WAIT: Final = 300.0
DIAL_TIMEOUT: Final = 30.0
KNOWN_TECHS: Final = frozenset({"PJSIP", "SIP", "IAX2", "DAHDI"})
DEFAULT_AGENT: Final = AgentBehaviour()

_DIALING, _RINGING, _UP, _GONE = "dialing", "ringing", "up", "gone"


def seconds_text(value: float) -> str:
    """Seconds as the dialplan would show them (``60``, ``4.5``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


# -- phones: what the far end of a leg does ---------------------------------------------------


@dataclass(slots=True)
class PhonePlan:
    """One offer's fate: busy, or ring and answer after ``answer_after`` (None: never)."""

    busy: bool = False
    answer_after: float | None = 0.0
    rings: bool = True
    stay: float = 0.0


class Phone:
    """The device at the far end of a leg. Subclasses decide each offer."""

    party = "pbx"
    stay_while_bridged = True
    valid = True
    exists = True

    def plan(self, in_use: bool) -> PhonePlan:
        """Decide this offer; ``in_use`` says the device is already on a call."""
        return PhonePlan()

    def dialplan(self, core: Core, leg: Leg, plan: PhonePlan) -> None:
        """The ``;2`` half's dialplan steps before it rings or answers (noise only)."""


class AgentPhone(Phone):
    """An agent's phone (``Local/<ext>@agents``, ``PJSIP/...``): rings, answers, talks."""

    party = "agent"

    def __init__(
        self, behaviour: AgentBehaviour, rng: random.Random, db: dict[str, str] | None
    ) -> None:
        """``db`` holds ``delay``/``talk`` overrides from ``DBPut agent/<ext>``."""
        self.behaviour = behaviour
        self.rng = rng
        self.db = db or {}

    def plan(self, in_use: bool) -> PhonePlan:
        """Busy if in use or by chance; else ring and answer after a delay, or never."""
        behaviour, rng = self.behaviour, self.rng
        draw = rng.random()
        delay = behaviour.answer_delay.sample(rng)
        talk = behaviour.talk.sample(rng)
        busy = in_use or draw < behaviour.busy
        never = not busy and draw < behaviour.busy + behaviour.no_answer
        db_delay, db_talk = self.db.get("delay"), self.db.get("talk")
        if db_delay is not None:
            busy = in_use or db_delay == "busy"
            never = db_delay == "never"
            delay = _number(db_delay, delay)
        talk = _number(db_talk, talk) if db_talk is not None else talk
        return PhonePlan(busy=busy, answer_after=None if never else delay, rings=True, stay=talk)

    def dialplan(self, core: Core, leg: Leg, plan: PhonePlan) -> None:
        """NoOp, Set(DELAY), Set(TALK), GotoIf(busy), as in the traces' ``agents`` context."""
        ch2 = leg.ch2
        if ch2 is None or not core.wire.noise:
            return
        exten = ch2.exten
        delay = (
            "busy"
            if plan.busy
            else "never"
            if plan.answer_after is None
            else seconds_text(plan.answer_after or 0.0)
        )
        core.run(ch2, 1, "NoOp", f"agent {exten} rings")
        core.run(ch2, 2, "Set", f"DELAY={delay}")
        core.set_var(ch2, "DELAY", delay)
        core.run(ch2, 3, "Set", f"TALK={seconds_text(plan.stay)}")
        core.set_var(ch2, "TALK", seconds_text(plan.stay))
        core.run(ch2, 4, "GotoIf", f"{int(plan.busy)}?busy")


class CustomerPhone(Phone):
    """A customer (``Local/<number>@callers``): answers, then stays for its patience."""

    party = "customer"
    stay_while_bridged = False

    def __init__(
        self,
        *,
        answer_delay: Distribution,
        no_answer: float,
        busy: float,
        patience: float | Distribution,
        rng: random.Random,
        party: str = "customer",
    ) -> None:
        """``patience`` is how long the customer stays on a line that is not bridged."""
        self.answer_delay = answer_delay
        self.no_answer = no_answer
        self.busy = busy
        self.patience = Fixed(float(patience)) if isinstance(patience, int | float) else patience
        self.rng = rng
        self.party = party

    def plan(self, in_use: bool) -> PhonePlan:
        """Busy or no answer by chance; else answer after the delay (0: at once, no ringing)."""
        draw = self.rng.random()
        delay = self.answer_delay.sample(self.rng)
        patience = self.patience.sample(self.rng)
        if draw < self.busy:
            return PhonePlan(busy=True, stay=patience)
        if draw < self.busy + self.no_answer:
            return PhonePlan(answer_after=None, stay=patience)
        return PhonePlan(answer_after=delay, rings=delay > 0, stay=patience)

    def dialplan(self, core: Core, leg: Leg, plan: PhonePlan) -> None:
        """NoOp, as in the traces' ``callers`` context."""
        if leg.ch2 is not None and core.wire.noise:
            core.run(leg.ch2, 1, "NoOp", f"customer {leg.ch2.exten}")


class SupervisorPhone(Phone):
    """A supervisor's phone (``Local/<ext>@supervisors``): answers at once, listens a while."""

    party = "supervisor"

    def __init__(self, listen: Distribution, rng: random.Random) -> None:
        """``listen`` is how long the supervisor stays."""
        self.listen = listen
        self.rng = rng

    def plan(self, in_use: bool) -> PhonePlan:
        """Answer at once."""
        return PhonePlan(answer_after=0.0, rings=False, stay=self.listen.sample(self.rng))


class InvalidPhone(Phone):
    """A Local channel into a context the PBX does not have: both halves hang up at once."""

    valid = False


class MissingPhone(Phone):
    """A channel technology the PBX does not have: no channel is created."""

    exists = False


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


# -- origins: who asked for the leg ------------------------------------------------------------


@dataclass(slots=True)
class OriginateRequest:
    """An ``Originate`` action, parsed."""

    channel: str
    context: str | None
    exten: str
    priority: int
    application: str | None
    data: str
    timeout: float
    callerid: tuple[str | None, str | None] | None
    variables: list[tuple[str, str]]
    action_id: str | None
    channel_id: str | None
    other_channel_id: str | None
    is_async: bool


class OriginateOrigin:
    """A leg made by ``Originate`` (or by the scenario, which has no client to answer)."""

    dial_app = "AppDial2"

    def __init__(
        self,
        core: Core,
        request: OriginateRequest,
        session: AmiSession | None,
        location: Pairs,
    ) -> None:
        """``location`` is the OriginateResponse's Context/Exten or Application/Data."""
        self.core = core
        self.request = request
        self.session = session
        self.location = location
        self.caller: Channel | None = None
        self.timeout = request.timeout

    def answered(self, leg: Leg, stamp: float) -> None:
        """``DialEnd`` ANSWER and the success reply."""
        ch1 = leg.channel
        self.core.wire.dial_end(None, ch1, "ANSWER")
        self._reply(True, ch1.name, 4, ch1.uniqueid, ch1)

    def failed(self, leg: Leg, kind: str) -> float:
        """``DialEnd`` where Asterisk sends one, then ``OriginateResponse`` Failure."""
        wire = self.core.wire
        reason = {"timeout": 3, "busy": 5}.get(kind, 0)
        ch1 = leg.ch1
        if kind == "hangup" and ch1 is not None:
            wire.dial_end(None, ch1, "NOANSWER")
        request = self.request
        uniqueid = request.channel_id or "<unknown>"
        stamp = self._reply(False, request.channel, reason, uniqueid, None)
        if kind == "busy" and ch1 is not None:
            wire.dial_end(None, ch1, "BUSY")
        return stamp

    def _reply(
        self, success: bool, channel: str, reason: int, uniqueid: str, ch1: Channel | None
    ) -> float:
        request, session = self.request, self.session
        if not request.is_async:
            if session is not None:
                head = [("Response", "Success" if success else "Error")]
                if request.action_id is not None:
                    head.append(("ActionID", request.action_id))
                text = "Originate successfully queued" if success else "Originate failed"
                session.send([*head, ("Message", text)])
            return self.core.wire.stamp()
        if request.action_id is None and session is None:
            return self.core.wire.stamp()
        cid_num, cid_name = (
            (ch1.cid_num, ch1.cid_name) if ch1 is not None else request.callerid or (None, None)
        )
        return self.core.wire.originate_response(
            action_id=request.action_id,
            success=success,
            channel=channel,
            location=self.location,
            reason=reason,
            uniqueid=uniqueid,
            cid_num=cid_num,
            cid_name=cid_name,
        )


class DialOrigin:
    """A leg made by ``Dial()`` from a callback's agent leg."""

    dial_app = "AppDial"
    timeout = DIAL_TIMEOUT

    def __init__(self, core: Core, callback: OutboundTarget, dialer: Channel) -> None:
        """``dialer`` is the agent's ``;1``, which runs ``Dial``."""
        self.core = core
        self.callback = callback
        self.caller: Channel | None = dialer

    def answered(self, leg: Leg, stamp: float) -> None:
        """``DialEnd`` ANSWER; the called channel's Exten clears; bridge the two."""
        ch1, dialer = leg.channel, self.caller
        assert dialer is not None
        ch1.goto(ch1.context, "", ch1.priority)
        self.core.wire.dial_end(dialer, ch1, "ANSWER")
        ch1.after_bridge = self._dropped
        self.callback.customer_answered(leg, stamp)

    def _dropped(self, channel: Channel, by: str) -> None:
        self.core.teardown(channel, 16, soft=False, by=by)

    def failed(self, leg: Leg, kind: str) -> float:
        """``DialEnd`` NOANSWER, BUSY or CANCEL; then the agent's dialplan goes on."""
        status = {"timeout": "NOANSWER", "busy": "BUSY", "cancel": "CANCEL"}.get(
            kind, "CHANUNAVAIL"
        )
        dialer = self.caller
        stamp = self.core.wire.stamp()
        if leg.ch1 is not None and dialer is not None:
            stamp = self.core.wire.dial_end(dialer, leg.ch1, status)
        self.callback.customer_failed(kind, stamp)
        return stamp


Origin = OriginateOrigin | DialOrigin


# -- the leg -------------------------------------------------------------------------------------


class Target:
    """What a leg's ``;1`` does once answered, and the ground truth of that leg."""

    location: Pairs

    def created(self, leg: Leg) -> None:
        """The leg's channels exist (its ``;1`` Uniqueid is known)."""

    def start(self, leg: Leg) -> None:
        """The leg was answered: run the dialplan or application."""

    def ringing(self, leg: Leg, stamp: float) -> None:
        """``Newstate`` 5 on ``;1``."""

    def answered(self, leg: Leg, stamp: float) -> None:
        """``Newstate`` 6 on ``;1``."""

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:
        """The leg failed: ``no_answer``, ``busy``, ``unavailable`` or ``cancelled``."""

    def gone(self, leg: Leg, stamp: float, by: str) -> None:
        """The answered ``;1`` hung up (``by`` says who caused it)."""


class HangupTarget(Target):
    """A context or application the sim has no dialplan for: hang up once answered."""

    def __init__(self, location: Pairs) -> None:
        """``location`` is what the OriginateResponse reports."""
        self.location = location

    def start(self, leg: Leg) -> None:
        """End of dialplan: the channel hangs up."""
        leg.core.teardown(leg.channel, 16, soft=False, by="pbx")


class Leg:
    """One outgoing call from the PBX to a device; see the module docstring."""

    def __init__(
        self,
        core: Core,
        *,
        device: str,
        phone: Phone,
        target: Target,
        origin: Origin,
        callerid: tuple[str | None, str | None] | None,
        variables: list[tuple[str, str]],
        uniqueids: tuple[str | None, str | None] = (None, None),
        linkedid: str | None = None,
    ) -> None:
        """Prepare the leg; :meth:`start` dials."""
        self.core = core
        self.device = device
        self.phone = phone
        self.target = target
        self.origin = origin
        self.callerid = callerid
        self.variables = variables
        self.uniqueids = uniqueids
        self.linkedid = linkedid
        self.ch1: Channel | None = None
        self.ch2: Channel | None = None
        self.state = _DIALING
        self.plan = PhonePlan()
        self._timers: list[asyncio.TimerHandle] = []

    @property
    def channel(self) -> Channel:
        """The ``;1`` (or only) channel; the leg must have one."""
        assert self.ch1 is not None
        return self.ch1

    def start(self) -> None:
        """Create the channels, dial, and let the phone decide."""
        core = self.core
        core.legs.add(self)
        tech, _, resource = self.device.partition("/")
        if not self.phone.exists:
            core.later(0.0, self._fail, "invalid", "pbx")
            return
        in_use = core.device_in_use(self.device)
        if tech == "Local":
            exten, _, context = resource.partition("@")
            context = context.split("/")[0]
            ch1, ch2 = core.local_pair(
                exten,
                context,
                uniqueids=self.uniqueids,
                linkedid=self.linkedid,
                app=self.origin.dial_app,
                variables=self.variables,
            )
            self.ch2 = ch2
            ch2.owner = self
            dial_string = f"{exten}@{context}"
        else:
            ch1 = core.single_channel(
                tech,
                resource,
                uniqueid=self.uniqueids[0],
                linkedid=self.linkedid,
                variables=self.variables,
            )
            dial_string = resource
        self.ch1 = ch1
        ch1.owner = self
        ch1.dialing = True
        ch1.on_gone = self._ch1_gone
        self.target.created(self)
        if not self.phone.valid:
            self._invalid()
            return
        core.announce_callerid(self, self.callerid)
        if self.ch2 is not None:
            core.wire.local_bridge(ch1, self.ch2)
        core.wire.dial_begin(self.origin.caller, ch1, dial_string)
        self._timers.append(core.later(self.origin.timeout, self._timed_out))
        self.plan = plan = self.phone.plan(in_use)
        self.phone.dialplan(core, self, plan)
        if plan.busy:
            self._busy()
        elif plan.answer_after is not None and not plan.rings:
            self._answer()
        else:
            self._ring()

    def _ring(self) -> None:
        core, ch1, plan = self.core, self.channel, self.plan
        if self.ch2 is not None:
            core.run(self.ch2, 5, "Ringing")
        stamp = core.newstate(ch1, RINGING)
        core.wire.dial_state(self.origin.caller, ch1, "RINGING")
        self.state = _RINGING
        self.target.ringing(self, stamp)
        if plan.answer_after is None:
            if self.ch2 is not None:
                core.run(self.ch2, 11, "Wait", seconds_text(NEVER_ANSWER_WAIT))
            self._timers.append(core.later(NEVER_ANSWER_WAIT, self._phone_gives_up))
        else:
            if self.ch2 is not None:
                core.run(self.ch2, 7, "Wait", seconds_text(plan.answer_after))
            self._timers.append(core.later(plan.answer_after, self._answer))

    def _answer(self) -> None:
        if self.state not in (_DIALING, _RINGING):
            return
        self._cancel_timers()
        core, ch1 = self.core, self.channel
        if self.ch2 is not None:
            core.run(self.ch2, 8, "Answer")
            core.newstate(self.ch2, UP)
        stamp = core.newstate(ch1, UP)
        ch1.dialing = False
        self.state = _UP
        self.target.answered(self, stamp)
        self.origin.answered(self, stamp)
        self._timers.append(core.later(ANSWER_SETTLE, self._settled))
        self._timers.append(core.later(ANSWER_SETTLE + self.plan.stay, self._phone_hangs_up))
        if ch1.alive:
            self.target.start(self)

    def _settled(self) -> None:
        if self.ch2 is not None and self.ch2.alive:
            self.core.run(self.ch2, 9, "Wait", seconds_text(self.plan.stay))

    def _busy(self) -> None:
        core, ch1 = self.core, self.channel
        if self.ch2 is not None:
            core.run(self.ch2, 13, "Busy", "3")
            self.ch2.hangup_cause = 17
            core.newstate(self.ch2, BUSY)
        else:
            ch1.hangup_cause = 17
        self._fail("busy", "pbx")

    def _timed_out(self) -> None:
        if self.state in (_DIALING, _RINGING):
            self._fail("timeout", "pbx")

    def cancel(self, by: str) -> None:
        """The dialling side gave up (a Dial cancelled by its caller hanging up)."""
        if self.state in (_DIALING, _RINGING):
            self._fail("cancel", by)

    def _invalid(self) -> None:
        """A Local channel into a missing context: both halves hang up at once (cause 0)."""
        self.state = _GONE
        core = self.core
        for channel in (self.ch2, self.ch1):
            if channel is not None:
                core.hangup_now(channel, 0, "pbx", device_state="INVALID")
        self._report("invalid", "pbx")
        self._done()

    def _fail(self, kind: str, by: str) -> None:
        """The leg failed before answer; write its outcome and drop its channels."""
        if self.state == _GONE:
            return
        self.state = _GONE
        self._cancel_timers()
        self._report(kind, by)
        ch1 = self.ch1
        if ch1 is not None and ch1.alive:
            cause = {"timeout": 19, "busy": 0}.get(kind, 16)
            self.core.teardown(ch1, cause, soft=False, by=by)
        self._done()

    def _report(self, kind: str, by: str) -> None:
        stamp = self.origin.failed(self, kind)
        outcome = {"timeout": "no_answer", "busy": "busy"}.get(kind, "unavailable")
        if kind == "cancel" or (kind == "hangup" and by == "manager"):
            outcome = "cancelled"
        self.target.failed(self, outcome, stamp)

    def _phone_gives_up(self) -> None:
        ch2 = self.ch2
        if ch2 is not None and ch2.alive:
            self.core.run(ch2, 12, "Hangup")
            self.core.teardown(ch2, 16, soft=True, by=self.phone.party)
        elif self.ch1 is not None and self.ch1.alive:
            self.core.teardown(self.ch1, 21, soft=False, by=self.phone.party)

    def _phone_hangs_up(self) -> None:
        ch1 = self.ch1
        if ch1 is None or not ch1.alive:
            return
        if ch1.bridge is not None and not self.phone.stay_while_bridged:
            return
        ch2 = self.ch2
        if ch2 is not None:
            self.core.run(ch2, 10, "Hangup")
            self.core.teardown(ch2, 16, soft=True, by=self.phone.party)
        else:
            self.core.remote_hangup(ch1, 16, by=self.phone.party)

    def _ch1_gone(self, channel: Channel, stamp: float, by: str) -> None:
        if self.state in (_DIALING, _RINGING):
            self._fail("hangup", by)
            return
        if self.state == _UP:
            self.state = _GONE
            self.target.gone(self, stamp, by)
        self._done()

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _done(self) -> None:
        self._cancel_timers()
        core = self.core
        if self in core.legs and (self.ch1 is None or not self.ch1.alive):
            core.legs.discard(self)
            core.check_idle()


# -- inbound callers -------------------------------------------------------------------------------


class InboundCall(Target):
    """A caller in ``hotline-inbound``, announced by ``HotlineCallWaiting``, waiting."""

    def __init__(self, core: Core, *, exten: str = "400", preset: Pairs | None = None) -> None:
        """``preset`` are the HOTLINE_* variables an IVR would have set."""
        self.core = core
        self.exten = exten
        self.preset = list(preset or [])
        self.location = [("Context", "hotline-inbound"), ("Exten", exten)]
        self.leg: Leg | None = None
        self.record: CallRecord | None = None
        self._wait: asyncio.TimerHandle | None = None

    @property
    def channel(self) -> Channel:
        """The caller's ``;1``."""
        assert self.leg is not None
        return self.leg.channel

    def start(self, leg: Leg) -> None:
        """``;1`` enters ``hotline-inbound``."""
        self.leg = leg
        channel = leg.channel
        channel.after_bridge = self._bridge_ended
        calls = self.core.calls
        calls[channel.name] = self
        self.core.peak_calls = max(self.core.peak_calls, len(calls))
        for name, value in self.preset:
            self.core.set_var(channel, name, value)
        self._announce()

    def _announce(self) -> None:
        core, channel = self.core, self.channel
        channel.goto("hotline-inbound", self.exten, 1)
        core.run(channel, 1, "NoOp", "hotline via backend")
        core.run(channel, 2, "Answer")
        variables = channel.variables
        queue = variables.get("HOTLINE_QUEUE") or "support"
        priority = variables.get("HOTLINE_PRIORITY") or "0"
        core.run(channel, 3, "Set", f"HOTLINE_QUEUE={queue}")
        core.set_var(channel, "HOTLINE_QUEUE", queue)
        core.run(channel, 4, "Set", f"HOTLINE_PRIORITY={priority}")
        core.set_var(channel, "HOTLINE_PRIORITY", priority)
        headers = [("HotlineQueue", queue), ("HotlinePriority", priority)]
        skills, lang = variables.get("HOTLINE_SKILLS"), variables.get("HOTLINE_LANG")
        if skills:
            headers.append(("HotlineSkills", skills))
        if lang:
            headers.append(("HotlineLang", lang))
        data = ",".join(["HotlineCallWaiting", *(f"{k}: {v}" for k, v in headers)])
        core.run(channel, 5, "UserEvent", data)
        stamp = core.wire.user_event(channel, "HotlineCallWaiting", headers)
        core.run(channel, 6, "Wait", seconds_text(INBOUND_WAIT))
        self._wait = core.later(INBOUND_WAIT, self._wait_over)
        self._record(stamp, queue, priority, skills, lang)

    def _record(
        self, stamp: float, queue: str, priority: str, skills: str | None, lang: str | None
    ) -> None:
        try:
            priority_number = int(priority)
        except ValueError:
            priority_number = 0
        skill_list = [s for s in (skills or "").split(",") if s]
        record = self.record
        if record is None:
            channel = self.channel
            self.record = CallRecord(
                call_id=channel.uniqueid,
                channel=channel.name,
                linkedid=channel.linkedid,
                number=channel.cid_num or channel.device.partition("/")[2].partition("@")[0],
                queue=queue,
                priority=priority_number,
                skills=skill_list,
                lang=lang,
                arrived_at=stamp,
            )
        else:
            record.queue, record.priority, record.skills, record.lang = (
                queue,
                priority_number,
                skill_list,
                lang,
            )

    def add_ring(self, ring: RingRecord) -> None:
        """An agent leg was originated for this caller."""
        if self.record is not None:
            self.record.rings.append(ring)

    def ring_answered(self, ring: RingRecord) -> None:
        """An agent answered this caller's ring (the bridge follows)."""
        record = self.record
        if (
            record is not None
            and record.answered_at is None
            and record.outcome is None
            and self.channel.alive
            and self.channel.bridge is None
        ):
            record.answered_at = ring.ring_end
            record.answered_by = ring.agent

    def bridge_with(self, agent: Channel) -> bool:
        """``Bridge(${HOTLINE_CALLER})`` from the agent leg; False if the caller cannot be."""
        channel = self.channel
        if (
            not channel.alive
            or channel.bridge is not None
            or self.core.calls.get(channel.name) is not self
        ):
            return False
        if self._wait is not None:
            self._wait.cancel()
        channel.step(7, None)
        self.core.bridge(channel, agent)
        return True

    def _bridge_ended(self, channel: Channel, by: str) -> None:
        self.core.run(channel, 7, "Hangup")
        self.core.teardown(channel, 16, soft=True, by=by)

    def _wait_over(self) -> None:
        channel = self.channel
        if channel.alive and channel.bridge is None:
            self.core.run(channel, 7, "Hangup")
            self.core.teardown(channel, 16, soft=True, by="caller")

    def redirect(self, context: str, exten: str, priority: int, stamp: float) -> None:
        """A manager ``Redirect``: into ``hotline-inbound`` re-announces, elsewhere ends."""
        core, channel = self.core, self.channel
        if self._wait is not None:
            self._wait.cancel()
        core.unbridge(channel, "redirect")
        if context == "hotline-inbound":
            self.exten = exten
            self._announce()
            return
        self._finish(stamp, "redirect", redirect_to=f"{context},{exten},{priority}")
        channel.goto(context, exten, priority)
        core.run(channel, priority, "Wait", "")

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:
        """The caller's own phone never answered: no call to record."""

    def gone(self, leg: Leg, stamp: float, by: str) -> None:
        """The caller's ``;1`` hung up."""
        if self._wait is not None:
            self._wait.cancel()
        self._finish(stamp, by)

    def _finish(self, stamp: float, by: str, redirect_to: str | None = None) -> None:
        core = self.core
        name = self.channel.name
        if core.calls.get(name) is self:
            del core.calls[name]
        record = self.record
        if record is None or record.outcome is not None:
            return
        core.ended_calls[name] = record.call_id
        if len(core.ended_calls) > 10_000:
            core.ended_calls.popitem(last=False)
        ringing = False
        for ring in record.rings:
            if not ring.resolved:
                ringing = True
                ring.resolve("cancelled", stamp)
        record.ended_at = stamp
        if redirect_to is not None:
            record.outcome, record.hung_up_by, record.redirect_to = (
                "redirected",
                "redirect",
                redirect_to,
            )
        else:
            record.hung_up_by = by if by in ("caller", "agent", "manager") else "caller"
            record.outcome = "answered" if record.answered_at is not None else "abandoned"
            if record.answered_at is None:
                record.abandoned_while = "ringing" if ringing else "waiting"
        core.gt.call(record)

    def close_open(self) -> None:
        """Write the call as ``open`` (the sim is closing)."""
        record = self.record
        if record is not None and record.outcome is None:
            record.outcome = "open"
            self.core.gt.call(record)


# -- agent legs for a caller -----------------------------------------------------------------------


class BridgeTarget(Target):
    """``hotline-bridge``: ``MixMonitor`` then ``Bridge(${HOTLINE_CALLER})``."""

    def __init__(
        self, core: Core, *, context: str, exten: str, caller: str, ring: RingRecord
    ) -> None:
        """``caller`` is HOTLINE_CALLER; ``ring`` the ground truth of this offer."""
        self.core = core
        self.location = [("Context", context), ("Exten", exten)]
        self.caller = caller
        self.ring = ring
        self.call = core.calls.get(caller)
        if self.call is not None:
            self.call.add_ring(ring)
        else:
            ring.resolve("cancelled", ring.requested_at)

    def created(self, leg: Leg) -> None:
        """The leg's Uniqueid is the ring's ``leg_id``."""
        self.ring.leg_id = leg.channel.uniqueid

    def ringing(self, leg: Leg, stamp: float) -> None:
        """Ring start."""
        if not self.ring.resolved:
            self.ring.ring_start = stamp

    def answered(self, leg: Leg, stamp: float) -> None:
        """The agent answered."""
        if not self.ring.resolved:
            self.ring.resolve("answered", stamp)
            if self.call is not None:
                self.call.ring_answered(self.ring)

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:
        """No answer, busy, unavailable, cancelled."""
        self.ring.resolve(outcome, stamp)
        self._orphan()

    def start(self, leg: Leg) -> None:
        """Record, then bridge to the caller (or hang up if the caller is gone)."""
        core, channel = self.core, leg.channel
        channel.goto("hotline-bridge", "s", 1)
        core.run(channel, 1, "NoOp", f"agent answered for {self.caller}")
        core.start_recording(channel, 2)
        core.run(channel, 3, "Bridge", self.caller)
        channel.after_bridge = self._bridge_returned
        call = core.calls.get(self.caller)
        if call is not None and call.bridge_with(channel):
            return
        core.set_var(channel, "BRIDGERESULT", "NONEXISTENT")
        core.run(channel, 4, "Hangup")
        core.teardown(channel, 16, soft=True, by="pbx")

    def _bridge_returned(self, channel: Channel, by: str) -> None:
        self.core.set_var(channel, "BRIDGERESULT", "SUCCESS")
        self.core.run(channel, 4, "Hangup")
        self.core.teardown(channel, 16, soft=True, by=by)

    def gone(self, leg: Leg, stamp: float, by: str) -> None:
        """The agent leg hung up."""
        self._orphan()

    def _orphan(self) -> None:
        if self.call is None:
            call_id = self.core.ended_calls.get(self.caller)
            self.core.gt.orphan_ring(self.caller, call_id, self.ring)


# -- callbacks -------------------------------------------------------------------------------------


class OutboundTarget(Target):
    """``hotline-outbound``: ``MixMonitor``, then ``Dial`` the customer for 30 s."""

    def __init__(self, core: Core, *, number: str, record: CallbackRecord) -> None:
        """``number`` is the Originate's Exten."""
        self.core = core
        self.number = number
        self.location = [("Context", "hotline-outbound"), ("Exten", number)]
        self.record = record
        self.customer: Leg | None = None
        self.agent_done = False
        core.callbacks.add(self)

    def created(self, leg: Leg) -> None:
        """The leg's Uniqueid is the callback's ``leg_id``."""
        self.record.leg_id = leg.channel.uniqueid

    def ringing(self, leg: Leg, stamp: float) -> None:
        """The agent's phone rings."""
        self.record.ring_start = stamp

    def answered(self, leg: Leg, stamp: float) -> None:
        """The agent answered."""
        self.record.ring_end = stamp
        self.record.agent_outcome = "answered"

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:
        """The agent leg failed: the callback is over."""
        record = self.record
        record.ring_end = stamp
        record.agent_outcome = outcome
        record.ended_at = stamp
        record.hung_up_by = "manager" if outcome == "cancelled" else "agent"
        self.agent_done = True
        self.maybe_done()

    def start(self, leg: Leg) -> None:
        """Record, then dial the customer."""
        core, channel = self.core, leg.channel
        channel.goto("hotline-outbound", self.number, 1)
        core.run(
            channel,
            1,
            "NoOp",
            f"callback {channel.variables.get('HOTLINE_TICKET', '')} to {self.number}",
        )
        core.start_recording(channel, 2)
        prefix = core.globals.get("HOTLINE_DIAL_PREFIX", "Local/")
        suffix = core.globals.get("HOTLINE_DIAL_SUFFIX", "@callers")
        device = f"{prefix}{self.number}{suffix}"
        core.run(channel, 3, "Dial", f"{device},{int(DIAL_TIMEOUT)}")
        channel.after_bridge = self._dial_returned
        customer = Leg(
            core,
            device=device,
            phone=core.phone_for(device, customer=True),
            target=DialedTarget(self),
            origin=DialOrigin(core, self, channel),
            callerid=None,
            variables=[],
            linkedid=channel.linkedid,
        )
        self.customer = customer
        customer.start()

    def customer_answered(self, leg: Leg, stamp: float) -> None:
        """The customer answered: bridge customer and agent."""
        self.record.customer_answered_at = stamp
        self.record.customer_outcome = "answered"
        agent = self.customer_dialer()
        if agent is not None and agent.alive:
            self.core.bridge(leg.channel, agent)

    def customer_dialer(self) -> Channel | None:
        """The agent's ``;1``."""
        customer = self.customer
        return customer.origin.caller if customer is not None else None

    def customer_failed(self, kind: str, stamp: float) -> None:
        """The customer did not answer (or was busy, or the dial was cancelled)."""
        record = self.record
        record.customer_outcome = {"timeout": "no_answer", "busy": "busy"}.get(kind)
        agent = self.customer_dialer()
        if kind != "cancel" and agent is not None and agent.alive:
            self.core.run(agent, 4, "Hangup")
            self.core.teardown(agent, 16, soft=True, by="customer")
        self.maybe_done()

    def _dial_returned(self, channel: Channel, by: str) -> None:
        self.core.run(channel, 4, "Hangup")
        self.core.teardown(channel, 16, soft=True, by=by)

    def gone(self, leg: Leg, stamp: float, by: str) -> None:
        """The agent leg hung up after answering."""
        record = self.record
        record.ended_at = stamp
        record.hung_up_by = by if by in ("agent", "customer", "manager") else "agent"
        self.agent_done = True
        if self.customer is not None:
            self.customer.cancel(by)
        self.maybe_done()

    def maybe_done(self) -> None:
        """Write the callback once both the agent leg and the customer leg are over."""
        customer = self.customer
        if not self.agent_done or (
            customer is not None and customer in self.core.legs and customer.state != _GONE
        ):
            return
        if self in self.core.callbacks:
            self.core.callbacks.discard(self)
            self.core.gt.callback(self.record)

    def close_open(self) -> None:
        """Write the callback as it stands (the sim is closing)."""
        if self in self.core.callbacks:
            self.core.callbacks.discard(self)
            self.core.gt.callback(self.record)


class DialedTarget(Target):
    """The customer leg of a callback: bridged by the Dial, nothing to run itself."""

    def __init__(self, callback: OutboundTarget) -> None:
        """``callback`` is told when the customer leg is over."""
        self.callback = callback
        self.location = []

    def gone(self, leg: Leg, stamp: float, by: str) -> None:
        """The customer hung up after answering."""
        self.callback.maybe_done()


# -- supervisors -----------------------------------------------------------------------------------


class SpyTarget(Target):
    """``ChanSpy(<device>,q|qw|qB)`` on the supervisor's ``;1``.

    As in ``supervisor_spy.jsonl``, a manager ``Hangup`` of a spying channel
    is acknowledged but takes effect only when the spied-on channel goes.
    """

    def __init__(self, core: Core, data: str) -> None:
        """``data`` is the Originate's Data: ``<device>,<options>``."""
        self.core = core
        self.data = data
        self.prefix = data.split(",")[0] + "-"
        self.location = [("Application", "ChanSpy"), ("Data", data)]
        self.spyer: Channel | None = None
        self.spyee: Channel | None = None
        self.hangup_pending = False

    def start(self, leg: Leg) -> None:
        """Start looking for a channel of the device."""
        self.spyer = channel = leg.channel
        channel.step(channel.priority, "ChanSpy", self.data)
        channel.spies.append(self)
        self.core.later(SPY_START_DELAY, self._scan)

    def _scan(self) -> None:
        spyer = self.spyer
        if spyer is None or not spyer.alive or self.spyee is not None:
            return
        candidates = [
            ch
            for name, ch in self.core.channels.by_name.items()
            if name.startswith(self.prefix) and ch.state == UP
        ]
        if not candidates:
            self.core.later(SPY_RESCAN, self._scan)
            return
        spyee = next((ch for ch in candidates if ch.half == 2), candidates[0])
        self.spyee = spyee
        spyee.spies.append(self)
        self.core.wire.chanspy("ChanSpyStart", spyer, spyee)

    def defers_hangup(self, channel: Channel) -> bool:
        """A manager Hangup of the spying channel waits until the spied-on channel goes."""
        if channel is self.spyer and self.spyee is not None:
            self.hangup_pending = True
            return True
        return False

    def channel_leaving(self, channel: Channel) -> None:
        """The spyer or the spyee is hanging up: stop spying."""
        spyer, spyee = self.spyer, self.spyee
        if spyer is None or spyee is None:
            return
        self.core.wire.chanspy("ChanSpyStop", spyer, spyee)
        if self in spyee.spies:
            spyee.spies.remove(self)
        self.spyee = None
        if channel is spyee and spyer.alive:
            if self.hangup_pending:
                self.core.teardown(spyer, 16, soft=False, by="manager")
            else:
                self.core.later(SPY_RESCAN, self._scan)


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
    ) -> None:
        """Everything the flows need; the event loop is the running one."""
        self.wire = wire
        self.clock = clock
        self.scenario = scenario
        self.gt = ground_truth
        self.channels = ChannelRegistry()
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
        return self._loop.call_later(self.clock.wall_delay(delay), self._run_timer, callback, args)

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
            if not device.channels and not device.private and device_state is None:
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
        patience = _number(varmap.get("PATIENCE"), -1.0)
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
                leg_id=request.channel_id,
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
                leg_id=request.channel_id,
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
