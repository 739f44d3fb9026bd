"""The report roll-ups' rules (migration ``0009_report_rollup.sql``).

The roll-ups count calls, rings and tickets with one set of rules: the time zone
of the days and slots (``[service] time_zone``), the service-level and
short-abandon thresholds (``[sla]``) and the ring time within ``[routing]
sla_rings`` x ``ring_cadence``. :func:`configure_rollup` sets them, rebuilding
the roll-ups from the raw rows when they change (the store does it at start);
:func:`rollup_rules` is what a report compares them with before reading the
roll-ups (see :mod:`hotline.reports.queries`).
"""

from __future__ import annotations

from typing import Final

import asyncpg
import structlog

from hotline.config import Settings
from hotline.store.db import Pool

__all__ = ["configure_rollup", "configure_rollup_at_start", "rollup_rules"]

log = structlog.get_logger("hotline.store.rollup")

_CONFIGURE_SQL: Final = "select hotline_rollup_configure($1, $2, $3, $4)"


def rollup_rules(settings: Settings) -> tuple[str, float, float, float]:
    """The zone and thresholds the roll-ups are counted with, for ``settings``."""
    routing, sla = settings.routing, settings.sla
    return (
        settings.service.time_zone,
        sla.service_level_threshold,
        sla.short_abandon_threshold,
        routing.sla_rings * routing.ring_cadence,
    )


async def configure_rollup(pool: Pool, settings: Settings) -> bool:
    """Have the roll-ups counted with ``settings``' rules, rebuilding them from the raw
    rows if they were counted otherwise (or not yet); True if it rebuilt them.

    While it rebuilds, the writers of calls, rings and tickets wait (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("set local jit = off")
        return bool(await conn.fetchval(_CONFIGURE_SQL, *rollup_rules(settings)))


async def configure_rollup_at_start(pool: Pool, settings: Settings) -> None:
    """:func:`configure_rollup`, for the store's start: PostgreSQL being away does not
    stop the service (reports then read the raw rows until a start that reaches it)."""
    try:
        if await configure_rollup(pool, settings):
            log.info("store.report_rollup_rebuilt")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("store.report_rollup_not_configured", error=f"{type(exc).__name__}: {exc}")
