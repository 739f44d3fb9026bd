"""Several sites on one database: agent ids are unique across the centre (migration
``0013_site_agents.sql``, :func:`hotline.store.sites.claim_agents`), against a real
PostgreSQL and a real ``hotline serve`` process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hotline.store.db import Pool
from hotline.store.sites import AgentConflict, SiteConflict, claim_agents, claim_letter
from tests.support import free_port, run_hotline

pytestmark = pytest.mark.integration


async def _claims(pool: Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("select agent_id, pbx_id from site_agents order by agent_id")
    return [(row["agent_id"], row["pbx_id"]) for row in rows]


async def test_an_agent_id_belongs_to_the_first_site_that_configures_it(pg_pool: Pool) -> None:
    await claim_agents(pg_pool, "north", ["2001", "2002"])
    await claim_agents(pg_pool, "north", ["2002", "2001"])  # the pair's other instance
    await claim_agents(pg_pool, "south", ["3001"])
    with pytest.raises(AgentConflict) as caught:
        await claim_agents(pg_pool, "south", ["3001", "3002", "2002"])
    message = str(caught.value)
    assert "'2002' (site 'north')" in message
    assert "pbx_id 'south'" in message
    assert "unique across the centre" in message
    assert caught.value.clashes == [("2002", "north")]
    assert isinstance(caught.value, SiteConflict)  # serve's exit 2, /ready's "site: ..."
    # The refused claim claimed nothing (3002 stays free) and released nothing (3001).
    assert await _claims(pg_pool) == [("2001", "north"), ("2002", "north"), ("3001", "south")]
    # An instance without pbx_id claims for the site ''.
    await claim_agents(pg_pool, "", ["1001"])
    with pytest.raises(AgentConflict, match=r"'1001' \(no pbx_id\)"):
        await claim_agents(pg_pool, "east", ["1001"])


async def test_an_agent_moves_once_its_old_site_no_longer_configures_it(pg_pool: Pool) -> None:
    await claim_agents(pg_pool, "north", ["2001", "2002"])
    with pytest.raises(AgentConflict):
        await claim_agents(pg_pool, "south", ["2002"])
    await claim_agents(pg_pool, "north", ["2001"])  # north restarted without 2002
    await claim_agents(pg_pool, "south", ["2002"])
    assert await _claims(pg_pool) == [("2001", "north"), ("2002", "south")]


async def test_two_sites_claiming_one_agent_at_once_one_wins(pg_pool: Pool) -> None:
    results = await asyncio.gather(
        claim_agents(pg_pool, "north", [f"{n}" for n in range(4000, 4050)]),
        claim_agents(pg_pool, "south", [f"{n}" for n in range(4049, 4100)]),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, AgentConflict)]
    assert len(refused) == 1, results
    sites = {site for _, site in await _claims(pg_pool)}
    assert len(sites) == 1  # the loser claimed none of its agents


def _config(path: Path, instance: str, pbx_id: str, dsn: str, agent: str, device: str) -> Path:
    path.write_text(
        f'[service]\ninstance = "{instance}"\npbx_id = "{pbx_id}"\n'
        f'http_listen = "127.0.0.1:{free_port()}"\nstate_dir = "{path.parent / pbx_id}"\n'
        f'[ami]\nurl = "ami://hotline:secret@127.0.0.1:{free_port()}"\n'
        f'[database]\nurl = "{dsn}"\n'
        '[[queues]]\nname = "support"\n'
        f'[[agents]]\nid = "{agent}"\ndevice = "{device}"\nqueues = ["support"]\n',
        encoding="utf-8",
    )
    return path


async def test_serve_refuses_a_site_configuring_another_sites_agent_id(
    migrated_database_url: str, pg_pool: Pool, tmp_path: Path
) -> None:
    await claim_letter(pg_pool, "A", "north")
    await claim_agents(pg_pool, "north", ["2001"])
    config = _config(
        tmp_path / "south.toml", "C", "south", migrated_database_url, "2001", "PJSIP/2001"
    )
    env = {**os.environ, "HOTLINE_API_TOKEN": "sites-token"}
    result = await asyncio.to_thread(
        run_hotline, "serve", "--config", str(config), env=env, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "hotline: invalid configuration: [[agents]] of pbx_id 'south'" in result.stderr
    assert "agent id '2001' (site 'north')" in result.stderr
    assert await _claims(pg_pool) == [("2001", "north")]
