"""The customers API: search, read and change customer files, every read audited.

A customer file is confidential (docs/ARCHITECTURE.md §7). Every answer that shows one
writes an audit-log row in the same transaction, with the principal as actor:
``customer.read`` for ``GET /api/customers/{id}``, ``customer.search`` for each
file a search returns (with the search text in ``detail``), and
``customer.update`` for a change (with the changed field names).

Who may see which customer (:func:`check_customer_access`): supervisors, admins
and the integration token any. An agent only the customers of tickets they may
see (of their queues, or assigned to them), and the caller on their phone right
now (ringing or talking: the screen-pop; the engine's router answers
:meth:`hotline.domain.routing.Router.caller_on_phone`, and a customer whose
phones include that number is visible). The same rule covers reading, searching
and changing a customer, opening a ticket for a customer and pointing a ticket
at another customer. A refusal is 403 and is written to the audit log
(``customer.denied``, with the operation).
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
from hotline.web.keys import ENGINE
from hotline.web.openapi import Api, Input, array, record, scalar, string
from hotline.web.schema import Array, Integer, Object, Text

__all__ = ["api", "caller_on_phone", "check_customer_access", "customer_json"]

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


def _matches(customer: Customer, text: str) -> bool:
    """Whether a search for ``text`` finds ``customer`` (as :meth:`Customers.search`)."""
    needle = text.lower()
    fields = (customer.name, customer.household, customer.unit, customer.address)
    return any(needle in (value or "").lower() for value in fields) or any(
        text in phone for phone in customer.phones
    )


def caller_on_phone(request: web.Request) -> str | None:
    """The number of the caller on the principal's agent phone right now, if any."""
    agent_id = principal_of(request).agent_id
    if agent_id is None or ENGINE not in request.app:
        return None
    return request.app[ENGINE].router.caller_on_phone(agent_id)


async def check_customer_access(request: web.Request, customer_id: int, operation: str) -> None:
    """404 for an unknown customer; 403 (audited as ``customer.denied``) when the principal
    may not see it (see the module docstring). ``operation`` names what was tried."""
    store = store_of(request)
    customer = await Customers(store.pool).get(customer_id)
    principal = principal_of(request)
    scope = principal.scope
    if scope is None:
        return
    if await store.tickets.count(TicketFilter(customer_id=customer_id, scope=scope)):
        return
    caller = caller_on_phone(request)
    if caller is not None and caller in customer.phones:
        return
    await AuditLog(store.pool).write(
        principal.name, "customer.denied", "customer", str(customer_id), {"operation": operation}
    )
    raise json_error(
        403,
        "forbidden",
        message="this customer is on no ticket of yours and not on your phone",
    )


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
    limit = given.query.get("limit", 20)
    caller = caller_on_phone(request) if principal.scope is not None else None
    async with transaction(store.pool) as conn:
        customers = Customers(conn)
        found = await customers.search(text, limit=limit, scope=principal.scope)
        on_phone = await customers.find_by_phone(caller) if caller is not None else None
        if (
            on_phone is not None
            and _matches(on_phone, text)
            and all(customer.id != on_phone.id for customer in found)
        ):
            found = [on_phone, *found][:limit]
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
    await check_customer_access(request, customer_id, "read")
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
    await check_customer_access(request, customer_id, "update")
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
