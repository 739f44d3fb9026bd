"""The service against a hostile PBX: malformed values, a flood, a list that never ends.

The real service (aiohttp app, AMI client, engine, PostgreSQL store) runs against the
simulated PBX over loopback TCP. The sim serves the normal calls; the test makes it
hostile by rewriting some of its events on the wire and by writing crafted bytes
(NUL included, which the sim itself refuses to send) straight into its sessions.
After each attack a normal caller is still routed and answered, and memory stays
bounded: what the client holds for a list, and what waits in the engine's
subscription, are sampled between the hostile writes (never timed).
"""

from __future__ import annotations

import asyncio
import gc
import math
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.ami.codec import Message
from hotline.domain.effects import CallArrived, CallEnded, OfferEnded
from hotline.domain.model import Outcome
from hotline.pbx.translate import PRIORITY_RANGE
from hotline.sim.amiserver import AmiSession
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrival, Fixed, Scenario
from tests.support import hold, scenario_until

pytestmark = pytest.mark.e2e

Pairs = list[tuple[str, str]]

SCENARIO = Scenario(
    name="hostile",
    seed=9,
    noise=True,
    time_scale=20.0,
    agents=(
        AgentGroup(
            ("Local/2001@agents", "Local/2002@agents", "Local/2003@agents"),
            AgentBehaviour(answer_delay=Fixed(2.0), talk=Fixed(4.0)),
        ),
    ),
)


async def eventually(stack: Stack, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition`` (the state of other tasks) with a generous limit, checking it
    every 50 ms of scenario time: on the virtual clock a wall-time poll would let a waiting
    caller's patience run out unseen."""
    await scenario_until(stack.clock, condition, timeout, what="the condition")


def caller(number: str, name: str = "Normal Caller", priority: int = 0) -> Arrival:
    return Arrival(
        at=0.0,
        number=number,
        name=name,
        queue="support",
        priority=priority,
        skills=(),
        lang=None,
        patience=300.0,
    )


def ended(stack: Stack, number: str) -> list[CallEnded]:
    return [f for f in stack.facts if isinstance(f, CallEnded) and f.number == number]


async def answered(stack: Stack, number: str) -> CallEnded:
    """Place a normal caller on the sim; wait until the service records it answered."""
    stack.sim.core.arrive(caller(number))
    await eventually(stack, lambda: bool(ended(stack, number)))
    [call] = ended(stack, number)
    assert call.outcome is Outcome.ANSWERED, call
    return call


def raw(pairs: Pairs) -> bytes:
    """One AMI message, byte for byte, whatever its values hold (NUL too)."""
    return "".join(f"{key}: {value}\r\n" for key, value in pairs).encode() + b"\r\n"


def inject(stack: Stack, data: bytes) -> None:
    """Write crafted bytes to every logged-in AMI session of the sim."""
    for session in list(stack.sim.server.sessions):
        if session.authenticated:
            session.write(data)


class Tamper:
    """Rewrites chosen events of the sim on their way to the wire (see :meth:`install`)."""

    def __init__(self, stack: Stack) -> None:
        self.server = stack.sim.server
        self.rules: dict[str, Callable[[Pairs], Pairs]] = {}
        self.rewritten = 0
        self._broadcast = self.server.broadcast

    def caller(self, number: str, rewrite: Callable[[Pairs], Pairs]) -> None:
        """Rewrite the ``HotlineCallWaiting`` of the caller with this number."""
        self.rules[number] = rewrite

    def install(self) -> None:
        server = self.server
        original = self._broadcast

        def broadcast(pairs: Pairs, *, timestamp: bool = True) -> None:
            values = dict(pairs)
            rule = self.rules.get(values.get("CallerIDNum", ""))
            if rule is None or values.get("UserEvent") != "HotlineCallWaiting":
                original(pairs, timestamp=timestamp)
                return
            if timestamp:
                pairs = [pairs[0], pairs[1], ("Timestamp", f"{server.now():.6f}"), *pairs[2:]]
            self.rewritten += 1
            data = raw(rule(list(pairs)))
            for session in list(server.sessions):
                if session.authenticated:
                    session.write(data)

        server.broadcast = broadcast  # type: ignore[method-assign]


def setting(pairs: Pairs, **values: str) -> Pairs:
    """``pairs`` with the given headers' values replaced."""
    return [(key, values.get(key, value)) for key, value in pairs]


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        SCENARIO,
        queues=[{"name": "support", "wrap_up": 1.0}],
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
    )
    yield running
    await running.close()


async def scrape(stack: Stack) -> str:
    async with stack.session.get(f"{stack.base_url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def assert_no_nan(text: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not math.isnan(sample.value), sample


async def test_malformed_callers_are_cleaned_or_dropped_and_routing_goes_on(
    stack: Stack, migrated_database_url: str
) -> None:
    await stack.login_all()
    tamper = Tamper(stack)
    tamper.caller(
        "13900000001",
        lambda p: setting(
            p,
            Timestamp="nan",
            CallerIDNum="1390000\x000001",
            CallerIDName="Evil\x00\x07 Name\x1b[2J",
            HotlinePriority="9" * 30,
        ),
    )
    tamper.caller(
        "13900000002", lambda p: setting(p, Timestamp="1e300", HotlinePriority="-" + "9" * 20)
    )
    tamper.caller("13900000003", lambda p: setting(p, Timestamp="-inf"))
    tamper.install()
    for number in ("13900000001", "13900000002", "13900000003"):
        stack.sim.core.arrive(caller(number, name="Hostile"))
    # Waiting events without a Uniqueid or a Channel, and odd values in other events.
    stamp = f"{stack.clock.now():.6f}"
    channel = ("Channel", "Local/13900000009@callers-0000ffff;1")
    user, calls_class = ("Privilege", "user,all"), ("Privilege", "call,all")
    waiting = ("UserEvent", "HotlineCallWaiting")
    hostile = [
        [("Event", "UserEvent"), user, ("Timestamp", stamp), ("Uniqueid", ""), channel, waiting],
        [("Event", "UserEvent"), user, ("Timestamp", stamp), ("Uniqueid", "1795799999.9"), waiting],
        [
            ("Event", "UserEvent"),
            user,
            ("Timestamp", "nan"),
            channel,
            ("Uniqueid", "\x00"),
            waiting,
        ],
        [
            ("Event", "Newstate"),
            calls_class,
            ("Timestamp", "inf"),
            channel,
            ("ChannelState", "9" * 40),
        ],
        [("Event", "Hangup"), calls_class, ("Timestamp", "1e300"), channel, ("Cause", "nan")],
        [
            ("Event", "DeviceStateChange"),
            calls_class,
            ("Device", "Local/2001@agents\x00"),
            ("State", "\x07"),
        ],
    ]
    inject(stack, b"".join(raw(pairs) for pairs in hostile))
    for number in ("13900000001", "13900000002", "13900000003"):
        await eventually(stack, lambda number=number: bool(ended(stack, number)))  # type: ignore[misc]
    assert tamper.rewritten == 3
    assert stack.engine.rejected["caller_without_id"] == 3
    assert stack.engine.alive
    assert sum(stack.engine.errors.values()) == 0

    arrivals = {f.number: f for f in stack.facts if isinstance(f, CallArrived)}
    assert set(arrivals) >= {"13900000001", "13900000002", "13900000003"}
    assert "13900000009" not in arrivals  # never a caller with an empty id
    assert arrivals["13900000001"].priority == PRIORITY_RANGE[1]
    assert arrivals["13900000002"].priority == PRIORITY_RANGE[0]
    for number in ("13900000001", "13900000002", "13900000003"):
        assert arrivals[number].source == "recv"  # the receive time replaced the absurd stamp
        [call] = ended(stack, number)
        assert call.outcome is Outcome.ANSWERED
        assert 0 <= call.wait_seconds < 3600  # finite, and not measured from a 1e300 stamp
    assert all(f.call_id for f in stack.facts if isinstance(f, OfferEnded))

    # Every call is in PostgreSQL, control characters removed, and the refused ones are not.
    query = "select caller_number, outcome from calls where caller_number like '1390000000%'"
    connection = await asyncpg.connect(migrated_database_url)
    try:
        # Waiting on PostgreSQL only: the scenario stands still meanwhile.
        with hold(stack.clock):
            async with asyncio.timeout(60):
                while True:
                    calls = {row[0]: row[1] for row in await connection.fetch(query)}
                    if len(calls) >= 3 and all(calls.values()):
                        break
                    await asyncio.sleep(0.05)  # the outbox writes in its own task
    finally:
        await connection.close()
    assert calls == dict.fromkeys(("13900000001", "13900000002", "13900000003"), "answered")

    assert_no_nan(await scrape(stack))
    text = await scrape(stack)
    assert 'hotline_pbx_events_rejected_total{reason="caller_without_id"} 3.0' in text
    await answered(stack, "13900000100")


class DurationBomb:
    """Wraps the sim's ``CoreShowChannels``: every item's ``Duration`` is 1 and 400 zeros."""

    def __init__(self, handler: Callable[[AmiSession, Message], Any]) -> None:
        self.handler = handler
        self.served = 0

    def __call__(self, session: AmiSession, message: Message) -> Any:
        self.served += 1
        return self.handler(_RewritingSession(session), message)  # type: ignore[arg-type]


class _RewritingSession:
    def __init__(self, session: AmiSession) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def send(self, pairs: Pairs) -> None:
        if pairs and pairs[0] == ("Event", "CoreShowChannel"):
            pairs = setting(pairs, Duration="1" + "0" * 400)
        self._session.send(pairs)


async def test_a_resync_with_an_overflowing_duration_adopts_the_caller(stack: Stack) -> None:
    stack.sim.core.arrive(caller("13900000200"))  # nobody is logged in: the caller waits
    await eventually(
        stack, lambda: any(c.number == "13900000200" for c in stack.engine.router.live_calls())
    )
    server = stack.sim.server
    bomb = DurationBomb(server.handlers["coreshowchannels"])
    server.register("CoreShowChannels", bomb)
    resyncs = stack.engine.resyncs
    server.drop_all()
    await eventually(stack, lambda: stack.engine.resyncs > resyncs)
    assert bomb.served >= 1
    assert stack.engine.alive
    assert stack.engine.errors["resync"] == 0  # the edge read the Duration as unreadable
    await stack.login_all()
    await eventually(stack, lambda: bool(ended(stack, "13900000200")))
    [call] = ended(stack, "13900000200")
    assert call.outcome is Outcome.ANSWERED
    assert math.isfinite(call.wait_seconds)
    await answered(stack, "13900000201")


class EndlessChannels:
    """A ``CoreShowChannels`` that starts a list and never completes it, sampling what the
    client holds for the list between its writes."""

    def __init__(self, stack: Stack) -> None:
        self.client = stack.engine.ami
        self.sent_items = 0
        self.sent_bytes = 0
        self.peak_items = 0
        self.streams = 0

    def __call__(self, session: AmiSession, message: Message) -> Any:
        self.streams += 1
        return self._stream(session, message)

    async def _stream(self, session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID") or ""
        session.send_response(message, "Success", [("EventList", "start")])
        while not session.closed:
            for _ in range(100):
                n = self.sent_items
                item = [("Event", "CoreShowChannel"), ("ActionID", action_id)]
                item += [("Channel", f"Local/{n}@callers-{n:08x};1"), ("Uniqueid", f"1.{n}")]
                item += [("Duration", "00:00:01"), ("Padding", "x" * 500)]
                data = raw(item)
                session.write(data)
                self.sent_items += 1
                self.sent_bytes += len(data)
            await asyncio.sleep(0)
            held = sum(len(result.events) for result in self.client.lists_in_progress())
            self.peak_items = max(self.peak_items, held)


async def test_a_list_that_never_ends_is_cut_and_the_service_recovers(stack: Stack) -> None:
    await stack.login_all()
    client = stack.engine.ami
    client.settings = replace(client.settings, max_list_items=2000)
    server = stack.sim.server
    normal = server.handlers["coreshowchannels"]
    endless = EndlessChannels(stack)
    server.register("CoreShowChannels", endless)
    generation = client.generation
    server.drop_all()
    await eventually(stack, lambda: endless.streams >= 1 and client.generation >= generation + 2)
    server.register("CoreShowChannels", normal)
    # The next reconnect (or the one after) resyncs normally.
    await eventually(stack, lambda: stack.engine.synced.is_set() and not client.lists_in_progress())
    assert endless.sent_items > 2000
    assert endless.peak_items <= 2000
    assert stack.engine.alive
    await answered(stack, "13900000300")


def flood(count: int) -> Iterator[bytes]:
    """Events in chunks of 500: noise, refused callers, unknown channels, odd values."""
    chunk: list[bytes] = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            pairs = [("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Variable", "X")]
            pairs += [("Value", "y" * 200), ("Uniqueid", f"1795700000.{n}")]
        elif kind == 1:
            pairs = [("Event", "UserEvent"), ("Privilege", "user,all"), ("Timestamp", "nan")]
            pairs += [("UserEvent", "HotlineCallWaiting"), ("Channel", ""), ("Uniqueid", "")]
        elif kind == 2:
            pairs = [("Event", "Hangup"), ("Privilege", "call,all"), ("Timestamp", "1e300")]
            pairs += [("Channel", f"SIP/x-{n}"), ("Uniqueid", f"1795700000.{n}"), ("Cause", "x")]
        else:
            pairs = [("Event", "Newstate"), ("Privilege", "call,all"), ("Channel", f"X/{n}")]
            pairs += [("Uniqueid", f"1795700000.{n}"), ("ChannelState", "-" + "9" * 30)]
        chunk.append(raw(pairs))
        if len(chunk) == 500:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


async def test_an_event_flood_is_absorbed_and_routing_goes_on(stack: Stack) -> None:
    await stack.login_all()
    engine = stack.engine
    events = 20_000
    flood_bytes = 0
    peak = 0
    live_before = len(stack.engine.router.calls)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for data in flood(events):
            inject(stack, data)
            flood_bytes += len(data)
            await asyncio.sleep(0)
            peak = max(peak, engine.pending)
        await eventually(stack, lambda: stack.engine.rejected["caller_without_id"] == events // 4)
        await eventually(stack, lambda: engine.pending == 0)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Nothing of the flood is kept: no junk caller, and far less memory than the flood's bytes.
    assert len(stack.engine.router.calls) == live_before
    assert retained < flood_bytes / 10, (retained, flood_bytes)
    assert peak < engine.queue_size  # the engine kept up: no overflow, no reconnect
    assert stack.engine.ami.generation == 1
    assert stack.engine.alive
    assert sum(stack.engine.errors.values()) == 0
    assert_no_nan(await scrape(stack))
    await answered(stack, "13900000400")
