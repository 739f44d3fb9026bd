"""``/api/docs`` in real headless Chromium: the page renders every operation of the document
and its schemas under the strict CSP, with no console error and no request elsewhere.

Needs /usr/bin/chromium (Debian ``chromium``) and the ``playwright`` package; never downloads
a browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.api_support import running_api
from tests.support import CHROMIUM, FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]

WAIT_MS = 20_000  # generous: a loaded machine is slow, the assertion is what appears


async def test_api_docs_renders_the_document_in_chromium(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path, users=False) as api:
        base = str(api.server.make_url("")).rstrip("/")
        client = await api.client()
        spec = await (await client.get("/api/openapi.json")).json()
        operations = sum(
            1
            for item in spec["paths"].values()
            for method in item
            if method in {"get", "put", "post", "patch", "delete"}
        )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = await browser.new_page()
                problems: list[str] = []
                requested: list[str] = []
                page.on(
                    "console",
                    lambda m: (
                        problems.append(f"{m.text} {m.location.get('url', '')}")
                        if m.type == "error"
                        else None
                    ),
                )
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on("request", lambda request: requested.append(request.url))
                page.on(
                    "response",
                    lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
                )
                await page.goto(f"{base}/api/docs")
                await expect(page.locator("body[data-rendered=yes]")).to_have_count(
                    1, timeout=WAIT_MS
                )
                await expect(page.locator("#title")).to_have_text(
                    f"{spec['info']['title']} {spec['info']['version']}"
                )
                await expect(page.locator("details.operation")).to_have_count(operations)
                for tag in ("service", "tickets", "meta"):
                    await expect(page.locator(f"#tag-{tag} h2")).to_have_text(tag)
                health = page.locator("#op-health")
                await health.locator("summary").click()
                await expect(health).to_contain_text("Credentials: public")
                await expect(health.locator("a.ref")).to_have_text(["Health"])
                await health.locator("a.ref").click()
                await expect(page.locator("#schema-Health")).to_contain_text("pbx_connected*")
                await expect(page.locator("#schema-Router")).to_contain_text(
                    'one of "active", "standby", "fenced"'
                )
            finally:
                await browser.close()
    assert problems == []
    assert requested
    assert all(url.startswith(base) for url in requested), requested
