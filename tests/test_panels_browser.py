"""The agent panel and the wallboard in real headless Chromium, against the service and the
simulated PBX (hotline/sim/harness.py): sign in, go ready, the screen-pop of a caller named like an
XSS payload (inert), the ticket saved, the wallboard's queue count and agent tiles, the listen
button's ChanSpy Originate reaching the PBX, the language switch; screenshots into docs/.

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser. Run alone with ``pytest -m browser``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    Fixed,
    Scenario,
    SupervisorBehaviour,
)
from hotline.store.customers import Customers
from hotline.store.users import Users
from hotline.web.keys import STORE
from tests.api_support import FAST, PASSWORD
from tests.support import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

CHROMIUM: str = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_NAME = "<img src=x onerror=alert(1)>"
CALLER = "13900139003"
SUPERVISOR_DEVICE = "Local/9001@supervisors"
AGENT_DEVICE = "Local/2001@agents"
DOCS = Path(__file__).resolve().parents[1] / "docs"
WAIT_MS = 20_000  # generous: a loaded machine is slow, the assertion is what appears


def _scenario() -> Scenario:
    """Two calls from the XSS-named customer, for one agent who answers in 3 s, talks 10 min."""
    return Scenario(
        name="panels",
        seed=3,
        noise=False,
        time_scale=1.0,
        arrivals=Arrivals(
            count=2,
            rate_per_minute=60.0,
            numbers=(CALLER,),
            repeat_share=1.0,  # the second caller is the same number
            patience=Fixed(900.0),
        ),
        agents=(
            AgentGroup((AGENT_DEVICE,), AgentBehaviour(answer_delay=Fixed(3.0), talk=Fixed(600.0))),
        ),
        supervisors=SupervisorBehaviour(listen=Fixed(600.0)),
    )


@pytest.fixture
async def stack(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await start_stack(
        _scenario(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
        queues=[{"name": "support", "ring_timeout": 30, "wrap_up": 5}],
    )
    pool = running.app[STORE].pool
    users = Users(pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001", display_name="Ann")
    await users.create("sam", PASSWORD, role="supervisor", device=SUPERVISOR_DEVICE)
    await Customers(pool).create(
        phones=[CALLER], name=XSS_NAME, household="H-7", unit="3-501", notes="<b>bold?</b>"
    )
    try:
        yield running
    finally:
        await running.close()


def _spied(stack: Stack, data: str) -> bool:
    return any(
        spy.data == data and name.startswith(SUPERVISOR_DEVICE)
        for name, channel in stack.sim.channels.items()
        for spy in channel.spies
    )


async def _sign_in(
    browser: Browser, base_url: str, username: str, lang: str, dialogs: list[str]
) -> Page:
    """A new browser context signed in as ``username``; any dialog (an ``alert``) is noted."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{base_url}/login?lang={lang}")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    return page


async def test_agent_panel_and_wallboard_in_chromium(stack: Stack) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await _scenario_in_browser(stack, browser)
        finally:
            await browser.close()


async def _scenario_in_browser(stack: Stack, browser: Browser) -> None:
    dialogs: list[str] = []
    agent = await _sign_in(browser, stack.base_url, "ann", "en", dialogs)
    await agent.wait_for_url("**/agent")
    await expect(agent.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    await agent.click("#ready")
    await expect(agent.locator("#state")).to_have_text("Ready", timeout=WAIT_MS)

    board = await _sign_in(browser, stack.base_url, "sam", "en", dialogs)
    await board.wait_for_url("**/wallboard")
    tile = board.locator('[data-agent="2001"]')
    await expect(tile).to_have_attribute("data-state", "available", timeout=WAIT_MS)

    stack.sim.start_arrivals()
    # The screen-pop: the caller's file while the phone rings (the agent answers after 3 s).
    await expect(agent.locator("#state")).to_have_text("Ringing", timeout=WAIT_MS)
    await expect(agent.locator("#pop-name")).to_have_text(XSS_NAME, timeout=WAIT_MS)
    await expect(agent.locator("#pop-unit")).to_have_text("3-501")
    await expect(agent.locator("#pop-notes")).to_have_text("<b>bold?</b>")
    assert await agent.locator("#pop img, #pop b").count() == 0  # text, never markup

    # The wallboard: the agent on the call, the second caller waiting (full number).
    await expect(tile).to_have_attribute("data-state", "on_call", timeout=WAIT_MS)
    queue = board.locator('[data-queue="support"]')
    await expect(queue.locator("tbody tr")).to_have_count(1, timeout=WAIT_MS)
    await expect(queue.locator("td.number")).to_have_text(CALLER)

    # The ticket form saves through the tickets API.
    await agent.fill("#ticket-subject", "No hot water")
    await agent.select_option("#ticket-category", "repair")
    await agent.click("#ticket-save")
    await expect(agent.locator("#ticket-result")).to_contain_text("Saved:", timeout=WAIT_MS)

    # Listen: the PBX receives the ChanSpy Originate for the supervisor's device.
    await tile.locator("button.listen").click()
    await expect(board.locator("#action-result")).to_have_text("Listen: sent", timeout=WAIT_MS)
    await eventually(lambda: _spied(stack, f"{AGENT_DEVICE},q"), what="the ChanSpy Originate")

    DOCS.mkdir(exist_ok=True)
    await agent.screenshot(path=str(DOCS / "panel-agent-en.png"), full_page=True)
    await board.screenshot(path=str(DOCS / "panel-wallboard-en.png"), full_page=True)

    # The language switch: Chinese on both pages.
    await board.click("#lang-switch")
    await expect(board.locator("#totals h2")).to_have_text("全部队列", timeout=WAIT_MS)
    await expect(board.locator('[data-agent="2001"] .state')).to_contain_text("通话中")
    await agent.click("#lang-switch")
    await expect(agent.locator("#state")).to_have_text("通话中", timeout=WAIT_MS)
    await expect(agent.locator("#pop-name")).to_have_text(XSS_NAME, timeout=WAIT_MS)
    await agent.screenshot(path=str(DOCS / "panel-agent-zh.png"), full_page=True)
    await board.screenshot(path=str(DOCS / "panel-wallboard-zh.png"), full_page=True)

    # The big-screen mode: the same tiles, no controls.
    await board.goto(f"{stack.base_url}/wallboard?big=1")
    await expect(board.locator('[data-agent="2001"]')).to_have_attribute(
        "data-state", "on_call", timeout=WAIT_MS
    )
    assert await board.locator("button.act").count() == 0

    assert dialogs == []  # no alert(1) ever ran
