"""The offer lifecycle table (hotline.domain.offerstate): its paths and its refusals."""

from __future__ import annotations

import pytest

from hotline.domain.model import Offer
from hotline.domain.offerstate import (
    OPEN_STATES,
    TRANSITIONS,
    OfferEvent,
    OfferState,
    OfferStateError,
    next_state,
)


def _offer() -> Offer:
    return Offer("hl-T1-c1-1", "c1", "1001", "PJSIP/1001", "sales", 0.0, 15.0)


pytestmark = pytest.mark.unit


def _state(offer: Offer) -> OfferState:
    """The offer's state, read afresh (mypy would keep an earlier assertion's narrowing)."""
    return offer.state


def test_a_ring_answered_then_closed_by_its_response() -> None:
    offer = _offer()
    assert _state(offer) is OfferState.RINGING
    assert offer.open
    assert not offer.hangup_sent
    offer.advance(OfferEvent.RESULT)
    assert _state(offer) is OfferState.ENDED
    assert offer.open
    offer.advance(OfferEvent.RESPONSE)
    assert _state(offer) is OfferState.CLOSED
    assert not offer.open


def test_a_failed_originate_closes_before_its_result_is_recorded() -> None:
    offer = _offer()
    offer.advance(OfferEvent.RESPONSE)
    offer.advance(OfferEvent.RESULT)
    assert _state(offer) is OfferState.CLOSED
    assert not offer.open


def test_a_cancelled_ring_remembers_the_hangup_through_its_close() -> None:
    offer = _offer()
    offer.advance(OfferEvent.RESULT)
    offer.advance(OfferEvent.HANGUP_SENT)
    assert _state(offer) is OfferState.CANCELLING
    assert offer.open
    assert offer.hangup_sent
    offer.advance(OfferEvent.RESPONSE)
    assert _state(offer) is OfferState.CLOSED_HANGUP_SENT
    assert offer.hangup_sent
    assert not offer.open


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (state, event)
        for state in OfferState
        for event in OfferEvent
        if event not in TRANSITIONS[state]
    ],
)
def test_a_step_the_table_lacks_is_refused(state: OfferState, event: OfferEvent) -> None:
    with pytest.raises(OfferStateError, match=str(event)):
        next_state(state, event)


def test_every_state_has_a_row_and_only_open_states_await_the_response() -> None:
    assert set(TRANSITIONS) == set(OfferState)
    for state, row in TRANSITIONS.items():
        assert (OfferEvent.RESPONSE in row) == (state in OPEN_STATES), state
        assert all(target in TRANSITIONS for target in row.values())
