"""The lifecycle of one offer (one ring), as an explicit state machine.

Theory of operation
-------------------
An offer is an ``Originate`` of an agent leg for one caller. Two things happen to it,
and the router must know, at every point, which of them it is still waiting for:

* the **ring** ends with a result (answered, no answer, busy, unavailable, or
  cancelled because the caller left): :attr:`OfferEvent.RESULT`;
* the PBX says how the ``Originate`` itself ended (its ``OriginateResponse``; or the
  router writes it off when none comes): :attr:`OfferEvent.RESPONSE`. Until then the
  agent stays reserved and the leg's events still belong to this offer;
* in between, the router may ask the PBX to hang the leg up because the ring was
  cancelled (:attr:`OfferEvent.HANGUP_SENT`), and must then hang up a leg channel
  it learns of later, but never ask twice.

The ring's result usually comes first (``Newstate`` 6, a ``Hangup`` of the caller)
and the response later; when the response is what tells the result (a failed
``Originate``), the response comes first and the result follows in the same step.

    RINGING --RESULT--> ENDED --HANGUP_SENT--> CANCELLING
       |                  |                        |
       RESPONSE           RESPONSE                 RESPONSE
       v                  v                        v
     CLOSED <--RESULT-- CLOSED --HANGUP_SENT--> CLOSED_HANGUP_SENT

:data:`TRANSITIONS` is the whole table (in the manner of h11's ``_state.py``): a
``(state, event)`` pair not in it is a bug in the router, raised as
:class:`OfferStateError`. Whether the PBX's leg has hung up is an observation of the
PBX, not a step of this lifecycle; it is ``Offer.leg_hung_up``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "HANGUP_SENT_STATES",
    "OPEN_STATES",
    "TRANSITIONS",
    "OfferEvent",
    "OfferState",
    "OfferStateError",
    "next_state",
]


class OfferState(StrEnum):
    """Where an offer is in its lifecycle (see the module docstring)."""

    RINGING = "ringing"
    """The Originate was written; the ring has no result yet."""
    ENDED = "ended"
    """The ring has its result; the OriginateResponse is still due."""
    CANCELLING = "cancelling"
    """Ended as cancelled, and the leg was told to hang up; the response is still due."""
    CLOSED = "closed"
    """The OriginateResponse arrived (or was written off): the agent is released."""
    CLOSED_HANGUP_SENT = "closed_hangup_sent"
    """Closed, and the leg was (also) told to hang up."""


class OfferEvent(StrEnum):
    """What moves an offer on."""

    RESULT = "result"
    """The ring ended with a result."""
    HANGUP_SENT = "hangup_sent"
    """The router asked the PBX to hang the cancelled ring's leg up."""
    RESPONSE = "response"
    """The Originate ended (its OriginateResponse, or written off)."""


class OfferStateError(RuntimeError):
    """An offer was moved along a transition the table does not have (a router bug)."""


TRANSITIONS: dict[OfferState, dict[OfferEvent, OfferState]] = {
    OfferState.RINGING: {
        OfferEvent.RESULT: OfferState.ENDED,
        OfferEvent.RESPONSE: OfferState.CLOSED,
    },
    OfferState.ENDED: {
        OfferEvent.HANGUP_SENT: OfferState.CANCELLING,
        OfferEvent.RESPONSE: OfferState.CLOSED,
    },
    OfferState.CANCELLING: {
        OfferEvent.RESPONSE: OfferState.CLOSED_HANGUP_SENT,
    },
    OfferState.CLOSED: {
        OfferEvent.RESULT: OfferState.CLOSED,
        OfferEvent.HANGUP_SENT: OfferState.CLOSED_HANGUP_SENT,
    },
    OfferState.CLOSED_HANGUP_SENT: {
        OfferEvent.RESULT: OfferState.CLOSED_HANGUP_SENT,
    },
}
"""``state -> event -> next state``: every transition an offer may take."""

OPEN_STATES = frozenset({OfferState.RINGING, OfferState.ENDED, OfferState.CANCELLING})
"""The states in which the OriginateResponse is still due."""

HANGUP_SENT_STATES = frozenset({OfferState.CANCELLING, OfferState.CLOSED_HANGUP_SENT})
"""The states in which the router has already asked the PBX to hang the leg up."""


def next_state(state: OfferState, event: OfferEvent) -> OfferState:
    """The state ``event`` moves an offer in ``state`` to; :class:`OfferStateError` if none."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise OfferStateError(f"an offer in state {state} cannot take {event}") from None
