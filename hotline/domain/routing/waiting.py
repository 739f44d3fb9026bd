"""A supervisor's hand on the waiting line: raise a caller's priority, move them to
another queue.

Both act on Hotline's own queue (the router owns waiting callers; the caller
waits in ``hotline-inbound`` with music on hold, not in an Asterisk queue), so
neither needs the PBX to move anyone. Each also writes the new value to the
caller's channel (``Setvar`` of ``HOTLINE_PRIORITY`` or ``HOTLINE_QUEUE``, as
``redirect_and_hangup.jsonl`` shows ``Setvar``), so a restarted process that
adopts the caller from the channel's variables (:mod:`~.adoption`) queues them as
the supervisor left them.

The order rule is the router's own (effective priority, then arrival): a raised
caller is re-inserted at their new priority, keeping their arrival time.

A moved caller keeps their original arrival time, so they take their place in
the new queue by how long they have waited, and their wait (and the service
level's "answered within") is counted from when they first arrived, as a call
centre counts a caller's wait across a move. A move re-classifies the caller (a
supervisor's "this caller belongs there", unlike an overflow, which is the first
queue failing them): the new queue becomes the queue they asked for
(``original_queue``), so the service level is counted on the queue that answers
them, alike on the wallboard, in the metrics and in the reports (which count per
``original_queue``); the audit row keeps the queue they came from. Their
``queue_entered_at`` is kept too, so the wallboard shows their whole wait (and
the long-wait alert counts it); but the new queue's maximum wait counts from
the move, so a caller who waited long is not overflowed out of it at once. The
call's required skills become the new queue's (plus any beyond the old queue's,
as an overflow keeps them), and an agent assignment is dropped (it belonged to
the old queue's handling).

Only a caller who is waiting can be changed: one ringing an agent or talking is
refused (:class:`NotWaiting`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import CallRequeued, Effect, SetChannelVariable
from hotline.domain.model import Call, CallState
from hotline.domain.routing import dispatch
from hotline.domain.routing.transfer import UnknownQueue

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

__all__ = ["PRIORITY_LIMIT", "NotWaiting", "move_caller", "set_priority"]

PRIORITY_LIMIT = 1000
"""A caller's priority stays within ``-PRIORITY_LIMIT..PRIORITY_LIMIT`` (the range the
PBX's ``HotlinePriority`` is clamped to)."""


class NotWaiting(ValueError):
    """The call is not an inbound caller waiting in a queue (unknown, ringing, talking
    or ended)."""


def _waiting(r: Router, call_id: str) -> Call:
    call = r.calls.get(call_id)
    if call is None or call.is_callback or call.state is not CallState.WAITING:
        raise NotWaiting(call_id)
    return call


def set_priority(r: Router, call_id: str, priority: int, now: float) -> list[Effect]:
    """Give a waiting caller a new priority; they are re-ordered by the routing rules."""
    if not -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT:
        raise ValueError(f"priority must be within ±{PRIORITY_LIMIT}")
    call = _waiting(r, call_id)
    effects: list[Effect] = [SetChannelVariable(call.channel, "HOTLINE_PRIORITY", str(priority))]
    if priority != call.priority:
        dispatch.dequeue(r, call)
        call.priority = priority
        dispatch.enqueue(r, call)
        effects.append(CallRequeued(call.call_id, call.queue, "priority", now))
    dispatch.dispatch(r, now, effects)
    return effects


def move_caller(r: Router, call_id: str, queue: str, now: float) -> list[Effect]:
    """Move a waiting caller to ``queue``, keeping their arrival time (see the module
    docstring)."""
    if queue not in r.queues:
        raise UnknownQueue(queue)
    call = _waiting(r, call_id)
    effects: list[Effect] = [SetChannelVariable(call.channel, "HOTLINE_QUEUE", queue)]
    if queue == call.queue:
        return effects
    dispatch.dequeue(r, call)
    old = r.queues[call.queue]
    call.skills = frozenset(r.queues[queue].skills) | (call.skills - frozenset(old.skills))
    call.queue = queue
    call.original_queue = queue
    call.assigned_agent = None
    call.overflow_due = False
    dispatch.enqueue(r, call)
    dispatch.schedule_max_wait(r, call, now)
    effects.append(CallRequeued(call.call_id, queue, "moved", now))
    dispatch.dispatch(r, now, effects)
    return effects
