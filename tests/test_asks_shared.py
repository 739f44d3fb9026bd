""" "Ask a supervisor" across the instances of a centre (hotline/web/ask_feed.py): two
services for one PBX (the sim) on one database and one Redis; an agent's ask taken by the
active shows on the standby's wallboard feed, an instance started later reads the asks
open now, a dismiss on the standby clears it everywhere, a whisper from the standby is
forwarded to the active (the PBX receives the ChanSpy Originate) and resolves it, and the
call ending clears the asks everywhere.

The services run in this process on the sim's virtual clock (as in test_live_relay.py);
the pages are real WebSockets, the requests real HTTP with the session's CSRF token.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from hotline.clock import virtual_clock_of
from hotline.main import create_app
from hotline.secret import Secret
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, build_settings, start_stack
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.store.users import Users
from hotline.web.keys import ENGINE, LEASE, STORE
from hotline.web.spy_relay import SPY_RELAY
from hotline.web.wall import ALERTS
from tests.api_support import FAST, PASSWORD
from tests.support import scenario_until

pytestmark = pytest.mark.e2e

PBX = "pbx-asks"
SECRET = "asks-secret"
CALLER = "+8613800000077"
AGENT_DEVICE = "Local/2001@agents"
SUPERVISOR_DEVICE = "Local/9001@supervisors"
TALK = 600.0


def _scenario() -> Scenario:
    """One caller for support, answered by agent 2001, who talks for :data:`TALK` s."""
    return Scenario(
        name="asks-shared",
        seed=7,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(
            count=1,
            rate_per_minute=120.0,
            queues=(("support", 1.0),),
            numbers=(CALLER,),
            patience=Fixed(900.0),
        ),
        agents=(AgentGroup((AGENT_DEVICE,), AgentBehaviour(talk=Fixed(TALK))),),
    )


@dataclass
class Instance:
    """One more service on the stack's sim, database and Redis (a standby)."""

    app: web.Application
    runner: web.AppRunner
    base_url: str


async def _serve(stack: Stack, instance: str, state_dir: Path) -> Instance:
    service = replace(stack.settings.service, instance=instance, state_dir=str(state_dir))
    app = create_app(replace(stack.settings, service=service), clock=stack.clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    await web.SockSite(runner, listener).start()
    return Instance(app, runner, f"http://127.0.0.1:{listener.getsockname()[1]}")


@pytest.fixture
async def centre(
    migrated_database_url: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,  # noqa: ARG001 - deletes the test's keys afterwards
    redis_server_url: str,
    redis_prefix: str,
) -> AsyncIterator[tuple[Stack, Callable[[str], Any], list[Instance]]]:
    """The active (with the sim), and a function starting standbys (kept in the list)."""
    scenario = _scenario()
    sim = SimPbx(
        scenario, clock=virtual_clock_of(), credentials=ServerCredentials("hotline", SECRET)
    )
    await sim.start(host="127.0.0.1", port=0)
    base = build_settings(
        scenario,
        sim.port,
        secret=SECRET,
        database_url=migrated_database_url,
        state_dir=str(tmp_path / "active"),
        queues=[{"name": "support"}],
        agents=[{"id": "2001", "device": AGENT_DEVICE, "queues": ["support"]}],
    )
    settings = replace(
        base,
        service=replace(base.service, pbx_id=PBX, instance="A"),
        redis_url=Secret(redis_server_url),
        redis_prefix=redis_prefix,
    )
    stack = await start_stack(scenario, sim=sim, settings=settings)
    users = Users(stack.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001")
    await users.create("sam", PASSWORD, role="supervisor", device=SUPERVISOR_DEVICE)
    standbys: list[Instance] = []

    async def standby(name: str) -> Instance:
        started = await _serve(stack, name, tmp_path / name)
        standbys.append(started)
        return started

    try:
        assert stack.app[LEASE].active
        yield stack, standby, standbys
    finally:
        for started in standbys:
            await started.runner.cleanup()
        await stack.close()


class Page:
    """A signed-in user on one instance: the feed and CSRF-carrying requests."""

    def __init__(self, client: aiohttp.ClientSession, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.headers: dict[str, str] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    @classmethod
    async def sign_in(cls, client: aiohttp.ClientSession, base_url: str, name: str) -> Page:
        page = cls(client, base_url)
        async with client.post(
            f"{base_url}/api/login", json={"username": name, "password": PASSWORD}
        ) as response:
            assert response.status == 200
            cookie = response.cookies["hotline_session"].value
            csrf = (await response.json())["csrf_token"]
        page.headers = {"Cookie": f"hotline_session={cookie}", "X-CSRF-Token": csrf}
        return page

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.client.post(
            f"{self.base_url}{path}", json=body, headers=self.headers
        ) as response:
            return response.status, await response.json()

    async def open_feed(self) -> None:
        self.ws = await self.client.ws_connect(
            f"{self.base_url}/api/live", headers={"Cookie": self.headers["Cookie"]}
        )

    async def asks(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The asks of the first ``alerts`` frame for which ``done`` holds."""
        assert self.ws is not None
        while True:
            message = await self.ws.receive(timeout=60)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            frame = json.loads(message.data)
            if frame["type"] == "alerts":
                asks = [alert for alert in frame["alerts"] if alert["kind"] == "ask"]
                if done(asks):
                    return asks


def _spied(stack: Stack, data: str) -> bool:
    """The PBX rang the supervisor's device into ChanSpy with ``data``."""
    return any(
        spy.data == data and name.startswith(SUPERVISOR_DEVICE)
        for name, channel in stack.sim.channels.items()
        for spy in channel.spies
    )


def _ask_ids(app: web.Application) -> set[str]:
    return {key for key, a in app[ALERTS].board.alerts.items() if a.condition.kind == "ask"}


async def test_an_ask_is_shared_answered_and_cleared_across_instances(
    centre: tuple[Stack, Callable[[str], Any], list[Instance]],
) -> None:
    active, start_standby, _ = centre
    standby: Instance = await start_standby("B")
    async with aiohttp.ClientSession() as client:
        boss = await Page.sign_in(client, standby.base_url, "sam")
        await boss.open_feed()
        ann = await Page.sign_in(client, active.base_url, "ann")
        await active.agent("login", "2001")
        active.sim.start_arrivals()
        router = active.app[ENGINE].router
        await scenario_until(
            active.clock, lambda: router.call_of_agent("2001") is not None, what="ann talking"
        )

        status, body = await ann.post("/api/panel/ask", {"note": "<b>legal</b> threat"})
        assert status == 200, body
        ask = body["alert"]
        assert ask["site"] == PBX
        shown = await boss.asks(lambda asks: bool(asks))
        assert [(a["id"], a["note"], a["number"]) for a in shown] == [
            (ask["id"], "<b>legal</b> threat", CALLER)  # supervisors see the full number
        ]
        assert shown == [ask]  # the same alert, with the moment it was raised

        # An instance started later reads the asks open now.
        late = await start_standby("C")
        await scenario_until(
            active.clock, lambda: _ask_ids(late.app) == {ask["id"]}, what="C reading the asks"
        )

        # Dismissed on the standby: gone on the active and on C too.
        status, body = await boss.post(f"/api/wallboard/alerts/{ask['id']}/dismiss")
        assert (status, body) == (200, {"dismissed": ask["id"]})
        await boss.asks(lambda asks: not asks)
        await scenario_until(
            active.clock,
            lambda: not _ask_ids(active.app) and not _ask_ids(late.app),
            what="the dismiss on every instance",
        )

        # Answered from the standby: the whisper is forwarded to the active, whose AMI
        # connection sends the ChanSpy Originate for sam's device; resolved everywhere.
        status, body = await ann.post("/api/panel/ask", {"note": "help"})
        assert status == 200, body
        second = body["alert"]["id"]
        assert second != ask["id"]
        assert [a["id"] for a in await boss.asks(lambda asks: bool(asks))] == [second]
        for instance in (standby.app, active.app):
            await instance[SPY_RELAY].ready.wait()  # both channels subscribed
        status, body = await boss.post(f"/api/wallboard/alerts/{second}/whisper")
        assert (status, body) == (
            200,
            {"action": "whisper", "agent_id": "2001", "device": SUPERVISOR_DEVICE},
        )
        await scenario_until(
            active.clock, lambda: _spied(active, f"{AGENT_DEVICE},qw"), what="the ChanSpy"
        )
        assert standby.app[SPY_RELAY].forwarded == 1
        assert active.app[SPY_RELAY].handled == 1
        await boss.asks(lambda asks: not asks)
        await scenario_until(
            active.clock,
            lambda: not _ask_ids(active.app) and not _ask_ids(late.app),
            what="the answered ask resolved on every instance",
        )

        # Asked again: the active clears it when the call ends, for every instance.
        status, body = await ann.post("/api/panel/ask", {"note": "again"})
        assert status == 200, body
        again = body["alert"]["id"]
        assert [a["id"] for a in await boss.asks(lambda asks: bool(asks))] == [again]
        await boss.asks(lambda asks: not asks)  # the caller hangs up after the talk
        assert router.call_of_agent("2001") is None
        await scenario_until(
            active.clock,
            lambda: not _ask_ids(active.app) and not _ask_ids(late.app),
            what="the ended call's ask cleared everywhere",
        )
        assert boss.ws is not None
        await boss.ws.close()
