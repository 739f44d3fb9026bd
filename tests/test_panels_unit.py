"""The panels' pure parts: the language choice, number masking, the live hub on a real
router (no sockets: frames are only queued), and "ready now" ending a wrap-up.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from hotline.clock import SystemClock
from hotline.config import QueueConfig, parse_settings
from hotline.domain.effects import AgentStateChanged, WrapUpEnded
from hotline.domain.model import AgentState
from hotline.domain.routing import Router
from hotline.web.auth import Principal
from hotline.web.live import CLIENT_BUFFER, LiveHub, _Page, mask_number
from hotline.web.pages import choose_language
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

SUPPORT_CALLER = "13900139003"


def test_language_is_chosen_by_query_then_cookie_then_accept_language() -> None:
    assert choose_language(None, None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert choose_language(None, None, "en-US,zh;q=0.5") == "en"
    assert choose_language(None, None, "fr, zh;q=0.3") == "zh-CN"
    assert choose_language(None, None, "") == "en"
    assert choose_language(None, "zh-CN", "en") == "zh-CN"
    assert choose_language("en", "zh-CN", "zh") == "en"
    assert choose_language("xx", None, "q=;;,") == "en"


def test_mask_number_keeps_the_last_four_digits() -> None:
    assert mask_number("13900139003") == "*******9003"
    assert mask_number("123") == "123"
    assert mask_number("") == ""


def _hub(router: Any) -> LiveHub:
    settings = parse_settings(
        {"ami": {"url": "ami://u:p@127.0.0.1:1"}, "queues": [{"name": "support"}]},
        source="<test>",
        env={},
    )
    hub = LiveHub(settings, SystemClock())
    hub.router = router
    hub.masked_interval = 0.0  # agents' pages unpaced here (tests/test_live_diff.py paces)
    return hub


def _page(role: str, queues: frozenset[str], agent_id: str | None = None) -> _Page:
    principal = Principal(name=role, role=role, agent_id=agent_id, queues=tuple(queues))
    return _Page(web.WebSocketResponse(), principal, queues, role == "supervisor")


def _frames(page: _Page) -> list[dict[str, Any]]:
    frames = []
    while not page.frames.empty():
        frames.append(json.loads(page.frames.get_nowait()))
    return frames


def _state(router: Router) -> AgentState:
    return router.agents["2001"].state


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
