"""The sim-plus-service harness: the service and the simulated PBX in one process.

On real sockets and one shared clock.

The end-to-end tests, ``hotline bench e2e`` and the demo run the real service
(its aiohttp app, AMI client, engine) against :class:`~hotline.sim.pbx.SimPbx`
over loopback TCP. Both share one clock, so the sim's ``Timestamp`` headers and
ground truth, and the engine's timers and measurements, read the same time: a
:class:`~hotline.clock.VirtualClock` when the running loop is a
:func:`~hotline.clock.virtual_time_loop` (the tests: results do not depend on
the machine's speed), else a :class:`~hotline.clock.ScaledClock` (benchmarks,
the demo: real time, sped up).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web

from hotline.clock import Clock, ScaledClock, virtual_clock_of
from hotline.config import Settings, parse_settings
from hotline.domain.effects import Fact
from hotline.engine import Engine
from hotline.main import create_app
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario
from hotline.web.keys import ENGINE

__all__ = ["Stack", "scenario_agents", "start_stack"]

_SECRET = "stack-secret"  # noqa: S105 - a loopback-only sim credential
_TOKEN = "stack-token"  # noqa: S105 - a loopback-only API token


def scenario_agents(scenario: Scenario) -> list[str]:
    """Every agent device the scenario's agent groups define, in order."""
    return [device for group in scenario.agents for device in group.devices]


def _agent_id(device: str) -> str:
    """``Local/2001@agents`` -> ``2001``; ``PJSIP/1001`` -> ``1001``."""
    return device.split("/", 1)[1].split("@", 1)[0]


@dataclass
class Stack:
    """A running sim + service pair; see :func:`start_stack`."""

    sim: SimPbx
    app: web.Application
    runner: web.AppRunner
    base_url: str
    token: str
    clock: Clock
    settings: Settings
    session: aiohttp.ClientSession
    facts: list[Fact] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        """The service's engine."""
        return self.app[ENGINE]

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of scenario time pass (on the shared clock)."""
        await self.clock.sleep(seconds)

    async def agent(self, action: str, agent_id: str, reason: str | None = None) -> Any:
        """Call the agent-control API (login, logout, pause, unpause) as a client would."""
        body = {"reason": reason} if reason is not None else None
        async with self.session.post(
            f"{self.base_url}/api/agents/{agent_id}/{action}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def login_all(self) -> None:
        """Log every configured agent in."""
        for agent_id in self.settings.agents:
            await self.agent("login", agent_id)

    async def stop_service(self) -> None:
        """Stop the service only (a restart: the sim goes on; see ``start_stack(sim=...)``)."""
        await self.session.close()
        await self.runner.cleanup()

    async def close(self) -> None:
        """Stop the service, then the sim."""
        await self.stop_service()
        await self.sim.close()


def build_settings(
    scenario: Scenario,
    ami_port: int,
    *,
    queues: Iterable[Mapping[str, Any]] | None = None,
    agents: Iterable[Mapping[str, Any]] | None = None,
    routing: Mapping[str, Any] | None = None,
    secret: str = _SECRET,
    database_url: str | None = None,
    state_dir: str | None = None,
    tickets: Mapping[str, Any] | None = None,
    service: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings for a service in front of a sim running ``scenario``.

    Without explicit ``queues``/``agents``, every queue the arrivals use is a
    default queue, and every scenario device is an agent serving all of them
    with every skill the arrivals can ask for. With ``database_url`` the service
    records calls and tickets (outbox in ``state_dir``, which is then required).
    ``service`` adds to (or overrides) the ``[service]`` table (``instance``, ``pbx_id``).
    """
    queue_tables, agent_tables = _default_tables(scenario, queues, agents)
    data: dict[str, Any] = {
        # http_listen is unused: start_stack serves on a socket it binds itself.
        "service": {
            "instance": "S",
            "http_listen": "127.0.0.1:8080",
            "state_dir": state_dir or ":memory:",
            **(service or {}),
        },
        "ami": {"url": f"ami://hotline:{secret}@127.0.0.1:{ami_port}"},
        "routing": {"default_queue": queue_tables[0]["name"], **(routing or {})},
        "queues": queue_tables,
        "agents": agent_tables,
    }
    if database_url is not None:
        data["database"] = {"url": database_url}
    if tickets is not None:
        data["tickets"] = dict(tickets)
    env = {"HOTLINE_API_TOKEN": _TOKEN}
    return parse_settings(data, source="<stack>", env=env)


def _default_tables(
    scenario: Scenario,
    queues: Iterable[Mapping[str, Any]] | None,
    agents: Iterable[Mapping[str, Any]] | None,
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The ``[[queues]]`` and ``[[agents]]`` tables: the given ones, else the scenario's."""
    arrivals = scenario.arrivals
    queue_names = [name for name, _ in arrivals.queues] if arrivals else ["support"]
    skill_names = [name for name, _ in arrivals.skills] if arrivals else []
    queue_tables: list[Mapping[str, Any]] = (
        list(queues) if queues is not None else [{"name": q} for q in queue_names]
    )
    if agents is not None:
        return queue_tables, list(agents)
    agent_tables: list[Mapping[str, Any]] = [
        {
            "id": _agent_id(device),
            "device": device,
            "queues": [table["name"] for table in queue_tables],
            "skills": dict.fromkeys(skill_names, 5),
        }
        for device in scenario_agents(scenario)
    ]
    return queue_tables, agent_tables


async def start_stack(
    scenario: Scenario,
    *,
    time_scale: float | None = None,
    clock: Clock | None = None,
    record_facts: bool = True,
    settings: Settings | None = None,
    event_filter: frozenset[str] | None = None,
    sim: SimPbx | None = None,
    system_name: str = "",
    **settings_options: Any,
) -> Stack:
    """Start the sim, then the service connected to it; return once the engine has resynced.

    ``settings_options`` go to :func:`build_settings` when ``settings`` is not
    given. ``event_filter`` gives the sim's manager user Asterisk's advanced
    include filters (the event names it passes; see :class:`ServerCredentials`).
    Call :meth:`SimPbx.start_arrivals` on ``stack.sim`` to start the traffic, and
    :meth:`Stack.close` at the end. ``clock`` defaults to the running loop's
    virtual clock (see the module docstring), else a :class:`ScaledClock` at
    ``time_scale`` (default: the scenario's). With ``sim`` (a running one: a
    previous stack's, after :meth:`Stack.stop_service`), a new service starts
    against it on the sim's clock, as after a restart. ``system_name`` is the new
    sim's ``systemname`` (several sims on one database need distinct ones).
    """
    virtual = virtual_clock_of()
    if sim is None:
        if clock is None:
            clock = virtual or ScaledClock(
                time_scale if time_scale is not None else scenario.time_scale
            )
        credentials = ServerCredentials("hotline", _SECRET, event_filter=event_filter)
        sim = SimPbx(scenario, clock=clock, credentials=credentials, system_name=system_name)
        await sim.start(host="127.0.0.1", port=0)
    elif clock is None or clock is sim.clock:
        clock = sim.clock
    else:
        raise ValueError("start_stack(sim=...) runs on the sim's own clock")
    settings = settings or build_settings(scenario, sim.port, **settings_options)
    # Reconnect within a few wall milliseconds: on a scaled clock every wall second
    # of outage is ``scale`` seconds in which the PBX goes on without us. On a virtual
    # clock, at once: a real back-off would let virtual time run on meanwhile by as
    # much as the machine can compute; the sim's delay before refusing a bad login
    # runs on the virtual clock and paces the retries instead.
    reconnect = (0.0, 0.0) if clock is virtual else (0.01, 0.2)
    settings = replace(
        settings, ami=replace(settings.ami, reconnect_min=reconnect[0], reconnect_max=reconnect[1])
    )
    facts: list[Fact] = []
    app = create_app(settings, clock=clock, sinks=[facts.append] if record_facts else [])
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, listener)
    await site.start()
    port = listener.getsockname()[1]
    stack = Stack(
        sim=sim,
        app=app,
        runner=runner,
        base_url=f"http://127.0.0.1:{port}",
        token=_TOKEN,
        clock=clock,
        settings=settings,
        session=aiohttp.ClientSession(),
        facts=facts,
    )
    try:
        await app[ENGINE].ami.wait_connected(10)
        async with asyncio.timeout(10):
            await app[ENGINE].synced.wait()
    except BaseException:
        await stack.close()
        raise
    return stack
