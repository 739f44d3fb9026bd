"""The wallboard of several sites in real headless Chromium: two sites (two sims, two
services), one database, one Redis (the fixture of tests/test_live_sites.py). The whole
centre, then one site chosen with the selector, in big-screen mode too; every site's
router, this instance's role, and a site left without a router shown as an alert.

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser. Run alone with ``pytest -m browser``.
"""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright, expect

from hotline.sim.harness import Stack
from tests.support import CHROMIUM, FLAGS
from tests.test_live_sites import SITES, centre  # noqa: F401 - the fixture
from tests.test_panels_browser import WAIT_MS, _sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]


async def test_the_wallboard_shows_the_centre_or_one_site_and_every_sites_router(
    centre: dict[str, Stack],  # noqa: F811 - the fixture imported above
) -> None:
    north, south = centre["north"], centre["south"]
    dialogs: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            board = await _sign_in(browser, north.base_url, "sam", "en", dialogs)
            await board.wait_for_url("**/wallboard")
            sites = board.locator("#sites")
            for pbx_id, (letter, *_) in SITES.items():
                card = sites.locator(f'[data-site="{pbx_id}"]')
                await expect(card).to_have_attribute("data-router", "active", timeout=WAIT_MS)
                await expect(card).to_contain_text(f"routing: instance {letter}")
                await expect(card).to_contain_text("lease epoch 1")
            await expect(board.locator("#this-instance")).to_have_attribute("data-role", "active")
            await expect(board.locator("#this-instance")).to_contain_text("A at site north")

            for stack in centre.values():
                stack.sim.start_arrivals()
            # The whole centre: both sites' queues (two named support) and agents.
            south_caller, north_caller = SITES["south"][3][0], SITES["north"][3][0]
            south_support = board.locator('.queue[data-queue="support"][data-site="south"]')
            await expect(south_support.locator("td.number")).to_have_text(
                south_caller, timeout=WAIT_MS
            )
            north_support = board.locator('.queue[data-queue="support"][data-site="north"]')
            await expect(north_support.locator("td.number")).to_have_text(north_caller)
            await expect(board.locator('.queue[data-queue="returns"]')).to_have_count(1)
            await expect(board.locator('[data-agent="3001"]')).to_have_count(1)
            # Another site's agent has no buttons: its own site's instances act on it.
            await expect(board.locator('[data-agent="3001"] button')).to_have_count(0)
            await expect(board.locator('[data-agent="2001"] button.listen')).to_have_count(1)

            # One site, chosen with the selector: south's only, on north's instance.
            await board.select_option("#site-select", "south")
            await board.wait_for_url("**/wallboard?site=south")
            await expect(south_support.locator("td.number")).to_have_text(
                south_caller, timeout=WAIT_MS
            )
            await expect(board.locator('.queue[data-site="north"]')).to_have_count(0)
            await expect(board.locator('[data-agent="2001"]')).to_have_count(0)
            await expect(board.locator("#big-link")).to_have_attribute(
                "href", "/wallboard?big=1&site=south"
            )

            # Big-screen mode keeps the site.
            await board.goto(f"{north.base_url}/wallboard?big=1&site=south")
            await expect(board.locator('.queue[data-queue="returns"]')).to_have_count(
                1, timeout=WAIT_MS
            )
            await expect(board.locator('.queue[data-site="north"]')).to_have_count(0)
            await expect(board.locator('[data-agent="3001"]')).to_have_count(1)

            # South loses its router: the wallboard says so.
            await south.stop_service()
            lost = sites.locator('[data-site="south"]')
            await expect(lost).to_have_attribute("data-router", "none", timeout=WAIT_MS)
            await expect(lost).to_have_class("card site alert")
            await expect(lost).to_contain_text("no active router since")
        finally:
            await browser.close()
    assert dialogs == []
