"""Escalations and handover notes pushed on the live feed, filtered by role and queue
(hotline/web/desk.py, LiveHub.push_desk): real WebSockets on the served API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import RunningApi, Signed, running_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(migrated_database_url: str, tmp_path: Path) -> Any:
    async with running_api(migrated_database_url, tmp_path) as running:
        yield running


class Feed:
    """One page's socket; :meth:`desk` skips the router's deltas, checking ``seq``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0

    @classmethod
    async def open(cls, signed: Signed) -> Feed:
        feed = cls(await signed.client.ws_connect("/api/live"))
        snapshot = await feed.frame()
        assert snapshot["type"] == "snapshot"
        return feed

    async def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads((await self.ws.receive(timeout=30)).data)
        assert frame["seq"] == self.seq + 1, frame  # desk facts share the sequence
        self.seq = frame["seq"]
        return frame

    async def desk(self) -> dict[str, Any]:
        while True:
            frame = await self.frame()
            if frame["type"] == "desk":
                return frame


async def _ticket(api: RunningApi, queue: str) -> str:
    created = await api.bearer("POST", "/api/tickets", json={"queue": queue})
    assert created.status == 201
    number: str = (await created.json())["number"]
    return number


async def test_an_escalation_reaches_the_pages_that_may_see_it(api: RunningApi) -> None:
    sam, alice, bob = [await api.sign_in(name) for name in ("sam", "alice", "bob")]
    sam_feed, alice_feed, bob_feed = [await Feed.open(user) for user in (sam, alice, bob)]
    sales = await _ticket(api, "sales")  # bob's queue, not alice's
    support = await _ticket(api, "support")  # alice's queue

    raised = await bob.call("POST", f"/api/tickets/{sales}/escalate", json={"reason": "angry"})
    assert raised.status == 201
    escalation = await raised.json()
    for feed in (sam_feed, bob_feed):
        frame = await feed.desk()
        assert (frame["kind"], frame["event"]) == ("escalation", "opened")
        assert frame["escalation"] == escalation

    # Alice's next desk fact is her own queue's escalation: the sales one never came.
    mine = await alice.call("POST", f"/api/tickets/{support}/escalate", json={"reason": "lift"})
    assert mine.status == 201
    frame = await alice_feed.desk()
    assert frame["escalation"]["ticket"] == support
    assert (await sam_feed.desk())["escalation"]["ticket"] == support

    resolved = await sam.call("POST", f"/api/escalations/{escalation['id']}/resolve", json={})
    assert resolved.status == 200
    for feed in (sam_feed, bob_feed):
        frame = await feed.desk()
        assert (frame["event"], frame["escalation"]["id"]) == ("resolved", escalation["id"])
        assert frame["escalation"]["open"] is False
    for feed in (sam_feed, alice_feed, bob_feed):
        await feed.ws.close()


async def test_a_handover_note_reaches_its_queues_not_its_author(api: RunningApi) -> None:
    sam, alice, bob = [await api.sign_in(name) for name in ("sam", "alice", "bob")]
    sam_feed, alice_feed, bob_feed = [await Feed.open(user) for user in (sam, alice, bob)]

    written = await alice.call(
        "POST", "/api/handover", json={"body": "<b>lift 3</b>", "queues": ["support"]}
    )
    assert written.status == 201
    note = await written.json()
    frame = await sam_feed.desk()
    assert (frame["kind"], frame["event"]) == ("handover", "new")
    assert frame["note"] == {**note, "read": False}

    # Bob (sales) gets the next note, for everyone, first; alice, its author, gets neither.
    everyone = await sam.call("POST", "/api/handover", json={"body": "fire drill at 3"})
    assert everyone.status == 201
    assert (await bob_feed.desk())["note"]["body"] == "fire drill at 3"
    assert (await alice_feed.desk())["note"]["body"] == "fire drill at 3"
    for feed in (sam_feed, alice_feed, bob_feed):
        await feed.ws.close()
