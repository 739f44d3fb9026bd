"""User management: admins only over the API; ``hotline users add|list`` on the command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hotline.store.audit import AuditLog
from hotline.store.db import create_pool
from tests.api_support import PASSWORD, running_api
from tests.support import run_hotline

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a much longer secret"


async def test_only_admins_manage_users(migrated_database_url: str, tmp_path: Path) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        sam = await api.sign_in("sam")
        alice = await api.sign_in("alice")
        for who in (sam, alice):
            assert (await who.call("GET", "/api/users")).status == 403
            created = await who.call(
                "POST", "/api/users", json={"username": "x", "password": PASSWORD, "role": "admin"}
            )
            assert created.status == 403
        assert (await api.bearer("GET", "/api/users")).status == 403
        assert (await api.bearer("PATCH", "/api/users/1", json={"role": "admin"})).status == 403

        root = await api.sign_in("root")
        listed = await (await root.call("GET", "/api/users")).json()
        new = {
            "username": "carol",
            "password": NEW_PASSWORD,
            "role": "agent",
            "agent_id": "1002",
            "queues": ["billing"],
            "display_name": "Carol",
        }
        duplicate_agent = await root.call("POST", "/api/users", json=new)
        assert duplicate_agent.status == 409  # bob works as agent 1002
        response = await root.call("POST", "/api/users", json={**new, "agent_id": None})
        assert response.status == 201
        carol = await response.json()
        stored = await api.pool.fetchval("select password_hash from users where username = 'carol'")
        audit = await AuditLog(api.pool).find(object_type="user", object_id=str(carol["id"]))
        signed_in = await api.sign_in("carol", NEW_PASSWORD)
        deactivated = await root.call("PATCH", f"/api/users/{carol['id']}", json={"active": False})
        after = await signed_in.call("GET", "/api/me")

    assert [u["username"] for u in listed] == ["alice", "bob", "root", "sam"]
    assert all("password" not in key for user in listed for key in user)
    assert (carol["role"], carol["queues"], carol["agent_id"], carol["active"]) == (
        "agent",
        ["billing"],
        None,
        True,
    )
    assert "password_hash" not in carol
    assert stored.startswith("$argon2id$")
    assert NEW_PASSWORD not in stored
    assert [(e.actor, e.action) for e in audit] == [("root", "user.create")]
    assert NEW_PASSWORD not in str(audit[0].detail)
    assert signed_in.me["role"] == "agent"
    assert deactivated.status == 200
    assert after.status == 401


async def test_user_changes_are_validated_and_keep_an_admin(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        root = await api.sign_in("root")
        me = root.me["user_id"]
        last_admin = await root.call("PATCH", f"/api/users/{me}", json={"role": "supervisor"})
        inactive = await root.call("PATCH", f"/api/users/{me}", json={"active": False})
        bad = {
            "username": "with space",
            "password": "short",
            "role": "boss",
            "agent_id": "9999",
            "queues": ["nowhere"],
        }
        invalid = await root.call("POST", "/api/users", json=bad)
        configured = await root.call(
            "POST",
            "/api/users",
            json={"username": "dan", "password": PASSWORD, "role": "agent", "agent_id": "9999"},
        )
        unknown = await root.call("PATCH", "/api/users/424242", json={"active": False})
        renamed = await root.call("PATCH", f"/api/users/{me}", json={"display_name": "Root"})
        password = await root.call("PATCH", f"/api/users/{me}", json={"password": NEW_PASSWORD})
        still = await root.call("GET", "/api/me")
        client = await api.client()
        old = await client.post("/api/login", json={"username": "root", "password": PASSWORD})
        new = await api.sign_in("root", NEW_PASSWORD)
        invalid_fields = (await invalid.json())["fields"]
        configured_fields = (await configured.json())["fields"]

    assert last_admin.status == 409
    assert inactive.status == 409
    assert set(invalid_fields) == {"username", "password", "role"}
    assert configured_fields == {"agent_id": "is not a configured agent"}
    assert unknown.status == 404
    assert renamed.status == 200
    assert password.status == 200
    assert still.status == 200
    assert old.status == 401
    assert new.me["name"] == "root"


def _hotline(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_hotline(*args, env=env, stdin=stdin)


def _config(folder: Path) -> Path:
    path = folder / "hotline.toml"
    path.write_text(
        '[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n'
        f'outbox_dir = "{folder}/outbox"\n'
        '[[queues]]\nname = "support"\n'
        '[[agents]]\nid = "1001"\ndevice = "PJSIP/1001"\nqueues = ["support"]\n',
        encoding="utf-8",
    )
    return path


async def test_users_add_creates_the_first_admin(
    migrated_database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    env = {**os.environ, "HOTLINE_DATABASE_URL": migrated_database_url}
    password_file = tmp_path / "password"
    password_file.write_text(NEW_PASSWORD + "\n", encoding="utf-8")
    added = _hotline(
        "users", "add", "--config", str(config), "--role", "admin", "--username", "root",
        "--password-file", str(password_file), env=env,
    )  # fmt: skip
    agent = _hotline(
        "users", "add", "--config", str(config), "--role", "agent", "--username", "alice",
        "--agent-id", "1001", "--queues", "support", env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    again = _hotline(
        "users", "add", "--config", str(config), "--role", "agent", "--username", "ALICE",
        env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    short = _hotline(
        "users", "add", "--config", str(config), "--role", "agent", "--username", "bob",
        env=env, stdin="short\n",
    )  # fmt: skip
    no_agent = _hotline(
        "users", "add", "--config", str(config), "--role", "agent", "--username", "bob",
        "--agent-id", "7", env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    role = _hotline(
        "users", "add", "--config", str(config), "--role", "boss", "--username", "bob",
        env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    listed = _hotline("users", "list", "--config", str(config), env=env)
    unreachable = _hotline(
        "users", "list", "--config", str(config), env={**os.environ, "HOTLINE_DATABASE_URL": ""}
    )
    pool = await create_pool(migrated_database_url, max_size=2)
    try:
        rows = await pool.fetch("select username, password_hash from users")
        hashes = {row["username"]: row["password_hash"] for row in rows}
    finally:
        await pool.close()

    assert added.returncode == 0, added.stderr
    assert "root\tadmin" in added.stdout
    assert NEW_PASSWORD not in added.stdout + added.stderr
    assert agent.returncode == 0, agent.stderr
    assert "alice\tagent agent=1001 queues=support" in agent.stdout
    for failed, message in [
        (again, "already has an account"),
        (short, "at least 8 characters"),
        (no_agent, "'7' is not an agent"),
        (role, "invalid choice"),
        (unreachable, "cannot reach the database"),
    ]:
        assert failed.returncode == 2, failed
        assert message in failed.stderr
    assert listed.returncode == 0
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == ["alice", "root"]
    assert set(hashes) == {"root", "alice"}
    assert all(value.startswith("$argon2id$") for value in hashes.values())
