"""Agents' login and pause states, and sticky history, kept across restarts.

Theory of operation
-------------------
Writing: every login, logout, pause and unpause is an
:class:`~hotline.domain.effects.AgentPresenceChanged` fact. With a database, the
:class:`~hotline.store.records.Recorder` turns it into an ``agent`` record for the
outbox (``agent_states`` row replaced, ``agent_state_log`` row appended), so an
outage loses nothing. Without one, :class:`AgentStateFile` keeps
``<state_dir>/agent-state.json``: on each change its writer task takes a snapshot
of the router's agents and sticky history (on the event loop, so it is
consistent) and replaces the file atomically (temporary file, fsync, rename) in
a worker thread. Sticky history alone (an answered call) is written at most every
``sticky_interval`` seconds. ``state_dir = ":memory:"`` keeps nothing.

Reading: :func:`open_agent_state` runs once at start, before the engine's first
routing decision. With a database it first waits (briefly) for the outbox to
deliver what a previous process left in it, then reads ``agent_states`` and, for
sticky routing, the last agent who answered each number within
``routing.sticky_days`` from ``calls``. A row or entry that does not make sense is
skipped with a warning; a database or file that cannot be read is a warning, and
the service starts with every agent logged out, as it did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import structlog

from hotline.clock import Clock
from hotline.config import Settings
from hotline.domain.effects import AgentPresenceChanged, CallAnswered, Fact
from hotline.domain.model import AgentPresence
from hotline.domain.routing import Router
from hotline.store.db import Db
from hotline.store.resources import Store

__all__ = [
    "AGENT_STATE_FILE",
    "AgentStateFile",
    "PersistedAgents",
    "Sticky",
    "load_agent_states",
    "load_sticky",
    "open_agent_state",
    "presence_from",
]

log = structlog.get_logger("hotline.store.agentstate")

AGENT_STATE_FILE: Final = "agent-state.json"
"""The file's name in ``[service] state_dir`` (used without a database)."""
_FILE_VERSION: Final = 1
_MAX_REASON: Final = 64
_START_TIMEOUT: Final = 5.0
_STICKY_TIMEOUT: Final = 30.0

Sticky = dict[str, tuple[str, float]]
"""Caller number -> (agent id, when that agent answered them), as ``Router.sticky``."""

_STATES_SQL: Final = """
select agent_id, logged_in,
       extract(epoch from logged_in_since)::float8 as logged_in_since,
       pause_reason,
       extract(epoch from paused_since)::float8 as paused_since
from agent_states order by agent_id
"""

_STICKY_SQL: Final = """
select distinct on (caller_number) caller_number, answered_by,
       extract(epoch from answered_at)::float8 as answered_at
from calls
where answered_by is not null and answered_at >= to_timestamp($1)
order by caller_number, answered_at desc
"""


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is not a time: {value!r}")
    return float(value)


def presence_from(data: Mapping[str, Any]) -> AgentPresence:
    """An :class:`AgentPresence` from a row or a JSON object; ValueError names what is wrong."""
    agent_id = data.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id or not agent_id.isprintable():
        raise ValueError(f"agent_id is not an agent id: {agent_id!r}")
    logged_in = data.get("logged_in")
    if not isinstance(logged_in, bool):
        raise ValueError(f"logged_in is not a boolean: {logged_in!r}")
    reason = data.get("pause_reason")
    if reason is not None and (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > _MAX_REASON
        or not reason.isprintable()
    ):
        raise ValueError(f"pause_reason is not a reason: {reason!r}")
    logged_in_since = _time(data.get("logged_in_since"), "logged_in_since")
    paused_since = _time(data.get("paused_since"), "paused_since")
    return AgentPresence(
        agent_id,
        logged_in,
        logged_in_since if logged_in else None,
        reason,
        paused_since if reason is not None else None,
    )


def _presence_json(presence: AgentPresence) -> dict[str, Any]:
    return {
        "agent_id": presence.agent_id,
        "logged_in": presence.logged_in,
        "logged_in_since": presence.logged_in_since,
        "pause_reason": presence.pause_reason,
        "paused_since": presence.paused_since,
    }


def _skip(source: str, error: Exception, item: Any) -> None:
    log.warning("agent_state.skipped", source=source, error=str(error), item=repr(item)[:200])


async def load_agent_states(db: Db) -> list[AgentPresence]:
    """Every agent's persisted state in ``agent_states``; bad rows skipped with a warning."""
    states: list[AgentPresence] = []
    for row in await db.fetch(_STATES_SQL):
        try:
            states.append(presence_from(dict(row)))
        except ValueError as exc:
            _skip("agent_states", exc, row["agent_id"])
    return states


async def load_sticky(db: Db, since: float) -> Sticky:
    """The last agent who answered each caller number at or after ``since``, from ``calls``."""
    rows = await db.fetch(_STICKY_SQL, since)
    return {
        row["caller_number"]: (row["answered_by"], row["answered_at"])
        for row in rows
        if row["caller_number"].isdigit()
    }


def _sticky_from(data: Any) -> Sticky:
    sticky: Sticky = {}
    if not isinstance(data, dict):
        raise ValueError("sticky is not an object")
    for number, entry in data.items():
        try:
            agent_id, at = entry
            served_at = _time(at, "answered at")
            if not isinstance(agent_id, str) or served_at is None:
                raise ValueError(f"not [agent id, time]: {entry!r}")
        except (TypeError, ValueError) as exc:
            _skip("sticky", exc, "a caller number's entry")  # no phone number in logs
            continue
        sticky[number] = (agent_id, served_at)
    return sticky


Snapshot = Callable[[], tuple[list[AgentPresence], Sticky]]
"""What to write: every agent's presence and the sticky history (the router's)."""


class AgentStateFile:
    """``<state_dir>/agent-state.json``: the agents' states and sticky history without a
    database; see the module docstring."""

    def __init__(
        self, path: str | Path, snapshot: Snapshot, *, sticky_interval: float = 5.0
    ) -> None:
        """Write ``snapshot()`` to ``path``; sticky-only changes every ``sticky_interval`` s."""
        self.path = Path(path)
        self.snapshot = snapshot
        self.sticky_interval = sticky_interval
        self.writes = 0
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._sticky_dirty = False
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def load(self) -> tuple[list[AgentPresence], Sticky]:
        """What the file holds: ``([], {})`` when it is missing or unreadable (warned)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return [], {}
        except (OSError, ValueError) as exc:
            log.warning("agent_state.unreadable", path=str(self.path), error=str(exc))
            return [], {}
        if not isinstance(data, dict) or data.get("version") != _FILE_VERSION:
            log.warning("agent_state.unreadable", path=str(self.path), error="not version 1")
            return [], {}
        states: list[AgentPresence] = []
        agents = data.get("agents")
        for item in agents if isinstance(agents, list) else []:
            try:
                if not isinstance(item, dict):
                    raise ValueError("not an object")
                states.append(presence_from(item))
            except ValueError as exc:
                _skip(str(self.path), exc, item)
        try:
            sticky = _sticky_from(data.get("sticky", {}))
        except ValueError as exc:
            _skip(str(self.path), exc, "sticky")
            sticky = {}
        return states, sticky

    def sink(self, fact: Fact) -> None:
        """A fact sink: a presence change is written at once, an answer with the next write."""
        if isinstance(fact, AgentPresenceChanged):
            self._dirty = True
            self._changed.set()
        elif isinstance(fact, CallAnswered):
            self._sticky_dirty = True

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agent-state-writer")

    async def close(self) -> None:
        """Stop the writer (after the write in progress) and write the last state if anything
        changed."""
        if self._task is not None:
            self._stop.set()
            self._changed.set()
            await self._task
            self._task = None
        if self._dirty or self._sticky_dirty:
            await self.write()

    async def write(self) -> None:
        """Replace the file with the current snapshot (temporary file, fsync, rename)."""
        self._dirty = self._sticky_dirty = False
        self._changed.clear()
        states, sticky = self.snapshot()
        data = {
            "version": _FILE_VERSION,
            "agents": [_presence_json(presence) for presence in states],
            "sticky": {number: [agent, at] for number, agent, at in _entries(sticky)},
        }
        try:
            await asyncio.to_thread(_replace, self.path, json.dumps(data).encode())
        except OSError as exc:
            self._dirty = True
            log.warning("agent_state.write_failed", path=str(self.path), error=str(exc))
        else:
            self.writes += 1

    async def _run(self) -> None:
        while not self._stop.is_set():
            await _wait(self._changed, self.sticky_interval)
            if self._stop.is_set():
                return
            if self._dirty or self._sticky_dirty:
                await self.write()
                if self._dirty:  # the write failed: do not spin on a full disk
                    await _wait(self._stop, self.sticky_interval)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def _entries(sticky: Sticky) -> list[tuple[str, str, float]]:
    return [(number, agent, at) for number, (agent, at) in sticky.items()]


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(slots=True)
class PersistedAgents:
    """What :func:`open_agent_state` gives the engine context: what to restore, the sinks
    that keep the file (none with a database), and :meth:`close`."""

    states: list[AgentPresence] = field(default_factory=list)
    sticky: Sticky = field(default_factory=dict)
    file: AgentStateFile | None = None

    @property
    def sinks(self) -> list[Callable[[Fact], None]]:
        """Fact sinks to add to the engine's."""
        return [self.file.sink] if self.file is not None else []

    async def close(self) -> None:
        """Write the file a last time (after the engine has stopped)."""
        if self.file is not None:
            await self.file.close()


def _router_snapshot(router: Router) -> Snapshot:
    def snapshot() -> tuple[list[AgentPresence], Sticky]:
        return [agent.presence for agent in router.agents.values()], dict(router.sticky)

    return snapshot


_DATABASE_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _load_from_database(
    store: Store, sticky_since: float, timeout: float, sticky_timeout: float
) -> PersistedAgents:
    try:
        async with asyncio.timeout(timeout):
            if not await store.outbox.flush(timeout):
                log.warning("agent_state.outbox_not_drained", backlog=store.outbox.backlog)
            async with store.pool.acquire() as conn:
                states = await load_agent_states(conn)
    except _DATABASE_ERRORS as exc:
        log.warning("agent_state.load_failed", error=f"{type(exc).__name__}: {exc}")
        return PersistedAgents()
    try:
        async with asyncio.timeout(sticky_timeout), store.pool.acquire() as conn:
            sticky = await load_sticky(conn, sticky_since)
    except _DATABASE_ERRORS as exc:
        log.warning("agent_state.sticky_load_failed", error=f"{type(exc).__name__}: {exc}")
        sticky = {}
    log.info("agent_state.loaded", source="database", agents=len(states), sticky=len(sticky))
    return PersistedAgents(states, sticky)


async def open_agent_state(
    settings: Settings,
    store: Store | None,
    router: Router,
    clock: Clock,
    *,
    timeout: float = _START_TIMEOUT,
    sticky_timeout: float = _STICKY_TIMEOUT,
) -> PersistedAgents:
    """Read what to restore (see the module docstring) and, without a database, start the
    file's writer. Never fails the start: what cannot be read is a warning.

    With a database, draining the outbox and reading the states get ``timeout``
    seconds, the sticky history ``sticky_timeout`` more (without it, the states are
    still restored)."""
    sticky_since = clock.now() - settings.routing.sticky_days * 86400
    if store is not None:
        return await _load_from_database(store, sticky_since, timeout, sticky_timeout)
    state_dir = settings.service.state_dir
    if state_dir == ":memory:":
        return PersistedAgents()
    file = AgentStateFile(Path(state_dir) / AGENT_STATE_FILE, _router_snapshot(router))
    states, sticky = await asyncio.to_thread(file.load)
    log.info("agent_state.loaded", source=str(file.path), agents=len(states), sticky=len(sticky))
    file.start()
    return PersistedAgents(states, sticky, file)
