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
or unavailable makes the agent unavailable until its device is reported idle
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

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import assert_never

from hotline.domain.effects import (
    Effect,
)
from hotline.domain.events import (
    CallbackDue,
    CallerWaiting,
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DeviceStateChanged,
    DialEnded,
    DomainEvent,
    LegChannelCreated,
    OriginateRejected,
    OriginateResult,
    PbxSnapshot,
)
from hotline.domain.model import (
    Agent,
    AgentPresence,
    Call,
    CallState,
    Offer,
)
from hotline.domain.routing import (
    agents,
    calls,
    dispatch,
    offers,
    restore,
    resync,
    timers,
    transfer,
    waiting,
)
from hotline.domain.settings import AgentConfig, QueueConfig, RoutingConfig

__all__ = ["Router", "TicketAllocator"]

TicketAllocator = Callable[[str, float], str]
"""``(caller number, now) -> ticket number``: the caller's open ticket, or a new one."""


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
        # where a new caller's ticket comes from (the composition root wires the store's)
        self.allocate_ticket = allocate_ticket
        self._waiting: dict[str, list[dispatch.QueueKey]] = {name: [] for name in self.queues}
        self._available: set[str] = set()
        self._deadlines: list[tuple[float, int, timers.Deadline]] = []
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

    def call_of_agent(self, agent_id: str) -> Call | None:
        """The inbound call this agent is talking to right now, else ``None``."""
        return transfer.talking_to(self, agent_id)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, or None."""
        while self._deadlines and not timers.deadline_valid(self, self._deadlines[0][2]):
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
                calls.on_caller_waiting(self, event, now, 0.0, effects)
            case LegChannelCreated():
                offers.on_leg_channel(self, event, effects)
            case ChannelState():
                offers.on_channel_state(self, event, now, effects)
            case OriginateResult():
                offers.on_originate_result(self, event, now, effects)
            case OriginateRejected():
                offers.on_originate_rejected(self, event, now, effects)
            case ChannelHungUp():
                calls.on_hangup(self, event, now, effects)
            case ChannelBridged():
                offers.on_bridged(self, event, now, effects)
            case DeviceStateChanged():
                agents.on_device_state(self, event, now, effects)
            case DialEnded():
                calls.on_dial_end(self, event, effects)
            case CallbackDue():
                calls.on_callback_due(self, event, now)
            case _:
                assert_never(event)
        dispatch.dispatch(self, now, effects)
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Fire every timer due at ``now``."""
        effects: list[Effect] = []
        agents.prune_sticky(self, now)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, deadline = heapq.heappop(self._deadlines)
            if timers.deadline_valid(self, deadline):
                timers.fire(self, deadline, now, effects)
        dispatch.dispatch(self, now, effects)
        return effects

    def login(self, agent_id: str, now: float) -> list[Effect]:
        """Log an agent in; they become available unless paused."""
        return agents.login(self, agent_id, now)

    def logout(self, agent_id: str, now: float) -> list[Effect]:
        """Log an agent out: no new calls; a call in progress carries on."""
        return agents.logout(self, agent_id, now)

    def pause(self, agent_id: str, reason: str, now: float) -> list[Effect]:
        """Pause an agent with a reason: no new calls; a call in progress carries on."""
        return agents.pause(self, agent_id, reason, now)

    def unpause(self, agent_id: str, now: float) -> list[Effect]:
        """End an agent's pause."""
        return agents.unpause(self, agent_id, now)

    def transfer(self, agent_id: str, queue: str, now: float) -> list[Effect]:
        """Send the agent's caller back into the inbound context for ``queue``: same call,
        same ticket; the agent goes to wrap-up (see :mod:`hotline.domain.routing.transfer`)."""
        return transfer.transfer(self, agent_id, queue, now)

    def set_priority(self, call_id: str, priority: int, now: float) -> list[Effect]:
        """Give a waiting caller a new priority (a supervisor's order); re-ordered by the
        routing rules (see :mod:`hotline.domain.routing.waiting`)."""
        return waiting.set_priority(self, call_id, priority, now)

    def move_caller(self, call_id: str, queue: str, now: float) -> list[Effect]:
        """Move a waiting caller to another queue, keeping their arrival time (see
        :mod:`hotline.domain.routing.waiting`)."""
        return waiting.move_caller(self, call_id, queue, now)

    def end_wrap_up(self, agent_id: str, now: float) -> list[Effect]:
        """End an agent's wrap-up now (the panel's "ready now"); nothing otherwise."""
        return agents.end_wrap_up(self, agent_id, now)

    def restore(
        self,
        states: Iterable[AgentPresence],
        sticky: Mapping[str, tuple[str, float]],
        now: float,
    ) -> list[Effect]:
        """Bring back what a previous process persisted, before the first PBX event
        (see :func:`hotline.domain.routing.restore.restore`)."""
        return restore.restore(self, states, sticky, now)

    def resync(self, snapshot: PbxSnapshot, now: float) -> list[Effect]:
        """Reconcile the model with what the PBX has live after a (re)connect
        (see :func:`hotline.domain.routing.resync.resync`)."""
        return resync.resync(self, snapshot, now)
