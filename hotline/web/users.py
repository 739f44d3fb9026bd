"""The users API (admins only): list, read, create and change user accounts.

Passwords are hashed with argon2id by :class:`hotline.store.users.Users` and
never answered. An agent id and queues must be configured ones (422). The last
active admin cannot be demoted or deactivated (409), so the service cannot lose
its last administrator through the API. Every creation and change is written to
the audit log (``user.create``, ``user.update``; a new password shows only as
the field name). A password must pass :func:`hotline.store.users.password_problem`
(422 otherwise); a new password ends every other session of that user (an admin
resetting their own password stays signed in in the session that did it).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from hotline.store.audit import AuditLog
from hotline.store.db import InvalidChange, transaction
from hotline.store.users import MIN_PASSWORD_LENGTH, ROLES, User, Users, password_problem
from hotline.web.auth import SESSIONS, USERS, principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.keys import SETTINGS
from hotline.web.openapi import Api, Input, array, enum, record, scalar, string
from hotline.web.schema import Array, Boolean, Integer, Object, Text, ValidationFailed
from hotline.web.tickets import NAME_PATTERN

__all__ = ["api", "user_json"]

api = Api()

_ID: Final = {"user_id": Integer(minimum=1, maximum=2**63 - 1)}
USER_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "username": string(),
        "display_name": string(),
        "role": enum(ROLES),
        "agent_id": string(nullable=True),
        "queues": array(string()),
        "active": scalar("boolean"),
        "created_at": string(fmt="date-time"),
        "last_login_at": string(fmt="date-time", nullable=True),
        "device": string(nullable=True),
    }
)
_PASSWORD: Final = Text(max_length=1024, min_length=MIN_PASSWORD_LENGTH)
_FIELDS: Final = {
    "display_name": Text(max_length=200, single_line=True),
    "role": Text(enum=ROLES),
    "agent_id": Text(max_length=64, pattern=NAME_PATTERN, nullable=True),
    "queues": Array(Text(max_length=64, pattern=NAME_PATTERN), max_items=50),
    "password": _PASSWORD,
    "device": Text(max_length=100, min_length=1, single_line=True, nullable=True),
}


def user_json(user: User) -> dict[str, Any]:
    """The API's view of a user (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "agent_id": user.agent_id,
        "queues": list(user.queues),
        "active": user.active,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
        "device": user.device,
    }


def _admin_only(request: web.Request) -> None:
    if not principal_of(request).is_admin:
        raise json_error(403, "forbidden", message="only admins manage users")


def _check_configured(request: web.Request, body: dict[str, Any]) -> None:
    settings = request.app[SETTINGS]
    problems: dict[str, str] = {}
    if body.get("agent_id") is not None and body["agent_id"] not in settings.agents:
        problems["agent_id"] = "is not a configured agent"
    unknown = [queue for queue in body.get("queues", ()) if queue not in settings.queues]
    if unknown:
        problems["queues"] = f"{unknown[0]!r} is not a configured queue"
    if problems:
        raise ValidationFailed(problems)


def _check_password(password: str, username: str) -> None:
    problem = password_problem(password, username)
    if problem is not None:
        raise ValidationFailed({"password": problem})


@api.operation(
    "GET", "/api/users", summary="Every user, by name", tag="users", response=array(USER_SCHEMA)
)
async def list_users(request: web.Request, _: Input) -> web.Response:
    """Every user account."""
    _admin_only(request)
    store_of(request)
    users = await request.app[USERS].find()
    return web.json_response([user_json(user) for user in users])


@api.operation(
    "GET",
    "/api/users/{user_id}",
    summary="One user",
    tag="users",
    path_params=_ID,
    response=USER_SCHEMA,
)
async def get_user(request: web.Request, given: Input) -> web.Response:
    """One user account."""
    _admin_only(request)
    store_of(request)
    return web.json_response(user_json(await request.app[USERS].get(given.path["user_id"])))


_CREATE: Final = Object(
    {"username": Text(max_length=64, pattern=NAME_PATTERN), **_FIELDS},
    required=frozenset({"username", "password", "role"}),
)


@api.operation(
    "POST",
    "/api/users",
    summary="Create a user",
    tag="users",
    body=_CREATE,
    response=USER_SCHEMA,
    status=201,
    errors=(409,),
)
async def create_user(request: web.Request, given: Input) -> web.Response:
    """A new user account (409 when the name or the agent already has one)."""
    _admin_only(request)
    body = dict(given.body)
    _check_configured(request, body)
    store = store_of(request)
    password = body.pop("password")
    _check_password(password, body["username"])
    user = await request.app[USERS].create(body.pop("username"), password, **body)
    await AuditLog(store.pool).write(
        principal_of(request).name,
        "user.create",
        "user",
        str(user.id),
        {"username": user.username, "role": user.role},
    )
    return web.json_response(
        user_json(user), status=201, headers={"Location": f"/api/users/{user.id}"}
    )


_CHANGE: Final = Object({**_FIELDS, "active": Boolean()}, min_properties=1)


async def _keep_an_admin(users: Users, user: User, changes: dict[str, Any]) -> None:
    demoted = changes.get("role", user.role) != "admin" or not changes.get("active", user.active)
    if user.role != "admin" or not user.active or not demoted:
        return
    others = [
        u for u in await users.find(active_only=True) if u.role == "admin" and u.id != user.id
    ]
    if not others:
        raise InvalidChange("the last active admin cannot be demoted or deactivated")


@api.operation(
    "PATCH",
    "/api/users/{user_id}",
    summary="Change a user (role, agent, queues, active, display name, password)",
    tag="users",
    path_params=_ID,
    body=_CHANGE,
    response=USER_SCHEMA,
    errors=(409,),
)
async def update_user(request: web.Request, given: Input) -> web.Response:
    """Change the given fields of a user account."""
    _admin_only(request)
    changes = dict(given.body)
    _check_configured(request, changes)
    store = store_of(request)
    user_id: int = given.path["user_id"]
    password = changes.pop("password", None)
    async with transaction(store.pool) as conn:
        await conn.execute("select pg_advisory_xact_lock(hashtext('hotline.users'))")
        users = Users(conn, hasher=request.app[USERS].hasher)
        before = await users.get(user_id)
        if password is not None:
            _check_password(password, before.username)
        await _keep_an_admin(users, before, changes)
        user = await users.update(user_id, **changes)
        if password is not None:
            await users.set_password(user_id, password)
            user = await users.get(user_id)
        await AuditLog(conn).write(
            principal_of(request).name,
            "user.update",
            "user",
            str(user_id),
            {"fields": sorted(given.body)},
        )
    session = principal_of(request).session
    if password is not None and session is not None and session.user_id == user_id:
        await request.app[SESSIONS].restamp(session.id, user.password_stamp)
    return web.json_response(user_json(user))
