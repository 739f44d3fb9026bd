"""The agent panel's desk API without a PBX (hotline/web/agentdesk.py): callbacks due with
their roles (an agent sees only their own; asking for another's is 403 and audited),
click-to-call as a callback due now to the agent's own phone, the ticket form's options, and
every new route in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.store.callbacks import Callbacks
from hotline.store.customers import Customers
from hotline.store.tickets import Tickets
from tests.api_support import RunningApi, running_api

pytestmark = pytest.mark.integration

PHONE = "13900139077"


@pytest.fixture
async def api(migrated_database_url: str, tmp_path: Path) -> Any:
    async with running_api(migrated_database_url, tmp_path) as running:
        yield running


async def _ticket(api: RunningApi, number: str, queue: str, customer_id: int | None) -> str:
    await Tickets(api.pool).create(
        number, actor="test", queue=queue, customer_id=customer_id, subject=f"about {number}"
    )
    return number


async def _callbacks(api: RunningApi) -> dict[str, int]:
    """Alice's overdue one and her future one, Bob's overdue one, and one far ahead."""
    customer = await Customers(api.pool).create(phones=[PHONE], name="Mrs <Wu>")
    support = await _ticket(api, "T-SUPPORT-1", "support", customer.id)
    sales = await _ticket(api, "T-SALES-1", "sales", customer.id)
    now = datetime.now(UTC)
    callbacks = Callbacks(api.pool)
    ids = {}
    for name, ticket, agent, due in (
        ("alice_overdue", support, "1001", now - timedelta(hours=1)),
        ("alice_soon", support, "1001", now + timedelta(minutes=30)),
        ("bob_overdue", sales, "1002", now - timedelta(minutes=5)),
        ("alice_later", support, "1001", now + timedelta(days=3)),
    ):
        made = await callbacks.schedule(
            ticket, phone=PHONE, due_at=due, actor="test", assigned_to=agent
        )
        ids[name] = made.id
    return ids


async def test_an_agent_lists_only_their_own_callbacks_due(api: RunningApi) -> None:
    ids = await _callbacks(api)
    alice = await api.sign_in("alice")
    response = await alice.call("GET", "/api/callbacks?mine=true")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert [(c["id"], c["overdue"]) for c in body["callbacks"]] == [
        (ids["alice_overdue"], True),
        (ids["alice_soon"], False),
    ]
    assert {c["assigned_to"] for c in body["callbacks"]} == {"1001"}
    # Without "mine" an agent still gets only their own.
    plain = await (await alice.call("GET", "/api/callbacks")).json()
    assert [c["id"] for c in plain["callbacks"]] == [ids["alice_overdue"], ids["alice_soon"]]
    # Another agent's: refused, and the refusal audited.
    refused = await alice.call("GET", "/api/callbacks?agent=1002")
    assert refused.status == 403
    rows = await api.pool.fetch(
        "select actor, object_id from audit_log where action = 'callback.denied'"
    )
    assert [tuple(row) for row in rows] == [("alice", "1002")]
    # Further ahead with due_before.
    ahead = (datetime.now(UTC) + timedelta(days=4)).isoformat()
    later = await alice.call("GET", "/api/callbacks", params={"due_before": ahead})
    assert ids["alice_later"] in [c["id"] for c in (await later.json())["callbacks"]]
    bad = await alice.call("GET", "/api/callbacks?due_before=tomorrow")
    assert bad.status == 422
    assert "due_before" in (await bad.json())["fields"]


async def test_supervisors_see_everyones_callbacks_or_one_agents(api: RunningApi) -> None:
    ids = await _callbacks(api)
    sam = await api.sign_in("sam")
    every = await (await sam.call("GET", "/api/callbacks")).json()
    assert [c["id"] for c in every["callbacks"]] == [
        ids["alice_overdue"],
        ids["bob_overdue"],
        ids["alice_soon"],
    ]
    bobs = await (await sam.call("GET", "/api/callbacks?agent=1002")).json()
    assert [c["id"] for c in bobs["callbacks"]] == [ids["bob_overdue"]]
    assert (await sam.call("GET", "/api/callbacks?mine=true")).status == 403  # no agent id
    token = await (await api.bearer("GET", "/api/callbacks?agent=1001")).json()
    assert [c["id"] for c in token["callbacks"]] == [ids["alice_overdue"], ids["alice_soon"]]


async def test_click_to_call_is_a_callback_due_now_to_the_agents_own_phone(
    api: RunningApi,
) -> None:
    await _callbacks(api)
    alice = await api.sign_in("alice")
    before = datetime.now(UTC)
    response = await alice.call("POST", "/api/panel/call", json={"ticket": "T-SUPPORT-1"})
    assert response.status == 201, await response.text()
    made = await response.json()
    assert (made["assigned_to"], made["phone"], made["max_attempts"]) == ("1001", PHONE, 1)
    assert (made["status"], made["note"]) == ("scheduled", "click-to-call")
    due = datetime.fromisoformat(made["due_at"])
    assert before - timedelta(seconds=5) <= due <= datetime.now(UTC)
    due_now = await (await alice.call("GET", "/api/callbacks?mine=true")).json()
    listed = {c["id"]: c["overdue"] for c in due_now["callbacks"]}
    assert listed[made["id"]] is False  # due now: not overdue yet
    rows = await api.pool.fetch(
        "select actor, object_id from audit_log where action = 'callback.call_now'"
    )
    assert [tuple(row) for row in rows] == [("alice", "T-SUPPORT-1")]
    # Another number, given explicitly; a bad one is a clear error.
    other = await alice.call(
        "POST", "/api/panel/call", json={"ticket": "T-SUPPORT-1", "phone": "+8613800000001"}
    )
    assert (await other.json())["phone"] == "+8613800000001"
    bad = await alice.call("POST", "/api/panel/call", json={"ticket": "T-SUPPORT-1", "phone": "x"})
    assert bad.status == 422
    # Refused: without CSRF, on a ticket of another queue, for a user without a phone.
    no_csrf = await alice.call(
        "POST", "/api/panel/call", json={"ticket": "T-SUPPORT-1"}, csrf=False
    )
    assert no_csrf.status == 403
    assert (await no_csrf.json())["error"] == "csrf"
    other_queue = await alice.call("POST", "/api/panel/call", json={"ticket": "T-SALES-1"})
    assert other_queue.status == 403
    sam = await api.sign_in("sam")
    no_phone = await sam.call("POST", "/api/panel/call", json={"ticket": "T-SUPPORT-1"})
    assert no_phone.status == 403
    unknown = await alice.call("POST", "/api/panel/call", json={"ticket": "T-NOPE"})
    assert unknown.status == 404
    await _ticket(api, "T-NOBODY", "support", None)
    nobody = await alice.call("POST", "/api/panel/call", json={"ticket": "T-NOBODY"})
    assert nobody.status == 422
    assert "phone" in (await nobody.json())["fields"]


async def test_the_ticket_form_options_and_the_openapi_document(api: RunningApi) -> None:
    alice = await api.sign_in("alice")
    form = await (await alice.call("GET", "/api/panel/form")).json()
    assert form["complaint_reply_hours"] == api.settings.tickets.complaint_reply_hours
    assert form["dispatch_parties"][0] == "in_house"
    assert (form["satisfaction_min"], form["satisfaction_max"]) == (1, 5)
    assert "complaint" in form["categories"]
    spec = await (await alice.call("GET", "/api/openapi.json")).json()
    assert "get" in spec["paths"]["/api/callbacks"]
    assert "post" in spec["paths"]["/api/panel/call"]
    assert "get" in spec["paths"]["/api/panel/form"]
    pop = spec["paths"]["/api/panel/pop"]["get"]["responses"]["200"]
    assert pop  # the pop's answer now names the call's ticket and whether it is stored yet
    body = await (await alice.call("GET", "/api/panel/pop")).json()
    assert (body["ticket"], body["pending"]) == (None, False)
