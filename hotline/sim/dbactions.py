"""The simulated PBX's AstDB actions: ``DBPut``, ``DBGet``, ``DBGetTree``, ``DBDel`` and
``DBDelTree`` on :attr:`hotline.sim.core.Core.db`, with Asterisk 22's replies.
"""

from __future__ import annotations

from hotline.ami.codec import Message
from hotline.sim.amiserver import AmiSession
from hotline.sim.channels import Pairs
from hotline.sim.core import Core
from hotline.sim.listactions import complete

__all__ = ["dbdel", "dbdeltree", "dbget", "dbgettree", "dbput"]


def dbgettree(core: Core, session: AmiSession, message: Message) -> None:
    """Every entry of a family (or of all families, or under ``Key``), as an event list.

    As Asterisk 22 answers (``journal_dbgettree.jsonl``): each item's ``Key`` is
    the whole path ``/<family>/<key>`` and there is no ``Family`` header; an
    empty result is still a ``Success`` with ``ListItems: 0``.
    """
    family = (message.get("Family") or "").strip("/")
    key = (message.get("Key") or "").strip("/")
    prefix = f"/{family}/{key}" if key else f"/{family}" if family else ""
    items = sorted(
        (f"/{name}/{entry_key}", value)
        for name, entries in core.db.items()
        for entry_key, value in entries.items()
    )
    items = [
        (path, value)
        for path, value in items
        if not prefix or path == prefix or path.startswith(prefix + "/")
    ]
    action_id = message.get("ActionID")
    tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
    session.send_response(
        message, "Success", [("EventList", "start"), ("Message", "Result will follow")]
    )
    for path, value in items:
        session.send([("Event", "DBGetTreeResponse"), ("Key", path), ("Val", value), *tail])
    complete(session, "DBGetTreeComplete", action_id, len(items))


def dbput(core: Core, session: AmiSession, message: Message) -> None:
    """``DBPut`` of ``Family``/``Key`` = ``Val``."""
    family, key = message.get("Family") or "", message.get("Key") or ""
    if not family:
        session.send_error(message, "No family specified")
        return
    if not key:
        session.send_error(message, "No key specified")
        return
    core.db.setdefault(family, {})[key] = message.get("Val") or ""
    session.send_success(message, "Updated database successfully")


def dbget(core: Core, session: AmiSession, message: Message) -> None:
    """``DBGet``: one ``DBGetResponse`` event, or the error Asterisk gives."""
    family, key = message.get("Family") or "", message.get("Key") or ""
    if not family or not key:
        session.send_error(message, "No family specified." if not family else "No key specified.")
        return
    value = core.db.get(family, {}).get(key)
    if value is None:
        session.send_error(message, "Database entry not found")
        return
    action_id = message.get("ActionID")
    tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
    session.send_response(
        message, "Success", [("EventList", "start"), ("Message", "Result will follow")]
    )
    session.send(
        [("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value), *tail]
    )
    complete(session, "DBGetComplete", action_id, 1)


def dbdel(core: Core, session: AmiSession, message: Message) -> None:
    """``DBDel`` of ``Family``/``Key``."""
    family, key = message.get("Family") or "", message.get("Key") or ""
    if not family or not key:
        session.send_error(message, "No family specified." if not family else "No key specified.")
        return
    if core.db.get(family, {}).pop(key, None) is None:
        session.send_error(message, "Database entry could not be deleted")
        return
    session.send_success(message, "Key deleted successfully")


def dbdeltree(core: Core, session: AmiSession, message: Message) -> None:
    """``DBDelTree``: a family, or the entries under ``Key`` in it."""
    family = message.get("Family") or ""
    if not family:
        session.send_error(message, "No family specified.")
        return
    key = message.get("Key") or ""
    entries = core.db.get(family, {})
    doomed = [k for k in entries if not key or k == key or k.startswith(key + "/")]
    if not doomed:
        session.send_error(message, "Database entry not found")
        return
    for entry_key in doomed:
        del entries[entry_key]
    session.send_success(message, "Key tree deleted successfully")
