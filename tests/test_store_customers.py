"""Customer files and the audit log against a real PostgreSQL database."""

from __future__ import annotations

import asyncpg
import pytest

from hotline.store.audit import AuditLog
from hotline.store.customers import Customers
from hotline.store.db import InvalidChange, NotFound, Pool

pytestmark = pytest.mark.integration


async def test_a_household_file_with_several_numbers(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    created = await customers.create(
        phones=["13900139000", "02155550000"],
        name="Wang Fang",
        household="Building 3",
        unit="3-1204",
        address="88 Garden Road",
        tags=["vip"],
        notes="prefers evenings",
    )

    by_mobile = await customers.find_by_phone("13900139000")
    by_landline = await customers.find_by_phone("02155550000")

    assert by_mobile == by_landline == created
    assert created.phones == ("13900139000", "02155550000")
    assert created.tags == ("vip",)
    assert await customers.find_by_phone("13700000000") is None


async def test_find_or_create_creates_once(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    first = await customers.find_or_create("13811112222")
    again = await customers.find_or_create("13811112222")

    assert first.id == again.id
    assert first.phones == ("13811112222",)
    assert await pg_pool.fetchval("select count(*) from customers") == 1


async def test_a_number_belongs_to_one_file(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    first = await customers.create(phones=["13900000001"], name="A")
    second = await customers.create(phones=["13900000002"], name="B")

    with pytest.raises(InvalidChange, match="already belongs to another customer"):
        await customers.add_phone(second.id, "13900000001")
    with pytest.raises(InvalidChange, match="already belongs to another customer"):
        await customers.create(phones=["13900000001"], name="C")

    # The refused creation left nothing behind.
    assert await pg_pool.fetchval("select count(*) from customers") == 2
    again = await customers.add_phone(first.id, "13900000001", "mobile")
    assert again.phones == ("13900000001",)


async def test_update_and_search(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    wang = await customers.create(phones=["13900139000"], name="Wang Fang", unit="3-1204")
    await customers.create(phones=["13600000000"], name="Li Lei", address="12 Harbour St")

    updated = await customers.update(wang.id, notes="leaking pipe 2026", tags=["repeat"])
    assert (updated.notes, updated.tags) == ("leaking pipe 2026", ("repeat",))
    assert updated.updated_at >= wang.updated_at

    assert [c.name for c in await customers.search("wang")] == ["Wang Fang"]
    assert [c.name for c in await customers.search("harbour")] == ["Li Lei"]
    assert [c.name for c in await customers.search("0139")] == ["Wang Fang"]
    assert [c.name for c in await customers.search("3-12")] == ["Wang Fang"]
    assert await customers.search("100%") == []

    with pytest.raises(InvalidChange, match="'id' cannot be changed"):
        await customers.update(wang.id, id=7)
    with pytest.raises(NotFound):
        await customers.update(9999, name="nobody")


async def test_reading_a_file_is_audited(pg_pool: Pool) -> None:
    customers = Customers(pg_pool)
    audit = AuditLog(pg_pool)
    customer = await customers.create(phones=["13900139000"], name="Wang Fang")

    read = await customers.read(customer.id, actor="alice")
    await customers.get(customer.id)  # the service's own read: not audited

    assert read == customer
    entries = await audit.find(object_type="customer", object_id=str(customer.id))
    assert [(e.actor, e.action) for e in entries] == [("alice", "customer.read")]
    with pytest.raises(NotFound):
        await customers.read(424242, actor="alice")
    assert len(await audit.find()) == 1


async def test_the_audit_log_is_append_only(pg_pool: Pool) -> None:
    audit = AuditLog(pg_pool)
    entry = await audit.write("bob", "ticket.export", "ticket", "T1", {"rows": 3})
    assert entry.detail == {"rows": 3}
    assert [e.id for e in await audit.find(actor="bob")] == [entry.id]
    assert await audit.find(actor="carol") == []

    for statement in (
        "update audit_log set actor = 'mallory'",
        "delete from audit_log",
        "truncate audit_log",
    ):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await pg_pool.execute(statement)
    assert (await audit.find())[0].actor == "bob"
