"""docker-compose runs the active/standby pair; Prometheus scrapes both."""

from __future__ import annotations

import pytest

from tests.test_deploy_artifacts import compose_document

pytestmark = pytest.mark.integration


def test_compose_runs_two_hotline_instances_for_one_pbx() -> None:
    services = compose_document()["services"]
    active, standby = services["hotline"], services["hotline-standby"]
    assert active["environment"]["HOTLINE_PBX_ID"] == standby["environment"]["HOTLINE_PBX_ID"]
    assert active["environment"]["HOTLINE_INSTANCE"] != standby["environment"]["HOTLINE_INSTANCE"]
    for key in ("HOTLINE_AMI_URL", "HOTLINE_DATABASE_URL", "HOTLINE_REDIS_URL"):
        assert active["environment"][key] == standby["environment"][key]
    assert active["volumes"] != standby["volumes"]  # each its own state (outbox, numbers)
    assert standby["healthcheck"] == active["healthcheck"]  # /ready
    assert standby["restart"] == "unless-stopped"  # a fenced instance exits 5 and comes back
    assert "8081:8080" in standby["ports"]
