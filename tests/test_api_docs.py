"""The OpenAPI document: the service's own endpoints, ``/api/docs``, and RFC 3339 times.

``/health``, ``/ready`` and ``/metrics`` are documented with named schemas and
answer as documented; ``/api/docs`` renders the document with a script from this
server under a strict CSP (no CDN, no inline script); and every ``date-time``
field the document declares, in every GET answer of a populated API, is an RFC
3339 time with an offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hotline.domain.effects import CallArrived
from hotline.domain.model import AgentState, Outcome
from hotline.reports.period import PERIODS
from hotline.store.customers import Customers
from hotline.web.keys import STORE
from hotline.web.openapi import DOCS_CSP, rfc3339
from tests.api_support import RunningApi, Signed, running_api

pytestmark = pytest.mark.integration

STATIC = Path(__file__).resolve().parent.parent / "hotline" / "web" / "static"


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _json_schema(spec: dict[str, Any], schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: references inlined, ``nullable`` as ``null``."""
    if isinstance(schema, list):
        return [_json_schema(spec, item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = _resolve(spec, schema)
    converted = {k: _json_schema(spec, v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable"):
        converted["type"] = [converted["type"], "null"]
    return converted


def date_times(
    spec: dict[str, Any], schema: dict[str, Any], value: Any, at: str
) -> Iterator[tuple[str, Any]]:
    """Every (location, value) of ``value`` that ``schema`` declares ``format: date-time``."""
    schema = _resolve(spec, schema)
    if value is None:
        return
    if schema.get("format") == "date-time":
        yield at, value
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from date_times(spec, sub, value[name], f"{at}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in schema.get("properties", {}):
                    yield from date_times(spec, extra, item, f"{at}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from date_times(spec, schema["items"], item, f"{at}[{index}]")


def test_rfc3339_writes_utc_with_an_offset() -> None:
    assert rfc3339(None) is None
    text = rfc3339(1772442000.25)
    assert text == "2026-03-02T09:00:00.250000+00:00"
    assert datetime.fromisoformat(text).timestamp() == 1772442000.25


async def test_health_ready_and_metrics_are_documented_and_answer_as_documented(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        client = await api.client()
        spec = await (await client.get("/api/openapi.json")).json()
        schemas = spec["components"]["schemas"]
        assert {"Health", "Ready", "Router", "StoreStats", "Error"} <= set(schemas)
        for path in ("/health", "/ready", "/metrics"):
            operation = spec["paths"][path]["get"]
            assert operation["security"] == []
            assert operation["tags"] == ["service"]
        for path, name in (("/health", "Health"), ("/ready", "Ready")):
            response = await client.get(path)
            documented = spec["paths"][path]["get"]["responses"][str(response.status)]
            schema = documented["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{name}"}
            body = await response.json()
            jsonschema.validate(body, _json_schema(spec, schema))
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        media = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        assert list(media) == [metrics.headers["Content-Type"]]
        assert "hotline_" in await metrics.text()


async def test_api_docs_is_a_self_contained_page_under_a_strict_csp(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        client = await api.client()
        page = await client.get("/api/docs")  # no credentials: public, like the document
        assert page.status == 200
        assert page.content_type == "text/html"
        csp = page.headers["Content-Security-Policy"]
        assert csp == DOCS_CSP
        assert "default-src 'none'" in csp
        assert "script-src 'self';" in csp
        assert "unsafe" not in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        html = await page.text()
        assert re.findall(r"<script[^>]*>", html) == [
            '<script type="module" src="/static/apidocs.js">'
        ]
        assert "</script>" in html
        assert html.count("<script") == 1  # no inline script beside it
        assert "http://" not in html
        assert "https://" not in html  # no CDN
        for asset in ("/static/apidocs.js", "/static/apidocs.css"):
            served = await client.get(asset)
            assert served.status == 200, asset
            text = await served.text()
            assert "https://" not in text
            assert "http://" not in text
            assert "innerHTML" not in text  # text only: nothing from the document runs as HTML
        script = (STATIC / "apidocs.js").read_text()
        assert 'fetch("/api/openapi.json"' in script
        spec = await (await client.get("/api/openapi.json")).json()
        docs = spec["paths"]["/api/docs"]["get"]
        assert list(docs["responses"]["200"]["content"]) == ["text/html"]
        assert docs["security"] == []


async def _populate(api: RunningApi) -> dict[str, str]:
    """A customer, a ticket with a callback, a note, a call and a recording; agent 1001 in."""
    customer = await Customers(api.pool).create(phones=["13900139000"], name="Li Wei")
    created = await api.bearer(
        "POST", "/api/tickets", json={"queue": "support", "customer_id": customer.id}
    )
    assert created.status == 201, await created.text()
    number = (await created.json())["number"]
    due = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    callback = {"phone": "13900139000", "due_at": due, "assigned_to": "1001"}
    assert (await api.bearer("POST", f"/api/tickets/{number}/callbacks", json=callback)).ok
    assert (await api.bearer("POST", f"/api/tickets/{number}/notes", json={"text": "x"})).ok
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
    assert (await api.bearer("POST", "/api/agents/1001/login")).ok
    assert (await api.bearer("POST", "/api/agents/1001/pause", json={"reason": "lunch"})).ok
    user_id = await api.pool.fetchval("select id from users where username = 'root'")
    return {
        "number": number,
        "ticket": number,
        "id": str(customer.id),
        "customer_id": str(customer.id),
        "user_id": str(user_id),
        "agent_id": "1001",
    }


_NOT_JSON = {"/api/live", "/api/docs", "/metrics", "/api/openapi.json"}


def _concrete(path: str, values: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "id" and path.startswith("/api/users"):
            return values["user_id"]
        return values[name]

    return re.sub(r"{(\w+)}", fill, path)


async def _answers(
    root: Signed, spec: dict[str, Any], values: dict[str, str]
) -> Iterator[tuple[str, dict[str, Any], Any]]:
    answers = []
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None or path in _NOT_JSON:
            continue
        if any(p.get("required") and p["in"] == "query" for p in operation.get("parameters", [])):
            continue
        url = _concrete(path, values)
        response = await root.call("GET", url)
        if response.status != 200:  # /api/ivr without the IVR, say: a documented error
            assert str(response.status) in operation["responses"], (url, response.status)
            continue
        if response.content_type != "application/json":
            continue
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        answers.append((path, schema, await response.json()))
    return iter(answers)


async def test_every_date_time_in_every_answer_is_rfc3339_with_an_offset(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        values = await _populate(api)
        root = await api.sign_in("root")
        spec = await (await root.call("GET", "/api/openapi.json")).json()
        checked: dict[str, int] = {}
        for path, schema, body in await _answers(root, spec, values):
            for at, value in date_times(spec, schema, body, path):
                assert isinstance(value, str), (at, value)
                moment = datetime.fromisoformat(value)
                assert moment.utcoffset() is not None, (at, value)
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", value)
                checked[path] = checked.get(path, 0) + 1
        # Not vacuous: the populated answers carry times where the document says so.
        assert {
            "/api/agents",
            "/api/agents/{agent_id}",
            "/api/tickets",
            "/api/tickets/{number}",
            "/api/tickets/{number}/callbacks",
            "/api/tickets/{number}/calls",
            "/api/users",
            "/health",
        } <= set(checked), checked
        agent = await (await root.call("GET", "/api/agents/1001")).json()
        for key in ("state_since", "logged_in_since", "paused_since"):
            assert datetime.fromisoformat(agent[key]).utcoffset() == timedelta(0), agent
        # And nothing in the document still declares a time as an epoch number.
        text = str(spec)
        assert "'state_since': {'type': 'number'" not in text


def _string_properties(node: Any, found: list[tuple[str, dict[str, Any]]]) -> None:
    """Every ``properties`` entry of type string anywhere in ``node``, as (name, schema)."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            if isinstance(schema, dict) and schema.get("type") == "string":
                found.append((name, schema))
        for value in node.values():
            _string_properties(value, found)
    elif isinstance(node, list):
        for value in node:
            _string_properties(value, found)


async def test_enumerations_carry_enum(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        client = await api.client()
        spec = await (await client.get("/api/openapi.json")).json()
    found: list[tuple[str, dict[str, Any]]] = []
    _string_properties(spec, found)
    closed = {"state", "status", "role", "category", "party"}  # "period" labels are dates
    missing = sorted({name for name, schema in found if name in closed and "enum" not in schema})
    assert missing == []
    enums = {(name, tuple(schema["enum"])) for name, schema in found if "enum" in schema}
    assert ("state", tuple(AgentState)) in enums  # agents
    assert ("state", ("in_progress", "completed")) in enums  # calls
    assert ("outcome", tuple(Outcome)) in enums  # calls
    assert ("kind", ("escalation", "transfer")) in enums  # escalations
    assert ("period", tuple(PERIODS)) in enums  # a report's kind of period
