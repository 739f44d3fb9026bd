"""Bounded event lists: a list reply past its item or byte cap is a protocol error and a reconnect.

A hostile (or broken) PBX answers ``CoreShowChannels`` with ``EventList: start`` and
then items forever. Memory is measured as what the client holds for the list, sampled
by the server between its writes (same event loop), never by time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest

from hotline.ami.client import (
    AmiClient,
    AmiListTooLong,
    AmiSettings,
    Connected,
    Disconnected,
    Subscription,
)
from hotline.ami.codec import Message
from hotline.config import ConfigError, parse_settings
from hotline.sim.amiserver import AmiServer, AmiSession, ServerCredentials

pytestmark = pytest.mark.integration


class EndlessList:
    """A ``CoreShowChannels`` handler that never sends the ``...Complete`` event."""

    def __init__(self, client: AmiClient, *, padding: int = 0) -> None:
        self.client = client
        self.padding = "x" * padding
        self.sent_items = 0
        self.sent_bytes = 0
        self.peak_items = 0
        self.peak_bytes = 0
        self.finished = asyncio.Event()

    def __call__(self, session: AmiSession, message: Message) -> Awaitable[None]:
        return self._stream(session, message)

    def _held(self) -> tuple[int, int]:
        """What the client holds for every list in progress (items, bytes of text)."""
        items = held = 0
        for result in self.client.lists_in_progress():
            items += len(result.events)
            held += sum(len(event.text) for event in result.events)
        return items, held

    async def _stream(self, session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID") or ""
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Channels will follow")]
        )
        try:
            while not session.closed:
                for _ in range(50):
                    n = self.sent_items
                    pairs = [
                        ("Event", "CoreShowChannel"),
                        ("ActionID", action_id),
                        ("Channel", f"Local/{n}@callers-{n:08x};1"),
                        ("Uniqueid", f"1795712164.{n}"),
                        ("Padding", self.padding),
                    ]
                    session.send(pairs)
                    self.sent_items += 1
                    self.sent_bytes += sum(len(k) + len(v) + 4 for k, v in pairs)
                await asyncio.sleep(0)
                items, held = self._held()
                self.peak_items = max(self.peak_items, items)
                self.peak_bytes = max(self.peak_bytes, held)
        finally:
            self.finished.set()


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    srv = AmiServer(credentials=ServerCredentials("hotline", "s3cret"))
    await srv.start()
    yield srv
    await srv.close()


def drain(subscription: Subscription) -> list[Message | Connected | Disconnected]:
    """Everything waiting in ``subscription``, taken at once (no await in between)."""
    items: list[Message | Connected | Disconnected] = []
    while (item := subscription.get_nowait()) is not None:
        items.append(item)
    return items


def client_for(server: AmiServer, **overrides: object) -> AmiClient:
    settings = AmiSettings.from_url(
        f"ami://hotline:s3cret@127.0.0.1:{server.port}",
        reconnect_min=0.05,
        reconnect_max=0.2,
        ping_interval=60.0,
        **overrides,
    )
    return AmiClient(settings)


async def test_a_list_that_never_completes_is_cut_at_its_item_cap(server: AmiServer) -> None:
    client = client_for(server, max_list_items=500)
    endless = EndlessList(client)
    server.register("CoreShowChannels", endless)
    sub = client.subscribe("test", lossless=True)
    await client.start()
    try:
        await client.wait_connected(5)
        with pytest.raises(AmiListTooLong, match="500"):
            await client.action("CoreShowChannels", timeout=60)
        await asyncio.wait_for(endless.finished.wait(), 10)  # the connection was dropped
        assert endless.sent_items > 500
        assert endless.peak_items <= 500
        assert client.lists_in_progress() == []
        # ... and the client reconnects by itself.
        await client.wait_connected(10)
        signals: list[Connected | Disconnected] = []
        while len(signals) < 3:
            item = await asyncio.wait_for(sub.get(), 10)
            if isinstance(item, Connected | Disconnected):
                signals.append(item)
        assert [type(s).__name__ for s in signals] == ["Connected", "Disconnected", "Connected"]
        assert isinstance(signals[1], Disconnected)
        assert "protocol error" in signals[1].reason
        ping = await client.action("Ping", timeout=5)
        assert ping.ok
    finally:
        await client.close()


async def test_a_list_that_never_completes_is_cut_at_its_byte_cap(server: AmiServer) -> None:
    cap = 256 * 1024
    client = client_for(server, max_list_bytes=cap)
    endless = EndlessList(client, padding=2000)
    server.register("CoreShowChannels", endless)
    await client.start()
    try:
        await client.wait_connected(5)
        with pytest.raises(AmiListTooLong, match="bytes"):
            await client.action("CoreShowChannels", timeout=60)
        await asyncio.wait_for(endless.finished.wait(), 10)
        assert endless.sent_bytes > 2 * cap
        assert endless.peak_bytes <= cap
        await client.wait_connected(10)
    finally:
        await client.close()


async def test_a_list_within_its_caps_completes(server: AmiServer) -> None:
    def channels(session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID") or ""
        session.send_response(message, "Success", [("EventList", "start")])
        for n in range(300):
            session.send([("Event", "CoreShowChannel"), ("ActionID", action_id), ("N", str(n))])
        session.send(
            [
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
                ("ListItems", "300"),
            ]
        )

    server.register("CoreShowChannels", channels)
    client = client_for(server, max_list_items=300)
    await client.start()
    try:
        await client.wait_connected(5)
        result = await client.action("CoreShowChannels", timeout=10)
        assert len(result.events) == 300
        assert result.complete is not None
    finally:
        await client.close()


def test_the_caps_are_configurable_and_checked() -> None:
    base = {
        "queues": [{"name": "support"}],
        "agents": [{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
    }
    default = parse_settings(base, env={})
    assert (default.ami.max_list_items, default.ami.max_list_bytes) == (100_000, 64 * 1024 * 1024)
    settings = parse_settings(
        {**base, "ami": {"max_list_items": 5000, "max_list_bytes": 1_048_576}}, env={}
    )
    assert (settings.ami.max_list_items, settings.ami.max_list_bytes) == (5000, 1_048_576)
    with pytest.raises(ConfigError, match=r"ami\.max_list_items"):
        parse_settings({**base, "ami": {"max_list_items": 0}}, env={})
    with pytest.raises(ConfigError, match=r"ami\.max_list_bytes"):
        parse_settings({**base, "ami": {"max_list_bytes": "big"}}, env={})


async def test_a_flood_of_large_events_is_bounded_in_bytes_too(server: AmiServer) -> None:
    client = client_for(server)
    cap = 512 * 1024
    engine = client.subscribe("engine", lossless=True, maxsize=100_000, max_bytes=cap)
    tap = client.subscribe("tap", maxsize=100_000, max_bytes=cap)
    await client.start()
    try:
        await client.wait_connected(5)
        big = "y" * 60_000
        for n in range(40):  # 2.4 MB of events nobody consumes
            server.broadcast([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Seq", str(n))])
            server.broadcast([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Value", big)])
        async with asyncio.timeout(10):
            while not engine.overflows:  # noqa: ASYNC110 - the client reads in its protocol
                await asyncio.sleep(0.01)
        # What waits in each subscription right now (taken without yielding to the loop).
        items: list[Message | Connected | Disconnected] = drain(engine)
        queued = sum(len(item.text) for item in items if isinstance(item, Message))
        assert 0 < queued <= cap
        assert sum(len(item.text) for item in drain(tap) if isinstance(item, Message)) <= cap
        assert tap.dropped > 0
        while not any(isinstance(i, Connected) and i.generation == 2 for i in items):
            items.extend(await asyncio.wait_for(engine.get_batch(), 10))
        [lost] = [item for item in items if isinstance(item, Disconnected)]
        assert f"fell {cap} bytes behind" in lost.reason
        assert engine.overflows == 1
    finally:
        await client.close()
