"""``GET /metrics``: the Prometheus exposition of :class:`hotline.prometheus.Metrics`.

Public, like ``/health`` (see :mod:`hotline.web.auth`). The body is rendered from memory:
a scrape never waits on the network or the database. After the service's own families
come the exporter conventions: the process and Python collectors of ``prometheus_client``
(``process_*``, ``python_info``, ``python_gc_*``), ``hotline_build_info`` and one
``hotline_agent_info{agent,name}`` series per configured agent (value 1), so a dashboard
can show names by joining on ``agent``.
"""

from __future__ import annotations

import platform
from importlib import metadata

from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)

from hotline.config import Settings
from hotline.web.keys import METRICS, SETTINGS

__all__ = ["CONTENT_TYPE", "info_text", "routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format that :meth:`hotline.prometheus.Metrics.render` writes."""

routes = web.RouteTableDef()

_RUNTIME = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    _RUNTIME.register(_collector)


def _version() -> str:
    try:
        return metadata.version("hotline")
    except metadata.PackageNotFoundError:
        return "unknown"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def info_text(settings: Settings) -> str:
    """``hotline_build_info``, ``hotline_time_zone_info`` and ``hotline_agent_info``, in the
    text format."""
    lines = [
        "# HELP hotline_build_info The running Hotline's version and Python (value 1).",
        "# TYPE hotline_build_info gauge",
        f'hotline_build_info{{version="{_label(_version())}",'
        f'python="{_label(platform.python_version())}"}} 1',
        '# HELP hotline_time_zone_info The time zone of "today" and of the reports (value 1).',
        "# TYPE hotline_time_zone_info gauge",
        f'hotline_time_zone_info{{time_zone="{_label(settings.service.time_zone)}"}} 1',
        "# HELP hotline_agent_info Each configured agent's display name (value 1).",
        "# TYPE hotline_agent_info gauge",
    ]
    lines += [
        f'hotline_agent_info{{agent="{_label(agent.id)}",name="{_label(agent.name)}"}} 1'
        for agent in settings.agents.values()
    ]
    return "\n".join(lines) + "\n"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every metric, as of now."""
    body = (
        request.app[METRICS].render()
        + info_text(request.app[SETTINGS]).encode()
        + generate_latest(_RUNTIME)
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
