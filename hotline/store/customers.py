"""Customer files: one household, one file, with any number of phone numbers.

Reading a file for a person goes through :meth:`Customers.read`, which writes the
audit-log entry in the same transaction; :meth:`Customers.get` is for the
service's own use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from hotline.store.audit import AuditLog
from hotline.store.db import Db, InvalidChange, NotFound, transaction
from hotline.store.tickets import TicketScope, scope_sql

__all__ = ["Customer", "Customers"]

_SELECT: Final = """
select c.id, c.name, c.household, c.unit, c.address, c.tags, c.notes,
       c.created_at, c.updated_at,
       coalesce(array(select p.phone from customer_phones p
                      where p.customer_id = c.id order by p.created_at, p.phone), '{}') as phones
from customers c
"""
_FIELDS: Final = ("name", "household", "unit", "address", "tags", "notes")


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer file."""

    id: int
    name: str
    phones: tuple[str, ...]
    household: str | None
    unit: str | None
    address: str | None
    tags: tuple[str, ...]
    notes: str
    created_at: datetime
    updated_at: datetime


def _customer(row: asyncpg.Record) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        phones=tuple(row["phones"]),
        household=row["household"],
        unit=row["unit"],
        address=row["address"],
        tags=tuple(row["tags"]),
        notes=row["notes"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class Customers:
    """The customers repository."""

    def __init__(self, db: Db) -> None:
        """Run on ``db`` (the pool, or a connection in a transaction)."""
        self.db = db

    async def get(self, customer_id: int) -> Customer:
        """A customer file, without an audit entry (for the service itself)."""
        row = await self.db.fetchrow(_SELECT + " where c.id = $1", customer_id)
        if row is None:
            raise NotFound(f"customer {customer_id} not found")
        return _customer(row)

    async def read(
        self, customer_id: int, *, actor: str, action: str = "customer.read"
    ) -> Customer:
        """A customer file read on behalf of ``actor``; the read is written to the audit log."""
        async with transaction(self.db) as conn:
            customer = await Customers(conn).get(customer_id)
            await AuditLog(conn).write(actor, action, "customer", str(customer_id))
        return customer

    async def find_by_phone(self, phone: str) -> Customer | None:
        """The customer with this phone number, if any."""
        row = await self.db.fetchrow(
            _SELECT + " join customer_phones f on f.customer_id = c.id where f.phone = $1", phone
        )
        return _customer(row) if row is not None else None

    async def find_or_create(self, phone: str) -> Customer:
        """The customer with this phone number; a new, empty file when there is none."""
        customer_id = await self.db.fetchval("select hotline_customer_for_phone($1)", phone)
        return await self.get(customer_id)

    async def create(
        self,
        *,
        phones: Sequence[str],
        name: str = "",
        household: str | None = None,
        unit: str | None = None,
        address: str | None = None,
        tags: Sequence[str] = (),
        notes: str = "",
    ) -> Customer:
        """A new customer file; a phone number that belongs to another file is refused."""
        async with transaction(self.db) as conn:
            customer_id = await conn.fetchval(
                "insert into customers (name, household, unit, address, tags, notes) "
                "values ($1, $2, $3, $4, $5, $6) returning id",
                name,
                household,
                unit,
                address,
                list(tags),
                notes,
            )
            for phone in phones:
                await _add_phone(conn, customer_id, phone, None)
            return await Customers(conn).get(customer_id)

    async def add_phone(self, customer_id: int, phone: str, label: str | None = None) -> Customer:
        """Add a phone number to a file; a number that belongs to another file is refused."""
        async with transaction(self.db) as conn:
            await Customers(conn).get(customer_id)
            await _add_phone(conn, customer_id, phone, label)
            return await Customers(conn).get(customer_id)

    async def update(self, customer_id: int, **changes: Any) -> Customer:
        """Change fields of a file: ``name``, ``household``, ``unit``, ``address``, ``tags``,
        ``notes``."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise InvalidChange(f"customer field {unknown[0]!r} cannot be changed")
        if not changes:
            return await self.get(customer_id)
        names = list(changes)
        values = [list(v) if n == "tags" else v for n, v in changes.items()]
        assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(names, 2))
        updated = await self.db.fetchval(
            f"update customers set {assignments} where id = $1 returning id",  # noqa: S608
            customer_id,
            *values,
        )
        if updated is None:
            raise NotFound(f"customer {customer_id} not found")
        return await self.get(customer_id)

    async def search(
        self, text: str, *, limit: int = 20, scope: TicketScope | None = None
    ) -> list[Customer]:
        """Files whose name, household, unit or address contains ``text``, or with a phone
        number containing it; best matches (exact phone, then name) first. With ``scope``,
        only the customers of a ticket in that scope."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args: list[Any] = [pattern, text, limit]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        in_scope = (
            "and exists (select 1 from tickets t where t.customer_id = c.id and "  # noqa: S608
            f"{scope_sql('t', scope, arg)})"
            if scope is not None
            else ""
        )
        rows = await self.db.fetch(
            _SELECT  # noqa: S608 (constant text)
            + """
            where (c.name ilike $1 or c.household ilike $1 or c.unit ilike $1
               or c.address ilike $1
               or exists (select 1 from customer_phones p
                          where p.customer_id = c.id and p.phone like $1))
            """
            + in_scope
            + """
            order by exists (select 1 from customer_phones p
                             where p.customer_id = c.id and p.phone = $2) desc,
                     lower(c.name), c.id
            limit $3
            """,
            *args,
        )
        return [_customer(row) for row in rows]


async def _add_phone(conn: Db, customer_id: int, phone: str, label: str | None) -> None:
    phone = phone.strip()
    if not phone:
        raise InvalidChange("a phone number cannot be empty")
    owner = await conn.fetchval(
        "insert into customer_phones (phone, customer_id, label) values ($1, $2, $3) "
        "on conflict (phone) do update set label = coalesce(excluded.label, customer_phones.label) "
        "where customer_phones.customer_id = excluded.customer_id "
        "returning customer_id",
        phone,
        customer_id,
        label,
    )
    if owner is None:
        raise InvalidChange(f"phone {phone} already belongs to another customer")
