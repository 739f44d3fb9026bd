"""A call's arrival and its end: inbound callers, callback attempts, the one outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    CallArrived,
    CallbackAttemptEnded,
    CallEnded,
    DeleteJournalEntry,
    Effect,
    RoutingWarning,
)
from hotline.domain.events import (
    CallbackDue,
    CallerWaiting,
    ChannelHungUp,
    DialEnded,
)
from hotline.domain.model import (
    Activity,
    Call,
    CallState,
    Offer,
    Outcome,
)
from hotline.domain.routing import agents, dispatch, offers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

_CALLBACK_PRIORITY = -1_000_000  # below every inbound caller
_RECENTLY_ENDED = 50_000  # ended call ids remembered, so the journal never counts one twice


def on_caller_waiting(
    r: Router, event: CallerWaiting, now: float, elapsed: float, effects: list[Effect]
) -> None:
    """Queue a new caller; ``elapsed`` is how long they already waited (after a resync)."""
    if event.uniqueid in r.calls:
        return
    queue = event.queue
    if queue not in r.queues:
        effects.append(
            RoutingWarning(
                "unknown_queue",
                f"HotlineQueue {queue!r} is not configured; routed to {r.routing.default_queue!r}",
                event.uniqueid,
            )
        )
        queue = r.routing.default_queue
    call = Call(
        call_id=event.uniqueid,
        channel=event.channel,
        linkedid=event.linkedid,
        number=event.number,
        name=event.name,
        queue=queue,
        priority=event.priority,
        skills=frozenset(r.queues[queue].skills) | event.skills,
        lang=event.lang,
        preferred_agent=event.preferred_agent,
        arrived_at=event.at,
        arrival_source=event.source,
        queue_entered_at=now - elapsed,
        ticket=r.allocate_ticket(event.number, now),
        seq=next(r._call_seq),
        original_queue=queue,
    )
    r.calls[call.call_id] = call
    r.calls_by_channel[call.channel] = call.call_id
    effects.append(
        CallArrived(
            call.call_id, call.ticket, call.number, queue, call.priority, event.at, event.source
        )
    )
    dispatch.enqueue(r, call)
    dispatch.schedule_max_wait(r, call, call.queue_entered_at)


def on_callback_due(r: Router, event: CallbackDue, now: float) -> None:
    """Queue a callback attempt; it waits for an agent behind every inbound caller."""
    if any(c.callback_id == event.callback_id for c in r.pending_callbacks()):
        return
    call_id = f"callback-{event.callback_id}-{event.attempt}"
    queue = event.queue if event.queue in r.queues else r.routing.default_queue
    call = Call(
        call_id=call_id,
        channel="",
        linkedid="",
        number=event.number,
        name=f"Callback {event.ticket}",
        queue=queue,
        priority=_CALLBACK_PRIORITY,
        skills=frozenset(r.queues[queue].skills),
        lang=None,
        arrived_at=event.at,
        arrival_source=event.source,
        queue_entered_at=now,
        ticket=event.ticket,
        seq=next(r._call_seq),
        original_queue=queue,
        callback_id=event.callback_id,
        callback_attempt=event.attempt,
        assigned_agent=event.assigned_agent,
    )
    r.calls[call_id] = call
    dispatch.enqueue(r, call)


def on_dial_end(r: Router, event: DialEnded, effects: list[Effect]) -> None:
    """A callback's agent leg dialled the customer: that is the attempt's result."""
    offer = offers.leg_offer(r, event.uniqueid)
    if offer is None or event.uniqueid != offer.offer_id:
        return
    call = r.calls.get(offer.call_id)
    if call is not None and call.is_callback:
        finish_callback(call, offer, event.status.value, event.at, event.source, effects)


def finish_callback(
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


def on_hangup(r: Router, event: ChannelHungUp, now: float, effects: list[Effect]) -> None:
    call = r.calls.get(event.uniqueid)
    if call is not None:
        on_caller_gone(r, call, event.at, event.source, now, effects)
        return
    offer_id = r.offers_by_leg.get(event.uniqueid)
    if offer_id is not None:
        offers.on_leg_gone(r, r.offers[offer_id], event, now, effects)


def on_caller_gone(
    r: Router, call: Call, at: float, source: str, now: float, effects: list[Effect]
) -> None:
    if call.state is CallState.WAITING:
        dispatch.dequeue(r, call)
        end_call(r, call, _unless_answered(call, Outcome.ABANDONED_WAITING), at, source, effects)
    elif call.state is CallState.RINGING:
        offer = r.offers[call.offers[-1]]
        # Ringing means the PBX had made the agent leg; an Originate still in
        # flight when the caller left rang nobody yet.
        reached_pbx = offer.leg_channel is not None or offer.ring_started_at is not None
        offers.cancel_offer(r, offer, at, source, effects)
        outcome = Outcome.ABANDONED_RINGING if reached_pbx else Outcome.ABANDONED_WAITING
        end_call(r, call, _unless_answered(call, outcome), at, source, effects)
    elif call.state is CallState.CONNECTED:
        if call.talk_ended_at is None:
            call.talk_ended_at = at
        end_call(r, call, Outcome.ANSWERED, at, source, effects)
        agent = r.agents[call.answered_by] if call.answered_by is not None else None
        if agent is not None and agent.offer_id in call.offers:
            agents.start_wrap_up(r, agent, call, now, effects)
    forget_if_done(r, call)


def _unless_answered(call: Call, outcome: Outcome) -> Outcome:
    """A transferred caller who leaves while waiting again was answered already."""
    return Outcome.ANSWERED if call.answered_at is not None else outcome


def end_call(
    r: Router, call: Call, outcome: Outcome, at: float, source: str, effects: list[Effect]
) -> None:
    call.state = CallState.ENDED
    call.outcome = outcome
    call.ended_at = at
    call.end_source = source
    remember_ended(r, call.call_id)
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


def remember_ended(r: Router, call_id: str) -> None:
    r._recently_ended[call_id] = None
    if len(r._recently_ended) > _RECENTLY_ENDED:
        r._recently_ended.popitem(last=False)


def forget_if_done(r: Router, call: Call) -> None:
    """Drop an ended call once none of its offers can still produce events."""
    if call.state is not CallState.ENDED:
        return
    if any(r.offers[offer_id].open for offer_id in call.offers if offer_id in r.offers):
        return
    if call.answered_by is not None:
        agent = r.agents[call.answered_by]
        if agent.activity is Activity.ON_CALL and agent.offer_id in call.offers:
            return
    for offer_id in call.offers:
        offer = r.offers.pop(offer_id, None)
        if offer is not None:
            for uniqueid in offer.leg_uniqueids:
                r.offers_by_leg.pop(uniqueid, None)
    r.calls.pop(call.call_id, None)
    if r.calls_by_channel.get(call.channel) == call.call_id:
        del r.calls_by_channel[call.channel]
