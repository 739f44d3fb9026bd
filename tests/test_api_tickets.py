"""The tickets API on a real database: CRUD, filters, history, repairs, callbacks, roles."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.domain.effects import CallArrived
from hotline.store.customers import Customers
from hotline.web.keys import STORE
from tests.api_support import RunningApi, running_api

pytestmark = pytest.mark.integration


async def _create(api: RunningApi, **fields: Any) -> dict[str, Any]:
    response = await api.bearer("POST", "/api/tickets", json=fields)
    assert response.status == 201, await response.text()
    assert response.headers["Location"].startswith("/api/tickets/T")
    ticket: dict[str, Any] = await response.json()
    return ticket


async def test_create_read_change_and_history(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customer = await Customers(api.pool).create(phones=["13900139000"], name="Wang")
        ticket = await _create(
            api, customer_id=customer.id, category="complaint", subject="noise", queue="support"
        )
        number = ticket["number"]
        assert ticket["status"] == "open"
        assert ticket["due_at"] is not None  # a complaint gets its committed reply time

        sam = await api.sign_in("sam")
        change = {"status": "in_progress", "priority": 3, "satisfaction": 4, "replied_at": None}
        changed = await sam.call("PATCH", f"/api/tickets/{number}", json=change)
        assert changed.status == 200
        body = await changed.json()
        assert (body["status"], body["priority"], body["satisfaction"]) == ("in_progress", 3, 4)
        note = await sam.call("POST", f"/api/tickets/{number}/notes", json={"text": "called back"})
        assert note.status == 201
        assert (await note.json())["detail"] == {"text": "called back"}

        read = await (await sam.call("GET", f"/api/tickets/{number}")).json()
        events = await (await sam.call("GET", f"/api/tickets/{number}/events")).json()

    assert read == body
    assert [(e["kind"], e["field"], e["actor"]) for e in events] == [
        ("created", None, "token:integration"),
        ("changed", "status", "sam"),
        ("changed", "priority", "sam"),
        ("changed", "satisfaction", "sam"),
        ("note", None, "sam"),
    ]
    assert (events[1]["old_value"], events[1]["new_value"]) == ("open", "in_progress")


async def test_list_filters_search_and_pagination(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customer = await Customers(api.pool).create(phones=["13900139001"])
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        for index in range(5):
            await _create(api, queue="support", subject=f"support {index}")
        late = await _create(
            api, queue="sales", category="complaint", subject="Broken lift", due_at=past
        )
        mine = await _create(api, queue="billing", customer_id=customer.id, category="repair")

        async def page(query: str) -> dict[str, Any]:
            response = await api.bearer("GET", f"/api/tickets?{query}")
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result

        everything = await page("")
        first = await page("limit=3")
        second = await page("limit=3&offset=3")
        numbers = [t["number"] for t in everything["items"]]
        assert everything["total"] == 7
        assert [t["number"] for t in first["items"] + second["items"]] == numbers[:6]
        assert (second["limit"], second["offset"], second["total"]) == (3, 3, 7)
        assert [t["number"] for t in (await page("queue=sales"))["items"]] == [late["number"]]
        assert (await page("category=repair"))["items"][0]["number"] == mine["number"]
        assert (await page(f"customer={customer.id}"))["total"] == 1
        overdue = await page("overdue=true")
        assert [t["number"] for t in overdue["items"]] == [late["number"]]
        assert overdue["items"][0]["overdue"] is True
        assert (await page("q=broken"))["items"][0]["number"] == late["number"]
        assert (await page("q=100%25"))["total"] == 0  # LIKE wildcards are literal
        assert (await page("status=open&open=true"))["total"] == 7
        assert (await page("status=closed"))["total"] == 0

        for query, field in [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("status=lost", "status"),
            ("overdue=yes", "overdue"),
            ("opened_from=yesterday", "opened_from"),
            ("colour=red", "colour"),
            ("queue=a&queue=b", "queue"),
        ]:
            response = await api.bearer("GET", f"/api/tickets?{query}")
            assert response.status == 422, query
            assert field in (await response.json())["fields"], query


async def test_repairs_are_dispatched_and_completed_on_time_or_late(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        now = datetime.now(UTC)
        results = []
        for completed_after in (timedelta(hours=1), timedelta(hours=5)):
            number = (await _create(api, category="repair", queue="support"))["number"]
            dispatch = {
                "party": "equipment_vendor",
                "due_at": (now + timedelta(hours=2)).isoformat(),
                "contact": "Lift Co. 021-5555",
            }
            dispatched = await api.bearer("POST", f"/api/tickets/{number}/dispatch", json=dispatch)
            assert dispatched.status == 200
            assert (await dispatched.json())["status"] == "dispatched"
            done = {"completed_at": (now + completed_after).isoformat(), "resolution": "fixed"}
            completed = await api.bearer("POST", f"/api/tickets/{number}/complete", json=done)
            assert completed.status == 200
            results.append(await completed.json())
        again = await api.bearer("POST", f"/api/tickets/{number}/complete")

        consultation = (await _create(api))["number"]
        wrong_kind = await api.bearer(
            "POST", f"/api/tickets/{consultation}/dispatch", json={"party": "in_house"}
        )
        never_dispatched = await api.bearer("POST", f"/api/tickets/{consultation}/complete")
        bad_party = await api.bearer(
            "POST", f"/api/tickets/{consultation}/dispatch", json={"party": "plumber"}
        )
        by_status = await api.bearer(
            "PATCH", f"/api/tickets/{consultation}", json={"status": "dispatched"}
        )
        wrong_kind_message = (await wrong_kind.json())["message"]

    assert [(t["completed_on_time"], t["status"], t["resolution"]) for t in results] == [
        (True, "resolved", "fixed"),
        (False, "resolved", "fixed"),
    ]
    assert results[0]["dispatch_party"] == "equipment_vendor"
    assert again.status == 409
    assert wrong_kind.status == 409
    assert "not a repair" in wrong_kind_message
    assert never_dispatched.status == 409
    assert bad_party.status == 422
    assert by_status.status == 422


async def test_callbacks_calls_and_recordings(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        number = (await _create(api, queue="support"))["number"]
        due = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        callback = {"phone": "13900139000", "due_at": due, "assigned_to": "1001", "note": "am"}
        scheduled = await api.bearer("POST", f"/api/tickets/{number}/callbacks", json=callback)
        assert scheduled.status == 201
        body = await scheduled.json()
        assert (body["status"], body["assigned_to"], body["ticket_number"], body["queue"]) == (
            "scheduled",
            "1001",
            number,
            "support",
        )
        assert body["max_attempts"] == 4  # [tickets] callback_max_attempts
        listed = await (await api.bearer("GET", f"/api/tickets/{number}/callbacks")).json()
        assert [c["id"] for c in listed] == [body["id"]]
        unknown_agent = await api.bearer(
            "POST", f"/api/tickets/{number}/callbacks", json={**callback, "assigned_to": "9"}
        )
        assert "assigned_to" in (await unknown_agent.json())["fields"]
        bad_phone = await api.bearer(
            "POST", f"/api/tickets/{number}/callbacks", json={**callback, "phone": "call me"}
        )
        assert "phone" in (await bad_phone.json())["fields"]
        no_due = await api.bearer(
            "POST", f"/api/tickets/{number}/callbacks", json={"phone": "13900139000"}
        )
        assert (await no_due.json())["fields"] == {"due_at": "is required"}

        store = api.server.app[STORE]
        at = datetime.now(UTC).timestamp()
        store.recorder(CallArrived("1772442000.1", number, "13900139000", "support", 0, at, "pbx"))
        assert await store.outbox.flush(10)
        await api.pool.execute(
            "insert into recordings (path, ticket_id, call_id, offer_id, agent_id, started_at) "
            "select '/rec/x.wav', id, '1772442000.1', 'hl-1', '1001', now() from tickets "
            "where number = $1",
            number,
        )
        calls = await (await api.bearer("GET", f"/api/tickets/{number}/calls")).json()
        recordings = await (await api.bearer("GET", f"/api/tickets/{number}/recordings")).json()

    assert [(c["call_id"], c["caller_number"], c["state"]) for c in calls] == [
        ("1772442000.1", "13900139000", "in_progress")
    ]
    assert [(r["path"], r["agent_id"]) for r in recordings] == [("/rec/x.wav", "1001")]


async def test_unknown_tickets_are_404_and_bad_input_422(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        for method, suffix in [
            ("GET", ""),
            ("PATCH", ""),
            ("GET", "/events"),
            ("POST", "/notes"),
            ("POST", "/dispatch"),
            ("POST", "/complete"),
            ("GET", "/callbacks"),
            ("POST", "/callbacks"),
            ("GET", "/calls"),
            ("GET", "/recordings"),
        ]:
            body = {
                "PATCH": {"priority": 1},
                "POST": {
                    "/notes": {"text": "x"},
                    "/dispatch": {"party": "in_house"},
                    "/complete": {},
                    "/callbacks": {"phone": "123", "due_at": "2030-01-01T00:00:00Z"},
                }[suffix]
                if method == "POST"
                else None,
            }.get(method)
            response = await api.bearer(method, f"/api/tickets/T-none{suffix}", json=body)
            assert response.status == 404, (method, suffix, await response.text())
            assert (await response.json())["error"] == "not found"

        number = (await _create(api, subject="keep me"))["number"]
        url = f"/api/tickets/{number}"
        cases: list[tuple[Any, dict[str, Any], int]] = [
            ({"colour": "red"}, {"colour": "unknown field"}, 422),
            ({}, {"body": "must have at least 1 field"}, 422),
            ([1, 2], {"body": "must be a JSON object"}, 422),
            ({"priority": "high"}, {"priority": "must be an integer"}, 422),
            ({"priority": 10**20}, {"priority": "must be from -1000 to 1000"}, 422),
            ({"satisfaction": 6}, {"satisfaction": "must be from 1 to 5"}, 422),
            ({"subject": "a\x00b"}, {"subject": "may not contain NUL characters"}, 422),
            ({"subject": "x" * 201}, {"subject": "must be at most 200 characters"}, 422),
            (
                {"due_at": "2030-01-01T00:00:00"},
                {"due_at": "needs a UTC offset, e.g. Z or +08:00"},
                422,
            ),
            ({"queue": "nowhere"}, {"queue": "is not a configured queue"}, 422),
            ({"customer_id": 12345}, {"customer_id": "no such customer"}, 422),
        ]
        for body, fields, status in cases:
            response = await api.bearer("PATCH", url, json=body)
            assert response.status == status, body
            assert (await response.json()) == {"error": "validation", "fields": fields}, body
        surrogate = await api.bearer(
            "PATCH",
            url,
            data=b'{"subject": "\\ud800"}',
            headers={"Content-Type": "application/json"},
        )
        assert surrogate.status == 422
        broken = await api.bearer(
            "PATCH", url, data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert (await broken.json())["fields"] == {"body": "is not valid JSON"}
        deep = await api.bearer(
            "PATCH", url, data=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
        assert deep.status == 422
        form = await api.bearer("PATCH", url, data=b"priority=1")
        assert (await form.json())["fields"] == {"body": "is not valid JSON"}
        untyped = await api.bearer("PATCH", url, data=b'{"priority": 2}')
        assert untyped.status == 200  # JSON is JSON, whatever the declared type
        huge = await api.bearer(
            "PATCH",
            url,
            data=io.BytesIO(b" " * (2 << 20)),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status == 413
        unchanged = await (await api.bearer("GET", url)).json()

    assert unchanged["subject"] == "keep me"
    assert unchanged["priority"] == 2


async def test_agents_see_their_queues_and_own_tickets_only(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        support = (await _create(api, queue="support"))["number"]
        sales = (await _create(api, queue="sales"))["number"]
        billing_for_alice = (await _create(api, queue="billing", assigned_to="1001"))["number"]
        alice = await api.sign_in("alice")
        bob = await api.sign_in("bob")
        sam = await api.sign_in("sam")

        async def listing(who: Any) -> set[str]:
            page = await (await who.call("GET", "/api/tickets")).json()
            return {t["number"] for t in page["items"]}

        assert await listing(alice) == {support, billing_for_alice}
        assert await listing(bob) == {sales}
        assert await listing(sam) == {support, sales, billing_for_alice}
        # Another queue's ticket: 403, through every route.
        forbidden = await bob.call("GET", f"/api/tickets/{support}")
        assert forbidden.status == 403
        assert (await forbidden.json())["error"] == "forbidden"
        assert (await bob.call("GET", f"/api/tickets/{support}/events")).status == 403
        patch = await bob.call("PATCH", f"/api/tickets/{support}", json={"priority": 9})
        assert patch.status == 403
        assert (
            await bob.call("POST", f"/api/tickets/{support}/notes", json={"text": "x"})
        ).status == 403
        assert (await alice.call("GET", f"/api/tickets/{billing_for_alice}")).status == 200

        # Agents keep tickets in their own queues, assigned to themselves.
        other_queue = await alice.call("POST", "/api/tickets", json={"queue": "sales"})
        assert other_queue.status == 403
        give_away = await alice.call(
            "PATCH", f"/api/tickets/{support}", json={"assigned_to": "1002"}
        )
        assert give_away.status == 403
        own = await alice.call("POST", "/api/tickets", json={"subject": "walk-in"})
        assert own.status == 201
        assert (await own.json())["assigned_to"] == "1001"
        take = await alice.call("PATCH", f"/api/tickets/{support}", json={"assigned_to": "1001"})
        assert take.status == 200
        unchanged = await (await sam.call("GET", f"/api/tickets/{support}")).json()
        moved = await sam.call("PATCH", f"/api/tickets/{support}", json={"queue": "sales"})
        assert moved.status == 200
        # Still hers: assigned to her, though no longer in her queue.
        assert (await alice.call("GET", f"/api/tickets/{support}")).status == 200

    assert unchanged["assigned_to"] == "1001"


async def test_agent_control_behind_the_login(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        alice = await api.sign_in("alice")
        sam = await api.sign_in("sam")
        own = await alice.call("POST", "/api/agents/1001/login")
        assert own.status == 200
        assert (await own.json())["logged_in"] is True
        paused = await alice.call("POST", "/api/agents/1001/pause", json={"reason": "lunch"})
        assert (await paused.json())["pause_reason"] == "lunch"
        bad_reason = await alice.call("POST", "/api/agents/1001/pause", json={"reason": "a\r\nb"})
        assert "reason" in (await bad_reason.json())["fields"]
        other = await alice.call("POST", "/api/agents/1002/login")
        assert other.status == 403
        assert (await sam.call("POST", "/api/agents/1002/login")).status == 200
        assert (await sam.call("POST", "/api/agents/9999/login")).status == 404
        assert (await api.bearer("POST", "/api/agents/1002/logout")).status == 200
        listed = await (await alice.call("GET", "/api/agents")).json()
        body = await alice.call("POST", "/api/agents/1001/unpause", json={"x": 1})

    assert {a["id"]: a["logged_in"] for a in listed} == {"1001": True, "1002": False}
    assert body.status == 422
