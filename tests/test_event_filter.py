"""The shipped AMI event filter (``asterisk/manager.conf``) and the service behind it.

``manager.conf`` gives the backend's manager user one Asterisk 22 advanced filter
line, ``eventfilter(action(include),name(<Event>)) =``, per event the backend
reads, so Asterisk drops the rest before it reaches the socket
(``backend_answered_filtered.jsonl``). These tests read that list from the file
and check that

- it is exactly the set of events the translator reads, and every event of every
  recorded trace that the translator turns into a domain event is in it;
- the simulated PBX, filtering to that list, delivers a recorded answered call as
  the filtered recording does, minus the events the list leaves out;
- the real service, behind a sim that filters to that list, routes a call centre
  with every outcome exactly as the sim's ground truth says, and records each
  callback's customer outcome (from ``DialEnd``) as the ground truth has it.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from hotline.ami.client import AmiClient, AmiSettings
from hotline.ami.codec import Message
from hotline.clock import SystemClock, virtual_clock_of
from hotline.domain.effects import CallEnded, OfferEnded
from hotline.domain.model import Outcome
from hotline.pbx.translate import TRANSLATED_EVENTS, translate
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import start_stack
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario
from hotline.store.callbacks import Callbacks
from hotline.store.tickets import Tickets
from hotline.traces import default_trace_dir, load_trace
from hotline.web.keys import STORE
from tests.e2e_support import OUTCOMES, QUEUES, call_centre, ground_truth_calls, wait_settled
from tests.simtrace import NOISE, parse, replay
from tests.test_deploy_artifacts import ASTERISK, read_conf
from tests.test_e2e_callbacks import BUSY_DELAY, RETRY_DELAY, wait_until_resolved
from tests.test_e2e_callbacks import scenario as callback_scenario

pytestmark = pytest.mark.e2e

_FILTER_LINE = re.compile(r"^eventfilter\(action\(include\),name\((?P<name>[A-Za-z]+)\)\)$")


def shipped_event_filter() -> frozenset[str]:
    """The event names of the ``eventfilter`` lines of the hotline user in manager.conf."""
    user = read_conf(ASTERISK / "manager.conf").one("hotline")
    names = []
    for key, value in user.entries:
        if not key.startswith("eventfilter"):
            continue
        match = _FILTER_LINE.match(key)
        assert match, f"not an include-by-name filter: {key!r}"
        assert value == "", f"{key}: a match expression would filter on the payload too"
        names.append(match["name"])
    assert len(names) == len(set(names)), "a filter line is repeated"
    return frozenset(names)


def test_the_shipped_filter_passes_exactly_the_events_the_translator_reads() -> None:
    shipped = shipped_event_filter()
    assert shipped, "manager.conf ships no event filter"
    missing = TRANSLATED_EVENTS - shipped
    assert not missing, f"the translator reads {sorted(missing)}, which manager.conf drops"
    unused = shipped - TRANSLATED_EVENTS
    assert not unused, f"manager.conf passes {sorted(unused)}, which nothing reads"


def test_every_event_of_the_traces_the_service_acts_on_passes_the_filter() -> None:
    """Behaviour, not the table: whatever the translator makes something of is let through."""
    shipped = shipped_event_filter()
    acted_on: set[str] = set()
    for path in sorted(default_trace_dir().glob("*.jsonl")):
        for entry in load_trace(path):
            if entry.dir != "recv" or not entry.raw.startswith("Event:"):
                continue
            message = parse(entry.raw)
            if message is not None and translate(message, entry.t) is not None:
                acted_on.add(message.name)
    assert {"UserEvent", "OriginateResponse", "Newstate", "Hangup"} <= acted_on
    assert acted_on <= shipped, f"dropped by manager.conf: {sorted(acted_on - shipped)}"


async def test_the_sim_filtering_to_the_shipped_list_delivers_the_filtered_recording() -> None:
    """The answered call of ``backend_answered_filtered`` through the shipped filter: exactly
    the recording's events whose names the shipped list keeps (plus the login's
    FullyBooted, which Asterisk never filters), and every reply."""
    shipped = shipped_event_filter()
    user = ServerCredentials("filtered", "filtered-secret", event_filter=shipped)
    clock = virtual_clock_of()
    assert clock is not None, "the e2e tier runs on a virtual clock"
    sim = SimPbx(Scenario(name="filtered"), credentials=user, clock=clock)
    await sim.start()
    try:
        trace, replayed = await replay("backend_answered_filtered", sim.port, clock)
    finally:
        await sim.close()
    assert sim.errors == []

    def events(messages: list[Message]) -> collections.Counter[str]:
        # The trace's actions (DBPut, Originate, Logoff) have no event-list replies.
        return collections.Counter(m.name for m in messages if m.kind == "event")

    recorded = events(trace.messages)
    assert sum(recorded.values()) == 33  # the README row's figure
    kept = collections.Counter({n: c for n, c in recorded.items() if n in shipped})
    kept["FullyBooted"] = recorded["FullyBooted"]
    got = events(replayed.messages)
    assert got == kept
    assert not set(got) & NOISE
    # The budget (ARCHITECTURE.md 6) is at most 35 events on the wire per answered call.
    assert sum(got.values()) == 30
    replies = [m for m in replayed.messages if m.kind == "response"]
    assert [m.get("ActionID") for m in replies] == [
        m.get("ActionID") for m in trace.messages if m.kind == "response"
    ]


async def _names_received(client: AmiClient, seen: set[str], stop: asyncio.Event) -> None:
    subscription = client.subscribe("filter-tap", maxsize=1_000_000)
    try:
        while not stop.is_set():
            for item in await subscription.get_batch():
                if isinstance(item, Message):
                    seen.add(item.name)
    finally:
        subscription.close()


async def test_the_service_behind_the_shipped_filter_matches_the_ground_truth() -> None:
    calls = 150
    shipped = shipped_event_filter()
    stack = await start_stack(
        call_centre(calls, seed=17, rate_per_minute=24), queues=QUEUES, event_filter=shipped
    )
    seen: set[str] = set()
    stop = asyncio.Event()
    tap = asyncio.create_task(_names_received(stack.engine.ami, seen, stop))
    try:
        await stack.login_all()
        stack.sim.start_arrivals()
        await wait_settled(stack)
        truth = ground_truth_calls(stack)
        assert len(truth) == calls
        assert stack.sim.errors == []
        assert stack.sim.events_sent > 0

        ended = {f.call_id: f for f in stack.facts if isinstance(f, CallEnded)}
        assert len([f for f in stack.facts if isinstance(f, CallEnded)]) == len(ended)
        assert set(ended) == set(truth), "every caller accounted for, once"
        offers: dict[str, list[OfferEnded]] = defaultdict(list)
        for fact in stack.facts:
            if isinstance(fact, OfferEnded):
                offers[fact.call_id].append(fact)
        for call_id, record in truth.items():
            fact = ended[call_id]
            assert fact.outcome is OUTCOMES[(record["outcome"], record["abandoned_while"])]
            assert fact.arrived_at == pytest.approx(record["arrived_at"], abs=1e-6)
            if record["outcome"] == "answered":
                assert f"Local/{fact.answered_by}@agents" == record["answered_by"]
                assert fact.answered_at == pytest.approx(record["answered_at"], abs=1e-6)
            ours = sorted(offers[call_id], key=lambda o: o.requested_at)
            for ring, offer in zip(record["rings"], ours, strict=False):
                assert ring["agent"] == f"Local/{offer.agent_id}@agents"
                assert offer.result.value == ring["outcome"], (call_id, ring)
                assert offer.ended_at == pytest.approx(ring["ring_end"], abs=1e-6)
                if ring["ring_start"] is not None:
                    assert offer.ring_start_source == "pbx"
                    assert offer.ring_started_at == pytest.approx(ring["ring_start"], abs=1e-6)
        # Every event the engine read, over every call: well inside the budget of 35 per
        # answered call (about 99 per call without the filter).
        assert stack.engine.events_processed <= 35 * calls
        outcomes = {fact.outcome for fact in ended.values()}
        assert outcomes >= {Outcome.ANSWERED, Outcome.ABANDONED_WAITING, Outcome.ABANDONED_RINGING}
        assert {r["outcome"] for t in truth.values() for r in t["rings"]} >= {
            "answered",
            "no_answer",
            "busy",
        }
    finally:
        stop.set()
        tap.cancel()
        await stack.close()
    # The filter really was on: only the shipped events (and the login's FullyBooted) came.
    assert {"UserEvent", "OriginateResponse", "Newstate"} <= seen
    assert seen <= shipped | {"FullyBooted"}, sorted(seen - shipped)


async def test_callbacks_behind_the_shipped_filter_record_the_customers_outcome(
    migrated_database_url: str, tmp_path: Path
) -> None:
    """Callbacks read the customer's answer from DialEnd: it must come through the filter."""
    stack = await start_stack(
        callback_scenario(),
        queues=[{"name": "support", "ring_timeout": 15, "wrap_up": 2}],
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        tickets={
            "callback_poll_interval": 1.0,
            "callback_max_attempts": 3,
            "callback_retry_delays": [RETRY_DELAY],
            "callback_busy_delay": BUSY_DELAY,
        },
        event_filter=shipped_event_filter(),
    )
    try:
        pool = stack.app[STORE].pool
        now = datetime.fromtimestamp(stack.clock.now(), UTC)
        for i in range(12):
            ticket = f"T20261126-F{i:04d}"
            await Tickets(pool).create(ticket, actor="test", queue="support")
            await Callbacks(pool).schedule(
                ticket, phone=f"1380014{i:04d}", due_at=now, actor="test"
            )
        await stack.login_all()
        await wait_until_resolved(migrated_database_url, timeout=90)
        assert await stack.app[STORE].outbox.flush(30)
        conn = await asyncpg.connect(migrated_database_url)
        try:
            attempts = await conn.fetch("select result, note from callback_attempts")
        finally:
            await conn.close()
    finally:
        await stack.close()
    truth = {r["leg_id"]: r for r in stack.sim.ground_truth if r["type"] == "callback"}
    results = {"answered": "answered", "no_answer": "no_answer", "busy": "busy", None: "failed"}
    assert attempts
    for attempt in attempts:
        record = truth[attempt["note"].removeprefix("leg ")]
        assert attempt["result"] == results[record["customer_outcome"]]
    assert {a["result"] for a in attempts} >= {"answered", "no_answer"}


async def test_the_sim_filters_events_but_never_responses_or_list_items() -> None:
    """A caller waits: its UserEvent passes the shipped filter, its Newexten/VarSet/DialBegin
    do not, and the resync's lists (CoreShowChannels, Status, DeviceStateList) come whole."""
    shipped = shipped_event_filter()
    sim = SimPbx(
        Scenario(name="filtered"),
        clock=virtual_clock_of() or SystemClock(),
        credentials=ServerCredentials("hotline", "s3cret", event_filter=shipped),
    )
    await sim.start()
    client = AmiClient(AmiSettings.from_url(f"ami://hotline:s3cret@127.0.0.1:{sim.port}"))
    events = client.subscribe("test", maxsize=100_000)
    await client.start()
    try:
        await client.wait_connected(10)
        originate = {
            "Channel": "Local/13900139000@callers",
            "Context": "hotline-inbound",
            "Exten": "400",
            "Priority": "1",
            "CallerID": "13900139000",
            "Variable": "PATIENCE=600",
            "Async": "true",
        }
        (await client.action("Originate", originate)).raise_for_error()
        seen: list[str] = []
        async with asyncio.timeout(30):
            while "UserEvent" not in seen:
                item = await events.get()
                if isinstance(item, Message):
                    seen.append(item.name)
        channels = (await client.action("CoreShowChannels")).raise_for_error()
        statuses = (await client.action("Status", {"Variables": "HOTLINE_QUEUE"})).raise_for_error()
        devices = (await client.action("DeviceStateList")).raise_for_error()
    finally:
        await client.close()
        await sim.close()
    assert set(seen) - {"FullyBooted"} <= shipped, sorted(set(seen) - shipped)
    assert {"Newchannel", "UserEvent"} <= set(seen)
    assert len(channels.events) == 2  # the caller's ;1 and ;2, not filtered
    assert {m.name for m in channels.events} == {"CoreShowChannel"}
    assert channels.complete is not None
    assert channels.complete.name == "CoreShowChannelsComplete"
    assert {m.name for m in statuses.events} == {"Status"}
    assert "HOTLINE_QUEUE=support" in {m.get("Variable") for m in statuses.events}
    assert devices.complete is not None
