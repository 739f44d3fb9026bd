"""``hotline bench live``: agent panels and wallboards on the live feed during the e2e load.

The end-to-end load of ``hotline bench e2e`` (the bundled ``load`` scenario: 500
agents, a burst of 1,000 callers; the sim in a child process, one scaled clock)
runs twice against the real service, here in this process with a throw-away
database (made on the server of ``--database-url``, migrated, dropped at the
end): first with no page connected, then with ``--panels`` agent panels (one per
agent, each signed in as that agent, so each gets its own queues with masked
numbers) and ``--wallboards`` supervisor wallboards connected over real
WebSockets to ``/api/live``. The pages run in another child process, so their
CPU is not the service's.

Printed as JSON lines, one per run and a summary: the routing decision p50/p99
(``HotlineCallWaiting`` bytes in to the Originate out, and over every trigger),
and for the run with pages the wallboards' event-to-frame latency: from the
engine emitting a caller's ``CallArrived`` fact (the waiting event handled) to a
wallboard's client reading the first frame that shows that caller, on the
machine's wall clock (p50/p99 over every wallboard and caller); frames and bytes
the pages read, pages the service dropped as too slow, the live hub's batches and
the wall time the loop spent making and queueing frames (``hub_busy_s``, and its
longest batch), the service's CPU seconds over the load, its resident memory
(sampled during each run), and the machine's 1-minute load average at the start
and the end of each run (the figures mean little on a machine busy with other
jobs: the service, the sim and the pages share its two cores).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import secrets
import socket
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web
from argon2 import PasswordHasher

from hotline.bench.common import emit
from hotline.bench.e2e import _SECRET, _rss_mb, _scenario, _sim_child
from hotline.clock import ScaledClock
from hotline.domain.commands import Login
from hotline.domain.effects import CallArrived, CallEnded, Fact
from hotline.main import create_app
from hotline.sim.harness import build_settings
from hotline.store.migrate import migrate
from hotline.store.users import Users
from hotline.web.auth import COOKIE, SESSIONS
from hotline.web.keys import ENGINE, SETTINGS, STORE
from hotline.web.live import HUB

__all__ = ["run"]

_PASSWORD = "bench-live-password"  # noqa: S105 - throw-away users of a throw-away database
_CALL_ID = re.compile(r'"call_id": "([^"]+)"')
_FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 3)


# -- the pages' child process -------------------------------------------------------------


async def _page(
    session: aiohttp.ClientSession,
    url: str,
    cookie: str,
    seen: dict[str, float] | None,
    totals: dict[str, int],
) -> None:
    """One page: read every frame; a wallboard notes when it first shows each caller."""
    async with session.ws_connect(url, headers={"Cookie": f"{COOKIE}={cookie}"}) as ws:
        totals["connected"] += 1
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            totals["frames"] += 1
            totals["bytes"] += len(message.data)
            if seen is not None:  # the frame's call ids, without parsing all of it
                for call_id in _CALL_ID.findall(message.data):
                    seen.setdefault(call_id, now)
        totals["closed"] += 1


def _pages_child(conn: Connection, url: str, panels: list[str], boards: list[str]) -> None:
    async def main() -> None:
        totals = {"connected": 0, "frames": 0, "bytes": 0, "closed": 0}
        seen: list[dict[str, float]] = [{} for _ in boards]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [
                asyncio.create_task(_page(session, url, cookie, None, totals)) for cookie in panels
            ]
            tasks += [
                asyncio.create_task(_page(session, url, cookie, board, totals))
                for cookie, board in zip(boards, seen, strict=True)
            ]
            while totals["connected"] < len(tasks):  # noqa: ASYNC110 - a bench's own wait
                await asyncio.sleep(0.05)
            conn.send("connected")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        conn.send({"totals": totals, "seen": seen})

    asyncio.run(main())


# -- the service ----------------------------------------------------------------------------


async def _fresh_database(dsn: str) -> tuple[str, str]:
    name = f"hl_bench_live_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    fresh = urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
    await migrate(fresh)
    return name, fresh


async def _drop_database(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def _cookies(
    app: web.Application, panels: int, wallboards: int
) -> tuple[list[str], list[str]]:
    """Session cookies of ``panels`` agents (the first configured) and ``wallboards``
    supervisors, made in the service's own session store (no login round trips)."""
    users = Users(app[STORE].pool, hasher=_FAST)
    sessions = app[SESSIONS]
    agent_cookies: list[str] = []
    for agent_id in list(app[SETTINGS].agents)[:panels]:
        user = await users.create(f"agent{agent_id}", _PASSWORD, role="agent", agent_id=agent_id)
        agent_cookies.append((await sessions.create(user.id, user.password_stamp)).id)
    board_cookies: list[str] = []
    for n in range(wallboards):
        user = await users.create(f"board{n}", _PASSWORD, role="supervisor")
        board_cookies.append((await sessions.create(user.id, user.password_stamp)).id)
    return agent_cookies, board_cookies


async def _one_run(
    dsn: str, calls: int, scale: float, panels: int, wallboards: int, logged_in: int
) -> dict[str, Any]:
    """One run of the load, with ``panels`` + ``wallboards`` pages (none when both are 0)."""
    scenario = _scenario(calls, True)
    name, fresh = await _fresh_database(dsn)
    port = _free_port()
    epoch = anchor = time.time()
    context = multiprocessing.get_context("spawn")
    sim_conn, sim_end = context.Pipe()
    sim = context.Process(
        target=_sim_child, args=(sim_end, scenario, port, scale, epoch, anchor), daemon=True
    )
    sim.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sim_conn.recv)
    arrived: dict[str, float] = {}
    ended: list[str] = []

    def keep(fact: Fact) -> None:
        if isinstance(fact, CallArrived):
            arrived.setdefault(fact.call_id, time.time())
        elif isinstance(fact, CallEnded):
            ended.append(fact.call_id)

    with tempfile.TemporaryDirectory(prefix="hotline-bench-live-") as state_dir:
        settings = build_settings(
            scenario, port, secret=_SECRET, database_url=fresh, state_dir=state_dir
        )
        app = create_app(settings, clock=ScaledClock(scale, epoch, anchor=anchor), sinks=[keep])
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        http_port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        engine = app[ENGINE]
        try:
            await engine.ami.wait_connected(30)
            async with asyncio.timeout(30):
                await engine.synced.wait()
            for agent_id in list(settings.agents)[:logged_in]:
                await engine.command(Login(agent_id))
            pages = None
            if panels or wallboards:
                agent_cookies, board_cookies = await _cookies(app, panels, wallboards)
                pages_conn, pages_end = context.Pipe()
                pages = context.Process(
                    target=_pages_child,
                    args=(
                        pages_end,
                        f"http://127.0.0.1:{http_port}/api/live",
                        agent_cookies,
                        board_cookies,
                    ),
                    daemon=True,
                )
                pages.start()
                await loop.run_in_executor(None, pages_conn.recv)
            result = await _load(app, sim_conn, calls, ended)
            if pages is not None:
                pages_conn.send("stop")
                report = await loop.run_in_executor(None, pages_conn.recv)
                pages.join(30)
                result.update(_latency(report, arrived))
                hub = app[HUB]
                result["pages_dropped"] = hub.pages_dropped
                result["hub_batches"] = hub.batches
                result["hub_busy_s"] = round(hub.busy_seconds, 3)
                result["hub_batch_max_ms"] = _ms(hub.longest_batch)
        finally:
            await runner.cleanup()
            sim.join(30)
            await _drop_database(dsn, name)
    logged = min(logged_in, len(settings.agents))
    return {"panels": panels, "wallboards": wallboards, "logged_in": logged, **result}


async def _load(
    app: web.Application, sim_conn: Connection, calls: int, ended: list[str]
) -> dict[str, Any]:
    """Run the load to its end; the decision latencies and the memory."""
    engine = app[ENGINE]
    loop = asyncio.get_running_loop()
    wall, cpu = time.perf_counter(), time.process_time()
    sim_conn.send("go")
    done = loop.run_in_executor(None, sim_conn.recv)
    rss = [_rss_mb()]
    load = os.getloadavg()[0]
    while not done.done():
        await asyncio.wait({done}, timeout=0.5)
        rss.append(_rss_mb())
    async with asyncio.timeout(120):
        while engine.router.live_calls() or len(ended) < calls:  # noqa: ASYNC110 - bench wait
            await asyncio.sleep(0.05)
    waiting = list(engine.decision_latency.get("CallerWaiting", ()))
    every = [value for values in engine.decision_latency.values() for value in values]
    return {
        "calls": calls,
        "wall_s": round(time.perf_counter() - wall, 2),
        "service_cpu_s": round(time.process_time() - cpu, 2),
        "decisions": len(waiting),
        "decision_p50_ms": _ms(statistics.median(waiting)) if waiting else None,
        "decision_p99_ms": _ms(_percentile(waiting, 0.99)),
        "decision_all_p99_ms": _ms(_percentile(every, 0.99)),
        "rss_start_mb": round(rss[0], 1),
        "rss_max_mb": round(max(rss), 1),
        "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def _latency(report: dict[str, Any], arrived: dict[str, float]) -> dict[str, Any]:
    """The wallboards' event-to-frame latencies, from what the pages' process saw."""
    latencies = [
        at - arrived[call_id]
        for seen in report["seen"]
        for call_id, at in seen.items()
        if call_id in arrived
    ]
    totals = report["totals"]
    return {
        "wallboard_frame_p50_ms": _ms(statistics.median(latencies)) if latencies else None,
        "wallboard_frame_p99_ms": _ms(_percentile(latencies, 0.99)),
        "wallboard_callers_seen": len(latencies),
        "pages_connected": totals["connected"],
        "page_frames": totals["frames"],
        "page_mbytes": round(totals["bytes"] / 1e6, 1),
        "pages_closed_by_service": totals["closed"],
    }


async def _run(
    dsn: str, calls: int, scale: float, panels: int, wallboards: int, logged_in: int
) -> list[dict[str, Any]]:
    without: dict[str, Any] = {"bench": "live", "run": "without_pages"}
    without.update(await _one_run(dsn, calls, scale, 0, 0, logged_in))
    emit(without)
    with_pages: dict[str, Any] = {"bench": "live", "run": "with_pages"}
    with_pages.update(await _one_run(dsn, calls, scale, panels, wallboards, logged_in))
    emit(with_pages)
    before, after = without["decision_p99_ms"], with_pages["decision_p99_ms"]
    summary = {
        "bench": "live",
        "run": "summary",
        "panels": panels,
        "wallboards": wallboards,
        "calls": calls,
        "time_scale": scale,
        "logged_in": with_pages["logged_in"],
        "wallboard_frame_p50_ms": with_pages.get("wallboard_frame_p50_ms"),
        "wallboard_frame_p99_ms": with_pages.get("wallboard_frame_p99_ms"),
        "wallboard_frame_goal_p99_ms": 100,
        "decision_p99_ms_without_pages": before,
        "decision_p99_ms_with_pages": after,
        "decision_p99_added_ms": round(after - before, 3)
        if before is not None and after is not None
        else None,
        "decision_goal_added_ms": 2,
        "rss_max_mb_without_pages": without["rss_max_mb"],
        "rss_max_mb_with_pages": with_pages["rss_max_mb"],
        "pages_dropped": with_pages.get("pages_dropped"),
    }
    emit(summary)
    return [without, with_pages, summary]


def run(
    dsn: str,
    calls: int = 2000,
    time_scale: float = 20.0,
    panels: int = 500,
    wallboards: int = 20,
    logged_in: int = 1_000_000,
) -> list[dict[str, Any]]:
    """Run the load without, then with the pages; print one JSON line per run, then a
    summary (and return them). ``logged_in``: how many agents are logged in (default all)."""
    return asyncio.run(_run(dsn, calls, time_scale, panels, wallboards, logged_in))
