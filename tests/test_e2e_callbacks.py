"""End to end: scheduled callbacks are dialled out through agents, attempts recorded and
retried by the rules, all checked against the simulated PBX's ground truth."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hotline.sim.harness import start_stack
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    CustomerBehaviour,
    Fixed,
    Scenario,
    Uniform,
)
from hotline.store.callbacks import Callbacks
from hotline.store.tickets import Tickets
from hotline.web.keys import STORE
from tests.support import eventually

pytestmark = pytest.mark.e2e

CALLBACKS = 30
RETRY_DELAY = 20.0
BUSY_DELAY = 10.0


def scenario() -> Scenario:
    return Scenario(
        name="callbacks",
        seed=31,
        time_scale=60.0,
        agents=(
            AgentGroup(
                tuple(f"Local/{ext}@agents" for ext in range(2001, 2005)),
                AgentBehaviour(
                    answer_delay=Uniform(low=1.0, high=4.0), no_answer=0.15, talk=Fixed(40.0)
                ),
            ),
        ),
        customers=CustomerBehaviour(
            answer_delay=Uniform(low=1.0, high=6.0), no_answer=0.35, busy=0.15
        ),
    )


async def wait_until_resolved(dsn: str, timeout: float) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []

    async def resolved() -> bool:
        nonlocal rows
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("select id, status, attempts from callbacks")
        finally:
            await conn.close()
        return bool(rows) and all(row["status"] in ("done", "failed") for row in rows)

    await eventually(resolved, timeout, what="every callback resolved", interval=0.2)
    return rows


async def test_callbacks_ring_an_agent_then_the_customer_and_retry_by_the_rules(
    migrated_database_url: str, tmp_path: Path
) -> None:
    stack = await start_stack(
        scenario(),
        queues=[{"name": "support", "ring_timeout": 15, "wrap_up": 2}],
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        tickets={
            "callback_poll_interval": 1.0,
            "callback_max_attempts": 3,
            "callback_retry_delays": [RETRY_DELAY],
            "callback_busy_delay": BUSY_DELAY,
        },
    )
    try:
        pool = stack.app[STORE].pool
        now = datetime.fromtimestamp(stack.clock.now(), UTC)
        numbers = {}
        for i in range(CALLBACKS):
            ticket = f"T20261126-C{i:04d}"
            await Tickets(pool).create(ticket, actor="test", queue="support")
            callback = await Callbacks(pool).schedule(
                ticket, phone=f"1380013{i:04d}", due_at=now, actor="test"
            )
            numbers[callback.id] = (ticket, callback.phone)
        await stack.login_all()
        rows = await wait_until_resolved(migrated_database_url, timeout=90)
        assert await stack.app[STORE].outbox.flush(30)
        conn = await asyncpg.connect(migrated_database_url)
        try:
            attempts = await conn.fetch(
                "select callback_id, attempt, result, agent_id, note,"
                " extract(epoch from at)::float8 as at from callback_attempts"
                " order by callback_id, attempt"
            )
        finally:
            await conn.close()
    finally:
        await stack.close()

    truth: dict[str, dict[str, Any]] = {
        record["leg_id"]: record
        for record in stack.sim.ground_truth
        if record["type"] == "callback"
    }
    assert len(rows) == CALLBACKS
    by_callback: dict[int, list[asyncpg.Record]] = {}
    for attempt in attempts:
        by_callback.setdefault(attempt["callback_id"], []).append(attempt)
    reached_customer = [r for r in truth.values() if r["agent_outcome"] == "answered"]
    assert len(attempts) == len(reached_customer), "one attempt per customer dialled"
    # The agent hanging up before the customer answered leaves no customer outcome.
    results = {"answered": "answered", "no_answer": "no_answer", "busy": "busy", None: "failed"}
    for attempt in attempts:
        leg_id = attempt["note"].removeprefix("leg ")
        record = truth[leg_id]
        ticket, phone = numbers[attempt["callback_id"]]
        assert (record["ticket"], record["number"]) == (ticket, phone)
        assert record["agent"] == f"Local/{attempt['agent_id']}@agents"
        assert attempt["result"] == results[record["customer_outcome"]]
    for row in rows:
        made = by_callback.get(row["id"], [])
        assert [a["attempt"] for a in made] == list(range(1, len(made) + 1))
        answered = [a for a in made if a["result"] == "answered"]
        if answered:
            assert row["status"] == "done"
            assert made[-1]["result"] == "answered"
        else:
            assert row["status"] == "failed"
            assert len(made) == 3
        for earlier, later in itertools.pairwise(made):
            delay = BUSY_DELAY if earlier["result"] == "busy" else RETRY_DELAY
            assert later["at"] >= earlier["at"] + delay - 0.5
    statuses = {row["status"] for row in rows}
    assert statuses == {"done", "failed"}
    assert {a["result"] for a in attempts} >= {"answered", "no_answer", "busy"}
    # an agent who did not answer did not cost the customer an attempt
    assert any(r["agent_outcome"] == "no_answer" for r in truth.values())
