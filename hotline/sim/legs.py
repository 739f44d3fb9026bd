"""Legs: one outgoing call from the simulated PBX to a device, from dial to hang-up.

Theory of operation
-------------------
A :class:`Leg` is one outgoing call: an ``Originate`` (from a client, or a
scenario caller dialling in), or the ``Dial`` of a callback. It creates the
channels (a Local pair, or one channel for ``PJSIP/...``), announces them
(``Newchannel``, ``NewCallerid``, ``NewConnectedLine``, ``LocalBridge``,
``DialBegin``), and lets the device's :class:`Phone` decide the offer:

* busy: ``Newstate`` 7 on ``;2``, then Reason 5 and cause 17;
* ring: ``Newstate`` 5 on ``;1`` and ``DialState`` RINGING, then answer after a
  delay, or never (Reason 3 when the Originate's ``Timeout`` runs out);
* answer at once, without ringing (a customer's line, a supervisor's phone).

The leg moves ``dialing -> ringing -> up -> gone`` (or straight to ``gone`` on
a failure). Its *origin* writes the outcome the way its kind does:
:class:`OriginateOrigin` an ``OriginateResponse`` (and ``DialEnd`` where
Asterisk sends one), :class:`DialOrigin` a ``DialEnd`` with the caller's
snapshot. Its *target* (:mod:`hotline.sim.calls`) is what the ``;1`` runs once
answered, and keeps the ground truth. After answering, the phone stays for its
talk time (agents), patience (callers and customers, only while not bridged) or
listening time (supervisors), plus the half second ``Answer()`` waits for media,
then hangs up.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hotline.sim.amiserver import AmiSession
from hotline.sim.channels import BUSY, RINGING, UP, Channel, Pairs
from hotline.sim.scenario import AgentBehaviour, Distribution, Fixed

if TYPE_CHECKING:
    from hotline.sim.calls import OutboundTarget
    from hotline.sim.core import Core

__all__ = [
    "ANSWER_SETTLE",
    "DIAL_TIMEOUT",
    "AgentPhone",
    "CustomerPhone",
    "DialOrigin",
    "HangupTarget",
    "InvalidPhone",
    "Leg",
    "MissingPhone",
    "OriginateOrigin",
    "OriginateRequest",
    "Phone",
    "PhonePlan",
    "SupervisorPhone",
    "Target",
    "number_or",
    "seconds_text",
]

ANSWER_SETTLE: Final = 0.5
"""``Answer()`` on a Local channel waits this long for media (visible in every trace)."""
NEVER_ANSWER_WAIT: Final = 300.0
DIAL_TIMEOUT: Final = 30.0

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
    """The device at the far end of a leg. Subclasses decide each offer.

    ``answer_priority`` is where its dialplan runs ``Answer`` (then ``Wait`` for
    the stay, then ``Hangup``), as the traces' contexts number them.
    """

    party = "pbx"
    stay_while_bridged = True
    valid = True
    exists = True
    answer_priority = 8

    def plan(self, in_use: bool) -> PhonePlan:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
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
            delay = number_or(db_delay, delay)
        talk = number_or(db_talk, talk) if db_talk is not None else talk
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
    answer_priority = 2

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

    def plan(self, in_use: bool) -> PhonePlan:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
        """Busy or no answer by chance; else answer after the delay (0: at once, no ringing)."""
        draw = self.rng.random()
        delay = self.answer_delay.sample(self.rng)
        patience = self.patience.sample(self.rng)
        if draw < self.busy:
            return PhonePlan(busy=True, stay=patience)
        if draw < self.busy + self.no_answer:
            return PhonePlan(answer_after=None, stay=patience)
        return PhonePlan(answer_after=delay, rings=delay > 0, stay=patience)

    def dialplan(self, core: Core, leg: Leg, plan: PhonePlan) -> None:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
        """NoOp, as in the traces' ``callers`` context."""
        if leg.ch2 is not None and core.wire.noise:
            core.run(leg.ch2, 1, "NoOp", f"customer {leg.ch2.exten}")


class SupervisorPhone(Phone):
    """A supervisor's phone (``Local/<ext>@supervisors``): answers at once, listens a while."""

    party = "supervisor"
    answer_priority = 1

    def __init__(self, listen: Distribution, rng: random.Random) -> None:
        """``listen`` is how long the supervisor stays."""
        self.listen = listen
        self.rng = rng

    def plan(self, in_use: bool) -> PhonePlan:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
        """Answer at once."""
        return PhonePlan(answer_after=0.0, rings=False, stay=self.listen.sample(self.rng))


class InvalidPhone(Phone):
    """A Local channel into a context the PBX does not have: both halves hang up at once."""

    valid = False


class MissingPhone(Phone):
    """A channel technology the PBX does not have: no channel is created."""

    exists = False


def number_or(text: str | None, default: float) -> float:
    """``text`` as a number, or ``default`` if it is missing or not a number."""
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

    def answered(self, leg: Leg, stamp: float) -> None:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
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
    def finished(self) -> bool:
        """The leg is over (failed, or answered and hung up)."""
        return self.state == _GONE

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
        if any(uid is not None and core.channels.holds_uniqueid(uid) for uid in self.uniqueids):
            core.later(0.0, self._refuse_ids)
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
            core.run(self.ch2, self.phone.answer_priority, "Answer")
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
            self.core.run(
                self.ch2, self.phone.answer_priority + 1, "Wait", seconds_text(self.plan.stay)
            )

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

    def _refuse_ids(self) -> None:
        """A ChannelId a live channel holds is refused at once, with no channel: Failure,
        Reason 0, Uniqueid = the ChannelId; the ringing holder's ``DialState`` RINGING
        comes once more (``channelid_conflict.jsonl``)."""
        self._fail("invalid", "pbx")
        for leg in list(self.core.legs):
            ch1 = leg.ch1
            if leg.state == _RINGING and ch1 is not None and ch1.uniqueid in self.uniqueids:
                self.core.wire.dial_state(leg.origin.caller, ch1, "RINGING")

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
            self.core.run(ch2, self.phone.answer_priority + 2, "Hangup")
            self.core.teardown(ch2, 16, soft=True, by=self.phone.party)
        else:
            self.core.remote_hangup(ch1, 16, by=self.phone.party)

    def _ch1_gone(self, channel: Channel, stamp: float, by: str) -> None:  # noqa: ARG002 (the phone-behaviour interface; this behaviour ignores it)
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
