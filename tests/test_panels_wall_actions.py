"""The wallboard's alerts and actions in real headless Chromium, against the service and the
simulated PBX (hotline/sim/harness.py): callers waiting with nobody available raise an alert on
the wallboard that clears when an agent goes ready; a supervisor raises a waiting caller's
priority and moves another to the billing queue, whose agent is rung for them; the agent asks
for a supervisor from the panel, the alert shows on the wallboard, and its whisper button makes
the PBX receive the ChanSpy Originate for the supervisor's own device; every action shows in
the audit-log viewer.

Screenshot (the wallboard with an agent's request): into docs/ only with
``HOTLINE_SCREENSHOTS=1`` (as tests/test_panels_browser.py does).

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser. Run alone with ``pytest -m browser``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hotline.domain.effects import OfferStarted
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    Fixed,
    Scenario,
    SupervisorBehaviour,
)
from hotline.store.users import Users
from hotline.web.keys import STORE
from tests.api_support import FAST, PASSWORD
from tests.support import CHROMIUM, FLAGS, eventually
from tests.test_panels_browser import screenshot_dir

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

AGENT_DEVICE = "Local/2001@agents"
BILLING_DEVICE = "Local/3001@agents"
SUPERVISOR_DEVICE = "Local/9001@supervisors"
WAIT_MS = 20_000  # generous: a loaded machine is slow, the assertion is what appears


def _scenario() -> Scenario:
    """Two patient callers for support; agents answer in 3 s and talk 10 min."""
    return Scenario(
        name="wall-actions",
        seed=11,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(count=2, rate_per_minute=60.0, patience=Fixed(900.0)),
        agents=(
            AgentGroup(
                (AGENT_DEVICE, BILLING_DEVICE),
                AgentBehaviour(answer_delay=Fixed(3.0), talk=Fixed(600.0)),
            ),
        ),
        supervisors=SupervisorBehaviour(listen=Fixed(600.0)),
    )


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        _scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[
            {"name": "support", "ring_timeout": 30, "wrap_up": 5},
            {"name": "billing", "ring_timeout": 30, "wrap_up": 5},
        ],
        agents=[
            {"id": "2001", "device": AGENT_DEVICE, "queues": ["support"]},
            {"id": "3001", "device": BILLING_DEVICE, "queues": ["billing"]},
        ],
    )
    users = Users(running.app[STORE].pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001", display_name="Ann")
    await users.create("sam", PASSWORD, role="supervisor", device=SUPERVISOR_DEVICE)
    await users.create("root", PASSWORD, role="admin")
    try:
        yield running
    finally:
        await running.close()


async def _sign_in(browser: Browser, base_url: str, username: str, dialogs: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{base_url}/login?lang=en")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    return page


def _spied(stack: Stack, data: str) -> bool:
    return any(
        spy.data == data and name.startswith(SUPERVISOR_DEVICE)
        for name, channel in stack.sim.channels.items()
        for spy in channel.spies
    )


def _rung(stack: Stack, agent_id: str) -> list[OfferStarted]:
    return [f for f in stack.facts if isinstance(f, OfferStarted) and f.agent_id == agent_id]


async def test_wallboard_alerts_and_actions_in_chromium(stack: Stack, tmp_path: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await _scenario_in_browser(stack, browser, screenshot_dir(tmp_path))
        finally:
            await browser.close()


async def _scenario_in_browser(stack: Stack, browser: Browser, shots: Path) -> None:
    dialogs: list[str] = []
    board = await _sign_in(browser, stack.base_url, "sam", dialogs)
    await board.wait_for_url("**/wallboard")
    await expect(board.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    await expect(board.locator("#alerts-none")).to_be_visible()

    # Callers with nobody available: the alert shows.
    stack.sim.start_arrivals()
    support = board.locator('[data-queue="support"]')
    await expect(support.locator("tbody tr")).to_have_count(2, timeout=WAIT_MS)
    nobody = board.locator('#alert-list li[data-kind="nobody_available"]')
    await expect(nobody).to_have_count(1, timeout=WAIT_MS)
    await expect(nobody).to_contain_text("support")
    await expect(support).to_have_class("card queue alert")

    # Move the first caller to billing: billing's agent is rung for them.
    await stack.agent("login", "3001")
    first = support.locator("tbody tr").first
    moved = await first.get_attribute("data-call")
    await first.locator('button.move[data-to="billing"]').click()
    await expect(board.locator("#action-result")).to_have_text("→ billing: sent", timeout=WAIT_MS)
    await eventually(
        lambda: any(offer.call_id == moved for offer in _rung(stack, "3001")),
        what="billing's agent rung for the moved caller",
    )
    billing_tile = board.locator('[data-agent="3001"]')
    await expect(billing_tile).to_have_attribute("data-state", "on_call", timeout=WAIT_MS)

    # Raise the other caller's priority: above everyone left in the queue.
    await expect(support.locator("tbody tr")).to_have_count(1, timeout=WAIT_MS)
    other = support.locator("tbody tr").first
    waiting = await other.get_attribute("data-call")
    await other.locator("button.raise").click()
    await expect(support.locator("td.priority")).to_have_text("1", timeout=WAIT_MS)

    # The agent goes ready: she is rung for the caller, and the alert clears.
    agent = await _sign_in(browser, stack.base_url, "ann", dialogs)
    await agent.wait_for_url("**/agent")
    await expect(agent.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    await agent.click("#ready")
    await expect(nobody).to_have_count(0, timeout=WAIT_MS)
    await expect(board.locator("#alerts-none")).to_be_visible()
    await expect(agent.locator("#state")).to_have_text("On call", timeout=WAIT_MS)
    assert [offer.call_id for offer in _rung(stack, "2001")] == [waiting]

    # Ask a supervisor: the alert on the wallboard, whisper from it in one click.
    await agent.fill("#ask-note", "Caller <b>threatens</b> to sue")
    await agent.click("#ask-supervisor")
    await expect(agent.locator("#ask-result")).to_have_text(
        "A supervisor has been alerted", timeout=WAIT_MS
    )
    ask = board.locator('#alert-list li[data-kind="ask"]')
    await expect(ask).to_have_count(1, timeout=WAIT_MS)
    await expect(ask.locator(".text")).to_contain_text("Ann asks for a supervisor")
    await expect(ask.locator(".note")).to_have_text("Caller <b>threatens</b> to sue")
    assert await ask.locator("b").count() == 0  # text, never markup
    await board.screenshot(path=str(shots / "panel-wallboard-alerts-en.png"), full_page=True)
    await ask.locator("button.whisper").click()
    await expect(board.locator("#action-result")).to_have_text("Whisper: sent", timeout=WAIT_MS)
    await eventually(lambda: _spied(stack, f"{AGENT_DEVICE},qw"), what="the ChanSpy Originate")
    await expect(ask).to_have_count(0, timeout=WAIT_MS)  # answered: resolved

    # The big screen shows the alert list too, without controls.
    await board.goto(f"{stack.base_url}/wallboard?big=1")
    await expect(board.locator("#alerts")).to_be_visible(timeout=WAIT_MS)
    await expect(board.locator('[data-agent="2001"]')).to_have_attribute(
        "data-state", "on_call", timeout=WAIT_MS
    )
    assert await board.locator("button").count() == 0

    # Every action is in the audit-log viewer.
    audit = await _sign_in(browser, stack.base_url, "root", dialogs)
    await audit.wait_for_url("**/wallboard")
    await audit.goto(f"{stack.base_url}/audit")
    await audit.fill("#audit-action", "supervisor.")
    await audit.click("#audit-search")
    for action in ("supervisor.move", "supervisor.priority", "supervisor.whisper"):
        row = audit.locator(f'#audit-rows tr[data-action="{action}"]')
        await expect(row).to_have_count(1, timeout=WAIT_MS)
    await expect(
        audit.locator('#audit-rows tr[data-action="supervisor.ask_answered"]')
    ).to_contain_text("whisper")
    await audit.fill("#audit-action", "agent.ask_supervisor")
    await audit.click("#audit-search")
    await expect(audit.locator('#audit-rows tr[data-action="agent.ask_supervisor"]')).to_have_count(
        1, timeout=WAIT_MS
    )
    assert dialogs == []
