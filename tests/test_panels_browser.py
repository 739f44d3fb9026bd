"""The agent panel and the wallboard in real headless Chromium, against the service and the
simulated PBX (hotline/sim/harness.py): sign in, go ready, the screen-pop of a caller named like an
XSS payload (inert), the ticket saved, the wallboard's queue count and agent tiles, the listen
button's ChanSpy Originate reaching the PBX, a ticket escalated, a handover note written at the end
of one shift and shown at the start of the next, a supervisor scoring the recorded call, the agent
transferring the difficult caller to the supervisors' queue (a supervisor rung with the same
ticket), the language switch.

Screenshots: into docs/ (the README's pictures) only with ``HOTLINE_SCREENSHOTS=1``; otherwise
into the test's temporary directory, so an ordinary run leaves the committed pictures alone.

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser. Run alone with ``pytest -m browser``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hotline.domain.effects import CallAnswered
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
from tests.support import CHROMIUM, FLAGS, eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

XSS_NAME = "<img src=x onerror=alert(1)>"
CALLER = "13900139003"
SUPERVISOR_DEVICE = "Local/9001@supervisors"
AGENT_DEVICE = "Local/2001@agents"
SUPERVISOR_PHONE = "Local/9001@agents"  # the supervisor's agent phone, in the supervisors' queue
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
            AgentGroup(
                (AGENT_DEVICE, SUPERVISOR_PHONE),
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
            {"name": "supervisors", "ring_timeout": 30, "wrap_up": 5},
        ],
        agents=[
            {"id": "2001", "device": AGENT_DEVICE, "queues": ["support"]},
            {"id": "2002", "device": "Local/2002@agents", "queues": ["support"]},
            {"id": "9001", "device": SUPERVISOR_PHONE, "queues": ["supervisors"]},
        ],
    )
    pool = running.app[STORE].pool
    users = Users(pool, hasher=FAST)
    await users.create("ann", PASSWORD, role="agent", agent_id="2001", display_name="Ann")
    await users.create("ben", PASSWORD, role="agent", agent_id="2002", display_name="Ben")
    await users.create(
        "sam", PASSWORD, role="supervisor", agent_id="9001", device=SUPERVISOR_DEVICE
    )
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


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/ with ``HOTLINE_SCREENSHOTS=1`` (to refresh the README's pictures), else a
    temporary directory."""
    folder = DOCS if os.environ.get("HOTLINE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


async def test_agent_panel_and_wallboard_in_chromium(stack: Stack, tmp_path: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await _scenario_in_browser(stack, browser, screenshot_dir(tmp_path))
        finally:
            await browser.close()


def _answers(stack: Stack) -> list[CallAnswered]:
    return [fact for fact in stack.facts if isinstance(fact, CallAnswered)]


async def _scenario_in_browser(stack: Stack, browser: Browser, shots: Path) -> None:
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

    await _difficult_call_goes_up(stack, browser, agent, board, dialogs)

    await agent.screenshot(path=str(shots / "panel-agent-en.png"), full_page=True)
    await board.screenshot(path=str(shots / "panel-wallboard-en.png"), full_page=True)

    # The language switch: Chinese on both pages.
    await board.click("#lang-switch")
    await expect(board.locator("#totals h2")).to_have_text("全部队列", timeout=WAIT_MS)
    await expect(board.locator('[data-agent="2001"] .state')).to_contain_text("通话中")
    await agent.click("#lang-switch")
    await expect(agent.locator("#state")).to_have_text("通话中", timeout=WAIT_MS)
    await expect(agent.locator("#pop-name")).to_have_text(XSS_NAME, timeout=WAIT_MS)
    await expect(agent.locator("#up h2")).to_have_text("疑难电话")
    await expect(agent.locator("#handover h2")).to_have_text("交接班")
    await expect(board.locator("#quality h2")).to_have_text("质检", timeout=WAIT_MS)
    await agent.screenshot(path=str(shots / "panel-agent-zh.png"), full_page=True)
    await board.screenshot(path=str(shots / "panel-wallboard-zh.png"), full_page=True)

    # The big-screen mode: the same tiles, no controls.
    await board.goto(f"{stack.base_url}/wallboard?big=1")
    await expect(board.locator('[data-agent="2001"]')).to_have_attribute(
        "data-state", "on_call", timeout=WAIT_MS
    )
    assert await board.locator("button.act").count() == 0

    assert dialogs == []  # no alert(1) ever ran


async def _difficult_call_goes_up(
    stack: Stack, browser: Browser, agent: Page, board: Page, dialogs: list[str]
) -> None:
    """Escalate, hand over, score, transfer: each a step in the browser, checked on the
    other page or at the PBX."""
    # The ticket on the form: the call's, or, when the screen-pop came before the call's
    # ticket was stored, the one the form saved. Escalation and handover use it.
    ticket = await agent.locator("#ticket-number").text_content()
    assert ticket
    [first] = _answers(stack)
    assert first.agent_id == "2001"

    # A ticket escalated with a reason shows on both panels.
    await agent.fill("#escalate-reason", "Threatens to call the newspaper")
    await agent.click("#escalate")
    await expect(agent.locator("#up-result")).to_have_text(f"Ticket {ticket} escalated")
    escalated = f'#escalations li[data-ticket="{ticket}"][data-kind="escalation"]'
    await expect(agent.locator(escalated)).to_have_count(1, timeout=WAIT_MS)
    on_board = f'#wall-escalations li[data-ticket="{ticket}"][data-kind="escalation"]'
    await expect(board.locator(on_board)).to_contain_text("newspaper", timeout=WAIT_MS)

    # A handover note for the next shift, linked to the ticket.
    await agent.fill("#handover-body", "Lift 3 repair pending <script>x</script>")
    await agent.fill("#handover-tickets", ticket)
    await agent.click("#handover-save")
    await expect(agent.locator("#handover-result")).to_have_text("Note saved", timeout=WAIT_MS)

    # The supervisor scores the recorded call on the quality form.
    await board.reload()
    row = board.locator(f'#quality-calls tr[data-call="{first.call_id}"]')
    await expect(row).to_have_count(1, timeout=WAIT_MS)
    await row.locator("button.score").click()
    await board.fill("#quality-greeting", "5")
    await board.fill("#quality-courtesy", "4")
    await board.fill("#quality-accuracy", "4")
    await board.fill("#quality-resolution", "3")
    await board.fill("#quality-comments", "Calm with an angry caller")
    await board.click("#quality-save")
    await expect(board.locator("#quality-result")).to_have_text("Score saved: 16", timeout=WAIT_MS)
    await expect(row).to_contain_text("Scored", timeout=WAIT_MS)

    # Transfer: the caller goes back into hotline-inbound for the supervisors' queue, and
    # the supervisor's phone is rung for them with the same ticket.
    await stack.agent("login", "9001")
    await agent.select_option("#transfer-queue", "supervisors")
    await agent.fill("#transfer-note", "Wants a supervisor")
    await agent.click("#transfer")
    await expect(agent.locator("#up-result")).to_have_text(
        f"Transferred to supervisors: ticket {first.ticket}", timeout=WAIT_MS
    )

    def supervisor_answers() -> list[CallAnswered]:  # Ann may meanwhile take the next caller
        return [answer for answer in _answers(stack) if answer.agent_id == "9001"]

    await eventually(lambda: bool(supervisor_answers()), what="the supervisor answering")
    [second] = supervisor_answers()
    assert (second.call_id, second.ticket) == (first.call_id, first.ticket)
    transferred = f'#wall-escalations li[data-ticket="{first.ticket}"][data-kind="transfer"]'
    await expect(board.locator(transferred)).to_contain_text("Wants a supervisor", timeout=WAIT_MS)

    # The next shift: Ben's panel shows the note unread; once read it is gone.
    dialogs_before = len(dialogs)
    ben = await _sign_in(browser, stack.base_url, "ben", "en", dialogs)
    await ben.wait_for_url("**/agent")
    note = ben.locator("#handover-unread li")
    await expect(note).to_have_count(1, timeout=WAIT_MS)
    await expect(note.locator(".body")).to_have_text("Lift 3 repair pending <script>x</script>")
    await expect(note.locator(".tickets")).to_have_text(ticket)
    await note.locator("button.read").click()
    await expect(note).to_have_count(0, timeout=WAIT_MS)
    await expect(ben.locator("#handover-none")).to_be_visible()
    assert len(dialogs) == dialogs_before
    await ben.context.close()
