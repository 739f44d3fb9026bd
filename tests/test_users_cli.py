"""``hotline users passwd|disable|enable`` against a served API: each ends the sessions it
must, the new password signs in, and the last active admin cannot be disabled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_support import PASSWORD, running_api

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a quite different phrase"


def _config(folder: Path) -> Path:
    path = folder / "hotline.toml"
    path.write_text(
        f'[service]\nstate_dir = "{folder}/state"\n'
        '[[queues]]\nname = "support"\n'
        '[[agents]]\nid = "1001"\ndevice = "PJSIP/1001"\nqueues = ["support"]\n'
        '[[agents]]\nid = "1002"\ndevice = "PJSIP/1002"\nqueues = ["support"]\n',
        encoding="utf-8",
    )
    return path


async def _users(
    dsn: str, config: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DATABASE_URL": dsn}
    command = [
        sys.executable,
        "-m",
        "hotline",
        "users",
        args[0],
        "--config",
        str(config),
        *args[1:],
    ]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_passwd_disable_and_enable_end_sessions_and_keep_an_admin(
    migrated_database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    async with running_api(migrated_database_url, tmp_path) as api:
        alice = await api.sign_in("alice")
        bob = await api.sign_in("bob")
        assert (await alice.call("GET", "/api/me")).status == 200
        assert (await bob.call("GET", "/api/me")).status == 200

        passwd = await _users(
            migrated_database_url,
            config,
            "passwd",
            "--username",
            "alice",
            stdin=NEW_PASSWORD + "\n",
        )
        assert passwd.returncode == 0, passwd.stderr
        assert NEW_PASSWORD not in passwd.stdout + passwd.stderr
        assert (await alice.call("GET", "/api/me")).status == 401
        again = await api.sign_in("alice", NEW_PASSWORD)
        assert again.me["name"] == "alice"

        disabled = await _users(migrated_database_url, config, "disable", "--username", "BOB")
        assert disabled.returncode == 0, disabled.stderr
        assert "(inactive)" in disabled.stdout
        assert (await bob.call("GET", "/api/me")).status == 401
        client = await api.client()
        refused = await client.post("/api/login", json={"username": "bob", "password": PASSWORD})
        assert refused.status == 401

        enabled = await _users(migrated_database_url, config, "enable", "--username", "bob")
        assert enabled.returncode == 0, enabled.stderr
        assert (await (await api.sign_in("bob")).call("GET", "/api/me")).status == 200

        last_admin = await _users(migrated_database_url, config, "disable", "--username", "root")
        assert last_admin.returncode == 2
        assert "the last active admin cannot be demoted or deactivated" in last_admin.stderr
        root = await api.sign_in("root")
        assert (await root.call("GET", "/api/me")).status == 200

        nobody = await _users(
            migrated_database_url,
            config,
            "passwd",
            "--username",
            "nobody",
            stdin=NEW_PASSWORD + "\n",
        )
        assert nobody.returncode == 2
        assert "no user 'nobody'" in nobody.stderr
        weak = await _users(
            migrated_database_url, config, "passwd", "--username", "alice", stdin="short\n"
        )
        assert weak.returncode == 2
        assert "at least 8 characters" in weak.stderr
