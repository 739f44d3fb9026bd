"""The recorded calls as Asterisk's ``queue_log``, for the reporting tools supervisors
already have (QueueMetrics, Asternic, FreePBX read app_queue's log).

One line an event, ``time|callid|queue|agent|EVENT|data1|data2|data3``, in time
order, the fields as app_queue writes them (``tests/traces/queue_log.txt``, real
Asterisk 22 lines):

============== ============================================= ===========================
event          data                                          when
============== ============================================= ===========================
ENTERQUEUE     ``|<caller number>|<position>``               the caller starts waiting
RINGNOANSWER   ``<ring ms>``                                 a ring missed (no answer,
                                                             busy or unavailable)
RINGCANCELED   ``<ring ms>``                                 the caller left while it rang
CONNECT        ``<hold s>|<agent leg uniqueid>|<ring s>``    the agent answered
COMPLETEAGENT  ``<hold s>|<talk s>|<position>``              the answered call ended
ABANDON        ``<position>|<position>|<wait s>``            the caller left unanswered
EXITWITHTIMEOUT ``<position>|<position>|<wait s>``           overflowed after max_wait
============== ============================================= ===========================

``time`` is whole epoch seconds, ``callid`` the caller channel's Uniqueid, the
queue the one the caller asked for (``original_queue``, as the report counts
it), and the agent the configured name (``name``, which defaults to the id). What
no column records is written as app_queue would for a plain queue: the position
is 1, and every answered call ends with COMPLETEAGENT (who hung up first is not
recorded). Calls still in progress have only their ENTERQUEUE (and rings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = ["QueueLogCall", "QueueLogOffer", "call_lines", "stream_queue_log"]

_MISSED: Final = frozenset({"no_answer", "busy", "unavailable"})


@dataclass(frozen=True, slots=True)
class QueueLogOffer:
    """One ring of a call: the leg, the agent, how it ended, when, for how long."""

    offer_id: str
    agent: str
    result: str
    ended_at: datetime
    ring_seconds: float


@dataclass(frozen=True, slots=True)
class QueueLogCall:
    """One recorded call and its rings."""

    call_id: str
    queue: str
    number: str
    arrived_at: datetime
    outcome: str | None
    wait_seconds: float | None
    answered_at: datetime | None
    talk_seconds: float | None
    ended_at: datetime | None
    offers: list[QueueLogOffer]


def _line(at: datetime, call_id: str, queue: str, agent: str, event: str, *data: object) -> str:
    return "|".join([str(int(at.timestamp())), call_id, queue, agent, event, *map(str, data)])


def _offer_lines(
    call: QueueLogCall, offer: QueueLogOffer, wait: int
) -> list[tuple[datetime, str, tuple[object, ...]]]:
    """The lines of one ring of ``call``: its end, and if it was answered the talk."""
    ring_ms = round(offer.ring_seconds * 1000)
    if offer.result in _MISSED:
        return [(offer.ended_at, "RINGNOANSWER", (ring_ms,))]
    if offer.result == "cancelled":
        return [(offer.ended_at, "RINGCANCELED", (ring_ms,))]
    if offer.result != "answered" or call.answered_at is None:
        return []
    found: list[tuple[datetime, str, tuple[object, ...]]] = [
        (call.answered_at, "CONNECT", (wait, offer.offer_id, round(offer.ring_seconds)))
    ]
    if call.outcome == "answered" and call.ended_at is not None:
        talk = round(call.talk_seconds or 0.0)
        found.append((call.ended_at, "COMPLETEAGENT", (wait, talk, 1)))
    return found


_ENDS: Final = {
    "abandoned_waiting": "ABANDON",
    "abandoned_ringing": "ABANDON",
    "overflowed": "EXITWITHTIMEOUT",
}


def call_lines(call: QueueLogCall, names: Mapping[str, str]) -> list[tuple[float, str]]:
    """The lines of one call, each with its exact time (to sort calls together)."""
    found: list[tuple[float, str]] = []

    def put(at: datetime, agent: str, event: str, *data: object) -> None:
        found.append((at.timestamp(), _line(at, call.call_id, call.queue, agent, event, *data)))

    put(call.arrived_at, "NONE", "ENTERQUEUE", "", call.number, 1)
    wait = round(call.wait_seconds or 0.0)
    for offer in call.offers:
        agent = names.get(offer.agent, offer.agent)
        for at, event, data in _offer_lines(call, offer, wait):
            put(at, agent, event, *data)
    end = _ENDS.get(call.outcome or "")
    if call.ended_at is not None and end is not None:
        put(call.ended_at, "NONE", end, 1, 1, wait)
    return found


_CALLS_SQL: Final = """
select c.call_id, c.original_queue, c.caller_number, c.arrived_at, c.outcome, c.wait_seconds,
       c.answered_at, c.ended_at,
       case when c.answered_at is not null then greatest(
           extract(epoch from coalesce(c.talk_ended_at, c.ended_at) - c.answered_at)::float8, 0)
       end as talk_seconds,
       coalesce((select array_agg(array[o.offer_id, o.agent_id, o.result,
                                        extract(epoch from o.ended_at)::text,
                                        o.ring_seconds::text] order by o.ended_at, o.id)
                 from call_offers o where o.call_id = c.call_id), '{}') as offers
from calls c
where c.arrived_at >= ($1::date::timestamp at time zone $3)
  and c.arrived_at < (($2::date + 1)::timestamp at time zone $3)
order by c.arrived_at, c.id
"""


def _call(row: Any) -> QueueLogCall:
    offers = [
        QueueLogOffer(
            offer_id=o[0],
            agent=o[1],
            result=o[2],
            ended_at=datetime.fromtimestamp(float(o[3]), row["arrived_at"].tzinfo),
            ring_seconds=float(o[4]),
        )
        for o in row["offers"]
    ]
    return QueueLogCall(
        call_id=row["call_id"],
        queue=row["original_queue"],
        number=row["caller_number"],
        arrived_at=row["arrived_at"],
        outcome=row["outcome"],
        wait_seconds=row["wait_seconds"],
        answered_at=row["answered_at"],
        talk_seconds=row["talk_seconds"],
        ended_at=row["ended_at"],
        offers=offers,
    )


async def stream_queue_log(
    conn: Any, first: Any, last: Any, time_zone: str, names: Mapping[str, str]
) -> AsyncIterator[Iterable[str]]:
    """Batches of lines of the calls that arrived from ``first`` to ``last`` (dates in
    ``time_zone``, both included), in time order within each call and across calls
    (up to calls that overlap a batch boundary: a call's lines stay together)."""
    batch: list[tuple[float, str]] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_CALLS_SQL, first, last, time_zone, prefetch=2000):
            batch += call_lines(_call(row), names)
            if len(batch) >= 20000:
                yield [line for _, line in sorted(batch, key=lambda item: item[0])]
                batch = []
    if batch:
        yield [line for _, line in sorted(batch, key=lambda item: item[0])]
