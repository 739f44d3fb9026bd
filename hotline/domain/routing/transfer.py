"""Difficult calls go up: an agent sends their caller to another queue.

The caller is taken out of the agent's bridge by a ``Redirect`` back into the
inbound context (extension ``transfer``, which skips the IVR and the journal
entry the caller already has), after a ``Setvar`` of ``HOTLINE_QUEUE`` to the
target queue, as ``redirect_and_hangup.jsonl`` shows (``Setvar`` then
``Redirect``). The dialplan then announces the caller again
(``HotlineCallWaiting`` with the same Uniqueid); the router already knows the
call, so that announcement changes nothing: the call was re-queued here, at the
transfer, with the same ticket, so the next agent's leg carries the same
``HOTLINE_TICKET``. The first agent goes to wrap-up; their leg hangs up when the
bridge ends, which no longer concerns the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import CallRequeued, Effect, RedirectChannel, SetChannelVariable
from hotline.domain.model import Activity, Call, CallState
from hotline.domain.routing import agents, dispatch
from hotline.domain.routing.agents import UnknownAgent

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

__all__ = ["TRANSFER_EXTEN", "NotOnCall", "UnknownQueue", "talking_to", "transfer"]

TRANSFER_EXTEN = "transfer"
"""The inbound context's extension for a transferred caller: it announces them again
without the IVR, keeping their journal entry (``asterisk/extensions.conf``)."""


class NotOnCall(ValueError):
    """The agent is not talking to an inbound caller: there is nobody to transfer."""


class UnknownQueue(ValueError):
    """The transfer's target queue is not configured."""


def talking_to(r: Router, agent_id: str) -> Call | None:
    """The inbound call ``agent_id`` is connected to right now, else ``None``."""
    agent = r.agents.get(agent_id)
    if agent is None or agent.activity is not Activity.ON_CALL or agent.offer_id is None:
        return None
    offer = r.offers.get(agent.offer_id)
    call = r.calls.get(offer.call_id) if offer is not None else None
    if call is None or call.is_callback or call.state is not CallState.CONNECTED:
        return None
    if call.answered_by != agent_id:
        return None
    return call


def transfer(r: Router, agent_id: str, queue: str, now: float) -> list[Effect]:
    """Re-queue the agent's caller in ``queue`` and redirect them into the inbound context."""
    if agent_id not in r.agents:
        raise UnknownAgent(agent_id)
    if queue not in r.queues:
        raise UnknownQueue(queue)
    call = talking_to(r, agent_id)
    if call is None:
        raise NotOnCall(agent_id)
    effects: list[Effect] = [
        SetChannelVariable(call.channel, "HOTLINE_QUEUE", queue),
        RedirectChannel(call.channel, r.routing.inbound_context, TRANSFER_EXTEN, "1"),
    ]
    agents.start_wrap_up(r, r.agents[agent_id], call, now, effects)
    call.queue = queue
    call.skills = frozenset(r.queues[queue].skills)
    call.assigned_agent = None
    call.preferred_agent = None
    call.talk_ended_at = None
    call.queue_entered_at = now
    dispatch.enqueue(r, call)
    dispatch.schedule_max_wait(r, call, now)
    effects.append(CallRequeued(call.call_id, queue, "transfer", now))
    dispatch.dispatch(r, now, effects)
    return effects
