"""Recording playback and the pushed escalations and handover notes in real headless
Chromium, against the served API (no PBX): a supervisor plays a recorded call in the
quality review (the element loads the WAV through the ranges endpoint, the read audited);
an escalation raised by an agent appears on the wallboard and on the agent's panel without
a reload and without the list being fetched again, and goes from both when resolved; a
handover note appears on the next agent's panel as it is written.

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hotline.store.audit import AuditLog
from tests.api_support import PASSWORD, RunningApi, running_api
from tests.support import CHROMIUM, FLAGS, eventually
from tests.test_recordings_api import add_recording, write_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

WAIT_MS = 20_000  # generous: a loaded machine is slow, the assertion is what appears


async def _sign_in(browser: Browser, base: str, username: str, problems: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"{username}: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"{username}: dialog {dialog.message}"))
    await page.goto(f"{base}/login?lang=en")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    return page


async def _answered(api: RunningApi, recording: dict[str, str]) -> None:
    """The recording's call answered by agent 1001, as the outbox would write it."""
    await api.pool.execute(
        "update calls set answered_by = '1001', answered_at = now() where call_id = $1",
        recording["call_id"],
    )


async def test_playback_in_quality_review_and_pushed_desk_facts(
    migrated_database_url: str, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    write_wav(monitor / "call.wav", seconds=1.5)
    async with running_api(
        migrated_database_url, tmp_path, tickets={"monitor_dir": str(monitor)}
    ) as api:
        recording = await add_recording(api, str(monitor / "call.wav"))
        await _answered(api, recording)
        base = str(api.server.make_url("")).rstrip("/")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                await _in_browser(api, browser, base, recording)
            finally:
                await browser.close()


async def _in_browser(
    api: RunningApi, browser: Browser, base: str, recording: dict[str, str]
) -> None:
    problems: list[str] = []
    board = await _sign_in(browser, base, "sam", problems)
    await board.wait_for_url("**/wallboard")
    await expect(board.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)

    # The supervisor listens to the recorded call while scoring it.
    player = f'#quality-calls tr[data-call="{recording["call_id"]}"] audio'
    await expect(board.locator(player)).to_have_count(1, timeout=WAIT_MS)
    assert await board.locator(player).get_attribute("src") == recording["audio_url"]
    assert await board.locator(player).get_attribute("preload") == "none"
    await board.evaluate(
        "(selector) => { const audio = document.querySelector(selector); "
        "audio.muted = true; audio.play().catch(() => {}); }",
        player,
    )
    await board.wait_for_function(
        "(selector) => Number.isFinite(document.querySelector(selector).duration) "
        "&& document.querySelector(selector).duration > 1.4",
        arg=player,
        timeout=WAIT_MS,
    )

    async def played() -> bool:
        entries = await AuditLog(api.pool).find(action="recording.play", actor="sam")
        return any(entry.object_id == str(recording["id"]) for entry in entries)

    await eventually(played, what="the playback's audit row")

    # An escalation raised on the agent's panel shows on the wallboard, pushed.
    fetches: list[str] = []
    board.on(
        "request",
        lambda request: fetches.append(request.url) if "/api/escalations" in request.url else None,
    )
    agent = await _sign_in(browser, base, "alice", problems)
    await agent.wait_for_url("**/agent")
    await expect(agent.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    raised = await api.bearer(
        "POST",
        f"/api/tickets/{recording['ticket']}/escalate",
        json={"reason": "Wants the manager <script>x</script>"},
    )
    assert raised.status == 201
    escalation_id = (await raised.json())["id"]
    line = f'li[data-escalation="{escalation_id}"]'
    await expect(board.locator(f"#wall-escalations {line} .reason")).to_have_text(
        "Wants the manager <script>x</script>", timeout=WAIT_MS
    )
    await expect(agent.locator(f"#escalations {line}")).to_have_count(1, timeout=WAIT_MS)
    assert [url for url in fetches if "/resolve" not in url] == []  # pushed, not fetched

    # Resolved on the wallboard: gone from both pages.
    await board.locator(f"#wall-escalations {line} button.resolve").click()
    await expect(board.locator(f"#wall-escalations {line}")).to_have_count(0, timeout=WAIT_MS)
    await expect(agent.locator(f"#escalations {line}")).to_have_count(0, timeout=WAIT_MS)

    # A handover note the supervisor writes appears on the agent's panel as it is written.
    await expect(agent.locator("#handover-none")).to_be_visible(timeout=WAIT_MS)
    note = await api.bearer("POST", "/api/handover", json={"body": "Lift 3 still broken"})
    assert note.status == 201
    unread = agent.locator("#handover-unread li .body")
    await expect(unread).to_have_text("Lift 3 still broken", timeout=WAIT_MS)
    await expect(agent.locator("#handover-none")).to_be_hidden()
    assert problems == []
