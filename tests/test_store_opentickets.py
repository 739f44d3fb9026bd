"""The in-memory call-to-ticket view: attach rules, warm-up, reconciliation. No database."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.store.opentickets import OpenTickets
from hotline.store.tickets import Ticket, TicketState
from hotline.ticketno import MemorySequenceStore, TicketNumbers

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0


def view(rule: str = "open", attach_days: float = 7.0) -> OpenTickets:
    numbers = TicketNumbers("A", ZoneInfo("UTC"), MemorySequenceStore())
    return OpenTickets(numbers.allocate, rule=rule, attach_days=attach_days)


def state(
    number: str,
    customer_id: int | None,
    phones: tuple[str, ...],
    *,
    status: str = "open",
    at: float = NOW - DAY,
) -> TicketState:
    return TicketState(number, customer_id, status, at, at, phones)


def ticket(number: str, customer_id: int | None, status: str) -> Ticket:
    moment = datetime.fromtimestamp(NOW, UTC)
    return Ticket(
        id=1,
        number=number,
        customer_id=customer_id,
        category="consultation",
        status=status,
        priority=0,
        queue=None,
        subject="",
        description="",
        assigned_to=None,
        opened_at=moment,
        last_call_at=None,
        due_at=None,
        replied_at=None,
        closed_at=moment if status == "closed" else None,
        dispatch_party=None,
        dispatch_contact=None,
        dispatched_at=None,
        dispatch_due_at=None,
        completed_at=None,
        completed_on_time=None,
        resolution=None,
        satisfaction=None,
        created_at=moment,
        updated_at=moment,
    )


def test_a_new_caller_gets_a_ticket_and_keeps_it() -> None:
    tickets = view()
    first = tickets.ticket_for("13900139000", NOW)
    again = tickets.ticket_for("13900139000", NOW + 3600)
    other = tickets.ticket_for("13600000000", NOW + 3600)

    assert first == "T20260302-A0001"
    assert again == first
    assert other == "T20260302-A0002"
    assert (tickets.opened, tickets.attached, len(tickets)) == (2, 1, 2)
    found = tickets.lookup("13900139000")
    assert found is not None
    assert found.last_activity == NOW + 3600


def test_rule_never_opens_a_ticket_per_call() -> None:
    tickets = view("never")
    numbers = {tickets.ticket_for("13900139000", NOW + i) for i in range(3)}
    assert len(numbers) == 3
    assert len(tickets) == 0


def test_rule_recent_attaches_within_the_window_only() -> None:
    tickets = view("recent", attach_days=2)
    first = tickets.ticket_for("13900139000", NOW)
    assert tickets.ticket_for("13900139000", NOW + 2 * DAY) == first
    # The window runs from the last call, not from the opening.
    assert tickets.ticket_for("13900139000", NOW + 4 * DAY) == first
    later = tickets.ticket_for("13900139000", NOW + 6.5 * DAY)
    assert later != first
    assert len(tickets) == 1

    assert tickets.prune(NOW + 8 * DAY) == 0
    assert tickets.prune(NOW + 9 * DAY) == 1
    assert len(tickets) == 0
    assert view().prune(NOW + 1000 * DAY) == 0


@pytest.mark.parametrize("number", ["", "anonymous", "<unknown>", "12", "+86 139"])
def test_callers_without_a_number_get_a_ticket_each_time(number: str) -> None:
    tickets = view()
    assert tickets.ticket_for(number, NOW) != tickets.ticket_for(number, NOW)
    assert len(tickets) == 0


def test_warm_up_finds_the_household_ticket_from_any_of_its_numbers() -> None:
    tickets = view()
    tickets.load(
        [
            state("T20260301-A0007", 5, ("13900139000", "02155550000")),
            state("T20260301-A0008", 6, ("13600000000",)),
            state("T20260301-A0009", 7, ("13700000000",), status="resolved"),
        ]
    )

    assert tickets.ticket_for("02155550000", NOW) == "T20260301-A0007"
    assert tickets.ticket_for("13900139000", NOW) == "T20260301-A0007"
    assert tickets.ticket_for("13600000000", NOW) == "T20260301-A0008"
    assert tickets.ticket_for("13700000000", NOW) == "T20260302-A0001"


def test_closed_tickets_leave_the_view() -> None:
    tickets = view()
    first = tickets.ticket_for("13900139000", NOW)
    tickets.apply(state(first, 5, ("13900139000",), status="closed"))

    assert tickets.lookup("13900139000") is None
    assert len(tickets) == 0
    assert tickets.ticket_for("13900139000", NOW + 60) != first


def test_the_repository_listener_removes_closed_and_moved_tickets() -> None:
    tickets = view()
    tickets.load([state("T-5", 5, ("13900139000",)), state("T-6", 6, ("13600000000",))])

    tickets.observe(ticket("T-5", 5, "in_progress"))
    assert tickets.ticket_for("13900139000", NOW) == "T-5"
    tickets.observe(ticket("T-5", 5, "closed"))
    assert tickets.lookup("13900139000") is None
    tickets.observe(ticket("T-6", 9, "open"))
    assert tickets.lookup("13600000000") is None
    tickets.observe(ticket("T-unknown", 1, "closed"))
    assert len(tickets) == 0


def test_a_new_caller_becomes_the_known_customer() -> None:
    tickets = view()
    first = tickets.ticket_for("13900139000", NOW)
    # The outbox created customer 5 for the number; an agent added the landline.
    tickets.apply(state(first, 5, ("13900139000", "02155550000"), at=NOW))

    assert tickets.ticket_for("02155550000", NOW + 60) == first
    assert len(tickets) == 1
    tickets.apply(state(first, 5, ("13900139000", "02155550000"), status="resolved"))
    assert tickets.lookup("02155550000") is None
    assert tickets.lookup("13900139000") is None


def test_the_most_recent_activity_wins() -> None:
    tickets = view()
    local = tickets.ticket_for("13900139000", NOW)
    tickets.apply(state(local, 5, ("13900139000",), at=NOW))
    # The database still knows an older open ticket of the same customer.
    tickets.apply(state("T-old", 5, ("13900139000",), at=NOW - 3 * DAY))
    assert tickets.ticket_for("13900139000", NOW + 60) == local
    # A newer one (opened on another instance) replaces it.
    tickets.apply(state("T-newer", 5, ("13900139000",), at=NOW + 120))
    assert tickets.ticket_for("13900139000", NOW + 180) == "T-newer"
    assert len(tickets) == 1


def test_a_number_moved_to_another_customer() -> None:
    tickets = view()
    tickets.load([state("T-5", 5, ("13900139000",)), state("T-6", 6, ("13600000000",))])
    tickets.apply(state("T-6", 6, ("13600000000", "13900139000")))

    assert tickets.ticket_for("13900139000", NOW) == "T-6"
    assert len(tickets) == 1  # customer 5 has no number left in the view


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown attach rule"):
        view("sometimes")
