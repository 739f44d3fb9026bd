"""``hotline serve`` ends with ``EngineStopped`` when its engine task dies.

The production entry point runs on the system clock (with its real reconnect back-off),
so this test runs in the ``integration`` tier, on an ordinary event loop: the simulated
PBX beside it runs on a wall clock too (a 1x :class:`~hotline.clock.ScaledClock`). The
rest of the supervision tests (tests/test_supervision.py) run on the e2e tier's virtual
clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from hotline import serve
from hotline.clock import ScaledClock
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import build_settings
from hotline.sim.pbx import SimPbx
from tests.support import eventually, free_port
from tests.test_supervision import SCENARIO

pytestmark = pytest.mark.integration


async def test_serve_ends_with_engine_stopped_when_the_engine_task_dies() -> None:
    sim = SimPbx(SCENARIO, clock=ScaledClock(1.0), credentials=ServerCredentials("hotline", "pw"))
    await sim.start(host="127.0.0.1", port=0)
    try:
        settings = build_settings(SCENARIO, sim.port, secret="pw")
        settings = replace(
            settings, service=replace(settings.service, http_listen=f"127.0.0.1:{free_port()}")
        )
        serving = asyncio.create_task(serve.serve(settings))
        await eventually(
            lambda: any(t.get_name() == "engine" for t in asyncio.all_tasks()),
            what="the engine task started",
        )
        await eventually(lambda: bool(sim.server.sessions), what="the service connected")
        [engine_task] = [t for t in asyncio.all_tasks() if t.get_name() == "engine"]
        engine_task.cancel()  # the engine task ends although nobody stopped the service
        with pytest.raises(serve.EngineStopped):
            await asyncio.wait_for(serving, 30)
    finally:
        await sim.close()
