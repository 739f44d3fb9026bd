"""Per-call log context: the engine binds ``call_id``, ``agent`` and ``ticket`` with contextvars.

The production processor chain starts with ``merge_contextvars``; these tests use
the same first step in front of a capturing processor, drive a real engine (not
connected to any PBX) with domain events, and read the lines it logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from hotline.ami.client import AmiClient, AmiSettings
from hotline.config import QueueConfig, RoutingConfig
from hotline.domain.effects import Fact
from hotline.domain.events import CallerWaiting, ChannelHungUp
from hotline.domain.routing import Router
from hotline.engine import Engine
from tests.routing_helpers import T0, agent, make_router
from tests.test_ticket_pool import StillClock, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """Log lines after ``merge_contextvars``, as production merges them; restored afterwards."""
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    try:
        yield capture
    finally:
        structlog.configure(**previous)


def lines(capture: LogCapture, event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in capture.entries if entry["event"] == event]


async def run_engine(
    router: Router, sinks: list[Callable[[Fact], None]], done: Callable[[], bool]
) -> None:
    engine = Engine(
        router, AmiClient(AmiSettings.from_url("ami://u@127.0.0.1:1")), StillClock(), sinks=sinks
    )
    task = asyncio.create_task(engine.run())
    try:
        engine.submit(
            CallerWaiting(T0, "pbx", "1.1", "PJSIP/trunk-1", "1.1", "139", "", "nowhere", 0)
        )
        engine.submit(ChannelHungUp(T0, "pbx", "1.1", "PJSIP/trunk-1", 16))
        await eventually(done, "the call's lines")
    finally:
        engine.stop()
        await task


async def test_effect_lines_carry_the_call_context(captured: LogCapture) -> None:
    router = make_router([agent("1001")])
    await run_engine(router, [], lambda: bool(lines(captured, "call.ended")))
    [warning] = lines(captured, "routing.unknown_queue")
    assert warning["call_id"] == "1.1"
    [ended] = lines(captured, "call.ended")
    ticket = ended["ticket"]
    assert (ended["call_id"], ticket[:10], ended["outcome"]) == (
        "1.1",
        "T20261126-",
        "abandoned_waiting",
    )
    assert "agent" not in ended  # nobody answered


async def test_a_failing_sink_logs_the_effects_context(captured: LogCapture) -> None:
    def broken(fact: Fact) -> None:  # noqa: ARG001 (the sink signature)
        raise RuntimeError("disk on fire")

    router = Router(
        RoutingConfig(),
        {"support": QueueConfig("support")},
        [agent("1001")],
        lambda _n, _t: "T20261126-A0042",
    )
    await run_engine(router, [broken], lambda: len(lines(captured, "engine.sink_failed")) >= 2)
    failures = lines(captured, "engine.sink_failed")
    assert {entry["call_id"] for entry in failures} == {"1.1"}
    assert "T20261126-A0042" in {entry.get("ticket") for entry in failures}
    assert structlog.contextvars.get_contextvars() == {}  # nothing leaks past the effect
