"""Logs (issue 9 item 20): phone numbers masked in every written form, every line JSON (the
aiohttp access log too), and a failed login's typed user name never in clear."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from hotline.log import mask_text, stdlib_handler
from hotline.main import create_app
from tests.api_support import PASSWORD, api_settings, running_api

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13925742721", "139******21"),
        ("+8613900139000", "+861********00"),
        ("139 2574 2721", "139 **** **21"),
        ("139-2574-2721", "139-****-**21"),
        ("+86 139 2574 2721", "+86 1** **** **21"),
        ("010-12345678", "010-******78"),
        ("tel13925742721", "tel139******21"),
        ("13925742721abc", "139******21abc"),
        ("sip.13925742721", "sip.139******21"),
        ("call me at 13925742721.", "call me at 139******21."),
        ("Local/13900139000@callers-0001;1", "Local/139******00@callers-0001;1"),
        ("caller=13925742721,queue=support", "caller=139******21,queue=support"),
    ],
)
def test_phone_numbers_are_masked_in_every_form(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "T20261126-A0001",  # a ticket number
        "hl-T20261126-A0001-3",  # an offer id
        "1795712164.12",  # a Uniqueid
        "2026-12-01T20:00:24.123456+00:00",  # a time
        "queue support: 12345 calls",  # too short for a phone number
        "127.0.0.1:8080",
    ],
)
def test_ids_times_and_short_numbers_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_every_line_is_json_and_masked_even_the_stdlib_ones() -> None:
    """The real start-up configuration, in a process of its own (it changes global logging):
    structlog's lines and the standard library's (aiohttp's access log) are all JSON."""
    script = (
        "import logging, structlog\n"
        "from hotline.log import configure_logging\n"
        "configure_logging(json=True)\n"
        "structlog.get_logger('hotline.x').info('call.waiting', caller='139 2574 2721')\n"
        "logging.getLogger('aiohttp.access').info("
        "'%s \"GET /api/customers?q=%s HTTP/1.1\" 200', '127.0.0.1', '139-2574-2721')\n"
        "logging.getLogger('asyncio').warning('plain text with tel13925742721')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == [
        "call.waiting",
        '127.0.0.1 "GET /api/customers?q=139-****-**21 HTTP/1.1" 200',
        "plain text with tel139******21",
    ]
    assert lines[0]["caller"] == "139 **** **21"
    assert [line.get("logger") for line in lines[1:]] == ["aiohttp.access", "asyncio"]
    assert [line["level"] for line in lines] == ["info", "info", "warning"]
    assert all("timestamp" in line for line in lines)
    assert "2574" not in done.stderr


async def test_the_access_log_of_a_real_request_is_one_masked_json_line(
    migrated_database_url: str, tmp_path: Path
) -> None:
    stream = io.StringIO()
    handler = stdlib_handler(structlog.processors.JSONRenderer(), stream)
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        server = TestServer(create_app(api_settings(migrated_database_url, tmp_path)))
        async with TestClient(server) as client:
            response = await client.get(
                "/api/customers?q=139%202574%202721",
                headers={"Authorization": "Bearer integration-token-for-tests"},
            )
            assert response.status == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["logger"] == "aiohttp.access"
    assert "GET /api/customers?q=139%202574%202721" not in lines[0]["event"]
    assert "2574" not in lines[0]["event"]


async def test_a_failed_logins_user_name_is_never_logged_in_clear(
    migrated_database_url: str, tmp_path: Path
) -> None:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        async with running_api(migrated_database_url, tmp_path) as api:
            client = await api.client()
            with structlog.testing.capture_logs() as events:
                # The password typed into the user-name field, the "password" being the name.
                typo = await client.post("/api/login", json={"username": PASSWORD, "password": "x"})
                known = await client.post(
                    "/api/login", json={"username": "alice", "password": "wrong password"}
                )
    finally:
        structlog.configure(**saved)
    assert (typo.status, known.status) == (401, 401)
    failed = [event for event in events if event["event"] == "web.login_failed"]
    assert len(failed) == 2
    assert PASSWORD not in json.dumps(events, default=str)
    assert "alice" not in json.dumps(failed, default=str)
    assert all(event["user"].startswith("h:") for event in failed)
    assert failed[0]["user"] != failed[1]["user"]
