"""Typed keys for what the application holds."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web

from hotline.ami.client import AmiClient
from hotline.clock import Clock
from hotline.config import Settings
from hotline.engine import Engine
from hotline.prometheus import Metrics
from hotline.store.lease import Lease
from hotline.store.resources import Store
from hotline.ticketno import TicketNumbers

__all__ = [
    "AMI",
    "ASKS",
    "CALLBACKS_DUE",
    "CLOCK",
    "ENGINE",
    "LEASE",
    "METRICS",
    "SETTINGS",
    "STORE",
    "TICKET_NUMBERS",
    "AskResolver",
]


class AskResolver(Protocol):
    """What a supervisor's listen, whisper or barge tells the wallboard's alerts."""

    def agent_joined(self, agent_id: str, site: str | None = None) -> None:
        """A supervisor joined the call of the agent (of ``site``, default this instance's):
        their requests for one are answered."""
        ...  # pragma: no cover


SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
AMI = web.AppKey("ami", AmiClient)
ENGINE = web.AppKey("engine", Engine)
METRICS = web.AppKey("metrics", Metrics)
TICKET_NUMBERS = web.AppKey("ticket_numbers", TicketNumbers)
STORE = web.AppKey("store", Store)
LEASE = web.AppKey("lease", Lease)
ASKS = web.AppKey("asks", AskResolver)
CALLBACKS_DUE = web.AppKey("callbacks_due", asyncio.Event)
"""Set when a callback is due now (a click-to-call): the scheduler polls at once."""
"""The wallboard's alert centre, as the supervisor actions see it (:mod:`hotline.web.wall`)."""
