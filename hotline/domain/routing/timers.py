"""Timers: wrap-up, cool-down, maximum wait and the Originate's guard.

Each kind of timer is its own frozen dataclass naming what it is for (an agent, a
call in a queue, an offer); :func:`schedule` puts one on the router's heap. A
deadline is never cancelled: when it comes due, :func:`deadline_valid` checks that
the state it was set for still holds (the agent is still wrapping up until that
time, the call still waits in that queue, the offer is still open), else it is
dropped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never

from hotline.domain.effects import Effect, RoutingWarning, WrapUpEnded
from hotline.domain.model import Activity, CallState
from hotline.domain.offerstate import OfferEvent
from hotline.domain.routing import agents, dispatch, offers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

__all__ = [
    "CooldownEnds",
    "Deadline",
    "MaxWaitReached",
    "OriginateGuard",
    "WrapUpEnds",
    "deadline_valid",
    "fire",
    "schedule",
]

_GUARD_EXTENSIONS = 6


@dataclass(frozen=True, slots=True)
class WrapUpEnds:
    """The agent's wrap-up after a call ends at ``at``."""

    at: float
    agent_id: str


@dataclass(frozen=True, slots=True)
class CooldownEnds:
    """The agent, unavailable after a busy or unavailable ring, may be rung again at ``at``."""

    at: float
    agent_id: str


@dataclass(frozen=True, slots=True)
class MaxWaitReached:
    """The call has waited ``max_wait`` in ``queue``: it overflows."""

    at: float
    call_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class OriginateGuard:
    """The offer's OriginateResponse is overdue: write it off (or wait a little longer)."""

    at: float
    offer_id: str


Deadline = WrapUpEnds | CooldownEnds | MaxWaitReached | OriginateGuard
"""Every kind of timer the router sets."""


def schedule(r: Router, deadline: Deadline) -> None:
    """Put a deadline on the router's heap."""
    heapq.heappush(r._deadlines, (deadline.at, next(r._deadline_seq), deadline))


def deadline_valid(r: Router, deadline: Deadline) -> bool:
    """Does the state this deadline was set for still hold?"""
    match deadline:
        case WrapUpEnds(at, agent_id):
            agent = r.agents[agent_id]
            return agent.activity is Activity.WRAP_UP and agent.wrap_up_until == at
        case CooldownEnds(at, agent_id):
            return r.agents[agent_id].unavailable_until == at
        case MaxWaitReached(_, call_id, queue):
            call = r.calls.get(call_id)
            return (
                call is not None
                and call.queue == queue
                and call.state in (CallState.WAITING, CallState.RINGING)
            )
        case OriginateGuard(_, offer_id):
            offer = r.offers.get(offer_id)
            return offer is not None and offer.open
        case _:
            assert_never(deadline)


def fire(r: Router, deadline: Deadline, now: float, effects: list[Effect]) -> None:
    """Act on a valid deadline that came due."""
    match deadline:
        case WrapUpEnds(_, agent_id):
            _end_wrap_up(r, agent_id, now, effects)
        case CooldownEnds(_, agent_id):
            agent = r.agents[agent_id]
            agent.unavailable_until = None
            agents.refresh(r, agent, now, effects)
        case MaxWaitReached(_, call_id, _):
            call = r.calls[call_id]
            if call.state is CallState.RINGING:
                call.overflow_due = True
            else:
                dispatch.overflow(r, call, now, effects)
        case OriginateGuard(_, offer_id):
            _guard_expired(r, offer_id, now, effects)
        case _:
            assert_never(deadline)


def _end_wrap_up(r: Router, agent_id: str, now: float, effects: list[Effect]) -> None:
    agent = r.agents[agent_id]
    agent.activity = Activity.IDLE
    agent.wrap_up_until = None
    agent.idle_since = now
    if agent.wrap_up_call is not None and not agent.wrap_up_call[0].startswith("callback-"):
        call_id, queue = agent.wrap_up_call
        effects.append(WrapUpEnded(agent.id, call_id, queue, agent.wrap_up_started, now))
    agent.wrap_up_call = None
    agents.refresh(r, agent, now, effects)


def _guard_expired(r: Router, offer_id: str, now: float, effects: list[Effect]) -> None:
    offer = r.offers[offer_id]
    if (
        offer.leg_channel is not None
        and not offer.leg_hung_up
        and offer.guard_extensions < _GUARD_EXTENSIONS
    ):
        # The PBX made the leg and it is still up: its OriginateResponse is late,
        # not lost. Writing it off now could let it answer and bridge a caller
        # who has meanwhile been offered to someone else.
        offer.guard_extensions += 1
        schedule(r, OriginateGuard(now + r.routing.originate_grace, offer.offer_id))
        return
    offer.advance(OfferEvent.RESPONSE)
    if offer.result is None:
        effects.append(
            RoutingWarning(
                "originate_timeout",
                f"no OriginateResponse for {offer.offer_id} within the ring timeout",
                offer.call_id,
            )
        )
        offers.write_off(r, offer, now, "recv", now, effects)
    offers.close_offer(r, offer, now, effects)
