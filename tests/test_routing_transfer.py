"""Difficult calls go up: the router's transfer of a caller to another queue
(hotline/domain/routing/transfer.py): same call, same ticket, the agent to wrap-up."""

from __future__ import annotations

import pytest

from hotline.config import QueueConfig
from hotline.domain.effects import (
    CallEnded,
    CallRequeued,
    RedirectChannel,
    SetChannelVariable,
)
from hotline.domain.events import CallerWaiting
from hotline.domain.model import AgentState, CallState, Outcome
from hotline.domain.routing.transfer import NotOnCall, UnknownQueue
from hotline.pbx.actions import to_action
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

QUEUES = (
    QueueConfig(name="support", wrap_up=5.0),
    QueueConfig(name="supervisors", wrap_up=0.0),
)


def test_a_transferred_caller_rings_a_supervisor_with_the_same_ticket() -> None:
    router = make_router([agent("2001"), agent("9001", ["supervisors"])], QUEUES)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    router.login("9001", pbx.now)
    uid, effects = pbx.caller()
    [first] = originates(effects)
    pbx.ring(first)
    pbx.now += 3
    pbx.answer(first)
    call = router.call_of_agent("2001")
    assert call is not None
    assert call.call_id == uid

    pbx.now += 30
    effects = router.transfer("2001", "supervisors", pbx.now)
    setvar = next(e for e in effects if isinstance(e, SetChannelVariable))
    redirect = next(e for e in effects if isinstance(e, RedirectChannel))
    assert effects.index(setvar) < effects.index(redirect)
    assert to_action(setvar)[:2] == (
        "Setvar",
        [("Channel", call.channel), ("Variable", "HOTLINE_QUEUE"), ("Value", "supervisors")],
    )
    assert to_action(redirect)[:2] == (
        "Redirect",
        [
            ("Channel", call.channel),
            ("Context", "hotline-inbound"),
            ("Exten", "transfer"),
            ("Priority", "1"),
        ],
    )
    [requeued] = [e for e in effects if isinstance(e, CallRequeued)]
    assert (requeued.queue, requeued.reason) == ("supervisors", "transfer")
    [second] = originates(effects)
    assert second.device == "Local/9001@agents"
    assert second.ticket == first.ticket
    assert router.agents["2001"].state is AgentState.WRAP_UP
    assert router.call_of_agent("2001") is None

    # The re-announcement after the Redirect and the first leg's hang-up change nothing.
    again = CallerWaiting(
        at=pbx.now,
        source="pbx",
        uniqueid=uid,
        channel=call.channel,
        linkedid=uid,
        number=call.number,
        name=call.name,
        queue="supervisors",
        priority=0,
    )
    assert router.handle(again, pbx.now) == []
    assert originates(pbx.hangup(first.offer_id)) == []
    assert router.calls[uid].state is CallState.RINGING
    pbx.ring(second)
    pbx.answer(second)
    assert router.call_of_agent("9001") is not None
    pbx.now += 60
    effects = pbx.hangup(second.offer_id) + pbx.hangup(uid)
    [ended] = [e for e in effects if isinstance(e, CallEnded)]
    assert ended.outcome is Outcome.ANSWERED
    assert ended.queue == "supervisors"
    assert ended.original_queue == "support"
    assert ended.ticket == first.ticket


def test_a_transfer_needs_a_call_and_a_known_queue() -> None:
    router = make_router([agent("2001")], QUEUES)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    with pytest.raises(NotOnCall):
        router.transfer("2001", "supervisors", pbx.now)
    _, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    pbx.answer(offer)
    with pytest.raises(UnknownQueue):
        router.transfer("2001", "nowhere", pbx.now)


def test_a_transferred_caller_who_hangs_up_while_waiting_again_was_answered() -> None:
    router = make_router([agent("2001")], QUEUES)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    pbx.answer(offer)
    router.transfer("2001", "supervisors", pbx.now)  # nobody serves it
    pbx.now += 10
    [ended] = [e for e in pbx.hangup(uid) if isinstance(e, CallEnded)]
    assert ended.outcome is Outcome.ANSWERED
    assert ended.answered_by == "2001"
