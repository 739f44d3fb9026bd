"""Several sites on one database: the ticket-letter claims, the refusal at start, and the
site fence on call rows (migration ``0008_sites.sql``), against a real PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from hotline.clock import SystemClock
from hotline.config import Settings, parse_settings
from hotline.domain.events import CallbackDue
from hotline.store.callbacks import Callbacks
from hotline.store.db import Pool
from hotline.store.records import apply_records
from hotline.store.resources import store_context
from hotline.store.scheduler import CallbackScheduler
from hotline.store.sites import SiteConflict, claim_letter
from hotline.store.tickets import Tickets
from hotline.ticketno import MemorySequenceStore, TicketNumbers
from tests.support import free_port, run_hotline

pytestmark = pytest.mark.integration


async def test_a_letter_belongs_to_the_first_site_that_claims_it(
    migrated_database_url: str,
) -> None:
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await claim_letter(conn, "A", "site1")
        await claim_letter(conn, "B", "site1")  # the pair's second letter
        await claim_letter(conn, "A", "site1")  # a restart of the same instance
        await claim_letter(conn, "C", "site2")
        with pytest.raises(SiteConflict) as caught:
            await claim_letter(conn, "A", "site2")
        assert "'A'" in str(caught.value)
        assert "'site1'" in str(caught.value)
        assert "'site2'" in str(caught.value)
        await claim_letter(conn, "E", "")  # an instance without pbx_id is the site ''
        with pytest.raises(SiteConflict, match="an instance without pbx_id"):
            await claim_letter(conn, "E", "site2")
        claims = await conn.fetch("select instance, pbx_id from sites order by instance")
    finally:
        await conn.close()
    assert [tuple(r) for r in claims] == [
        ("A", "site1"),
        ("B", "site1"),
        ("C", "site2"),
        ("E", ""),
    ]


def _config(path: Path, instance: str, pbx_id: str, dsn: str) -> Path:
    path.write_text(
        f'[service]\ninstance = "{instance}"\npbx_id = "{pbx_id}"\n'
        f'http_listen = "127.0.0.1:{free_port()}"\nstate_dir = "{path.parent / pbx_id}"\n'
        f'[ami]\nurl = "ami://hotline:secret@127.0.0.1:{free_port()}"\n'
        f'[database]\nurl = "{dsn}"\n'
        '[[queues]]\nname = "support"\n'
        '[[agents]]\nid = "1001"\ndevice = "PJSIP/1001"\nqueues = ["support"]\n',
        encoding="utf-8",
    )
    return path


async def test_serve_refuses_a_second_site_with_the_same_letter(
    migrated_database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await claim_letter(conn, "A", "north")
    finally:
        await conn.close()
    config = _config(tmp_path / "south.toml", "A", "south", migrated_database_url)
    env = {**os.environ, "HOTLINE_API_TOKEN": "sites-token"}
    result = run_hotline("serve", "--config", str(config), env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "hotline: invalid configuration: [service] instance 'A'" in result.stderr
    assert "already claimed by site 'north'" in result.stderr


def _call(call_id: str, pbx_id: str | None, **fields: Any) -> list[dict[str, Any]]:
    """An arrival and an end of one call, from site ``pbx_id`` (None: no site in the record,
    as spilled before sites existed)."""
    base: dict[str, Any] = {"call_id": call_id, "epoch": 1}
    if pbx_id is not None:
        base["pbx_id"] = pbx_id
    arrival = {
        "k": "arrival",
        "ticket": fields.get("ticket", f"T20261201-{call_id}"),
        "number": fields.get("number", "13900000001"),
        "queue": "support",
        "priority": 0,
        "at": 1_764_547_200.0,
        "source": "pbx",
        **base,
    }
    end = {
        "k": "end",
        "channel": "PJSIP/trunk-1",
        "linkedid": call_id,
        "ticket": arrival["ticket"],
        "number": arrival["number"],
        "queue": "support",
        "original_queue": "support",
        "priority": 0,
        "arrived_at": arrival["at"],
        "arrival_source": "pbx",
        "answered_at": None,
        "answered_by": None,
        "talk_ended_at": None,
        "ended_at": arrival["at"] + fields.get("waited", 10.0),
        "end_source": "pbx",
        "outcome": "abandoned_waiting",
        "offers": 0,
        "wait_seconds": fields.get("waited", 10.0),
        **base,
    }
    return [arrival, end]


async def test_another_sites_writes_to_a_call_are_refused_and_logged(
    migrated_database_url: str,
) -> None:
    conn = await asyncpg.connect(migrated_database_url)
    try:
        async with conn.transaction():
            await apply_records(conn, _call("x-1.1", "north", ticket="T20261201-A0001"))
        # The same call id from another PBX (two Asterisks without their own systemname).
        async with conn.transaction():
            await apply_records(
                conn, _call("x-1.1", "south", ticket="T20261201-C0001", waited=99.0)
            )
        # A record spilled before sites existed (no pbx_id) keeps the row's site.
        async with conn.transaction():
            await apply_records(conn, _call("x-1.1", None, ticket="T20261201-A0001")[1:])
        row = await conn.fetchrow("select pbx_id, wait_seconds from calls where call_id = 'x-1.1'")
        fenced = await conn.fetch("select tbl, call_id, reason from fenced_writes")
    finally:
        await conn.close()
    assert row is not None
    assert (row["pbx_id"], row["wait_seconds"]) == ("north", 10.0)
    assert [tuple(r) for r in fenced] == [("calls", "x-1.1", "site")]


async def test_each_sites_scheduler_dials_its_own_callbacks_and_no_callback_twice(
    pg_pool: Pool,
) -> None:
    async with pg_pool.acquire() as conn, conn.transaction():
        await apply_records(conn, _call("north-1.1", "north", ticket="T20261201-A0001"))
        await apply_records(conn, _call("south-1.1", "south", ticket="T20261201-C0001"))
    # A ticket opened by hand has no call, so its callback has no site yet.
    await Tickets(pg_pool).create("T20261201-X0001", actor="admin", queue="support")
    callbacks = Callbacks(pg_pool)
    past = datetime(2026, 12, 1, tzinfo=UTC)
    north = await callbacks.schedule("T20261201-A0001", phone="139", due_at=past, actor="a")
    south = await callbacks.schedule("T20261201-C0001", phone="139", due_at=past, actor="a")
    lone = await callbacks.schedule("T20261201-X0001", phone="139", due_at=past, actor="a")
    sites = {row["id"]: row["pbx_id"] for row in await pg_pool.fetch("select * from callbacks")}
    assert sites == {north.id: "north", south.id: "south", lone.id: ""}

    submitted: dict[str, list[CallbackDue]] = {"north": [], "south": []}
    schedulers = {
        site: CallbackScheduler(
            pg_pool, events.append, SystemClock(), interval=1.0, default_queue="support", site=site
        )
        for site, events in submitted.items()
    }
    for scheduler in schedulers.values():
        await scheduler.poll()
    # The callback of no site goes to the first scheduler that claims it, and only to it.
    assert [e.callback_id for e in submitted["north"]] == [north.id, lone.id]
    assert [e.callback_id for e in submitted["south"]] == [south.id]
    assert await pg_pool.fetchval("select pbx_id from callbacks where id = $1", lone.id) == "north"


async def test_the_store_refuses_to_start_for_a_letter_of_another_site(
    migrated_database_url: str, tmp_path: Path
) -> None:
    def settings(instance: str, pbx_id: str) -> Settings:
        agent = "1001" if pbx_id == "north" else "2001"  # agent ids are claimed per site too
        return parse_settings(
            {
                "service": {"instance": instance, "pbx_id": pbx_id, "state_dir": str(tmp_path)},
                "database": {"url": migrated_database_url, "outbox_dir": str(tmp_path / "o")},
                "queues": [{"name": "support"}],
                "agents": [{"id": agent, "device": f"PJSIP/{agent}", "queues": ["support"]}],
            },
            env={"HOTLINE_API_TOKEN": "sites-token"},
        )

    def numbers(instance: str) -> TicketNumbers:
        return TicketNumbers(instance, ZoneInfo("UTC"), MemorySequenceStore())

    async with store_context(settings("A", "north"), numbers("A")) as store:
        assert store.site_claimed
        assert store.site_conflict is None
    with pytest.raises(SiteConflict, match="already claimed by site 'north'"):
        async with store_context(settings("A", "south"), numbers("A")):
            pass
    async with store_context(settings("C", "south"), numbers("C")) as store:
        assert store.site_claimed
