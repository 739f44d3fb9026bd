"""The live feed's per-queue diffs (hotline/web/live.py): a supervising page's snapshot
followed by its deltas, merged in order, is the queue as the router has it; agents' pages
get their queues' masked views at most every ``masked_interval``, their own tile at once.

The hub runs on a real router (no sockets: frames are only queued, then read back).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.clock import SystemClock
from hotline.config import QueueConfig, parse_settings
from hotline.domain.routing import Router
from hotline.web.auth import Principal
from hotline.web.live import (
    MASKED_SLOTS,
    LiveHub,
    _Page,
    diff_queue_view,
    mask_number,
    merge_queue_view,
)
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

QUEUES = ("support", "sales")
AGENTS = ("2001", "2002")


def _hub(router: Router) -> LiveHub:
    config = parse_settings(
        {"ami": {"url": "ami://u:p@127.0.0.1:1"}, "queues": [{"name": q} for q in QUEUES]},
        source="<test>",
        env={},
    )
    hub = LiveHub(config, SystemClock())
    hub.router = router
    return hub


def _page(role: str, queues: frozenset[str], agent_id: str | None = None) -> _Page:
    principal = Principal(name=role, role=role, agent_id=agent_id, queues=tuple(queues))
    return _Page(web.WebSocketResponse(), principal, queues, role == "supervisor")


class Shown:
    """What a page shows: every frame read so far, merged as the wallboard merges them."""

    def __init__(self, page: _Page) -> None:
        self.page = page
        self.queues: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.frames: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Apply the frames queued since the last read; those frames."""
        new = []
        while not self.page.frames.empty():
            frame = json.loads(self.page.frames.get_nowait())
            new.append(frame)
            if frame["type"] == "snapshot":
                self.queues.clear()
                self.agents.clear()
            for view in frame["queues"]:
                self.queues[view["name"]] = merge_queue_view(self.queues.get(view["name"]), view)
            for view in frame["agents"]:
                self.agents[view["id"]] = view
        self.frames += new
        return new


def _router() -> Router:
    queues = [QueueConfig(name=name) for name in QUEUES]
    return make_router([agent("2001"), agent("2002", ("sales",))], queues=queues)


def _truth(hub: LiveHub, router: Router) -> dict[str, list[dict[str, Any]]]:
    views = hub._build_queue_views(router, list(QUEUES))
    return {name: view["waiting"] for name, view in views.items()}


def _feed(hub: LiveHub, effects: list[Any]) -> None:
    for effect in effects:
        hub.sink(effect)


# One step of the centre: a caller arrives (queue, priority), the n-th waiting caller
# hangs up, a batch goes out, or a supervising page connects.
STEP = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(QUEUES), st.integers(0, 3)),
    st.tuples(st.just("hangup"), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("flush"), st.just(""), st.just(0)),
    st.tuples(st.just("connect"), st.just(""), st.just(0)),
    st.tuples(st.sampled_from(["login", "pause", "logout"]), st.sampled_from(AGENTS), st.just(0)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_snapshot_then_diffs_in_order_reconstruct_every_queue(
    steps: list[tuple[str, Any, int]],
) -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    hub.masked_interval = 0.0  # no agent's page here: no pacing (and no loop to time it)
    shown: list[Shown] = []
    waiting: list[str] = []

    def connect() -> None:
        page = _page("supervisor", frozenset(QUEUES))
        hub.pages.add(page)
        hub.send_snapshot(page)
        shown.append(Shown(page))

    connect()
    for kind, queue, priority in steps:
        pbx.now += 1
        if kind == "arrive":
            uid, effects = pbx.caller(queue=queue, priority=priority)
            waiting.append(uid)
            _feed(hub, effects)
        elif kind == "hangup" and waiting:
            _feed(hub, pbx.hangup(waiting.pop(queue % len(waiting))))
        elif kind == "flush":
            hub.flush()
        elif kind == "connect":
            connect()  # between two batches: its snapshot is the last batch's state
        elif kind == "login":  # rings a waiting caller (who leaves the list), if any
            _feed(hub, router.login(queue, pbx.now))
        elif kind == "pause":  # an agent's change only: the lists stay as they were
            _feed(hub, router.pause(queue, "break", pbx.now))
        elif kind == "logout":
            _feed(hub, router.logout(queue, pbx.now))
        for page in shown:
            page.read()
    hub.flush()
    truth = _truth(hub, router)
    for page in shown:
        page.read()
        assert {name: view["waiting"] for name, view in page.queues.items()} == truth
        counts = {name: view["agents"] for name, view in page.queues.items()}
        fresh = hub._build_queue_views(router, list(QUEUES))
        assert counts == {name: view["agents"] for name, view in fresh.items()}
        assert {a: view["state"] for a, view in page.agents.items()} == {
            a: router.agents[a].state.value for a in AGENTS
        }
        assert [frame["seq"] for frame in page.frames] == list(range(1, len(page.frames) + 1))


async def test_a_delta_carries_only_the_callers_that_joined_or_left() -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    board = Shown(_page("supervisor", frozenset(QUEUES)))
    hub.pages.add(board.page)
    first, effects = pbx.caller(number="13900000001")
    _feed(hub, effects)
    hub.flush()
    hub.send_snapshot(board.page)
    board.read()
    pbx.now += 5
    _, effects = pbx.caller(number="13900000002")
    _feed(hub, effects + pbx.hangup(first))
    hub.flush()
    [delta] = board.read()
    [support] = [view for view in delta["queues"] if view["name"] == "support"]
    assert support["waiting_diff"] is True
    assert [call["number"] for call in support["waiting"]] == ["13900000002"]
    assert support["waiting_left"] == [first]
    assert support["waiting_count"] == 1
    assert [call["number"] for call in board.queues["support"]["waiting"]] == ["13900000002"]


def test_diff_of_equal_views_is_empty_and_merge_of_a_full_view_replaces() -> None:
    view = {"name": "q", "waiting": [{"call_id": "a", "since": 1.0, "number": "1", "priority": 0}]}
    diff = diff_queue_view(view, view)
    assert (diff["waiting"], diff["waiting_left"]) == ([], [])
    assert merge_queue_view(view, diff)["waiting"] == view["waiting"]
    assert merge_queue_view({"name": "q", "waiting": []}, view) is view
    assert "waiting_diff" not in merge_queue_view(None, diff)


async def test_agents_pages_get_queues_paced_and_their_own_tile_at_once() -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    hub.masked_interval = 3600.0  # only the first update goes out within this test
    hub.monotonic = lambda: 0.0  # the first tick: slot 0's turn
    own = Shown(_page("agent", frozenset({"support"}), agent_id="2001"))
    own.page.slot = 0
    hub.pages.add(own.page)
    hub.send_snapshot(own.page)
    own.read()
    _, effects = pbx.caller(number="13900000001")
    _feed(hub, effects)
    hub.flush()
    [first] = own.read()
    assert [call["number"] for call in first["queues"][0]["waiting"]] == ["*******0001"]
    assert "waiting_diff" not in first["queues"][0]  # agents get the (masked) list itself
    _, effects = pbx.caller(number="13900000002")
    _feed(hub, effects)
    hub.flush()
    assert own.read() == []  # the queue's change waits for the next paced update
    _feed(hub, router.login("2001", pbx.now))
    hub.flush()
    [tile] = own.read()  # the agent's own state: at once, without the queue
    assert tile["queues"] == []
    assert [view["id"] for view in tile["agents"]] == ["2001"]
    hub.send_snapshot(own.page)  # a snapshot shows the queue as the last batch left it
    [snapshot] = own.read()
    numbers = [call["number"] for call in snapshot["queues"][0]["waiting"]]
    assert numbers == [mask_number(call["number"]) for call in _truth(hub, router)["support"]]
    assert "*******0002" in numbers  # the change the paced update had held back
    assert "13900000002" not in json.dumps(own.frames)


async def test_an_answered_caller_leaves_the_wallboard_and_its_agent_tile_moves() -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    board = Shown(_page("supervisor", frozenset(QUEUES)))
    hub.pages.add(board.page)
    hub.send_snapshot(board.page)
    uid, effects = pbx.caller(number="13900000001")
    _feed(hub, effects)
    hub.flush()
    _feed(hub, router.login("2001", pbx.now))
    hub.flush()
    pbx.now += 1
    offers = originates(router.tick(pbx.now))
    effects = []
    for offer in offers:
        effects += pbx.ring(offer) + pbx.answer(offer)
    _feed(hub, effects)
    hub.flush()
    board.read()
    assert board.queues["support"]["waiting"] == _truth(hub, router)["support"]
    assert board.agents["2001"]["state"] == router.agents["2001"].state.value
    assert uid  # the caller's id was the one shown, then left


async def test_agents_pages_take_turns_one_slot_per_tick() -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    now = [0.0]
    hub.monotonic = lambda: now[0]
    tick = hub.masked_interval / MASKED_SLOTS
    pages = []
    for slot in range(MASKED_SLOTS):
        page = Shown(_page("agent", frozenset({"support"}), agent_id="2001"))
        page.page.slot = slot
        hub.pages.add(page.page)
        pages.append(page)
    _, effects = pbx.caller(number="13900000001")
    _feed(hub, effects)
    for turn in range(MASKED_SLOTS):
        now[0] = turn * tick + tick / 2
        hub.flush()  # the timer's wake-up: no new fact, the next slot's turn
        assert [len(page.read()) for page in pages] == [int(n == turn) for n in range(8)]
    hub.flush()  # every slot had its turn: nothing waits
    assert [page.read() for page in pages] == [[]] * MASKED_SLOTS
    assert all(page.queues["support"]["waiting_count"] == 1 for page in pages)


async def test_a_raised_caller_is_listed_first_as_they_will_be_answered_first() -> None:
    router = _router()
    pbx = Pbx(router)
    hub = _hub(router)
    board = Shown(_page("supervisor", frozenset(QUEUES)))
    hub.pages.add(board.page)
    first, effects = pbx.caller(number="13900000001")
    pbx.now += 5
    second, more = pbx.caller(number="13900000002")
    _feed(hub, effects + more)
    hub.flush()
    hub.send_snapshot(board.page)
    board.read()
    assert [c["call_id"] for c in board.queues["support"]["waiting"]] == [first, second]
    pbx.now += 1
    _feed(hub, router.set_priority(second, 5, pbx.now))
    hub.flush()
    board.read()  # the delta's diff, merged
    assert [c["call_id"] for c in board.queues["support"]["waiting"]] == [second, first]
    support = board.queues["support"]
    assert support["longest_since"] == min(c["since"] for c in support["waiting"])  # first's
    assert support["longest_since"] == support["waiting"][1]["since"]
    assert [call.call_id for call in router.waiting_calls("support")] == [second, first]
