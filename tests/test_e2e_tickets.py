"""End to end with real PostgreSQL: every simulated call recorded once, on a ticket, even
through a database outage. Checked against the simulated PBX's ground truth."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hotline.domain.effects import CallAnswered
from hotline.domain.model import Activity
from hotline.sim.harness import Stack, start_stack
from hotline.web.keys import STORE
from tests.support import (
    OUTCOMES,
    QUEUES,
    call_centre,
    eventually,
    ground_truth_calls,
    hold,
    wait_settled,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


async def database_rows(dsn: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    conn = await asyncpg.connect(dsn)
    try:
        calls = await conn.fetch(
            """
            select c.call_id, c.caller_number, c.outcome, c.answered_by, c.state,
                   extract(epoch from c.arrived_at)::float8 as arrived_at,
                   t.number as ticket, t.status as ticket_status
            from calls c join tickets t on t.id = c.ticket_id
            """
        )
        offers = await conn.fetch(
            """
            select offer_id, call_id, agent_id, result,
                   extract(epoch from requested_at)::float8 as requested_at,
                   extract(epoch from ended_at)::float8 as ended_at
            from call_offers
            """
        )
    finally:
        await conn.close()
    return calls, offers


async def drain(stack: Stack) -> None:
    """Every agent's wrap-up has ended (its record is written too), then the outbox is empty.

    Only PostgreSQL is waited for while the outbox drains: the clock is held still.
    """
    agents = stack.engine.router.agents.values()
    await eventually(
        lambda: all(a.activity is not Activity.WRAP_UP for a in agents), what="wrap-ups ended"
    )
    with hold(stack.clock):
        assert await stack.app[STORE].outbox.flush(60), "the outbox did not drain"


async def assert_recorded_exactly_as_it_happened(stack: Stack, dsn: str) -> dict[str, Any]:
    """Calls and offers in PostgreSQL equal the ground truth: none missing, none twice."""
    await drain(stack)
    truth = ground_truth_calls(stack)
    orphans: dict[str, int] = defaultdict(int)
    for record in stack.sim.ground_truth:
        if record["type"] == "ring":
            orphans[record["call_id"]] += 1
    calls, offers = await database_rows(dsn)
    by_call = {row["call_id"]: row for row in calls}
    assert len(calls) == len(by_call) == len(truth), "one call row per call"
    assert set(by_call) == set(truth)
    offers_by_call: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in offers:
        offers_by_call[row["call_id"]].append(row)
    assert len(offers) == len({row["offer_id"] for row in offers})
    expected_rings = sum(len(r["rings"]) + orphans[c] for c, r in truth.items())
    assert len(offers) == expected_rings, "one offer row per ring"
    for call_id, record in truth.items():
        row = by_call[call_id]
        assert row["state"] == "completed"
        assert row["outcome"] == OUTCOMES[(record["outcome"], record["abandoned_while"])].value
        assert abs(row["arrived_at"] - record["arrived_at"]) < 1e-3
        assert row["ticket"].startswith("T")
        ours = sorted(offers_by_call[call_id], key=lambda o: o["requested_at"])
        assert len(ours) == len(record["rings"]) + orphans[call_id]
        for ring, offer in zip(record["rings"], ours, strict=False):
            assert ring["agent"] == f"Local/{offer['agent_id']}@agents"
            assert offer["result"] == ring["outcome"]
            assert abs(offer["ended_at"] - ring["ring_end"]) < 1e-3
    return {"truth": truth, "calls": calls}


async def test_1000_calls_one_row_each_every_call_on_a_ticket_repeat_callers_attach(
    migrated_database_url: str, tmp_path: Path
) -> None:
    scenario = call_centre(1000, seed=23, rate_per_minute=30, repeat_share=0.25)
    stack = await start_stack(
        scenario,
        queues=QUEUES,
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
    )
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await wait_settled(stack, timeout=240)
        checked = await assert_recorded_exactly_as_it_happened(stack, migrated_database_url)
    finally:
        await stack.close()
    tickets_by_number: dict[str, set[str]] = defaultdict(set)
    for row in checked["calls"]:
        tickets_by_number[row["caller_number"]].add(row["ticket"])
    repeat_numbers = [
        n
        for n, t in tickets_by_number.items()
        if sum(1 for r in checked["calls"] if r["caller_number"] == n) > 1
    ]
    assert len(repeat_numbers) >= 50, "the scenario has repeat callers"
    for number in repeat_numbers:
        assert len(tickets_by_number[number]) == 1, f"{number}'s calls are on several tickets"
    assert all(row["ticket_status"] == "open" for row in checked["calls"])


async def test_postgres_outage_of_30_scenario_seconds_loses_and_duplicates_nothing(
    migrated_database_url: str, tmp_path: Path
) -> None:
    proxy, proxied = await TcpProxy.for_postgres(migrated_database_url)
    scenario = call_centre(400, seed=29, rate_per_minute=40)
    stack = await start_stack(
        scenario, queues=QUEUES, database_url=proxied, state_dir=str(tmp_path)
    )
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await stack.sleep(180.0)
        proxy.break_("refuse")
        down_from = stack.clock.now()
        backlog = 0
        while stack.clock.now() < down_from + 30:
            backlog = max(backlog, stack.app[STORE].outbox.backlog)
            await stack.sleep(0.5)
        down_until = stack.clock.now()
        proxy.heal()
        await wait_settled(stack, timeout=180)
        answered_during = [
            f
            for f in stack.facts
            if isinstance(f, CallAnswered) and down_from <= f.answered_at <= down_until
        ]
        assert answered_during, "calls kept being routed while PostgreSQL was down"
        assert backlog > 0, "records waited in the outbox during the outage"
        await assert_recorded_exactly_as_it_happened(stack, migrated_database_url)
        stats = stack.app[STORE].outbox.stats()
        assert stats["retries"] > 0, "the writer met the outage and retried"
        assert stats["dead"] == 0
        assert stats["backlog"] == 0
    finally:
        await stack.close()
        await proxy.close()
