"""Recordings: the ``MixMonitor`` file of each answered offer, linked to ticket and call.

The file is ``<monitor_dir>/<ticket>-<agent leg Uniqueid>.wav`` (the integration
contract), and the agent leg's Uniqueid is the offer id. Rows are written by the
outbox (:mod:`hotline.store.records`); this module reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Final

import asyncpg

from hotline.store.db import Db, NotFound

__all__ = ["Recording", "Recordings", "recording_path"]

_SELECT: Final = (
    "select r.id, r.path, t.number as ticket_number, r.call_id, r.offer_id, r.agent_id, "
    "r.started_at "
    "from recordings r join tickets t on t.id = r.ticket_id"
)


def recording_path(monitor_dir: str, ticket: str, offer_id: str) -> str:
    """Where ``MixMonitor(${HOTLINE_TICKET}-${UNIQUEID}.wav)`` writes an offer's recording."""
    return str(PurePosixPath(monitor_dir) / f"{ticket}-{offer_id}.wav")


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording file."""

    id: int
    path: str
    ticket_number: str
    call_id: str
    offer_id: str
    agent_id: str | None
    started_at: datetime


def _recording(row: asyncpg.Record) -> Recording:
    return Recording(**dict(row.items()))


class Recordings:
    """The recordings repository (reads)."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def get(self, path: str) -> Recording:
        """The recording at ``path``."""
        row = await self.db.fetchrow(_SELECT + " where r.path = $1", path)
        if row is None:
            raise NotFound(f"recording {path} not found")
        return _recording(row)

    async def by_id(self, recording_id: int) -> Recording:
        """The recording numbered ``recording_id``."""
        row = await self.db.fetchrow(_SELECT + " where r.id = $1", recording_id)
        if row is None:
            raise NotFound(f"recording {recording_id} not found")
        return _recording(row)

    async def for_ticket(self, number: str) -> list[Recording]:
        """A ticket's recordings, oldest first."""
        rows = await self.db.fetch(
            _SELECT + " where t.number = $1 order by r.started_at, r.id", number
        )
        return [_recording(row) for row in rows]
