"""The call-to-ticket view: which open ticket a caller's next call lands on, in memory.

Theory of operation
-------------------
The router asks for a ticket number the moment a caller starts waiting, and
must never wait on PostgreSQL. :class:`OpenTickets` answers from memory, in
O(1): :meth:`OpenTickets.ticket_for` is the router's ticket allocator.

The view holds, per customer, the one open ticket new calls go to, and maps
each phone number of that customer to it ("one household, one file": a call
from any of the household's numbers finds the same ticket). A customer is
known by its database id; a caller the database has not seen yet is known by
``tel:<number>`` until a reconciliation learns the id (the outbox creates the
customer and the ticket a moment later).

``ticket_for(number, now)``:

- the caller's customer has an open ticket and the attach rule allows it
  (``open``: always; ``recent``: its last call was at most ``attach_days`` ago;
  ``never``): that ticket, whose last activity becomes ``now``;
- otherwise a new number from the allocator (``TicketNumbers.allocate``), which
  becomes the customer's open ticket in the view.

Callers without a usable number (anonymous, withheld) get a new ticket each
time and leave no trace in the view.

The view is *warmed* from the database at start (:meth:`load`, every open
ticket with all the phone numbers of its customer) and *reconciled* later
(:meth:`apply`): periodically with the tickets changed since the last pass, and
at once through the tickets repository's listener (:meth:`observe`) when a
ticket is closed or resolved in this process. A ticket that is no longer open
leaves the view together with its customer's phone mappings, so the view is
bounded by the number of open tickets (and, with ``recent``, :meth:`prune`
drops tickets no call can attach to any more).

Conflicts resolve to the most recent activity: when the database says a
customer's open ticket is A while the view has B (opened here since), the one
with the later last activity stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from hotline.store.rules import OPEN_STATUSES, should_attach
from hotline.store.tickets import Ticket, TicketState

__all__ = ["CustomerKey", "OpenTicket", "OpenTickets", "attachable_number"]

CustomerKey = int | str
"""A customer id, or ``tel:<number>`` for a caller not yet in the database."""

_USABLE: Final = re.compile(r"^\+?[0-9]{3,}$")
_DAY: Final = 86_400.0


def attachable_number(number: str) -> bool:
    """Whether a caller number identifies a customer (digits, optionally a leading ``+``)."""
    return _USABLE.match(number) is not None


@dataclass(slots=True)
class OpenTicket:
    """A customer's open ticket in the view (times in epoch seconds)."""

    number: str
    customer: CustomerKey
    opened_at: float
    last_activity: float


class OpenTickets:
    """See the module docstring."""

    def __init__(
        self, allocate: Callable[[float], str], *, rule: str = "open", attach_days: float = 7.0
    ) -> None:
        """``allocate(now)`` gives a new ticket number; ``rule`` is open, recent or never."""
        should_attach(rule, 0.0, 0.0, attach_days)  # rejects an unknown rule
        self._allocate = allocate
        self.rule = rule
        self.attach_days = attach_days
        self._by_phone: dict[str, CustomerKey] = {}
        self._phones: dict[CustomerKey, set[str]] = {}
        self._by_customer: dict[CustomerKey, OpenTicket] = {}
        self._by_ticket: dict[str, CustomerKey] = {}
        self.attached = 0
        self.opened = 0

    def __len__(self) -> int:
        """How many open tickets the view holds."""
        return len(self._by_customer)

    def lookup(self, number: str) -> OpenTicket | None:
        """The open ticket a call from ``number`` would find (whatever the rule)."""
        key = self._by_phone.get(number)
        return self._by_customer.get(key) if key is not None else None

    def ticket_for(self, number: str, now: float) -> str:
        """The router's ticket allocator; see the module docstring. O(1), never blocks."""
        if self.rule == "never" or not attachable_number(number):
            self.opened += 1
            return self._allocate(now)
        key = self._by_phone.get(number)
        if key is None:
            key = f"tel:{number}"
            self._map_phone(number, key)
        current = self._by_customer.get(key)
        if current is not None and should_attach(
            self.rule, current.last_activity, now, self.attach_days
        ):
            current.last_activity = max(current.last_activity, now)
            self.attached += 1
            return current.number
        ticket = OpenTicket(self._allocate(now), key, now, now)
        self._set(ticket)
        self.opened += 1
        return ticket.number

    def load(self, states: Iterable[TicketState]) -> None:
        """Apply many ticket states (the warm-up at start, a reconciliation pass)."""
        for state in states:
            self.apply(state)

    def apply(self, state: TicketState) -> None:
        """Reconcile one ticket as the database has it."""
        if state.status not in OPEN_STATUSES:
            self.forget(state.number)
            return
        phones = [phone for phone in state.phones if attachable_number(phone)]
        if state.customer_id is None or not phones:
            return
        key: CustomerKey = state.customer_id
        self._map_phones(phones, key)
        current = self._by_customer.get(key)
        if current is not None and current.number == state.number:
            current.last_activity = max(current.last_activity, state.last_activity)
        elif current is None or current.last_activity <= state.last_activity:
            self.forget(state.number)
            self._set(OpenTicket(state.number, key, state.opened_at, state.last_activity))

    def _map_phones(self, phones: list[str], key: CustomerKey) -> None:
        """Point every phone at the customer, merging or unmapping what they pointed at."""
        for phone in phones:
            previous = self._by_phone.get(phone)
            if isinstance(previous, str):
                self._merge(previous, key)
            elif previous is not None and previous != key:
                self._unmap_phone(phone, previous)
            self._map_phone(phone, key)

    def observe(self, ticket: Ticket) -> None:
        """The tickets repository's listener: a ticket that stops being open leaves the view,
        and so does one moved to another customer (reconciliation puts it back)."""
        key = self._by_ticket.get(ticket.number)
        if key is None:
            return
        if not ticket.is_open or (isinstance(key, int) and ticket.customer_id != key):
            self.forget(ticket.number)

    def forget(self, ticket_number: str) -> None:
        """Remove a ticket from the view, with its customer's phone mappings."""
        key = self._by_ticket.pop(ticket_number, None)
        if key is None:
            return
        del self._by_customer[key]
        for phone in self._phones.pop(key, set()):
            del self._by_phone[phone]

    def prune(self, now: float) -> int:
        """Drop the tickets the rule can no longer attach a call to; returns how many."""
        if self.rule != "recent":
            return 0
        horizon = now - self.attach_days * _DAY
        stale = [t.number for t in self._by_customer.values() if t.last_activity < horizon]
        for number in stale:
            self.forget(number)
        return len(stale)

    def _set(self, ticket: OpenTicket) -> None:
        previous = self._by_customer.get(ticket.customer)
        if previous is not None:
            self._by_ticket.pop(previous.number, None)
        self._by_customer[ticket.customer] = ticket
        self._by_ticket[ticket.number] = ticket.customer

    def _map_phone(self, phone: str, key: CustomerKey) -> None:
        self._by_phone[phone] = key
        self._phones.setdefault(key, set()).add(phone)

    def _unmap_phone(self, phone: str, key: CustomerKey) -> None:
        """The number now belongs to another customer: ``key``'s ticket keeps its other
        numbers, and leaves the view when it has none left."""
        del self._by_phone[phone]
        phones = self._phones[key]
        phones.discard(phone)
        if not phones:
            del self._phones[key]
            ticket = self._by_customer.pop(key, None)
            if ticket is not None:
                del self._by_ticket[ticket.number]

    def _merge(self, old: CustomerKey, new: CustomerKey) -> None:
        """Fold what the view knew under ``old`` into ``new`` (the same customer, now known)."""
        moved = self._by_customer.pop(old, None)
        if moved is not None:
            del self._by_ticket[moved.number]
            current = self._by_customer.get(new)
            if current is None or current.last_activity < moved.last_activity:
                moved.customer = new
                self._set(moved)
        for phone in self._phones.pop(old, set()):
            self._map_phone(phone, new)
