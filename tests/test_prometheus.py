"""Monitoring artifacts: alert rules, Prometheus config and Grafana dashboards, checked for real.

The static tests read ``monitoring/`` and check that every metric the dashboards
and alerts use is one the service exports. The others run Debian's
``prometheus`` and ``promtool`` (``.ci/run`` installs the package): ``promtool``
checks the files, and a real Prometheus scrapes the running service during a
time-scaled simulated run, evaluates the alert rules and answers every dashboard
expression. Without the binaries (outside CI) those tests skip, naming them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hotline.ami.client import AmiClient
from hotline.clock import ScaledClock, SystemClock
from hotline.config import parse_settings
from hotline.domain.routing import Router
from hotline.engine import Engine
from hotline.prometheus import Metrics
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import Scenario
from hotline.web.scrape import info_text
from tests.support import STEADY_QUEUES, eventually, free_port, steady_call_centre

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
ISSUE_ALERTS = {
    "HotlineServiceLevelBelowTarget",
    "HotlineLongestWaitOverLimit",
    "HotlineCallersWaitingNoAgent",
    "HotlineAmiDown",
    "HotlineOutboxBacklog",
    "HotlineComplaintsOverdue",
}
# Series Prometheus itself records about the hotline target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}
# What Grafana substitutes before a query reaches Prometheus; All is ".*".
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$window": "1m",
    "$queue": ".*",
    "$agent": ".*",
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_HOTLINE = re.compile(r"\bhotline_[a-z0-9_]+\b")


def needs(binary: Path) -> None:
    if not binary.exists():
        pytest.skip(f"{binary} is not installed (Debian package 'prometheus'; .ci/run installs it)")


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)  # rows hold panels of their own


def dashboard_expressions() -> list[tuple[str, str, str]]:
    """(dashboard, panel or variable, PromQL) for every query the dashboards make."""
    found = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                found.append((name, panel["title"], target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric, label = re.fullmatch(
                    r"label_values\((\w+), (\w+)\)", variable["definition"]
                ).groups()  # type: ignore[union-attr]
                found.append((name, f"${variable['name']}", f"count by ({label}) ({metric})"))
    return found


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def exported_metric_names() -> set[str]:
    """Every sample name the service can export, from a Metrics watching a live engine."""
    settings = parse_settings(
        {
            "queues": [{"name": "support"}],
            "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
        },
        env={},
    )
    router = Router(
        settings.routing, dict(settings.queues), settings.agents.values(), lambda _n, _t: "T"
    )
    metrics = Metrics(settings, CollectorRegistry(), clock=_Clock())
    engine = Engine(router, AmiClient(settings.ami), _Clock(), sinks=[metrics.sink])
    engine.decision_latency["CallerWaiting"] = deque([0.001])
    metrics.watch(engine)
    metrics.set_overdue({"complaint": 0})
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    text = metrics.render().decode() + info_text(settings)  # what /metrics serves
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes[family.type]
    }


class _Clock(SystemClock):
    def now(self) -> float:
        return 1_795_712_164.0


# -- static checks ------------------------------------------------------------------------------


def test_the_issue_alerts_exist_and_the_service_level_one_waits_ten_minutes() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) >= ISSUE_ALERTS
    assert rules["HotlineServiceLevelBelowTarget"]["for"] == "10m"
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_four_dashboards_on_the_provisioned_datasource() -> None:
    boards = dashboards()
    titles = {board["title"] for board in boards.values()}
    assert titles == {
        "Hotline: queue wallboard",
        "Hotline: SLA trends",
        "Hotline: agent performance",
        "Hotline: system health",
    }
    assert len({board["uid"] for board in boards.values()}) == 4
    datasources = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text("utf-8")
    )
    uid = datasources["datasources"][0]["uid"]
    for board in boards.values():
        for panel in panels(board):
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/hotline.yml").read_text("utf-8")
    )["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mount = f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro"
    assert mount in compose["services"]["grafana"]["volumes"]


def test_dashboards_and_alerts_use_only_metrics_the_service_exports() -> None:
    exported = exported_metric_names()
    queries = [(name, title, expr) for name, title, expr in dashboard_expressions()]
    queries += [("alerts.yml", rule["alert"], rule["expr"]) for rule in alert_rules()]
    used: set[str] = set()
    for where, title, expr in queries:
        names = set(_HOTLINE.findall(expr))
        assert names <= exported, (where, title, names - exported)
        used |= names
        for selector in _SELECTOR.findall(expr):
            assert selector.startswith("hotline_") or selector in PROMETHEUS_SERIES, (where, title)
    # The dashboards show the whole of what the issue asks for.
    for family in (
        "hotline_queue_waiting_calls",
        "hotline_queue_longest_wait_seconds",
        "hotline_agents",
        "hotline_agent_state",
        "hotline_calls_answered_within_threshold_total",
        "hotline_offers_answered_within_sla_total",
        "hotline_ring_to_answer_seconds_bucket",
        "hotline_wait_seconds_bucket",
        "hotline_agent_paused_seconds_total",
        "hotline_queue_staffed_seconds_total",
        "hotline_ami_up",
        "hotline_outbox_backlog",
    ):
        assert family in used, family


def test_promtool_accepts_the_rules_and_the_config() -> None:
    needs(PROMTOOL)
    rules = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(MONITORING / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    config = subprocess.run(
        [str(PROMTOOL), "check", "config", str(MONITORING / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 1 rule files found" in config.stdout


# -- a real Prometheus scraping the running service ---------------------------------------------


class Prometheus:
    """A Prometheus process and its HTTP API."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.url}{path}", params=params) as response:
            body = await response.json()
            assert body["status"] == "success", (path, params, body)
            return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def until(self, what: str, check: Any, timeout: float = 40.0) -> Any:
        """Poll ``check()`` (async) until it returns something truthy."""
        found: Any = None

        async def holds() -> bool:
            nonlocal found
            found = await check()
            return bool(found)

        await eventually(holds, timeout, what=what, interval=0.25)
        return found


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, stack: Stack) -> AsyncIterator[Prometheus]:
    """Prometheus scraping ``stack`` every second, with the alert rules on a short ``for``."""
    needs(PROMETHEUS)
    rules = (MONITORING / "alerts.yml").read_text(encoding="utf-8")
    (tmp_path / "alerts.yml").write_text(re.sub(r"for: \d+[smh]", "for: 1s", rules), "utf-8")
    target = stack.base_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "hotline", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(PROMETHEUS),
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=log,
        stderr=log,
    )
    session = aiohttp.ClientSession()
    server = Prometheus(f"http://127.0.0.1:{port}", session)
    try:

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{server.url}/-/ready") as response:
                    return response.status == 200
            return False

        await server.until("Prometheus ready", ready, timeout=30)
        yield server
    finally:
        await session.close()
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        log.close()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def real_time(scenario: Scenario) -> ScaledClock:
    """A scaled clock, not the e2e tier's virtual one: Prometheus scrapes and evaluates its
    rules in wall seconds, so the scenario must run in (scaled) wall time too."""
    return ScaledClock(scenario.time_scale)


async def rules_evaluated(server: Prometheus) -> list[dict[str, Any]] | None:
    data = await server.get("/api/v1/rules")
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    if all(rule["health"] != "unknown" for rule in rules):
        return rules
    return None


async def test_every_dashboard_expression_returns_data_from_a_real_prometheus(
    tmp_path: Path,
) -> None:
    needs(PROMETHEUS)
    scenario = steady_call_centre(agents=6, calls=400)
    stack = await start_stack(scenario, queues=STEADY_QUEUES, clock=real_time(scenario))
    try:
        await stack.login_all()
        await stack.agent("pause", "2006", "training")  # so pause time by reason has a series
        stack.sim.start_arrivals()
        async with prometheus(tmp_path, stack) as server:

            async def scraped_a_few_times() -> bool:
                result = await server.query('count_over_time(up{job="hotline"}[1m])')
                up = await server.query('up{job="hotline"}')
                return bool(result and float(result[0]["value"][1]) >= 4 and up)

            await server.until("four scrapes", scraped_a_few_times)
            assert float((await server.query('up{job="hotline"}'))[0]["value"][1]) == 1

            rules = await server.until("every rule evaluated", lambda: rules_evaluated(server))
            assert {rule["name"] for rule in rules} >= ISSUE_ALERTS
            broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert broken == [], broken

            empty = []
            for dashboard, title, expr in dashboard_expressions():
                if not await server.query(substitute(expr)):
                    empty.append((dashboard, title, expr))
            assert empty == [], empty
            # The figures are the service's: callers really arrived and were answered.
            answered = await server.query('sum(hotline_calls_total{outcome="answered"})')
            assert float(answered[0]["value"][1]) > 0
    finally:
        await stack.close()


async def test_callers_waiting_with_no_agent_logged_in_fire_the_alert(tmp_path: Path) -> None:
    needs(PROMETHEUS)
    # Ten patient callers (about ten minutes) on a 10x clock, and no overflow: they wait.
    scenario = steady_call_centre(agents=3, calls=10, time_scale=10.0, patience=600.0)
    stack = await start_stack(
        scenario, queues=[{"name": "support"}, {"name": "sales"}], clock=real_time(scenario)
    )
    try:
        stack.sim.start_arrivals()  # nobody logs in
        async with prometheus(tmp_path, stack) as server:

            async def firing() -> list[dict[str, Any]]:
                alerts = (await server.get("/api/v1/alerts"))["alerts"]
                return [
                    alert
                    for alert in alerts
                    if alert["labels"]["alertname"] == "HotlineCallersWaitingNoAgent"
                    and alert["state"] == "firing"
                ]

            alerts = await server.until("the no-agent alert fires", firing)
            assert {alert["labels"]["queue"] for alert in alerts} <= {"support", "sales"}
            assert all(alert["labels"]["severity"] == "critical" for alert in alerts)
            assert all(float(alert["value"]) >= 1 for alert in alerts)
            active = {
                a["labels"]["alertname"] for a in (await server.get("/api/v1/alerts"))["alerts"]
            }
            assert "HotlineAmiDown" not in active

            # An agent for every queue logs in: the alert clears.
            await stack.login_all()

            async def cleared() -> bool:
                return not await firing()

            await server.until("the alert clears", cleared)
    finally:
        await stack.close()
