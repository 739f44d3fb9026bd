"""``hotline bench failover``: kill -9 the active of a pair during a burst, N times.

Two ``hotline serve`` processes (same ``[service] pbx_id``, one fresh database)
run against the simulated PBX, which runs here on a wall-rate clock. During the
burst the active is killed with ``SIGKILL`` every ``--every`` seconds; each
killed process is started again, as a supervisor would, and becomes the standby.
Printed as JSON lines: one per kill (the takeover time: kill to the standby's
``/ready`` saying ``active``), then a summary with the takeover p50 and max and,
checked against the sim's ground truth and the rows in PostgreSQL, the calls
``lost`` (no completed row), ``duplicated`` (a row for no call, or an agent rung
for two callers at once), ``misrecorded`` (another outcome or agent than the
PBX's) and ``delayed``: callers who were waiting during a takeover.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from hotline.bench.common import emit
from hotline.clock import ScaledClock
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario, Uniform
from hotline.store.migrate import migrate

__all__ = ["check", "run"]

_SECRET = "bench-failover"  # noqa: S105 - a loopback-only sim credential
_TOKEN = "bench-failover-token"  # noqa: S105 - a loopback-only API token
_LIMIT = 120.0
_OUTCOMES = {
    ("answered", None): "answered",
    ("abandoned", "waiting"): "abandoned_waiting",
    ("abandoned", "ringing"): "abandoned_ringing",
    ("redirected", None): "overflowed",
}


def _devices(agents: int) -> tuple[str, ...]:
    return tuple(f"Local/{2001 + n}@agents" for n in range(agents))


def _scenario(calls: int, agents: int, seconds: float) -> Scenario:
    return Scenario(
        name="bench-failover",
        seed=14,
        time_scale=1.0,
        arrivals=Arrivals(
            count=calls,
            rate_per_minute=calls * 60.0 / seconds,
            start_after=0.5,
            patience=Fixed(300.0),
        ),
        agents=(
            AgentGroup(
                _devices(agents), AgentBehaviour(answer_delay=Uniform(1.0, 3.0), talk=Uniform(2, 8))
            ),
        ),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Instance:
    name: str
    config: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.config.with_suffix(f".{self.starts}.log").open("wb")
        with log:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "hotline", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HOTLINE_API_TOKEN": _TOKEN},
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _write_config(
    instance: _Instance, ami_port: int, dsn: str, devices: tuple[str, ...], ttl: float
) -> None:
    state = instance.config.parent / f"state-{instance.name}"
    agents = "".join(
        f'[[agents]]\nid = "{d[6:10]}"\ndevice = "{d}"\nqueues = ["support"]\n' for d in devices
    )
    instance.config.write_text(
        f'[service]\ninstance = "{instance.name}"\nhttp_listen = "127.0.0.1:{instance.port}"\n'
        f'state_dir = "{state}"\npbx_id = "bench"\nlease_ttl = {ttl}\n'
        f'[ami]\nurl = "ami://hotline:{_SECRET}@127.0.0.1:{ami_port}"\n'
        f'[database]\nurl = "{dsn}"\noutbox_dir = "{state}/outbox"\n'
        '[routing]\ndefault_queue = "support"\n'
        '[[queues]]\nname = "support"\nring_timeout = 20\nwrap_up = 1\n' + agents
    )


async def _role(session: aiohttp.ClientSession, instance: _Instance) -> str | None:
    try:
        async with session.get(
            f"http://127.0.0.1:{instance.port}/ready", timeout=aiohttp.ClientTimeout(total=2)
        ) as response:
            return str((await response.json())["role"])
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _wait_role(session: aiohttp.ClientSession, instance: _Instance, role: str) -> None:
    deadline = time.monotonic() + _LIMIT
    while await _role(session, instance) != role:
        if time.monotonic() > deadline:
            raise TimeoutError(f"instance {instance.name} never became {role}")
        await asyncio.sleep(0.02)


def check(truth: list[dict[str, Any]], rows: dict[str, Any]) -> dict[str, int]:
    """Ground truth against the ``calls`` rows: ``calls``, ``lost``, ``duplicated``,
    ``misrecorded`` (see the module docstring)."""
    calls = [r for r in truth if r["type"] == "call"]
    lost = misrecorded = 0
    for call in calls:
        row = rows.get(call["call_id"])
        if row is None or row["state"] != "completed":
            lost += 1
        elif _misrecorded(call, row):
            misrecorded += 1
    duplicated = len(set(rows) - {c["call_id"] for c in calls}) + _double_rings(calls)
    return {"calls": len(calls), "lost": lost, "duplicated": duplicated, "misrecorded": misrecorded}


def _misrecorded(call: dict[str, Any], row: Any) -> bool:
    """Whether the completed ``row`` has another outcome (or answering agent) than the PBX's."""
    expected = _OUTCOMES.get((call["outcome"], call.get("abandoned_while")))
    answered_by = f"Local/{row['answered_by']}@agents" if row["answered_by"] else None
    return bool(
        row["outcome"] != expected
        or (expected == "answered" and answered_by != call["answered_by"])
    )


def _double_rings(calls: list[dict[str, Any]]) -> int:
    """How many times an agent was rung for a second caller while still ringing for another."""
    rings: dict[str, list[tuple[float, float, str]]] = {}
    for call in calls:
        for ring in call["rings"]:
            end = ring["ring_end"] if ring["ring_end"] is not None else float("inf")
            rings.setdefault(ring["agent"], []).append((ring["requested_at"], end, call["call_id"]))
    duplicated = 0
    for spans in rings.values():
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            if start < end and first != second:
                duplicated += 1
    return duplicated


async def _fresh_database(dsn: str) -> tuple[str, str]:
    name = f"hotline_bench_failover_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(dsn)
    fresh = urlunsplit(parts._replace(path=f"/{name}"))
    await migrate(fresh)
    return name, fresh


async def _drop_database(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def _run(
    dsn: str, calls: int, agents: int, kills: int, every: float, ttl: float
) -> dict[str, Any]:
    name, fresh = await _fresh_database(dsn)
    sim = SimPbx(
        _scenario(calls, agents, every * (kills + 1)),
        clock=ScaledClock(1.0),
        credentials=ServerCredentials("hotline", _SECRET),
    )
    await sim.start(host="127.0.0.1", port=0)
    directory = tempfile.TemporaryDirectory(prefix="hotline-bench-failover-")
    devices = _devices(agents)
    instances = [_Instance(n, Path(directory.name) / f"{n}.toml", _free_port()) for n in ("A", "B")]
    session = aiohttp.ClientSession()
    takeovers: list[float] = []
    windows: list[tuple[float, float]] = []
    try:
        for instance in instances:
            _write_config(instance, sim.port, fresh, devices, ttl)
        active, standby = await _start_pair(session, instances, devices)
        sim.start_arrivals()
        for kill in range(kills):
            await asyncio.sleep(every)
            takeover, window = await _kill_active(session, active, standby)
            takeovers.append(takeover)
            windows.append(window)
            emit({"bench": "failover", "kill": kill + 1, "takeover_seconds": round(takeover, 3)})
            active, standby = standby, active
        await sim.wait_idle(_LIMIT * 5)
        truth = sim.ground_truth
        rows = await _completed_rows(fresh, {r["call_id"] for r in truth if r["type"] == "call"})
        figures = check(truth, rows)
        delayed = _delayed(truth, windows)
    finally:
        for instance in instances:
            instance.stop()
        await session.close()
        await sim.close()
        directory.cleanup()
        await _drop_database(dsn, name)
    return {
        "bench": "failover",
        "kills": kills,
        "agents": agents,
        **figures,
        "delayed": delayed,
        "takeover_p50_seconds": round(statistics.median(takeovers), 3),
        "takeover_max_seconds": round(max(takeovers), 3),
        "lease_ttl": ttl,
    }


async def _start_pair(
    session: aiohttp.ClientSession, instances: list[_Instance], devices: tuple[str, ...]
) -> tuple[_Instance, _Instance]:
    """Start the active, then the standby, and log every agent in on the active."""
    active, standby = instances
    active.start()
    await _wait_role(session, active, "active")
    standby.start()
    await _wait_role(session, standby, "standby")
    for device in devices:
        async with session.post(
            f"http://127.0.0.1:{active.port}/api/agents/{device[6:10]}/login",
            headers={"Authorization": f"Bearer {_TOKEN}"},
        ) as response:
            response.raise_for_status()
    return active, standby


async def _kill_active(
    session: aiohttp.ClientSession, active: _Instance, standby: _Instance
) -> tuple[float, tuple[float, float]]:
    """Kill -9 the active, wait for the standby to take over, restart the killed one as the
    new standby; return the takeover seconds and its wall-clock window."""
    assert active.process is not None
    killed, wall = time.monotonic(), time.time()
    active.process.send_signal(signal.SIGKILL)
    active.process.wait(10)
    await _wait_role(session, standby, "active")
    takeover = time.monotonic() - killed
    active.start()
    await _wait_role(session, active, "standby")
    return takeover, (wall, wall + takeover)


async def _completed_rows(dsn: str, wanted: set[str]) -> dict[str, Any]:
    """The ``calls`` rows by call id, once every ``wanted`` call is completed (or at the
    time limit)."""
    deadline = time.monotonic() + _LIMIT
    while True:
        conn = await asyncpg.connect(dsn)
        try:
            rows = {
                r["call_id"]: r
                for r in await conn.fetch("select call_id, state, outcome, answered_by from calls")
            }
        finally:
            await conn.close()
        done = all(c in rows and rows[c]["state"] == "completed" for c in wanted)
        if done or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


def _delayed(truth: list[dict[str, Any]], windows: list[tuple[float, float]]) -> int:
    """Callers who were waiting during a takeover window."""
    return sum(
        1
        for r in truth
        if r["type"] == "call"
        and any(
            r["arrived_at"] < end and (r["answered_at"] or r["ended_at"]) > start
            for start, end in windows
        )
    )


def run(dsn: str, calls: int, agents: int, kills: int, every: float, ttl: float) -> None:
    """Run the bench against the PostgreSQL server of ``dsn`` (it makes and drops its own
    database) and print the JSON lines."""
    emit(asyncio.run(_run(dsn, calls, agents, kills, every, ttl)))
