"""One representation per record: a call's end and a ring land column for column.

The records module drives the record's keys, the row's columns and the ``$n``
arguments from one field list; these tests write facts whose every field is
distinct and read each column back, so a field that slips position shows up.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import hotline
from hotline.domain.effects import CallEnded, OfferEnded
from hotline.domain.model import OfferResult, Outcome
from hotline.domain.sla import rings
from hotline.store.db import Pool
from tests.test_store_records import T0, TICKET, record, write

pytestmark = pytest.mark.integration

END = CallEnded(
    call_id="1772442000.7",
    channel="PJSIP/trunk-00000007",
    linkedid="1772442000.6",
    ticket=TICKET,
    number="13900139007",
    queue="billing",
    original_queue="support",
    priority=7,
    arrived_at=T0 + 1.0,
    arrival_source="recv",
    answered_at=T0 + 13.0,
    answered_by="1002",
    talk_ended_at=T0 + 99.0,
    ended_at=T0 + 101.0,
    end_source="resync",
    outcome=Outcome.ANSWERED,
    offers=3,
)
OFFER = OfferEnded(
    "hl-T20260302-A0001-1772442000.7-3", END.call_id, "1002", "billing", TICKET,
    T0 + 2.0, T0 + 3.0, "written", T0 + 13.0, "pbx", OfferResult.ANSWERED,
)  # fmt: skip


def epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


async def test_every_field_of_a_call_end_lands_in_its_column(pg_pool: Pool) -> None:
    records, _ = record([END])
    [end] = records
    await write(pool=pg_pool, records=records)
    row = await pg_pool.fetchrow(
        "select c.*, t.number as ticket_number from calls c join tickets t on t.id = c.ticket_id "
        "where c.call_id = $1",
        END.call_id,
    )
    assert row is not None
    got = {key: epoch(value) for key, value in dict(row).items()}
    expected = {
        "call_id": END.call_id,
        "channel": END.channel,
        "linkedid": END.linkedid,
        "ticket_number": TICKET,
        "caller_number": END.number,
        "queue": "billing",
        "original_queue": "support",
        "priority": 7,
        "arrived_at": T0 + 1.0,
        "arrival_source": "recv",
        "answered_at": T0 + 13.0,
        "answered_by": "1002",
        "talk_ended_at": T0 + 99.0,
        "ended_at": T0 + 101.0,
        "end_source": "resync",
        "outcome": "answered",
        "offers": 3,
        "wait_seconds": pytest.approx(12.0),
        "state": "completed",
        "epoch": 0,  # the writer's lease epoch (no lease: 0)
        "pbx_id": "",  # the writer's site (no [service] pbx_id: '')
    }
    assert {key: got[key] for key in expected} == expected
    assert set(end) - {"k"} == set(expected) - {"ticket_number", "caller_number", "state"} | {
        "ticket",
        "number",
    }


async def test_every_field_of_a_ring_lands_in_its_column(pg_pool: Pool) -> None:
    records, _ = record([END, OFFER])
    await write(pool=pg_pool, records=records)
    row = await pg_pool.fetchrow("select * from call_offers where offer_id = $1", OFFER.offer_id)
    assert row is not None
    got = {key: epoch(value) for key, value in dict(row).items()}
    expected = {
        "offer_id": OFFER.offer_id,
        "call_id": END.call_id,
        "agent_id": "1002",
        "queue": "billing",
        "requested_at": T0 + 2.0,
        "ring_started_at": T0 + 3.0,
        "ring_start_source": "written",
        "ended_at": T0 + 13.0,
        "end_source": "pbx",
        "result": "answered",
        "ring_seconds": pytest.approx(10.0),
        "rings": pytest.approx(2.0),
        "pbx_id": "",
    }
    assert {key: got[key] for key in expected} == expected


def test_ring_counts_come_from_sla_rings_only() -> None:
    """The recorder's rings are ``sla.rings()``; no other module divides by the cadence."""
    records, _ = record([OFFER])
    assert records[0]["rings"] == rings(OFFER.ring_seconds, 5.0)
    copies = re.compile(r"/\s*(self\.)?(ring_)?cadence\b|ring_seconds\s*/")
    root = Path(hotline.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*.py"))
        if path.name != "sla.py" and copies.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
