"""The customers API: search and read, each read written to the audit log; agents scoped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hotline.log import MaskPhoneNumbers
from hotline.store.audit import AuditLog
from hotline.store.customers import Customers
from tests.api_support import running_api

pytestmark = pytest.mark.integration


async def test_reading_a_customer_writes_an_audit_row(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customer = await Customers(api.pool).create(
            phones=["13900139000"], name="Li Wei", unit="3-201", tags=["vip"]
        )
        sam = await api.sign_in("sam")
        assert await AuditLog(api.pool).find(object_type="customer") == []
        response = await sam.call("GET", f"/api/customers/{customer.id}")
        assert response.status == 200
        body = await response.json()
        entries = await AuditLog(api.pool).find(object_type="customer", object_id=str(customer.id))
        bearer_read = await api.bearer("GET", f"/api/customers/{customer.id}")
        assert bearer_read.status == 200
        after_bearer = await AuditLog(api.pool).find(object_type="customer")
        unknown = await sam.call("GET", "/api/customers/999999")
        not_a_number = await sam.call("GET", "/api/customers/abc")
        too_big = await sam.call("GET", f"/api/customers/{2**64}")
        final = await AuditLog(api.pool).find(object_type="customer")

    assert (body["name"], body["phones"], body["unit"], body["tags"]) == (
        "Li Wei",
        ["13900139000"],
        "3-201",
        ["vip"],
    )
    assert [(e.actor, e.action, e.object_id) for e in entries] == [
        ("sam", "customer.read", str(customer.id))
    ]
    assert after_bearer[0].actor == "token:integration"
    assert (unknown.status, not_a_number.status, too_big.status) == (404, 404, 404)
    assert len(final) == 2  # failed reads read nothing and audit nothing


async def test_search_audits_every_customer_it_shows(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customers = Customers(api.pool)
        wang = await customers.create(phones=["13900139001"], name="Wang Fang")
        await customers.create(phones=["13900139002"], name="Wang Lei")
        await customers.create(phones=["02155550000"], name="Zhao")
        sam = await api.sign_in("sam")
        by_name = await (await sam.call("GET", "/api/customers?q=wang")).json()
        by_phone = await (await sam.call("GET", "/api/customers?q=13900139001&limit=1")).json()
        nobody = await (await sam.call("GET", "/api/customers?q=nobody")).json()
        missing = await (await sam.call("GET", "/api/customers")).json()
        empty = await sam.call("GET", "/api/customers?q=")
        entries = await AuditLog(api.pool).find(object_type="customer")

    assert [c["name"] for c in by_name] == ["Wang Fang", "Wang Lei"]
    assert [c["id"] for c in by_phone] == [wang.id]
    assert nobody == []
    assert missing["fields"] == {"q": "is required"}
    assert empty.status == 422
    assert sorted((e.action, e.object_id, e.detail["query"]) for e in entries) == sorted(
        [("customer.search", str(c["id"]), "wang") for c in by_name]
        + [("customer.search", str(wang.id), "13900139001")]
    )


async def test_agents_only_reach_the_customers_of_their_tickets(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customers = Customers(api.pool)
        supported = await customers.create(phones=["13900139003"], name="Sun Support")
        sold = await customers.create(phones=["13900139004"], name="Sun Sales")
        for customer, queue in ((supported, "support"), (sold, "sales")):
            created = await api.bearer(
                "POST", "/api/tickets", json={"customer_id": customer.id, "queue": queue}
            )
            assert created.status == 201
        alice = await api.sign_in("alice")
        found = await (await alice.call("GET", "/api/customers?q=sun")).json()
        own = await alice.call("GET", f"/api/customers/{supported.id}")
        other = await alice.call("GET", f"/api/customers/{sold.id}")
        change = await alice.call("PATCH", f"/api/customers/{sold.id}", json={"notes": "x"})
        allowed = await alice.call(
            "PATCH", f"/api/customers/{supported.id}", json={"notes": "prefers mornings"}
        )
        entries = await AuditLog(api.pool).find(actor="alice", object_type="customer")
        changed = await customers.get(supported.id)
        untouched = await customers.get(sold.id)

    assert [c["id"] for c in found] == [supported.id]
    assert own.status == 200
    assert other.status == 403
    assert change.status == 403
    assert allowed.status == 200
    assert changed.notes == "prefers mornings"
    assert untouched.notes == ""
    # Issue 9 item 15: each refusal is audited too, on the customer refused.
    denied = [e for e in entries if e.action == "customer.denied"]
    assert sorted(e.detail["operation"] for e in denied) == ["read", "update"]
    assert {e.object_id for e in denied} == {str(sold.id)}
    entries = [e for e in entries if e.action != "customer.denied"]
    assert sorted(e.action for e in entries) == [
        "customer.read",
        "customer.search",
        "customer.update",
    ]
    assert {e.object_id for e in entries} == {str(supported.id)}
    update = next(e for e in entries if e.action == "customer.update")
    assert update.detail == {"fields": ["notes"]}


async def test_customer_changes_are_validated(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customer = await Customers(api.pool).create(phones=["13900139005"], name="Qian")
        url = f"/api/customers/{customer.id}"
        bad_tags = await api.bearer("PATCH", url, json={"tags": ["a", "a"]})
        phones = await api.bearer("PATCH", url, json={"phones": ["1"]})
        lines = await api.bearer("PATCH", url, json={"name": "two\nlines"})
        good = await api.bearer("PATCH", url, json={"household": "Qian family", "tags": ["a"]})
        body = await good.json()
        bad_tags_fields = (await bad_tags.json())["fields"]

    assert bad_tags_fields == {"tags": "may not have duplicates"}
    assert phones.status == 422
    assert lines.status == 422
    assert (body["household"], body["tags"], body["name"]) == ("Qian family", ["a"], "Qian")


def test_request_lines_in_the_stdlib_log_are_masked() -> None:
    line = '127.0.0.1 "GET /api/customers?q=%s HTTP/1.1" 200 "-" "curl/8"'
    masked = []
    for phone in ("13900139000", "%2B8613900139000"):
        record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, line, (phone,), None)
        assert MaskPhoneNumbers().filter(record) is True
        masked.append(record.getMessage())
    assert masked == [
        '127.0.0.1 "GET /api/customers?q=139******00 HTTP/1.1" 200 "-" "curl/8"',
        '127.0.0.1 "GET /api/customers?q=+861********00 HTTP/1.1" 200 "-" "curl/8"',
    ]
