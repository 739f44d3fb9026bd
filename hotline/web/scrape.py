"""``GET /metrics``: the Prometheus exposition of :class:`hotline.prometheus.Metrics`.

Public, like ``/health`` (see :mod:`hotline.web.auth`). The body is rendered from memory:
a scrape never waits on the network or the database.
"""

from __future__ import annotations

from aiohttp import web

from hotline.web.keys import METRICS

__all__ = ["CONTENT_TYPE", "routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format that :meth:`hotline.prometheus.Metrics.render` writes."""

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every metric, as of now."""
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})
