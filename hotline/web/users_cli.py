"""``hotline users add|list|passwd|disable|enable``: manage user accounts from the command line.

The first admin is created here (the API lets only admins manage users):

    hotline users add --config hotline.toml --role admin --username root

The password comes from ``--password-file`` (its first line), or from the
terminal without echo, or from the first line of standard input when that is not
a terminal. ``HOTLINE_DATABASE_URL`` overrides ``[database] url``. An agent id
and queues must be configured ones. ``passwd`` sets a new password (same
source), ``disable`` and ``enable`` switch an account off and on; ``passwd`` and
``disable`` end the user's sessions (each is refused at its next request: a
session is bound to the password stamp and to an active user). The last active
admin cannot be disabled. Problems are explained on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

import asyncpg

from hotline.config import ConfigError, Settings, load_settings_with_database
from hotline.store.db import InvalidChange, create_pool
from hotline.store.users import ROLES, User, Users
from hotline.web.users import _keep_an_admin

__all__ = ["register"]


class _Refused(Exception):
    """A problem to explain to the user (exit status 2)."""


def _settings(path: str) -> Settings:
    try:
        return load_settings_with_database(path)
    except ConfigError as exc:
        raise _Refused(f"invalid configuration: {exc}") from exc


def _password(path: str | None) -> str:
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise _Refused(f"cannot read the password file: {exc}") from exc
        return lines[0] if lines else ""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise _Refused("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _check(settings: Settings, agent_id: str | None, queues: list[str]) -> None:
    if agent_id is not None and agent_id not in settings.agents:
        raise _Refused(f"--agent-id: {agent_id!r} is not an agent of {settings.source}")
    for queue in queues:
        if queue not in settings.queues:
            raise _Refused(f"--queues: {queue!r} is not a queue of {settings.source}")


async def _run(settings: Settings, work: Any) -> Any:
    pool = await create_pool(settings.database_url.reveal(), max_size=2)
    try:
        return await work(Users(pool))
    finally:
        await pool.close()


def _describe(user: User) -> str:
    agent = f" agent={user.agent_id}" if user.agent_id else ""
    queues = f" queues={','.join(user.queues)}" if user.queues else ""
    state = "" if user.active else " (inactive)"
    return f"{user.id}\t{user.username}\t{user.role}{agent}{queues}{state}"


def _database_errors(action: str, run: Any) -> Any:
    try:
        return run()
    except asyncpg.UndefinedTableError as exc:
        raise _Refused("the database has no users table: run 'hotline migrate' first") from exc
    except (OSError, TimeoutError) as exc:
        raise _Refused(f"cannot reach the database: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _Refused(f"{action} failed: {type(exc).__name__}: {exc}") from exc


def _add(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    queues = [queue.strip() for queue in (args.queues or "").split(",") if queue.strip()]
    _check(settings, args.agent_id, queues)
    password = _password(args.password_file)

    async def add(users: Users) -> User:
        return await users.create(
            args.username,
            password,
            role=args.role,
            agent_id=args.agent_id,
            queues=queues,
            display_name=args.display_name or "",
        )

    try:
        user = _database_errors("adding the user", lambda: asyncio.run(_run(settings, add)))
    except InvalidChange as exc:
        raise _Refused(str(exc)) from exc
    print(f"added {_describe(user)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args.config)

    async def find(users: Users) -> list[User]:
        return await users.find()

    for user in _database_errors("listing users", lambda: asyncio.run(_run(settings, find))):
        print(_describe(user))
    return 0


async def _named(users: Users, username: str) -> User:
    user = await users.by_username(username)
    if user is None:
        raise _Refused(f"--username: no user {username!r}")
    return user


def _passwd(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    password = _password(args.password_file)

    async def change(users: Users) -> User:
        user = await _named(users, args.username)
        await users.set_password(user.id, password)
        return user

    try:
        user = _database_errors(
            "changing the password", lambda: asyncio.run(_run(settings, change))
        )
    except InvalidChange as exc:
        raise _Refused(str(exc)) from exc
    print(f"password changed for {user.username}; their sessions are ended")
    return 0


def _set_active(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    active = args.users_command == "enable"

    async def switch(users: Users) -> User:
        user = await _named(users, args.username)
        await _keep_an_admin(users, user, {"active": active})
        return await users.update(user.id, active=active)

    try:
        user = _database_errors("changing the user", lambda: asyncio.run(_run(settings, switch)))
    except InvalidChange as exc:
        raise _Refused(str(exc)) from exc
    print(f"{'enabled' if active else 'disabled'} {_describe(user)}")
    return 0


def _handle(args: argparse.Namespace) -> int:
    try:
        status: int = args.users_handler(args)
    except _Refused as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    return status


def register(commands: Any) -> None:
    """Add ``users add|list|passwd|disable|enable``."""
    parser = commands.add_parser(
        "users",
        help="manage user accounts (agents, supervisors, admins)",
        description="Create, list, re-password, disable and enable user accounts.",
        epilog=(
            "examples:\n"
            "  hotline users add --config hotline.toml --role admin --username root\n"
            "  hotline users passwd --config hotline.toml --username root --password-file pw\n"
            "  hotline users disable --config hotline.toml --username lilei"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a user")
    add.add_argument("--config", required=True, help="TOML configuration file")
    add.add_argument("--username", required=True, help="the login name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--agent-id", help="the configured agent this user works as")
    add.add_argument("--queues", help="comma-separated queues whose tickets the user sees")
    add.add_argument("--display-name", help="a name to show")
    add.add_argument(
        "--password-file", help="read the password from this file (default: ask, or stdin)"
    )
    add.set_defaults(handler=_handle, users_handler=_add)
    listing = actions.add_parser("list", help="list the users")
    listing.add_argument("--config", required=True, help="TOML configuration file")
    listing.set_defaults(handler=_handle, users_handler=_list)
    passwd = actions.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("--config", required=True, help="TOML configuration file")
    passwd.add_argument("--username", required=True, help="the login name")
    passwd.add_argument(
        "--password-file", help="read the password from this file (default: ask, or stdin)"
    )
    passwd.set_defaults(handler=_handle, users_handler=_passwd)
    for name, what in (
        ("disable", "switch a user off (ends their sessions)"),
        ("enable", "switch a user on again"),
    ):
        switch = actions.add_parser(name, help=what)
        switch.add_argument("--config", required=True, help="TOML configuration file")
        switch.add_argument("--username", required=True, help="the login name")
        switch.set_defaults(handler=_handle, users_handler=_set_active)
