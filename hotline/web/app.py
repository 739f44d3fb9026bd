"""The HTTP surface of the service: ``/health``, the JSON API, ``/ready`` and ``/metrics``.

:func:`install` adds every route to an application built by the composition root
(:func:`hotline.main.create_app`). The JSON API (:mod:`hotline.web.auth` and the
modules it guards) answers errors as JSON (:mod:`hotline.web.errors`) and describes
itself at ``/api/openapi.json``; only ``/health`` (liveness), ``/ready`` (readiness,
:mod:`hotline.web.ready`), ``/metrics``, that document and the login are served
without credentials.
"""

from __future__ import annotations

from aiohttp import web

from hotline.ivr import service as ivr
from hotline.web import (
    agentdesk,
    agents,
    auth,
    customers,
    desk,
    live,
    openapi,
    pages,
    panels,
    ready,
    recordings,
    reports,
    review,
    scrape,
    tickets,
    users,
    wall,
)
from hotline.web.errors import json_errors
from hotline.web.keys import AMI, ENGINE, STORE

__all__ = ["MIDDLEWARES", "health", "install"]

MIDDLEWARES = [json_errors, auth.authenticate]
"""Every request passes these: errors as JSON, then authentication."""


async def health(request: web.Request) -> web.Response:
    """Liveness and PBX connection state (no internal addresses: it is public)."""
    engine = request.app[ENGINE]
    return web.json_response(
        {
            "status": "ok",
            "pbx_connected": request.app[AMI].connected,
            "events_processed": engine.events_processed,
            "resyncs": engine.resyncs,
            **({"store": ready.redact(request.app[STORE].stats())} if STORE in request.app else {}),
            "router": ready.router_status(request.app),
        }
    )


def install(app: web.Application) -> None:
    """Add ``/health``, the JSON API with its OpenAPI document, the live feed, the pages,
    ``/metrics`` and ``/ready``; the wallboard's alert task."""
    app.router.add_get("/health", health)
    openapi.install(
        app,
        [
            auth.api,
            tickets.api,
            recordings.api,
            customers.api,
            users.api,
            agents.api,
            reports.api,
            panels.api,
            desk.api,
            agentdesk.api,
            review.api,
            live.api,
            wall.api,
            ivr.api,
        ],
        version="1",
    )
    app.router.add_routes(scrape.routes)
    app.router.add_routes(ready.routes)
    pages.install(app)
    wall.install(app)
