"""Every site's router as the wallboard is told it (:func:`hotline.web.live_sites.poll_sites`),
read from a real PostgreSQL: a held lease, one that ran out, a site that never routed."""

from __future__ import annotations

import pytest

from hotline.store.db import Pool
from hotline.store.sites import claim_letter
from hotline.web.live_sites import poll_sites

pytestmark = pytest.mark.integration


async def test_each_site_says_whether_someone_routes_it(pg_pool: Pool) -> None:
    for letter, site in (("A", "north"), ("B", "north"), ("C", "south"), ("E", "east")):
        await claim_letter(pg_pool, letter, site)
    await claim_letter(pg_pool, "Z", "")  # an instance without pbx_id: not a site
    await pg_pool.execute(
        """
        insert into leases (pbx_id, holder, epoch, acquired_at, expires_at) values
            ('north', 'B-boot1', 3, now() - interval '1 hour', now() + interval '1 minute'),
            ('south', 'C-boot2', 7, now() - interval '2 hours', now() - interval '5 seconds'),
            ('west', 'W-boot3', 1, now() - interval '1 day', now() + interval '1 minute')
        """
    )
    sites = {site["pbx_id"]: site for site in await poll_sites(pg_pool)}
    assert list(sites) == ["east", "north", "south", "west"]
    north, south, east, west = sites["north"], sites["south"], sites["east"], sites["west"]
    assert (north["router"], north["instance"], north["epoch"]) == ("active", "B", 3)
    assert north["instances"] == ["A", "B"]
    assert north["since"] is None
    assert north["last_takeover"] is not None
    # Its lease ran out: nobody routes south, since the expiry.
    assert (south["router"], south["instance"], south["holder"]) == ("none", None, None)
    assert south["epoch"] == 7
    assert south["since"] is not None
    # East claimed letters but never held a lease: no router, no epoch.
    assert (east["router"], east["epoch"], east["since"], east["instances"]) == (
        "none",
        None,
        None,
        ["E"],
    )
    # West holds a lease but claimed no letter (a lease row is a site too).
    assert (west["router"], west["instance"], west["instances"]) == ("active", "W", [])
