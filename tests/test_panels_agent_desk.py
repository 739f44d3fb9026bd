"""The agent panel's desk in real headless Chromium, against the service and the simulated PBX:
my callbacks due (an overdue one marked, on the panel of the agent it belongs to only), the
screen-pop while the store has not written the call's ticket yet (the tickets table locked by
the test, so the write waits deterministically: the pop shows the call's ticket as pending,
never "no ticket", then the stored one), the complaint form's default committed reply time and
an edited one saved, a repair dispatch saved from the panel and shown on the ticket, the
satisfaction, a search by unit finding the customer and their tickets, the wrap-up countdown
and "ready now", and click-to-call from a search result: the PBX receives the Originate for
the agent's own device first (into ``hotline-outbound``, for the customer's number).

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser. Run alone with ``pytest -m browser``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hotline.domain.effects import CallArrived
from hotline.sim.amiserver import AmiSession
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrivals, Fixed, Scenario
from hotline.store.callbacks import Callbacks
from hotline.store.customers import Customers
from hotline.store.db import create_pool
from hotline.store.tickets import Tickets
from hotline.store.users import Users
from hotline.web.keys import STORE
from tests.api_support import FAST, PASSWORD
from tests.support import CHROMIUM, FLAGS, eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

CALLER = "13900139055"
NAME = "Mrs Lin <img src=x onerror=alert(1)>"
UNIT = "3-501"
OLD_TICKET = "T-OLD-1"
AGENT_DEVICE = "Local/2001@agents"
BEN_DEVICE = "Local/2002@agents"
REPLY_HOURS = 48
TALK = 25.0  # seconds the agent talks (the clock runs at real speed)
WAIT_MS = 30_000  # generous: a loaded machine is slow, the assertion is what appears


def _scenario() -> Scenario:
    """One call from the customer, to an agent who answers in 3 s and talks for TALK s."""
    return Scenario(
        name="agent-desk",
        seed=5,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(count=1, rate_per_minute=60.0, numbers=(CALLER,), patience=Fixed(900.0)),
        agents=(
            AgentGroup(
                (AGENT_DEVICE, BEN_DEVICE),
                AgentBehaviour(answer_delay=Fixed(3.0), talk=Fixed(TALK)),
            ),
        ),
    )


async def _seed(dsn: str) -> tuple[int, int]:
    """Before the service starts: the customer, a closed old ticket of theirs, and an overdue
    callback on it for Ben. Returns the customer's id and the callback's."""
    pool = await create_pool(dsn, max_size=2)
    try:
        customer = await Customers(pool).create(
            phones=[CALLER], name=NAME, household="H-7", unit=UNIT
        )
        tickets = Tickets(pool)
        await tickets.create(
            OLD_TICKET, actor="test", customer_id=customer.id, queue="support", subject="Old leak"
        )
        due = datetime.now(UTC) - timedelta(hours=2)
        callback = await Callbacks(pool).schedule(
            OLD_TICKET, phone=CALLER, due_at=due, actor="test", assigned_to="2002"
        )
        await tickets.update(OLD_TICKET, {"status": "closed"}, actor="test")
    finally:
        await pool.close()
    return customer.id, callback.id


@pytest.fixture
async def seeded(migrated_database_url: str) -> tuple[int, int]:
    return await _seed(migrated_database_url)


@pytest.fixture
async def stack(
    migrated_database_url: str,
    tmp_path: Path,
    seeded: tuple[int, int],  # noqa: ARG001 (the data goes in before the service starts)
) -> AsyncIterator[Stack]:
    running = await start_stack(
        _scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[{"name": "support", "ring_timeout": 30, "wrap_up": 300}],
        agents=[
            {"id": "2001", "device": AGENT_DEVICE, "queues": ["support"]},
            {"id": "2002", "device": BEN_DEVICE, "queues": ["support"]},
        ],
        tickets={"complaint_reply_hours": REPLY_HOURS, "callback_poll_interval": 0.5},
    )
    users = Users(running.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001", display_name="Ann")
    await users.create("ben", PASSWORD, role="agent", agent_id="2002", display_name="Ben")
    try:
        yield running
    finally:
        await running.close()


def _record_originates(stack: Stack) -> list[dict[str, str]]:
    """Every Originate the PBX receives from now on (the sim's own handler still runs)."""
    seen: list[dict[str, str]] = []
    handler = stack.sim.server.handlers["originate"]

    def recording(session: AmiSession, message: Any) -> Any:
        seen.append({name: message.get(name) or "" for name in ("Channel", "Context", "Exten")})
        return handler(session, message)

    stack.sim.server.register("Originate", recording)
    return seen


class Watch:
    """A page's dialogs (an ``alert``) and Content-Security-Policy complaints."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.csp: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("dialog", lambda dialog: self.dialogs.append(dialog.message))
        page.on(
            "console",
            lambda message: (
                self.csp.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )


async def _sign_in(browser: Browser, stack: Stack, username: str, watch: Watch) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 1400}, timezone_id="UTC")
    page = await context.new_page()
    watch.attach(page)
    await page.goto(f"{stack.base_url}/login?lang=en")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url("**/agent")
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    return page


async def test_the_agent_desk_in_chromium(
    stack: Stack, seeded: tuple[int, int], migrated_database_url: str, tmp_path: Path
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await _desk_in_browser(stack, browser, seeded, migrated_database_url, tmp_path)
        finally:
            await browser.close()


async def _desk_in_browser(
    stack: Stack, browser: Browser, seeded: tuple[int, int], dsn: str, shots: Path
) -> None:
    """The steps of the module docstring; a screenshot of the panel into ``shots``."""
    customer_id, bens_callback = seeded
    watch = Watch()
    originates = _record_originates(stack)

    # My callbacks due: Ben's overdue callback, marked, on his panel only.
    ben = await _sign_in(browser, stack, "ben", watch)
    line = ben.locator(f'#callbacks-due li[data-callback="{bens_callback}"]')
    await expect(line).to_have_class(re.compile(r"\boverdue\b"), timeout=WAIT_MS)
    await expect(line.locator(".flag")).to_have_text("Overdue")
    await expect(line).to_contain_text(OLD_TICKET)
    await ben.context.close()
    ann = await _sign_in(browser, stack, "ann", watch)
    await expect(ann.locator("#callbacks-none")).to_be_visible(timeout=WAIT_MS)
    assert await ann.locator("#callbacks-due li").count() == 0

    await ann.click("#ready")
    await expect(ann.locator("#state")).to_have_text("Ready", timeout=WAIT_MS)
    ticket = await _pop_before_the_ticket_is_stored(stack, ann, dsn)
    await _complaint_and_repair(stack, ann, ticket)
    await _search_by_unit(ann, customer_id, ticket)

    # The wrap-up counts down; "ready now" ends it.
    await expect(ann.locator("#state")).to_have_text("Wrap-up", timeout=60_000)
    await expect(ann.locator("#wrap-up")).to_be_visible()
    first = await _seconds_left(ann)
    await eventually(lambda: _counted_down(ann, first), what="the wrap-up counting down")
    await ann.click("#ready-now")
    await expect(ann.locator("#state")).to_have_text("Ready", timeout=WAIT_MS)
    await expect(ann.locator("#wrap-up")).to_be_hidden()

    # Click-to-call from the search result: the agent's own phone is rung first.
    before = len(originates)
    result = ann.locator(f'#search-customers .their-tickets li[data-number="{ticket}"]')
    await result.locator("button.call").click()
    await expect(ann.locator("#call-result")).to_have_text(
        f"Calling {CALLER}: your phone rings first", timeout=WAIT_MS
    )
    await eventually(lambda: len(originates) > before, what="the click-to-call Originate")
    assert originates[before] == {
        "Channel": AGENT_DEVICE,
        "Context": "hotline-outbound",
        "Exten": CALLER,
    }
    # The agent's phone rings for the callback: the pop shows the customer again.
    await expect(ann.locator("#pop-unit")).to_have_text(UNIT, timeout=WAIT_MS)
    await ann.screenshot(path=str(shots / "panel-agent-desk.png"), full_page=True)

    assert await ann.locator("img").count() == 0  # the caller's name is text, never markup
    assert watch.dialogs == []
    assert watch.csp == []


async def _pop_before_the_ticket_is_stored(stack: Stack, ann: Page, dsn: str) -> str:
    """The call's new ticket is numbered by the router at once; its row is written by the
    outbox, which waits here on the test's lock of the tickets table."""
    conn = await asyncpg.connect(dsn)
    lock = conn.transaction()
    await lock.start()
    try:
        await conn.execute("lock table tickets in exclusive mode")
        stack.sim.start_arrivals()
        await eventually(
            lambda: any(isinstance(fact, CallArrived) for fact in stack.facts),
            what="the call arriving",
        )
        [arrived] = [fact for fact in stack.facts if isinstance(fact, CallArrived)]
        ticket = arrived.ticket
        await expect(ann.locator("#pop-name")).to_have_text(NAME, timeout=WAIT_MS)
        await expect(ann.locator("#ticket-number")).to_have_text(ticket)
        await expect(ann.locator("#pop-pending")).to_have_text(f"Ticket {ticket} is being stored…")
        assert await conn.fetchval("select count(*) from tickets where number = $1", ticket) == 0
        assert await ann.locator(f'#pop-open li[data-number="{ticket}"]').count() == 0
    finally:
        await lock.rollback()
        await conn.close()
    # Stored now: the pop, asking again, shows it as the caller's open ticket.
    await expect(ann.locator(f'#pop-open li[data-number="{ticket}"]')).to_have_count(
        1, timeout=WAIT_MS
    )
    await expect(ann.locator("#pop-pending")).to_be_hidden()
    await expect(ann.locator("#ticket-number")).to_have_text(ticket)
    return ticket


async def _complaint_and_repair(stack: Stack, ann: Page, ticket: str) -> None:
    tickets = stack.app[STORE].tickets
    opened = (await tickets.get(ticket)).opened_at
    default = (opened + timedelta(hours=REPLY_HOURS)).astimezone(UTC)

    # A complaint: the committed reply time defaults from the rule, and an edited one is kept.
    await ann.select_option("#ticket-category", "complaint")
    await expect(ann.locator("#ticket-due")).to_have_value(default.strftime("%Y-%m-%dT%H:%M"))
    await expect(ann.locator("#ticket-due-rule")).to_contain_text(f"{REPLY_HOURS} h")
    await expect(ann.locator("#ticket-repair")).to_be_hidden()
    await ann.fill("#ticket-subject", "Neighbour's noise <b>again</b>")
    await ann.fill("#ticket-due", "2030-01-02T10:30")
    await ann.select_option("#ticket-satisfaction", "4")
    await ann.click("#ticket-save")
    await expect(ann.locator("#ticket-result")).to_have_text(f"Saved: {ticket}", timeout=WAIT_MS)
    saved = await tickets.get(ticket)
    assert saved.category == "complaint"
    assert saved.due_at == datetime(2030, 1, 2, 10, 30, tzinfo=UTC)
    assert saved.satisfaction == 4
    assert saved.subject == "Neighbour's noise <b>again</b>"

    # A repair dispatched from the panel: the party, due time and contact show on the ticket.
    await ann.select_option("#ticket-category", "repair")
    await expect(ann.locator("#ticket-repair")).to_be_visible()
    await expect(ann.locator("#ticket-complaint")).to_be_hidden()
    await ann.select_option("#dispatch-party", "equipment_vendor")
    await ann.fill("#dispatch-due", "2030-01-03T09:00")
    await ann.fill("#dispatch-contact", "Lift Co <555-0101>")
    await ann.click("#ticket-save")
    await expect(ann.locator("#ticket-result")).to_have_text(f"Saved: {ticket}", timeout=WAIT_MS)
    await expect(ann.locator("#ticket-dispatched")).to_contain_text("Equipment vendor")
    await expect(ann.locator("#ticket-dispatched")).to_contain_text("Lift Co <555-0101>")
    dispatched = await tickets.get(ticket)
    assert (dispatched.category, dispatched.status) == ("repair", "dispatched")
    assert dispatched.dispatch_party == "equipment_vendor"
    assert dispatched.dispatch_contact == "Lift Co <555-0101>"
    assert dispatched.dispatch_due_at == datetime(2030, 1, 3, 9, 0, tzinfo=UTC)


async def _search_by_unit(ann: Page, customer_id: int, ticket: str) -> None:
    await ann.fill("#search-q", UNIT)
    await ann.click("#search-go")
    found = ann.locator(f'#search-customers li[data-customer="{customer_id}"]')
    await expect(found.locator(".name")).to_have_text(NAME, timeout=WAIT_MS)
    theirs = found.locator(".their-tickets li")
    await expect(theirs).to_have_count(2)
    await expect(found.locator(f'.their-tickets li[data-number="{ticket}"]')).to_contain_text(
        "Repair · Dispatched"
    )
    await expect(found.locator(f'.their-tickets li[data-number="{OLD_TICKET}"]')).to_contain_text(
        "Old leak"
    )
    # By the caller's phone number: the customer and their tickets.
    await ann.fill("#search-q", CALLER)
    await ann.click("#search-go")
    await expect(found.locator(f'.their-tickets li[data-number="{ticket}"]')).to_have_count(
        1, timeout=WAIT_MS
    )
    # By the ticket's number, too.
    await ann.fill("#search-q", OLD_TICKET)
    await ann.click("#search-go")
    await expect(ann.locator(f'#search-tickets li[data-number="{OLD_TICKET}"]')).to_have_count(
        1, timeout=WAIT_MS
    )
    await ann.fill("#search-q", UNIT)
    await ann.click("#search-go")
    await expect(found.locator(".their-tickets li")).to_have_count(2, timeout=WAIT_MS)


async def _seconds_left(page: Page) -> int:
    text = await page.locator("#wrap-up-left").text_content() or ""
    match = re.search(r"(\d+) s left", text)
    assert match, text
    return int(match.group(1))


async def _counted_down(page: Page, first: int) -> bool:
    return await _seconds_left(page) < first
