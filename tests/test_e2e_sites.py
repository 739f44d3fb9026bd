"""End to end: two sites (two sims, two services with their own ``pbx_id``) on one database.

Each site is a simulated PBX with its own ``systemname`` and a service with its own
``[service] pbx_id`` and ticket letter, holding its own lease; both record into one
PostgreSQL database. Callers draw their numbers from one pool, so many customers
call both sites. Checked against each sim's ground truth and through the JSON API.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hotline.domain.model import Activity
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    LogNormal,
    Scenario,
    Uniform,
)
from hotline.web.keys import LEASE, STORE
from tests.support import OUTCOMES, devices, eventually, ground_truth_calls, hold, wait_settled

pytestmark = pytest.mark.e2e

SHARED_NUMBERS = tuple(f"1390000{n:04d}" for n in range(90))
"""The numbers both sites' callers draw from: most customers call both."""

SITES = {"site-a": ("A", "pbx-a", 41, 2001), "site-b": ("C", "pbx-b", 42, 3001)}
"""pbx_id -> (ticket letter, Asterisk systemname, scenario seed, first agent extension).
Agent ids are unique across the centre: users and agents' states are shared."""


def site_scenario(seed: int, first_agent: int) -> Scenario:
    """Eighty callers over four minutes, six agents (some miss rings), impatient callers."""
    return Scenario(
        name=f"sites-{seed}",
        seed=seed,
        arrivals=Arrivals(
            count=80,
            rate_per_minute=20,
            start_after=1.0,
            numbers=SHARED_NUMBERS,
            repeat_share=0.2,
            patience=LogNormal(mean=45.0, sigma=0.5),
        ),
        agents=(
            AgentGroup(
                devices(first_agent, first_agent + 5),
                AgentBehaviour(
                    answer_delay=Uniform(1.0, 4.0), no_answer=0.1, talk=Uniform(20.0, 60.0)
                ),
            ),
        ),
    )


async def start_site(pbx_id: str, dsn: str, tmp_path: Path) -> Stack:
    """One site: its sim and its service (its own letter, lease and state directory)."""
    letter, system_name, seed, first_agent = SITES[pbx_id]
    state = tmp_path / pbx_id
    state.mkdir()
    return await start_stack(
        site_scenario(seed, first_agent),
        database_url=dsn,
        state_dir=str(state),
        tickets={"attach": "never"},  # one ticket per call: numbers are checked one by one
        # A long lease: the test process is busy for seconds at a time on a loaded machine.
        service={"instance": letter, "pbx_id": pbx_id, "lease_ttl": 30},
        system_name=system_name,
    )


def is_active(stack: Stack) -> bool:
    """The site's service holds its PBX's lease."""
    return stack.app[LEASE].role == "active"


async def drain(stack: Stack) -> None:
    """Every wrap-up has ended (its record is written too), then the outbox is empty."""
    agents = stack.engine.router.agents.values()
    await eventually(
        lambda: all(a.activity is not Activity.WRAP_UP for a in agents), what="wrap-ups ended"
    )
    with hold(stack.clock):
        assert await stack.app[STORE].outbox.flush(60), "the outbox did not drain"


async def rows(dsn: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Every call (with its ticket and customer) and every offer, with their sites."""
    conn = await asyncpg.connect(dsn)
    try:
        calls = await conn.fetch(
            """
            select c.call_id, c.pbx_id, c.caller_number, c.outcome, c.customer_id,
                   t.number as ticket
            from calls c join tickets t on t.id = c.ticket_id
            """
        )
        offers = await conn.fetch("select offer_id, call_id, pbx_id from call_offers")
        assert await conn.fetchval("select count(*) from fenced_writes") == 0
    finally:
        await conn.close()
    return calls, offers


async def api_get(stack: Stack, path: str, **params: Any) -> Any:
    """GET ``path`` with the integration token; the decoded JSON."""
    async with stack.session.get(
        f"{stack.base_url}{path}",
        params={k: str(v) for k, v in params.items()},
        headers={"Authorization": f"Bearer {stack.token}"},
    ) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def check_site_against_ground_truth(
    pbx_id: str, stack: Stack, calls: list[asyncpg.Record], offers: list[asyncpg.Record]
) -> None:
    """The site's calls and offers are exactly its sim's, with its outcomes and its letter."""
    letter, system_name, _, _ = SITES[pbx_id]
    truth = ground_truth_calls(stack)
    ours = {row["call_id"]: row for row in calls if row["pbx_id"] == pbx_id}
    assert set(ours) == set(truth), f"{pbx_id}: the calls recorded are the sim's calls"
    assert all(call_id.startswith(f"{system_name}-") for call_id in ours)
    expected = Counter(OUTCOMES[(r["outcome"], r["abandoned_while"])].value for r in truth.values())
    assert Counter(row["outcome"] for row in ours.values()) == expected
    assert all(row["ticket"].split("-")[1].startswith(letter) for row in ours.values())
    rings = sum(1 for r in stack.sim.ground_truth if r["type"] == "ring")
    rings += sum(len(r["rings"]) for r in truth.values())
    site_offers = [o for o in offers if o["pbx_id"] == pbx_id]
    assert len(site_offers) == rings, f"{pbx_id}: one offer row per ring"
    assert all(o["call_id"] in ours for o in site_offers)


async def test_two_sites_on_one_database_unique_tickets_shared_customers_per_site_counts(
    migrated_database_url: str, tmp_path: Path
) -> None:
    stacks = {pbx_id: await start_site(pbx_id, migrated_database_url, tmp_path) for pbx_id in SITES}
    try:
        for pbx_id, stack in stacks.items():
            await eventually(partial(is_active, stack), what=f"{pbx_id} holds its lease")
            await stack.login_all()
        for stack in stacks.values():
            stack.sim.start_arrivals()
        for stack in stacks.values():
            await wait_settled(stack, timeout=240)
        for stack in stacks.values():
            await drain(stack)
        calls, offers = await rows(migrated_database_url)

        assert len(calls) == sum(len(ground_truth_calls(s)) for s in stacks.values())
        for pbx_id, stack in stacks.items():
            check_site_against_ground_truth(pbx_id, stack, calls, offers)
        # Every ticket number is unique: one ticket per call, and no ticket of two sites.
        assert len({row["ticket"] for row in calls}) == len(calls)

        # A customer who called both sites has one file, with the tickets of both.
        sites_by_number: defaultdict[str, set[str]] = defaultdict(set)
        customers_by_number: defaultdict[str, set[int]] = defaultdict(set)
        for row in calls:
            sites_by_number[row["caller_number"]].add(row["pbx_id"])
            customers_by_number[row["caller_number"]].add(row["customer_id"])
        both = sorted(n for n, sites in sites_by_number.items() if sites == set(SITES))
        assert len(both) >= 20, "the scenario has customers calling both sites"
        assert all(len(customers_by_number[n]) == 1 for n in sites_by_number)
        stack = stacks["site-a"]  # either service shows the whole centre
        for number in both[:5]:
            found = await api_get(stack, "/api/customers", q=number)
            assert [c["id"] for c in found] == list(customers_by_number[number])
            customer_id = found[0]["id"]
            page = await api_get(stack, "/api/tickets", customer=customer_id, limit=200)
            mine = sorted(row["ticket"] for row in calls if row["caller_number"] == number)
            assert sorted(t["number"] for t in page["items"]) == mine
            letters = {t["number"].split("-")[1][0] for t in page["items"]}
            assert letters == {"A", "C"}
            only_b = await api_get(stack, "/api/tickets", customer=customer_id, site="site-b")
            assert {t["number"].split("-")[1][0] for t in only_b["items"]} == {"C"}
            ticket = only_b["items"][0]["number"]
            ticket_calls = await api_get(stack, f"/api/tickets/{ticket}/calls")
            assert [c["site"] for c in ticket_calls] == ["site-b"]
            assert await api_get(stack, f"/api/tickets/{ticket}/calls", site="site-a") == []

        # The ticket listing per site counts each sim's calls (one ticket per call).
        for pbx_id, site_stack in stacks.items():
            page = await api_get(stack, "/api/tickets", site=pbx_id, limit=1)
            assert page["total"] == len(ground_truth_calls(site_stack))
    finally:
        for stack in stacks.values():
            await stack.close()
