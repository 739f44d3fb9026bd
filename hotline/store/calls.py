"""Calls and their offers (one row per agent ring), as recorded from the engine's facts.

They are written by the outbox (:mod:`hotline.store.records`); this module reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from hotline.store.db import Db, NotFound, from_row

__all__ = ["Call", "CallOffer", "Calls"]

_SELECT_CALL: Final = """
select
    c.call_id, c.linkedid, c.channel, t.number as ticket_number, c.customer_id,
    c.caller_number, c.queue, c.original_queue, c.priority, c.state, c.arrived_at,
    c.arrival_source, c.answered_at, c.answered_by, c.answer_source, c.talk_ended_at,
    c.ended_at, c.end_source, c.outcome, c.wait_seconds, c.offers, c.pbx_id
from calls c join tickets t on t.id = c.ticket_id
"""
_SELECT_OFFER: Final = """
select
    offer_id, call_id, agent_id, queue, requested_at, ring_started_at, ring_start_source,
    ended_at, end_source, result, ring_seconds, rings, pbx_id
from call_offers
"""


@dataclass(frozen=True, slots=True)
class Call:
    """One inbound call; ``state`` is ``in_progress`` until its outcome is known; ``pbx_id``
    is the site that took it (``''``: an instance without ``[service] pbx_id``)."""

    call_id: str
    linkedid: str | None
    channel: str | None
    ticket_number: str
    customer_id: int | None
    caller_number: str
    queue: str
    original_queue: str
    priority: int
    state: str
    arrived_at: datetime
    arrival_source: str
    answered_at: datetime | None
    answered_by: str | None
    answer_source: str | None
    talk_ended_at: datetime | None
    ended_at: datetime | None
    end_source: str | None
    outcome: str | None
    wait_seconds: float | None
    offers: int | None
    pbx_id: str


@dataclass(frozen=True, slots=True)
class CallOffer:
    """One ring of one agent for one call; ``rings`` = ring seconds ÷ ring cadence."""

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    requested_at: datetime
    ring_started_at: datetime
    ring_start_source: str
    ended_at: datetime
    end_source: str
    result: str
    ring_seconds: float
    rings: float
    pbx_id: str


def _call(row: asyncpg.Record) -> Call:
    return from_row(Call, row)


def _offer(row: asyncpg.Record) -> CallOffer:
    return from_row(CallOffer, row)


class Calls:
    """The calls repository (reads)."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def get(self, call_id: str) -> Call:
        """The call whose caller channel had this Uniqueid."""
        row = await self.db.fetchrow(_SELECT_CALL + " where c.call_id = $1", call_id)
        if row is None:
            raise NotFound(f"call {call_id} not found")
        return _call(row)

    async def for_ticket(self, number: str, *, site: str | None = None) -> list[Call]:
        """The calls recorded against a ticket, oldest first (only ``site``'s if given)."""
        rows = await self.db.fetch(
            _SELECT_CALL
            + " where t.number = $1 and ($2::text is null or c.pbx_id = $2)"
            + " order by c.arrived_at, c.id",
            number,
            site,
        )
        return [_call(row) for row in rows]

    async def offers(self, call_id: str) -> list[CallOffer]:
        """The rings offered for a call, in order."""
        rows = await self.db.fetch(
            _SELECT_OFFER + " where call_id = $1 order by requested_at, id", call_id
        )
        return [_offer(row) for row in rows]
