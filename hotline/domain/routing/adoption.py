"""Adoption: take over callers and agent legs a previous process (or an outage) left."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    Effect,
    HangupChannel,
    RoutingWarning,
)
from hotline.domain.events import (
    CallerWaiting,
    ChannelInfo,
    LineState,
    PbxSnapshot,
)
from hotline.domain.model import (
    Activity,
    Agent,
    Call,
    CallState,
    Offer,
    OfferResult,
)
from hotline.domain.offerstate import OfferState
from hotline.domain.routing import agents, calls, dispatch, offers, timers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router


def adopt_callers(r: Router, snapshot: PbxSnapshot, now: float, effects: list[Effect]) -> None:
    """Queue the callers in the inbound context that we do not know yet.

    A caller's arrival is the journal's (milliseconds) where it has an entry,
    else their channel's age (whole seconds).
    """
    journal = {entry.uniqueid: entry for entry in snapshot.journal}
    for channel in snapshot.channels:
        queue = channel.variables.get("HOTLINE_QUEUE")
        if channel.context != r.routing.inbound_context or not queue or channel.uniqueid in r.calls:
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
            preferred_agent=channel.variables.get("HOTLINE_STICKY_AGENT") or None,
        )
        calls.on_caller_waiting(r, waiting, now, max(snapshot.at - arrived_at, 0.0), effects)


def adopt_legs(r: Router, snapshot: PbxSnapshot, now: float, effects: list[Effect]) -> None:
    """Take over agent legs we do not track.

    One of our legs that still rings for a caller (a previous process' offer:
    in the device's own context, ``AppDial2``) becomes a live offer. A bridged
    leg is attached to its caller. Any other leg in the bridge context is a
    stray: hung up if it still rings.
    """
    for leg in snapshot.channels:
        offer = r.offers.get(leg.uniqueid)
        if offer is not None and (offer.open or offer.result is OfferResult.ANSWERED):
            continue
        if (
            leg.own_leg
            and leg.caller_channel
            and not leg.bridge_id
            and leg.state is not LineState.UP
        ):
            adopt_ringing_leg(r, snapshot, leg, now, effects)
            continue
        if leg.context == r.routing.bridge_context:
            _adopt_bridge_leg(r, leg, now, effects)


def _adopt_bridge_leg(r: Router, leg: ChannelInfo, now: float, effects: list[Effect]) -> None:
    """A leg in the bridge context we do not track: attach it if bridged, else a stray."""
    call_id = r.calls_by_channel.get(leg.caller_channel)
    call = r.calls.get(call_id) if call_id is not None else None
    agent = r.agents_by_device.get(leg.device)
    if (
        leg.bridge_id
        and call is not None
        and call.state in (CallState.WAITING, CallState.RINGING)
        and agent is not None
        and agent.activity is Activity.IDLE
    ):
        attach_answered_leg(r, call, agent, leg, now, effects)
        return
    if not leg.bridge_id:
        effects.append(HangupChannel(leg.channel))
    effects.append(RoutingWarning("stray_leg", f"agent leg {leg.channel} not tracked", call_id))


def adopt_ringing_leg(
    r: Router, snapshot: PbxSnapshot, leg: ChannelInfo, now: float, effects: list[Effect]
) -> None:
    """A previous process' ring that goes on: the agent is reserved, the caller rings.

    Its answer (``Newstate`` 6, or the ``OriginateResponse`` that Asterisk
    broadcasts with the dead process' ActionID, which is the leg id) then
    bridges as usual; its failure re-routes the caller.
    """
    call_id = r.calls_by_channel.get(leg.caller_channel)
    call = r.calls.get(call_id) if call_id is not None else None
    agent = r.agents_by_device.get(leg.device)
    if (
        call is None
        or call.state is not CallState.WAITING
        or agent is None
        or agent.activity is not Activity.IDLE
    ):
        effects.append(HangupChannel(leg.channel))
        effects.append(RoutingWarning("stray_leg", f"agent leg {leg.channel} not tracked", call_id))
        return
    dispatch.dequeue(r, call)
    if leg.ticket:
        call.ticket = leg.ticket
    ring_timeout = r.queues[call.queue].ring_timeout
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
    offers.ring(r, offer, call, agent)
    agents.refresh(r, agent, now, effects)
    guard_at = now + ring_timeout + r.routing.originate_grace
    timers.schedule(r, timers.OriginateGuard(guard_at, offer.offer_id))


def attach_answered_leg(
    r: Router, call: Call, agent: Agent, leg: ChannelInfo, now: float, effects: list[Effect]
) -> None:
    if call.state is CallState.RINGING:
        offers.cancel_offer(r, r.offers[call.offers[-1]], now, "resync", effects)
    else:
        dispatch.dequeue(r, call)
    if leg.ticket:
        call.ticket = leg.ticket
    offer = Offer(
        offer_id=leg.uniqueid,
        call_id=call.call_id,
        agent_id=agent.id,
        device=agent.config.device,
        queue=call.queue,
        requested_at=now - leg.duration,
        ring_timeout=r.queues[call.queue].ring_timeout,
        ring_started_at=now - leg.duration,
        ring_start_source="resync",
        leg_channel=leg.channel,
        state=OfferState.CLOSED,
    )
    offers.ring(r, offer, call, agent)
    answered_at = leg.answered_at if leg.answered_at is not None else now
    offers.on_answer(r, offer, answered_at, "resync", now, effects)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "", "(null)") else default
    except ValueError:
        return default
