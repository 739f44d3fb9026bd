"""A supervisor's hand on the waiting line (hotline/domain/routing/waiting.py): raising a
caller's priority changes who is routed first; moving a caller to another queue rings that
queue's agent for them, keeping their arrival time (their wait and the service level's)."""

from __future__ import annotations

import pytest

from hotline.config import QueueConfig
from hotline.domain.effects import CallEnded, CallRequeued, SetChannelVariable
from hotline.domain.model import CallState
from hotline.domain.routing.transfer import UnknownQueue
from hotline.domain.routing.waiting import NotWaiting
from hotline.pbx.actions import to_action
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

QUEUES = (
    QueueConfig(name="support", wrap_up=0.0, max_wait=300.0),
    QueueConfig(name="billing", wrap_up=0.0),
)


def test_raising_a_callers_priority_changes_who_is_routed_first() -> None:
    router = make_router([agent("2001")], QUEUES)
    pbx = Pbx(router)
    first, _ = pbx.caller()
    pbx.now += 10
    second, _ = pbx.caller()
    assert [call.call_id for call in router.waiting_calls("support")] == [first, second]

    pbx.now += 5
    effects = router.set_priority(second, 5, pbx.now)
    assert to_action(effects[0])[:2] == (
        "Setvar",
        [
            ("Channel", router.calls[second].channel),
            ("Variable", "HOTLINE_PRIORITY"),
            ("Value", "5"),
        ],
    )
    assert CallRequeued(second, "support", "priority", pbx.now) in effects
    assert [call.call_id for call in router.waiting_calls("support")] == [second, first]
    assert router.calls[second].arrived_at == pbx.now - 5  # its arrival is kept

    [offer] = originates(router.login("2001", pbx.now))
    assert offer.caller_channel == router.calls[second].channel  # the raised caller first


def test_moving_a_caller_rings_an_agent_of_the_other_queue_and_keeps_the_wait() -> None:
    router = make_router([agent("2001"), agent("3001", ["billing"])], QUEUES)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.pause("2001", "lunch", pbx.now)
    uid, _ = pbx.caller()
    arrived = pbx.now
    pbx.now += 40
    assert originates(router.login("3001", pbx.now)) == []  # not billing's caller

    pbx.now += 20
    effects = router.move_caller(uid, "billing", pbx.now)
    setvar = next(e for e in effects if isinstance(e, SetChannelVariable))
    assert (setvar.variable, setvar.value) == ("HOTLINE_QUEUE", "billing")
    assert CallRequeued(uid, "billing", "moved", pbx.now) in effects
    [offer] = originates(effects)
    assert (offer.caller_channel, offer.device) == (router.calls[uid].channel, "Local/3001@agents")
    call = router.calls[uid]
    assert (call.queue, call.original_queue, call.arrived_at) == ("billing", "billing", arrived)
    assert call.queue_entered_at == arrived  # the wallboard shows the whole wait

    pbx.ring(offer)
    pbx.now += 3
    pbx.answer(offer)
    ended = [e for e in pbx.hangup(uid, call.channel) if isinstance(e, CallEnded)]
    [record] = ended
    assert (record.queue, record.original_queue) == ("billing", "billing")  # SLA there
    assert record.wait_seconds == pytest.approx(63.0)  # from the first arrival


def test_the_old_queues_maximum_wait_no_longer_applies_after_a_move() -> None:
    router = make_router([agent("3001", ["billing"])], QUEUES)
    pbx = Pbx(router)
    router.login("3001", pbx.now)
    router.pause("3001", "lunch", pbx.now)
    uid, _ = pbx.caller()
    pbx.now += 10
    router.move_caller(uid, "billing", pbx.now)
    pbx.advance(600)  # past support's max_wait: billing has none
    assert router.calls[uid].state is CallState.WAITING
    assert router.calls[uid].queue == "billing"


def test_only_a_waiting_caller_can_be_changed() -> None:
    router = make_router([agent("2001")], QUEUES)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)  # ringing: not waiting any more
    with pytest.raises(NotWaiting):
        router.set_priority(uid, 3, pbx.now)
    with pytest.raises(NotWaiting):
        router.move_caller(uid, "billing", pbx.now)
    with pytest.raises(NotWaiting):
        router.set_priority("no-such-call", 3, pbx.now)
    with pytest.raises(UnknownQueue):
        router.move_caller(uid, "nowhere", pbx.now)
    with pytest.raises(ValueError, match="priority"):
        router.set_priority(uid, 10_000, pbx.now)
    assert offer.caller_channel == router.calls[uid].channel
