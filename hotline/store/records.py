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
the row's own times; an ``end`` recorded from the journal (``end_source``
``journal``: a reconstruction after a crash) never overwrites a completed row.
Every call and offer record also carries the writer's site (``pbx_id``, ``[service]
pbx_id``); a row keeps the site that first wrote it, and the trigger of migration
``0008_sites.sql`` refuses another site's writes to it (two PBXs with one Uniqueid).
``wrap_up`` updates the row by ``call_id``: the
wrap-up starts when the talk ends, so the call's ``arrival`` (put when the
caller started waiting) is always written before it; repeating it writes the
same values.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
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
from hotline.domain.sla import rings
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
                   priority, arrived_at, arrival_source, epoch, pbx_id)
select $1, ticket.id, customer.id, $3, $4, $4, $5, to_timestamp($6), $7, $8, $9
from ticket, customer
on conflict (call_id) do nothing
"""
)


@dataclass(frozen=True, slots=True)
class _Field:
    """One field of a record: its key (also the fact's attribute), the table column it
    fills (``""``: none, only the ticket/customer CTE reads it) and its SQL expression."""

    key: str
    column: str | None = None  # None: the column is named like the key
    sql: str = "{}"  # the placeholder, e.g. wrapped in to_timestamp()


def _placeholders(fields: Sequence[_Field]) -> dict[str, str]:
    """``$1``, ``$2``, ... by field key, in the list's order."""
    return {field.key: f"${index}" for index, field in enumerate(fields, 1)}


def _columns(fields: Sequence[_Field]) -> str:
    return ", ".join(f.key if f.column is None else f.column for f in fields if f.column != "")


def _values(fields: Sequence[_Field]) -> str:
    placeholders = _placeholders(fields)
    return ", ".join(f.sql.format(placeholders[f.key]) for f in fields if f.column != "")


def _args_of(fields: Sequence[_Field]) -> Callable[[Record], tuple[Any, ...]]:
    """A record's values in the list's order (the ``$n`` arguments)."""
    keys = [field.key for field in fields]
    get = itemgetter(*keys)
    return lambda record: tuple(get(record))


def _record_of(kind: str, fact: object, fields: Sequence[_Field], **computed: Any) -> Record:
    """A fact as a record: every field read from the fact, except the ``computed`` ones."""
    record: Record = {"k": kind}
    for field in fields:
        key = field.key
        record[key] = computed[key] if key in computed else getattr(fact, key)
    return record


_END_FIELDS: Final = (
    _Field("call_id"),
    _Field("channel"),
    _Field("linkedid"),
    _Field("ticket", column=""),
    _Field("number", column="caller_number"),
    _Field("queue"),
    _Field("original_queue"),
    _Field("priority"),
    _Field("arrived_at", sql="to_timestamp({})"),
    _Field("arrival_source"),
    _Field("answered_at", sql="to_timestamp({}::float8)"),
    _Field("answered_by"),
    _Field("talk_ended_at", sql="to_timestamp({}::float8)"),
    _Field("ended_at", sql="to_timestamp({})"),
    _Field("end_source"),
    _Field("outcome"),
    _Field("offers"),
    _Field("wait_seconds"),
    _Field("epoch"),
    _Field("pbx_id"),
)
"""A call's end: the record's keys, the ``calls`` row's columns and ``$1..$n``, in one list."""

_END = _placeholders(_END_FIELDS)
_END_SQL: Final = (
    _with_customer_and_ticket(
        CALL=_END["call_id"],
        TICKET=_END["ticket"],
        NUMBER=_END["number"],
        QUEUE=_END["original_queue"],
        PRIORITY=_END["priority"],
        ARRIVED=_END["arrived_at"],
    )
    + f"""
insert into calls as c (ticket_id, customer_id, state, {_columns(_END_FIELDS)})
select ticket.id, customer.id, 'completed', {_values(_END_FIELDS)}
from ticket, customer
on conflict (call_id) do update set
    channel = excluded.channel,
    linkedid = excluded.linkedid,
    queue = excluded.queue,
    original_queue = excluded.original_queue,
    state = 'completed',
    epoch = excluded.epoch,
    pbx_id = excluded.pbx_id,
    answered_at = coalesce(c.answered_at, excluded.answered_at),
    answered_by = coalesce(c.answered_by, excluded.answered_by),
    talk_ended_at = excluded.talk_ended_at,
    ended_at = excluded.ended_at,
    end_source = excluded.end_source,
    outcome = excluded.outcome,
    offers = greatest(c.offers, excluded.offers),
    wait_seconds = greatest(0, extract(epoch from
        coalesce(c.answered_at, excluded.answered_at, excluded.ended_at) - c.arrived_at))::float8
where c.state <> 'completed' or excluded.end_source <> 'journal'
"""  # noqa: S608 (column names and placeholders from _END_FIELDS only)
)

_OFFER_FIELDS: Final = (
    _Field("offer_id"),
    _Field("call_id"),
    _Field("agent_id"),
    _Field("queue"),
    _Field("requested_at", sql="to_timestamp({})"),
    _Field("ring_started_at", sql="to_timestamp({})"),
    _Field("ring_start_source"),
    _Field("ended_at", sql="to_timestamp({})"),
    _Field("end_source"),
    _Field("result"),
    _Field("ring_seconds"),
    _Field("rings"),
    _Field("epoch"),
    _Field("pbx_id"),
)
"""One ring: the record's keys, the ``call_offers`` columns and ``$1..$n``, in one list."""

_OFFER_SQL: Final = f"""
insert into call_offers ({_columns(_OFFER_FIELDS)})
values ({_values(_OFFER_FIELDS)})
on conflict (offer_id) do nothing
"""  # noqa: S608 (column names and placeholders from _OFFER_FIELDS only)

_ANSWER_SQL: Final = """
update calls set
    answered_at = coalesce(answered_at, to_timestamp($3)),
    answered_by = coalesce(answered_by, $2),
    answer_source = coalesce(answer_source, $4),
    wait_seconds = coalesce(wait_seconds, $5),
    epoch = $6,
    pbx_id = $7
where call_id = $1
"""

_WRAP_UP_SQL: Final = """
update calls set wrap_up_seconds = $2, wrap_up_ended_at = to_timestamp($3), epoch = $4,
    pbx_id = $5
where call_id = $1
"""

_RECORDING_SQL: Final = """
insert into recordings (path, ticket_id, call_id, offer_id, agent_id, started_at, epoch)
values ($1, (select id from tickets where number = $2), $3, $4, $5, to_timestamp($6), $7)
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
    return (
        r["call_id"],
        r["ticket"],
        r["number"],
        r["queue"],
        r["priority"],
        r["at"],
        r["source"],
        r["epoch"],
        r["pbx_id"],
    )


def _answer_args(r: Record) -> tuple[Any, ...]:
    return (
        r["call_id"],
        r["agent_id"],
        r["answered_at"],
        r["source"],
        r["wait_seconds"],
        r["epoch"],
        r["pbx_id"],
    )


def _recording_args(r: Record) -> tuple[Any, ...]:
    return (
        r["path"],
        r["ticket"],
        r["call_id"],
        r["offer_id"],
        r["agent_id"],
        r["started_at"],
        r["epoch"],
    )


def _wrap_up_args(r: Record) -> tuple[Any, ...]:
    return (r["call_id"], r["seconds"], r["ended_at"], r["epoch"], r["pbx_id"])


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
    "end": (_END_SQL, _args_of(_END_FIELDS)),
    "offer": (_OFFER_SQL, _args_of(_OFFER_FIELDS)),
    "answer": (_ANSWER_SQL, _answer_args),
    "recording": (_RECORDING_SQL, _recording_args),
    "wrap_up": (_WRAP_UP_SQL, _wrap_up_args),
    "agent": (_AGENT_SQL, _agent_args),
}


_FENCED: Final = frozenset({"arrival", "end", "offer", "answer", "recording", "wrap_up"})
"""The record kinds of one call, which carry the writer's lease epoch (``epoch``)."""

_SITED: Final = frozenset({"arrival", "end", "offer", "answer", "wrap_up"})
"""The record kinds that carry the writer's site (``pbx_id``; ``''``: none, or a record
spilled before sites existed, which keeps the row's site)."""


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
        if kind in _FENCED and "epoch" not in record:  # spilled before epochs existed
            record = {**record, "epoch": 0}
        if kind in _SITED and "pbx_id" not in record:
            record = {**record, "pbx_id": ""}
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
        self,
        put: Callable[[Record], None],
        *,
        ring_cadence: float,
        monitor_dir: str,
        epoch: Callable[[], int] = lambda: 0,
        site: str = "",
    ) -> None:
        """Records go to ``put`` (the outbox's); ``ring_cadence`` is seconds per ring;
        ``epoch`` gives the lease epoch each call record carries (fencing); ``site`` is
        the ``[service] pbx_id`` each call and offer record carries."""
        self._put = put
        self.epoch = epoch
        self.site = site
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
                    "epoch": self.epoch(),
                    "pbx_id": self.site,
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
                "epoch": self.epoch(),
                "pbx_id": self.site,
            }
        )

    def _offer_ended(self, fact: OfferEnded) -> None:
        if fact.result is OfferResult.ANSWERED:
            self._answered_offer[fact.call_id] = fact.offer_id
        self._put(
            _record_of(
                "offer",
                fact,
                _OFFER_FIELDS,
                result=fact.result.value,
                rings=rings(fact.ring_seconds, self.ring_cadence),
                epoch=self.epoch(),
                pbx_id=self.site,
            )
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
                "epoch": self.epoch(),
                "pbx_id": self.site,
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
                "epoch": self.epoch(),
            }
        )

    def _ended(self, fact: CallEnded) -> None:
        self._answered_offer.pop(fact.call_id, None)
        self._put(
            _record_of(
                "end",
                fact,
                _END_FIELDS,
                original_queue=fact.original_queue or fact.queue,
                outcome=fact.outcome.value,
                epoch=self.epoch(),
                pbx_id=self.site,
            )
        )
