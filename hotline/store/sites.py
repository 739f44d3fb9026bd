"""Several sites on one database: which site (``pbx_id``) claims each ticket letter.

Ticket numbers are ``T<date>-<instance letter><sequence>`` and each instance keeps
its own sequence, so two instances numbering with the same letter would hand out
the same numbers. Within one site the operator gives each member of the pair its
own letter; across sites nothing else would notice a repeated letter. So at start
every instance claims its ``[service] instance`` letter for its ``[service]
pbx_id`` in the ``sites`` table (migration ``0008_sites.sql``): the first claim of
a letter wins; a later claim by the same site only refreshes ``last_seen_at``; a
claim by another site is refused with :class:`SiteConflict`, which ``hotline
serve`` reports as an invalid configuration (exit 2). An instance without
``pbx_id`` claims for the site ``''``.

A claim is never released by the service (a letter that numbered tickets stays
spent); moving a letter to another site is an operator's ``delete from sites
where instance = ...`` once the old site is gone for good.
"""

from __future__ import annotations

from typing import Final

from hotline.store.db import Conn, Pool

__all__ = ["SiteConflict", "claim_letter"]

_CLAIM: Final = """
insert into sites as s (instance, pbx_id) values ($1, $2)
on conflict (instance) do update set last_seen_at = now()
    where s.pbx_id = excluded.pbx_id
returning pbx_id
"""


class SiteConflict(RuntimeError):
    """Another site already numbers tickets with this instance letter."""

    def __init__(self, instance: str, pbx_id: str, holder: str) -> None:
        """The message names the letter, both sites and the fix."""
        mine = repr(pbx_id) if pbx_id else "(no pbx_id)"
        theirs = repr(holder) if holder else "an instance without pbx_id"
        super().__init__(
            f"[service] instance {instance!r} (pbx_id {mine}): this ticket letter is already "
            f"claimed by site {theirs} in this database (table sites); two sites with one "
            "letter would hand out the same ticket numbers: give each instance of each site "
            "its own letter"
        )
        self.instance = instance
        self.pbx_id = pbx_id
        self.holder = holder


async def claim_letter(conn: Conn | Pool, instance: str, pbx_id: str) -> None:
    """Claim ``instance`` for ``pbx_id``, or raise :class:`SiteConflict` (see the module
    docstring); idempotent for the site that holds the claim."""
    claimed = await conn.fetchval(_CLAIM, instance, pbx_id)
    if claimed is None:
        holder = await conn.fetchval("select pbx_id from sites where instance = $1", instance)
        raise SiteConflict(instance, pbx_id, str(holder or ""))
