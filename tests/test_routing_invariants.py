"""Hypothesis state machine: the ACD invariants hold over random event sequences.

- an agent is never rung for two callers at once;
- a paused or logged-out agent is never rung;
- no caller waits while an eligible agent is available (after every event);
- every call that arrives ends in exactly one outcome.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hotline.config import QueueConfig
from hotline.domain.effects import CallArrived, CallEnded, Effect, OriginateAgentLeg
from hotline.domain.model import Activity, CallState
from tests.routing_helpers import Pbx, agent, make_router

pytestmark = pytest.mark.unit

AGENTS = ["a1", "a2", "a3", "a4"]
QUEUES = [
    QueueConfig(name="support", ring_timeout=10, wrap_up=3),
    QueueConfig(
        name="billing",
        skills=("billing",),
        ring_timeout=8,
        wrap_up=0,
        max_wait=40,
        overflow_queue="support",
    ),
    QueueConfig(
        name="vip",
        priority_weight=5,
        strategy="skill_level",
        max_wait=30,
        overflow_target=("hotline-voicemail", "s", "1"),
    ),
]


class RouterMachine(RuleBasedStateMachine):
    """Drives a Router with random PBX events and agent commands."""

    @initialize()
    def setup(self) -> None:
        agents = [
            agent("a1", ["support", "billing"], billing=5),
            agent("a2", ["support", "vip"], english=3),
            agent("a3", ["billing", "vip"], billing=2, english=7),
            agent("a4", ["support"]),
        ]
        self.router = make_router(agents, QUEUES, max_consecutive_misses=2)
        self.pbx = Pbx(self.router)
        self.arrived: set[str] = set()
        self.outcomes: Counter[str] = Counter()
        self.rung: dict[str, OriginateAgentLeg] = {}

    def absorb(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, CallArrived):
                self.arrived.add(effect.call_id)
            elif isinstance(effect, CallEnded):
                self.outcomes[effect.call_id] += 1
            elif isinstance(effect, OriginateAgentLeg):
                agent_id = self.router.offers[effect.offer_id].agent_id
                member = self.router.agents[agent_id]
                assert member.logged_in, f"{agent_id} rung while logged out"
                assert member.pause_reason is None, f"{agent_id} rung while paused"
                self.rung[effect.offer_id] = effect

    def open_offers(self) -> list[OriginateAgentLeg]:
        return [
            leg
            for offer_id, leg in self.rung.items()
            if offer_id in self.router.offers and self.router.offers[offer_id].open
        ]

    def answered_offers(self) -> list[OriginateAgentLeg]:
        return [
            leg
            for offer_id, leg in self.rung.items()
            if offer_id in self.router.offers
            and self.router.agents[self.router.offers[offer_id].agent_id].offer_id == offer_id
            and self.router.agents[self.router.offers[offer_id].agent_id].activity
            is Activity.ON_CALL
        ]

    @rule(agent_id=st.sampled_from(AGENTS))
    def login(self, agent_id: str) -> None:
        self.absorb(self.router.login(agent_id, self.pbx.now))

    @rule(agent_id=st.sampled_from(AGENTS))
    def logout(self, agent_id: str) -> None:
        self.absorb(self.router.logout(agent_id, self.pbx.now))

    @rule(agent_id=st.sampled_from(AGENTS), reason=st.sampled_from(["lunch", "training"]))
    def pause(self, agent_id: str, reason: str) -> None:
        self.absorb(self.router.pause(agent_id, reason, self.pbx.now))

    @rule(agent_id=st.sampled_from(AGENTS))
    def unpause(self, agent_id: str) -> None:
        self.absorb(self.router.unpause(agent_id, self.pbx.now))

    @rule(
        queue=st.sampled_from(["support", "billing", "vip", "unknown"]),
        priority=st.integers(0, 3),
        skills=st.sets(st.sampled_from(["billing", "english"]), max_size=1),
    )
    def caller_arrives(self, queue: str, priority: int, skills: set[str]) -> None:
        _, effects = self.pbx.caller(queue, priority, skills=frozenset(skills))
        self.absorb(effects)

    @precondition(lambda self: bool(self.open_offers()))
    @rule(data=st.data(), what=st.sampled_from(["ring", "answer", "leg"]))
    def progress_offer(self, data: st.DataObject, what: str) -> None:
        leg = data.draw(st.sampled_from(self.open_offers()))
        action = {"ring": self.pbx.ring, "answer": self.pbx.answer, "leg": self.pbx.leg_created}
        self.absorb(action[what](leg))

    @precondition(lambda self: bool(self.open_offers()))
    @rule(data=st.data(), reason=st.sampled_from([0, 1, 3, 3, 5, 8]))
    def offer_fails(self, data: st.DataObject, reason: int) -> None:
        leg = data.draw(st.sampled_from(self.open_offers()))
        self.absorb(self.pbx.fail(leg, reason))

    @precondition(lambda self: bool(self.router.live_calls()))
    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.router.live_calls()))
        self.absorb(self.pbx.hangup(call.call_id))

    @precondition(lambda self: bool(self.answered_offers()))
    @rule(data=st.data())
    def agent_hangs_up(self, data: st.DataObject) -> None:
        leg = data.draw(st.sampled_from(self.answered_offers()))
        self.absorb(self.pbx.hangup(leg.offer_id))

    @rule(
        agent_id=st.sampled_from(AGENTS),
        state=st.sampled_from(["NOT_INUSE", "INUSE", "BUSY", "UNAVAILABLE"]),
    )
    def device_state(self, agent_id: str, state: str) -> None:
        self.absorb(self.pbx.device(f"Local/{agent_id}@agents", state))

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 20.0, 45.0]))
    def time_passes(self, seconds: float) -> None:
        self.absorb(self.pbx.advance(seconds))

    @invariant()
    def never_two_rings_for_one_agent(self) -> None:
        if not hasattr(self, "router"):
            return
        ringing = Counter(offer.agent_id for offer in self.router.offers.values() if offer.open)
        assert all(count <= 1 for count in ringing.values()), ringing

    @invariant()
    def no_caller_waits_while_an_eligible_agent_is_available(self) -> None:
        if not hasattr(self, "router"):
            return
        for call in self.router.waiting_calls():
            for agent_id in self.router.available_agents():
                assert not self.router.is_eligible(self.router.agents[agent_id], call), (
                    f"{call.call_id} waits in {call.queue} while {agent_id} is available"
                )

    @invariant()
    def at_most_one_outcome_per_call(self) -> None:
        if not hasattr(self, "router"):
            return
        assert all(count == 1 for count in self.outcomes.values()), self.outcomes
        assert set(self.outcomes) <= self.arrived

    def teardown(self) -> None:
        if not hasattr(self, "router"):
            return
        for call in self.router.live_calls():
            self.absorb(self.pbx.hangup(call.call_id))
        for leg in self.open_offers():
            self.absorb(self.pbx.fail(leg, 0))
        self.absorb(self.pbx.advance(3600))
        assert {
            c.call_id for c in self.router.calls.values() if c.state is not CallState.ENDED
        } == set()
        assert set(self.outcomes) == self.arrived
        assert all(count == 1 for count in self.outcomes.values())


RouterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_router_invariants = RouterMachine.TestCase
