"""Several sites on the live feed (hotline/web/live_sites.py): two sites (two sims, two
services with their own ``pbx_id``), one database, one Redis. A page asks for one site
(``?site=<pbx_id>``) or the whole centre (``?site=*``), on either site's instance; it is
told every site's router (``sites`` frames), and a site that loses its router says so.

Both services run in this process on the sims' virtual clock, each with its own aiohttp
app and real sockets. The pages are real WebSockets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from hotline.clock import virtual_clock_of
from hotline.secret import Secret
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, build_settings, start_stack
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.store.users import Users
from hotline.web.keys import LEASE, STORE
from hotline.web.live_sites import SITE_FEEDS
from tests.api_support import FAST, PASSWORD
from tests.support import eventually
from tests.test_live_relay import _serve as serve_standby

pytestmark = pytest.mark.e2e

SECRET = "sites-secret"

SITES = {
    "north": ("A", "pbx-north", ("support", "sales"), ("13900139003", "13700137007"), "2001"),
    "south": ("C", "pbx-south", ("support", "returns"), ("13500135005", "13300133003"), "3001"),
}
"""pbx_id -> (ticket letter, systemname, queues, the two callers, the agent). Both sites
have a queue named support: a page tells them apart by the frame's site."""


def site_scenario(pbx_id: str) -> Scenario:
    """Two callers who wait for ever (one per queue), one agent who never answers."""
    _, _, queues, callers, agent = SITES[pbx_id]
    return Scenario(
        name=f"live-{pbx_id}",
        seed=5,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(
            count=2,
            rate_per_minute=120.0,
            queues=tuple((queue, 1.0) for queue in queues),
            numbers=callers,
            patience=Fixed(900.0),
        ),
        agents=(AgentGroup((f"Local/{agent}@agents",), AgentBehaviour(no_answer=1.0)),),
    )


async def start_site(
    pbx_id: str, dsn: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> Stack:
    """One site: its sim and its (active) service, on the shared database and Redis."""
    letter, system_name, queues, _, agent = SITES[pbx_id]
    scenario = site_scenario(pbx_id)
    sim = SimPbx(
        scenario,
        clock=virtual_clock_of(),
        credentials=ServerCredentials("hotline", SECRET),
        system_name=system_name,
    )
    await sim.start(host="127.0.0.1", port=0)
    base = build_settings(
        scenario,
        sim.port,
        secret=SECRET,
        database_url=dsn,
        state_dir=str(tmp_path / pbx_id),
        queues=[{"name": name} for name in queues],
        agents=[{"id": agent, "device": f"Local/{agent}@agents", "queues": [queues[0]]}],
    )
    settings = replace(
        base,
        # A long lease: the test process is busy for seconds at a time on a loaded machine.
        service=replace(base.service, pbx_id=pbx_id, instance=letter, lease_ttl=30.0),
        redis_url=Secret(redis_url),
        redis_prefix=redis_prefix,
    )
    return await start_stack(scenario, sim=sim, settings=settings)


@pytest.fixture
async def centre(
    migrated_database_url: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,  # noqa: ARG001 - deletes the test's keys afterwards
    redis_server_url: str,
    redis_prefix: str,
) -> AsyncIterator[dict[str, Stack]]:
    stacks: dict[str, Stack] = {}
    try:
        for pbx_id in SITES:
            stacks[pbx_id] = await start_site(
                pbx_id, migrated_database_url, tmp_path, redis_server_url, redis_prefix
            )
        users = Users(stacks["north"].app[STORE].pool, hasher=FAST)
        await users.create("ann", PASSWORD, role="agent", agent_id="2001")
        await users.create("sam", PASSWORD, role="supervisor")
        for stack in stacks.values():
            assert stack.app[LEASE].active
        # Each instance learns of the other site at its next poll of the sites.
        for pbx_id, stack in stacks.items():
            other = next(site for site in SITES if site != pbx_id)
            feeds = stack.app[SITE_FEEDS]
            await eventually(lambda f=feeds, o=other: o in f.mirrors, what=f"{pbx_id} sees {other}")
        yield stacks
    finally:
        for stack in stacks.values():
            if stack.session.closed:
                await stack.sim.close()
            else:
                await stack.close()


async def _cookie(base_url: str, client: aiohttp.ClientSession, username: str) -> str:
    async with client.post(
        f"{base_url}/api/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        return response.cookies["hotline_session"].value


async def _feed(
    base_url: str, client: aiohttp.ClientSession, username: str, site: str
) -> aiohttp.ClientWebSocketResponse:
    """Sign in (on any instance: the sessions are in Redis) and open ``?site=<site>``."""
    cookie = await _cookie(base_url, client, username)
    return await client.ws_connect(
        f"{base_url}/api/live",
        params={"site": site},
        headers={"Cookie": f"hotline_session={cookie}"},
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


def _callers(frame: dict[str, Any]) -> set[str]:
    return {call["number"] for queue in frame.get("queues", ()) for call in queue["waiting"]}


async def _until_seen(
    ws: aiohttp.ClientWebSocketResponse, numbers: set[str]
) -> list[dict[str, Any]]:
    """Frames until every one of ``numbers`` was shown waiting."""
    seen: set[str] = set()

    def done(frame: dict[str, Any]) -> bool:
        seen.update(_callers(frame))
        return seen >= numbers

    return await _frames_until(ws, done)


async def _snapshot(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Ask for a fresh snapshot: every frame up to its last one (the ``sites`` frame),
    those sent before it included, so that the page's sequence stays whole."""
    await ws.send_str(json.dumps({"type": "snapshot"}))
    frames = await _frames_until(ws, lambda f: f["type"] == "sites")
    assert any(f["type"] == "snapshot" for f in frames)
    return frames


def _shown(frames: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """(site, queue) pairs, agent ids and callers in these frames' views (home: '')."""
    queues = {(f.get("site", ""), q["name"]) for f in frames for q in f.get("queues", ())}
    agents = {a["id"] for f in frames for a in f.get("agents", ())}
    return queues, agents, {n for f in frames for n in _callers(f)}


async def test_a_wallboard_shows_one_site_or_the_whole_centre(centre: dict[str, Stack]) -> None:
    north, south = centre["north"], centre["south"]
    north_callers, south_callers = set(SITES["north"][3]), set(SITES["south"][3])
    async with aiohttp.ClientSession() as client:
        whole = await _feed(north.base_url, client, "sam", "*")
        only_south = await _feed(north.base_url, client, "sam", "south")  # via Redis
        only_north = await _feed(south.base_url, client, "sam", "north")  # via Redis
        home = await _feed(north.base_url, client, "sam", "north")
        for stack in centre.values():
            stack.sim.start_arrivals()
        received = {
            "whole": await _until_seen(whole, north_callers | south_callers),
            "south": await _until_seen(only_south, south_callers),
            "north": await _until_seen(only_north, north_callers),
            "home": await _until_seen(home, north_callers),
        }
        for name, ws in (("whole", whole), ("south", only_south), ("north", only_north)):
            received[name] += await _snapshot(ws)
        received["home"] += await _snapshot(home)
        for ws in (whole, only_south, only_north, home):
            await ws.close()

    queues, agents, callers = _shown(received["whole"])
    assert queues == {("", "support"), ("", "sales"), ("south", "support"), ("south", "returns")}
    assert agents == {"2001", "3001"}
    assert callers == north_callers | south_callers

    queues, agents, callers = _shown(received["south"])  # north's instance, south only
    assert queues == {("south", "support"), ("south", "returns")}
    assert agents == {"3001"}
    assert callers == south_callers

    queues, agents, callers = _shown(received["north"])  # south's instance, north only
    assert queues == {("north", "support"), ("north", "sales")}
    assert agents == {"2001"}
    assert callers == north_callers

    queues, agents, callers = _shown(received["home"])  # its own site: the hub's frames
    assert queues == {("", "support"), ("", "sales")}
    assert agents == {"2001"}
    assert callers == north_callers
    for frames in received.values():  # one sequence per page, whatever site a frame is of
        assert [f["seq"] for f in frames] == list(
            range(frames[0]["seq"], frames[0]["seq"] + len(frames))
        )


async def test_an_agent_sees_only_their_own_site_and_an_unknown_site_is_refused(
    centre: dict[str, Stack],
) -> None:
    north = centre["north"]
    async with aiohttp.ClientSession() as client:
        cookie = await _cookie(north.base_url, client, "ann")
        headers = {"Cookie": f"hotline_session={cookie}"}
        refused = [
            ({"site": "south"}, 403),
            ({"site": "*"}, 403),
            ({"site": "nowhere"}, 422),
            ({"site": "north", "queues": "sales"}, 403),  # not among the agent's queues
            ({"site": "north", "queues": "returns"}, 422),  # south's: not for an agent
        ]
        for params, status in refused:
            async with client.get(
                f"{north.base_url}/api/live", params=params, headers=headers
            ) as response:
                assert response.status == status, params
        own = await client.ws_connect(
            f"{north.base_url}/api/live", params={"site": "north"}, headers=headers
        )
        frames = await _frames_until(own, lambda f: f["type"] == "sites")
        await own.close()
    assert {a["id"] for f in frames for a in f.get("agents", ())} == {"2001"}
    assert all("site" not in f for f in frames)  # only the home site's frames


async def test_every_sites_router_is_shown_and_a_site_without_one_says_so(
    centre: dict[str, Stack],
) -> None:
    north, south = centre["north"], centre["south"]
    async with aiohttp.ClientSession() as client:
        ws = await _feed(north.base_url, client, "sam", "*")
        first = (await _frames_until(ws, lambda f: f["type"] == "sites"))[-1]
        assert first["home"] == "north"
        assert first["database"] is True
        assert first["instance"]["role"] == "active"
        assert first["instance"]["instance"] == "A"
        assert first["instance"]["epoch"] == north.app[LEASE].epoch
        sites = {site["pbx_id"]: site for site in first["sites"]}
        assert set(sites) == {"north", "south"}
        for pbx_id, stack in centre.items():
            site = sites[pbx_id]
            assert site["router"] == "active"
            assert site["instance"] == SITES[pbx_id][0]
            assert site["epoch"] == stack.app[LEASE].epoch
            assert site["last_takeover"] == stack.app[LEASE].last_takeover.isoformat()
            assert site["instances"] == [SITES[pbx_id][0]]
        # /ready and /metrics say the same of this instance.
        async with client.get(f"{north.base_url}/ready") as response:
            ready = await response.json()
        assert (ready["role"], ready["pbx_id"], ready["epoch"]) == ("active", "north", 1)
        assert ready["last_takeover"] == sites["north"]["last_takeover"]
        async with client.get(
            f"{north.base_url}/metrics", headers={"Authorization": f"Bearer {north.token}"}
        ) as response:
            metrics = await response.text()
        assert 'hotline_router_active{pbx_id="north",role="active"} 1' in metrics
        assert 'hotline_lease_epoch{pbx_id="north"} 1' in metrics
        taken = north.app[LEASE].last_takeover
        assert taken is not None
        line = next(
            row
            for row in metrics.splitlines()
            if row.startswith('hotline_lease_last_takeover_timestamp_seconds{pbx_id="north"}')
        )
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(taken.timestamp())

        await south.stop_service()  # a graceful stop releases the lease: south has no router
        lost = (
            await _frames_until(
                ws,
                lambda f: (
                    f["type"] == "sites"
                    and any(s["pbx_id"] == "south" and s["router"] == "none" for s in f["sites"])
                ),
            )
        )[-1]
        await ws.close()
    south_now = next(site for site in lost["sites"] if site["pbx_id"] == "south")
    assert south_now["instance"] is None
    assert south_now["since"] is not None  # when its lease ran out
    north_now = next(site for site in lost["sites"] if site["pbx_id"] == "north")
    assert north_now["router"] == "active"


async def test_a_standbys_wallboard_shows_its_role_and_the_whole_centre(
    centre: dict[str, Stack], tmp_path: Path
) -> None:
    north = centre["north"]
    standby = await serve_standby(north, "B", tmp_path / "north-b")
    try:
        await eventually(lambda: "south" in standby.app[SITE_FEEDS].mirrors, what="B sees south")
        async with aiohttp.ClientSession() as client:
            ws = await _feed(standby.base_url, client, "sam", "*")
            for stack in centre.values():
                stack.sim.start_arrivals()
            everyone = set(SITES["north"][3]) | set(SITES["south"][3])
            frames = await _until_seen(ws, everyone)  # north's from B's mirror, south's too
            frames += await _snapshot(ws)
            await ws.close()
    finally:
        await standby.runner.cleanup()
    status = frames[-1]
    assert status["instance"]["role"] == "standby"
    assert status["instance"]["instance"] == "B"
    assert status["instance"]["epoch"] is None  # it never held the lease
    site = next(s for s in status["sites"] if s["pbx_id"] == "north")
    assert (site["router"], site["instance"], site["instances"]) == ("active", "A", ["A", "B"])
    queues, agents, _ = _shown(frames)
    assert queues == {("", "support"), ("", "sales"), ("south", "support"), ("south", "returns")}
    assert agents == {"2001", "3001"}
