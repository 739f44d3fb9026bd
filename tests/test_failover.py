"""End to end: two ``hotline serve`` processes for one PBX (the sim), and the active is killed.

The sim runs in the test process on a wall-rate clock (scale 1, so it reads what
the services' system clocks read); each service is a real subprocess with its
own configuration: the same ``[service] pbx_id``, the same database. Killing is
``kill -9`` (nothing is flushed, the lease is not released); pausing is
``SIGSTOP``/``SIGCONT``. Everything is checked against the sim's ground truth and
the rows in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from hotline.clock import ScaledClock
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario, Uniform
from tests.e2e_support import devices
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

SECRET = "failover-secret"
TOKEN = "failover-token"
TTL = 2.0
LIMIT = 60.0  # generous polling limits: a loaded machine is slow, nothing here is timed
AGENTS = devices(2001, 2012)
OUTCOMES = {
    ("answered", None): "answered",
    ("abandoned", "waiting"): "abandoned_waiting",
    ("abandoned", "ringing"): "abandoned_ringing",
    ("redirected", None): "overflowed",
}


def burst(count: int, seed: int) -> Scenario:
    """``count`` callers over about 20 s; agents answer after 1-3 s and talk 2-6 s."""
    return Scenario(
        name="failover",
        seed=seed,
        time_scale=1.0,
        arrivals=Arrivals(
            count=count, rate_per_minute=count * 3, start_after=0.5, patience=Fixed(120.0)
        ),
        agents=(
            AgentGroup(
                AGENTS,
                AgentBehaviour(answer_delay=Uniform(1.0, 3.0), talk=Uniform(2.0, 6.0)),
            ),
        ),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(path: Path, instance: str, http_port: int, ami_port: int, dsn: str) -> None:
    agents = "\n".join(
        f'[[agents]]\nid = "{d.split("/")[1].split("@")[0]}"\ndevice = "{d}"\n'
        'queues = ["support"]\n'
        for d in AGENTS
    )
    state = path.parent / f"state-{instance}"
    path.write_text(
        f"""
[service]
instance = "{instance}"
http_listen = "127.0.0.1:{http_port}"
state_dir = "{state}"
pbx_id = "pbx1"
lease_ttl = {TTL}

[ami]
url = "ami://hotline:{SECRET}@127.0.0.1:{ami_port}"

[database]
url = "{dsn}"
outbox_dir = "{state}/outbox"

[routing]
default_queue = "support"

[[queues]]
name = "support"
ring_timeout = 20
wrap_up = 1

{agents}
"""
    )


@dataclass
class Instance:
    """One ``hotline serve`` process (restartable under the same configuration)."""

    name: str
    config: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (again), as a supervisor would."""
        self.starts += 1
        self.log = self.config.with_suffix(f".{self.starts}.log")
        env = {**os.environ, "HOTLINE_API_TOKEN": TOKEN}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        """Kill it for good (end of test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@dataclass
class Pair:
    """The sim, two instances and an HTTP session."""

    sim: SimPbx
    a: Instance
    b: Instance
    session: aiohttp.ClientSession
    dsn: str
    takeovers: list[float] = field(default_factory=list)

    async def status(self, instance: Instance) -> dict[str, Any] | None:
        """``/ready``'s body, or None when the instance does not answer."""
        try:
            async with self.session.get(
                f"{instance.url}/ready", timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                body: dict[str, Any] = await response.json()
                return body
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def role(self, instance: Instance) -> str | None:
        """The instance's role, or None when it does not answer."""
        body = await self.status(instance)
        return None if body is None else str(body["role"])

    async def wait_role(self, instance: Instance, role: str) -> dict[str, Any]:
        """Poll ``/ready`` until ``instance`` reports ``role``."""
        deadline = time.monotonic() + LIMIT
        while True:
            body = await self.status(instance)
            if body is not None and body["role"] == role:
                return body
            assert time.monotonic() < deadline, (instance.name, role, body)
            await asyncio.sleep(0.02)

    async def login_all(self, instance: Instance) -> None:
        """Log every agent in through the API of ``instance``."""
        for device in AGENTS:
            agent = device.split("/")[1].split("@")[0]
            async with self.session.post(
                f"{instance.url}/api/agents/{agent}/login",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 200, await response.text()

    async def kill_active(self, active: Instance, standby: Instance) -> float:
        """``kill -9`` the active; wait for the standby to route; restart the killed one as
        a supervisor would. Returns the takeover time (kill to the standby being active)."""
        assert await self.role(active) == "active"
        killed = time.monotonic()
        active.signal(signal.SIGKILL)
        assert active.process is not None
        active.process.wait(10)
        await self.wait_role(standby, "active")
        takeover = time.monotonic() - killed
        self.takeovers.append(takeover)
        active.start()
        await self.wait_role(active, "standby")
        return takeover


@pytest.fixture
async def pair(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Pair] = []

    async def make(scenario: Scenario, dsn_a: str | None = None) -> Pair:
        clock = ScaledClock(1.0)
        sim = SimPbx(scenario, clock=clock, credentials=ServerCredentials("hotline", SECRET))
        await sim.start(host="127.0.0.1", port=0)
        instances = []
        for name in ("A", "B"):
            config = tmp_path / f"{name}.toml"
            port = _free_port()
            dsn = dsn_a if name == "A" and dsn_a else migrated_database_url
            _config(config, name, port, sim.port, dsn)
            instances.append(Instance(name, config, port))
        made_pair = Pair(
            sim, instances[0], instances[1], aiohttp.ClientSession(), migrated_database_url
        )
        made.append(made_pair)
        made_pair.a.start()
        await made_pair.wait_role(made_pair.a, "active")
        made_pair.b.start()
        await made_pair.wait_role(made_pair.b, "standby")
        return made_pair

    yield make
    for one in made:
        for instance in (one.a, one.b):
            instance.stop()
        await one.session.close()
        await one.sim.close()


async def call_rows(dsn: str) -> dict[str, asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select call_id, state, outcome, answered_by, extract(epoch from answered_at) as "
            "answered_at, epoch from calls"
        )
    finally:
        await conn.close()
    return {row["call_id"]: row for row in rows}


async def wait_recorded(dsn: str, calls: set[str]) -> dict[str, asyncpg.Record]:
    """Poll until every call has a completed row (the active's outbox writes them)."""
    deadline = time.monotonic() + LIMIT
    while True:
        rows = await call_rows(dsn)
        if all(c in rows and rows[c]["state"] == "completed" for c in calls):
            return rows
        missing = [c for c in calls if c not in rows or rows[c]["state"] != "completed"]
        assert time.monotonic() < deadline, f"never recorded: {missing}"
        await asyncio.sleep(0.2)


def check_against_ground_truth(truth: list[dict[str, Any]], rows: dict[str, Any]) -> None:
    """Every call exactly one outcome, the PBX's; answered stays answered; no double ring."""
    calls = [r for r in truth if r["type"] == "call"]
    assert calls
    for call in calls:
        row = rows[call["call_id"]]
        expected = OUTCOMES[(call["outcome"], call.get("abandoned_while"))]
        assert row["outcome"] == expected, (call, dict(row))
        if expected == "answered":
            assert f"Local/{row['answered_by']}@agents" == call["answered_by"]
    assert set(rows) == {c["call_id"] for c in calls}  # nothing invented
    rings: dict[str, list[tuple[float, float, str]]] = {}
    for call in calls:
        for ring in call["rings"]:
            start = ring["requested_at"]
            end = ring["ring_end"] if ring["ring_end"] is not None else float("inf")
            rings.setdefault(ring["agent"], []).append((start, end, call["call_id"]))
    for agent, spans in rings.items():
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            assert start >= end or first == second, (agent, first, second)


async def test_kill_9_of_the_active_during_a_burst_loses_and_duplicates_nothing(
    pair: Callable[..., Any],
) -> None:
    scenario = burst(40, seed=14)
    p: Pair = await pair(scenario)
    await p.login_all(p.a)
    p.sim.start_arrivals()
    await asyncio.sleep(4.0)  # into the burst (the moment, not a wait for a condition)
    first = await p.kill_active(p.a, p.b)
    # Must stay: the second kill's moment, in the burst (two service processes on wall time).
    await asyncio.sleep(3.0)
    second = await p.kill_active(p.b, p.a)
    await p.sim.wait_idle(LIMIT * 2)
    truth = p.sim.ground_truth
    rows = await wait_recorded(p.dsn, {r["call_id"] for r in truth if r["type"] == "call"})
    check_against_ground_truth(truth, rows)
    assert max(row["epoch"] for row in rows.values()) == 3
    print(f"takeover seconds: {first:.2f}, {second:.2f}")


async def test_a_standby_routes_nothing_and_refuses_agent_commands(
    pair: Callable[..., Any],
) -> None:
    p: Pair = await pair(burst(1, seed=1))
    async with p.session.post(
        f"{p.b.url}/api/agents/2001/login", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 503
        assert "standby" in (await response.json())["message"]
    async with p.session.get(f"{p.b.url}/metrics") as response:
        text = await response.text()
    assert 'hotline_router_active{pbx_id="pbx1",role="standby"} 0.0' in text
    body = await p.status(p.a)
    assert body is not None
    assert (body["ready"], body["role"], body["epoch"]) == (True, "active", 1)


CALL_CHANGING = frozenset({"originate", "hangup", "redirect", "dbdel", "dbdeltree"})


def record_actions(sim: SimPbx) -> list[tuple[float, object, str]]:
    """Every action the sim receives that changes a call: (wall time, session, name)."""
    seen: list[tuple[float, object, str]] = []
    for name, handler in list(sim.server.handlers.items()):
        if name not in CALL_CHANGING:
            continue

        def recording(session: Any, message: Any, _h: Any = handler, _n: str = name) -> Any:
            seen.append((time.time(), session, _n))
            return _h(session, message)

        sim.server.handlers[name] = recording
    return seen


async def test_a_paused_active_is_fenced_none_of_its_actions_or_writes_lands(
    pair: Callable[..., Any],
) -> None:
    p: Pair = await pair(burst(30, seed=7))
    actions = record_actions(p.sim)
    await p.login_all(p.a)
    p.sim.start_arrivals()
    await until_async(lambda: bool(actions))
    await asyncio.sleep(2.0)  # into the burst
    (a_session,) = {session for _, session, _ in actions}  # only the active acts
    paused_at = time.time()
    p.a.signal(signal.SIGSTOP)
    await p.wait_role(p.b, "active")
    await asyncio.sleep(TTL)  # well past A's lease
    resumed_at = time.time()
    p.a.signal(signal.SIGCONT)
    assert p.a.process is not None
    assert await asyncio.to_thread(p.a.process.wait, LIMIT) == 5  # stepped down
    await p.sim.wait_idle(LIMIT * 2)
    truth = p.sim.ground_truth
    rows = await wait_recorded(p.dsn, {r["call_id"] for r in truth if r["type"] == "call"})
    check_against_ground_truth(truth, rows)
    assert not [a for a in actions if a[1] is a_session and a[0] >= resumed_at]
    ended = {r["call_id"]: r["ended_at"] for r in truth if r["type"] == "call"}
    for call_id, row in rows.items():
        if row["epoch"] == 1:  # A's rows: only calls over before it was paused
            assert ended[call_id] < paused_at, call_id


async def test_losing_the_database_makes_the_active_step_down_and_the_standby_takes_over(
    pair: Callable[..., Any], migrated_database_url: str
) -> None:
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    try:
        p: Pair = await pair(burst(20, seed=9), dsn_a=dsn)
        await p.login_all(p.a)
        p.sim.start_arrivals()
        # Must stay: the moment the database is lost, into the burst (processes on wall time).
        await asyncio.sleep(3.0)
        proxy.break_("stall")
        assert p.a.process is not None
        assert await asyncio.to_thread(p.a.process.wait, LIMIT) == 5
        body = await p.wait_role(p.b, "active")
        assert body["epoch"] == 2
        await p.sim.wait_idle(LIMIT * 2)
        truth = p.sim.ground_truth
        rows = await wait_recorded(p.dsn, {r["call_id"] for r in truth if r["type"] == "call"})
        check_against_ground_truth(truth, rows)
    finally:
        proxy.heal()
        await proxy.close()


async def until_async(condition: Callable[[], bool]) -> None:
    """Poll a condition other tasks make true."""
    deadline = time.monotonic() + LIMIT
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)
