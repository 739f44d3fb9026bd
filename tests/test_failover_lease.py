"""The router lease (one active per pbx_id, epochs) and the store's fence, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from hotline.store.db import Pool, transaction
from hotline.store.lease import Lease
from hotline.store.records import Record, apply_records
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

TTL = 1.0
LIMIT = 30.0  # generous: a loaded machine is slow, the test does not measure speed


async def until(condition: Callable[[], bool], limit: float = LIMIT) -> None:
    """Poll ``condition`` until it holds (fails after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
async def leases(migrated_database_url: str) -> AsyncIterator[Callable[..., Lease]]:
    made: list[Lease] = []

    def make(holder: str, dsn: str = migrated_database_url, pbx_id: str = "pbx1") -> Lease:
        lease = Lease(dsn, pbx_id, ttl=TTL, holder=holder)
        made.append(lease)
        lease.start()
        return lease

    yield make
    for lease in made:
        await lease.close()


async def test_exactly_one_instance_holds_the_lease(leases: Callable[..., Lease]) -> None:
    a, b = leases("a"), leases("b")
    await until(lambda: a.active or b.active)
    await asyncio.sleep(TTL * 2)  # several renewal rounds: nobody else takes it meanwhile
    assert [a.active, b.active].count(True) == 1
    holder, standby = (a, b) if a.active else (b, a)
    assert (holder.role, holder.epoch, standby.role, standby.epoch) == ("active", 1, "standby", 0)


async def test_other_pbx_ids_have_their_own_lease(leases: Callable[..., Lease]) -> None:
    a, b = leases("a", pbx_id="site1"), leases("b", pbx_id="site2")
    await until(lambda: a.active and b.active)
    assert (a.epoch, b.epoch) == (1, 1)


async def test_a_graceful_stop_hands_over_with_a_higher_epoch(
    leases: Callable[..., Lease],
) -> None:
    a = leases("a")
    await until(lambda: a.active)
    b = leases("b")
    # Must stay (an absence): a whole lease period in which b must not take a held lease.
    await asyncio.sleep(TTL)
    assert not b.active
    await a.close()
    assert a.role == "fenced"
    await until(lambda: b.active)
    assert b.epoch == a.epoch + 1
    assert b.last_takeover is not None


async def test_a_holder_that_stops_renewing_is_fenced_before_anyone_takes_over(
    leases: Callable[..., Lease],
) -> None:
    a = leases("a")
    await until(lambda: a.active)
    b = leases("b")
    assert a._task is not None
    a._task.cancel()  # a paused or wedged process: no renewal, no release
    seen: list[tuple[bool, bool]] = []

    def watch() -> bool:
        seen.append((a.active, b.active))
        return b.active

    await until(watch)
    assert (True, True) not in seen  # never two active at once
    assert not a.active
    assert a.fenced
    assert b.epoch == 2


async def test_losing_the_database_makes_the_active_step_down(
    migrated_database_url: str, leases: Callable[..., Lease]
) -> None:
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    try:
        a = leases("a", dsn=dsn)
        await until(lambda: a.active)
        b = leases("b")
        proxy.break_("stall")  # a partition: the renewals time out
        await until(lambda: a.stepped_down.is_set())
        assert not a.active
        assert a.role == "fenced"
        await until(lambda: b.active)
        assert b.epoch == 2
        proxy.heal()
        # Must stay (an absence): two lease periods in which the fenced one must stay down.
        await asyncio.sleep(TTL * 2)
        assert not a.active  # a fenced instance never becomes active again
    finally:
        await proxy.close()


def _call(epoch: int, outcome: str, ended: float) -> list[Record]:
    call = "1772442000.7"
    base = {"call_id": call, "epoch": epoch}
    return [
        {
            "k": "arrival",
            **base,
            "ticket": "T20260302-A0007",
            "number": "13900139007",
            "queue": "support",
            "priority": 5,
            "at": 1_772_442_000.0,
            "source": "pbx",
        },
        {
            "k": "end",
            **base,
            "channel": "PJSIP/trunk-00000007",
            "linkedid": call,
            "ticket": "T20260302-A0007",
            "number": "13900139007",
            "queue": "support",
            "original_queue": "support",
            "priority": 5,
            "arrived_at": 1_772_442_000.0,
            "arrival_source": "pbx",
            "answered_at": None,
            "answered_by": None,
            "talk_ended_at": None,
            "ended_at": ended,
            "end_source": "pbx",
            "outcome": outcome,
            "offers": 0,
            "wait_seconds": ended - 1_772_442_000.0,
        },
    ]


async def test_the_store_rejects_an_older_epochs_write_for_the_same_call(pg_pool: Pool) -> None:
    async with transaction(pg_pool) as conn:
        await apply_records(conn, _call(2, "abandoned_waiting", 1_772_442_002.6))
    async with transaction(pg_pool) as conn:  # the old active wakes up and writes its view
        await apply_records(conn, _call(1, "overflowed", 1_772_442_246.0))
        await apply_records(
            conn,
            [
                {
                    "k": "wrap_up",
                    "call_id": "1772442000.7",
                    "agent_id": "1001",
                    "seconds": 9.0,
                    "ended_at": 1_772_442_250.0,
                    "epoch": 1,
                }
            ],
        )
    row = await pg_pool.fetchrow(
        "select outcome, wait_seconds, wrap_up_seconds, epoch from calls where call_id = $1",
        "1772442000.7",
    )
    assert row is not None
    assert (row["outcome"], row["wrap_up_seconds"], row["epoch"]) == ("abandoned_waiting", None, 2)
    assert row["wait_seconds"] == pytest.approx(2.6)
    fenced = await pg_pool.fetch("select tbl, epoch, current from fenced_writes order by id")
    assert [tuple(r) for r in fenced] == [("calls", 1, 2), ("calls", 1, 2)]


async def test_a_newer_epoch_overwrites_an_older_one(pg_pool: Pool) -> None:
    async with transaction(pg_pool) as conn:
        await apply_records(conn, _call(1, "overflowed", 1_772_442_246.0))
    async with transaction(pg_pool) as conn:
        await apply_records(conn, _call(2, "abandoned_waiting", 1_772_442_002.6))
    row = await pg_pool.fetchrow("select outcome, epoch from calls")
    assert row is not None
    assert (row["outcome"], row["epoch"]) == ("abandoned_waiting", 2)
    assert await pg_pool.fetchval("select count(*) from fenced_writes") == 0


async def test_records_spilled_before_epochs_existed_still_write(pg_pool: Pool) -> None:
    old = [
        {k: v for k, v in r.items() if k != "epoch"}
        for r in _call(0, "abandoned_waiting", 1_772_442_003.0)
    ]
    async with transaction(pg_pool) as conn:
        await apply_records(conn, old)
    assert await pg_pool.fetchval("select epoch from calls") == 0
