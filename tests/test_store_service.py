"""The storage resource: migrations on start, warm-up, recording, reconciliation, app wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.config import Settings, parse_settings
from hotline.domain.effects import CallArrived, CallEnded
from hotline.domain.model import Outcome
from hotline.main import create_app
from hotline.store.calls import Calls
from hotline.store.customers import Customers
from hotline.store.db import create_pool
from hotline.store.resources import reconcile_once, store_context
from hotline.store.tickets import Tickets
from hotline.ticketno import MemorySequenceStore, TicketNumbers
from hotline.web.keys import ENGINE, STORE
from tests.support import eventually

pytestmark = pytest.mark.integration

T0 = 1_772_442_000.0


def settings_for(dsn: str, folder: Path, **database: Any) -> Settings:
    return parse_settings(
        {
            "service": {"state_dir": str(folder), "api_token": "token-for-tests"},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {"outbox_dir": str(folder / "outbox"), **database}
            | ({"url": dsn} if dsn else {}),
            "tickets": {"monitor_dir": "/rec"},
            "queues": [{"name": "support"}],
            "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
        },
        env={},
    )


def numbers() -> TicketNumbers:
    return TicketNumbers("A", ZoneInfo("UTC"), MemorySequenceStore())


async def test_migrate_warm_record_and_reconcile(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path, migrate_on_start=True, reconcile_interval=0.1)
    async with store_context(settings, numbers()) as store:
        customer = await Customers(store.pool).create(phones=["13900139000", "02155550000"])
        await store.tickets.create("T-warm", actor="a", customer_id=customer.id)

    async with store_context(settings, numbers()) as store:
        # Warmed: a call from either household number lands on the open ticket.
        assert store.open_tickets.ticket_for("02155550000", T0) == "T-warm"
        new = store.open_tickets.ticket_for("13600000000", T0)
        store.recorder(CallArrived("1772442000.1", new, "13600000000", "support", 0, T0, "pbx"))
        store.recorder(
            CallEnded(
                call_id="1772442000.1", channel="PJSIP/trunk-1", linkedid="1772442000.1",
                ticket=new, number="13600000000", queue="support", original_queue="support",
                priority=0, arrived_at=T0, arrival_source="pbx", answered_at=None,
                answered_by=None, talk_ended_at=None, ended_at=T0 + 9, end_source="pbx",
                outcome=Outcome.ABANDONED_WAITING, offers=0,
            )
        )  # fmt: skip
        assert await store.outbox.flush(10)
        call = await Calls(store.pool).get("1772442000.1")
        assert (call.ticket_number, call.outcome) == (new, "abandoned_waiting")

        # Closed through the repository: the view forgets it at once.
        await store.tickets.update("T-warm", {"status": "closed"}, actor="a")
        assert store.open_tickets.lookup("13900139000") is None

        # Opened elsewhere (another instance): the periodic reconciliation finds it.
        other = await Customers(store.pool).find_or_create("13700000000")
        await Tickets(store.pool).create("T-elsewhere", actor="b", customer_id=other.id)
        await eventually(lambda: store.open_tickets.lookup("13700000000") is not None)
        assert store.open_tickets.ticket_for("13700000000", T0 + 60) == "T-elsewhere"
        # ... and learns the id of the customer the outbox created for the new caller.
        await reconcile_once(store, T0 + 60)
        found = store.open_tickets.lookup("13600000000")
        assert found is not None
        assert found.customer == call.customer_id
        assert store.stats()["outbox"]["written"] == 2
    assert not list((tmp_path / "outbox").glob("spill-*"))


async def test_the_service_starts_while_postgresql_is_down(tmp_path: Path) -> None:
    settings = settings_for("postgresql://hotline@127.0.0.1:1/hotline", tmp_path)
    async with store_context(settings, numbers(), warm_timeout=2.0) as store:
        ticket = store.open_tickets.ticket_for("13600000000", T0)
        store.recorder(CallArrived("1772442000.2", ticket, "13600000000", "support", 0, T0, "pbx"))
        await eventually(lambda: store.outbox.on_disk > 0)
        assert store.outbox.last_error is not None
    assert list((tmp_path / "outbox").glob("spill-*"))


async def test_the_app_routes_through_the_store(migrated_database_url: str, tmp_path: Path) -> None:
    settings = settings_for(migrated_database_url, tmp_path)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        store = app[STORE]
        engine = app[ENGINE]
        assert store.recorder in engine.sinks
        assert engine.router.allocate_ticket == store.open_tickets.ticket_for
        health = await (await client.get("/health")).json()
        assert health["store"]["outbox"]["backlog"] == 0
        assert health["store"]["open_tickets"] == 0


async def test_without_a_database_nothing_changes(tmp_path: Path) -> None:
    settings = settings_for("", tmp_path)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        assert STORE not in app
        health = await (await client.get("/health")).json()
        assert "store" not in health


async def test_pool_connects_lazily() -> None:
    pool = await create_pool("postgresql://hotline@127.0.0.1:1/hotline", connect_timeout=0.2)
    await pool.close()
