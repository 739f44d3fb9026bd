"""The pure ACD router: offers, outcomes, strategies, timers and resync, with an injected clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest

from hotline.config import QueueConfig
from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    DeleteJournalEntry,
    HangupChannel,
    OfferEnded,
    RedirectChannel,
    RoutingWarning,
    WrapUpEnded,
)
from hotline.domain.events import ChannelInfo, ChannelState, JournalEntry, LineState, PbxSnapshot
from hotline.domain.model import AgentState, CallState, OfferResult, Outcome
from hotline.domain.routing import NO_ANSWER_PAUSE, Router, UnknownAgent
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

T = TypeVar("T")


def state(router: Router, agent_id: str) -> AgentState:
    return router.agents[agent_id].state


def of_type(effects: Sequence[object], kind: type[T]) -> list[T]:
    return [effect for effect in effects if isinstance(effect, kind)]


def test_a_waiting_caller_rings_an_available_agent_per_the_contract() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller(number="13900139000")
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"
    assert offer.context == "hotline-bridge"
    assert offer.caller_channel.startswith("Local/13900139000@callers")
    assert offer.offer_id == f"hl-{offer.ticket}-{uid}-1"
    assert offer.ticket.startswith("T20261126-A")
    assert offer.timeout == 15.0
    assert state(router, "2001") is AgentState.RINGING
    assert router.calls[uid].state is CallState.RINGING


def test_answered_call_records_ring_wait_and_wrap_up() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.now += 0.5
    pbx.ring(offer)
    pbx.now += 7.0
    effects = pbx.answer(offer)
    [ended] = of_type(effects, OfferEnded)
    assert ended.result is OfferResult.ANSWERED
    assert ended.ring_seconds == pytest.approx(7.0)
    assert ended.ring_start_source == "pbx"
    [answered] = of_type(effects, CallAnswered)
    assert answered.wait_seconds == pytest.approx(7.5)
    assert state(router, "2001") is AgentState.ON_CALL
    pbx.now += 60
    effects = pbx.hangup(offer.offer_id)
    assert state(router, "2001") is AgentState.WRAP_UP
    effects += pbx.hangup(uid)
    [call] = of_type(effects, CallEnded)
    assert call.outcome is Outcome.ANSWERED
    assert call.answered_by == "2001"
    assert call.talk_ended_at == pytest.approx(pbx.now)
    assert router.next_deadline() == pytest.approx(pbx.now + 5.0)
    pbx.advance(4.9)
    assert state(router, "2001") is AgentState.WRAP_UP
    [wrap_up] = of_type(pbx.advance(0.2), WrapUpEnded)
    assert state(router, "2001") is AgentState.AVAILABLE
    assert (wrap_up.agent_id, wrap_up.call_id, wrap_up.queue) == ("2001", uid, "support")
    assert wrap_up.seconds == pytest.approx(5.1)
    assert router.calls == {}
    assert router.offers == {}


def test_ring_no_answer_goes_straight_to_the_next_agent_and_pauses_after_two_misses() -> None:
    router = make_router([agent("2001"), agent("2002")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    pbx.now += 1
    router.login("2002", pbx.now)
    uid, effects = pbx.caller()
    [first] = originates(effects)
    assert first.device == "Local/2001@agents"  # longest idle
    pbx.ring(first)
    pbx.now += 15
    effects = pbx.fail(first, 3)
    [ended] = of_type(effects, OfferEnded)
    assert ended.result is OfferResult.NO_ANSWER
    [second] = originates(effects)
    assert second.device == "Local/2002@agents"
    assert second.offer_id == first.offer_id[:-1] + "2"
    assert router.agents["2001"].consecutive_misses == 1
    assert state(router, "2001") is AgentState.AVAILABLE
    effects = pbx.fail(second, 3)
    # both missed once: the first agent comes back before pausing anyone
    [third] = originates(effects)
    assert third.device == "Local/2001@agents"
    effects = pbx.fail(third, 3)
    paused = [e for e in of_type(effects, AgentStateChanged) if e.agent_id == "2001"]
    assert paused[-1].state is AgentState.PAUSED
    assert paused[-1].reason == NO_ANSWER_PAUSE
    [fourth] = originates(effects)
    assert fourth.device == "Local/2002@agents"
    router.unpause("2001", pbx.now)
    assert router.agents["2001"].consecutive_misses == 0
    assert router.calls[uid].state is CallState.RINGING


def test_busy_marks_the_agent_unavailable_until_not_inuse_but_not_before_the_retry_delay() -> None:
    router = make_router([agent("2001"), agent("2002")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    pbx.now += 1
    router.login("2002", pbx.now)
    _, effects = pbx.caller()
    [first] = originates(effects)
    effects = pbx.fail(first, 5)
    assert of_type(effects, OfferEnded)[0].result is OfferResult.BUSY
    assert originates(effects)[0].device == "Local/2002@agents"
    assert state(router, "2001") is AgentState.UNAVAILABLE
    pbx.device("Local/2001@agents", "NOT_INUSE")  # the failed leg's own teardown
    assert state(router, "2001") is AgentState.UNAVAILABLE
    pbx.advance(2.5)
    assert state(router, "2001") is AgentState.AVAILABLE


def test_unavailable_cools_down_without_a_device_event() -> None:
    router = make_router([agent("2001")], unavailable_cooldown=30.0)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    effects = pbx.fail(offer, 1)
    assert of_type(effects, OfferEnded)[0].result is OfferResult.UNAVAILABLE
    assert originates(effects) == []
    assert router.calls[uid].state is CallState.WAITING
    assert originates(pbx.advance(29)) == []
    [again] = originates(pbx.advance(1.5))
    assert again.device == "Local/2001@agents"


def test_abandon_while_ringing_hangs_up_the_leg_and_does_not_blame_the_agent() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    pbx.now += 3.5
    effects = pbx.hangup(uid)
    [hangup] = of_type(effects, HangupChannel)
    assert hangup.channel == "Local/2001@agents-0000abcd;1"
    [ended] = of_type(effects, OfferEnded)
    assert ended.result is OfferResult.CANCELLED
    assert ended.ring_seconds == pytest.approx(3.5)
    [call] = of_type(effects, CallEnded)
    assert call.outcome is Outcome.ABANDONED_RINGING
    assert call.wait_seconds == pytest.approx(3.5)
    assert state(router, "2001") is AgentState.RINGING  # until the PBX confirms
    effects = pbx.fail(offer, 0)  # the OriginateResponse our hangup causes
    assert state(router, "2001") is AgentState.AVAILABLE
    assert router.agents["2001"].unavailable_until is None
    assert router.agents["2001"].consecutive_misses == 0
    assert router.calls == {}


def test_caller_gone_before_the_pbx_made_the_leg_abandoned_while_waiting() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    effects = pbx.hangup(uid)
    assert of_type(effects, CallEnded)[0].outcome is Outcome.ABANDONED_WAITING
    assert of_type(effects, OfferEnded)[0].result is OfferResult.CANCELLED
    assert of_type(effects, HangupChannel)[0].channel == offer.offer_id
    effects = pbx.leg_created(offer)
    assert of_type(effects, HangupChannel)[0].channel == "Local/2001@agents-0000abcd;1"


def test_abandon_while_waiting() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    uid, effects = pbx.caller()
    assert originates(effects) == []
    pbx.now += 4.5
    effects = pbx.hangup(uid)
    [call] = of_type(effects, CallEnded)
    assert call.outcome is Outcome.ABANDONED_WAITING
    assert call.wait_seconds == pytest.approx(4.5)
    assert router.waiting_calls() == []


def test_highest_priority_first_then_longest_wait() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    old_low, _ = pbx.caller(priority=0)
    pbx.now += 1
    new_high, _ = pbx.caller(priority=5)
    pbx.now += 1
    newer_high, _ = pbx.caller(priority=5)
    assert [c.call_id for c in router.waiting_calls()] == [new_high, newer_high, old_low]
    [offer] = originates(router.login("2001", pbx.now))
    assert router.offers[offer.offer_id].call_id == new_high


def test_priority_weight_ranks_queues_for_an_agent_serving_both() -> None:
    queues = [
        QueueConfig(name="support"),
        QueueConfig(name="vip", priority_weight=10.0),
    ]
    router = make_router([agent("2001", ["support", "vip"])], queues)
    pbx = Pbx(router)
    pbx.caller("support", priority=5)
    pbx.now += 1
    vip, _ = pbx.caller("vip", priority=0)
    [offer] = originates(router.login("2001", pbx.now))
    assert router.offers[offer.offer_id].call_id == vip


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("longest_idle", "a1"),
        ("fewest_calls", "a3"),
        ("skill_level", "a2"),
        ("round_robin", "a1"),
    ],
)
def test_agent_selection_strategies(strategy: str, expected: str) -> None:
    queues = [QueueConfig(name="support", skills=("billing",), strategy=strategy, wrap_up=0)]
    agents = [agent("a1", billing=3), agent("a2", billing=9), agent("a3", billing=5)]
    router = make_router(agents, queues)
    pbx = Pbx(router)
    for agent_id in ("a1", "a2", "a3"):
        router.login(agent_id, pbx.now)
        pbx.now += 1
    router.agents["a1"].calls_answered = 4
    router.agents["a2"].calls_answered = 2
    _, effects = pbx.caller()
    assert originates(effects)[0].device == f"Local/{expected}@agents"


def test_round_robin_rotates() -> None:
    queues = [QueueConfig(name="support", strategy="round_robin", wrap_up=0)]
    router = make_router([agent("a1"), agent("a2"), agent("a3")], queues)
    pbx = Pbx(router)
    for agent_id in ("a3", "a2", "a1"):
        router.login(agent_id, pbx.now)
    picked = []
    for _ in range(4):
        uid, effects = pbx.caller()
        [offer] = originates(effects)
        picked.append(offer.device.split("/")[1].split("@")[0])
        pbx.answer(offer)
        pbx.hangup(uid)
    assert picked == ["a1", "a2", "a3", "a1"]


def test_skills_limit_who_can_take_a_call() -> None:
    router = make_router([agent("2001", english=5), agent("2002")])
    pbx = Pbx(router)
    router.login("2002", pbx.now)
    _, effects = pbx.caller(skills=frozenset({"english"}))
    assert originates(effects) == []
    [offer] = originates(router.login("2001", pbx.now))
    assert offer.device == "Local/2001@agents"


def test_sticky_agent_serves_a_repeat_caller() -> None:
    queues = [QueueConfig(name="support", wrap_up=0)]
    router = make_router([agent("2001"), agent("2002")], queues)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    pbx.now += 1
    router.login("2002", pbx.now)
    uid, effects = pbx.caller(number="13911112222")
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"
    pbx.answer(offer)
    pbx.hangup(uid)
    pbx.now += 3600
    # 2002 has been idle longest now, but the repeat caller goes back to 2001
    _, effects = pbx.caller(number="13911112222")
    assert originates(effects)[0].device == "Local/2001@agents"
    pbx.now += 8 * 86400
    _, effects = pbx.caller(number="13911112222")
    assert originates(effects)[0].device == "Local/2002@agents"
    pbx.now += 8 * 86400
    pbx.advance(0)
    assert "13911112222" not in router.sticky  # old history is forgotten


def test_paused_logged_out_and_busy_elsewhere_agents_are_not_rung() -> None:
    router = make_router([agent("2001"), agent("2002"), agent("2003")])
    pbx = Pbx(router)
    for agent_id in ("2001", "2002", "2003"):
        router.login(agent_id, pbx.now)
    router.pause("2001", "lunch", pbx.now)
    router.logout("2002", pbx.now)
    pbx.device("Local/2003@agents", "INUSE")
    assert state(router, "2003") is AgentState.BUSY_ELSEWHERE
    _, effects = pbx.caller()
    assert originates(effects) == []
    assert state(router, "2001") is AgentState.PAUSED
    [offer] = originates(pbx.device("Local/2003@agents", "NOT_INUSE"))
    assert offer.device == "Local/2003@agents"


def test_pause_during_a_call_applies_after_wrap_up() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.answer(offer)
    router.pause("2001", "training", pbx.now)
    assert state(router, "2001") is AgentState.ON_CALL
    pbx.hangup(uid)
    pbx.advance(6)
    assert state(router, "2001") is AgentState.PAUSED
    _, effects = pbx.caller()
    assert originates(effects) == []


def test_overflow_to_another_queue_keeps_the_arrival_time() -> None:
    queues = [
        QueueConfig(name="support", max_wait=60, overflow_queue="backup"),
        QueueConfig(name="backup"),
    ]
    router = make_router([agent("2001", ["backup"])], queues)
    pbx = Pbx(router)
    uid, _ = pbx.caller()
    arrived = router.calls[uid].arrived_at
    pbx.advance(59)
    assert router.calls[uid].queue == "support"
    pbx.advance(1.5)
    assert router.calls[uid].queue == "backup"
    assert router.calls[uid].arrived_at == arrived
    [offer] = originates(router.login("2001", pbx.now))
    pbx.answer(offer)
    [call] = of_type(pbx.hangup(uid), CallEnded)
    assert call.outcome is Outcome.ANSWERED
    assert call.original_queue == "support"
    assert call.queue == "backup"
    assert call.wait_seconds == pytest.approx(60.5)


def test_overflow_to_a_dialplan_target_redirects_and_is_final() -> None:
    queues = [
        QueueConfig(name="support", max_wait=30, overflow_target=("hotline-voicemail", "s", "1"))
    ]
    router = make_router([agent("2001")], queues)
    pbx = Pbx(router)
    uid, _ = pbx.caller()
    effects = pbx.advance(31)
    [redirect] = of_type(effects, RedirectChannel)
    assert (redirect.context, redirect.exten, redirect.priority) == ("hotline-voicemail", "s", "1")
    [call] = of_type(effects, CallEnded)
    assert call.outcome is Outcome.OVERFLOWED
    assert of_type(pbx.hangup(uid), CallEnded) == []  # no second outcome


def test_overflow_due_while_ringing_happens_when_the_ring_fails() -> None:
    queues = [QueueConfig(name="support", max_wait=10, overflow_target=("vm", "s", "1"))]
    router = make_router([agent("2001")], queues)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.advance(11)
    assert router.calls[uid].state is CallState.RINGING
    pbx.now += 4
    effects = pbx.fail(offer, 3)
    assert of_type(effects, RedirectChannel)
    assert of_type(effects, CallEnded)[0].outcome is Outcome.OVERFLOWED


def test_unknown_queue_routes_to_the_default_queue_with_a_warning() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller(queue="no-such-queue")
    [warning] = of_type(effects, RoutingWarning)
    assert warning.code == "unknown_queue"
    assert router.calls[uid].queue == "support"
    assert len(originates(effects)) == 1


def test_unknown_agent_command_is_an_error() -> None:
    router = make_router([agent("2001")])
    with pytest.raises(UnknownAgent):
        router.login("9999", 0.0)


def test_guard_writes_off_an_originate_without_response_but_never_an_answered_leg() -> None:
    router = make_router([agent("2001"), agent("2002")], originate_grace=5.0)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.login("2002", pbx.now + 1)
    uid, effects = pbx.caller()
    assert len(originates(effects)) == 1
    effects = pbx.advance(20.5)
    assert of_type(effects, RoutingWarning)[0].code == "originate_timeout"
    [retry] = originates(effects)
    assert retry.device == "Local/2002@agents"
    pbx.ring(retry)
    pbx.now += 1
    router.handle(ChannelState(pbx.now, "pbx", retry.offer_id, "x", LineState.UP), pbx.now)
    effects = pbx.advance(30)
    assert of_type(effects, HangupChannel) == []
    assert router.calls[uid].state is CallState.CONNECTED


def test_two_calls_on_one_ticket_have_distinct_offer_ids() -> None:
    household = "T20261126-A0001"  # a household's open ticket
    router = make_router([agent("2001"), agent("2002")], tickets=lambda _number, _now: household)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.login("2002", pbx.now)
    first_uid, first = pbx.caller(number="13900001111")
    second_uid, second = pbx.caller(number="13900002222")
    [one], [two] = originates(first), originates(second)
    assert one.ticket == two.ticket == "T20261126-A0001"
    assert one.offer_id != two.offer_id
    assert router.offers[one.offer_id].call_id == first_uid
    assert router.offers[two.offer_id].call_id == second_uid


def test_guard_gives_a_live_leg_more_time_before_writing_it_off() -> None:
    router = make_router([agent("2001"), agent("2002")], originate_grace=5.0)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.login("2002", pbx.now + 1)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    effects = pbx.advance(20.5)  # ring timeout + grace: the PBX is late, the leg is up
    assert originates(effects) == []
    assert router.calls[uid].state is CallState.RINGING
    effects = pbx.answer(offer)
    assert router.calls[uid].state is CallState.CONNECTED
    for _ in range(10):
        effects += pbx.advance(5.0)
    assert of_type(effects, HangupChannel) == []


def resync_channel(uid: str, channel: str, context: str, **kw: object) -> ChannelInfo:
    fields: dict[str, object] = {
        "linkedid": uid,
        "exten": "400",
        "state": LineState.UP,
        "application": "Wait",
        "application_data": "600",
        "bridge_id": "",
        "duration": 3.0,
        "number": "13900139009",
        "name": "Shen Er",
        "variables": {},
    }
    fields.update(kw)
    return ChannelInfo(uniqueid=uid, channel=channel, context=context, **fields)  # type: ignore[arg-type]


def test_resync_finds_a_caller_whose_waiting_event_was_missed() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    snapshot = PbxSnapshot(
        at=pbx.now,
        channels=(
            resync_channel(
                "1795712230.43",
                "Local/13900139009@callers-00000013;1",
                "hotline-inbound",
                duration=12.0,
                variables={"HOTLINE_QUEUE": "support", "HOTLINE_PRIORITY": "3"},
            ),
            resync_channel("1795712230.44", "Local/13900139009@callers-00000013;2", "callers"),
        ),
    )
    router.resync(snapshot, pbx.now)
    [call] = router.waiting_calls()
    assert call.arrived_at == pytest.approx(pbx.now - 12.0)
    assert call.arrival_source == "resync"
    assert call.priority == 3
    assert len(originates(router.login("2001", pbx.now))) == 1


def test_resync_closes_what_vanished_and_keeps_what_is_live() -> None:
    router = make_router([agent("2001"), agent("2002")])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.login("2002", pbx.now + 1)
    gone, effects = pbx.caller()
    [gone_offer] = originates(effects)
    pbx.ring(gone_offer)
    talking, effects = pbx.caller()
    [talk_offer] = originates(effects)
    pbx.answer(talk_offer)
    waiting, _ = pbx.caller()
    talking_channel = router.calls[talking].channel
    waiting_channel = router.calls[waiting].channel
    pbx.now += 10
    snapshot = PbxSnapshot(
        at=pbx.now,
        channels=(
            resync_channel(
                talking,
                talking_channel,
                "hotline-inbound",
                bridge_id="b1",
                variables={"HOTLINE_QUEUE": "support"},
            ),
            resync_channel(
                talk_offer.offer_id,
                "Local/2002@agents-0000abcd;1",
                "hotline-bridge",
                bridge_id="b1",
                variables={"HOTLINE_CALLER": talking_channel},
            ),
            resync_channel(
                waiting, waiting_channel, "hotline-inbound", variables={"HOTLINE_QUEUE": "support"}
            ),
        ),
    )
    effects = router.resync(snapshot, pbx.now)
    ended = {e.call_id: e for e in of_type(effects, CallEnded)}
    assert ended[gone].outcome is Outcome.ABANDONED_RINGING
    assert ended[gone].end_source == "resync"
    assert talking not in ended
    assert router.calls[talking].state is CallState.CONNECTED
    # the freed agent 2001 takes the caller who is still waiting
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"
    assert router.offers[offer.offer_id].call_id == waiting


def test_resync_hangs_up_a_stray_ringing_leg() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    snapshot = PbxSnapshot(
        at=pbx.now,
        channels=(
            resync_channel(
                "hl-T20261126-A0007-1",
                "Local/2001@agents-00000011;1",
                "hotline-bridge",
                state=LineState.RINGING,
                variables={"HOTLINE_CALLER": "Local/1@callers-00000001;1"},
            ),
        ),
    )
    effects = router.resync(snapshot, pbx.now)
    assert of_type(effects, HangupChannel)[0].channel == "Local/2001@agents-00000011;1"


def test_resync_accounts_once_for_a_caller_who_came_and_went_unseen() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    known, _ = pbx.caller()
    pbx.now += 5
    pbx.hangup(known)  # ended while we watched: its entry is only cleaned up
    unseen = JournalEntry("1795712300.9", pbx.now - 40, "support", 2, "13900001111", pbx.now - 31)
    waiting = JournalEntry("1795712300.7", pbx.now - 20, "support", 0, "13900002222", None)
    stale = JournalEntry(known, pbx.now - 5, "support", 0, "13900003333", pbx.now)
    snapshot = PbxSnapshot(at=pbx.now, channels=(), journal=(unseen, waiting, stale))
    effects = router.resync(snapshot, pbx.now)
    [ended] = of_type(effects, CallEnded)
    assert ended.call_id == unseen.uniqueid
    assert ended.outcome is Outcome.ABANDONED_WAITING
    assert (ended.arrived_at, ended.ended_at) == (unseen.arrived_at, unseen.ended_at)
    assert ended.end_source == "journal"
    assert ended.wait_seconds == pytest.approx(9.0)
    deleted = {e.uniqueid for e in of_type(effects, DeleteJournalEntry)}
    assert deleted == {unseen.uniqueid, known}
    again = router.resync(snapshot, pbx.now + 1)  # the DBDel was lost: still counted once
    assert of_type(again, CallEnded) == []
