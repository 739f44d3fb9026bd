"""Facts to records (the Recorder) and records to rows (idempotent, order-independent)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    Fact,
    OfferEnded,
    OfferStarted,
)
from hotline.domain.model import AgentState, OfferResult, Outcome
from hotline.store.calls import Calls
from hotline.store.customers import Customers
from hotline.store.db import Pool, transaction
from hotline.store.recordings import Recordings
from hotline.store.records import Record, Recorder, apply_records
from hotline.store.tickets import Tickets

pytestmark = pytest.mark.integration

T0 = 1_772_442_000.0  # 2026-03-02 09:00 UTC
TICKET = "T20260302-A0001"


def answered_after_a_rona(
    call_id: str = "1772442000.42", number: str = "13900139000"
) -> list[Fact]:
    first, second = f"hl-{TICKET}-1", f"hl-{TICKET}-2"
    return [
        CallArrived(call_id, TICKET, number, "support", 5, T0, "pbx"),
        OfferStarted(first, call_id, "1001", "support", TICKET, T0 + 0.1),
        OfferEnded(
            first, call_id, "1001", "support", TICKET, T0 + 0.1, T0 + 0.3, "pbx", T0 + 15.3,
            "pbx", OfferResult.NO_ANSWER,
        ),
        AgentStateChanged("1001", AgentState.PAUSED, AgentState.RINGING, "no answer", T0 + 15.3),
        OfferStarted(second, call_id, "1002", "support", TICKET, T0 + 15.4),
        OfferEnded(
            second, call_id, "1002", "support", TICKET, T0 + 15.4, T0 + 15.5, "written",
            T0 + 22.0, "pbx", OfferResult.ANSWERED,
        ),
        CallAnswered(call_id, "1002", "support", TICKET, T0, T0 + 22.0, "pbx"),
        CallEnded(
            call_id=call_id, channel="PJSIP/trunk-0000002a", linkedid=call_id, ticket=TICKET,
            number=number, queue="support", original_queue="support", priority=5, arrived_at=T0,
            arrival_source="pbx", answered_at=T0 + 22.0, answered_by="1002",
            talk_ended_at=T0 + 140.0, ended_at=T0 + 140.0, end_source="pbx",
            outcome=Outcome.ANSWERED, offers=2,
        ),
    ]  # fmt: skip


def record(facts: Sequence[Fact]) -> tuple[list[Record], Recorder]:
    records: list[Record] = []
    recorder = Recorder(records.append, ring_cadence=5.0, monitor_dir="/var/spool/asterisk/monitor")
    for fact in facts:
        recorder(fact)
    return records, recorder


def test_the_recorder_turns_facts_into_records() -> None:
    records, recorder = record(answered_after_a_rona())

    assert [r["k"] for r in records] == ["arrival", "offer", "offer", "answer", "recording", "end"]
    rona, answered = records[1], records[2]
    assert rona["result"] == "no_answer"
    assert rona["ring_seconds"] == pytest.approx(15.0)
    assert rona["rings"] == pytest.approx(3.0)
    assert answered["rings"] == pytest.approx(6.5 / 5.0)
    assert answered["ring_start_source"] == "written"
    assert records[4]["path"] == f"/var/spool/asterisk/monitor/{TICKET}-hl-{TICKET}-2.wav"
    assert records[4]["offer_id"] == f"hl-{TICKET}-2"
    assert records[5]["outcome"] == "answered"
    assert records[5]["wait_seconds"] == pytest.approx(22.0)
    assert recorder.unmatched_answers == 0


def test_an_answer_without_an_answered_offer_records_no_recording() -> None:
    facts = answered_after_a_rona()
    records, recorder = record([f for f in facts if not isinstance(f, OfferEnded)])
    assert [r["k"] for r in records] == ["arrival", "answer", "end"]
    assert recorder.unmatched_answers == 1


async def snapshot(pool: Pool) -> dict[str, list[Any]]:
    queries = {
        "customers": "select id, name from customers order by id",
        "phones": "select phone, customer_id from customer_phones order by phone",
        "tickets": "select number, customer_id, category, status, queue, priority, opened_at, "
        "last_call_at, updated_at from tickets order by number",
        "events": "select ticket_id, kind, detail, dedup_key from ticket_events order by id",
        "calls": "select * from calls order by call_id",
        "offers": "select * from call_offers order by offer_id",
        "recordings": "select * from recordings order by path",
    }
    return {name: [tuple(r) for r in await pool.fetch(sql)] for name, sql in queries.items()}


async def write(pool: Pool, records: list[Record]) -> None:
    async with transaction(pool) as conn:
        await apply_records(conn, records)


async def test_records_become_rows(pg_pool: Pool) -> None:
    records, _ = record(answered_after_a_rona())
    await write(pool=pg_pool, records=records)

    customer = await Customers(pg_pool).find_by_phone("13900139000")
    assert customer is not None
    ticket = await Tickets(pg_pool).get(TICKET)
    assert (ticket.customer_id, ticket.category, ticket.status, ticket.queue, ticket.priority) == (
        customer.id,
        "consultation",
        "open",
        "support",
        5,
    )
    assert ticket.opened_at.timestamp() == T0
    call = await Calls(pg_pool).get("1772442000.42")
    assert (call.ticket_number, call.customer_id, call.state, call.outcome) == (
        TICKET,
        customer.id,
        "completed",
        "answered",
    )
    assert (call.answered_by, call.answer_source, call.offers) == ("1002", "pbx", 2)
    assert call.answered_at is not None
    assert call.answered_at.timestamp() == T0 + 22.0
    assert call.wait_seconds == pytest.approx(22.0)
    offers = await Calls(pg_pool).offers(call.call_id)
    assert [(o.agent_id, o.result) for o in offers] == [("1001", "no_answer"), ("1002", "answered")]
    assert [o.rings for o in offers] == pytest.approx([3.0, 1.3])
    (recording,) = await Recordings(pg_pool).for_ticket(TICKET)
    assert recording.path.endswith(f"{TICKET}-hl-{TICKET}-2.wav")
    assert (recording.call_id, recording.agent_id) == (call.call_id, "1002")
    events = await Tickets(pg_pool).events(TICKET)
    assert [(e.kind, e.detail) for e in events] == [
        ("created", {"call_id": call.call_id, "queue": "support"})
    ]


async def test_writing_again_changes_nothing(pg_pool: Pool) -> None:
    records, _ = record(answered_after_a_rona())
    await write(pg_pool, records)
    before = await snapshot(pg_pool)

    await write(pg_pool, records)
    for one in records:
        await write(pg_pool, [one])

    assert await snapshot(pg_pool) == before


async def test_any_order_within_a_batch_gives_the_same_rows(pg_pool: Pool) -> None:
    records, _ = record(answered_after_a_rona())
    await write(pg_pool, records)
    expected = await snapshot(pg_pool)
    for table in ("recordings", "call_offers", "calls", "ticket_events", "tickets"):
        await pg_pool.execute(f"alter table {table} disable trigger user")
        await pg_pool.execute(f"delete from {table}")  # noqa: S608 (a table name from the list)
        await pg_pool.execute(f"alter table {table} enable trigger user")
    await pg_pool.execute("delete from customer_phones; delete from customers")

    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    await write(pg_pool, shuffled)

    def without_ids(snap: dict[str, list[Any]]) -> dict[str, list[Any]]:
        keep = dict(snap)
        keep["customers"] = [row[1:] for row in snap["customers"]]
        keep["phones"] = [row[:1] for row in snap["phones"]]
        keep["tickets"] = [row[:1] + row[2:-1] for row in snap["tickets"]]
        keep["events"] = [row[1:] for row in snap["events"]]
        keep["calls"] = [row[1:4] + row[6:] for row in snap["calls"]]
        keep["offers"] = [row[1:] for row in snap["offers"]]
        keep["recordings"] = [row[1:2] + row[3:] for row in snap["recordings"]]
        return keep

    assert without_ids(await snapshot(pg_pool)) == without_ids(expected)


async def test_an_end_without_its_arrival_still_lands_on_the_ticket(pg_pool: Pool) -> None:
    records, _ = record(answered_after_a_rona())
    end = records[-1]
    await write(pg_pool, [end])
    await write(pg_pool, [records[0]])  # the arrival, late (a replay): changes nothing

    call = await Calls(pg_pool).get(end["call_id"])
    assert (call.state, call.ticket_number, call.outcome) == ("completed", TICKET, "answered")
    assert call.arrived_at.timestamp() == T0
    assert len(await Tickets(pg_pool).events(TICKET)) == 1


async def test_a_repeat_caller_is_attached_to_the_same_ticket(pg_pool: Pool) -> None:
    first, _ = record(answered_after_a_rona("1772442000.42"))
    later = [CallArrived("1772445600.77", TICKET, "13900139000", "repairs", 1, T0 + 3600, "pbx")]
    second, _ = record(later)
    await write(pg_pool, first + second)

    calls = await Calls(pg_pool).for_ticket(TICKET)
    assert [(c.call_id, c.state) for c in calls] == [
        ("1772442000.42", "completed"),
        ("1772445600.77", "in_progress"),
    ]
    ticket = await Tickets(pg_pool).get(TICKET)
    assert ticket.last_call_at is not None
    assert ticket.last_call_at.timestamp() == T0 + 3600
    assert [e.kind for e in await Tickets(pg_pool).events(TICKET)] == ["created", "call_attached"]
    assert await pg_pool.fetchval("select count(*) from customers") == 1


async def test_anonymous_callers_get_no_customer_file(pg_pool: Pool) -> None:
    records, _ = record(answered_after_a_rona(number="anonymous"))
    await write(pg_pool, records)
    call = await Calls(pg_pool).get(records[0]["call_id"])
    assert (call.customer_id, call.caller_number) == (None, "anonymous")
    assert await pg_pool.fetchval("select count(*) from customers") == 0
