"""A click-to-call is dialled at once: waking the callback scheduler ends its wait."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest

from hotline.clock import SystemClock
from hotline.domain.events import CallbackDue
from hotline.store.callbacks import Callbacks
from hotline.store.db import Pool
from hotline.store.scheduler import CallbackScheduler
from hotline.store.tickets import Tickets

pytestmark = pytest.mark.integration

HOUR = 3600.0  # the poll interval: far longer than the test may take


async def test_waking_the_scheduler_submits_a_callback_due_now_without_waiting_the_interval(
    pg_pool: Pool,
) -> None:
    await Tickets(pg_pool).create("T20261202-A0001", actor="admin", queue="support")
    callbacks = Callbacks(pg_pool)
    past = datetime(2026, 12, 1, tzinfo=UTC)
    first = await callbacks.schedule("T20261202-A0001", phone="139", due_at=past, actor="a")
    submitted: asyncio.Queue[CallbackDue] = asyncio.Queue()
    woken = asyncio.Event()
    scheduler = CallbackScheduler(
        pg_pool,
        submitted.put_nowait,
        SystemClock(),
        interval=HOUR,
        default_queue="support",
        woken=woken,
    )
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(60):  # generous: the first poll runs at start
            assert (await submitted.get()).callback_id == first.id
        second = await callbacks.schedule("T20261202-A0001", phone="138", due_at=past, actor="a")
        woken.set()  # what POST /api/panel/call does
        async with asyncio.timeout(60):  # woken, it polls long before the hour is out
            assert (await submitted.get()).callback_id == second.id
        assert not woken.is_set()  # cleared for the next click
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
