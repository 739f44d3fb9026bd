"""The JSON API's operations, and its OpenAPI 3.0 document built from them.

Each API module declares its operations with :meth:`Api.operation`: method,
path, the :mod:`hotline.web.schema` types of its path parameters, query and
body, and the schema of its answer. The decorator registers the aiohttp route
with a wrapper that validates the request before the handler runs (the handler
gets an :class:`Input` of parsed values), and keeps the declaration, from which
:func:`document` writes the OpenAPI document served at ``GET /api/openapi.json``.

Input rules: a path parameter that does not parse names nothing that exists
(404); query and body problems are 422 naming the fields; a body must be valid
JSON (else 422, field ``body``), whatever its declared content type, except
where an operation is ``json_only`` (the login: a cross-site HTML form cannot
send ``application/json``, so a forged login is refused with 415); an operation
without a body refuses one (422).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from hotline.web.errors import json_error
from hotline.web.schema import Invalid, Object, Type, ValidationFailed, parse_query

__all__ = [
    "OPENAPI",
    "SAFE_METHODS",
    "Api",
    "Input",
    "Operation",
    "array",
    "document",
    "enum",
    "install",
    "record",
    "rfc3339",
    "scalar",
    "string",
]

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: exempt from the CSRF check."""

ERROR_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "retry_after": {"type": "integer"},
    },
}
_ERROR_TEXT: Final[Mapping[int, str]] = {
    400: "not a WebSocket upgrade request",
    401: "no valid session cookie or bearer token",
    403: "not allowed for this user, or the CSRF token is missing or wrong",
    404: "no such object",
    409: "the object's state does not allow this change",
    413: "body too large",
    415: "the body is not application/json",
    416: "the Range is not satisfiable: `Content-Range: bytes */<size>` gives the size",
    422: "invalid input: `fields` names each offending field",
    429: "too many failed logins: retry after `Retry-After` seconds",
    503: "the database or the session store is unavailable",
}


def string(*, nullable: bool = False, fmt: str | None = None) -> dict[str, Any]:
    """The response schema of a string (``fmt``: e.g. ``date-time``)."""
    schema: dict[str, Any] = {"type": "string"}
    if fmt is not None:
        schema["format"] = fmt
    if nullable:
        schema["nullable"] = True
    return schema


def rfc3339(epoch: float | None) -> str | None:
    """An epoch time as the API writes times: RFC 3339 in UTC (``...+00:00``); None stays."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def enum(values: Iterable[str], *, nullable: bool = False) -> dict[str, Any]:
    """The response schema of one of ``values``."""
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if nullable:
        schema["nullable"] = True
    return schema


def scalar(kind: str, *, nullable: bool = False) -> dict[str, Any]:
    """The response schema of an ``integer``, ``number`` or ``boolean``."""
    schema: dict[str, Any] = {"type": kind}
    if nullable:
        schema["nullable"] = True
    return schema


def array(items: Mapping[str, Any]) -> dict[str, Any]:
    """The response schema of a list of ``items``."""
    return {"type": "array", "items": dict(items)}


def record(properties: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The response schema of an object that always has every one of ``properties``."""
    return {
        "type": "object",
        "required": list(properties),
        "properties": {name: dict(schema) for name, schema in properties.items()},
    }


@dataclass(frozen=True, slots=True)
class Input:
    """A request's validated parts."""

    path: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)


ApiHandler = Callable[[web.Request, Input], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One declared operation (see :meth:`Api.operation`)."""

    method: str
    path: str
    name: str
    summary: str
    tag: str
    path_params: Mapping[str, Type]
    query: Mapping[str, Type]
    query_required: frozenset[str]
    body: Object | None
    body_required: bool
    json_only: bool
    response: Mapping[str, Any] | None
    status: int
    public: bool
    errors: tuple[int, ...]
    other_media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    also: Mapping[int, str] = field(default_factory=dict)

    async def parse(self, request: web.Request) -> Input:
        """Validate ``request`` against this declaration."""
        path: dict[str, Any] = {}
        for name, kind in self.path_params.items():
            try:
                path[name] = kind.parse_text(request.match_info[name])
            except Invalid as exc:
                raise json_error(404, "not found", message=f"{name} {exc}") from exc
        query = parse_query(self.query, request.query, self.query_required)
        return Input(path=path, query=query, body=await self._body(request))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read() if request.body_exists else b""
        if self.body is None:
            if raw:
                raise ValidationFailed({"body": "this operation takes no body"})
            return {}
        if not raw:
            if self.body_required:
                raise ValidationFailed({"body": "is required"})
            return {}
        if self.json_only and request.content_type != "application/json":
            raise json_error(415, "unsupported media type", message="send application/json")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ValidationFailed({"body": "is not valid JSON"}) from exc
        try:
            parsed: dict[str, Any] = self.body.parse(value)
        except Invalid as exc:
            raise ValidationFailed({"body": str(exc)}) from exc
        return parsed


class Api:
    """A group of operations: their aiohttp routes and their declarations."""

    def __init__(self) -> None:
        """An empty group."""
        self.routes = web.RouteTableDef()
        self.operations: list[Operation] = []

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        path_params: Mapping[str, Type] | None = None,
        query: Mapping[str, Type] | None = None,
        query_required: frozenset[str] = frozenset(),
        body: Object | None = None,
        body_required: bool = True,
        json_only: bool = False,
        response: Mapping[str, Any] | None = None,
        status: int = 200,
        public: bool = False,
        errors: Iterable[int] = (),
        other_media: Mapping[str, Mapping[str, Any]] | None = None,
        description: str = "",
        also: Mapping[int, str] | None = None,
    ) -> Callable[[ApiHandler], ApiHandler]:
        """Declare an operation; the decorated ``handler(request, input)`` serves it.

        ``errors`` lists the operation's own error statuses; 401 and 403 (unless
        public), 404 (with path parameters), 422 (with query or body), 413 (with
        a body), 415 (``json_only``) and 503 are added. ``other_media`` maps the
        media types the success may be sent as besides JSON (chosen by a query
        parameter, say) to their schemas. ``description`` is the operation's longer
        text; ``also`` maps other success statuses (206, say) to their descriptions,
        answered with the same content as the success.
        """

        def decorate(handler: ApiHandler) -> ApiHandler:
            codes = set(errors) | {503}
            if not public:
                codes |= {401, 403}
            if path_params:
                codes.add(404)
            if query or body is not None:
                codes.add(422)
            if body is not None:
                codes.add(413)
            if json_only:
                codes.add(415)
            declared = Operation(
                method=method,
                path=path,
                name=handler.__name__,
                summary=summary,
                tag=tag,
                path_params=dict(path_params or {}),
                query=dict(query or {}),
                query_required=query_required,
                body=body,
                body_required=body_required,
                json_only=json_only,
                response=response,
                status=status,
                public=public,
                errors=tuple(sorted(codes)),
                other_media=dict(other_media or {}),
                description=description,
                also=dict(also or {}),
            )

            async def serve(request: web.Request) -> web.StreamResponse:
                return await handler(request, await declared.parse(request))

            serve.__doc__ = handler.__doc__
            self.routes.route(method, path, name=handler.__name__)(serve)
            self.operations.append(declared)
            return handler

        return decorate


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": kind.json_schema()}
        for name, kind in operation.path_params.items()
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": name in operation.query_required,
            "schema": kind.json_schema(),
        }
        for name, kind in operation.query.items()
    ]
    return parameters


def _security(operation: Operation) -> list[dict[str, list[str]]]:
    if operation.public:
        return []
    if operation.method in SAFE_METHODS:
        return [{"bearer": []}, {"session": []}]
    return [{"bearer": []}, {"session": [], "csrf": []}]


def _describe(operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": dict(operation.response)}}
    for media, schema in operation.other_media.items():
        success.setdefault("content", {})[media] = {"schema": dict(schema)}
    responses: dict[str, Any] = {str(operation.status): success}
    for code, text in operation.also.items():
        responses[str(code)] = {**success, "description": text}
    for code in operation.errors:
        responses[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    described: dict[str, Any] = {
        "operationId": operation.name,
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": _security(operation),
        "responses": responses,
    }
    if operation.description:
        described["description"] = operation.description
    parameters = _parameters(operation)
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": operation.body.json_schema()}},
        }
    return described


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ROUTER_PROPERTIES: Final[Mapping[str, Mapping[str, Any]]] = {
    "role": enum(("active", "standby", "fenced")),
    "pbx_id": string(nullable=True),
    "epoch": scalar("integer", nullable=True),
    "last_takeover": string(nullable=True, fmt="date-time"),
}
SERVICE_SCHEMAS: Final[Mapping[str, Mapping[str, Any]]] = {
    "Router": record(_ROUTER_PROPERTIES),
    "StoreStats": {
        "type": "object",
        "required": ["outbox", "open_tickets", "reconciled_at"],
        "properties": {
            "outbox": {"type": "object", "additionalProperties": True},
            "open_tickets": scalar("integer"),
            "reconciled_at": string(nullable=True, fmt="date-time"),
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "pbx_connected", "events_processed", "resyncs", "router"],
        "properties": {
            "status": enum(("ok",)),
            "pbx_connected": scalar("boolean"),
            "events_processed": scalar("integer"),
            "resyncs": scalar("integer"),
            "store": _ref("StoreStats"),
            "router": _ref("Router"),
        },
    },
    "Ready": record({"ready": scalar("boolean"), "reasons": array(string()), **_ROUTER_PROPERTIES}),
}
"""The named schemas of the service's own endpoints (``/health``, ``/ready``)."""

_METRICS_MEDIA: Final = "text/plain; version=0.0.4; charset=utf-8"


def _json(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SERVICE_PATHS: Final[Mapping[str, Mapping[str, Any]]] = {
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness: the process answers; PBX connection, events, store figures",
            "tags": ["service"],
            "security": [],
            "responses": {"200": _json("the process is alive", _ref("Health"))},
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness for traffic: engine, PBX (after its grace), database, outbox",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": _json("ready to take traffic", _ref("Ready")),
                "503": _json("not ready: `reasons` says why", _ref("Ready")),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Every metric in the Prometheus text format (0.0.4)",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": {
                    "description": "the metrics, as of now",
                    "content": {_METRICS_MEDIA: {"schema": {"type": "string"}}},
                }
            },
        }
    },
}
"""The service's endpoints outside the JSON API (routed by :mod:`hotline.web.app`)."""


def document(apis: Iterable[Api], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every operation of ``apis``, and of :data:`SERVICE_PATHS`."""
    paths: dict[str, dict[str, Any]] = {
        path: {method: dict(item) for method, item in items.items()}
        for path, items in SERVICE_PATHS.items()
    }
    for api in apis:
        for operation in api.operations:
            paths.setdefault(operation.path, {})[operation.method.lower()] = _describe(operation)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Hotline JSON API",
            "version": version,
            "description": (
                "Tickets, customers, users, agent control and reports; the service's health, "
                "readiness and metrics. Browse it at /api/docs. Authenticate with the "
                "session cookie from POST /api/login (state-changing requests then need the "
                "X-CSRF-Token header from the login answer) or with "
                "`Authorization: Bearer <token>`."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                "Error": dict(ERROR_SCHEMA),
                **{name: dict(schema) for name, schema in SERVICE_SCHEMAS.items()},
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }


OPENAPI = web.AppKey("openapi", dict)
"""The application's OpenAPI document."""

_api = Api()


@_api.operation(
    "GET",
    "/api/openapi.json",
    summary="This document",
    tag="meta",
    public=True,
    response={"type": "object"},
)
async def openapi_document(request: web.Request, _: Input) -> web.Response:
    """The OpenAPI document of the JSON API."""
    return web.json_response(request.app[OPENAPI])


DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The ``/api/docs`` page's Content-Security-Policy (the panels' own, no forms)."""

_DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hotline API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/apidocs.css">
<script type="module" src="/static/apidocs.js"></script>
</head>
<body>
<header>
<h1 id="title">Hotline JSON API</h1>
<p id="description"></p>
<p>The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a></p>
<nav id="toc"></nav>
</header>
<main id="operations"><p>Loading /api/openapi.json&hellip;</p></main>
<noscript><p>This page renders /api/openapi.json with a script from this server.</p></noscript>
</body>
</html>
"""


@_api.operation(
    "GET",
    "/api/docs",
    summary="This document, browsable (an HTML page that renders it)",
    tag="meta",
    public=True,
    other_media={"text/html": {"type": "string"}},
)
async def docs_page(request: web.Request, _: Input) -> web.Response:
    """The OpenAPI document rendered by ``/static/apidocs.js`` (no CDN, no inline script)."""
    del request
    response = web.Response(text=_DOCS_PAGE, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def install(app: web.Application, apis: Iterable[Api], *, version: str) -> None:
    """Add the routes of ``apis`` and of the document itself to ``app``."""
    every = [*apis, _api]
    for api in every:
        app.router.add_routes(api.routes)
    app[OPENAPI] = document(every, version=version)
