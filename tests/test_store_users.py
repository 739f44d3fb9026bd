"""Users with argon2 password hashes against a real PostgreSQL database."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from hotline.store.db import InvalidChange, NotFound, Pool
from hotline.store.users import Users

pytestmark = pytest.mark.integration

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def test_create_and_authenticate(pg_pool: Pool) -> None:
    users = Users(pg_pool, hasher=FAST)
    alice = await users.create(
        "alice", "correct horse", role="agent", agent_id="1001", queues=["support"]
    )

    assert (alice.role, alice.agent_id, alice.queues, alice.active) == (
        "agent",
        "1001",
        ("support",),
        True,
    )
    stored = await pg_pool.fetchval("select password_hash from users where id = $1", alice.id)
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored

    logged_in = await users.authenticate("ALICE", "correct horse")
    assert logged_in is not None
    assert logged_in.last_login_at is not None
    assert await users.authenticate("alice", "wrong horse") is None
    assert await users.authenticate("nobody", "correct horse") is None


async def test_names_roles_and_agents_are_checked(pg_pool: Pool) -> None:
    users = Users(pg_pool, hasher=FAST)
    await users.create("alice", "correct horse", role="agent", agent_id="1001")
    with pytest.raises(InvalidChange, match="already has an account"):
        await users.create("Alice", "another one", role="agent")
    with pytest.raises(InvalidChange, match="already has an account"):
        await users.create("bob", "another one", role="agent", agent_id="1001")
    with pytest.raises(InvalidChange, match="role must be one of"):
        await users.create("bob", "another one", role="root")
    with pytest.raises(InvalidChange, match="at least 8 characters"):
        await users.create("bob", "short", role="agent")
    with pytest.raises(InvalidChange, match="not valid"):
        await users.create("bob smith", "another one", role="agent")
    assert [u.username for u in await users.find()] == ["alice"]


async def test_deactivated_users_cannot_log_in(pg_pool: Pool) -> None:
    users = Users(pg_pool, hasher=FAST)
    sup = await users.create("sup", "supervises", role="supervisor", queues=["a", "b"])
    await users.update(sup.id, active=False)
    assert await users.authenticate("sup", "supervises") is None
    assert await users.find(active_only=True) == []
    changed = await users.update(sup.id, active=True, role="admin", queues=["a"])
    assert (changed.role, changed.queues) == ("admin", ("a",))
    assert await users.authenticate("sup", "supervises") is not None
    with pytest.raises(InvalidChange, match="cannot be changed"):
        await users.update(sup.id, password_hash="x")
    with pytest.raises(NotFound):
        await users.update(999, active=False)


async def test_password_change_and_rehash(pg_pool: Pool) -> None:
    users = Users(pg_pool, hasher=FAST)
    carol = await users.create("carol", "first password", role="agent")
    await users.set_password(carol.id, "second password")
    assert await users.authenticate("carol", "first password") is None
    assert await users.authenticate("carol", "second password") is not None

    stronger = Users(pg_pool, hasher=PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert await stronger.authenticate("carol", "second password") is not None
    rehashed = await pg_pool.fetchval("select password_hash from users where id = $1", carol.id)
    assert "m=2048,t=2" in rehashed
    with pytest.raises(NotFound):
        await users.set_password(999, "whatever it is")
