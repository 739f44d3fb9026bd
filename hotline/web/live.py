"""The live feed: one WebSocket per page (``GET /api/live``), a snapshot, then deltas.

Theory of operation
-------------------
The engine hands every fact to :meth:`LiveHub.sink`, which only appends it to a
bounded deque and wakes the hub's task: the engine never waits for a browser.
When the deque overflows (the hub fell behind), the facts it lost are not
replayed: every page gets a fresh snapshot instead.

The hub task drains the facts, notes which queues and agents they touch, keeps
today's tallies (service level, within-3-rings, abandons per queue; answered and
missed per agent, reset at midnight in ``[service] time_zone``), and then builds
one frame per page from the router's live state, filtered for that page's
principal:

- a page subscribes to queues (``?queues=a,b``; default: every queue it may
  see). An agent may see only their own queues (asking for another is 403
  before the upgrade), and sees callers' numbers masked (the first
  :data:`AGENT_WAITING_SHOWN` per queue, with ``waiting_count``); supervisors, admins
  and the integration token see every queue and full numbers;
- supervisors see every agent; an agent sees their own tile only (the agent
  panel shows nothing else, and 500 agents sharing queues would otherwise each
  be sent every colleague's change).

Frames are JSON objects with a ``seq`` that grows by one per page:
``{"type": "snapshot", ...}`` first, then ``{"type": "delta", ...}`` carrying
only the queues and agents that changed. A page that sees a gap in ``seq``, or
reconnects, asks again (``{"type": "snapshot"}``) or reconnects, and gets a
fresh snapshot.

Desk facts share the sequence: ``{"type": "desk", "kind": "escalation",
"event": "opened" | "resolved", "escalation": {...}}`` and ``{"type": "desk",
"kind": "handover", "event": "new", "note": {...}}``, queued by the web
handlers that change them (:meth:`LiveHub.push_desk`, filtered per principal
by :mod:`hotline.web.desk`: an agent gets the escalations of the tickets they
may see, supervisors all; a note goes to those whose queues it addresses,
never back to its author). A snapshot does not carry them: a page fetches the
lists again on each snapshot.

A supervising page's queue in a delta is a diff of the waiting list: the view
with ``"waiting_diff": true``, ``waiting`` holding only the callers that joined
or changed since the last batch, ``waiting_left`` the call ids that left
(:func:`diff_queue_view`; :func:`merge_queue_view` and ``mergeQueue`` in
common.js apply it). The hub keeps, per queue, the full view of the last batch
(the baseline): the diffs are taken against it, and a snapshot shows it, so a
page that connects between two batches gets the next batch's diff on top of the
very list it was shown. An agent's page gets its queues' masked lists whole
(ten callers at most), paced: 500 agents' pages share a few queues, so each
agent's page gets its queues' changes at most every :data:`AGENT_QUEUES_INTERVAL`,
in turns (:data:`MASKED_SLOTS` slots, one per tick, so that no batch writes to
every agent's page at once); its own tile goes out with every batch.

Under load the hub batches: after a batch it waits :data:`FLUSH_INTERVAL` of wall
time (not on a virtual-time loop, where nothing is paced), so what arrives
meanwhile makes one frame per page. Each part of a frame is encoded to JSON once
per batch: a queue's diff once for every supervising page, its masked list once
for every agent's page, the changed tiles once; a page's frame only adds its
``seq`` around them.

Each page has a bounded buffer of frames (:data:`CLIENT_BUFFER`) drained by its
own writer task; a page whose buffer is full (a slow or dead browser) is closed
(``1013 try again later``) and forgotten, never slowing the hub. Pages are
tracked in a :class:`weakref.WeakSet` and closed with ``GOING_AWAY`` on
shutdown.

Across instances: with ``[redis] url`` and ``[service] pbx_id``, the active (the
lease holder) also hands each batch's full views to a
:class:`~hotline.web.live_relay.LiveRelay`, which publishes them in Redis; every
instance mirrors them (:meth:`LiveHub.apply_remote`), and an instance that is
not active serves its pages from that mirror, with the same filtering by role
and queue. A gap on the channel, a Redis reconnect, or this instance becoming
or ceasing to be the active sends every page a fresh snapshot.

Several sites: a page with ``?site=<pbx_id>`` or ``?site=*`` also gets the other
sites' views and every site's router from :mod:`hotline.web.live_sites`; a page
that does not watch this instance's site (``_Page.home`` false) gets this hub's
frames empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from hotline.clock import Clock, virtual_clock_of
from hotline.config import Settings
from hotline.domain.effects import (
    AgentPresenceChanged,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRequeued,
    Fact,
    OfferEnded,
    OfferStarted,
    WrapUpEnded,
)
from hotline.domain.model import Agent, AgentState, Call, CallState, OfferResult
from hotline.domain.routing import Router
from hotline.domain.sla import MISSES, CallTally, ratio, tally_call, within_rings
from hotline.store.lease import Lease
from hotline.web.auth import Principal, principal_of
from hotline.web.errors import json_error
from hotline.web.keys import CLOCK, ENGINE, LEASE, SETTINGS
from hotline.web.live_relay import LiveRelay
from hotline.web.live_sites import SITE_FEEDS
from hotline.web.openapi import Api, Input
from hotline.web.schema import Text

__all__ = [
    "AGENT_QUEUES_INTERVAL",
    "AGENT_WAITING_SHOWN",
    "CLIENT_BUFFER",
    "FACT_BUFFER",
    "FLUSH_INTERVAL",
    "HUB",
    "MASKED_SLOTS",
    "LiveHub",
    "api",
    "close_pages",
    "diff_queue_view",
    "live_context",
    "mask_number",
    "merge_queue_view",
    "new_hub",
]

log = structlog.get_logger("hotline.web.live")

CLIENT_BUFFER: Final = 64
"""Frames queued for one page before it counts as too slow and is closed."""
FACT_BUFFER: Final = 10_000
"""Facts the hub holds between two wake-ups; past that, every page gets a snapshot."""
FLUSH_INTERVAL: Final = 0.025
"""Wall seconds between two batches at most: under load, facts coalesce into one frame."""
AGENT_WAITING_SHOWN: Final = 10
"""Waiting callers per queue an agent's page lists (the longest waits; ``waiting_count``
says how many there are): a wallboard lists them all."""
MASKED_SLOTS: Final = 8
"""Agents' pages get their paced queue updates in this many turns per interval."""
AGENT_QUEUES_INTERVAL: Final = 0.5
"""Wall seconds between two queue updates on an agent's page at most (their own tile goes
out with every batch): 500 agents' pages share a few queues, and each queue change would
otherwise be 500 frames."""
SUPERVISING_ROLES: Final = frozenset({"supervisor", "admin", "integration"})
"""Roles that see every queue and full caller numbers."""

View = dict[str, Any]
"""A queue's or an agent's view, as JSON."""

api = Api()


def mask_number(number: str) -> str:
    """A caller number as an agent's feed shows it: the last four digits only."""
    if not number:
        return ""
    return "*" * max(len(number) - 4, 0) + number[-4:]


@dataclass
class _QueueToday:
    calls: CallTally = field(default_factory=CallTally)
    ring_answered: int = 0
    ring_answered_within: int = 0
    ring_missed: int = 0


@dataclass
class _AgentToday:
    answered: int = 0
    missed: int = 0


_SLOT = itertools.count()


@dataclass(eq=False)
class _Page:
    """One connected page: its principal's view and its bounded frame buffer."""

    ws: web.WebSocketResponse
    principal: Principal
    queues: frozenset[str]
    supervising: bool
    frames: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_BUFFER))
    seq: int = 0
    dropped: bool = False
    home: bool = True
    """False for a page watching other sites only (``?site=``): no tile of this site."""
    slot: int = field(default_factory=lambda: next(_SLOT) % MASKED_SLOTS)
    """The page's turn among the agents' pages' paced queue updates."""

    def sees_agent(self, agent: Agent) -> bool:
        return self.sees(agent.id)

    def sees(self, agent_id: str) -> bool:
        """Supervising pages see every agent, an agent's page their own tile."""
        return self.home and (self.supervising or agent_id == self.principal.agent_id)


class _Gate(Protocol):
    @property
    def active(self) -> bool: ...


class LiveHub:
    """The feed's state: the facts not yet sent, today's tallies and the connected pages."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.router: Router | None = None
        self.pages: weakref.WeakSet[_Page] = weakref.WeakSet()
        self.frames_sent = 0
        self.pages_dropped = 0
        self.batches = 0
        """Batches sent (flushes that had something to do)."""
        self.busy_seconds = 0.0
        """Wall seconds the loop spent making and queueing frames (the feed's share of it)."""
        self.longest_batch = 0.0
        """The longest of those batches, in wall seconds."""
        self.masked_interval = AGENT_QUEUES_INTERVAL
        """Wall seconds between two queue updates on non-supervising pages (0 on a
        virtual-time loop)."""
        self._facts: deque[Fact] = deque(maxlen=FACT_BUFFER)
        self._overflowed = False
        self._wake = asyncio.Event()
        self._day = ""
        self._queues_today: dict[str, _QueueToday] = {}
        self._agents_today: dict[str, _AgentToday] = {}
        self._baseline: dict[str, View] = {}
        self._entries: dict[str, View] = {}
        self.monotonic: Callable[[], float] = time.monotonic
        """The wall clock the agents' pages' pacing is timed on."""
        self._slot_pending: list[set[str]] = [set() for _ in range(MASKED_SLOTS)]
        self._slot_tick = [-1] * MASKED_SLOTS
        self._masked_timer: asyncio.TimerHandle | None = None
        self.relay: LiveRelay | None = None
        """Set (by :func:`live_context`) when the feed is shared through Redis."""
        self.lease: _Gate | None = None
        """The instance's lease: while it is not active, pages are served from the mirror."""
        self.remote_queues: dict[str, View] = {}
        self.remote_agents: dict[str, View] = {}
        self._serving_remote = False
        self.alerts: list[dict[str, Any]] = []
        """The wallboard's alerts as last pushed (:meth:`push_alerts`)."""

    @property
    def remote(self) -> bool:
        """True when the pages show the active's views from Redis (this one does not route)."""
        return self.relay is not None and self.lease is not None and not self.lease.active

    def wake(self) -> None:
        """Have the hub task look again (a lease change, a publication to redo)."""
        self._wake.set()

    # -- the engine's side: never blocks ---------------------------------------------------

    def sink(self, fact: Fact) -> None:
        """The engine's fact sink: append and wake the hub (O(1), never waits)."""
        if len(self._facts) == FACT_BUFFER:
            self._overflowed = True
        self._facts.append(fact)
        self._wake.set()

    # -- the hub task -----------------------------------------------------------------------

    async def run(self) -> None:
        """Send each batch of facts to the pages, until cancelled."""
        # Wall pacing, except on a virtual-time loop (the tests), where a real sleep would
        # let the simulated world run on meanwhile.
        virtual = virtual_clock_of() is not None
        pace = 0.0 if virtual else FLUSH_INTERVAL
        if virtual:
            self.masked_interval = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = time.perf_counter()
            self.flush()
            took = time.perf_counter() - started
            self.batches += 1
            self.busy_seconds += took
            self.longest_batch = max(self.longest_batch, took)
            if pace:
                await asyncio.sleep(pace)  # what comes meanwhile goes in one batch

    def flush(self) -> None:
        """Tally the pending facts and queue one frame for each page they concern."""
        facts = list(self._facts)
        self._facts.clear()
        overflowed, self._overflowed = self._overflowed, False
        queues, agents = self._tally_batch(facts)
        remote = self.remote
        switched, self._serving_remote = remote != self._serving_remote, remote
        router = self.router
        if router is None:
            return
        if remote:
            if switched:  # stepped down: the active's views from now on
                self._snapshot_all()
            elif any(self._slot_pending):
                self._deliver({}, self.remote_queues, {})
            return
        relay = self.relay
        full = overflowed or switched or (relay is not None and relay.want_full)
        if not (facts or full):
            if any(self._slot_pending):  # an agents' pages' paced queue update may be due
                self._deliver({}, self._baseline, {})
            return
        if any(isinstance(fact, CallRequeued) for fact in facts):
            callers = set(router.queues)  # the queue it left is not in the fact
            queues |= callers
        else:
            callers = set(queues)  # named by a call's fact: their waiting lists may change
        _widen(router, agents, queues)
        if overflowed or switched:
            self._baseline.clear()  # the views are made again from the router
        diffs = self._refresh(router, queues, callers)
        shown = {
            agent_id: self._agent_view(router.agents[agent_id])
            for agent_id in sorted(agents)
            if agent_id in router.agents
        }
        if relay is not None:
            self._publish(router, relay, diffs.keys(), shown, full=full)
        if overflowed or switched:
            self._snapshot_all()
        else:
            self._deliver(diffs, self._baseline, shown)

    def _tally_batch(self, facts: list[Fact]) -> tuple[set[str], set[str]]:
        """Count the batch's facts into today's figures; the queues and agents they touch."""
        queues: set[str] = set()
        agents: set[str] = set()
        self._today()  # once a batch: its facts are milliseconds apart
        for fact in facts:
            self._tally(fact)
            _touched(fact, queues, agents)
        return queues, agents

    def _refresh(self, router: Router, names: Iterable[str], callers: set[str]) -> dict[str, View]:
        """Make the full views of ``names`` again (the new baseline; the waiting lists of
        ``callers`` only, the others' are kept); their diffs against the views the pages
        were last sent."""
        known = [name for name in names if name in router.queues]
        kept = {name for name in known if name not in callers and name in self._baseline}
        fresh = self._build_queue_views(router, known, kept)
        diffs = {
            name: diff_queue_view(self._baseline.get(name), view)
            for name, view in sorted(fresh.items())
        }
        self._baseline.update(fresh)
        return diffs

    def _baseline_of(self, router: Router, names: Iterable[str]) -> list[View]:
        """The views the pages were last sent of ``names`` (made now for a queue never sent)."""
        ordered = sorted(names)
        missing = [name for name in ordered if name not in self._baseline]
        if missing:
            self._baseline.update(self._build_queue_views(router, missing))
        return [self._baseline[name] for name in ordered]

    def _publish(
        self,
        router: Router,
        relay: LiveRelay,
        queues: Iterable[str],
        agents: dict[str, View],
        *,
        full: bool,
    ) -> None:
        """Hand the relay the full views of what changed (of everything, when ``full``)."""
        names = router.queues if full else queues
        if full:
            agents = {agent.id: self._agent_view(agent) for agent in router.agents.values()}
        relay.publish(
            {view["name"]: view for view in self._baseline_of(router, names)}, agents, full=full
        )

    def _snapshot_all(self) -> None:
        for pending in self._slot_pending:
            pending.clear()  # the snapshots carry it
        for page in list(self.pages):
            self.send_snapshot(page)

    def _deliver(
        self, diffs: dict[str, View], baseline: dict[str, View], agents: dict[str, View]
    ) -> None:
        """Queue a delta for each page the batch concerns: supervising pages get the queues'
        diffs and every changed agent; other pages their queues' masked views (at most every
        :attr:`masked_interval`, a slot of them at a time) and their own tile. Each part is
        encoded once per batch, and once per set of subscribed queues, however many pages
        share it."""
        due = self._masked_due(diffs.keys())
        at = json.dumps(self.clock.now())
        tiles = {agent_id: json.dumps(view) for agent_id, view in agents.items()}
        every_tile = ", ".join(tiles.values())
        encoded: dict[tuple[bool, str], str] = {}
        parts: dict[tuple[bool, int, frozenset[str]], str] = {}

        def encode(supervising: bool, name: str) -> str:
            key = (supervising, name)
            text = encoded.get(key)
            if text is None:
                view = diffs[name] if supervising else _masked(baseline[name])
                text = encoded[key] = json.dumps(view)
            return text

        for page in list(self.pages):
            slot = -1 if page.supervising else page.slot
            key = (page.supervising, slot, page.queues)
            queues = parts.get(key)
            if queues is None:
                names = set(diffs) if page.supervising else due.get(slot, set()) & baseline.keys()
                queues = parts[key] = ", ".join(
                    encode(page.supervising, name) for name in sorted(page.queues & names)
                )
            own = page.principal.agent_id or ""
            tile = every_tile if page.supervising else tiles.get(own, "")
            tile = tile if page.home else ""  # not: a page watching other sites (``?site=``)
            if queues or tile:
                self._push(page, "delta", queues, tile, at)

    def _masked_due(self, touched: Iterable[str]) -> dict[int, set[str]]:
        """The slots of agents' pages whose queues' masked views go out now, with those
        queues. Wall time is cut in ticks of ``masked_interval / MASKED_SLOTS``; in each tick
        one slot (of :data:`MASKED_SLOTS`, pages spread among them as they connect) may be
        sent what changed since its last turn, so no batch writes to every agent's page at
        once. A timer wakes the hub at the next tick while a slot waits."""
        changed = set(touched)
        for pending in self._slot_pending:
            pending |= changed
        if not self.masked_interval:
            every = {slot: names for slot, names in enumerate(self._slot_pending) if names}
            self._slot_pending = [set() for _ in range(MASKED_SLOTS)]
            return every
        tick_length = self.masked_interval / MASKED_SLOTS
        now = self.monotonic()
        tick = int(now / tick_length)
        slot = tick % MASKED_SLOTS
        due: dict[int, set[str]] = {}
        if self._slot_pending[slot] and self._slot_tick[slot] != tick:
            due[slot], self._slot_pending[slot] = self._slot_pending[slot], set()
            self._slot_tick[slot] = tick
        if self._masked_timer is None and any(self._slot_pending):
            delay = (tick + 1) * tick_length - now
            loop = asyncio.get_running_loop()
            self._masked_timer = loop.call_later(delay, self._masked_wake)
        return due

    def _masked_wake(self) -> None:
        self._masked_timer = None
        self._wake.set()

    # -- the mirror of the active's views (another instance's, through Redis) ---------------

    def apply_remote(self, queues: dict[str, View], agents: dict[str, View], *, full: bool) -> None:
        """Take the active's views from the relay; pages served from the mirror get frames."""
        if full:
            self.remote_queues, self.remote_agents = dict(queues), dict(agents)
            if self.remote:
                self._serving_remote = True
                self._snapshot_all()
            return
        diffs = {
            name: diff_queue_view(self.remote_queues.get(name), view)
            for name, view in sorted(queues.items())
        }
        self.remote_queues.update(queues)
        self.remote_agents.update(agents)
        if not self.remote:
            return  # this instance serves its own views (it is the active)
        self._serving_remote = True
        self._deliver(diffs, self.remote_queues, dict(sorted(agents.items())))

    def _today(self) -> None:
        day = datetime.fromtimestamp(self.clock.now(), self.settings.service.zone).date()
        if day.isoformat() != self._day:
            self._day = day.isoformat()
            self._queues_today.clear()
            self._agents_today.clear()

    def _tally(self, fact: Fact) -> None:
        sla = self.settings.sla
        if isinstance(fact, CallEnded):
            today = self._queues_today.setdefault(fact.queue, _QueueToday())
            today.calls += tally_call(
                fact.outcome,
                fact.wait_seconds,
                sla.service_level_threshold,
                sla.short_abandon_threshold,
            )
        elif isinstance(fact, OfferEnded):
            queue = self._queues_today.setdefault(fact.queue, _QueueToday())
            agent = self._agents_today.setdefault(fact.agent_id, _AgentToday())
            routing = self.settings.routing
            if fact.result is OfferResult.ANSWERED:
                agent.answered += 1
                queue.ring_answered += 1
                queue.ring_answered_within += within_rings(
                    fact.ring_seconds, routing.sla_rings, routing.ring_cadence
                )
            elif fact.result in MISSES:
                agent.missed += 1
                queue.ring_missed += 1

    # -- frames -----------------------------------------------------------------------------

    def send_snapshot(self, page: _Page) -> None:
        """Queue a full snapshot of what ``page`` may see; a supervising page then gets the
        wallboard's alerts, when there are any."""
        self._send_snapshot(page)
        if page.supervising and self.alerts:
            self._send_alerts(page)

    # -- the wallboard's alerts (hotline.web.wall computes them) ---------------------------

    def push_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Send every supervising page the wallboard's alerts (the whole list, newest
        first, less those of queues the page did not subscribe to): ``{"type": "alerts",
        "alerts": [...], "queues": [], "agents": [], "seq", "at"}``; kept for the pages
        that connect later."""
        self.alerts = alerts
        for page in list(self.pages):
            if page.supervising:
                self._send_alerts(page)

    def _send_alerts(self, page: _Page) -> None:
        if page.dropped:
            return
        page.seq += 1
        shown = [a for a in self.alerts if a.get("queue") is None or a["queue"] in page.queues]
        frame = {"type": "alerts", "alerts": shown, "queues": [], "agents": []}
        text = json.dumps({**frame, "seq": page.seq, "at": self.clock.now()})
        try:
            page.frames.put_nowait(text)
        except asyncio.QueueFull:
            self.drop(page)

    def service_level_today(self, name: str) -> float | None:
        """Queue ``name``'s service level today so far, as its view shows it (``None``
        before its first counted call)."""
        today = self._queues_today.get(name, _QueueToday()).calls
        return ratio(
            today.answered_within, today.answered + today.abandoned - today.short_abandoned
        )

    def _send_snapshot(self, page: _Page) -> None:
        """The snapshot itself (the queues as the pages were last sent them: the next
        delta's diffs start there)."""
        if self.remote:
            self._send_remote_snapshot(page)
            return
        router = self.router
        if router is None:
            return
        queues = self._baseline_of(router, page.queues)
        if page.supervising:
            agents = [self._agent_view(a) for a in router.agents.values() if page.sees_agent(a)]
        else:
            own = router.agents.get(page.principal.agent_id or "")
            agents = [] if own is None else [self._agent_view(own)]
        self._queue_frame(
            page, "snapshot", queues if page.supervising else [_masked(q) for q in queues], agents
        )

    def _send_remote_snapshot(self, page: _Page) -> None:
        queues = [
            self.remote_queues[name] for name in sorted(page.queues & self.remote_queues.keys())
        ]
        self._queue_frame(
            page,
            "snapshot",
            queues if page.supervising else [_masked(view) for view in queues],
            [view for _, view in sorted(self.remote_agents.items()) if page.sees(view["id"])],
        )

    def _queue_frame(self, page: _Page, kind: str, queues: list[View], agents: list[View]) -> None:
        """Queue ``{"type", "queues", "agents", "seq", "at"}`` for ``page``."""
        self._push(
            page,
            kind,
            ", ".join(map(json.dumps, queues)),
            ", ".join(map(json.dumps, agents)),
            json.dumps(self.clock.now()),
        )

    def _push(self, page: _Page, kind: str, queues: str, agents: str, at: str) -> None:
        """Queue one frame made of parts already encoded; a page whose buffer is full is
        dropped."""
        if page.dropped:
            return
        page.seq += 1
        text = (
            f'{{"type": "{kind}", "queues": [{queues}], "agents": [{agents}], '
            f'"seq": {page.seq}, "at": {at}}}'
        )
        try:
            page.frames.put_nowait(text)
        except asyncio.QueueFull:
            self.drop(page)

    # -- desk facts: escalations and handover notes, pushed by the web handlers -------------

    def push_desk(
        self,
        kind: str,
        payload: dict[str, Any],
        shown: Callable[[Principal], bool],
    ) -> int:
        """Queue ``{"type": "desk", "kind": kind, **payload, "seq", "at"}`` for every page
        whose principal ``shown`` lets see it (supervising pages: per ``shown`` too); the
        number of pages it went to. Encoded once, whatever the number of pages."""
        body = json.dumps(payload)[1:-1]
        prefix = f'{{"type": "desk", "kind": {json.dumps(kind)}, {body}, "seq": '
        at = json.dumps(self.clock.now())
        sent = 0
        for page in list(self.pages):
            if page.dropped or not shown(page.principal):
                continue
            page.seq += 1
            try:
                page.frames.put_nowait(f'{prefix}{page.seq}, "at": {at}}}')
            except asyncio.QueueFull:
                self.drop(page)
                continue
            sent += 1
        return sent

    def drop(self, page: _Page) -> None:
        """Forget a page whose buffer is full and close it (its writer task ends)."""
        page.dropped = True
        self.pages.discard(page)
        self.pages_dropped += 1
        log.info("web.live_dropped", user=page.principal.name)
        while not page.frames.empty():
            page.frames.get_nowait()
        page.frames.put_nowait("")  # wakes the writer, which closes the socket

    def _build_queue_views(
        self, router: Router, names: list[str], kept: Collection[str] = ()
    ) -> dict[str, View]:
        """The full (supervising) views of ``names``: one pass over the calls and agents;
        the queues in ``kept`` keep their waiting list of the last batch (no call of
        theirs changed)."""
        waiting: dict[str, list[Call]] = {name: [] for name in names if name not in kept}
        if waiting:
            for call in router.calls.values():
                bucket = waiting.get(call.queue)
                if bucket is not None and call.state is CallState.WAITING and not call.is_callback:
                    bucket.append(call)
        states = {name: dict.fromkeys(_STATES, 0) for name in names}
        for agent in router.agents.values():
            for name in agent.config.queues:
                counts = states.get(name)
                if counts is not None:
                    counts[agent.state.value] += 1
        if len(self._entries) > 2 * len(router.calls) + 100:  # forget the calls gone
            self._entries = {k: v for k, v in self._entries.items() if k in router.calls}
        lines = {
            name: [self._entry(call) for call in sorted(calls, key=_wait_order)]
            for name, calls in waiting.items()
        }
        for name in kept:
            lines[name] = self._baseline[name]["waiting"]
        return {name: self._queue_view(name, lines[name], states[name]) for name in names}

    def _entry(self, call: Call) -> View:
        """A waiting caller's line in a queue view: the same object while it is unchanged,
        so that a diff skips it at once."""
        entry = self._entries.get(call.call_id)
        if (
            entry is None
            or entry["since"] != call.queue_entered_at
            or entry["priority"] != call.priority
            or entry["number"] != call.number
        ):
            entry = self._entries[call.call_id] = {
                "call_id": call.call_id,
                "number": call.number,
                "priority": call.priority,
                "since": call.queue_entered_at,
            }
        return entry

    def _queue_view(self, name: str, waiting: list[View], states: dict[str, int]) -> View:
        today = self._queues_today.get(name, _QueueToday())
        counted = today.calls.answered + today.calls.abandoned - today.calls.short_abandoned
        sla = self.settings.sla
        return {
            "name": name,
            "waiting": waiting,
            "waiting_count": len(waiting),
            # The list is in answering order (priority first): the longest wait is its min.
            "longest_since": min((line["since"] for line in waiting), default=None),
            "agents": states,
            "today": {
                "answered": today.calls.answered,
                "abandoned": today.calls.abandoned,
                "service_level": ratio(today.calls.answered_within, counted),
                "within_rings": ratio(
                    today.ring_answered_within, today.ring_answered + today.ring_missed
                ),
                "abandon_rate": ratio(today.calls.abandoned, today.calls.calls),
            },
            "targets": {
                "service_level": sla.service_level_target,
                "longest_wait": sla.longest_wait_limit,
            },
        }

    def _agent_view(self, agent: Agent) -> View:
        today = self._agents_today.get(agent.id, _AgentToday())
        call_since = None
        if agent.state is AgentState.ON_CALL and self.router is not None and agent.offer_id:
            offer = self.router.offers.get(agent.offer_id)
            call = self.router.calls.get(offer.call_id) if offer is not None else None
            call_since = call.answered_at if call is not None else None
        return {
            "id": agent.id,
            "name": agent.config.name or agent.id,
            "queues": list(agent.config.queues),
            "state": agent.state.value,
            "since": agent.state_since or None,  # None: no change seen since the start
            "pause_reason": agent.pause_reason,
            "call_since": call_since,
            "wrap_up_until": agent.wrap_up_until,
            "answered_today": today.answered,
            "missed_today": today.missed,
        }


_STATES: Final = tuple(state.value for state in AgentState)


def _wait_order(call: Call) -> tuple[int, float, str]:
    """A queue's waiting list in the order the callers will be answered: priority first
    (a supervisor's raise moves a caller up), then the wait; :func:`_line_order` too."""
    return (-call.priority, call.queue_entered_at, call.call_id)


def _line_order(line: View) -> tuple[int, float, str]:
    """The same order of a view's lines (a diff merged: ``mergeQueue`` in common.js)."""
    return (-line["priority"], line["since"], line["call_id"])


def diff_queue_view(before: View | None, after: View) -> View:
    """A full queue view as a delta after ``before``: ``waiting`` holds only the callers
    that joined or changed, ``waiting_left`` the call ids that left, ``waiting_diff`` is
    true (:func:`merge_queue_view` undoes it)."""
    if before is not None and before["waiting"] is after["waiting"]:  # kept as it was
        return {**after, "waiting": [], "waiting_left": [], "waiting_diff": True}
    old = {} if before is None else {call["call_id"]: call for call in before["waiting"]}
    now: set[str] = set()
    changed: list[View] = []
    for call in after["waiting"]:
        now.add(call["call_id"])
        previous = old.get(call["call_id"])
        if previous is not call and previous != call:
            changed.append(call)
    left = [call_id for call_id in old if call_id not in now]
    return {**after, "waiting": changed, "waiting_left": left, "waiting_diff": True}


def merge_queue_view(shown: View | None, view: View) -> View:
    """What a page shows of a queue after ``view`` (a snapshot's, or a delta's diff applied
    to ``shown``); ``connectLive``'s pages do the same (``mergeQueue`` in common.js)."""
    if not view.get("waiting_diff"):
        return view
    gone = set(view["waiting_left"])
    calls = {
        call["call_id"]: call
        for call in ([] if shown is None else shown["waiting"])
        if call["call_id"] not in gone
    }
    calls.update((call["call_id"], call) for call in view["waiting"])
    merged = {key: value for key, value in view.items() if key not in _DIFF_KEYS}
    merged["waiting"] = sorted(calls.values(), key=_line_order)
    return merged


_DIFF_KEYS: Final = frozenset({"waiting_left", "waiting_diff"})


def _masked(view: View) -> View:
    """A full queue view as a non-supervising page may see it: numbers masked, the first
    :data:`AGENT_WAITING_SHOWN` waiting callers."""
    waiting = [
        {**call, "number": mask_number(call["number"])}
        for call in view["waiting"][:AGENT_WAITING_SHOWN]
    ]
    return {**view, "waiting": waiting}


def _widen(router: Router, agents: set[str], queues: set[str]) -> None:
    """Add the queues whose views (their agents' counts) the batch changed without naming
    them: the queues of every agent whose state changed."""
    for agent_id in agents:
        agent = router.agents.get(agent_id)
        if agent is not None:
            queues.update(agent.config.queues)


_CALL_FACTS: Final = (CallArrived, CallRequeued, CallEnded)
_OFFER_FACTS: Final = (OfferStarted, OfferEnded, CallAnswered)
_AGENT_FACTS: Final = (AgentStateChanged, WrapUpEnded)


def _touched(fact: Fact, queues: set[str], agents: set[str]) -> None:
    """Add the queues and agents whose view ``fact`` changes."""
    if isinstance(fact, _CALL_FACTS):
        queues.add(fact.queue)
    if isinstance(fact, _OFFER_FACTS):
        queues.add(fact.queue)
        agents.add(fact.agent_id)
    elif isinstance(fact, _AGENT_FACTS):
        agents.add(fact.agent_id)
    elif isinstance(fact, AgentPresenceChanged):
        agents.add(fact.presence.agent_id)


HUB: Final = web.AppKey("live_hub", LiveHub)


def _subscribed(
    request: web.Request, principal: Principal, elsewhere: set[str] | None = None
) -> frozenset[str]:
    """The queues the page asks for (``?queues=a,b``), checked against what it may see
    (``elsewhere``: names other sites' queues have, for a page watching them)."""
    configured = request.app[SETTINGS].queues
    allowed = set(configured) if principal.role in SUPERVISING_ROLES else set(principal.queues)
    asked = request.query.get("queues", "")
    if not asked:
        return frozenset(allowed)
    names = {name.strip() for name in asked.split(",") if name.strip()}
    unknown = sorted(names - set(configured) - (elsewhere or set()))
    allowed |= elsewhere or set()
    if unknown:
        raise json_error(422, "validation", fields={"queues": f"unknown queue {unknown[0]!r}"})
    if not names <= allowed:
        raise json_error(403, "forbidden", message="this feed is not among your queues")
    return frozenset(names)


def _same_origin(request: web.Request) -> bool:
    """No cross-site page may open the feed with the user's cookie."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@api.operation(
    "GET",
    "/api/live",
    summary="The live feed: a WebSocket (snapshot, then deltas with a sequence number)",
    tag="panels",
    query={
        "queues": Text(
            max_length=1000,
            min_length=1,
            single_line=True,
            description="comma-separated; default: every queue the user may see",
        ),
        "site": Text(
            max_length=200,
            min_length=1,
            single_line=True,
            description="a pbx_id (one site) or * (the whole centre); adds sites frames; "
            "default: this instance's site only",
        ),
    },
    status=101,
    errors=(400,),
)
async def live(request: web.Request, _: Input) -> web.WebSocketResponse:
    """The page's WebSocket: a snapshot, then deltas (see the module docstring)."""
    principal = principal_of(request)
    if not _same_origin(request):
        raise json_error(403, "forbidden", message="cross-origin feed refused")
    supervising = principal.role in SUPERVISING_ROLES
    feeds = request.app.get(SITE_FEEDS)
    watch = feeds.selection(request, supervising) if feeds is not None else None
    if feeds is None and request.query.get("site", "*").strip() not in ("*", ""):
        raise json_error(422, "validation", fields={"site": "this instance has no other site"})
    # Other sites' queue names widen what a supervising page may name (an agent's: never).
    elsewhere = feeds.known_queues() if feeds and watch and supervising else None
    queues = _subscribed(request, principal, elsewhere)
    hub = request.app[HUB]
    # No per-message deflate: compressing every wallboard's frame costs the loop the
    # engine runs on more than the bytes it saves on a LAN.
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, compress=False)
    if not ws.can_prepare(request).ok:
        raise json_error(400, "bad request", message="send a WebSocket upgrade request")
    await ws.prepare(request)
    home = watch is None or watch.home
    page = _Page(ws, principal, queues if home else frozenset(), supervising, home=home)
    hub.pages.add(page)
    hub.send_snapshot(page)
    if feeds is not None and watch is not None:
        feeds.watch(page, watch)  # the other sites' snapshots and the sites frame
    writer = asyncio.create_task(_write(page), name="live-writer")
    try:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(message.data).get("type") == "snapshot":
                    hub.send_snapshot(page)
                    if feeds is not None:
                        feeds.snapshot(page)
    finally:
        hub.pages.discard(page)
        if feeds is not None:
            feeds.watches.pop(page, None)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


async def _write(page: _Page) -> None:
    """Send the page's frames in order; close it when it was dropped."""
    while True:
        text = await page.frames.get()
        if page.dropped:
            await page.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
            return
        await page.ws.send_str(text)


async def live_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the hub's task, bound to the engine's router; with ``[redis] url``
    and ``[service] pbx_id``, the relay's tasks too (see the module docstring)."""
    hub = app[HUB]
    hub.router = app[ENGINE].router
    settings = app[SETTINGS]
    tasks = [asyncio.create_task(hub.run(), name="live-hub")]
    client = None
    if settings.redis_url and settings.service.pbx_id:
        client = aioredis.Redis.from_url(settings.redis_url.reveal())
        lease = app.get(LEASE)
        hub.lease = lease if lease is not None else _Always()
        relay = hub.relay = LiveRelay(
            client,
            prefix=settings.redis_prefix,
            pbx_id=settings.service.pbx_id,
            mirror=hub,
            may_publish=lambda: not hub.remote,
            wake=hub.wake,
        )
        tasks += [
            asyncio.create_task(relay.run_publisher(), name="live-publisher"),
            asyncio.create_task(relay.run_subscriber(), name="live-subscriber"),
        ]
        if lease is not None:
            tasks.append(asyncio.create_task(_watch(lease, hub), name="live-lease"))
    yield
    for task in reversed(tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if client is not None:
        await client.aclose()


class _Always:
    """The gate of an instance without a lease: always the active."""

    active = True


async def _watch(lease: Lease, hub: LiveHub) -> None:
    """Wake the hub when the lease is taken or lost (its pages switch source)."""
    await lease.became_active.wait()
    hub.wake()
    await lease.stepped_down.wait()
    hub.wake()


async def close_pages(app: web.Application) -> None:
    """``on_shutdown`` (before aiohttp drops the connections): every page is closed with
    GOING_AWAY."""
    for page in list(app[HUB].pages):
        page.dropped = True
        await page.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def new_hub(app: web.Application) -> LiveHub:
    """The app's hub (its sink must go to the engine before the engine starts)."""
    hub = LiveHub(app[SETTINGS], app[CLOCK])
    app[HUB] = hub
    app.on_shutdown.append(close_pages)
    return hub
