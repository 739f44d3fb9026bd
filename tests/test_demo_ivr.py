"""``hotline demo``'s IVR: the shipped flows, opened around the clock, and the demo's queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hotline.demo import IVR_QUEUES, default_flows, open_all_day
from hotline.ivr.flow import load_flows

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parent.parent / "ivr_flows"


def test_the_demo_finds_the_checkouts_flows() -> None:
    assert default_flows() == SHIPPED


def test_the_copy_is_open_every_hour_including_holidays_and_validates(tmp_path: Path) -> None:
    shipped = load_flows(SHIPPED).flows["main"].calendar
    copy = load_flows(open_all_day(SHIPPED, tmp_path / "flows"))
    calendar = copy.flows["main"].calendar
    christmas_night = datetime(2026, 12, 25, 1, 30, tzinfo=UTC)  # a listed holiday, 09:30 local
    sunday_3am = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)  # Sunday 03:00 in Shanghai
    assert not shipped.is_open(christmas_night)
    assert not shipped.is_open(sunday_3am)
    moments = [sunday_3am + timedelta(minutes=17 * step) for step in range(7 * 24 * 60 // 17)]
    assert all(calendar.is_open(moment) for moment in [christmas_night, *moments])
    # Only the calendar changed: the same flows, nodes and prompts.
    original = load_flows(SHIPPED)
    assert copy.flows["main"].nodes == original.flows["main"].nodes
    assert set(copy.flows) == set(original.flows)
    assert copy.prompts == original.prompts
    assert (SHIPPED / "main.yaml").read_text() != (tmp_path / "flows" / "main.yaml").read_text()


def test_the_demo_configures_every_queue_the_main_flow_sends_callers_to() -> None:
    nodes = load_flows(SHIPPED).flows["main"].nodes.values()
    queues = {str(node.spec["queue"]) for node in nodes if "queue" in node.spec}
    assert queues == set(IVR_QUEUES)
