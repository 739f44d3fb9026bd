"""The asyncio AMI client against a real TCP AMI server (the simulated PBX's server core)."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from structlog.testing import capture_logs

from hotline.ami import (
    AmiActionTimeout,
    AmiAuthError,
    AmiClient,
    AmiConnectionLost,
    AmiNotConnected,
    AmiSettings,
    Connected,
    Disconnected,
    Message,
    Subscription,
    SubscriptionItem,
)
from hotline.secret import Secret
from hotline.sim.amiserver import AmiServer, AmiSession, ServerCredentials

pytestmark = pytest.mark.integration

FAST = {
    "reconnect_min": 0.05,
    "reconnect_max": 0.2,
    "connect_timeout": 2.0,
    "action_timeout": 5.0,
    "ping_interval": 60.0,
}


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    srv = AmiServer(credentials=ServerCredentials("hotline", "s3cret"), auth_failure_delay=0.3)
    await srv.start()
    yield srv
    await srv.close()


def settings_for(server: AmiServer, **overrides: object) -> AmiSettings:
    url = f"ami://hotline:s3cret@127.0.0.1:{server.port}"
    return AmiSettings.from_url(url, **{**FAST, **overrides})


async def next_item(sub: Subscription, timeout: float = 5.0) -> SubscriptionItem:
    return await asyncio.wait_for(sub.get(), timeout)


async def next_signal(sub: Subscription, timeout: float = 5.0) -> Connected | Disconnected:
    while True:
        item = await next_item(sub, timeout)
        if not isinstance(item, Message):
            return item


@pytest.fixture
async def client(server: AmiServer) -> AsyncIterator[AmiClient]:
    ami = AmiClient(settings_for(server))
    await ami.start()
    await ami.wait_connected(5)
    yield ami
    await ami.close()


async def test_login_emits_connected_before_the_first_event(server: AmiServer) -> None:
    ami = AmiClient(settings_for(server))
    sub = ami.subscribe("test", lossless=True)
    await ami.start()
    await ami.wait_connected(5)
    first = await next_item(sub)
    assert first == Connected(1, "Asterisk Call Manager/11.0.0")
    booted = await next_item(sub)
    assert isinstance(booted, Message)
    assert booted.name == "FullyBooted"
    assert ami.connected
    await ami.close()
    assert not ami.connected


async def test_md5_challenge_login(server: AmiServer) -> None:
    ami = AmiClient(settings_for(server, md5_auth=True))
    await ami.start()
    await ami.wait_connected(5)
    assert ami.connected
    await ami.close()


async def test_wrong_secret_is_a_clear_error_without_a_retry_loop(server: AmiServer) -> None:
    ami = AmiClient(AmiSettings.from_url(f"ami://hotline:wrong@127.0.0.1:{server.port}", **FAST))
    started = time.monotonic()
    await ami.start()
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        await ami.wait_connected(5)
    assert time.monotonic() - started >= 0.3  # the server answers a bad login after its delay
    # Must stay (an absence): several back-off periods, in which a retry loop would come back.
    await asyncio.sleep(0.5)
    assert server.login_attempts == 1
    assert len(server.sessions) == 0
    assert not ami.connected
    await ami.close()


async def test_secret_never_appears_in_repr() -> None:
    settings = AmiSettings.from_url("ami://hotline:topsecret@pbx:5039?events=call,user&auth=md5")
    assert "topsecret" not in repr(settings)
    assert settings.secret.reveal() == "topsecret"
    assert (settings.host, settings.port, settings.events, settings.md5_auth) == (
        "pbx",
        5039,
        "call,user",
        True,
    )
    assert repr(Secret("x")) == "Secret('**********')"
    with pytest.raises(ValueError, match="ami://"):
        AmiSettings.from_url("http://pbx")


async def test_thousand_concurrent_actions_resolve_to_their_own_replies(
    server: AmiServer, client: AmiClient
) -> None:
    async def echo(session: AmiSession, message: Message) -> None:
        # Not a wait for anything: a random reply delay, so replies come back out of order.
        await asyncio.sleep(random.random() * 0.05)
        session.send_response(message, "Success", [("Value", message.get("Value") or "")])

    server.register("Echo", echo)
    results = await asyncio.gather(*(client.action("Echo", {"Value": str(i)}) for i in range(1000)))
    assert [r.response.get("Value") for r in results] == [str(i) for i in range(1000)]
    assert all(r.ok for r in results)


async def test_event_list_collects_items_until_complete(
    server: AmiServer, client: AmiClient
) -> None:
    def show(session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID") or ""
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Channels will follow")]
        )
        for i in range(3):
            session.send(
                [
                    ("Event", "CoreShowChannel"),
                    ("ActionID", action_id),
                    ("Channel", f"Local/{i}@x-0000000{i};1"),
                ]
            )
            server.broadcast(
                [("Event", "Newstate"), ("Privilege", "call,all"), ("Channel", f"other-{i}")]
            )
        session.send(
            [
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
                ("ListItems", "3"),
            ]
        )

    server.register("CoreShowChannels", show)
    sub = client.subscribe("watch")
    result = await client.action("CoreShowChannels")
    assert [e.get("Channel") for e in result.events] == [
        "Local/0@x-00000000;1",
        "Local/1@x-00000001;1",
        "Local/2@x-00000002;1",
    ]
    assert result.complete is not None
    assert result.complete.get("ListItems") == "3"
    seen = [await next_item(sub) for _ in range(3)]
    assert [m.get("Channel") for m in seen if isinstance(m, Message)] == [
        "other-0",
        "other-1",
        "other-2",
    ]


async def test_error_response_and_unknown_action(client: AmiClient) -> None:
    result = await client.action("NoSuchAction")
    assert not result.ok
    assert "Invalid/unknown command" in (result.response.get("Message") or "")


async def test_action_timeout(server: AmiServer, client: AmiClient) -> None:
    server.register("Silent", lambda _session, _message: None)
    with pytest.raises(AmiActionTimeout, match="Silent"):
        await client.action("Silent", timeout=0.2)


async def test_missing_pong_counts_as_a_dead_connection(server: AmiServer) -> None:
    ami = AmiClient(settings_for(server, ping_interval=0.1, ping_timeout=0.2))
    sub = ami.subscribe("engine", lossless=True)
    await ami.start()
    assert await next_signal(sub) == Connected(1, "Asterisk Call Manager/11.0.0")
    server.answer_pings = False
    with capture_logs() as logs:
        lost = await next_signal(sub)
        assert isinstance(lost, Disconnected)
        assert "Pong" in lost.reason
        server.answer_pings = True
        again = await next_signal(sub)
    assert again == Connected(2, "Asterisk Call Manager/11.0.0")
    assert any(entry["event"] == "ami.ping_timeout" for entry in logs)
    await ami.close()


async def test_pbx_restart_mid_stream_fails_the_inflight_originate_without_resending(
    server: AmiServer,
) -> None:
    originates: list[str] = []

    def originate(session: AmiSession, message: Message) -> None:  # noqa: ARG001 (the AMI server's handler signature)
        originates.append(message.get("ActionID") or "")

    def command(session: AmiSession, message: Message) -> None:  # noqa: ARG001 (the AMI server's handler signature)
        if message.get("Command") == "core restart now":
            server.drop_all()  # as in pbx_restart.jsonl: no Shutdown event, no reply

    server.register("Originate", originate)
    server.register("Command", command)
    ami = AmiClient(settings_for(server))
    sub = ami.subscribe("engine", lossless=True)
    await ami.start()
    assert await next_signal(sub) == Connected(1, "Asterisk Call Manager/11.0.0")
    inflight = ami.send("Originate", [("Channel", "Local/2001@agents"), ("Async", "true")])
    restart = ami.send("Command", {"Command": "core restart now"})
    with pytest.raises(AmiConnectionLost, match="not re-sent"):
        await inflight
    with pytest.raises(AmiConnectionLost):
        await restart
    lost = await next_signal(sub)
    assert isinstance(lost, Disconnected)
    assert lost.generation == 1
    assert await next_signal(sub) == Connected(2, "Asterisk Call Manager/11.0.0")
    # Must stay: that nothing is re-sent can only be seen by giving it time to happen.
    await asyncio.sleep(0.2)
    assert len(originates) == 1
    result = await ami.action("Ping")
    assert result.response.get("Ping") == "Pong"
    await ami.close()


async def test_sending_while_disconnected_fails_fast(server: AmiServer) -> None:
    ami = AmiClient(settings_for(server))
    with pytest.raises(AmiNotConnected):
        ami.send("Ping")
    await ami.close()


async def test_lossless_subscriber_overflow_drops_the_connection_to_force_a_resync(
    server: AmiServer,
) -> None:
    ami = AmiClient(settings_for(server))
    engine = ami.subscribe("engine", lossless=True, maxsize=50)
    tap = ami.subscribe("tap", lossless=False, maxsize=10)
    await ami.start()
    await ami.wait_connected(5)
    for i in range(200):
        server.broadcast([("Event", "Newstate"), ("Privilege", "call,all"), ("Seq", str(i))])
    items: list[SubscriptionItem] = []
    while not any(isinstance(item, Connected) and item.generation == 2 for item in items):
        items.extend(await asyncio.wait_for(engine.get_batch(), 5))
    events = [item for item in items if isinstance(item, Message) and item.name == "Newstate"]
    assert [e.get("Seq") for e in events] == [str(i) for i in range(len(events))]
    assert len(events) <= 50
    signals = [item for item in items if not isinstance(item, Message)]
    assert isinstance(signals[1], Disconnected)
    assert "fell 50 behind" in signals[1].reason
    assert engine.overflows == 1
    assert tap.dropped > 0
    await ami.close()


async def test_slow_lossy_subscriber_never_blocks_the_reader(
    server: AmiServer, client: AmiClient
) -> None:
    tap = client.subscribe("tap", maxsize=5)
    for i in range(100):
        server.broadcast([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Seq", str(i))])
    result = await client.action("Ping")
    assert result.ok
    assert len(tap) == 5
    assert tap.dropped == 95
    assert client.connected


async def test_header_injection_never_reaches_the_socket(
    server: AmiServer, client: AmiClient
) -> None:
    seen: list[Message] = []
    server.register("Originate", lambda _session, message: seen.append(message))
    with pytest.raises(ValueError, match="header injection"):
        client.send("Originate", {"Channel": "PJSIP/1\r\nAction: Hangup"})
    assert (await client.action("Ping")).ok
    assert seen == []


async def test_tls_connection_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    srv = AmiServer(credentials=ServerCredentials("hotline", "s3cret"))
    await srv.start(tls=server_context)
    url = f"amis://hotline:s3cret@127.0.0.1:{srv.port}?ca={ca_file}"
    ami = AmiClient(AmiSettings.from_url(url, **FAST))
    await ami.start()
    await ami.wait_connected(5)
    assert (await ami.action("Ping")).response.get("Ping") == "Pong"
    await ami.close()
    await srv.close()
