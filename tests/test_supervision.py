"""The single writer must not die silently: errors are logged, counted and skipped; failed
resyncs are retried; a dead engine turns /ready red, answers commands and ends ``serve``.

The service runs for real (aiohttp app, AMI client, engine) against the simulated PBX over
loopback TCP. Faults the PBX cannot provoke any more (the edge validates its values now) are
injected into the router, the engine's collaborator, never into the engine itself.

On the e2e tier's virtual clock, waits for the scenario run in scenario time, and the clock
is held while a test waits on real-time retries or another process. ``serve`` itself runs on
the system clock: that test is in tests/test_supervision_serve.py (integration tier).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from hotline import serve
from hotline.cli import build_parser
from hotline.config import Settings, parse_settings
from hotline.domain.effects import CallEnded, Effect
from hotline.domain.events import CallbackDue, DomainEvent, PbxSnapshot
from hotline.domain.model import Outcome
from hotline.log import mask_phone_numbers
from hotline.main import create_app
from hotline.sim.amiserver import AmiSession
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrival, Fixed, Scenario
from hotline.web.keys import ENGINE, STORE
from tests.support import hold, scenario_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(
    name="supervision",
    seed=5,
    noise=True,
    time_scale=20.0,
    agents=(
        AgentGroup(
            ("Local/2001@agents", "Local/2002@agents"),
            AgentBehaviour(answer_delay=Fixed(2.0), talk=Fixed(5.0)),
        ),
    ),
)


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (the test waits on other tasks' state) with a generous limit."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling other tasks' state
            await asyncio.sleep(0.02)


async def until(stack: Stack, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``condition`` that the scenario makes true, checking it every 50 ms of
    scenario time: a wall-time poll would let the virtual clock run on unseen."""
    await scenario_until(stack.clock, condition, timeout, what="the condition")


def caller(number: str) -> Arrival:
    return Arrival(
        at=0.0,
        number=number,
        name="Normal Caller",
        queue="support",
        priority=0,
        skills=(),
        lang=None,
        patience=120.0,
    )


async def answered(stack: Stack, number: str) -> CallEnded:
    """Place a normal caller on the sim and wait for the service to record it answered."""
    stack.sim.core.arrive(caller(number))

    def ended() -> list[CallEnded]:
        return [f for f in stack.facts if isinstance(f, CallEnded) and f.number == number]

    await until(stack, lambda: bool(ended()))
    [call] = ended()
    assert call.outcome is Outcome.ANSWERED, call
    return call


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    running = await start_stack(SCENARIO, queues=[{"name": "support", "wrap_up": 1.0}])
    await running.login_all()
    yield running
    await running.close()


async def metric(stack: Stack, sample: str) -> float:
    async with stack.session.get(f"{stack.base_url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in /metrics")


async def test_an_exception_on_one_message_is_logged_counted_and_skipped(stack: Stack) -> None:
    router = stack.engine.router
    handle = router.handle

    def failing(event: DomainEvent, now: float) -> list[Effect]:
        if getattr(event, "number", "") == "13900000666":
            raise RuntimeError("cannot route 13900000666")
        return handle(event, now)

    router.handle = failing  # type: ignore[method-assign]
    with capture_logs() as logs:
        stack.sim.core.arrive(caller("13900000666"))
        await until(stack, lambda: stack.engine.errors["ami_message"] == 1)
        # The engine goes on: the next caller is routed and answered.
        await answered(stack, "13900000777")
    [entry] = [e for e in logs if e["event"] == "engine.error"]
    assert entry["stage"] == "ami_message"
    assert entry["ami_event"] == "UserEvent"
    assert "RuntimeError: cannot route" in entry["error"]
    assert "Traceback" in entry["traceback"]
    masked = mask_phone_numbers(None, "error", dict(entry))
    assert "13900000666" not in str(masked)  # the log's masking covers error and traceback
    assert stack.engine.alive
    assert await metric(stack, 'hotline_engine_errors_total{stage="ami_message"}') == 1.0
    assert await metric(stack, "hotline_engine_up") == 1.0


async def test_a_command_whose_handling_raised_gets_an_error_answer(stack: Stack) -> None:
    router = stack.engine.router

    def failing(agent_id: str, reason: str, now: float) -> list[Effect]:  # noqa: ARG001 (the replaced function's signature)
        raise RuntimeError("pause exploded")

    pause = router.pause
    router.pause = failing  # type: ignore[method-assign]
    url = f"{stack.base_url}/api/agents/2001/pause"
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with asyncio.timeout(30):  # the request never hangs
        async with stack.session.post(url, json={"reason": "x"}, headers=headers) as response:
            assert response.status == 503
            body = await response.json()
    assert body["error"] == "engine unavailable"
    assert "pause exploded" in body["message"]
    assert stack.engine.errors["command"] == 1
    router.pause = pause  # type: ignore[method-assign]
    agent = await stack.agent("pause", "2001", "lunch")
    assert agent["pause_reason"] == "lunch"


async def test_a_timer_that_raises_is_skipped_and_timers_go_on(stack: Stack) -> None:
    router = stack.engine.router
    tick = router.tick
    failures: list[float] = []

    def failing_once(now: float) -> list[Effect]:
        if not failures:
            failures.append(now)
            raise RuntimeError("tick exploded")
        return tick(now)

    router.tick = failing_once  # type: ignore[method-assign]
    await answered(stack, "13900000101")  # its wrap-up is a timer
    await until(stack, lambda: stack.engine.errors["timer"] == 1)
    # Wrap-up timers still end: both agents become available again, and route again.
    await until(stack, lambda: len(router.available_agents()) == 2)
    await answered(stack, "13900000102")


async def test_an_inbox_event_that_raises_is_skipped(stack: Stack) -> None:
    router = stack.engine.router
    handle = router.handle

    def failing(event: DomainEvent, now: float) -> list[Effect]:
        if isinstance(event, CallbackDue) and event.callback_id == 666:
            raise RuntimeError("callback exploded")
        return handle(event, now)

    router.handle = failing  # type: ignore[method-assign]
    due = CallbackDue(stack.clock.now(), "recv", 666, "T-1", "13900000999", "support", 1)
    stack.engine.submit(due)
    await until(stack, lambda: stack.engine.errors["domain_event"] == 1)
    await answered(stack, "13900000888")


async def test_a_resync_that_raises_is_counted_and_retried(stack: Stack) -> None:
    router = stack.engine.router
    resync = router.resync
    failures: list[float] = []

    def failing_once(snapshot: PbxSnapshot, now: float) -> list[Effect]:
        if not failures:
            failures.append(now)
            raise RuntimeError("resync exploded")
        return resync(snapshot, now)

    router.resync = failing_once  # type: ignore[method-assign]
    resyncs = stack.engine.resyncs
    # The retry waits a real back-off: the scenario stands still meanwhile.
    with hold(stack.clock):
        stack.sim.server.drop_all()
        await eventually(lambda: stack.engine.errors["resync"] == 1)
        generation = stack.engine.ami.generation
        await eventually(lambda: stack.engine.synced.is_set())
    assert stack.engine.ami.generation == generation  # retried on the same connection
    assert stack.engine.resyncs >= resyncs + 1
    await answered(stack, "13900000889")


async def test_a_failed_resync_is_retried_while_the_connection_stays_up(stack: Stack) -> None:
    server = stack.sim.server
    status = server.handlers["status"]
    ignored: list[str] = []
    answered_status: list[str] = []

    def silent_once(session: AmiSession, message: Any) -> Any:
        if not ignored:
            ignored.append(message.get("ActionID") or "")
            return None  # no reply: the resync's Status times out
        answered_status.append(message.get("ActionID") or "")
        return status(session, message)

    server.register("Status", silent_once)
    stack.engine.action_timeout = 0.5
    resyncs = stack.engine.resyncs
    # The Status times out and the retry waits in real time: the scenario stands still.
    with capture_logs() as logs, hold(stack.clock):
        server.drop_all()
        await eventually(lambda: bool(ignored))
        generation = stack.engine.ami.generation
        await eventually(lambda: stack.engine.resyncs == resyncs + 1)
    assert stack.engine.ami.generation == generation  # the same connection, resynced later
    assert stack.engine.synced.is_set()
    assert len(answered_status) == 1  # the retry asked again, on the same connection
    names = [e["event"] for e in logs]
    assert "engine.resync_failed" in names
    assert "engine.resync_retry_in" in names  # a back-off, then the retry (a new Status)
    await answered(stack, "13900000201")


async def test_when_the_engine_task_ends_readiness_turns_red_and_commands_answer(
    stack: Stack,
) -> None:
    async with stack.session.get(f"{stack.base_url}/ready") as response:
        assert response.status == 200
        assert await response.json() == {
            "ready": True,
            "reasons": [],
            # no [service] pbx_id: no lease, always the active router
            "role": "active",
            "pbx_id": None,
            "epoch": None,
            "last_takeover": None,
        }
    stack.engine.stop()
    await asyncio.wait_for(stack.engine.ended.wait(), 10)
    async with stack.session.get(f"{stack.base_url}/ready") as response:
        assert response.status == 503
        body = await response.json()
    assert body["ready"] is False
    assert body["reasons"] == ["engine: the engine task has ended"]
    url = f"{stack.base_url}/api/agents/2001/logout"
    async with asyncio.timeout(10):
        async with stack.session.post(
            url, headers={"Authorization": f"Bearer {stack.token}"}
        ) as response:
            assert response.status == 503
    assert await metric(stack, "hotline_engine_up") == 0.0
    async with stack.session.get(f"{stack.base_url}/health") as response:
        assert response.status == 200  # liveness: the process still answers


def settings_for(dsn: str, folder: Path, **service_keys: Any) -> Settings:
    return parse_settings(
        {
            "service": {"state_dir": str(folder), **service_keys},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {"outbox_dir": str(folder / "outbox")} | ({"url": dsn} if dsn else {}),
            "queues": [{"name": "support"}],
            "agents": [{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
        },
        env={},
    )


async def test_ready_names_every_reason(migrated_database_url: str, tmp_path: Path) -> None:
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    app = create_app(settings_for(dsn, tmp_path, pbx_down_grace=0))
    try:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/ready")
            reasons = (await response.json())["reasons"]
            assert response.status == 503
            assert len(reasons) == 1
            assert reasons[0].startswith("pbx: disconnected for")  # no PBX at port 1

            proxy.break_("refuse")
            response = await client.get("/ready")
            reasons = (await response.json())["reasons"]
            assert any(r.startswith("database: unreachable") for r in reasons), reasons

            store = app[STORE]
            store.outbox._task.cancel()  # type: ignore[union-attr]
            await eventually(lambda: not store.outbox.stats()["writer_running"])
            response = await client.get("/ready")
            reasons = (await response.json())["reasons"]
            stopped = [r for r in reasons if r.startswith("outbox:") and "writer" in r]
            assert stopped, reasons
            assert all("stopped" in r for r in stopped)
            assert app[ENGINE].alive
            assert not any(r.startswith("engine") for r in reasons)
            # /health stays liveness, and shows no internal address.
            response = await client.get("/health")
            assert response.status == 200
            text = await response.text()
            assert "127.0.0.1" not in text
            assert str(proxy.port) not in text
    finally:
        await proxy.close()


async def test_health_hides_the_addresses_of_a_failing_database(tmp_path: Path) -> None:
    app = create_app(settings_for("postgresql://hotline@127.0.0.1:1/hotline", tmp_path))
    async with TestClient(TestServer(app)) as client:
        store = app[STORE]
        ticket = store.open_tickets.ticket_for("13600000000", 1_772_442_000.0)
        assert store.recorder in app[ENGINE].sinks
        store.recorder(
            CallEnded(
                call_id="c-1", channel="PJSIP/t-1", linkedid="c-1", ticket=ticket,
                number="13600000000", queue="support", original_queue="support", priority=0,
                arrived_at=1_772_442_000.0, arrival_source="pbx", answered_at=None,
                answered_by=None, talk_ended_at=None, ended_at=1_772_442_009.0,
                end_source="pbx", outcome=Outcome.ABANDONED_WAITING, offers=0,
            )
        )  # fmt: skip
        await eventually(lambda: store.outbox.last_error is not None)
        assert "127.0.0.1" in (store.outbox.last_error or "")
        health = await (await client.get("/health")).json()
        assert "127.0.0.1" not in str(health)
        assert health["store"]["outbox"]["last_error"]  # still says what went wrong


def test_serve_exits_with_status_4_when_the_engine_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(
        '[[queues]]\nname = "support"\n\n[[agents]]\nid = "2001"\n'
        'device = "Local/2001@agents"\nqueues = ["support"]\n'
    )

    async def engine_died(settings: Settings) -> None:  # noqa: ARG001 (the replaced function's signature)
        raise serve.EngineStopped("CancelledError: ")

    monkeypatch.setattr(serve, "serve", engine_died)
    args = build_parser().parse_args(["serve", "--config", str(config), "--without-database"])
    status = args.handler(args)  # what `hotline serve` runs, without configuring the logging
    assert status == serve.EXIT_ENGINE_STOPPED == 4


def compose_healthcheck(port: int) -> list[str]:
    """The hotline service's healthcheck command from docker-compose.yml, aimed at ``port``."""
    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    command: list[str] = compose["services"]["hotline"]["healthcheck"]["test"][1:]
    return [
        sys.executable if part == "python" else part.replace(":8080/", f":{port}/")
        for part in command
    ]


async def run_healthcheck(port: int) -> int:
    process = await asyncio.create_subprocess_exec(
        *compose_healthcheck(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 60)


async def test_the_compose_healthcheck_follows_readiness(stack: Stack) -> None:
    port = int(stack.base_url.rsplit(":", 1)[1])
    with hold(stack.clock):  # waiting on another process only
        assert await run_healthcheck(port) == 0
        stack.engine.stop()
        await asyncio.wait_for(stack.engine.ended.wait(), 10)
        assert await run_healthcheck(port) != 0
