"""The journal: callers who came and went while we were disconnected, recorded once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    CallAnswered,
    CallArrived,
    DeleteJournalEntry,
    Effect,
)
from hotline.domain.events import (
    JournalEntry,
)
from hotline.domain.model import (
    Call,
    Outcome,
)
from hotline.domain.routing import calls

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router


def account_journal(r: Router, entry: JournalEntry, now: float, effects: list[Effect]) -> None:
    """A caller who came and went while we were disconnected: record them once.

    A caller the journal shows bridged to an agent leg (a previous process
    answered them) is recorded answered by that leg's agent; anyone else
    abandoned while waiting. The times are the dialplan's. An entry for a call
    already recorded is only cleaned up.
    """
    if entry.uniqueid in r.calls or entry.uniqueid in r._recently_ended:
        effects.append(DeleteJournalEntry(entry.uniqueid))
        return
    assert entry.ended_at is not None
    queue = entry.queue if entry.queue in r.queues else r.routing.default_queue
    call = Call(
        call_id=entry.uniqueid,
        channel="",
        linkedid=entry.uniqueid,
        number=entry.number,
        name="",
        queue=queue,
        priority=entry.priority,
        skills=frozenset(),
        lang=None,
        arrived_at=entry.arrived_at,
        arrival_source="journal",
        queue_entered_at=entry.arrived_at,
        ticket=entry.ticket or r.allocate_ticket(entry.number, now),
        seq=next(r._call_seq),
        original_queue=queue,
    )
    effects.append(
        CallArrived(
            call.call_id,
            call.ticket,
            call.number,
            queue,
            call.priority,
            entry.arrived_at,
            "journal",
        )
    )
    if entry.answered_at is None:
        calls.end_call(r, call, Outcome.ABANDONED_WAITING, entry.ended_at, "journal", effects)
        return
    agent = r.agents_by_device.get(entry.agent_device)
    call.answered_at = entry.answered_at
    call.answered_by = agent.id if agent is not None else None
    call.talk_ended_at = entry.ended_at
    if entry.agent_leg:
        call.offers.append(entry.agent_leg)
    if agent is not None:
        effects.append(
            CallAnswered(
                call.call_id,
                agent.id,
                queue,
                call.ticket,
                call.arrived_at,
                entry.answered_at,
                "journal",
            )
        )
    calls.end_call(r, call, Outcome.ANSWERED, entry.ended_at, "journal", effects)
