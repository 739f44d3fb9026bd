"""The wallboard's alerts and actions over the API, without a PBX (hotline/web/wall.py):
roles, audit, the alerts pushed over the feed and cleared, a raised priority re-ordering
the waiting line, a move to another queue, the overdue complaints, ask-a-supervisor.

Callers are announced to the engine as the PBX's translator would (``Engine.submit``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hotline.domain.events import CallerWaiting
from hotline.web.keys import ENGINE, STORE
from hotline.web.wall import ALERTS
from tests.api_support import RunningApi, running_api
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(migrated_database_url: str, tmp_path: Path) -> Any:
    async with running_api(migrated_database_url, tmp_path) as running:
        yield running


def _caller(api: RunningApi, uid: str, number: str, queue: str = "support") -> None:
    engine = api.server.app[ENGINE]
    engine.submit(
        CallerWaiting(
            at=engine.clock.now(),
            source="pbx",
            uniqueid=uid,
            channel=f"PJSIP/trunk-{uid}",
            linkedid=uid,
            number=number,
            name="Caller",
            queue=queue,
            priority=0,
        )
    )


def _waiting(api: RunningApi, queue: str) -> list[str]:
    return [call.call_id for call in api.server.app[ENGINE].router.waiting_calls(queue)]


async def _audit(api: RunningApi, action: str) -> list[Any]:
    return list(
        await api.pool.fetch(
            "select actor, object_id, detail from audit_log where action = $1", action
        )
    )


async def _alert_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads((await ws.receive(timeout=30)).data)
        if frame["type"] == "alerts":
            return frame


async def test_wallboard_actions_are_for_supervisors_only(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    for path, body in (
        ("/api/wallboard/calls/1.1/priority", {"priority": 5}),
        ("/api/wallboard/calls/1.1/move", {"queue": "sales"}),
        ("/api/wallboard/alerts/ask:1/whisper", None),
        ("/api/wallboard/alerts/ask:1/barge", None),
        ("/api/wallboard/alerts/ask:1/dismiss", None),
    ):
        response = await alice.call("POST", path, json=body)
        assert response.status == 403, path
    assert (await alice.call("GET", "/api/wallboard/alerts")).status == 403
    sam = await api.sign_in("sam")
    response = await sam.call("POST", "/api/wallboard/calls/1.1/priority", csrf=False, json={})
    assert response.status == 403
    response = await api.bearer("POST", "/api/wallboard/calls/1.1/move", json={"queue": "sales"})
    assert response.status == 403  # the integration token acts on nobody
    assert (await api.bearer("GET", "/api/wallboard/alerts")).status == 200
    # Bad input gets a clear error.
    bad = await sam.call("POST", "/api/wallboard/calls/1.1/priority", json={"priority": "high"})
    assert bad.status == 422
    bad = await sam.call("POST", "/api/wallboard/calls/1.1/move", json={"queue": "nowhere"})
    assert bad.status == 422
    missing = await sam.call("POST", "/api/wallboard/calls/1.1/priority", json={"priority": 3})
    assert missing.status == 404
    assert (await sam.call("POST", "/api/wallboard/alerts/ask:1/dismiss")).status == 404
    assert await _audit(api, "supervisor.priority") == []


async def test_callers_with_nobody_available_raise_an_alert_that_clears(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    ws = await sam.client.ws_connect("/api/live")
    assert json.loads((await ws.receive()).data)["type"] == "snapshot"
    _caller(api, "100.1", "13900000001")
    frame = await _alert_frame(ws)
    (alert,) = frame["alerts"]
    assert (alert["id"], alert["kind"], alert["waiting"]) == (
        "queue:support:nobody_available",
        "nobody_available",
        1,
    )
    assert frame["queues"] == []
    assert frame["agents"] == []
    listed = await (await sam.call("GET", "/api/wallboard/alerts")).json()
    assert [item["id"] for item in listed["alerts"]] == [alert["id"]]
    # A page that connects now gets the alerts right after its snapshot.
    late = await sam.client.ws_connect("/api/live")
    assert json.loads((await late.receive()).data)["type"] == "snapshot"
    assert (await _alert_frame(late))["alerts"][0]["id"] == alert["id"]
    # The caller is moved to a queue that has... nobody either: the alert moves with them.
    response = await sam.call("POST", "/api/wallboard/calls/100.1/move", json={"queue": "billing"})
    assert response.status == 200, await response.text()
    assert (await response.json())["queue"] == "billing"
    while True:
        ids = [item["id"] for item in (await _alert_frame(ws))["alerts"]]
        if ids == ["queue:billing:nobody_available"]:
            break
    # A page of other queues does not get them: its list is empty.
    sales = await sam.client.ws_connect("/api/live?queues=sales")
    assert json.loads((await sales.receive()).data)["type"] == "snapshot"
    assert (await _alert_frame(sales))["alerts"] == []
    await sales.close()
    # An agent's page never gets alerts.
    alice = await api.sign_in("alice")
    mine = await alice.client.ws_connect("/api/live")
    assert json.loads((await mine.receive()).data)["type"] == "snapshot"
    with pytest.raises(TimeoutError):
        await mine.receive(timeout=2)
    for socket in (ws, late, mine):
        await socket.close()
    (row,) = await _audit(api, "supervisor.move")
    assert (row["actor"], row["object_id"]) == ("sam", "100.1")
    assert row["detail"]["from_queue"] == "support"
    assert row["detail"]["queue"] == "billing"


async def test_a_raised_priority_is_routed_first_and_audited(api: RunningApi) -> None:
    _caller(api, "200.1", "13900000002")
    _caller(api, "200.2", "13900000003")
    await eventually(lambda: _waiting(api, "support") == ["200.1", "200.2"], what="both waiting")
    sam = await api.sign_in("sam")
    response = await sam.call("POST", "/api/wallboard/calls/200.2/priority", json={"priority": 5})
    assert response.status == 200, await response.text()
    assert (await response.json())["priority"] == 5
    assert _waiting(api, "support") == ["200.2", "200.1"]
    (row,) = await _audit(api, "supervisor.priority")
    assert row["actor"] == "sam"
    assert (row["detail"]["from_priority"], row["detail"]["priority"]) == (0, 5)


async def test_overdue_complaints_raise_alerts_until_replied(api: RunningApi) -> None:
    store = api.server.app[STORE]
    center = api.server.app[ALERTS]
    late = datetime.now(UTC) - timedelta(hours=1)
    complaint = await store.tickets.create(
        "C-1", actor="sam", category="complaint", subject="Noise", due_at=late
    )
    await store.tickets.create("R-1", actor="sam", category="repair", due_at=late)
    await center.check_complaints()  # (the alert task also looks, every 30 s)
    sam = await api.sign_in("sam")
    alerts = (await (await sam.call("GET", "/api/wallboard/alerts")).json())["alerts"]
    assert [(a["kind"], a["ticket"]) for a in alerts] == [("complaint_overdue", complaint.number)]
    await store.tickets.update(complaint.number, {"replied_at": datetime.now(UTC)}, actor="sam")
    await center.check_complaints()
    assert (await (await sam.call("GET", "/api/wallboard/alerts")).json())["alerts"] == []


async def test_asking_needs_a_call(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    response = await alice.call("POST", "/api/panel/ask", json={"note": "help"})
    assert response.status == 409
    sam = await api.sign_in("sam")  # no agent id: nothing to ask about
    assert (await sam.call("POST", "/api/panel/ask")).status == 403
