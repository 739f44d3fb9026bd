"""Escalations and handover notes pushed on the live feed, filtered by role and queue
(hotline/web/desk.py, desk_feed.py, LiveHub.push_desk): real WebSockets on the served API,
and across two instances through Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from hotline.main import create_app
from hotline.web.desk_feed import DESK_FEED
from tests.api_support import RunningApi, Signed, add_users, api_settings, running_api

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


@asynccontextmanager
async def _instances(
    dsn: str, folder: Path, redis_url: str, prefix: str
) -> AsyncIterator[list[RunningApi]]:
    """Two services for one ``pbx_id`` on one database and one Redis."""
    base = api_settings(dsn, folder, redis_url=redis_url, redis_prefix=prefix)
    running: list[RunningApi] = []
    try:
        for name in ("A", "B"):
            service = replace(
                base.service, pbx_id="pbx-desk", instance=name, state_dir=str(folder / name)
            )
            settings = replace(base, service=service)
            server = TestServer(create_app(settings))
            await server.start_server()
            running.append(RunningApi(server, settings))
        await add_users(running[0].pool)
        yield running
    finally:
        for api in running:
            for client in api.clients:
                await client.close()
            await api.server.close()


async def test_a_desk_fact_reaches_the_pages_of_another_instance(
    migrated_database_url: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,  # noqa: ARG001 - deletes the test's keys afterwards
    redis_server_url: str,
    redis_prefix: str,
) -> None:
    async with _instances(migrated_database_url, tmp_path, redis_server_url, redis_prefix) as (
        first,
        second,
    ):
        for api in (first, second):
            await api.server.app[DESK_FEED].subscribed.wait()
        sam_feed = await Feed.open(await first.sign_in("sam"))
        alice_feed = await Feed.open(await first.sign_in("alice"))  # queue support
        bob = await second.sign_in("bob")  # queue sales, on the other instance
        sales = await _ticket(second, "sales")
        support = await _ticket(second, "support")

        raised = await bob.call("POST", f"/api/tickets/{sales}/escalate", json={"reason": "x"})
        assert raised.status == 201
        frame = await sam_feed.desk()
        assert frame["escalation"] == await raised.json()
        other = await second.bearer(
            "POST", f"/api/tickets/{support}/escalate", json={"reason": "y"}
        )
        assert other.status == 201
        assert (await alice_feed.desk())["escalation"]["ticket"] == support  # not sales first
        assert (await sam_feed.desk())["escalation"]["ticket"] == support  # once, not twice
        assert second.server.app[DESK_FEED].published == 2
        assert first.server.app[DESK_FEED].received == 2
        assert second.server.app[DESK_FEED].received == 0  # its own are delivered directly
        for feed in (sam_feed, alice_feed):
            await feed.ws.close()
