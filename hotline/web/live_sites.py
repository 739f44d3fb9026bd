"""Several sites on the live feed: one site or the whole centre, and every site's router.

Theory of operation
-------------------
A page asks for sites with ``GET /api/live?site=<pbx_id>`` (one site) or
``?site=*`` (the whole centre); without ``site`` it gets exactly the feed it got
before sites existed: this instance's own site (its *home*), and no ``sites``
frames. Agents may ask only for their home site (403 otherwise): another site's
callers are none of their business. An unknown site is 422.

- **The home site** comes from the :class:`~hotline.web.live.LiveHub` as before
  (its own router when active, its mirror of the active's views when standby);
  its frames carry no ``site`` key. A page that does not watch its home site gets
  that hub's frames empty (``_Page.home`` is false).
- **Other sites** come from their actives through Redis: for each other
  ``pbx_id`` it knows of, the instance runs a subscriber-only
  :class:`~hotline.web.live_relay.LiveRelay` (it never publishes there) into a
  :class:`_SiteMirror`, which sends the pages watching that site frames of the
  same shape with ``"site": "<pbx_id>"``: a ``snapshot`` (that site's queues and
  agents replace what the page holds *for that site only*) or a ``delta``. They
  share the page's ``seq`` with the home frames, so a gap is still a gap.
- **Every site's router** is polled from PostgreSQL every :data:`POLL_INTERVAL`
  wall seconds: the sites (``sites`` and ``leases``), each site's lease (holder,
  epoch, taken at, expiry by the database's clock) and claimed instance letters.
  A ``{"type": "sites", ...}`` frame goes to the pages that asked for sites when
  it changes: per site ``router`` (``active``, or ``none`` when its lease is
  missing or ran out: nobody routes that PBX), the active instance's letter, the
  epoch and the last takeover; and this instance's own ``role``. A poll that
  fails says ``database: false`` (the last known sites are kept, unverified).

The sites known are those of the last poll, plus the home site; a site that
appears later (a new site's first start) is subscribed to at the next poll.
Queue filters (``?queues=``) apply by name to every site shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from hotline.config import Settings
from hotline.web.errors import json_error
from hotline.web.keys import SETTINGS, STORE
from hotline.web.live_relay import LiveRelay
from hotline.web.ready import router_status

if TYPE_CHECKING:
    from hotline.store.db import Pool
    from hotline.web.live import LiveHub, _Page

__all__ = [
    "ALL_SITES",
    "POLL_INTERVAL",
    "SITE_FEEDS",
    "SiteFeeds",
    "Watch",
    "poll_sites",
    "sites_context",
]

log = structlog.get_logger("hotline.web.live_sites")

ALL_SITES: Final = "*"
"""``?site=*``: the whole centre."""
POLL_INTERVAL: Final = 1.0
"""Wall seconds between two reads of the sites' leases."""

_SITES: Final = """
select s.pbx_id, l.holder, l.epoch, l.acquired_at, l.expires_at,
       coalesce(l.expires_at >= now(), false) as held,
       coalesce((select array_agg(x.instance order by x.instance) from sites x
                 where x.pbx_id = s.pbx_id), '{}') as instances
from (select pbx_id from sites where pbx_id <> '' union select pbx_id from leases) s
left join leases l on l.pbx_id = s.pbx_id
order by s.pbx_id
"""

View = dict[str, Any]


@dataclass(frozen=True)
class Watch:
    """What one page asked for: its home site or not, and which other sites."""

    home: bool
    others: frozenset[str] | None
    """Other sites watched; None: every other site (the whole centre)."""
    queues: frozenset[str] | None
    """The queue names asked for (None: every queue)."""

    def covers(self, site: str) -> bool:
        """True when the page shows ``site`` (another site than its home)."""
        return self.others is None or site in self.others

    def shows(self, queue: str) -> bool:
        """True when the page shows queues named ``queue``."""
        return self.queues is None or queue in self.queues


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def poll_sites(pool: Pool) -> list[dict[str, Any]]:
    """Every site's router as the database says: ``pbx_id``, ``router`` (``active`` or
    ``none``), ``instance`` (the active's letter), ``holder``, ``epoch``,
    ``last_takeover``, ``since`` (when a site without router lost it) and ``instances``
    (the letters claimed for the site)."""
    rows = await pool.fetch(_SITES)
    sites = []
    for row in rows:
        holder = row["holder"] if row["held"] else None
        sites.append(
            {
                "pbx_id": row["pbx_id"],
                "router": "active" if holder else "none",
                "instance": holder.partition("-")[0] if holder else None,
                "holder": holder,
                "epoch": row["epoch"],
                "last_takeover": _iso(row["acquired_at"]),
                "since": None if holder else _iso(row["expires_at"]),
                "instances": list(row["instances"]),
            }
        )
    return sites


class _SiteMirror:
    """Another site's views (from its active, through Redis); forwards them to pages."""

    def __init__(self, feeds: SiteFeeds, pbx_id: str) -> None:
        self.feeds = feeds
        self.pbx_id = pbx_id
        self.queues: dict[str, View] = {}
        self.agents: dict[str, View] = {}

    def apply_remote(self, queues: dict[str, View], agents: dict[str, View], *, full: bool) -> None:
        """Take the site's views; the pages watching it get a snapshot or a delta."""
        if full:
            self.queues, self.agents = dict(queues), dict(agents)
        else:
            self.queues.update(queues)
            self.agents.update(agents)
        for page, watch in list(self.feeds.watches.items()):
            if watch.covers(self.pbx_id):
                self.send(page, watch, queues, agents, snapshot=full)

    def send(
        self,
        page: _Page,
        watch: Watch,
        queues: dict[str, View],
        agents: dict[str, View],
        *,
        snapshot: bool,
    ) -> None:
        """One frame of these views for ``page`` (a delta with nothing in it is not sent)."""
        shown = [queues[name] for name in sorted(queues) if watch.shows(name)]
        tiles = [view for _, view in sorted(agents.items())]
        if snapshot or shown or tiles:
            kind = "snapshot" if snapshot else "delta"
            self.feeds.send(
                page, {"type": kind, "site": self.pbx_id, "queues": shown, "agents": tiles}
            )


class SiteFeeds:
    """One instance's view of the other sites and of every site's router."""

    def __init__(
        self,
        hub: LiveHub,
        settings: Settings,
        app: web.Application,
        client: aioredis.Redis | None,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.app = app
        self.home = settings.service.pbx_id
        self.client = client
        self.watches: weakref.WeakKeyDictionary[_Page, Watch] = weakref.WeakKeyDictionary()
        self.mirrors: dict[str, _SiteMirror] = {}
        self.sites: list[dict[str, Any]] = []
        self.database = True
        self.status: dict[str, Any] = {}
        self.polls = 0
        self._tasks: list[asyncio.Task[None]] = []

    # -- what a page may ask for -------------------------------------------------------

    def known(self) -> set[str]:
        """The sites a page may ask for: the home site and those of the last poll."""
        return {self.home} | {site["pbx_id"] for site in self.sites}

    def selection(self, request: web.Request, supervising: bool) -> Watch | None:
        """The page's ``?site=``: None when absent (the feed as before sites), else what it
        watches; 403 for an agent asking for another site, 422 for an unknown one."""
        asked = request.query.get("site")
        if asked is None:
            return None
        asked = asked.strip()
        if asked != ALL_SITES and asked not in self.known():
            raise json_error(422, "validation", fields={"site": f"unknown site {asked!r}"})
        if not supervising and asked != self.home:
            raise json_error(403, "forbidden", message="this feed shows your own site only")
        names = request.query.get("queues", "")
        queues = frozenset(n.strip() for n in names.split(",") if n.strip()) or None
        if asked == ALL_SITES:
            return Watch(home=True, others=None, queues=queues)
        return Watch(
            home=asked == self.home, others=frozenset({asked}) - {self.home}, queues=queues
        )

    def known_queues(self) -> set[str]:
        """Queue names the other sites' mirrors hold (a ``?queues=`` may name them)."""
        return {name for mirror in self.mirrors.values() for name in mirror.queues}

    # -- the pages ---------------------------------------------------------------------

    def watch(self, page: _Page, watch: Watch) -> None:
        """Register ``page``: it gets the other sites' snapshots and the sites frame now."""
        self.watches[page] = watch
        self.snapshot(page)

    def snapshot(self, page: _Page) -> None:
        """Queue, for ``page``, a snapshot of every other site it watches and the sites."""
        watch = self.watches.get(page)
        if watch is None:
            return
        for site, mirror in sorted(self.mirrors.items()):
            if watch.covers(site):
                mirror.send(page, watch, mirror.queues, mirror.agents, snapshot=True)
        if not self.status:  # no poll has finished yet
            self.status = self._status()
        self.send(page, {"type": "sites", **self.status})

    def send(self, page: _Page, frame: dict[str, Any]) -> None:
        """Queue ``frame`` (with the page's next ``seq`` and the time) like the hub's frames;
        a page whose buffer is full is dropped by the hub."""
        if page.dropped:
            return
        page.seq += 1
        text = json.dumps({**frame, "seq": page.seq, "at": self.hub.clock.now()})
        try:
            page.frames.put_nowait(text)
        except asyncio.QueueFull:
            self.hub.drop(page)

    # -- the sites' routers ------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        mine = router_status(self.app)
        instance = {**mine, "instance": self.settings.service.instance}
        sites = [dict(site) for site in self.sites]
        if self.home and mine["role"] == "active":  # what this instance knows first-hand
            sites = [
                {**site, "router": "active", "instance": self.settings.service.instance}
                if site["pbx_id"] == self.home
                else site
                for site in sites
            ]
        return {"home": self.home, "database": self.database, "instance": instance, "sites": sites}

    async def poll(self) -> None:
        """Read the sites once; subscribe to new ones; tell the pages when anything changed."""
        self.polls += 1
        pool = self.app[STORE].pool if STORE in self.app else None
        if pool is not None:
            try:
                async with asyncio.timeout(max(POLL_INTERVAL * 2, 2.0)):
                    self.sites = await poll_sites(pool)
                self.database = True
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.database = False
                log.warning("web.sites_poll_failed", error=f"{type(exc).__name__}: {exc}")
        for site in self.sites:
            self._subscribe(site["pbx_id"])
        status = self._status()
        if status != self.status:
            self.status = status
            for page in list(self.watches):
                self.send(page, {"type": "sites", **status})

    def _subscribe(self, pbx_id: str) -> None:
        if pbx_id == self.home or pbx_id in self.mirrors or self.client is None:
            return
        mirror = self.mirrors[pbx_id] = _SiteMirror(self, pbx_id)
        relay = LiveRelay(
            self.client,
            prefix=self.settings.redis_prefix,
            pbx_id=pbx_id,
            mirror=mirror,
            may_publish=lambda: False,  # another site's feed: read only
            wake=lambda: None,
        )
        self._tasks.append(asyncio.create_task(relay.run_subscriber(), name=f"live-site-{pbx_id}"))

    async def run(self) -> None:
        """Poll every :data:`POLL_INTERVAL` wall seconds, until cancelled."""
        while True:
            await self.poll()
            await asyncio.sleep(POLL_INTERVAL)

    async def close(self) -> None:
        """Stop the subscribers."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await task
        self._tasks.clear()


SITE_FEEDS: Final = web.AppKey("site_feeds", SiteFeeds)


async def sites_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` (after the live hub's): the other sites' feeds and the sites' poll,
    for an instance with ``[service] pbx_id`` (which has a database); with ``[redis] url``,
    the other sites' views too."""
    from hotline.web.live import HUB

    settings = app[SETTINGS]
    if not settings.service.pbx_id:
        yield
        return
    client = aioredis.Redis.from_url(settings.redis_url.reveal()) if settings.redis_url else None
    feeds = app[SITE_FEEDS] = SiteFeeds(app[HUB], settings, app, client)
    with contextlib.suppress(TimeoutError):  # a database down at start: the task retries
        async with asyncio.timeout(3.0):
            await feeds.poll()
    task = asyncio.create_task(feeds.run(), name="live-sites")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feeds.close()
        if client is not None:
            await client.aclose()
