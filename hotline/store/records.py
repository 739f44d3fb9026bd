"""From the engine's facts to rows: the :class:`Recorder` sink and the idempotent writes.

Theory of operation
-------------------
The engine calls :class:`Recorder` with every fact, on its own task; the
recorder turns the facts that matter to storage into small JSON-able records
and hands them to the outbox (``put`` never blocks):

=============== ==============================================================
fact            records
=============== ==============================================================
CallArrived     ``arrival``: customer found or created by number, ticket
                created if new (consultation, open, queue, customer) or its
                last call time moved, a ``ticket_events`` row, the call row
                (in progress)
OfferEnded      ``offer``: one ``call_offers`` row, with ring seconds and
                rings = ring seconds ÷ ring cadence
CallAnswered    ``answer`` (the call row gets answer time, agent, source) and
                ``recording`` (``<monitor_dir>/<ticket>-<offer id>.wav`` for
                the answered offer, whose id is the agent leg's Uniqueid)
CallEnded       ``end``: the call row completed (every field, state completed)
WrapUpEnded     ``wrap_up``: the call row gets the answering agent's wrap-up
                seconds and end time (engine clock), for the handle time
CallbackAttempt ``callback_attempt``: the attempt recorded, and the retry rules
Ended           applied (next due time, done or failed), keyed by its number
AgentPresence   ``agent``: the ``agent_states`` row replaced (unless it holds a
Changed         newer change) and an ``agent_state_log`` row appended
=============== ==============================================================

:func:`apply_records` writes a batch on one connection, inside the outbox's
transaction. Every write is keyed by a natural key and is a no-op when
repeated: ``calls.call_id``, ``call_offers.offer_id``, ``tickets.number``,
``customer_phones.phone``, ``recordings.path``, and ``ticket_events.dedup_key``
(``call:<call_id>``) for the history row, ``agent_state_log.dedup_key`` (a random
id the record carries) for an agent's change. So a batch replayed after a crash, or
after a commit whose acknowledgement was lost, changes nothing.

Order: the outbox delivers records in the order they were put, and within a
batch they are written by kind in dependency order (``arrival``, ``end``,
``offer``, ``answer``, ``recording``, ``wrap_up``). ``end`` carries everything a
call row needs and creates the customer and ticket too, so a call converges to
the same row whichever of its records arrive, and in whatever order; ``answer``
only fills what is still empty. An ``end`` for a row that exists (a call a
previous process saw arrive or answered, recorded again from the journal) keeps
the row's arrival and answer, the larger offer count, and computes the wait from
the row's own times. ``wrap_up`` updates the row by ``call_id``: the
wrap-up starts when the talk ends, so the call's ``arrival`` (put when the
caller started waiting) is always written before it; repeating it writes the
same values.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from hotline.domain.effects import (
    AgentPresenceChanged,
    CallAnswered,
    CallArrived,
    CallbackAttemptEnded,
    CallEnded,
    Fact,
    OfferEnded,
    WrapUpEnded,
)
from hotline.domain.model import OfferResult
from hotline.store.callbacks import Callbacks
from hotline.store.db import Conn, InvalidChange, NotFound
from hotline.store.recordings import recording_path
from hotline.store.rules import RetryPolicy

__all__ = ["Record", "Recorder", "apply_records"]

log = structlog.get_logger("hotline.store.records")

Record = dict[str, Any]
"""One write, JSON-able: ``{"k": kind, ...fields}``."""

_CUSTOMER: Final = r"""
customer as (
    select case when $NUMBER::text ~ '^\+?[0-9]{3,}$'
                then hotline_customer_for_phone($NUMBER::text) end as id
), ticket as (
    insert into tickets as t (number, customer_id, priority, queue, opened_at, last_call_at)
    select $TICKET::text, customer.id, $PRIORITY::int, $QUEUE::text,
           to_timestamp($ARRIVED::float8), to_timestamp($ARRIVED::float8)
    from customer
    on conflict (number) do update
        set last_call_at = greatest(t.last_call_at, excluded.last_call_at)
    returning t.id, (t.xmax = 0) as created
), history as (
    insert into ticket_events (ticket_id, at, actor, kind, detail, dedup_key)
    select ticket.id, to_timestamp($ARRIVED::float8), 'system',
           case when ticket.created then 'created' else 'call_attached' end,
           jsonb_build_object('call_id', $CALL::text, 'queue', $QUEUE::text),
           'call:' || $CALL::text
    from ticket
    on conflict (dedup_key) do nothing
)
"""


def _with_customer_and_ticket(**placeholders: str) -> str:
    text = _CUSTOMER
    for name, placeholder in placeholders.items():
        text = text.replace(f"${name}", placeholder)
    return "with " + text.strip()


_ARRIVAL_SQL: Final = (
    _with_customer_and_ticket(
        CALL="$1", TICKET="$2", NUMBER="$3", QUEUE="$4", PRIORITY="$5", ARRIVED="$6"
    )
    + """
insert into calls (call_id, ticket_id, customer_id, caller_number, queue, original_queue,
                   priority, arrived_at, arrival_source)
select $1, ticket.id, customer.id, $3, $4, $4, $5, to_timestamp($6), $7 from ticket, customer
on conflict (call_id) do nothing
"""
)

_END_SQL: Final = (
    _with_customer_and_ticket(
        CALL="$1", TICKET="$4", NUMBER="$5", QUEUE="$7", PRIORITY="$8", ARRIVED="$9"
    )
    + """
insert into calls as c (call_id, channel, linkedid, ticket_id, customer_id, caller_number, queue,
                   original_queue, priority, state, arrived_at, arrival_source, answered_at,
                   answered_by, talk_ended_at, ended_at, end_source, outcome, offers, wait_seconds)
select $1, $2, $3, ticket.id, customer.id, $5, $6, $7, $8, 'completed', to_timestamp($9), $10,
       to_timestamp($11::float8), $12, to_timestamp($13::float8), to_timestamp($14), $15, $16, $17,
       $18
from ticket, customer
on conflict (call_id) do update set
    channel = excluded.channel,
    linkedid = excluded.linkedid,
    queue = excluded.queue,
    original_queue = excluded.original_queue,
    state = 'completed',
    answered_at = coalesce(c.answered_at, excluded.answered_at),
    answered_by = coalesce(c.answered_by, excluded.answered_by),
    talk_ended_at = excluded.talk_ended_at,
    ended_at = excluded.ended_at,
    end_source = excluded.end_source,
    outcome = excluded.outcome,
    offers = greatest(c.offers, excluded.offers),
    wait_seconds = greatest(0, extract(epoch from
        coalesce(c.answered_at, excluded.answered_at, excluded.ended_at) - c.arrived_at))::float8
"""
)

_OFFER_SQL: Final = """
insert into call_offers (offer_id, call_id, agent_id, queue, requested_at, ring_started_at,
                         ring_start_source, ended_at, end_source, result, ring_seconds, rings)
values ($1, $2, $3, $4, to_timestamp($5), to_timestamp($6), $7, to_timestamp($8), $9, $10, $11,
        $12)
on conflict (offer_id) do nothing
"""

_ANSWER_SQL: Final = """
update calls set
    answered_at = coalesce(answered_at, to_timestamp($3)),
    answered_by = coalesce(answered_by, $2),
    answer_source = coalesce(answer_source, $4),
    wait_seconds = coalesce(wait_seconds, $5)
where call_id = $1
"""

_WRAP_UP_SQL: Final = """
update calls set wrap_up_seconds = $2, wrap_up_ended_at = to_timestamp($3)
where call_id = $1
"""

_RECORDING_SQL: Final = """
insert into recordings (path, ticket_id, call_id, offer_id, agent_id, started_at)
values ($1, (select id from tickets where number = $2), $3, $4, $5, to_timestamp($6))
on conflict (path) do nothing
"""


_AGENT_SQL: Final = """
with log as (
    insert into agent_state_log (agent_id, event, reason, at, dedup_key)
    values ($1, $2, $3, to_timestamp($4), $9)
    on conflict (dedup_key) do nothing
)
insert into agent_states as s (agent_id, logged_in, logged_in_since, pause_reason, paused_since,
                               changed_at)
values ($1, $5, to_timestamp($6::float8), $7, to_timestamp($8::float8), to_timestamp($4))
on conflict (agent_id) do update set
    logged_in = excluded.logged_in,
    logged_in_since = excluded.logged_in_since,
    pause_reason = excluded.pause_reason,
    paused_since = excluded.paused_since,
    changed_at = excluded.changed_at
where s.changed_at <= excluded.changed_at
"""


def _arrival_args(r: Record) -> tuple[Any, ...]:
    return (r["call_id"], r["ticket"], r["number"], r["queue"], r["priority"], r["at"], r["source"])


def _end_args(r: Record) -> tuple[Any, ...]:
    return (
        r["call_id"],
        r["channel"],
        r["linkedid"],
        r["ticket"],
        r["number"],
        r["queue"],
        r["original_queue"],
        r["priority"],
        r["arrived_at"],
        r["arrival_source"],
        r["answered_at"],
        r["answered_by"],
        r["talk_ended_at"],
        r["ended_at"],
        r["end_source"],
        r["outcome"],
        r["offers"],
        r["wait_seconds"],
    )


def _offer_args(r: Record) -> tuple[Any, ...]:
    return (
        r["offer_id"],
        r["call_id"],
        r["agent_id"],
        r["queue"],
        r["requested_at"],
        r["ring_started_at"],
        r["ring_start_source"],
        r["ended_at"],
        r["end_source"],
        r["result"],
        r["ring_seconds"],
        r["rings"],
    )


def _answer_args(r: Record) -> tuple[Any, ...]:
    return (r["call_id"], r["agent_id"], r["answered_at"], r["source"], r["wait_seconds"])


def _recording_args(r: Record) -> tuple[Any, ...]:
    return (r["path"], r["ticket"], r["call_id"], r["offer_id"], r["agent_id"], r["started_at"])


def _wrap_up_args(r: Record) -> tuple[Any, ...]:
    return (r["call_id"], r["seconds"], r["ended_at"])


def _agent_args(r: Record) -> tuple[Any, ...]:
    return (
        r["agent_id"],
        r["change"],
        r["reason"],
        r["at"],
        r["logged_in"],
        r["logged_in_since"],
        r["pause_reason"],
        r["paused_since"],
        r["id"],
    )


_WRITES: Final[dict[str, tuple[str, Callable[[Record], tuple[Any, ...]]]]] = {
    "arrival": (_ARRIVAL_SQL, _arrival_args),
    "end": (_END_SQL, _end_args),
    "offer": (_OFFER_SQL, _offer_args),
    "answer": (_ANSWER_SQL, _answer_args),
    "recording": (_RECORDING_SQL, _recording_args),
    "wrap_up": (_WRAP_UP_SQL, _wrap_up_args),
    "agent": (_AGENT_SQL, _agent_args),
}


async def apply_records(
    conn: Conn, records: Sequence[Record], *, policy: RetryPolicy | None = None
) -> None:
    """Write ``records`` on ``conn`` (the caller holds the transaction); idempotent.

    ``policy`` is the callback retry policy applied to callback attempts.
    """
    by_kind: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    attempts: list[Record] = []
    for record in records:
        kind = record.get("k")
        if kind == "callback_attempt":
            attempts.append(record)
            continue
        if kind not in _WRITES:
            raise ValueError(f"unknown record kind {kind!r}")
        by_kind[kind].append(_WRITES[kind][1](record))
    for kind, (sql, _) in _WRITES.items():
        rows = by_kind.get(kind)
        if rows:
            await conn.executemany(sql, rows)
    callbacks = Callbacks(conn, policy=policy)
    for record in attempts:
        try:
            await callbacks.record_attempt(
                int(record["callback_id"]),
                attempt=int(record["attempt"]),
                result=str(record["result"]),
                at=datetime.fromtimestamp(float(record["at"]), UTC),
                agent_id=str(record["agent_id"]),
                note=f"leg {record['leg_id']}",
            )
        except (NotFound, InvalidChange) as exc:
            log.warning("store.callback_attempt_skipped", error=str(exc))


class Recorder:
    """A fact sink (``FactSink``): facts in, records out to ``put``; see the module docstring.

    Runs on the engine task; it keeps only the answered offer of each live call.
    """

    def __init__(
        self, put: Callable[[Record], None], *, ring_cadence: float, monitor_dir: str
    ) -> None:
        """Records go to ``put`` (the outbox's); ``ring_cadence`` is seconds per ring."""
        self._put = put
        self.ring_cadence = ring_cadence
        self.monitor_dir = monitor_dir
        self._answered_offer: dict[str, str] = {}
        self.unmatched_answers = 0

    def __call__(self, fact: Fact) -> None:
        """Record one fact (the ones storage does not need are ignored)."""
        if isinstance(fact, CallArrived):
            self._arrived(fact)
        elif isinstance(fact, OfferEnded):
            self._offer_ended(fact)
        elif isinstance(fact, CallAnswered):
            self._answered(fact)
        elif isinstance(fact, CallEnded):
            self._ended(fact)
        elif isinstance(fact, WrapUpEnded):
            self._put(
                {
                    "k": "wrap_up",
                    "call_id": fact.call_id,
                    "agent_id": fact.agent_id,
                    "seconds": fact.seconds,
                    "ended_at": fact.ended_at,
                }
            )
        elif isinstance(fact, AgentPresenceChanged):
            self._agent_changed(fact)
        elif isinstance(fact, CallbackAttemptEnded):
            self._put(
                {
                    "k": "callback_attempt",
                    "callback_id": fact.callback_id,
                    "attempt": fact.attempt,
                    "result": fact.result,
                    "at": fact.at,
                    "agent_id": fact.agent_id,
                    "leg_id": fact.leg_id,
                }
            )

    def _agent_changed(self, fact: AgentPresenceChanged) -> None:
        presence = fact.presence
        self._put(
            {
                "k": "agent",
                "id": uuid.uuid4().hex,
                "agent_id": presence.agent_id,
                "change": fact.change,
                "reason": fact.reason,
                "at": fact.at,
                "logged_in": presence.logged_in,
                "logged_in_since": presence.logged_in_since,
                "pause_reason": presence.pause_reason,
                "paused_since": presence.paused_since,
            }
        )

    def _arrived(self, fact: CallArrived) -> None:
        self._put(
            {
                "k": "arrival",
                "call_id": fact.call_id,
                "ticket": fact.ticket,
                "number": fact.number,
                "queue": fact.queue,
                "priority": fact.priority,
                "at": fact.at,
                "source": fact.source,
            }
        )

    def _offer_ended(self, fact: OfferEnded) -> None:
        if fact.result is OfferResult.ANSWERED:
            self._answered_offer[fact.call_id] = fact.offer_id
        ring_seconds = fact.ring_seconds
        self._put(
            {
                "k": "offer",
                "offer_id": fact.offer_id,
                "call_id": fact.call_id,
                "agent_id": fact.agent_id,
                "queue": fact.queue,
                "requested_at": fact.requested_at,
                "ring_started_at": fact.ring_started_at,
                "ring_start_source": fact.ring_start_source,
                "ended_at": fact.ended_at,
                "end_source": fact.end_source,
                "result": fact.result.value,
                "ring_seconds": ring_seconds,
                "rings": ring_seconds / self.ring_cadence,
            }
        )

    def _answered(self, fact: CallAnswered) -> None:
        self._put(
            {
                "k": "answer",
                "call_id": fact.call_id,
                "agent_id": fact.agent_id,
                "answered_at": fact.answered_at,
                "source": fact.source,
                "wait_seconds": fact.wait_seconds,
            }
        )
        offer_id = self._answered_offer.pop(fact.call_id, None)
        if offer_id is None:
            self.unmatched_answers += 1
            return
        self._put(
            {
                "k": "recording",
                "path": recording_path(self.monitor_dir, fact.ticket, offer_id),
                "ticket": fact.ticket,
                "call_id": fact.call_id,
                "offer_id": offer_id,
                "agent_id": fact.agent_id,
                "started_at": fact.answered_at,
            }
        )

    def _ended(self, fact: CallEnded) -> None:
        self._answered_offer.pop(fact.call_id, None)
        self._put(
            {
                "k": "end",
                "call_id": fact.call_id,
                "channel": fact.channel,
                "linkedid": fact.linkedid,
                "ticket": fact.ticket,
                "number": fact.number,
                "queue": fact.queue,
                "original_queue": fact.original_queue or fact.queue,
                "priority": fact.priority,
                "arrived_at": fact.arrived_at,
                "arrival_source": fact.arrival_source,
                "answered_at": fact.answered_at,
                "answered_by": fact.answered_by,
                "talk_ended_at": fact.talk_ended_at,
                "ended_at": fact.ended_at,
                "end_source": fact.end_source,
                "outcome": fact.outcome.value,
                "offers": fact.offers,
                "wait_seconds": fact.wait_seconds,
            }
        )
