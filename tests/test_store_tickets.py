"""Tickets, their history, repairs and callbacks against a real PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hotline.store.callbacks import Callbacks
from hotline.store.customers import Customers
from hotline.store.db import InvalidChange, NotFound, Pool
from hotline.store.rules import RetryPolicy
from hotline.store.tickets import Ticket, TicketFilter, Tickets

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_create_and_read(pg_pool: Pool) -> None:
    customer = await Customers(pg_pool).find_or_create("13900139000")
    tickets = Tickets(pg_pool)
    created = await tickets.create(
        "T20260302-A0001",
        actor="alice",
        customer_id=customer.id,
        subject="Noise at night",
        queue="support",
        opened_at=T0,
    )

    assert await tickets.get("T20260302-A0001") == created
    assert (created.category, created.status, created.opened_at) == ("consultation", "open", T0)
    assert created.is_open
    assert created.due_at is None
    assert [(e.actor, e.kind) for e in await tickets.events(created.number)] == [
        ("alice", "created")
    ]
    with pytest.raises(InvalidChange, match="already exists"):
        await tickets.create("T20260302-A0001", actor="alice")
    with pytest.raises(NotFound):
        await tickets.get("T19990101-A0001")


async def test_a_complaint_gets_its_committed_reply_time(pg_pool: Pool) -> None:
    tickets = Tickets(pg_pool, complaint_reply_hours=24)
    complaint = await tickets.create("T-1", actor="a", category="complaint", opened_at=T0)
    assert complaint.due_at == T0 + timedelta(hours=24)

    consultation = await tickets.create("T-2", actor="a", opened_at=T0)
    became = await tickets.update("T-2", {"category": "complaint"}, actor="bob")
    assert consultation.due_at is None
    assert became.due_at == T0 + timedelta(hours=24)
    changes = [(e.field, e.new_value) for e in await tickets.events("T-2") if e.field]
    assert changes == [("category", "complaint"), ("due_at", became.due_at.isoformat())]


async def test_every_change_is_one_history_row(pg_pool: Pool) -> None:
    seen: list[Ticket] = []
    tickets = Tickets(pg_pool, listener=seen.append)
    await tickets.create("T-1", actor="alice", subject="Lift stuck")

    await tickets.update(
        "T-1",
        {"subject": "Lift stuck on floor 9", "priority": 2, "status": "in_progress"},
        actor="bob",
    )
    await tickets.update("T-1", {"subject": "Lift stuck on floor 9"}, actor="carol")  # no change
    closed = await tickets.update(
        "T-1", {"status": "closed", "resolution": "fixed", "satisfaction": 5}, actor="bob"
    )

    assert closed.closed_at is not None
    assert not closed.is_open
    events = [(e.actor, e.field, e.old_value, e.new_value) for e in await tickets.events("T-1")]
    assert events[0] == ("alice", None, None, None)
    assert ("bob", "subject", "Lift stuck", "Lift stuck on floor 9") in events
    assert ("bob", "priority", 0, 2) in events
    assert ("bob", "status", "open", "in_progress") in events
    assert ("bob", "status", "in_progress", "closed") in events
    assert ("bob", "satisfaction", None, 5) in events
    assert not any(actor == "carol" for actor, *_ in events)
    assert len(events) == 1 + 3 + 4  # created; subject, priority, status; status, closed_at, ...
    assert [t.status for t in seen] == ["open", "in_progress", "in_progress", "closed"]

    reopened = await tickets.update("T-1", {"status": "open"}, actor="bob")
    assert reopened.closed_at is None


async def test_bad_changes_are_refused(pg_pool: Pool) -> None:
    tickets = Tickets(pg_pool)
    await tickets.create("T-1", actor="a")
    for changes, message in (
        ({"satisfaction": 6}, "satisfaction must be 1 to 5"),
        ({"satisfaction": 0}, "satisfaction must be 1 to 5"),
        ({"category": "gossip"}, "category must be one of"),
        ({"status": "dispatched"}, "dispatched with dispatch"),
        ({"number": "T-9"}, "'number' cannot be changed"),
        ({"customer_id": 999}, "T-1"),
    ):
        with pytest.raises(InvalidChange, match=message):
            await tickets.update("T-1", changes, actor="a")
    assert len(await tickets.events("T-1")) == 1


async def test_the_schema_refuses_what_the_rules_refuse(pg_pool: Pool) -> None:
    await Tickets(pg_pool).create("T-1", actor="a")
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute("update tickets set satisfaction = 6")
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute("update tickets set status = 'closed'")  # without closed_at
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute("update tickets set dispatched_at = now()")  # without a party


async def test_ticket_history_is_append_only(pg_pool: Pool) -> None:
    await Tickets(pg_pool).create("T-1", actor="a")
    for statement in (
        "update ticket_events set actor = 'mallory'",
        "delete from ticket_events",
        "truncate ticket_events",
    ):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await pg_pool.execute(statement)
    assert await pg_pool.fetchval("select count(*) from ticket_events") == 1


async def test_find_filters_and_pages(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    wang = await customers.find_or_create("13900139000")
    li = await customers.find_or_create("13600000000")
    tickets = Tickets(pg_pool)
    for index in range(12):
        await tickets.create(
            f"T-{index:02d}",
            actor="a",
            customer_id=wang.id if index % 2 else li.id,
            queue="repairs" if index % 3 == 0 else "support",
            category="repair" if index % 3 == 0 else "consultation",
            subject=f"subject {index}",
            opened_at=T0 + timedelta(hours=index),
        )
    await tickets.update("T-01", {"status": "closed"}, actor="a")

    newest = await tickets.find(limit=5)
    assert [t.number for t in newest] == ["T-11", "T-10", "T-09", "T-08", "T-07"]
    page3 = await tickets.find(limit=5, offset=10)
    assert [t.number for t in page3] == ["T-01", "T-00"]

    open_of_wang = TicketFilter(customer_id=wang.id, open_only=True)
    assert [t.number for t in await tickets.find(open_of_wang)] == [
        "T-11",
        "T-09",
        "T-07",
        "T-05",
        "T-03",
    ]
    assert await tickets.count(open_of_wang) == 5
    assert await tickets.count(TicketFilter(queues=["repairs"])) == 4
    assert await tickets.count(TicketFilter(category="repair", queues=["support"])) == 0
    assert await tickets.count(TicketFilter(statuses=["closed"])) == 1
    assert await tickets.count(TicketFilter(text="subject 1")) == 3  # 1, 10, 11
    window = TicketFilter(opened_from=T0 + timedelta(hours=2), opened_until=T0 + timedelta(hours=4))
    assert [t.number for t in await tickets.find(window)] == ["T-03", "T-02"]


async def test_overdue_tickets(pg_pool: Pool) -> None:
    tickets = Tickets(pg_pool, complaint_reply_hours=24)
    await tickets.create("T-late", actor="a", category="complaint", opened_at=T0, queue="q1")
    await tickets.create(
        "T-later", actor="a", category="complaint", opened_at=T0 + timedelta(hours=1)
    )
    await tickets.create("T-replied", actor="a", category="complaint", opened_at=T0)
    await tickets.create("T-closed", actor="a", category="complaint", opened_at=T0)
    await tickets.create("T-plain", actor="a", opened_at=T0)
    await tickets.update("T-replied", {"replied_at": T0 + timedelta(hours=2)}, actor="a")
    await tickets.update("T-closed", {"status": "closed"}, actor="a")

    assert await tickets.overdue(T0 + timedelta(hours=24)) == []
    now = T0 + timedelta(hours=26)
    overdue = await tickets.overdue(now)
    assert [t.number for t in overdue] == ["T-late", "T-later"]
    assert all(t.overdue(now) for t in overdue)
    assert await tickets.overdue_count(now) == 2
    assert await tickets.overdue_count(now, queues=["q1"]) == 1
    assert not (await tickets.get("T-replied")).overdue(now)


async def test_repair_dispatch_and_timeliness(pg_pool: Pool) -> None:
    tickets = Tickets(pg_pool)
    for number in ("T-r1", "T-r2", "T-r3"):
        await tickets.create(number, actor="a", category="repair", opened_at=T0)
    await tickets.create("T-c", actor="a", opened_at=T0)
    due = T0 + timedelta(hours=48)

    dispatched = await tickets.dispatch(
        "T-r1", party="in_house", due_at=due, actor="sup", contact="Team B", at=T0
    )
    assert (dispatched.status, dispatched.dispatch_party) == ("dispatched", "in_house")
    again = await tickets.dispatch(
        "T-r1", party="developer_warranty", due_at=due, actor="sup", at=T0
    )
    assert again.dispatch_party == "developer_warranty"
    await tickets.dispatch("T-r2", party="equipment_vendor", due_at=due, actor="sup", at=T0)
    await tickets.dispatch("T-r3", party="tenant_contractor", due_at=None, actor="sup", at=T0)

    on_time = await tickets.complete_repair("T-r1", completed_at=due, actor="sup", resolution="ok")
    late = await tickets.complete_repair("T-r2", completed_at=due + timedelta(hours=1), actor="sup")
    no_due = await tickets.complete_repair("T-r3", completed_at=due, actor="sup")
    assert (on_time.completed_on_time, on_time.status, on_time.resolution) == (
        True,
        "resolved",
        "ok",
    )
    assert late.completed_on_time is False
    assert no_due.completed_on_time is None

    figures = await tickets.repair_timeliness(T0, T0 + timedelta(days=7))
    assert (figures.completed, figures.on_time, figures.late, figures.rate) == (3, 1, 1, 0.5)
    assert (await tickets.repair_timeliness(T0, T0 + timedelta(hours=1))).rate is None

    with pytest.raises(InvalidChange, match="not a repair"):
        await tickets.dispatch("T-c", party="in_house", due_at=due, actor="sup")
    with pytest.raises(InvalidChange, match="party must be one of"):
        await tickets.dispatch("T-r1", party="neighbour", due_at=due, actor="sup")
    with pytest.raises(InvalidChange, match="already completed"):
        await tickets.dispatch("T-r1", party="in_house", due_at=due, actor="sup")
    with pytest.raises(InvalidChange, match="already completed"):
        await tickets.complete_repair("T-r1", completed_at=due, actor="sup")
    await tickets.create("T-r4", actor="a", category="repair", opened_at=T0)
    with pytest.raises(InvalidChange, match="never dispatched"):
        await tickets.complete_repair("T-r4", completed_at=due, actor="sup")
    await tickets.dispatch("T-r4", party="in_house", due_at=due, actor="sup", at=T0)
    with pytest.raises(InvalidChange, match="before it was dispatched"):
        await tickets.complete_repair("T-r4", completed_at=T0 - timedelta(hours=1), actor="sup")
    kinds = [e.kind for e in await tickets.events("T-r1")]
    assert "dispatched" in kinds
    assert "repair_completed" in kinds


async def test_states_for_the_call_to_ticket_view(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    household = await customers.create(phones=["13900139000", "02155550000"], name="W")
    tickets = Tickets(pg_pool)
    await tickets.create("T-open", actor="a", customer_id=household.id, opened_at=T0)
    await tickets.create("T-done", actor="a", customer_id=household.id, opened_at=T0)
    await tickets.update("T-done", {"status": "resolved"}, actor="a")
    mark = await pg_pool.fetchval("select now()")

    states = await tickets.states()
    assert [(s.number, s.status, set(s.phones)) for s in states] == [
        ("T-open", "open", {"13900139000", "02155550000"})
    ]
    assert states[0].opened_at == T0.timestamp() == states[0].last_activity

    assert await tickets.states(changed_since=mark) == []
    await tickets.update("T-open", {"status": "closed"}, actor="a")
    changed = await tickets.states(changed_since=mark)
    assert [(s.number, s.status) for s in changed] == [("T-open", "closed")]


async def test_callbacks_are_retried_then_given_up(pg_pool: Pool) -> None:
    await Tickets(pg_pool).create("T-1", actor="a", opened_at=T0)
    callbacks = Callbacks(pg_pool, policy=RetryPolicy(max_attempts=3, delays=(600.0,)))
    scheduled = await callbacks.schedule(
        "T-1", phone="13900139000", due_at=T0, actor="alice", assigned_to="1001"
    )
    assert (scheduled.status, scheduled.attempts, scheduled.max_attempts) == ("scheduled", 0, 3)
    assert await callbacks.due(T0 - timedelta(seconds=1)) == []
    assert [c.id for c in await callbacks.due(T0)] == [scheduled.id]
    assert await callbacks.due(T0, assigned_to="1002") == []

    first = await callbacks.record_attempt(scheduled.id, result="no_answer", at=T0, agent_id="1001")
    assert (first.status, first.attempts, first.due_at) == (
        "scheduled",
        1,
        T0 + timedelta(seconds=600),
    )
    assert await callbacks.due(T0 + timedelta(seconds=599)) == []
    assert await callbacks.next_due() == first
    second = await callbacks.record_attempt(first.id, result="busy", at=first.due_at)
    assert second.due_at == first.due_at + timedelta(seconds=300)
    third = await callbacks.record_attempt(
        first.id, result="no_answer", at=second.due_at, outcome="never reachable"
    )
    assert (third.status, third.attempts, third.outcome) == ("failed", 3, "never reachable")
    assert await callbacks.next_due() is None
    with pytest.raises(InvalidChange, match="is failed"):
        await callbacks.record_attempt(first.id, result="answered", at=T0)

    attempts = await callbacks.attempts(first.id)
    assert [(a.attempt, a.result) for a in attempts] == [
        (1, "no_answer"),
        (2, "busy"),
        (3, "no_answer"),
    ]
    kinds = [e.kind for e in await Tickets(pg_pool).events("T-1")]
    assert kinds == ["created", "callback_scheduled"] + ["callback_attempt"] * 3


async def test_a_callback_that_reaches_the_customer_is_done(pg_pool: Pool) -> None:
    await Tickets(pg_pool).create("T-1", actor="a", opened_at=T0)
    callbacks = Callbacks(pg_pool)
    one = await callbacks.schedule("T-1", phone="13900139000", due_at=T0, actor="a")
    two = await callbacks.schedule("T-1", phone="13900139000", due_at=T0, actor="a")

    done = await callbacks.record_attempt(one.id, result="answered", at=T0, outcome="visit booked")
    cancelled = await callbacks.cancel(two.id, actor="a", reason="duplicate")

    assert (done.status, done.outcome) == ("done", "visit booked")
    assert (cancelled.status, cancelled.outcome) == ("cancelled", "duplicate")
    assert [c.status for c in await callbacks.for_ticket("T-1")] == ["done", "cancelled"]
    with pytest.raises(InvalidChange, match="is cancelled"):
        await callbacks.cancel(two.id, actor="a")
    with pytest.raises(InvalidChange, match="result must be one of"):
        await callbacks.record_attempt(one.id, result="voicemail", at=T0)
    with pytest.raises(NotFound):
        await callbacks.schedule("T-404", phone="1", due_at=T0, actor="a")
