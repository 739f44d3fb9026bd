"""The panels' server side without a PBX: pages, languages, CSP, the live feed's roles,
the supervisor actions' roles, CSRF and audit (see hotline/web/pages.py, live.py, panels.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hotline.web.pages import CSP
from tests.api_support import RunningApi, Signed, running_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(migrated_database_url: str, tmp_path: Path) -> Any:
    async with running_api(migrated_database_url, tmp_path) as running:
        yield running


async def _audit(api: RunningApi, action: str) -> list[Any]:
    return list(
        await api.pool.fetch(
            "select actor, object_id, detail from audit_log where action = $1", action
        )
    )


async def test_pages_are_served_with_a_strict_csp_in_the_chosen_language(api: RunningApi) -> None:
    client = await api.client()
    for path in ("/login", "/agent", "/wallboard"):
        response = await client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP
        text = await response.text()
        assert '<html lang="zh-CN">' in text
        assert '<script type="module" src="/static/' in text
    english = await (await client.get("/login?lang=en")).text()
    assert "Sign in" in english
    assert "Sign in" in await (await client.get("/login")).text()  # the cookie remembers it
    script = await client.get("/static/common.js")
    assert script.status == 200
    assert script.headers["Content-Security-Policy"] == CSP
    assert "innerHTML" not in await script.text()
    assert (await client.get("/static/app.py")).status == 404


async def _feed(
    signed: Signed, query: str = "", headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    return await signed.client.ws_connect(f"/api/live{query}", headers=headers)


async def test_the_feed_starts_with_a_snapshot_filtered_by_role(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    ws = await _feed(sam)
    frame = json.loads((await ws.receive()).data)
    assert frame["type"] == "snapshot"
    assert frame["seq"] == 1
    assert {queue["name"] for queue in frame["queues"]} == {"support", "sales", "billing"}
    assert {agent["id"] for agent in frame["agents"]} == {"1001", "1002"}
    await ws.send_str(json.dumps({"type": "snapshot"}))
    again = json.loads((await ws.receive()).data)
    assert (again["type"], again["seq"]) == ("snapshot", 2)
    await ws.close()

    alice = await api.sign_in("alice")  # agent 1001, queue support
    ws = await _feed(alice)
    frame = json.loads((await ws.receive()).data)
    assert [queue["name"] for queue in frame["queues"]] == ["support"]
    assert [agent["id"] for agent in frame["agents"]] == ["1001"]
    await ws.close()


async def test_an_agent_cannot_subscribe_to_another_queue(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _feed(alice, "?queues=sales")
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
        await _feed(alice, "?queues=nowhere")
    assert unknown.value.status == 422
    plain = await alice.call("GET", "/api/live")  # no upgrade: a clear error
    assert plain.status == 400
    assert "WebSocket" in (await plain.json())["message"]
    client = await api.client()
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await client.ws_connect("/api/live")
    assert anonymous.value.status == 401


async def test_a_cross_origin_page_cannot_open_the_feed(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _feed(sam, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_the_feed_sends_deltas_in_sequence_when_an_agent_changes(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    ws = await _feed(sam)
    assert json.loads((await ws.receive()).data)["seq"] == 1
    response = await sam.call("POST", "/api/supervise/1001/pause", json={"reason": "lunch"})
    assert response.status == 200, await response.text()
    delta = json.loads((await ws.receive(timeout=30)).data)
    assert (delta["type"], delta["seq"]) == ("delta", 2)
    (agent,) = delta["agents"]
    assert (agent["id"], agent["state"]) == ("1001", "logged_out")
    assert agent["pause_reason"] == "lunch"
    assert {queue["name"] for queue in delta["queues"]} == {"support"}
    await ws.close()


async def test_supervisor_actions_are_refused_to_agents_and_without_csrf(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    for action in ("listen", "whisper", "barge", "pause", "logout"):
        response = await alice.call("POST", f"/api/supervise/1001/{action}")
        assert response.status == 403, action
    sam = await api.sign_in("sam")
    response = await sam.call("POST", "/api/supervise/1001/logout", csrf=False)
    assert response.status == 403
    assert (await response.json())["error"] == "csrf"
    response = await api.bearer("POST", "/api/supervise/1001/listen")
    assert response.status == 403  # the integration token has no phone
    assert await _audit(api, "supervisor.logout") == []


async def test_force_pause_and_logout_are_audited(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    assert (await sam.call("POST", "/api/supervise/1002/pause")).status == 200
    response = await sam.call("POST", "/api/supervise/1002/logout")
    assert response.status == 200
    assert (await response.json())["state"] == "logged_out"
    assert [tuple(row)[:2] for row in await _audit(api, "supervisor.pause")] == [("sam", "1002")]
    assert [tuple(row)[:2] for row in await _audit(api, "supervisor.logout")] == [("sam", "1002")]
    assert (await sam.call("POST", "/api/supervise/9999/pause")).status == 404


async def test_listening_needs_a_device_in_the_profile(api: RunningApi) -> None:
    sam = await api.sign_in("sam")
    response = await sam.call("POST", "/api/supervise/1001/listen")
    assert response.status == 409
    assert "device" in (await response.json())["message"]
    root = await api.sign_in("root")
    users = await (await root.call("GET", "/api/users")).json()
    sam_id = next(user["id"] for user in users if user["username"] == "sam")
    response = await root.call("PATCH", f"/api/users/{sam_id}", json={"device": "PJSIP/9001"})
    assert response.status == 200, await response.text()
    assert (await response.json())["device"] == "PJSIP/9001"
    bad = await root.call("PATCH", f"/api/users/{sam_id}", json={"device": "PJSIP/1\r\nX: y"})
    assert bad.status == 422
    response = await sam.call("POST", "/api/supervise/1001/listen")
    assert response.status == 503  # no PBX in this test: a clear error, and it was audited
    (row,) = await _audit(api, "supervisor.listen")
    assert row["actor"] == "sam"
    assert row["detail"] == {"device": "PJSIP/9001", "target": "PJSIP/1001"}


async def test_the_screen_pop_is_empty_without_a_caller(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    body = await (await alice.call("GET", "/api/panel/pop")).json()
    assert body == {
        "number": None,
        "customer": None,
        "open_tickets": [],
        "recent_tickets": [],
        "preselected": None,
        "ticket": None,
        "pending": False,
    }


async def test_ready_now_is_the_agents_own_and_harmless_outside_wrap_up(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    response = await alice.call("POST", "/api/agents/1001/ready")
    assert response.status == 200
    assert (await response.json())["state"] == "logged_out"  # not wrapping up: unchanged
    assert (await alice.call("POST", "/api/agents/1002/ready")).status == 403
