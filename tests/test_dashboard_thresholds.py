"""The Grafana dashboards colour against the service's own targets, not numbers of their own.

A panel that judges a figure against a target (the service level, the rings
answered in time, the longest wait) takes its threshold from the target gauge
the service exports (``hotline_service_level_target_ratio``,
``hotline_longest_wait_limit_seconds``, set from ``[sla]``) through Grafana's
"Config from query results" transformation (``configFromData``): a second,
instant table query reads the gauge; its ``Value`` becomes the threshold step,
and its ``Time`` column, reduced by ``range`` (0 for the one row), the base step
below it. So changing ``[sla]`` recolours the dashboards with no edit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hotline.clock import SystemClock
from hotline.config import parse_settings
from hotline.prometheus import Metrics

pytestmark = pytest.mark.unit

DASHBOARDS = Path(__file__).resolve().parent.parent / "monitoring" / "grafana" / "dashboards"
# What the panel's main query measures -> the target gauge it is judged against.
JUDGED = {
    "hotline_calls_answered_within_threshold_total": "hotline_service_level_target_ratio",
    "hotline_offers_answered_within_sla_total": "hotline_service_level_target_ratio",
    "hotline_queue_longest_wait_seconds": "hotline_longest_wait_limit_seconds",
}
COLOURED = {"stat", "gauge", "bargauge"}


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        stack = list(board.get("panels", []))
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            yield path.name, panel


def _judged() -> list[tuple[str, dict[str, Any], str]]:
    found = []
    for board, panel in _panels():
        if panel.get("type") not in COLOURED:
            continue
        main = next(t for t in panel["targets"] if t["refId"] == "A")
        gauges = {gauge for metric, gauge in JUDGED.items() if metric in main["expr"]}
        if gauges:
            (gauge,) = gauges
            found.append((board, panel, gauge))
    return found


def _exported_gauges() -> dict[str, float]:
    settings = parse_settings(
        {
            "queues": [{"name": "support"}],
            "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
            "sla": {"service_level_target": 0.9, "longest_wait_limit": 45},
        },
        env={},
    )
    text = Metrics(settings, CollectorRegistry(), clock=SystemClock()).render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.type == "gauge"
        for sample in family.samples
        if not sample.labels
    }


def test_the_judged_panels_are_the_service_level_rings_and_longest_wait_ones() -> None:
    titles = {(board, panel["title"]) for board, panel, _ in _judged()}
    assert titles == {
        ("queue-wallboard.json", "Service level today"),
        ("queue-wallboard.json", "Rings answered within 3 rings today"),
        ("queue-wallboard.json", "Longest wait"),
    }


@pytest.mark.parametrize(
    ("board", "panel", "gauge"),
    [pytest.param(*judged, id=judged[1]["title"]) for judged in _judged()],
)
def test_thresholds_come_from_the_exported_target_gauge(
    board: str, panel: dict[str, Any], gauge: str
) -> None:
    del board
    # No number of its own: only the base colour, used until the gauge answers.
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None]
    for override in panel["fieldConfig"].get("overrides", []):
        assert "thresholds" not in json.dumps(override)
    (config,) = [t for t in panel["targets"] if t["refId"] != "A"]
    assert config["expr"] == f"max({gauge})"
    assert (config["instant"], config["range"], config["format"]) == (True, False, "table")
    (transformation,) = panel["transformations"]
    assert transformation["id"] == "configFromData"
    options = transformation["options"]
    assert options["configRefId"] == config["refId"]
    assert options["applyTo"] == {"id": "byFrameRefID", "options": "A"}
    base, target = options["mappings"]
    assert (base["fieldName"], base["handlerKey"], base["reducerId"]) == (
        "Time",
        "threshold1",
        "range",
    )
    assert (target["fieldName"], target["handlerKey"], target["reducerId"]) == (
        "Value",
        "threshold1",
        "lastNotNull",
    )
    assert base["handlerArguments"]["threshold"]["color"] == steps[0]["color"]
    higher_is_better = gauge.endswith("_ratio")
    assert (steps[0]["color"], target["handlerArguments"]["threshold"]["color"]) == (
        ("red", "green") if higher_is_better else ("green", "red")
    )
    assert gauge in panel["description"]


def test_the_target_gauges_are_exported_from_the_configuration() -> None:
    gauges = _exported_gauges()
    assert gauges["hotline_service_level_target_ratio"] == 0.9
    assert gauges["hotline_longest_wait_limit_seconds"] == 45
    assert set(JUDGED.values()) <= set(gauges)


def test_no_coloured_panel_compares_a_ratio_or_wait_with_a_hard_coded_target() -> None:
    # The other coloured panels (callers waiting, abandon rate, outbox backlog, the up
    # panels) have no target gauge; they keep fixed steps, and say what they measure.
    for _, panel in _panels():
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {})
        if not steps or panel in [judged[1] for judged in _judged()]:
            continue
        main = " ".join(t["expr"] for t in panel["targets"])
        assert not re.search("|".join(JUDGED), main), panel["title"]
