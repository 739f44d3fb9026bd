"""The live feed across instances (hotline/web/live_relay.py): two services for one PBX (the
sim), one Redis; pages on the standby show the whole centre, filtered for their role.

Both services run in this process on the sim's virtual clock, each with its own aiohttp
app and real sockets; they share the database (the lease, the users) and Redis (the
sessions, the feed). The pages are real WebSockets.
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
from hotline.store.users import Users
from hotline.web.keys import ENGINE, LEASE, STORE
from hotline.web.live import HUB, LiveHub
from tests.api_support import FAST, PASSWORD
from tests.test_panels_feed import SALES_CALLER, SUPPORT_CALLER, two_queue_scenario

pytestmark = pytest.mark.e2e

PBX = "pbx-live"
SECRET = "live-secret"


@dataclass
class Instance:
    """One service: its app, runner and URL."""

    app: web.Application
    runner: web.AppRunner
    base_url: str

    @property
    def hub(self) -> LiveHub:
        """The instance's live hub."""
        return self.app[HUB]


async def _serve(stack: Stack, instance: str, state_dir: Path) -> Instance:
    """A second service on the stack's sim, database and Redis (it stays a standby: it
    never resyncs, so :func:`start_stack`'s wait does not apply)."""
    service = replace(stack.settings.service, instance=instance, state_dir=str(state_dir))
    settings = replace(stack.settings, service=service)
    app = create_app(settings, clock=stack.clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    await web.SockSite(runner, listener).start()
    return Instance(app, runner, f"http://127.0.0.1:{listener.getsockname()[1]}")


@pytest.fixture
async def pair(
    migrated_database_url: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,  # noqa: ARG001 - deletes the test's keys afterwards
    redis_server_url: str,
    redis_prefix: str,
) -> AsyncIterator[tuple[Stack, Instance]]:
    scenario = two_queue_scenario("live-relay")
    sim = SimPbx(
        scenario, clock=virtual_clock_of(), credentials=ServerCredentials("hotline", SECRET)
    )
    await sim.start(host="127.0.0.1", port=0)
    base = build_settings(
        scenario,
        sim.port,
        secret=SECRET,
        database_url=migrated_database_url,
        state_dir=str(tmp_path / "a"),
        queues=[{"name": "support"}, {"name": "sales"}],
        agents=[{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
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
    await users.create("sam", PASSWORD, role="supervisor")
    standby = None
    try:
        assert stack.app[LEASE].active
        standby = await _serve(stack, "B", tmp_path / "b")
        yield stack, standby
    finally:
        if standby is not None:
            await standby.runner.cleanup()
        if stack.session.closed:
            await stack.sim.close()
        else:
            await stack.close()


async def _feed(
    base_url: str, client: aiohttp.ClientSession, username: str
) -> aiohttp.ClientWebSocketResponse:
    """Sign in (on any instance: the sessions are in Redis) and open the feed on ``base_url``."""
    async with client.post(
        f"{base_url}/api/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        cookie = response.cookies["hotline_session"].value
    return await client.ws_connect(
        f"{base_url}/api/live", headers={"Cookie": f"hotline_session={cookie}"}
    )


async def _frames_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Every frame received until one satisfies ``done`` (that one included)."""
    frames: list[dict[str, Any]] = []
    while True:
        message = await ws.receive(timeout=60)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        frames.append(json.loads(message.data))
        if done(frames[-1]):
            return frames


def _numbers(frame: dict[str, Any]) -> set[str]:
    return {call["number"] for queue in frame["queues"] for call in queue["waiting"]}


async def _until_seen(ws: aiohttp.ClientWebSocketResponse, numbers: set[str]) -> None:
    """Read frames until every one of ``numbers`` was shown waiting (deltas carry only the
    queues that changed)."""
    seen: set[str] = set()

    def done(frame: dict[str, Any]) -> bool:
        seen.update(_numbers(frame))
        return seen >= numbers

    await _frames_until(ws, done)


def _tile_moved(frame: dict[str, Any]) -> bool:
    """Agent 2001's tile says it is logged in."""
    return any(a["state"] != "logged_out" for a in frame["agents"] if a["id"] == "2001")


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """What the page was sent by now (nothing more within a wall second)."""
    texts: list[str] = []
    while True:
        try:
            texts.append((await ws.receive(timeout=1)).data)
        except TimeoutError:
            return texts


async def test_a_standbys_pages_show_the_whole_centre_filtered_for_their_role(
    pair: tuple[Stack, Instance],
) -> None:
    active, standby = pair
    assert standby.hub.remote  # B does not route: its pages show A's views
    async with aiohttp.ClientSession() as client:
        boss = await _feed(standby.base_url, client, "sam")
        agent = await _feed(standby.base_url, client, "ann")
        first = json.loads((await boss.receive(timeout=60)).data)
        assert first["type"] == "snapshot"
        assert {queue["name"] for queue in first["queues"]} == {"support", "sales"}
        active.sim.start_arrivals()
        await _until_seen(boss, {SUPPORT_CALLER, SALES_CALLER})
        assert not standby.app[ENGINE].router.calls  # B's router knows nothing: Redis told
        text = "".join(await _drain(agent))
        assert SALES_CALLER not in text
        assert SALES_CALLER[-4:] not in text  # not even masked
        assert '"sales"' not in text  # not the agent's queue: not even its name
        assert SUPPORT_CALLER not in text  # the agent's own queue: masked
        assert f'"*******{SUPPORT_CALLER[-4:]}"' in text
        await boss.close()
        await agent.close()


async def test_a_sequence_gap_on_the_channel_sends_a_fresh_snapshot(
    pair: tuple[Stack, Instance], redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    active, standby = pair
    relay = standby.hub.relay
    assert relay is not None
    async with aiohttp.ClientSession() as client:
        boss = await _feed(standby.base_url, client, "sam")
        assert json.loads((await boss.receive(timeout=60)).data)["type"] == "snapshot"
        await redis_client.incr(f"{redis_prefix}live:{PBX}:seq")  # a publication B never saw
        gaps = relay.gaps
        await active.agent("login", "2001")  # A publishes agent 2001's new state
        frames = await _frames_until(boss, lambda f: f["type"] == "snapshot")
        assert relay.gaps == gaps + 1
        tile = next(a for a in frames[-1]["agents"] if a["id"] == "2001")
        assert tile["state"] != "logged_out"  # the snapshot is the copy at the new sequence
        assert [f["seq"] for f in frames] == list(range(2, 2 + len(frames)))
        await boss.close()


async def test_the_standby_taking_over_sends_its_pages_its_own_snapshot(
    pair: tuple[Stack, Instance],
) -> None:
    active, standby = pair
    async with aiohttp.ClientSession() as client:
        boss = await _feed(standby.base_url, client, "sam")
        active.sim.start_arrivals()
        await _until_seen(boss, {SUPPORT_CALLER, SALES_CALLER})
        await active.stop_service()  # a graceful stop hands the lease over at once
        # Read while B takes over: a page that stops reading is dropped once 64 frames wait.
        snapshot = (
            await _frames_until(
                boss, lambda f: f["type"] == "snapshot" and standby.app[LEASE].active
            )
        )[-1]
        assert not standby.hub.remote
        assert {queue["name"] for queue in snapshot["queues"]} == {"support", "sales"}
        # From now on the page's frames are B's own: B's agent control moves the tile.
        async with client.post(
            f"{standby.base_url}/api/agents/2001/login",
            headers={"Authorization": f"Bearer {active.token}"},
        ) as response:
            assert response.status == 200
        await _frames_until(boss, _tile_moved)
        assert standby.app[ENGINE].router.agents["2001"].state.value != "logged_out"
        await boss.close()
