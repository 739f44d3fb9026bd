"""Timers: wrap-up, cool-down, maximum wait and the Originate's guard."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hotline.domain.effects import (
    Effect,
    RoutingWarning,
    WrapUpEnded,
)
from hotline.domain.model import (
    Activity,
    CallState,
)
from hotline.domain.routing import agents, dispatch, offers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

_GUARD_EXTENSIONS = 6


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: float
    kind: str
    key: str


def schedule(r: Router, at: float, kind: str, key: str) -> None:
    heapq.heappush(r._deadlines, (at, next(r._deadline_seq), _Deadline(at, kind, key)))


def deadline_valid(r: Router, deadline: _Deadline) -> bool:
    if deadline.kind == "wrap_up":
        agent = r.agents[deadline.key]
        return agent.activity is Activity.WRAP_UP and agent.wrap_up_until == deadline.at
    if deadline.kind == "cooldown":
        return r.agents[deadline.key].unavailable_until == deadline.at
    if deadline.kind == "max_wait":
        call_id, _, queue = deadline.key.partition("|")
        call = r.calls.get(call_id)
        return (
            call is not None
            and call.queue == queue
            and call.state in (CallState.WAITING, CallState.RINGING)
        )
    offer = r.offers.get(deadline.key)
    return offer is not None and offer.open


def fire(r: Router, deadline: _Deadline, now: float, effects: list[Effect]) -> None:
    if deadline.kind == "wrap_up":
        agent = r.agents[deadline.key]
        agent.activity = Activity.IDLE
        agent.wrap_up_until = None
        agent.idle_since = now
        if agent.wrap_up_call is not None and not agent.wrap_up_call[0].startswith("callback-"):
            call_id, queue = agent.wrap_up_call
            effects.append(WrapUpEnded(agent.id, call_id, queue, agent.wrap_up_started, now))
        agent.wrap_up_call = None
        agents.refresh(r, agent, now, effects)
    elif deadline.kind == "cooldown":
        agent = r.agents[deadline.key]
        agent.unavailable_until = None
        agents.refresh(r, agent, now, effects)
    elif deadline.kind == "max_wait":
        call = r.calls[deadline.key.partition("|")[0]]
        if call.state is CallState.RINGING:
            call.overflow_due = True
        else:
            dispatch.overflow(r, call, now, effects)
    else:
        offer = r.offers[deadline.key]
        if (
            offer.leg_channel is not None
            and not offer.leg_hung_up
            and offer.guard_extensions < _GUARD_EXTENSIONS
        ):
            # The PBX made the leg and it is still up: its OriginateResponse is late,
            # not lost. Writing it off now could let it answer and bridge a caller
            # who has meanwhile been offered to someone else.
            offer.guard_extensions += 1
            schedule(r, now + r.routing.originate_grace, "guard", offer.offer_id)
            return
        offer.response_received = True
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
