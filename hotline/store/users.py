"""Users: agents, supervisors and admins, with argon2 password hashes.

Hashing and verifying run in a worker thread (argon2 is deliberately slow), so
the event loop never waits on them. An unknown user name costs the same time
as a wrong password, so a login does not reveal which names exist.

Password rules (:func:`password_problem`, checked at every creation, change and
reset): at least :data:`MIN_PASSWORD_LENGTH` characters, not only whitespace,
not the user name (nor containing a name of four or more characters), and not
a common password: the shipped list ``hotline/store/data/common-passwords.txt``
(compared without case, also with trailing digits and symbols removed, so
``Password2024!`` is refused as ``password``).

:attr:`User.password_stamp` changes whenever the password hash does; the API
binds sessions to it, so a new password ends the user's other sessions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any, Final

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hotline.store.db import Db, InvalidChange, NotFound, from_row

__all__ = ["MIN_PASSWORD_LENGTH", "ROLES", "User", "Users", "common_passwords", "password_problem"]

ROLES: Final = ("agent", "supervisor", "admin")
MIN_PASSWORD_LENGTH: Final = 8
_SELECT: Final = """
select
    id, username, display_name, role, agent_id, queues, active, created_at,
    last_login_at, device,
    left(md5(password_hash), 16) as password_stamp,
    password_hash
from users
"""
_EDITABLE: Final = frozenset({"display_name", "role", "agent_id", "queues", "active", "device"})


@dataclass(frozen=True, slots=True)
class User:
    """A user (the password hash stays in the database layer)."""

    id: int
    username: str
    display_name: str
    role: str
    agent_id: str | None
    queues: tuple[str, ...]
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    device: str | None = None
    """The user's own phone (a supervisor's, rung for listen / whisper / barge)."""
    password_stamp: str = field(default="", repr=False)
    """A digest of the current password hash: it changes with every new password."""


def _user(row: asyncpg.Record) -> User:
    user = from_row(User, row)
    return replace(user, queues=tuple(user.queues))


_TRAILING: Final = re.compile(r"[\W\d_]+$")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower case."""
    text = files("hotline.store").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` may not be ``username``'s password, or ``None`` when it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if not password.strip():
        return "a password cannot be only whitespace"
    lowered = password.lower()
    stem = _TRAILING.sub("", lowered)
    name = username.lower()
    if name and (name in (lowered, stem) or (len(name) >= 4 and name in lowered)):
        return "a password cannot be or contain the user name"
    common = common_passwords()
    if lowered in common or lowered.strip() in common or stem in common:
        return "this password is too common (it is on the list of common passwords)"
    return None


def _check_password(password: str, username: str) -> None:
    problem = password_problem(password, username)
    if problem is not None:
        raise InvalidChange(problem)


class Users:
    """The users repository; see the module docstring."""

    def __init__(self, db: Db, *, hasher: PasswordHasher | None = None) -> None:
        """Run on ``db``; ``hasher`` defaults to argon2id with argon2-cffi's parameters."""
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def create(
        self,
        username: str,
        password: str,
        *,
        role: str,
        agent_id: str | None = None,
        queues: Sequence[str] = (),
        display_name: str = "",
        device: str | None = None,
    ) -> User:
        """A new user; the name is unique regardless of case."""
        if role not in ROLES:
            raise InvalidChange(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        _check_password(password, username)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        try:
            user_id = await self.db.fetchval(
                "insert into users (username, display_name, role, agent_id, queues, "
                "password_hash, device) values ($1, $2, $3, $4, $5, $6, $7) returning id",
                username,
                display_name,
                role,
                agent_id,
                list(queues),
                password_hash,
                device,
            )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidChange(
                f"user {username!r} or agent {agent_id!r} already has an account"
            ) from exc
        except asyncpg.CheckViolationError as exc:
            raise InvalidChange(f"user name {username!r} is not valid") from exc
        return await self.get(user_id)

    async def get(self, user_id: int) -> User:
        """The user with this id."""
        row = await self.db.fetchrow(_SELECT + " where id = $1", user_id)
        if row is None:
            raise NotFound(f"user {user_id} not found")
        return _user(row)

    async def by_username(self, username: str) -> User | None:
        """The user with this name (any case), if any."""
        row = await self.db.fetchrow(_SELECT + " where lower(username) = lower($1)", username)
        return _user(row) if row is not None else None

    async def find(self, *, active_only: bool = False) -> list[User]:
        """Every user, by name."""
        rows = await self.db.fetch(
            _SELECT + " where active or not $1 order by lower(username)", active_only
        )
        return [_user(row) for row in rows]

    async def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this name and password, else ``None``.

        A hash made with older parameters is replaced on success; the login time
        is recorded.
        """
        row = await self.db.fetchrow(_SELECT + " where lower(username) = lower($1)", username)
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self.hasher.hash, "not a password")
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            return None
        if not await asyncio.to_thread(self._verify, row["password_hash"], password):
            return None
        if not row["active"]:
            return None
        new_hash: str | None = None
        if self.hasher.check_needs_rehash(row["password_hash"]):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
        await self.db.execute(
            "update users set last_login_at = now(), "
            "password_hash = coalesce($2, password_hash) where id = $1",
            row["id"],
            new_hash,
        )
        return await self.get(row["id"])

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def set_password(self, user_id: int, password: str) -> None:
        """Replace a user's password (the rules of :func:`password_problem` apply)."""
        user = await self.get(user_id)
        _check_password(password, user.username)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        updated = await self.db.fetchval(
            "update users set password_hash = $2 where id = $1 returning id", user_id, password_hash
        )
        if updated is None:
            raise NotFound(f"user {user_id} not found")

    async def update(self, user_id: int, **changes: Any) -> User:
        """Change ``display_name``, ``role``, ``agent_id``, ``queues``, ``active`` or ``device``."""
        unknown = sorted(set(changes) - _EDITABLE)
        if unknown:
            raise InvalidChange(f"user field {unknown[0]!r} cannot be changed")
        if "role" in changes and changes["role"] not in ROLES:
            raise InvalidChange(f"role must be one of {', '.join(ROLES)}")
        if not changes:
            return await self.get(user_id)
        values = [list(v) if n == "queues" else v for n, v in changes.items()]
        assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(changes, 2))
        try:
            updated = await self.db.fetchval(
                f"update users set {assignments} where id = $1 returning id",  # noqa: S608
                user_id,
                *values,
            )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidChange(
                f"agent {changes.get('agent_id')!r} already has an account"
            ) from exc
        if updated is None:
            raise NotFound(f"user {user_id} not found")
        return await self.get(user_id)
