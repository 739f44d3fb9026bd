"""Resync: reconcile the model with the PBX's live channels after a (re)connect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    Effect,
)
from hotline.domain.events import (
    ChannelInfo,
    DeviceStatus,
    JournalEntry,
    PbxSnapshot,
)
from hotline.domain.model import (
    Activity,
    Call,
    CallState,
    Offer,
)
from hotline.domain.offerstate import OfferEvent
from hotline.domain.routing import adoption, agents, calls, dispatch, journal, offers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router


def resync(r: Router, snapshot: PbxSnapshot, now: float) -> list[Effect]:
    """Reconcile the model with what the PBX has live after a (re)connect.

    Legs and calls that vanished during the outage are closed (at the
    journal's hang-up time where it has one; a caller gone without an answer
    we saw counts as abandoned). An open offer's leg that is bridged was
    answered. One of our legs we do not track that still rings for a caller
    (a previous process' offer) is adopted; a bridged one is attached to its
    caller; other legs in the bridge context are hung up if they still ring.
    Callers whose HotlineCallWaiting we missed are queued with the journal's
    arrival time, else the one their channel's age gives. A device with no
    channel in the snapshot is idle.
    """
    effects: list[Effect] = []
    live = {channel.uniqueid: channel for channel in snapshot.channels}
    entries = {entry.uniqueid: entry for entry in snapshot.journal}
    for agent in r.agents.values():
        # The snapshot counts every live channel's device as in use, so a device
        # it does not mention has no channel.
        agent.device_state = snapshot.device_states.get(agent.config.device, DeviceStatus.IDLE)
    _close_vanished_callers(r, live, entries, now, effects)
    for offer in list(r.offers.values()):
        if offer.open:
            resync_offer(r, offer, live, now, effects)
    _end_vanished_talks(r, live, now, effects)
    adoption.adopt_callers(r, snapshot, now, effects)
    adoption.adopt_legs(r, snapshot, now, effects)
    for entry in snapshot.journal:
        if entry.ended_at is not None:
            journal.account_journal(r, entry, now, effects)
    for agent in r.agents.values():
        agents.refresh(r, agent, now, effects)
    r._dirty = True
    dispatch.dispatch(r, now, effects)
    return effects


def _close_vanished_callers(
    r: Router,
    live: dict[str, ChannelInfo],
    entries: dict[str, JournalEntry],
    now: float,
    effects: list[Effect],
) -> None:
    """Callers whose channel is gone: their call ends (at the journal's time if it has one)."""
    for call in list(r.calls.values()):
        if call.state is not CallState.ENDED and not call.is_callback and call.call_id not in live:
            entry = entries.get(call.call_id)
            if entry is not None and entry.ended_at is not None:
                calls.on_caller_gone(r, call, entry.ended_at, "journal", now, effects)
            else:
                calls.on_caller_gone(r, call, now, "resync", now, effects)


def _end_vanished_talks(
    r: Router, live: dict[str, ChannelInfo], now: float, effects: list[Effect]
) -> None:
    """Agents on a call whose leg is gone: the talk ended, wrap-up starts."""
    for agent in r.agents.values():
        if agent.activity is Activity.ON_CALL and (
            agent.offer_id is None or agent.offer_id not in live
        ):
            talking = call_of_offer(r, agent.offer_id)
            if talking is not None and talking.talk_ended_at is None:
                talking.talk_ended_at = now
            if talking is not None and talking.is_callback and agent.offer_id is not None:
                leg = r.offers[agent.offer_id]
                calls.finish_callback(talking, leg, "failed", now, "resync", effects)
            agents.start_wrap_up(r, agent, talking, now, effects)


def call_of_offer(r: Router, offer_id: str | None) -> Call | None:
    offer = r.offers.get(offer_id) if offer_id is not None else None
    return r.calls.get(offer.call_id) if offer is not None else None


def resync_offer(
    r: Router, offer: Offer, live: dict[str, ChannelInfo], now: float, effects: list[Effect]
) -> None:
    leg = live.get(offer.offer_id)
    if leg is None:
        offer.advance(OfferEvent.RESPONSE)
        if offer.result is None:
            offers.write_off(r, offer, now, "resync", now, effects)
        offers.close_offer(r, offer, now, effects)
        return
    offer.leg_channel = leg.channel
    if leg.bridge_id and offer.result is None:
        offers.on_answer(r, offer, now, "resync", now, effects)
