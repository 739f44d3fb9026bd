"""``GET /ready``: readiness, as a list of named checks; ``/health`` stays liveness.

Each check is a small async callable that takes the application and returns the
reasons it is not ready (an empty list when fine). ``/ready`` runs them all and
answers 200 ``{"ready": true, "reasons": []}``, or 503 with every reason, e.g.
``{"ready": false, "reasons": ["engine: the engine task has ended"]}``. Add a check
by appending to :data:`CHECKS` (or pass your own list to :func:`readiness`).

Public, like ``/health`` (see :mod:`hotline.web.auth`): it says *what* is wrong,
never where (no addresses, no paths).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import structlog
from aiohttp import web

from hotline.web.keys import AMI, ENGINE, LEASE, SETTINGS, STORE

__all__ = [
    "CHECKS",
    "DATABASE_TIMEOUT",
    "Check",
    "check_database",
    "check_engine",
    "check_outbox",
    "check_pbx",
    "check_router",
    "check_site",
    "readiness",
    "redact",
    "router_status",
    "routes",
]

log = structlog.get_logger("hotline.web")

Check = Callable[[web.Application], Awaitable[list[str]]]
"""A readiness check: the reasons the service is not ready (empty: fine)."""

DATABASE_TIMEOUT: Final = 2.0
"""Seconds ``SELECT 1`` may take before the database counts as unreachable."""

_ADDRESS: Final = re.compile(
    r"\('[^']*', \d+[^)]*\)"  # ('10.0.0.5', 5432) as in "Connect call failed (...)"
    r"|\[[0-9A-Fa-f:.]+\](?::\d+)?"  # [::1]:5432
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"  # 10.0.0.5:5432
    r"|(?<![\w/])/[\w.@-]+(?:/[\w.@-]+)+"  # /var/lib/hotline/outbox
)


def redact(value: Any) -> Any:
    """``value`` (nested dicts and lists too) with network addresses and paths in its
    strings replaced by ``<redacted>``: what a public endpoint may show."""
    if isinstance(value, str):
        return _ADDRESS.sub("<redacted>", value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


async def check_engine(app: web.Application) -> list[str]:
    """The engine task must be running."""
    engine = app[ENGINE]
    if engine.alive:
        return []
    return ["engine: the engine task has ended"]


async def check_pbx(app: web.Application) -> list[str]:
    """The PBX may be disconnected for at most ``[service] pbx_down_grace`` seconds."""
    down_since = app[AMI].down_since
    if down_since is None:
        return []
    down = time.monotonic() - down_since
    grace = app[SETTINGS].service.pbx_down_grace
    if down <= grace:
        return []
    return [f"pbx: disconnected for {down:.0f} s (grace {grace:g} s)"]


async def check_database(app: web.Application) -> list[str]:
    """With a database configured, ``SELECT 1`` must answer within :data:`DATABASE_TIMEOUT`."""
    if STORE not in app:
        return []
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await app[STORE].pool.fetchval("SELECT 1")
    except Exception as exc:  # any failure means "unreachable" to a load balancer
        log.warning("ready.database_unreachable", error=type(exc).__name__)
        return [f"database: unreachable ({type(exc).__name__})"]
    return []


async def check_outbox(app: web.Application) -> list[str]:
    """The outbox writer must run, and the outbox must report no problem (a full disk)."""
    if STORE not in app:
        return []
    return [f"outbox: {problem}" for problem in app[STORE].outbox.problems()]


async def check_site(app: web.Application) -> list[str]:
    """Another site claims this instance's ticket letter (found after a start without the
    database; at start it refuses to run): not ready, its ticket numbers may repeat."""
    conflict = app[STORE].site_conflict if STORE in app else None
    return [f"site: {conflict}"] if conflict else []


async def check_router(app: web.Application) -> list[str]:
    """A fenced instance (it held the PBX's lease and lost it) is not ready: it is stepping
    down. A standby is ready (it serves the API; ``role`` says it does not route)."""
    lease = app.get(LEASE)
    if lease is not None and lease.role == "fenced":
        return [f"router: lost the lease of pbx {lease.pbx_id} (epoch {lease.epoch})"]
    return []


CHECKS: Final[list[Check]] = [
    check_engine,
    check_pbx,
    check_database,
    check_outbox,
    check_site,
    check_router,
]
"""The checks ``/ready`` runs, in order."""


def router_status(app: web.Application) -> dict[str, Any]:
    """This instance's role for its PBX: ``role`` (active, standby, fenced), ``pbx_id``,
    ``epoch`` and ``last_takeover`` (ISO time or null). Without a lease: always active."""
    lease = app.get(LEASE)
    if lease is None:
        return {"role": "active", "pbx_id": None, "epoch": None, "last_takeover": None}
    taken = lease.last_takeover
    return {
        "role": lease.role,
        "pbx_id": lease.pbx_id,
        "epoch": lease.epoch or None,
        "last_takeover": taken.isoformat() if taken else None,
    }


async def readiness(app: web.Application, checks: Sequence[Check] = CHECKS) -> list[str]:
    """Every reason from every check (a check that raises is a reason too)."""
    reasons: list[str] = []
    for check in checks:
        try:
            reasons.extend(await check(app))
        except Exception as exc:
            reasons.append(f"{check.__name__}: failed ({type(exc).__name__})")
    return [redact(reason) for reason in reasons]


routes = web.RouteTableDef()


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    """200 when ready to take traffic, else 503 with the reasons."""
    reasons = await readiness(request.app)
    return web.json_response(
        {"ready": not reasons, "reasons": reasons, **router_status(request.app)},
        status=503 if reasons else 200,
    )
