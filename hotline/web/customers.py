"""The customers API: search, read and change customer files, every read audited.

A customer file is confidential (docs/ARCHITECTURE.md §7). Every answer that shows one
writes an audit-log row in the same transaction, with the principal as actor:
``customer.read`` for ``GET /api/customers/{id}``, ``customer.search`` for each
file a search returns (with the search text in ``detail``), and
``customer.update`` for a change (with the changed field names). Agents only
find and read the customers of tickets they may see (403 otherwise);
supervisors, admins and the integration token read any.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from hotline.store.audit import AuditLog
from hotline.store.customers import Customer, Customers
from hotline.store.db import transaction
from hotline.store.tickets import TicketFilter
from hotline.web.auth import principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.openapi import Api, Input, array, record, scalar, string
from hotline.web.schema import Array, Integer, Object, Text

__all__ = ["api", "customer_json"]

api = Api()

_ID: Final = {"customer_id": Integer(minimum=1, maximum=2**63 - 1)}
_TIME: Final = string(fmt="date-time")
CUSTOMER_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "name": string(),
        "phones": array(string()),
        "household": string(nullable=True),
        "unit": string(nullable=True),
        "address": string(nullable=True),
        "tags": array(string()),
        "notes": string(),
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)


def customer_json(customer: Customer) -> dict[str, Any]:
    """The API's view of a customer file."""
    return {
        "id": customer.id,
        "name": customer.name,
        "phones": list(customer.phones),
        "household": customer.household,
        "unit": customer.unit,
        "address": customer.address,
        "tags": list(customer.tags),
        "notes": customer.notes,
        "created_at": customer.created_at.isoformat(),
        "updated_at": customer.updated_at.isoformat(),
    }


async def _check_visible(request: web.Request, customer_id: int) -> None:
    """404 for an unknown customer; 403 when an agent sees none of the customer's tickets."""
    store = store_of(request)
    await Customers(store.pool).get(customer_id)
    scope = principal_of(request).scope
    if scope is None:
        return
    if not await store.tickets.count(TicketFilter(customer_id=customer_id, scope=scope)):
        raise json_error(403, "forbidden", message="no ticket of this customer is in your queues")


@api.operation(
    "GET",
    "/api/customers",
    summary="Search customer files (each file returned is audited as read)",
    tag="customers",
    query={
        "q": Text(
            max_length=100,
            min_length=1,
            single_line=True,
            description="in name, household, unit, address or phone numbers",
        ),
        "limit": Integer(minimum=1, maximum=50, description="default 20"),
    },
    query_required=frozenset({"q"}),
    response=array(CUSTOMER_SCHEMA),
)
async def search_customers(request: web.Request, given: Input) -> web.Response:
    """The best matches (an exact phone number first, then by name)."""
    store = store_of(request)
    principal = principal_of(request)
    text: str = given.query["q"]
    async with transaction(store.pool) as conn:
        found = await Customers(conn).search(
            text, limit=given.query.get("limit", 20), scope=principal.scope
        )
        audit = AuditLog(conn)
        for customer in found:
            await audit.write(
                principal.name, "customer.search", "customer", str(customer.id), {"query": text}
            )
    return web.json_response([customer_json(customer) for customer in found])


@api.operation(
    "GET",
    "/api/customers/{customer_id}",
    summary="One customer file (audited)",
    tag="customers",
    path_params=_ID,
    response=CUSTOMER_SCHEMA,
)
async def get_customer(request: web.Request, given: Input) -> web.Response:
    """Read a customer file; the read is written to the audit log."""
    customer_id: int = given.path["customer_id"]
    await _check_visible(request, customer_id)
    customer = await Customers(store_of(request).pool).read(
        customer_id, actor=principal_of(request).name
    )
    return web.json_response(customer_json(customer))


_SHORT: Final = Text(max_length=200, single_line=True, nullable=True)
_CHANGE: Final = Object(
    {
        "name": Text(max_length=200, single_line=True),
        "household": _SHORT,
        "unit": _SHORT,
        "address": Text(max_length=500, single_line=True, nullable=True),
        "tags": Array(Text(max_length=50, min_length=1, single_line=True), max_items=20),
        "notes": Text(max_length=10_000),
    },
    min_properties=1,
)


@api.operation(
    "PATCH",
    "/api/customers/{customer_id}",
    summary="Change a customer file (audited)",
    tag="customers",
    path_params=_ID,
    body=_CHANGE,
    response=CUSTOMER_SCHEMA,
)
async def update_customer(request: web.Request, given: Input) -> web.Response:
    """Change the given fields; the change (and the read of the result) is audited."""
    customer_id: int = given.path["customer_id"]
    await _check_visible(request, customer_id)
    store = store_of(request)
    async with transaction(store.pool) as conn:
        customer = await Customers(conn).update(customer_id, **given.body)
        await AuditLog(conn).write(
            principal_of(request).name,
            "customer.update",
            "customer",
            str(customer_id),
            {"fields": sorted(given.body)},
        )
    return web.json_response(customer_json(customer))
