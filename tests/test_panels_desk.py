"""The panels' desk API without a PBX: handover notes, escalations, quality review and the
audit-log viewer, with their roles, scopes and CSRF (hotline/web/desk.py, review.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.domain.effects import CallAnswered, CallArrived
from hotline.web.keys import STORE
from tests.api_support import RunningApi, running_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(migrated_database_url: str, tmp_path: Path) -> Any:
    async with running_api(migrated_database_url, tmp_path) as running:
        yield running


async def _ticket(api: RunningApi, queue: str) -> str:
    response = await api.bearer("POST", "/api/tickets", json={"queue": queue})
    assert response.status == 201
    number: str = (await response.json())["number"]
    return number


async def test_a_handover_note_shows_unread_to_the_next_shift_and_is_found_by_day(
    api: RunningApi,
) -> None:
    support = await _ticket(api, "support")
    sales = await _ticket(api, "sales")
    alice = await api.sign_in("alice")  # support
    bob = await api.sign_in("bob")  # sales
    sam = await api.sign_in("sam")

    note = {"body": "Lift 3 repair <b>pending</b>", "tickets": [support], "queues": ["support"]}
    refused = await alice.call("POST", "/api/handover", json=note, csrf=False)
    assert refused.status == 403
    assert (
        await alice.call("POST", "/api/handover", json={"body": "x", "tickets": [sales]})
    ).status == 403
    other_queue = await alice.call("POST", "/api/handover", json={"body": "x", "queues": ["sales"]})
    assert other_queue.status == 403
    written = await alice.call("POST", "/api/handover", json=note)
    assert written.status == 201
    created = await written.json()
    assert (created["author"], created["body"], created["tickets"]) == (
        "alice",
        "Lift 3 repair <b>pending</b>",
        [support],
    )
    assert created["read"] is True  # its author has read it
    general = await (await sam.call("POST", "/api/handover", json={"body": "All quiet"})).json()

    # The next shift: sam sees alice's note (not his own); bob only the general one.
    unread = await (await sam.call("GET", "/api/handover/unread")).json()
    assert [n["id"] for n in unread["notes"]] == [created["id"]]
    bob_unread = await (await bob.call("GET", "/api/handover/unread")).json()
    assert [n["id"] for n in bob_unread["notes"]] == [general["id"]]
    hidden = await bob.call("POST", f"/api/handover/{created['id']}/read")
    assert hidden.status == 404  # not for his queues
    marked = await sam.call("POST", f"/api/handover/{created['id']}/read")
    assert (await marked.json())["read"] is True
    assert (await (await sam.call("GET", "/api/handover/unread")).json())["notes"] == []

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    found = await (await sam.call("GET", f"/api/handover?day={today}")).json()
    assert [n["id"] for n in found["notes"]] == [general["id"], created["id"]]
    searched = await (await sam.call("GET", f"/api/handover?day={today}&q=lift")).json()
    assert [n["id"] for n in searched["notes"]] == [created["id"]]
    by_ticket = await (await sam.call("GET", f"/api/handover?q={support}")).json()
    assert [n["id"] for n in by_ticket["notes"]] == [created["id"]]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert (await (await sam.call("GET", f"/api/handover?day={yesterday}")).json())["notes"] == []
    bad = await sam.call("GET", "/api/handover?day=yesterday")
    assert bad.status == 422


async def test_an_escalated_ticket_shows_on_both_panels_until_a_supervisor_resolves_it(
    api: RunningApi,
) -> None:
    support = await _ticket(api, "support")
    sales = await _ticket(api, "sales")
    alice = await api.sign_in("alice")
    bob = await api.sign_in("bob")
    sam = await api.sign_in("sam")

    assert (
        await alice.call("POST", f"/api/tickets/{sales}/escalate", json={"reason": "x"})
    ).status == 403
    no_csrf = await alice.call(
        "POST", f"/api/tickets/{support}/escalate", json={"reason": "angry"}, csrf=False
    )
    assert no_csrf.status == 403
    raised = await alice.call(
        "POST", f"/api/tickets/{support}/escalate", json={"reason": "Caller threatens to sue"}
    )
    assert raised.status == 201
    escalation = await raised.json()
    assert (escalation["ticket"], escalation["kind"], escalation["open"]) == (
        support,
        "escalation",
        True,
    )

    for signed in (alice, sam):
        listed = await (await signed.call("GET", "/api/escalations")).json()
        assert [e["ticket"] for e in listed["escalations"]] == [support]
    assert (await (await bob.call("GET", "/api/escalations")).json())["escalations"] == []

    path = f"/api/escalations/{escalation['id']}/resolve"
    assert (await alice.call("POST", path, json={"resolution": "mine"})).status == 403
    resolved = await sam.call("POST", path, json={"resolution": "Called back, settled"})
    assert (await resolved.json())["resolved_by"] == "sam"
    assert (await sam.call("POST", path)).status == 409
    assert (await (await sam.call("GET", "/api/escalations")).json())["escalations"] == []
    every = await (await sam.call("GET", f"/api/escalations?all=true&ticket={support}")).json()
    assert [e["open"] for e in every["escalations"]] == [False]
    audit = await api.pool.fetch(
        "select actor, action from audit_log where object_id = $1 order by id", support
    )
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("alice", "ticket.escalate"),
        ("sam", "supervisor.resolve_escalation"),
    ]


async def test_transfer_needs_a_call_and_a_target(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    sam = await api.sign_in("sam")  # no agent id
    options = await (await alice.call("GET", "/api/panel/options")).json()
    assert options["transfer_queues"] == ["support", "sales", "billing"]
    assert options["quality_criteria"] == ["greeting", "courtesy", "accuracy", "resolution"]
    assert (await sam.call("POST", "/api/panel/transfer", json={"queue": "sales"})).status == 403
    assert (await alice.call("POST", "/api/panel/transfer", json={"queue": "x"})).status == 422
    assert (await alice.call("POST", "/api/panel/transfer", json={})).status == 422  # no default
    idle = await alice.call("POST", "/api/panel/transfer", json={"queue": "sales", "note": "n"})
    assert idle.status == 409
    no_csrf = await alice.call("POST", "/api/panel/transfer", json={"queue": "sales"}, csrf=False)
    assert no_csrf.status == 403


async def _answered_call(api: RunningApi, call_id: str, agent_id: str) -> str:
    number = await _ticket(api, "support")
    store = api.server.app[STORE]
    at = datetime.now(UTC).timestamp()
    store.recorder(CallArrived(call_id, number, "13900139000", "support", 0, at, "pbx"))
    store.recorder(CallAnswered(call_id, agent_id, "support", number, at, at + 5, "pbx"))
    assert await store.outbox.flush(10)
    await api.pool.execute(
        "insert into recordings (path, ticket_id, call_id, offer_id, agent_id, started_at) "
        "select $2, id, $3, 'hl-1', $4, now() from tickets where number = $1",
        number,
        f"/rec/{number}-{call_id}.wav",
        call_id,
        agent_id,
    )
    return number


def _form(**scores: int) -> list[dict[str, Any]]:
    return [{"criterion": name, "score": value} for name, value in scores.items()]


async def test_a_supervisor_scores_a_recorded_call_and_scores_show_per_agent(
    api: RunningApi,
) -> None:
    ticket = await _answered_call(api, "1772442000.7", "1001")
    sam = await api.sign_in("sam")
    alice = await api.sign_in("alice")
    bob = await api.sign_in("bob")

    calls = await (await sam.call("GET", "/api/quality/calls")).json()
    [call] = calls["calls"]
    assert (call["call_id"], call["agent_id"], call["ticket"], call["scored"]) == (
        "1772442000.7",
        "1001",
        ticket,
        False,
    )
    assert call["recordings"] == [f"/rec/{ticket}-1772442000.7.wav"]
    assert (await alice.call("GET", "/api/quality/calls")).status == 403

    form = _form(greeting=5, courtesy=4, accuracy=3, resolution=4)
    path = "/api/quality/1772442000.7"
    assert (await alice.call("POST", path, json={"scores": form})).status == 403
    assert (await sam.call("POST", path, json={"scores": form}, csrf=False)).status == 403
    partial = await sam.call("POST", path, json={"scores": _form(greeting=5)})
    assert partial.status == 422
    too_high = await sam.call(
        "POST", path, json={"scores": _form(greeting=9, courtesy=1, accuracy=1, resolution=1)}
    )
    assert too_high.status == 422
    assert (await sam.call("POST", "/api/quality/nope", json={"scores": form})).status == 404
    scored = await sam.call("POST", path, json={"scores": form, "comments": "Good <i>tone</i>"})
    assert scored.status == 201
    body = await scored.json()
    assert (body["agent_id"], body["total"], body["reviewer"], body["ticket"]) == (
        "1001",
        16,
        "sam",
        ticket,
    )

    mine = await (await alice.call("GET", "/api/quality")).json()
    assert [s["total"] for s in mine["scores"]] == [16]
    [today] = mine["by_day"]
    assert (today["reviews"], today["mean_total"]) == (1, 16)
    assert (await alice.call("GET", "/api/quality?agent_id=1002")).status == 403
    assert (await (await bob.call("GET", "/api/quality")).json())["scores"] == []
    per_agent = await (await sam.call("GET", "/api/quality?agent_id=1001")).json()
    assert [d["reviews"] for d in per_agent["by_day"]] == [1]
    again = await (await sam.call("GET", "/api/quality/calls")).json()
    assert again["calls"][0]["scored"] is True


async def test_the_audit_viewer_is_for_admins_and_filters_by_user_object_and_day(
    api: RunningApi,
) -> None:
    root = await api.sign_in("root")
    sam = await api.sign_in("sam")
    alice = await api.sign_in("alice")
    ticket = await _ticket(api, "support")
    await alice.call("POST", f"/api/tickets/{ticket}/escalate", json={"reason": "help"})
    await sam.call("POST", "/api/supervise/1001/pause", json={"reason": "coaching"})

    assert (await sam.call("GET", "/api/audit")).status == 403
    assert (await alice.call("GET", "/api/audit")).status == 403
    everything = await (await root.call("GET", "/api/audit")).json()
    actions = {entry["action"] for entry in everything["entries"]}
    assert {"user.login", "ticket.escalate", "supervisor.pause"} <= actions

    by_user = await (await root.call("GET", "/api/audit?actor=sam&action=supervisor.")).json()
    assert [(e["action"], e["object_id"]) for e in by_user["entries"]] == [
        ("supervisor.pause", "1001")
    ]
    by_object = await (
        await root.call("GET", f"/api/audit?object_type=ticket&object_id={ticket}")
    ).json()
    assert [e["actor"] for e in by_object["entries"]] == ["alice"]
    logins = await (await root.call("GET", "/api/audit?action=user.login&actor=alice")).json()
    assert len(logins["entries"]) == 1
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert (await (await root.call("GET", f"/api/audit?day={today}")).json())["entries"]
    assert (await (await root.call("GET", f"/api/audit?day={tomorrow}")).json())["entries"] == []
