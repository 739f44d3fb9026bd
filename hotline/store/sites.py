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

Agent ids, likewise, are unique across the centre: ``users``, ``agent_states`` and
``agent_state_log`` are keyed by them, so two sites configuring agent ``2001``
would share one persisted state and one line in the reports. At start every
instance claims its configured agent ids for its site in ``site_agents``
(migration ``0010_site_agents.sql``), in one transaction: an id another site
claims refuses the start (:class:`AgentConflict`, a :class:`SiteConflict`, so
exit 2 too) and claims nothing. A site's claims are the agents it last started
with: the ids it no longer configures are released by the same transaction.
Devices are not claimed: ``PJSIP/2001`` names a channel of its own PBX, so the
same text at two sites names two phones, and no record is keyed by it.
"""

from __future__ import annotations

from typing import Final

from hotline.store.db import Conn, Pool

__all__ = ["AgentConflict", "SiteConflict", "claim_agents", "claim_letter"]

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


_AGENT_CLASHES: Final = """
select a.agent_id, a.pbx_id from site_agents a
where a.agent_id = any($1::text[]) and a.pbx_id <> $2
order by a.agent_id
for share
"""
_CLAIM_AGENTS: Final = """
insert into site_agents as a (agent_id, pbx_id) select unnest($1::text[]), $2
on conflict (agent_id) do update set last_seen_at = now() where a.pbx_id = excluded.pbx_id
returning agent_id
"""
_RELEASE_AGENTS: Final = """
delete from site_agents where pbx_id = $2 and not (agent_id = any($1::text[]))
"""


class AgentConflict(SiteConflict):
    """Another site already configures one of this site's agent ids."""

    def __init__(self, pbx_id: str, clashes: list[tuple[str, str]]) -> None:
        """``clashes``: (agent id, the site that claims it), sorted; the message names the
        first few, both sites and the fix."""
        mine = repr(pbx_id) if pbx_id else "(no pbx_id)"
        named = ", ".join(
            f"{agent_id!r} (site {holder!r})" if holder else f"{agent_id!r} (no pbx_id)"
            for agent_id, holder in clashes[:5]
        )
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        RuntimeError.__init__(
            self,
            f"[[agents]] of pbx_id {mine}: agent id {named}{more} already configured by another "
            "site in this database (table site_agents); agent ids are unique across the centre "
            "(users and agents' states are keyed by them): give each site's agents their own "
            "ids, or remove the agent from the other site's configuration and restart it first",
        )
        self.instance = ""
        self.pbx_id = pbx_id
        self.holder = clashes[0][1] if clashes else ""
        self.clashes = clashes


async def claim_agents(pool: Pool, pbx_id: str, agent_ids: list[str]) -> None:
    """Claim ``agent_ids`` for ``pbx_id`` and release the site's other claims, in one
    transaction; raise :class:`AgentConflict` (claiming nothing) when another site claims
    any of them (see the module docstring)."""
    wanted = sorted(set(agent_ids))
    async with pool.acquire() as conn, conn.transaction():
        clashes = await conn.fetch(_AGENT_CLASHES, wanted, pbx_id)
        if not clashes:
            claimed = await conn.fetch(_CLAIM_AGENTS, wanted, pbx_id)
            if len(claimed) < len(wanted):  # another site claimed one meanwhile (committed)
                clashes = await conn.fetch(_AGENT_CLASHES, wanted, pbx_id)
        if clashes:  # raising rolls the transaction back: nothing is claimed
            raise AgentConflict(pbx_id, [(r["agent_id"], r["pbx_id"]) for r in clashes])
        await conn.execute(_RELEASE_AGENTS, wanted, pbx_id)
