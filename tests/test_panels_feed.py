"""The live feed's hub on a real router (no sockets), "ready now" ending a wrap-up, and an
agent's feed on the running service with the simulated PBX (hotline/web/live.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, web

from hotline.clock import SystemClock
from hotline.config import QueueConfig, parse_settings
from hotline.domain.effects import AgentStateChanged, WrapUpEnded
from hotline.domain.model import AgentState
from hotline.domain.routing import Router
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.stack import Stack, start_stack
from hotline.store.service import STORE
from hotline.store.users import Users
from hotline.web.auth import Principal
from hotline.web.live import CLIENT_BUFFER, LiveHub, _Page
from tests.api_support import FAST, PASSWORD
from tests.routing_helpers import Pbx, agent, make_router, originates

SUPPORT_CALLER = "13900139003"
SALES_CALLER = "13700137007"


def _hub(router: Any) -> LiveHub:
    settings = parse_settings(
        {"ami": {"url": "ami://u:p@127.0.0.1:1"}, "queues": [{"name": "support"}]},
        source="<test>",
        env={},
    )
    hub = LiveHub(settings, SystemClock())
    hub.router = router
    return hub


def _page(role: str, queues: frozenset[str], agent_id: str | None = None) -> _Page:
    principal = Principal(name=role, role=role, agent_id=agent_id, queues=tuple(queues))
    return _Page(web.WebSocketResponse(), principal, queues, role == "supervisor")


def _frames(page: _Page) -> list[dict[str, Any]]:
    frames = []
    while not page.frames.empty():
        frames.append(json.loads(page.frames.get_nowait()))
    return frames


@pytest.mark.unit
async def test_deltas_follow_the_snapshot_in_sequence_and_mask_for_agents() -> None:
    router = make_router([agent("2001")])
    pbx = Pbx(router)
    hub = _hub(router)
    boss, own = _page("supervisor", frozenset({"support"})), _page("agent", frozenset({"support"}))
    for page in (boss, own):
        hub.pages.add(page)
        hub.send_snapshot(page)
    for effect in pbx.caller(number=SUPPORT_CALLER)[1]:
        hub.sink(effect)  # type: ignore[arg-type]
    hub.flush()
    snapshot, delta = _frames(boss)
    assert (snapshot["type"], snapshot["seq"], delta["type"], delta["seq"]) == (
        "snapshot",
        1,
        "delta",
        2,
    )
    assert [call["number"] for call in delta["queues"][0]["waiting"]] == [SUPPORT_CALLER]
    _, agent_delta = _frames(own)
    assert [call["number"] for call in agent_delta["queues"][0]["waiting"]] == ["*******9003"]
    assert SUPPORT_CALLER not in json.dumps(agent_delta)


@pytest.mark.unit
async def test_a_slow_page_is_dropped_and_the_sink_never_blocks() -> None:
    router = make_router([agent("2001")])
    hub = _hub(router)
    slow = _page("supervisor", frozenset({"support"}))
    hub.pages.add(slow)
    for index in range(CLIENT_BUFFER + 5):
        hub.sink(AgentStateChanged("2001", AgentState.PAUSED, AgentState.AVAILABLE, None, index))
        hub.flush()
    assert slow.dropped
    assert slow not in hub.pages
    assert hub.pages_dropped == 1
    assert slow.frames.get_nowait() == ""  # the writer's cue to close the socket


def _state(router: Router) -> AgentState:
    return router.agents["2001"].state


@pytest.mark.unit
def test_ready_now_ends_the_wrap_up() -> None:
    router = make_router([agent("2001")], queues=[QueueConfig(name="support", wrap_up=60.0)])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    uid, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    pbx.answer(offer)
    pbx.hangup(offer.offer_id)
    pbx.hangup(uid)
    assert _state(router) is AgentState.WRAP_UP
    assert router.end_wrap_up("2001", pbx.now + 2) != []
    assert _state(router) is AgentState.AVAILABLE
    assert router.end_wrap_up("2001", pbx.now + 3) == []  # not wrapping up: nothing
    assert [e for e in pbx.advance(120) if isinstance(e, WrapUpEnded)] == []


def _two_queue_scenario() -> Scenario:
    return Scenario(
        name="feed",
        seed=5,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(
            count=2,
            rate_per_minute=120.0,
            queues=(("support", 1.0), ("sales", 1.0)),
            numbers=(SUPPORT_CALLER, SALES_CALLER),
            patience=Fixed(900.0),
        ),
        agents=(AgentGroup(("Local/2001@agents",), AgentBehaviour(no_answer=1.0)),),
    )


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        _two_queue_scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[{"name": "support"}, {"name": "sales"}],
        agents=[{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
    )
    users = Users(running.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001")
    await users.create("sam", PASSWORD, role="supervisor")
    try:
        yield running
    finally:
        if running.session.closed:  # the test stopped the service
            await running.sim.close()
        else:
            await running.close()


async def _feed(
    stack: Stack, client: aiohttp.ClientSession, username: str
) -> aiohttp.ClientWebSocketResponse:
    """Sign in and open the feed with the session cookie (sent by hand: it is ``Secure``)."""
    async with client.post(
        f"{stack.base_url}/api/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200
        cookie = response.cookies["hotline_session"].value
    return await client.ws_connect(
        f"{stack.base_url}/api/live", headers={"Cookie": f"hotline_session={cookie}"}
    )


async def test_an_agents_feed_never_carries_another_queues_callers(stack: Stack) -> None:
    async with aiohttp.ClientSession() as client:
        await _check_feeds(stack, client)


async def _check_feeds(stack: Stack, client: aiohttp.ClientSession) -> None:
    agent_ws, boss_ws = await _feed(stack, client, "ann"), await _feed(stack, client, "sam")
    stack.sim.start_arrivals()
    seen: set[str] = set()
    while seen != {SUPPORT_CALLER, SALES_CALLER}:  # the supervisor sees both callers
        frame = json.loads((await boss_ws.receive(timeout=60)).data)
        for queue in frame["queues"]:
            seen.update(call["number"] for call in queue["waiting"])
    agent_frames: list[str] = []
    while True:  # everything the agent was sent by now
        try:
            agent_frames.append((await agent_ws.receive(timeout=1)).data)
        except TimeoutError:
            break
    assert agent_frames
    text = "".join(agent_frames)
    assert SALES_CALLER not in text
    assert SALES_CALLER[-4:] not in text  # not even masked: not the agent's queue
    assert '"sales"' not in text
    await stack.stop_service()  # shutdown: pages closed with GOING_AWAY
    closing = await asyncio.wait_for(boss_ws.receive(), 30)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == WSCloseCode.GOING_AWAY
