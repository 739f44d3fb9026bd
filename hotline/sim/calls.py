"""The integration contract's dialplan in the simulated PBX: what an answered leg runs.

Theory of operation
-------------------
Each *target* is the dialplan (or application) a leg's ``;1`` runs once
answered (see :mod:`hotline.sim.legs`), and the keeper of that call's ground
truth:

* :class:`InboundCall` (``hotline-inbound``): ``Answer``, ``Set`` the
  ``HOTLINE_QUEUE``/``HOTLINE_PRIORITY`` defaults, ``UserEvent
  HotlineCallWaiting`` after the snapshot, then ``Wait(600)``. It waits to be
  pulled into a bridge by an agent leg; when the bridge ends it runs
  ``Hangup`` at priority 7. A ``Redirect`` back into ``hotline-inbound``
  announces the caller again; anywhere else ends the call's record.
* :class:`BridgeTarget` (``hotline-bridge``): ``MixMonitor`` then
  ``Bridge(${HOTLINE_CALLER})``; without a caller to bridge it hangs up.
* :class:`OutboundTarget` (``hotline-outbound``): ``MixMonitor`` then ``Dial``
  the customer for 30 s; the customer's leg is bridged to the agent's on answer.
* :class:`SpyTarget` (``ChanSpy``): spies on a channel of the device once one is
  up; a manager ``Hangup`` of the spying channel waits for the spied-on one to
  go, as ``supervisor_spy.jsonl`` shows.

No ``MixMonitorStop`` is sent: the recording stops with the channel, and
Asterisk 22 sends no event for that (see every ``backend_*`` trace).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from hotline.sim.channels import UP, Channel, Pairs
from hotline.sim.groundtruth import CallbackRecord, CallRecord, RingRecord
from hotline.sim.legs import DIAL_TIMEOUT, DialOrigin, Leg, Target, seconds_text

if TYPE_CHECKING:
    from hotline.sim.core import Core

__all__ = ["BridgeTarget", "DialedTarget", "InboundCall", "OutboundTarget", "SpyTarget"]

SPY_START_DELAY: Final = 0.1
SPY_RESCAN: Final = 1.0
INBOUND_WAIT: Final = 600.0
JOURNAL: Final = "hotline_journal"
"""The AstDB family of the inbound journal (README: "The call journal")."""


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
        self.journal_answer = ""
        """What ``hotline-bridge`` sets on the caller (SHARED) before ``Bridge()``:
        ``<answered>|<agent channel>|<agent Uniqueid>|<ticket>``."""

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
        if variables.get("HOTLINE_STICKY_AGENT"):
            headers.append(("HotlineAgent", variables["HOTLINE_STICKY_AGENT"]))
        data = ",".join(["HotlineCallWaiting", *(f"{k}: {v}" for k, v in headers)])
        core.run(channel, 5, "UserEvent", data)
        stamp = core.wire.user_event(channel, "HotlineCallWaiting", headers)
        number = channel.cid_num or ""
        if self.exten != "transfer":  # a transferred caller keeps their entry (the dialplan)
            core.db.setdefault(JOURNAL, {})[channel.uniqueid] = (
                f"{stamp:.3f}|{queue}|{priority}|{number}"
            )
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
        """The caller's ``;1`` hung up: the hangup handler closes its journal entry."""
        if self._wait is not None:
            self._wait.cancel()
        journal = self.core.db.get(JOURNAL, {})
        entry = journal.get(leg.channel.uniqueid)
        if entry is not None and entry.count("|") == 3:
            answer = f"|{self.journal_answer}" if self.journal_answer else ""
            journal[leg.channel.uniqueid] = f"{entry}|{stamp:.3f}{answer}"
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

    def ringing(self, leg: Leg, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
        """Ring start."""
        if not self.ring.resolved:
            self.ring.ring_start = stamp

    def answered(self, leg: Leg, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
        """The agent answered."""
        if not self.ring.resolved:
            self.ring.resolve("answered", stamp)
            if self.call is not None:
                self.call.ring_answered(self.ring)

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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
        answered_at = f"{core.wire.stamp():.3f}"
        core.set_var(channel, "HOTLINE_ANSWERED_AT", answered_at)
        if call is not None and not call.journal_answer:
            ticket = channel.variables.get("HOTLINE_TICKET", "")
            call.journal_answer = f"{answered_at}|{channel.name}|{channel.uniqueid}|{ticket}"
        if call is not None and call.bridge_with(channel):
            return
        core.set_var(channel, "BRIDGERESULT", "NONEXISTENT")
        core.run(channel, 4, "Hangup")
        core.teardown(channel, 16, soft=True, by="pbx")

    def _bridge_returned(self, channel: Channel, by: str) -> None:
        self.core.set_var(channel, "BRIDGERESULT", "SUCCESS")
        self.core.run(channel, 4, "Hangup")
        self.core.teardown(channel, 16, soft=True, by=by)

    def gone(self, leg: Leg, stamp: float, by: str) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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

    def ringing(self, leg: Leg, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
        """The agent's phone rings."""
        self.record.ring_start = stamp

    def answered(self, leg: Leg, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
        """The agent answered."""
        self.record.ring_end = stamp
        self.record.agent_outcome = "answered"

    def failed(self, leg: Leg, outcome: str, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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

    def customer_failed(self, kind: str, stamp: float) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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

    def gone(self, leg: Leg, stamp: float, by: str) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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
            customer is not None and customer in self.core.legs and not customer.finished
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

    def gone(self, leg: Leg, stamp: float, by: str) -> None:  # noqa: ARG002 (a leg-observer callback; this call kind ignores it)
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
