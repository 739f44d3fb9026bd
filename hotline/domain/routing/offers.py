"""Offers: one ring of one agent for one call, from the Originate to its response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    AgentPresenceChanged,
    CallAnswered,
    Effect,
    HangupChannel,
    OfferEnded,
    OfferStarted,
    OriginateAgentLeg,
    RoutingWarning,
)
from hotline.domain.events import (
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DialResult,
    LegChannelCreated,
    LineState,
    OriginateRejected,
    OriginateResult,
)
from hotline.domain.model import (
    Activity,
    Agent,
    Call,
    CallState,
    Offer,
    OfferResult,
    Outcome,
)
from hotline.domain.offerstate import OfferEvent
from hotline.domain.routing import agents, calls, dispatch, timers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

LEG_ID_PREFIX = "hl-"
"""How every offer id (the agent leg's ChannelId, hence its Uniqueid) starts."""

_REASON_RESULTS = {DialResult.NO_ANSWER: OfferResult.NO_ANSWER, DialResult.BUSY: OfferResult.BUSY}


def ring(r: Router, offer: Offer, call: Call, agent: Agent) -> None:
    """Track a new offer: its leg's events find it, the call rings, the agent is reserved."""
    offer.leg_uniqueids.add(offer.offer_id)
    r.offers[offer.offer_id] = offer
    r.offers_by_leg[offer.offer_id] = offer.offer_id
    call.offers.append(offer.offer_id)
    call.state = CallState.RINGING
    agent.activity = Activity.RINGING
    agent.offer_id = offer.offer_id


def make_offer(r: Router, call: Call, agent: Agent, now: float, effects: list[Effect]) -> None:
    queue = r.queues[call.queue]
    offer_id = offer_id_for(call.ticket, call.call_id, len(call.offers) + 1, r.boot_id)
    offer = Offer(
        offer_id=offer_id,
        call_id=call.call_id,
        agent_id=agent.id,
        device=agent.config.device,
        queue=call.queue,
        requested_at=now,
        ring_timeout=queue.ring_timeout,
    )
    dispatch.dequeue(r, call)
    ring(r, offer, call, agent)
    agents.refresh(r, agent, now, effects)
    guard_at = now + queue.ring_timeout + r.routing.originate_grace
    timers.schedule(r, timers.OriginateGuard(guard_at, offer_id))
    if call.is_callback:
        effects.append(
            OriginateAgentLeg(
                offer_id=offer_id,
                device=agent.config.device,
                context=r.routing.outbound_context,
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
            context=r.routing.bridge_context,
            caller_channel=call.channel,
            ticket=call.ticket,
            caller_number=call.number,
            caller_name=call.name,
            timeout=queue.ring_timeout,
        )
    )
    effects.append(OfferStarted(offer_id, call.call_id, agent.id, call.queue, call.ticket, now))


def leg_offer(r: Router, uniqueid: str) -> Offer | None:
    offer_id = r.offers_by_leg.get(uniqueid)
    if offer_id is None and uniqueid.startswith(LEG_ID_PREFIX) and ";" in uniqueid:
        offer_id = r.offers_by_leg.get(uniqueid.split(";", 1)[0])
        if offer_id is not None:
            r.offers_by_leg[uniqueid] = offer_id
            r.offers[offer_id].leg_uniqueids.add(uniqueid)
    return r.offers.get(offer_id) if offer_id is not None else None


def on_leg_channel(r: Router, event: LegChannelCreated, effects: list[Effect]) -> None:
    offer = leg_offer(r, event.uniqueid)
    if offer is None or event.uniqueid != offer.offer_id:
        return
    offer.leg_channel = event.channel
    if offer.hangup_sent and not offer.leg_hung_up:
        effects.append(HangupChannel(event.channel))


def on_channel_state(r: Router, event: ChannelState, now: float, effects: list[Effect]) -> None:
    offer = leg_offer(r, event.uniqueid)
    if offer is None or event.uniqueid != offer.offer_id:
        return
    if offer.leg_channel is None:
        offer.leg_channel = event.channel
    if event.state is LineState.RINGING and offer.ring_started_at is None and offer.result is None:
        offer.ring_started_at = event.at
        offer.ring_start_source = event.source
    elif event.state is LineState.UP:
        on_answer(r, offer, event.at, event.source, now, effects)


def on_originate_result(
    r: Router, event: OriginateResult, now: float, effects: list[Effect]
) -> None:
    offer = r.offers.get(event.action_id)
    if offer is None or not offer.open:
        return
    offer.advance(OfferEvent.RESPONSE)
    if event.success:
        on_answer(r, offer, event.at, event.source, now, effects)
    else:
        result = _REASON_RESULTS.get(event.reason, OfferResult.UNAVAILABLE)
        on_offer_failed(r, offer, result, event.at, event.source, now, effects)
    close_offer(r, offer, now, effects)


def on_originate_rejected(
    r: Router, event: OriginateRejected, now: float, effects: list[Effect]
) -> None:
    offer = r.offers.get(event.action_id)
    if offer is None or not offer.open or event.connection_lost:
        # Whether a lost Originate reached the PBX is unknown: the offer stays open
        # until the resync finds its leg (or not), or its guard timer writes it off.
        return
    offer.advance(OfferEvent.RESPONSE)
    effects.append(RoutingWarning("originate_rejected", event.message, offer.call_id))
    on_offer_failed(r, offer, OfferResult.UNAVAILABLE, event.at, event.source, now, effects)
    close_offer(r, offer, now, effects)


def on_answer(
    r: Router, offer: Offer, at: float, source: str, now: float, effects: list[Effect]
) -> None:
    if offer.result is not None:
        if offer.result is not OfferResult.ANSWERED and not offer.leg_hung_up:
            effects.append(HangupChannel(offer.leg_channel or offer.offer_id))
        return
    call = r.calls.get(offer.call_id)
    agent = r.agents[offer.agent_id]
    if call is None or call.state is not CallState.RINGING:
        end_offer(r, offer, OfferResult.CANCELLED, at, source, effects)
        effects.append(HangupChannel(offer.leg_channel or offer.offer_id))
        return
    end_offer(r, offer, OfferResult.ANSWERED, at, source, effects)
    call.state = CallState.CONNECTED
    call.answered_by = agent.id
    call.answered_at = at
    call.outcome = Outcome.ANSWERED
    agent.activity = Activity.ON_CALL
    agent.consecutive_misses = 0
    agent.calls_answered += 1
    agents.refresh(r, agent, now, effects)
    if call.is_callback:
        return
    if call.number.isdigit():
        r.sticky[call.number] = (agent.id, at)
        agents.prune_sticky(r, now)
    effects.append(
        CallAnswered(call.call_id, agent.id, call.queue, call.ticket, call.arrived_at, at, source)
    )


def end_offer(
    r: Router, offer: Offer, result: OfferResult, at: float, source: str, effects: list[Effect]
) -> None:
    if offer.result is not None:
        return
    offer.result = result
    offer.advance(OfferEvent.RESULT)
    offer.ended_at = at
    offer.end_source = source
    call = r.calls.get(offer.call_id)
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


def on_offer_failed(
    r: Router,
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
    end_offer(r, offer, result, at, source, effects)
    agent = r.agents[offer.agent_id]
    call = r.calls.get(offer.call_id)
    if call is not None:
        call.missed_by[agent.id] = call.missed_by.get(agent.id, 0) + 1
    if result is OfferResult.NO_ANSWER:
        agent.consecutive_misses += 1
        if (
            agent.consecutive_misses >= r.routing.max_consecutive_misses
            and agent.pause_reason is None
        ):
            agent.pause_reason = agents.NO_ANSWER_PAUSE
            agent.paused_since = now
            effects.append(
                AgentPresenceChanged("pause", agents.NO_ANSWER_PAUSE, now, agent.presence)
            )
    else:
        agent.unavailable_until = now + r.routing.unavailable_cooldown
        agent.retry_not_before = now + r.routing.busy_retry_after
        timers.schedule(r, timers.CooldownEnds(agent.unavailable_until, agent.id))
    if call is not None and call.state is CallState.RINGING:
        dispatch.requeue(r, call, f"ring {result.value}", now, effects)


def write_off(
    r: Router, offer: Offer, at: float, source: str, now: float, effects: list[Effect]
) -> None:
    """The offer's fate is unknown (connection lost): cancel it without blaming the agent.

    The agent's miss count is untouched, but for this caller they come last.
    """
    if offer.result is None:
        end_offer(r, offer, OfferResult.CANCELLED, at, source, effects)
    if not offer.leg_hung_up and offer.leg_channel is not None:
        effects.append(HangupChannel(offer.leg_channel))
    call = r.calls.get(offer.call_id)
    if call is not None:
        call.missed_by[offer.agent_id] = call.missed_by.get(offer.agent_id, 0) + 1
    if call is not None and call.state is CallState.RINGING and call.offers[-1] == offer.offer_id:
        dispatch.requeue(r, call, "ring lost", now, effects)


def cancel_offer(r: Router, offer: Offer, at: float, source: str, effects: list[Effect]) -> None:
    """The caller left while the agent rang: end the ring and hang up the leg."""
    end_offer(r, offer, OfferResult.CANCELLED, at, source, effects)
    if not offer.hangup_sent and not offer.leg_hung_up:
        offer.advance(OfferEvent.HANGUP_SENT)
        effects.append(HangupChannel(offer.leg_channel or offer.offer_id))


def close_offer(r: Router, offer: Offer, now: float, effects: list[Effect]) -> None:
    """The OriginateResponse arrived (or was written off): release a reserved agent."""
    agent = r.agents[offer.agent_id]
    if agent.offer_id == offer.offer_id and agent.activity is Activity.RINGING:
        agent.activity = Activity.IDLE
        agent.offer_id = None
        agents.refresh(r, agent, now, effects)
    call = r.calls.get(offer.call_id)
    if call is not None:
        calls.forget_if_done(r, call)


def on_leg_gone(
    r: Router, offer: Offer, event: ChannelHungUp, now: float, effects: list[Effect]
) -> None:
    if event.uniqueid != offer.offer_id:
        return
    offer.leg_hung_up = True
    agent = r.agents[offer.agent_id]
    call = r.calls.get(offer.call_id)
    if offer.result is OfferResult.ANSWERED and agent.offer_id == offer.offer_id:
        if call is not None and call.talk_ended_at is None:
            call.talk_ended_at = event.at
        if call is not None and call.is_callback:
            calls.finish_callback(call, offer, "failed", event.at, event.source, effects)
        if agent.activity is Activity.ON_CALL:
            agents.start_wrap_up(r, agent, call, now, effects)
    if call is not None:
        calls.forget_if_done(r, call)


def on_bridged(r: Router, event: ChannelBridged, now: float, effects: list[Effect]) -> None:
    offer = leg_offer(r, event.uniqueid)
    if offer is not None and event.uniqueid == offer.offer_id and offer.result is None:
        on_answer(r, offer, event.at, event.source, now, effects)


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
