"""JSON errors for the API: one shape, one place that maps exceptions to status codes.

Every error under ``/api`` is ``{"error": <what>, ...}`` with a JSON content
type: ``fields`` (422, the offending fields), ``message`` (a sentence), or
``retry_after`` (429). :func:`json_errors` maps the store's exceptions
(:class:`NotFound` 404, :class:`InvalidChange` 409), validation failures (422),
an unreachable database or session store (503), a body that cannot be read
(garbage under ``Content-Encoding: gzip`` or ``deflate``, a broken chunked
body: 400), and rewrites aiohttp's own plain-text errors (unknown path 404,
wrong method 405, body too large 413) into that shape. :func:`security_headers`
adds ``X-Content-Type-Options: nosniff`` to every response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import asyncpg
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from redis.exceptions import RedisError

from hotline.store.db import InvalidChange, NotFound
from hotline.web.schema import ValidationFailed

__all__ = ["json_error", "json_errors", "security_headers"]

log = structlog.get_logger("hotline.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_EXCEPTIONS: Final[Mapping[int, type[web.HTTPException]]] = {
    exc.status_code: exc
    for exc in (
        web.HTTPBadRequest,
        web.HTTPUnauthorized,
        web.HTTPForbidden,
        web.HTTPNotFound,
        web.HTTPConflict,
        web.HTTPUnsupportedMediaType,
        web.HTTPUnprocessableEntity,
        web.HTTPTooManyRequests,
        web.HTTPServiceUnavailable,
    )
}
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)


def json_error(
    status: int, error: str, *, headers: Mapping[str, str] | None = None, **detail: Any
) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": error, **detail}``; raise it."""
    body = json.dumps({"error": error, **detail})
    return _EXCEPTIONS[status](text=body, content_type="application/json", headers=headers)


def _as_json(exc: web.HTTPException) -> web.HTTPException:
    """aiohttp's own plain-text error (404, 405 with its ``Allow``, 413...), now JSON."""
    exc.text = json.dumps({"error": (exc.reason or "error").lower()})
    exc.content_type = "application/json"
    return exc


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map exceptions to the API's JSON errors (see the module docstring)."""
    try:
        return await handler(request)
    except ValidationFailed as exc:
        raise json_error(422, "validation", fields=exc.fields) from exc
    except RequestPayloadError:
        encoding = request.headers.get("Content-Encoding", "identity")
        response = web.json_response(
            {
                "error": "bad request",
                "message": f"the request body cannot be read (Content-Encoding: {encoding})",
            },
            status=400,
        )
        # The rest of the body cannot be read either: close the connection after the answer
        # instead of letting aiohttp try (and log a traceback).
        response.force_close()
        request.content.feed_eof()
        return response
    except NotFound as exc:
        raise json_error(404, "not found", message=str(exc)) from exc
    except InvalidChange as exc:
        raise json_error(409, "conflict", message=str(exc)) from exc
    except RedisError as exc:
        log.warning("web.session_store_unavailable", error=type(exc).__name__)
        raise json_error(503, "session store unavailable") from exc
    except _UNAVAILABLE as exc:
        log.warning("web.database_unavailable", error=type(exc).__name__)
        raise json_error(503, "database unavailable") from exc
    except web.HTTPException as exc:
        if request.path.startswith("/api") and exc.content_type != "application/json":
            raise _as_json(exc) from None
        raise


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` signal: ``X-Content-Type-Options: nosniff`` on every
    response, so no browser guesses another type than the one sent."""
    response.headers["X-Content-Type-Options"] = "nosniff"
