"""The ACD: which agent rings for which waiting caller, and what happens after.

Theory of operation
-------------------
:class:`Router` owns the live model (agents, calls, offers) and is pure: each
entry point takes the event and ``now`` (the engine's clock) and returns a list
of effects (AMI commands for the engine to run, and facts for the stores and
metrics). It never sleeps, reads a clock or touches the network, so tests drive
it with plain values, and Hypothesis can run it through random event sequences.

Times: ``now`` schedules timers (wrap-up, cool-down, maximum wait, the safety
guard on an Originate). Measured figures (ring start and end, arrival, answer,
hang-up) come from the events' own times, which are the PBX's ``Timestamp`` when
present; each records its source.

A call arrives (``HotlineCallWaiting``) and waits in its queue, ordered by
effective priority (caller priority plus the queue's ``priority_weight``), then
arrival time. After every event the router runs :meth:`_dispatch`: while some
waiting call has an eligible available agent, it takes the best such call and
rings the agent its queue's strategy picks. An agent is *available* when logged
in, not paused, idle, not cooling down after a busy/unavailable ring, and whose
device is not busy with a call of its own; *eligible* for a call when also
serving its queue and having every required skill. Hence the invariant: after
any event, no caller waits while an eligible agent is available.

An offer (one ring) is an ``Originate`` whose ActionID and ChannelId are both the
offer id (:func:`offer_id_for`), so every event of the agent leg is recognised
from its ``Newchannel`` on. The ring starts at the leg's first ``Newstate`` 5
(or when the Originate was written, if it never rings) and ends at the answer
(``Newstate`` 6 or a successful ``OriginateResponse``), at the failure, or when
the caller leaves.
The agent stays reserved until the ``OriginateResponse`` closes the offer, so an
agent is never rung for two callers at once.

On failure the caller goes straight back to the head of its place in the queue
(its arrival time is kept) and is offered to the next agent at once; agents who
already missed this caller come last. A ring-no-answer counts against the agent
(``max_consecutive_misses`` in a row pause them with reason "no answer"); busy
or unavailable makes the agent unavailable until the device reports NOT_INUSE
(but not before ``busy_retry_after``) or the ``unavailable_cooldown`` passes.

A caller who hangs up ends the call as abandoned (while waiting or while
ringing: the ringing leg is then hung up). A caller who waited ``max_wait`` in a
queue overflows to the next queue (same arrival time) or is redirected to a
dialplan target (final outcome "overflowed"). Each call gets exactly one outcome:
answered, abandoned while waiting, abandoned while ringing, or overflowed.

After a reconnect, :meth:`resync` reconciles the model with the PBX's live
channels: calls and legs that vanished are closed, callers that arrived unseen
are queued with their original arrival time, calls in progress are re-attached.

Every login, logout, pause and unpause is an :class:`AgentPresenceChanged` fact,
for the stores to persist; at start, :meth:`restore` brings those states and the
sticky history back before the first event.

After a restart, the previous process' agent legs that still ring are adopted as
live offers; offer ids carry a per-process boot id, so the two processes' legs
and ActionIDs never collide.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hotline.domain.effects import (
    AgentPresenceChanged,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallbackAttemptEnded,
    CallEnded,
    CallRequeued,
    DeleteJournalEntry,
    Effect,
    HangupChannel,
    OfferEnded,
    OfferStarted,
    OriginateAgentLeg,
    RedirectChannel,
    RoutingWarning,
    WrapUpEnded,
)
from hotline.domain.events import (
    CallbackDue,
    CallerWaiting,
    ChannelBridged,
    ChannelHungUp,
    ChannelInfo,
    ChannelState,
    DeviceStateChanged,
    DialEnded,
    DialResult,
    DomainEvent,
    JournalEntry,
    LegChannelCreated,
    LineState,
    OriginateRejected,
    OriginateResult,
    PbxSnapshot,
)
from hotline.domain.model import (
    Activity,
    Agent,
    AgentPresence,
    AgentState,
    Call,
    CallState,
    Offer,
    OfferResult,
    Outcome,
)
from hotline.domain.settings import AgentConfig, QueueConfig, RoutingConfig

__all__ = ["LEG_ID_PREFIX", "NO_ANSWER_PAUSE", "Router", "UnknownAgent", "offer_id_for"]

LEG_ID_PREFIX = "hl-"
"""How every offer id (the agent leg's ChannelId, hence its Uniqueid) starts."""

NO_ANSWER_PAUSE = "no answer"
_REASON_RESULTS = {DialResult.NO_ANSWER: OfferResult.NO_ANSWER, DialResult.BUSY: OfferResult.BUSY}
_GUARD_EXTENSIONS = 6
_CALLBACK_PRIORITY = -1_000_000  # below every inbound caller
_RECENTLY_ENDED = 50_000  # ended call ids remembered, so the journal never counts one twice

TicketAllocator = Callable[[str, float], str]
"""``(caller number, now) -> ticket number``: the caller's open ticket, or a new one."""
_QueueKey = tuple[float, float, int, str]


class UnknownAgent(KeyError):
    """An agent command named an agent that is not configured."""


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: float
    kind: str
    key: str


class Router:
    """The ACD state machine. See the module docstring for the theory of operation."""

    def __init__(
        self,
        routing: RoutingConfig,
        queues: dict[str, QueueConfig],
        agents: Iterable[AgentConfig],
        allocate_ticket: TicketAllocator,
        *,
        boot_id: str = "",
    ) -> None:
        """Build the model from configuration; every agent starts logged out.

        ``boot_id`` is unique to this process: it goes into every offer id, so no
        leg id or ActionID of ours collides with a previous process' (contract §2.8).
        """
        self.boot_id = boot_id
        self.routing = routing
        self.queues = dict(queues)
        self.agents: dict[str, Agent] = {
            config.id: Agent(config=config, skills=frozenset(config.skills)) for config in agents
        }
        self.agents_by_device = {agent.config.device: agent for agent in self.agents.values()}
        self.queue_members: dict[str, list[str]] = {name: [] for name in self.queues}
        for agent in self.agents.values():
            for queue_name in agent.config.queues:
                self.queue_members[queue_name].append(agent.id)
        self.calls: dict[str, Call] = {}
        self.calls_by_channel: dict[str, str] = {}
        self.offers: dict[str, Offer] = {}
        self.offers_by_leg: dict[str, str] = {}
        self.sticky: dict[str, tuple[str, float]] = {}
        self._allocate_ticket = allocate_ticket
        self._waiting: dict[str, list[_QueueKey]] = {name: [] for name in self.queues}
        self._available: set[str] = set()
        self._deadlines: list[tuple[float, int, _Deadline]] = []
        self._deadline_seq = itertools.count()
        self._call_seq = itertools.count()
        self._round_robin: dict[str, int] = {}
        self._dirty = False
        self._sticky_pruned_at = 0.0
        self._recently_ended: OrderedDict[str, None] = OrderedDict()

    # -- queries ------------------------------------------------------------------------------

    def waiting_calls(self, queue: str | None = None) -> list[Call]:
        """Inbound callers waiting for an agent (not ringing), best first, optionally of a queue."""
        names = [queue] if queue is not None else list(self._waiting)
        keyed = [key for name in names for key in self._waiting.get(name, [])]
        calls = (self.calls[key[3]] for key in sorted(keyed))
        return [call for call in calls if not call.is_callback]

    def live_calls(self) -> list[Call]:
        """Inbound calls not yet ended."""
        return [
            call
            for call in self.calls.values()
            if call.state is not CallState.ENDED and not call.is_callback
        ]

    def pending_callbacks(self) -> list[Call]:
        """Callback attempts in progress or waiting for an agent."""
        return [
            call
            for call in self.calls.values()
            if call.is_callback and call.state is not CallState.ENDED
        ]

    def available_agents(self) -> set[str]:
        """Ids of the agents who could take a call right now."""
        return set(self._available)

    def caller_on_phone(self, agent_id: str) -> str | None:
        """The number of the caller ringing on, or talking to, this agent's phone right now
        (the screen-pop), else ``None``."""
        agent = self.agents.get(agent_id)
        offer = self.offers.get(agent.offer_id) if agent and agent.offer_id else None
        call = self.calls.get(offer.call_id) if offer is not None else None
        if call is None or call.state is CallState.ENDED:
            return None
        return call.number

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, or None."""
        while self._deadlines and not self._deadline_valid(self._deadlines[0][2]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def is_eligible(self, agent: Agent, call: Call) -> bool:
        """Could this agent take this call right now?"""
        return (
            agent.id in self._available
            and call.queue in agent.config.queues
            and call.skills <= agent.skills
            and (call.assigned_agent is None or call.assigned_agent == agent.id)
        )

    # -- entry points -------------------------------------------------------------------------

    def handle(self, event: DomainEvent, now: float) -> list[Effect]:
        """Apply one PBX event and return the effects."""
        effects: list[Effect] = []
        match event:
            case CallerWaiting():
                self._on_caller_waiting(event, now, 0.0, effects)
            case LegChannelCreated():
                self._on_leg_channel(event, effects)
            case ChannelState():
                self._on_channel_state(event, now, effects)
            case OriginateResult():
                self._on_originate_result(event, now, effects)
            case OriginateRejected():
                self._on_originate_rejected(event, now, effects)
            case ChannelHungUp():
                self._on_hangup(event, now, effects)
            case ChannelBridged():
                self._on_bridged(event, now, effects)
            case DeviceStateChanged():
                self._on_device_state(event, now, effects)
            case DialEnded():
                self._on_dial_end(event, effects)
            case CallbackDue():
                self._on_callback_due(event, now, effects)
        self._dispatch(now, effects)
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Fire every timer due at ``now``."""
        effects: list[Effect] = []
        self._prune_sticky(now)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, deadline = heapq.heappop(self._deadlines)
            if self._deadline_valid(deadline):
                self._fire(deadline, now, effects)
        self._dispatch(now, effects)
        return effects

    def login(self, agent_id: str, now: float) -> list[Effect]:
        """Log an agent in; they become available unless paused."""
        agent = self._agent(agent_id)
        effects: list[Effect] = []
        if not agent.logged_in:
            agent.logged_in = True
            agent.logged_in_since = now
            agent.idle_since = now
            agent.consecutive_misses = 0
            effects.append(AgentPresenceChanged("login", None, now, agent.presence))
            self._refresh(agent, now, effects)
            self._dispatch(now, effects)
        return effects

    def logout(self, agent_id: str, now: float) -> list[Effect]:
        """Log an agent out: no new calls; a call in progress carries on."""
        agent = self._agent(agent_id)
        effects: list[Effect] = []
        if agent.logged_in:
            agent.logged_in = False
            agent.pause_reason = None
            effects.append(AgentPresenceChanged("logout", None, now, agent.presence))
            self._refresh(agent, now, effects)
        return effects

    def pause(self, agent_id: str, reason: str, now: float) -> list[Effect]:
        """Pause an agent with a reason: no new calls; a call in progress carries on."""
        agent = self._agent(agent_id)
        effects: list[Effect] = []
        if agent.pause_reason != (reason or "paused"):
            agent.pause_reason = reason or "paused"
            agent.paused_since = now
            effects.append(AgentPresenceChanged("pause", agent.pause_reason, now, agent.presence))
        self._refresh(agent, now, effects, reason=agent.pause_reason)
        return effects

    def unpause(self, agent_id: str, now: float) -> list[Effect]:
        """End an agent's pause."""
        agent = self._agent(agent_id)
        effects: list[Effect] = []
        if agent.pause_reason is not None:
            if agent.pause_reason == NO_ANSWER_PAUSE:
                agent.consecutive_misses = 0
            ended, agent.pause_reason = agent.pause_reason, None
            effects.append(AgentPresenceChanged("unpause", ended, now, agent.presence))
            if agent.activity is Activity.IDLE:
                agent.idle_since = now
            self._refresh(agent, now, effects)
            self._dispatch(now, effects)
        return effects

    def restore(
        self,
        states: Iterable[AgentPresence],
        sticky: Mapping[str, tuple[str, float]],
        now: float,
    ) -> list[Effect]:
        """Bring back what a previous process persisted, before the first PBX event.

        Agents get their login and pause state (and reason, and since when) back, and
        count as idle from ``now``; a state for an agent the configuration no longer
        has is ignored with a warning. Sticky history (``number -> (agent, answered
        at)``) older than ``sticky_days`` or naming an unknown agent is dropped; a
        newer entry already known wins.
        """
        effects: list[Effect] = []
        for presence in states:
            agent = self.agents.get(presence.agent_id)
            if agent is None:
                effects.append(
                    RoutingWarning(
                        "restore_unknown_agent",
                        f"agent {presence.agent_id!r} is not configured; its saved state "
                        "is ignored",
                    )
                )
                continue
            agent.logged_in = presence.logged_in
            agent.logged_in_since = presence.logged_in_since or now
            agent.pause_reason = presence.pause_reason
            agent.paused_since = presence.paused_since or now
            agent.idle_since = now
            self._refresh(agent, now, effects)
        horizon = now - self.routing.sticky_days * 86400
        for number, (agent_id, served_at) in sticky.items():
            known = self.sticky.get(number)
            if (
                agent_id in self.agents
                and served_at >= horizon
                and (known is None or known[1] < served_at)
            ):
                self.sticky[number] = (agent_id, served_at)
        self._dispatch(now, effects)
        return effects

    # -- calls --------------------------------------------------------------------------------

    def _on_caller_waiting(
        self, event: CallerWaiting, now: float, elapsed: float, effects: list[Effect]
    ) -> None:
        """Queue a new caller; ``elapsed`` is how long they already waited (after a resync)."""
        if event.uniqueid in self.calls:
            return
        queue = event.queue
        if queue not in self.queues:
            effects.append(
                RoutingWarning(
                    "unknown_queue",
                    f"HotlineQueue {queue!r} is not configured; routed to "
                    f"{self.routing.default_queue!r}",
                    event.uniqueid,
                )
            )
            queue = self.routing.default_queue
        call = Call(
            call_id=event.uniqueid,
            channel=event.channel,
            linkedid=event.linkedid,
            number=event.number,
            name=event.name,
            queue=queue,
            priority=event.priority,
            skills=frozenset(self.queues[queue].skills) | event.skills,
            lang=event.lang,
            preferred_agent=event.preferred_agent,
            arrived_at=event.at,
            arrival_source=event.source,
            queue_entered_at=now - elapsed,
            ticket=self._allocate_ticket(event.number, now),
            seq=next(self._call_seq),
            original_queue=queue,
        )
        self.calls[call.call_id] = call
        self.calls_by_channel[call.channel] = call.call_id
        effects.append(
            CallArrived(
                call.call_id, call.ticket, call.number, queue, call.priority, event.at, event.source
            )
        )
        self._enqueue(call)
        self._schedule_max_wait(call, call.queue_entered_at)

    def _on_callback_due(self, event: CallbackDue, now: float, effects: list[Effect]) -> None:
        """Queue a callback attempt; it waits for an agent behind every inbound caller."""
        if any(c.callback_id == event.callback_id for c in self.pending_callbacks()):
            return
        call_id = f"callback-{event.callback_id}-{event.attempt}"
        queue = event.queue if event.queue in self.queues else self.routing.default_queue
        call = Call(
            call_id=call_id,
            channel="",
            linkedid="",
            number=event.number,
            name=f"Callback {event.ticket}",
            queue=queue,
            priority=_CALLBACK_PRIORITY,
            skills=frozenset(self.queues[queue].skills),
            lang=None,
            arrived_at=event.at,
            arrival_source=event.source,
            queue_entered_at=now,
            ticket=event.ticket,
            seq=next(self._call_seq),
            original_queue=queue,
            callback_id=event.callback_id,
            callback_attempt=event.attempt,
            assigned_agent=event.assigned_agent,
        )
        self.calls[call_id] = call
        self._enqueue(call)

    def _on_dial_end(self, event: DialEnded, effects: list[Effect]) -> None:
        """A callback's agent leg dialled the customer: that is the attempt's result."""
        offer = self._leg_offer(event.uniqueid)
        if offer is None or event.uniqueid != offer.offer_id:
            return
        call = self.calls.get(offer.call_id)
        if call is not None and call.is_callback:
            self._finish_callback(call, offer, event.status.value, event.at, event.source, effects)

    def _finish_callback(
        self,
        call: Call,
        offer: Offer,
        result: str,
        at: float,
        source: str,
        effects: list[Effect],
    ) -> None:
        """Record the attempt's result once; the callback is over for this attempt."""
        if call.callback_result is not None or call.callback_id is None:
            return
        call.callback_result = result
        call.state = CallState.ENDED
        call.ended_at = at
        call.end_source = source
        effects.append(
            CallbackAttemptEnded(
                callback_id=call.callback_id,
                ticket=call.ticket,
                attempt=call.callback_attempt,
                agent_id=offer.agent_id,
                leg_id=offer.offer_id,
                result=result,
                at=at,
                source=source,
            )
        )

    def _queue_key(self, call: Call) -> _QueueKey:
        weight = self.queues[call.queue].priority_weight
        return (-(call.priority + weight), call.arrived_at, call.seq, call.call_id)

    def _enqueue(self, call: Call) -> None:
        call.state = CallState.WAITING
        bisect.insort(self._waiting[call.queue], self._queue_key(call))
        self._dirty = True

    def _dequeue(self, call: Call) -> None:
        waiting = self._waiting[call.queue]
        key = self._queue_key(call)
        index = bisect.bisect_left(waiting, key)
        if index < len(waiting) and waiting[index] == key:
            del waiting[index]

    def _schedule_max_wait(self, call: Call, entered_at: float) -> None:
        max_wait = self.queues[call.queue].max_wait
        if max_wait is not None:
            self._schedule(entered_at + max_wait, "max_wait", f"{call.call_id}|{call.queue}")

    def _on_hangup(self, event: ChannelHungUp, now: float, effects: list[Effect]) -> None:
        call = self.calls.get(event.uniqueid)
        if call is not None:
            self._on_caller_gone(call, event.at, event.source, now, effects)
            return
        offer_id = self.offers_by_leg.get(event.uniqueid)
        if offer_id is not None:
            self._on_leg_gone(self.offers[offer_id], event, now, effects)

    def _on_caller_gone(
        self, call: Call, at: float, source: str, now: float, effects: list[Effect]
    ) -> None:
        if call.state is CallState.WAITING:
            self._dequeue(call)
            self._end_call(call, Outcome.ABANDONED_WAITING, at, source, effects)
        elif call.state is CallState.RINGING:
            offer = self.offers[call.offers[-1]]
            # Ringing means the PBX had made the agent leg; an Originate still in
            # flight when the caller left rang nobody yet.
            reached_pbx = offer.leg_channel is not None or offer.ring_started_at is not None
            self._cancel_offer(offer, at, source, effects)
            outcome = Outcome.ABANDONED_RINGING if reached_pbx else Outcome.ABANDONED_WAITING
            self._end_call(call, outcome, at, source, effects)
        elif call.state is CallState.CONNECTED:
            if call.talk_ended_at is None:
                call.talk_ended_at = at
            self._end_call(call, Outcome.ANSWERED, at, source, effects)
            agent = self.agents[call.answered_by] if call.answered_by is not None else None
            if agent is not None and agent.offer_id in call.offers:
                self._start_wrap_up(agent, call, now, effects)
        self._forget_if_done(call)

    def _end_call(
        self, call: Call, outcome: Outcome, at: float, source: str, effects: list[Effect]
    ) -> None:
        call.state = CallState.ENDED
        call.outcome = outcome
        call.ended_at = at
        call.end_source = source
        self._remember_ended(call.call_id)
        effects.append(DeleteJournalEntry(call.call_id))
        effects.append(
            CallEnded(
                call_id=call.call_id,
                channel=call.channel,
                linkedid=call.linkedid,
                ticket=call.ticket,
                number=call.number,
                queue=call.queue,
                original_queue=call.original_queue,
                priority=call.priority,
                arrived_at=call.arrived_at,
                arrival_source=call.arrival_source,
                answered_at=call.answered_at,
                answered_by=call.answered_by,
                talk_ended_at=call.talk_ended_at,
                ended_at=at,
                end_source=source,
                outcome=outcome,
                offers=len(call.offers),
            )
        )

    def _remember_ended(self, call_id: str) -> None:
        self._recently_ended[call_id] = None
        if len(self._recently_ended) > _RECENTLY_ENDED:
            self._recently_ended.popitem(last=False)

    def _forget_if_done(self, call: Call) -> None:
        """Drop an ended call once none of its offers can still produce events."""
        if call.state is not CallState.ENDED:
            return
        if any(self.offers[offer_id].open for offer_id in call.offers if offer_id in self.offers):
            return
        if call.answered_by is not None:
            agent = self.agents[call.answered_by]
            if agent.activity is Activity.ON_CALL and agent.offer_id in call.offers:
                return
        for offer_id in call.offers:
            offer = self.offers.pop(offer_id, None)
            if offer is not None:
                for uniqueid in offer.leg_uniqueids:
                    self.offers_by_leg.pop(uniqueid, None)
        self.calls.pop(call.call_id, None)
        if self.calls_by_channel.get(call.channel) == call.call_id:
            del self.calls_by_channel[call.channel]

    # -- offers -------------------------------------------------------------------------------

    def _make_offer(self, call: Call, agent: Agent, now: float, effects: list[Effect]) -> None:
        queue = self.queues[call.queue]
        offer_id = offer_id_for(call.ticket, call.call_id, len(call.offers) + 1, self.boot_id)
        offer = Offer(
            offer_id=offer_id,
            call_id=call.call_id,
            agent_id=agent.id,
            device=agent.config.device,
            queue=call.queue,
            requested_at=now,
            ring_timeout=queue.ring_timeout,
        )
        offer.leg_uniqueids.add(offer_id)
        self.offers[offer_id] = offer
        self.offers_by_leg[offer_id] = offer_id
        call.offers.append(offer_id)
        self._dequeue(call)
        call.state = CallState.RINGING
        agent.activity = Activity.RINGING
        agent.offer_id = offer_id
        self._refresh(agent, now, effects)
        self._schedule(now + queue.ring_timeout + self.routing.originate_grace, "guard", offer_id)
        if call.is_callback:
            effects.append(
                OriginateAgentLeg(
                    offer_id=offer_id,
                    device=agent.config.device,
                    context=self.routing.outbound_context,
                    caller_channel="",
                    ticket=call.ticket,
                    caller_number=call.number,
                    caller_name=call.name,
                    timeout=queue.ring_timeout,
                    exten=call.number,
                )
            )
            return
        effects.append(
            OriginateAgentLeg(
                offer_id=offer_id,
                device=agent.config.device,
                context=self.routing.bridge_context,
                caller_channel=call.channel,
                ticket=call.ticket,
                caller_number=call.number,
                caller_name=call.name,
                timeout=queue.ring_timeout,
            )
        )
        effects.append(OfferStarted(offer_id, call.call_id, agent.id, call.queue, call.ticket, now))

    def _leg_offer(self, uniqueid: str) -> Offer | None:
        offer_id = self.offers_by_leg.get(uniqueid)
        if offer_id is None and uniqueid.startswith(LEG_ID_PREFIX) and ";" in uniqueid:
            offer_id = self.offers_by_leg.get(uniqueid.split(";", 1)[0])
            if offer_id is not None:
                self.offers_by_leg[uniqueid] = offer_id
                self.offers[offer_id].leg_uniqueids.add(uniqueid)
        return self.offers.get(offer_id) if offer_id is not None else None

    def _on_leg_channel(self, event: LegChannelCreated, effects: list[Effect]) -> None:
        offer = self._leg_offer(event.uniqueid)
        if offer is None or event.uniqueid != offer.offer_id:
            return
        offer.leg_channel = event.channel
        if offer.cancelling and not offer.leg_hung_up:
            effects.append(HangupChannel(event.channel))

    def _on_channel_state(self, event: ChannelState, now: float, effects: list[Effect]) -> None:
        offer = self._leg_offer(event.uniqueid)
        if offer is None or event.uniqueid != offer.offer_id:
            return
        if offer.leg_channel is None:
            offer.leg_channel = event.channel
        if (
            event.state is LineState.RINGING
            and offer.ring_started_at is None
            and offer.result is None
        ):
            offer.ring_started_at = event.at
            offer.ring_start_source = event.source
        elif event.state is LineState.UP:
            self._on_answer(offer, event.at, event.source, now, effects)

    def _on_originate_result(
        self, event: OriginateResult, now: float, effects: list[Effect]
    ) -> None:
        offer = self.offers.get(event.action_id)
        if offer is None or offer.response_received:
            return
        offer.response_received = True
        if event.success:
            self._on_answer(offer, event.at, event.source, now, effects)
        else:
            result = _REASON_RESULTS.get(event.reason, OfferResult.UNAVAILABLE)
            self._on_offer_failed(offer, result, event.at, event.source, now, effects)
        self._close_offer(offer, now, effects)

    def _on_originate_rejected(
        self, event: OriginateRejected, now: float, effects: list[Effect]
    ) -> None:
        offer = self.offers.get(event.action_id)
        if offer is None or offer.response_received or event.connection_lost:
            # Whether a lost Originate reached the PBX is unknown: the offer stays open
            # until the resync finds its leg (or not), or its guard timer writes it off.
            return
        offer.response_received = True
        effects.append(RoutingWarning("originate_rejected", event.message, offer.call_id))
        self._on_offer_failed(offer, OfferResult.UNAVAILABLE, event.at, event.source, now, effects)
        self._close_offer(offer, now, effects)

    def _on_answer(
        self, offer: Offer, at: float, source: str, now: float, effects: list[Effect]
    ) -> None:
        if offer.result is not None:
            if offer.result is not OfferResult.ANSWERED and not offer.leg_hung_up:
                effects.append(HangupChannel(offer.leg_channel or offer.offer_id))
            return
        call = self.calls.get(offer.call_id)
        agent = self.agents[offer.agent_id]
        if call is None or call.state is not CallState.RINGING:
            self._end_offer(offer, OfferResult.CANCELLED, at, source, effects)
            effects.append(HangupChannel(offer.leg_channel or offer.offer_id))
            return
        self._end_offer(offer, OfferResult.ANSWERED, at, source, effects)
        call.state = CallState.CONNECTED
        call.answered_by = agent.id
        call.answered_at = at
        call.outcome = Outcome.ANSWERED
        agent.activity = Activity.ON_CALL
        agent.consecutive_misses = 0
        agent.calls_answered += 1
        self._refresh(agent, now, effects)
        if call.is_callback:
            return
        if call.number.isdigit():
            self.sticky[call.number] = (agent.id, at)
            self._prune_sticky(now)
        effects.append(
            CallAnswered(
                call.call_id, agent.id, call.queue, call.ticket, call.arrived_at, at, source
            )
        )

    def _end_offer(
        self, offer: Offer, result: OfferResult, at: float, source: str, effects: list[Effect]
    ) -> None:
        if offer.result is not None:
            return
        offer.result = result
        offer.ended_at = at
        offer.end_source = source
        call = self.calls.get(offer.call_id)
        if call is not None and call.is_callback:
            return  # a callback's agent rings are not inbound offers
        ring_started = offer.ring_started_at
        effects.append(
            OfferEnded(
                offer_id=offer.offer_id,
                call_id=offer.call_id,
                agent_id=offer.agent_id,
                queue=offer.queue,
                ticket=call.ticket if call is not None else "",
                requested_at=offer.requested_at,
                ring_started_at=ring_started if ring_started is not None else offer.requested_at,
                ring_start_source=offer.ring_start_source or "written",
                ended_at=at,
                end_source=source,
                result=result,
            )
        )

    def _on_offer_failed(
        self,
        offer: Offer,
        result: OfferResult,
        at: float,
        source: str,
        now: float,
        effects: list[Effect],
    ) -> None:
        """The agent did not take the call: count it against them and re-route the caller."""
        if offer.result is not None:
            return
        self._end_offer(offer, result, at, source, effects)
        agent = self.agents[offer.agent_id]
        call = self.calls.get(offer.call_id)
        if call is not None:
            call.missed_by[agent.id] = call.missed_by.get(agent.id, 0) + 1
        if result is OfferResult.NO_ANSWER:
            agent.consecutive_misses += 1
            if (
                agent.consecutive_misses >= self.routing.max_consecutive_misses
                and agent.pause_reason is None
            ):
                agent.pause_reason = NO_ANSWER_PAUSE
                agent.paused_since = now
                effects.append(AgentPresenceChanged("pause", NO_ANSWER_PAUSE, now, agent.presence))
        else:
            agent.unavailable_until = now + self.routing.unavailable_cooldown
            agent.retry_not_before = now + self.routing.busy_retry_after
            self._schedule(agent.unavailable_until, "cooldown", agent.id)
        if call is not None and call.state is CallState.RINGING:
            self._requeue(call, f"ring {result.value}", now, effects)

    def _write_off(
        self, offer: Offer, at: float, source: str, now: float, effects: list[Effect]
    ) -> None:
        """The offer's fate is unknown (connection lost): cancel it without blaming the agent.

        The agent's miss count is untouched, but for this caller they come last.
        """
        if offer.result is None:
            self._end_offer(offer, OfferResult.CANCELLED, at, source, effects)
        if not offer.leg_hung_up and offer.leg_channel is not None:
            effects.append(HangupChannel(offer.leg_channel))
        call = self.calls.get(offer.call_id)
        if call is not None:
            call.missed_by[offer.agent_id] = call.missed_by.get(offer.agent_id, 0) + 1
        if (
            call is not None
            and call.state is CallState.RINGING
            and call.offers[-1] == offer.offer_id
        ):
            self._requeue(call, "ring lost", now, effects)

    def _requeue(self, call: Call, reason: str, now: float, effects: list[Effect]) -> None:
        if call.overflow_due:
            call.overflow_due = False
            self._overflow(call, now, effects)
            return
        self._enqueue(call)
        if not call.is_callback:
            effects.append(CallRequeued(call.call_id, call.queue, reason, now))

    def _cancel_offer(self, offer: Offer, at: float, source: str, effects: list[Effect]) -> None:
        """The caller left while the agent rang: end the ring and hang up the leg."""
        self._end_offer(offer, OfferResult.CANCELLED, at, source, effects)
        if not offer.cancelling and not offer.leg_hung_up:
            offer.cancelling = True
            effects.append(HangupChannel(offer.leg_channel or offer.offer_id))

    def _close_offer(self, offer: Offer, now: float, effects: list[Effect]) -> None:
        """The OriginateResponse arrived (or was written off): release a reserved agent."""
        agent = self.agents[offer.agent_id]
        if agent.offer_id == offer.offer_id and agent.activity is Activity.RINGING:
            agent.activity = Activity.IDLE
            agent.offer_id = None
            self._refresh(agent, now, effects)
        call = self.calls.get(offer.call_id)
        if call is not None:
            self._forget_if_done(call)

    def _on_leg_gone(
        self, offer: Offer, event: ChannelHungUp, now: float, effects: list[Effect]
    ) -> None:
        if event.uniqueid != offer.offer_id:
            return
        offer.leg_hung_up = True
        agent = self.agents[offer.agent_id]
        call = self.calls.get(offer.call_id)
        if offer.result is OfferResult.ANSWERED and agent.offer_id == offer.offer_id:
            if call is not None and call.talk_ended_at is None:
                call.talk_ended_at = event.at
            if call is not None and call.is_callback:
                self._finish_callback(call, offer, "failed", event.at, event.source, effects)
            if agent.activity is Activity.ON_CALL:
                self._start_wrap_up(agent, call, now, effects)
        if call is not None:
            self._forget_if_done(call)

    def _on_bridged(self, event: ChannelBridged, now: float, effects: list[Effect]) -> None:
        offer = self._leg_offer(event.uniqueid)
        if offer is not None and event.uniqueid == offer.offer_id and offer.result is None:
            self._on_answer(offer, event.at, event.source, now, effects)

    # -- agents -------------------------------------------------------------------------------

    def _prune_sticky(self, now: float) -> None:
        """Hourly, forget sticky history older than ``sticky_days`` (memory stays bounded)."""
        if now - self._sticky_pruned_at >= 3600:
            self._sticky_pruned_at = now
            horizon = now - self.routing.sticky_days * 86400
            self.sticky = {n: entry for n, entry in self.sticky.items() if entry[1] >= horizon}

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return agent

    def _start_wrap_up(
        self, agent: Agent, call: Call | None, now: float, effects: list[Effect]
    ) -> None:
        if agent.activity is not Activity.ON_CALL:
            return
        wrap_up = self.queues[call.queue].wrap_up if call is not None else 0.0
        agent.offer_id = None
        if wrap_up > 0:
            agent.activity = Activity.WRAP_UP
            agent.wrap_up_until = now + wrap_up
            agent.wrap_up_started = now
            agent.wrap_up_call = (call.call_id, call.queue) if call is not None else None
            self._schedule(agent.wrap_up_until, "wrap_up", agent.id)
        else:
            agent.activity = Activity.IDLE
            agent.idle_since = now
            if call is not None and not call.is_callback:
                effects.append(WrapUpEnded(agent.id, call.call_id, call.queue, now, now))
        self._refresh(agent, now, effects)
        if call is not None:
            self._forget_if_done(call)

    def _on_device_state(
        self, event: DeviceStateChanged, now: float, effects: list[Effect]
    ) -> None:
        agent = self.agents_by_device.get(event.device)
        if agent is None:
            return
        agent.device_state = event.state
        if event.state == "NOT_INUSE" and agent.unavailable_until is not None:
            if now >= agent.retry_not_before:
                agent.unavailable_until = None
            else:
                agent.unavailable_until = agent.retry_not_before
                self._schedule(agent.retry_not_before, "cooldown", agent.id)
        self._refresh(agent, now, effects)

    def _refresh(
        self, agent: Agent, now: float, effects: list[Effect], *, reason: str | None = None
    ) -> None:
        """Recompute the agent's display state and availability; record a change."""
        state = agent.derive_state()
        if state is AgentState.AVAILABLE:
            if agent.id not in self._available:
                self._available.add(agent.id)
                self._dirty = True
        else:
            self._available.discard(agent.id)
        if state is not agent.state:
            previous = agent.state
            agent.state = state
            agent.state_since = now
            why = reason or (agent.pause_reason if state is AgentState.PAUSED else None)
            effects.append(AgentStateChanged(agent.id, state, previous, why, now))

    # -- timers -------------------------------------------------------------------------------

    def _schedule(self, at: float, kind: str, key: str) -> None:
        heapq.heappush(self._deadlines, (at, next(self._deadline_seq), _Deadline(at, kind, key)))

    def _deadline_valid(self, deadline: _Deadline) -> bool:
        if deadline.kind == "wrap_up":
            agent = self.agents[deadline.key]
            return agent.activity is Activity.WRAP_UP and agent.wrap_up_until == deadline.at
        if deadline.kind == "cooldown":
            return self.agents[deadline.key].unavailable_until == deadline.at
        if deadline.kind == "max_wait":
            call_id, _, queue = deadline.key.partition("|")
            call = self.calls.get(call_id)
            return (
                call is not None
                and call.queue == queue
                and call.state in (CallState.WAITING, CallState.RINGING)
            )
        offer = self.offers.get(deadline.key)
        return offer is not None and offer.open

    def _fire(self, deadline: _Deadline, now: float, effects: list[Effect]) -> None:
        if deadline.kind == "wrap_up":
            agent = self.agents[deadline.key]
            agent.activity = Activity.IDLE
            agent.wrap_up_until = None
            agent.idle_since = now
            if agent.wrap_up_call is not None and not agent.wrap_up_call[0].startswith("callback-"):
                call_id, queue = agent.wrap_up_call
                effects.append(WrapUpEnded(agent.id, call_id, queue, agent.wrap_up_started, now))
            agent.wrap_up_call = None
            self._refresh(agent, now, effects)
        elif deadline.kind == "cooldown":
            agent = self.agents[deadline.key]
            agent.unavailable_until = None
            self._refresh(agent, now, effects)
        elif deadline.kind == "max_wait":
            call = self.calls[deadline.key.partition("|")[0]]
            if call.state is CallState.RINGING:
                call.overflow_due = True
            else:
                self._overflow(call, now, effects)
        else:
            offer = self.offers[deadline.key]
            if (
                offer.leg_channel is not None
                and not offer.leg_hung_up
                and offer.guard_extensions < _GUARD_EXTENSIONS
            ):
                # The PBX made the leg and it is still up: its OriginateResponse is late,
                # not lost. Writing it off now could let it answer and bridge a caller
                # who has meanwhile been offered to someone else.
                offer.guard_extensions += 1
                self._schedule(now + self.routing.originate_grace, "guard", offer.offer_id)
                return
            offer.response_received = True
            if offer.result is None:
                effects.append(
                    RoutingWarning(
                        "originate_timeout",
                        f"no OriginateResponse for {offer.offer_id} within the ring timeout",
                        offer.call_id,
                    )
                )
                self._write_off(offer, now, "recv", now, effects)
            self._close_offer(offer, now, effects)

    def _overflow(self, call: Call, now: float, effects: list[Effect]) -> None:
        queue = self.queues[call.queue]
        if call.state is CallState.WAITING:
            self._dequeue(call)
        if queue.overflow_queue is not None and call.overflows < self.routing.max_overflows:
            call.overflows += 1
            call.queue = queue.overflow_queue
            call.skills = frozenset(self.queues[call.queue].skills) | (
                call.skills - frozenset(queue.skills)
            )
            call.queue_entered_at = now
            self._enqueue(call)
            self._schedule_max_wait(call, now)
            effects.append(CallRequeued(call.call_id, call.queue, "overflow", now))
        elif queue.overflow_target is not None:
            context, exten, priority = queue.overflow_target
            effects.append(RedirectChannel(call.channel, context, exten, priority))
            self._end_call(call, Outcome.OVERFLOWED, now, "recv", effects)
            self._forget_if_done(call)
        else:
            self._enqueue(call)

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, now: float, effects: list[Effect]) -> None:
        """Ring agents for waiting callers until no waiting caller has an eligible agent.

        Only runs when a caller was queued or an agent became available since the
        last pass; any other event cannot create a new match.
        """
        if not self._dirty:
            return
        self._dirty = False
        while self._available:
            best: tuple[_QueueKey, Call, list[Agent]] | None = None
            for queue_name, waiting in self._waiting.items():
                if not waiting:
                    continue
                members = [
                    self.agents[agent_id]
                    for agent_id in self.queue_members[queue_name]
                    if agent_id in self._available
                ]
                if not members:
                    continue
                for key in waiting:
                    if best is not None and key >= best[0]:
                        break
                    call = self.calls[key[3]]
                    eligible = [
                        agent
                        for agent in members
                        if call.skills <= agent.skills
                        and (call.assigned_agent is None or call.assigned_agent == agent.id)
                    ]
                    if eligible:
                        best = (key, call, eligible)
                        break
            if best is None:
                return
            _, call, eligible = best
            self._make_offer(call, self._pick_agent(call, eligible, now), now, effects)

    def _pick_agent(self, call: Call, eligible: list[Agent], now: float) -> Agent:
        queue = self.queues[call.queue]
        fewest_misses = min(call.missed_by.get(agent.id, 0) for agent in eligible)
        candidates = [a for a in eligible if call.missed_by.get(a.id, 0) == fewest_misses]
        if queue.sticky and call.number in self.sticky:
            agent_id, served_at = self.sticky[call.number]
            if now - served_at <= self.routing.sticky_days * 86400:
                for agent in candidates:
                    if agent.id == agent_id:
                        return agent
        # The IVR's choices: the agent of the caller's ticket when asked for (HotlineAgent),
        # else agents who speak the caller's language (HotlineLang; a skill named like
        # the language, e.g. "en") are offered first.
        for agent in candidates:
            if agent.id == call.preferred_agent:
                return agent
        speakers = [a for a in candidates if call.lang and call.lang in a.skills]
        candidates = speakers or candidates
        strategy = queue.strategy
        if strategy == "round_robin":
            members = self.queue_members[queue.name]
            start = self._round_robin.get(queue.name, -1)
            ids = {agent.id for agent in candidates}
            for step in range(1, len(members) + 1):
                position = (start + step) % len(members)
                if members[position] in ids:
                    self._round_robin[queue.name] = position
                    return self.agents[members[position]]
        if strategy == "fewest_calls":
            return min(candidates, key=lambda a: (a.calls_answered, a.idle_since, a.id))
        if strategy == "skill_level":
            return min(candidates, key=lambda a: (-_skill_score(a, call), a.idle_since, a.id))
        return min(candidates, key=lambda a: (a.idle_since, a.id))

    # -- resync -------------------------------------------------------------------------------

    def resync(self, snapshot: PbxSnapshot, now: float) -> list[Effect]:
        """Reconcile the model with what the PBX has live after a (re)connect.

        Legs and calls that vanished during the outage are closed (at the
        journal's hang-up time where it has one; a caller gone without an answer
        we saw counts as abandoned). An open offer's leg that is bridged was
        answered. One of our legs we do not track that still rings for a caller
        (a previous process' offer) is adopted; a bridged one is attached to its
        caller; other legs in the bridge context are hung up if they still ring.
        Callers whose HotlineCallWaiting we missed are queued with the journal's
        arrival time, else the one their channel's age gives. A device with no
        channel in the snapshot is NOT_INUSE.
        """
        effects: list[Effect] = []
        live = {channel.uniqueid: channel for channel in snapshot.channels}
        journal = {entry.uniqueid: entry for entry in snapshot.journal}
        for agent in self.agents.values():
            # The snapshot counts every live channel's device as in use, so a device
            # it does not mention has no channel.
            agent.device_state = snapshot.device_states.get(agent.config.device, "NOT_INUSE")
        for call in list(self.calls.values()):
            if (
                call.state is not CallState.ENDED
                and not call.is_callback
                and call.call_id not in live
            ):
                entry = journal.get(call.call_id)
                if entry is not None and entry.ended_at is not None:
                    self._on_caller_gone(call, entry.ended_at, "journal", now, effects)
                else:
                    self._on_caller_gone(call, now, "resync", now, effects)
        for offer in list(self.offers.values()):
            if offer.open:
                self._resync_offer(offer, live, now, effects)
        for agent in self.agents.values():
            if agent.activity is Activity.ON_CALL and (
                agent.offer_id is None or agent.offer_id not in live
            ):
                talking = self._call_of_offer(agent.offer_id)
                if talking is not None and talking.talk_ended_at is None:
                    talking.talk_ended_at = now
                if talking is not None and talking.is_callback and agent.offer_id is not None:
                    leg = self.offers[agent.offer_id]
                    self._finish_callback(talking, leg, "failed", now, "resync", effects)
                self._start_wrap_up(agent, talking, now, effects)
        self._adopt_callers(snapshot, now, effects)
        self._adopt_legs(snapshot, now, effects)
        for entry in snapshot.journal:
            if entry.ended_at is not None:
                self._account_journal(entry, now, effects)
        for agent in self.agents.values():
            self._refresh(agent, now, effects)
        self._dirty = True
        self._dispatch(now, effects)
        return effects

    def _account_journal(self, entry: JournalEntry, now: float, effects: list[Effect]) -> None:
        """A caller who came and went while we were disconnected: record them once.

        A caller the journal shows bridged to an agent leg (a previous process
        answered them) is recorded answered by that leg's agent; anyone else
        abandoned while waiting. The times are the dialplan's. An entry for a call
        already recorded is only cleaned up.
        """
        if entry.uniqueid in self.calls or entry.uniqueid in self._recently_ended:
            effects.append(DeleteJournalEntry(entry.uniqueid))
            return
        assert entry.ended_at is not None
        queue = entry.queue if entry.queue in self.queues else self.routing.default_queue
        call = Call(
            call_id=entry.uniqueid,
            channel="",
            linkedid=entry.uniqueid,
            number=entry.number,
            name="",
            queue=queue,
            priority=entry.priority,
            skills=frozenset(),
            lang=None,
            arrived_at=entry.arrived_at,
            arrival_source="journal",
            queue_entered_at=entry.arrived_at,
            ticket=entry.ticket or self._allocate_ticket(entry.number, now),
            seq=next(self._call_seq),
            original_queue=queue,
        )
        effects.append(
            CallArrived(
                call.call_id,
                call.ticket,
                call.number,
                queue,
                call.priority,
                entry.arrived_at,
                "journal",
            )
        )
        if entry.answered_at is None:
            self._end_call(call, Outcome.ABANDONED_WAITING, entry.ended_at, "journal", effects)
            return
        agent = self.agents_by_device.get(entry.agent_device)
        call.answered_at = entry.answered_at
        call.answered_by = agent.id if agent is not None else None
        call.talk_ended_at = entry.ended_at
        if entry.agent_leg:
            call.offers.append(entry.agent_leg)
        if agent is not None:
            effects.append(
                CallAnswered(
                    call.call_id,
                    agent.id,
                    queue,
                    call.ticket,
                    call.arrived_at,
                    entry.answered_at,
                    "journal",
                )
            )
        self._end_call(call, Outcome.ANSWERED, entry.ended_at, "journal", effects)

    def _call_of_offer(self, offer_id: str | None) -> Call | None:
        offer = self.offers.get(offer_id) if offer_id is not None else None
        return self.calls.get(offer.call_id) if offer is not None else None

    def _resync_offer(
        self, offer: Offer, live: dict[str, ChannelInfo], now: float, effects: list[Effect]
    ) -> None:
        leg = live.get(offer.offer_id)
        if leg is None:
            offer.response_received = True
            if offer.result is None:
                self._write_off(offer, now, "resync", now, effects)
            self._close_offer(offer, now, effects)
            return
        offer.leg_channel = leg.channel
        if leg.bridge_id and offer.result is None:
            self._on_answer(offer, now, "resync", now, effects)

    def _adopt_callers(self, snapshot: PbxSnapshot, now: float, effects: list[Effect]) -> None:
        """Queue the callers in the inbound context that we do not know yet.

        A caller's arrival is the journal's (milliseconds) where it has an entry,
        else their channel's age (whole seconds).
        """
        journal = {entry.uniqueid: entry for entry in snapshot.journal}
        for channel in snapshot.channels:
            queue = channel.variables.get("HOTLINE_QUEUE")
            if (
                channel.context != self.routing.inbound_context
                or not queue
                or channel.uniqueid in self.calls
            ):
                continue
            skills = (channel.variables.get("HOTLINE_SKILLS") or "").split(",")
            entry = journal.get(channel.uniqueid)
            arrived_at = entry.arrived_at if entry is not None else snapshot.at - channel.duration
            waiting = CallerWaiting(
                at=arrived_at,
                source="journal" if entry is not None else "resync",
                uniqueid=channel.uniqueid,
                channel=channel.channel,
                linkedid=channel.linkedid,
                number=channel.number,
                name=channel.name,
                queue=queue,
                priority=_int(channel.variables.get("HOTLINE_PRIORITY"), 0),
                skills=frozenset(skill for skill in skills if skill),
                lang=channel.variables.get("HOTLINE_LANG") or None,
            )
            self._on_caller_waiting(waiting, now, max(snapshot.at - arrived_at, 0.0), effects)

    def _adopt_legs(self, snapshot: PbxSnapshot, now: float, effects: list[Effect]) -> None:
        """Take over agent legs we do not track.

        One of our legs that still rings for a caller (a previous process' offer:
        in the device's own context, ``AppDial2``) becomes a live offer. A bridged
        leg is attached to its caller. Any other leg in the bridge context is a
        stray: hung up if it still rings.
        """
        for leg in snapshot.channels:
            offer = self.offers.get(leg.uniqueid)
            if offer is not None and (offer.open or offer.result is OfferResult.ANSWERED):
                continue
            if (
                leg.own_leg
                and leg.caller_channel
                and not leg.bridge_id
                and leg.state is not LineState.UP
            ):
                self._adopt_ringing_leg(snapshot, leg, now, effects)
                continue
            if leg.context != self.routing.bridge_context:
                continue
            call_id = self.calls_by_channel.get(leg.caller_channel)
            call = self.calls.get(call_id) if call_id is not None else None
            agent = self.agents_by_device.get(leg.device)
            adoptable = (
                leg.bridge_id
                and call is not None
                and call.state in (CallState.WAITING, CallState.RINGING)
                and agent is not None
                and agent.activity is Activity.IDLE
            )
            if not adoptable:
                if not leg.bridge_id:
                    effects.append(HangupChannel(leg.channel))
                effects.append(
                    RoutingWarning("stray_leg", f"agent leg {leg.channel} not tracked", call_id)
                )
                continue
            assert call is not None
            assert agent is not None
            self._attach_answered_leg(call, agent, leg, now, effects)

    def _adopt_ringing_leg(
        self, snapshot: PbxSnapshot, leg: ChannelInfo, now: float, effects: list[Effect]
    ) -> None:
        """A previous process' ring that goes on: the agent is reserved, the caller rings.

        Its answer (``Newstate`` 6, or the ``OriginateResponse`` that Asterisk
        broadcasts with the dead process' ActionID, which is the leg id) then
        bridges as usual; its failure re-routes the caller.
        """
        call_id = self.calls_by_channel.get(leg.caller_channel)
        call = self.calls.get(call_id) if call_id is not None else None
        agent = self.agents_by_device.get(leg.device)
        if (
            call is None
            or call.state is not CallState.WAITING
            or agent is None
            or agent.activity is not Activity.IDLE
        ):
            effects.append(HangupChannel(leg.channel))
            effects.append(
                RoutingWarning("stray_leg", f"agent leg {leg.channel} not tracked", call_id)
            )
            return
        self._dequeue(call)
        if leg.ticket:
            call.ticket = leg.ticket
        ring_timeout = self.queues[call.queue].ring_timeout
        ring_started_at = snapshot.at - leg.duration
        offer = Offer(
            offer_id=leg.uniqueid,
            call_id=call.call_id,
            agent_id=agent.id,
            device=agent.config.device,
            queue=call.queue,
            requested_at=ring_started_at,
            ring_timeout=ring_timeout,
            ring_started_at=ring_started_at,
            ring_start_source="resync",
            leg_channel=leg.channel,
        )
        offer.leg_uniqueids.add(leg.uniqueid)
        self.offers[offer.offer_id] = offer
        self.offers_by_leg[leg.uniqueid] = offer.offer_id
        call.offers.append(offer.offer_id)
        call.state = CallState.RINGING
        agent.activity = Activity.RINGING
        agent.offer_id = offer.offer_id
        self._refresh(agent, now, effects)
        self._schedule(now + ring_timeout + self.routing.originate_grace, "guard", offer.offer_id)

    def _attach_answered_leg(
        self, call: Call, agent: Agent, leg: ChannelInfo, now: float, effects: list[Effect]
    ) -> None:
        if call.state is CallState.RINGING:
            self._cancel_offer(self.offers[call.offers[-1]], now, "resync", effects)
        else:
            self._dequeue(call)
        if leg.ticket:
            call.ticket = leg.ticket
        offer = Offer(
            offer_id=leg.uniqueid,
            call_id=call.call_id,
            agent_id=agent.id,
            device=agent.config.device,
            queue=call.queue,
            requested_at=now - leg.duration,
            ring_timeout=self.queues[call.queue].ring_timeout,
            ring_started_at=now - leg.duration,
            ring_start_source="resync",
            leg_channel=leg.channel,
            response_received=True,
        )
        offer.leg_uniqueids.add(leg.uniqueid)
        self.offers[offer.offer_id] = offer
        self.offers_by_leg[leg.uniqueid] = offer.offer_id
        call.offers.append(offer.offer_id)
        call.state = CallState.RINGING
        agent.activity = Activity.RINGING
        agent.offer_id = offer.offer_id
        answered_at = leg.answered_at if leg.answered_at is not None else now
        self._on_answer(offer, answered_at, "resync", now, effects)


def offer_id_for(ticket: str, call_id: str, attempt: int, boot_id: str = "") -> str:
    """The ActionID and ChannelId of an offer: ``hl-<ticket>-<caller Uniqueid>-<boot>-<n>``.

    The ticket keeps recordings (``${HOTLINE_TICKET}-${UNIQUEID}.wav``) grouped;
    the caller's Uniqueid keeps the calls of one ticket apart (a household's
    calls share its open ticket, even at the same time); the boot id keeps a
    restarted process' rings apart from its predecessor's, which may still ring
    (``channelid_conflict.jsonl``); ``n`` counts the rings.
    """
    boot = f"{boot_id}-" if boot_id else ""
    return f"{LEG_ID_PREFIX}{ticket}-{call_id}-{boot}{attempt}"


def _skill_score(agent: Agent, call: Call) -> int:
    """The agent's weakest level among the call's required skills (0 if none required)."""
    levels = [agent.config.skills.get(skill, 0) for skill in call.skills]
    return min(levels) if levels else 0


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "", "(null)") else default
    except ValueError:
        return default
