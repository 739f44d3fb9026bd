"""The outbox against a real PostgreSQL made unreachable through a TCP proxy.

Thousands of synthetic calls (arrival, rings, answer, end) flow through the
Recorder while the proxy refuses, stalls or drops connections; after healing,
every call, offer, ticket, recording, customer and history row is in the
database exactly once. A writer killed with SIGKILL in the middle of an outage
leaves spill files that a new outbox replays, again exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from hotline.domain.effects import (
    CallAnswered,
    CallArrived,
    CallEnded,
    Fact,
    OfferEnded,
    OfferStarted,
)
from hotline.domain.model import OfferResult, Outcome
from hotline.store.db import Pool, create_pool
from hotline.store.opentickets import OpenTickets
from hotline.store.outbox import Outbox, OutboxClosed
from hotline.store.recordings import recording_path
from hotline.store.records import Record, Recorder, apply_records
from hotline.ticketno import MemorySequenceStore, TicketNumbers
from tests.support import eventually
from tests.tcp_proxy import BreakMode, TcpProxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_772_442_000.0
MONITOR = "/var/spool/asterisk/monitor"
CADENCE = 5.0


@dataclass
class Expected:
    """What the database must hold once everything is written."""

    calls: set[str] = field(default_factory=set)
    offers: set[str] = field(default_factory=set)
    tickets: set[str] = field(default_factory=set)
    recordings: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)


def synthetic_calls(count: int, seed: int) -> tuple[list[Fact], Expected]:
    """``count`` overlapping calls from a third as many callers (so tickets are reused),
    with Asterisk-like Uniqueids, ticket numbers from the real allocator and the
    call-to-ticket view, 0-2 unanswered rings, answers and abandons."""
    rng = Random(seed)
    view = OpenTickets(TicketNumbers("A", ZoneInfo("UTC"), MemorySequenceStore()).allocate)
    callers = [f"1{rng.choice('3578')}{rng.randrange(10**9):09d}" for _ in range(count // 3)]
    offers_per_ticket: dict[str, int] = {}
    expected = Expected()
    timed: list[tuple[float, int, Fact]] = []

    def emit(at: float, fact: Fact) -> None:
        timed.append((at, len(timed), fact))

    for index in range(count):
        arrived = T0 + index * 0.8 + rng.random()
        call_id = f"{int(arrived)}.{index + 100}"
        number = rng.choice(callers)
        ticket = view.ticket_for(number, arrived)
        queue = rng.choice(("support", "repairs"))
        expected.calls.add(call_id)
        expected.tickets.add(ticket)
        expected.numbers.add(number)
        emit(
            arrived, CallArrived(call_id, ticket, number, queue, rng.randint(0, 9), arrived, "pbx")
        )
        roll = rng.random()
        misses = 0 if roll < 0.15 else rng.randint(0, 2)
        answered = roll >= 0.25
        rings = misses + (1 if answered or roll >= 0.15 else 0)
        at = arrived + rng.uniform(0.1, 3.0)
        answered_at: float | None = None
        answered_by: str | None = None
        for ring in range(rings):
            offers_per_ticket[ticket] = offers_per_ticket.get(ticket, 0) + 1
            offer_id = f"hl-{ticket}-{offers_per_ticket[ticket]}"
            agent = f"{1001 + rng.randrange(40)}"
            last = ring == rings - 1
            result = OfferResult.NO_ANSWER
            if last and answered:
                result = OfferResult.ANSWERED
            elif last and misses < rings:
                result = OfferResult.CANCELLED
            ring_start = at + rng.uniform(0.05, 0.5)
            ended = ring_start + (15.0 if result is OfferResult.NO_ANSWER else rng.uniform(1, 14))
            expected.offers.add(offer_id)
            emit(at, OfferStarted(offer_id, call_id, agent, queue, ticket, at))
            emit(
                ended,
                OfferEnded(
                    offer_id, call_id, agent, queue, ticket, at, ring_start, "pbx", ended, "pbx",
                    result,
                ),
            )  # fmt: skip
            if result is OfferResult.ANSWERED:
                answered_at, answered_by = ended, agent
                expected.recordings.add(recording_path(MONITOR, ticket, offer_id))
                emit(
                    ended,
                    CallAnswered(call_id, agent, queue, ticket, arrived, ended, "pbx"),
                )
            at = ended + 0.01
        if answered:
            outcome = Outcome.ANSWERED
            ended_at = at + rng.uniform(20, 300)
        else:
            outcome = Outcome.ABANDONED_RINGING if rings else Outcome.ABANDONED_WAITING
            ended_at = at + rng.uniform(1, 30)
        expected.outcomes[call_id] = outcome.value
        emit(
            ended_at,
            CallEnded(
                call_id=call_id, channel=f"PJSIP/trunk-{index:08x}", linkedid=call_id,
                ticket=ticket, number=number, queue=queue, original_queue=queue, priority=0,
                arrived_at=arrived, arrival_source="pbx", answered_at=answered_at,
                answered_by=answered_by, talk_ended_at=ended_at if answered else None,
                ended_at=ended_at, end_source="pbx", outcome=outcome, offers=rings,
            ),
        )  # fmt: skip
    timed.sort(key=lambda item: (item[0], item[1]))
    return [fact for _, _, fact in timed], expected


async def assert_exactly_once(dsn: str, expected: Expected) -> None:
    """Every expected row is there once, nothing else is."""
    conn = await asyncpg.connect(dsn)
    try:

        async def column(sql: str) -> list[Any]:
            return [row[0] for row in await conn.fetch(sql)]

        calls = await column("select call_id from calls")
        assert len(calls) == len(expected.calls)
        assert set(calls) == expected.calls
        rows = await conn.fetch("select call_id, outcome from calls")
        outcomes = {row["call_id"]: row["outcome"] for row in rows}
        assert outcomes == expected.outcomes
        assert await column("select distinct state from calls") == ["completed"]
        offers = await column("select offer_id from call_offers")
        assert len(offers) == len(expected.offers)
        assert set(offers) == expected.offers
        tickets = await column("select number from tickets")
        assert len(tickets) == len(expected.tickets)
        assert set(tickets) == expected.tickets
        recordings = await column("select path from recordings")
        assert len(recordings) == len(expected.recordings)
        assert set(recordings) == expected.recordings
        phones = await column("select phone from customer_phones")
        assert len(phones) == len(expected.numbers)
        assert set(phones) == expected.numbers
        assert await conn.fetchval("select count(*) from customers") == len(expected.numbers)
        rows = await conn.fetch("select kind, count(*) from ticket_events group by kind")
        kinds = {row["kind"]: row["count"] for row in rows}
        assert kinds["created"] == len(expected.tickets)
        assert kinds["created"] + kinds.get("call_attached", 0) == len(expected.calls)
    finally:
        await conn.close()


async def count_calls(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("select count(*) from calls")
        return count
    finally:
        await conn.close()


def spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("spill-*.jsonl"))


async def feed(recorder: Recorder, facts: Iterable[Fact], every: int = 40) -> None:
    """Hand facts to the recorder as the engine would: in runs, yielding between them."""
    for index, fact in enumerate(facts, 1):
        recorder(fact)
        if index % every == 0:
            await asyncio.sleep(0)


async def wait_for(condition: Any, timeout: float = 30.0) -> None:
    await eventually(condition, timeout)


@pytest.fixture
async def proxied(migrated_database_url: str) -> AsyncIterator[tuple[TcpProxy, Pool]]:
    """A proxy in front of this test's database, and a pool that goes through it."""
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    pool = await create_pool(dsn, max_size=2, connect_timeout=0.5, command_timeout=5.0)
    try:
        yield proxy, pool
    finally:
        proxy.heal()
        await pool.close()
        await proxy.close()


def make_outbox(pool: Pool, folder: Path, **options: Any) -> Outbox:
    settings: dict[str, Any] = {
        "max_memory": 300,
        "batch_size": 200,
        "write_timeout": 1.0,
        "retry_initial": 0.02,
        "retry_max": 0.2,
        "fsync_interval": 0.02,
    }
    settings.update(options)
    return Outbox(pool, apply_records, folder, **settings)


@pytest.mark.parametrize("mode", ["refuse", "stall"])
async def test_an_outage_while_records_flow(
    migrated_database_url: str,
    proxied: tuple[TcpProxy, Pool],
    tmp_path: Path,
    mode: BreakMode,
) -> None:
    proxy, pool = proxied
    facts, expected = synthetic_calls(2400, seed=len(mode))
    outbox = make_outbox(pool, tmp_path)
    recorder = Recorder(outbox.put, ring_cadence=CADENCE, monitor_dir=MONITOR)
    outbox.start()
    third = len(facts) // 3

    await feed(recorder, facts[:third])
    await wait_for(lambda: outbox.written > 0)
    proxy.break_(mode)
    await feed(recorder, facts[third : 2 * third])
    await wait_for(lambda: outbox.retries >= 2)

    # The writer backs off, memory is empty, everything waits on disk.
    assert outbox.spilling
    assert outbox.last_error is not None
    assert outbox.in_memory == 0
    assert outbox.on_disk == outbox.backlog > 0
    assert spill_files(tmp_path)
    during = await count_calls(migrated_database_url)
    assert during < len(expected.calls)

    proxy.heal()
    await feed(recorder, facts[2 * third :])
    assert await outbox.flush(60)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.max_memory_seen <= 300
    assert outbox.dead == 0
    assert outbox.last_error is None
    assert not outbox.spilling
    assert spill_files(tmp_path) == []
    await outbox.close()


async def test_connections_dropped_again_and_again(
    migrated_database_url: str, proxied: tuple[TcpProxy, Pool], tmp_path: Path
) -> None:
    """Resets at random points, including between a COMMIT and its acknowledgement."""
    proxy, pool = proxied
    facts, expected = synthetic_calls(1500, seed=3)
    outbox = make_outbox(pool, tmp_path, batch_size=50)
    recorder = Recorder(outbox.put, ring_cadence=CADENCE, monitor_dir=MONITOR)
    outbox.start()

    async def saboteur() -> None:
        while True:
            # Not a wait: the fault injection's period (a reset every 15 ms).
            await asyncio.sleep(0.015)
            proxy.break_("drop")

    sabotage = asyncio.create_task(saboteur())
    try:
        await feed(recorder, facts, every=20)
        await wait_for(lambda: outbox.retries >= 5)
    finally:
        sabotage.cancel()
    assert await outbox.flush(60)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.dead == 0
    await outbox.close()


async def test_a_record_the_database_refuses_is_set_aside(
    migrated_database_url: str, pg_pool: Pool, tmp_path: Path
) -> None:
    facts, expected = synthetic_calls(60, seed=4)
    outbox = make_outbox(pg_pool, tmp_path)
    good: list[Record] = []
    recorder = Recorder(good.append, ring_cadence=CADENCE, monitor_dir=MONITOR)
    for fact in facts:
        recorder(fact)
    bad_result = {**next(r for r in good if r["k"] == "offer"), "offer_id": "x1", "result": "boom"}
    malformed = {"k": "offer", "offer_id": "x2"}
    unknown = {"k": "telepathy"}
    for record in [*good[:40], bad_result, malformed, unknown, *good[40:]]:
        outbox.put(record)
    outbox.start()
    assert await outbox.flush(30)

    await assert_exactly_once(migrated_database_url, expected)
    assert outbox.dead == 3
    lines = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    dead = [json.loads(line) for line in lines]
    assert [entry["record"]["offer_id"] for entry in dead[:2]] == ["x1", "x2"]
    assert "CheckViolationError" in dead[0]["error"]
    assert "KeyError" in dead[1]["error"]
    assert "unknown record kind" in dead[2]["error"]
    await outbox.close()


async def test_close_during_an_outage_keeps_everything_for_the_next_start(
    migrated_database_url: str, proxied: tuple[TcpProxy, Pool], pg_pool: Pool, tmp_path: Path
) -> None:
    proxy, pool = proxied
    facts, expected = synthetic_calls(300, seed=5)
    proxy.break_("refuse")
    first = make_outbox(pool, tmp_path, max_memory=10_000)
    first.start()
    await feed(Recorder(first.put, ring_cadence=CADENCE, monitor_dir=MONITOR), facts)
    await first.close(drain_timeout=0.2)
    with pytest.raises(OutboxClosed):
        first.put({"k": "arrival"})
    assert spill_files(tmp_path)
    assert await count_calls(migrated_database_url) == 0

    second = make_outbox(pg_pool, tmp_path)
    assert second.backlog == first.backlog > 0
    second.start()
    assert await second.flush(30)
    await assert_exactly_once(migrated_database_url, expected)
    assert spill_files(tmp_path) == []
    await second.close()


CHILD = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from hotline.log import configure_logging
    from hotline.store.db import create_pool
    from hotline.store.outbox import Outbox
    from hotline.store.records import apply_records

    async def main(dsn, folder, records_file):
        configure_logging(json=True)  # to stderr; stdout talks to the parent
        records = json.loads(open(records_file).read())
        half = len(records) // 2
        pool = await create_pool(dsn, max_size=2, connect_timeout=0.5, command_timeout=5)
        outbox = Outbox(pool, apply_records, folder, max_memory=100, batch_size=50,
                        write_timeout=1.0, retry_initial=0.02, retry_max=0.1)
        outbox.start()
        loop = asyncio.get_running_loop()
        for record in records[:half]:
            outbox.put(record)
        assert await outbox.flush(30)
        print("written", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # the parent breaks the proxy
        for record in records[half:]:
            outbox.put(record)
        while outbox.on_disk < len(records) - half or outbox.retries < 2:
            await asyncio.sleep(0.005)  # polls a condition (this child has no tests.support)
        print("spilled", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # the parent heals the proxy
        written = outbox.written
        while outbox.written < written + 50:
            await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of catching up

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_crash_during_an_outage_loses_nothing(
    migrated_database_url: str, pg_pool: Pool, tmp_path: Path
) -> None:
    facts, expected = synthetic_calls(800, seed=6)
    records: list[Record] = []
    recorder = Recorder(records.append, ring_cadence=CADENCE, monitor_dir=MONITOR)
    for fact in facts:
        recorder(fact)
    records_file = tmp_path / "records.json"
    records_file.write_text(json.dumps(records))
    folder = tmp_path / "outbox"
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        dsn,
        str(folder),
        str(records_file),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"written\n"
        proxy.break_("refuse")
        child.stdin.write(b"go\n")
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"spilled\n"
        proxy.heal()
        child.stdin.write(b"go\n")
        assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await proxy.close()
    half = len(records) // 2
    written_before_crash = await count_calls(migrated_database_url)
    assert written_before_crash < len(expected.calls)
    segments = spill_files(folder)
    assert segments
    # The crash may also have torn the last line of a segment.
    with segments[-1].open("ab") as handle:
        handle.write(b'{"k":"offer","offer_id":"hl-torn')

    replay = make_outbox(pg_pool, folder)
    # Everything not yet written, plus what was written from a segment not yet deleted.
    assert len(records) - half - 100 < replay.backlog <= len(records) - half + 1
    replay.start()
    assert await replay.flush(30)

    await assert_exactly_once(migrated_database_url, expected)
    assert replay.dead == 1
    (torn,) = [json.loads(line) for line in (folder / "dead-letter.jsonl").read_text().splitlines()]
    assert torn["error"] == "torn line at the end of a spill file"
    assert spill_files(folder) == []
    await replay.close()
    assert os.listdir(folder) == ["dead-letter.jsonl"]
