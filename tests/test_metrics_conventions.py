"""``/metrics`` follows exporter conventions: the process and Python collectors,
``hotline_build_info`` and ``hotline_agent_info{agent,name}``, in one valid exposition."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.config import parse_settings
from hotline.web.scrape import info_text
from tests.api_support import running_api

pytestmark = pytest.mark.integration


async def test_metrics_carry_runtime_build_and_agent_info(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        client = await api.client()
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info"):
        assert name in families, name
    assert "python_gc_objects_collected" in families
    assert "hotline_calls" in families  # the service's own families come first, unchanged
    (build,) = families["hotline_build_info"].samples
    assert build.labels["version"] == metadata.version("hotline")
    assert build.value == 1
    (zone,) = families["hotline_time_zone_info"].samples  # the dashboards show it
    assert (zone.labels, zone.value) == ({"time_zone": api.settings.service.time_zone}, 1)
    agents = {s.labels["agent"]: s.labels["name"] for s in families["hotline_agent_info"].samples}
    assert set(agents) == {"1001", "1002"}
    assert [s.value for s in families["hotline_agent_info"].samples] == [1, 1]


def test_agent_names_are_escaped_label_values() -> None:
    settings = parse_settings(
        {
            "queues": [{"name": "support"}],
            "agents": [{"id": "1001", "name": 'Li "Lei"\\x', "device": "PJSIP/1001"}],
        },
        source="<test>",
        env={},
    )
    text = info_text(settings)
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "hotline_agent_info"]
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"agent": "1001", "name": 'Li "Lei"\\x'}, 1.0)
    ]
