"""The simulated PBX's channel actions: ``Originate``, ``Hangup``, ``Redirect``, ``Getvar``
and ``Setvar``, with Asterisk's own error messages.

Each action is a function of the PBX state (:class:`hotline.sim.core.Core`), the
session and the action; :class:`hotline.sim.pbx.SimPbx` registers them.
"""

from __future__ import annotations

from hotline.ami.codec import Message
from hotline.sim.amiserver import AmiSession
from hotline.sim.channels import Channel
from hotline.sim.core import Core
from hotline.sim.legs import OriginateRequest

__all__ = [
    "getvar",
    "hangup",
    "originate",
    "parse_callerid",
    "parse_originate",
    "read_variable",
    "redirect",
    "setvar",
]


def originate(core: Core, session: AmiSession, message: Message) -> None:
    """``Originate``: queued (``Async``) or answered when the leg is placed."""
    request = parse_originate(message)
    if isinstance(request, str):
        session.send_error(message, request)
        return
    if request.is_async:
        session.send_success(message, "Originate successfully queued")
    core.originate(request, session)


def _channel(core: Core, session: AmiSession, message: Message, missing: str) -> Channel | None:
    name = message.get("Channel") or ""
    if not name:
        session.send_error(message, missing)
        return None
    channel = core.channels.get(name)
    if channel is None:
        session.send_error(message, "No such channel")
    return channel


def hangup(core: Core, session: AmiSession, message: Message) -> None:
    """``Hangup`` of ``Channel`` with ``Cause`` (default 16, normal clearing)."""
    channel = _channel(core, session, message, "No channel specified")
    if channel is None:
        return
    try:
        cause = int(message.get("Cause") or 16)
    except ValueError:
        cause = 16
    session.send_success(message, "Channel Hungup")
    core.manager_hangup(channel, cause)


def redirect(core: Core, session: AmiSession, message: Message) -> None:
    """``Redirect`` of ``Channel`` to ``Context``/``Exten``/``Priority``."""
    name = message.get("Channel") or ""
    if not name:
        session.send_error(message, "Channel not specified")
        return
    priority_text = message.get("Priority") or "1"
    if not priority_text.isdigit():
        session.send_error(message, "Invalid priority")
        return
    channel = core.channels.get(name)
    if channel is None:
        session.send_error(message, f"Channel does not exist: {name}")
        return
    context = message.get("Context") or channel.context
    exten = message.get("Exten") or channel.exten
    session.send_success(message, "Redirect successful")
    core.redirect(channel, context, exten, int(priority_text))


def getvar(core: Core, session: AmiSession, message: Message) -> None:
    """``Getvar``: a channel variable (or built-in), or a global without ``Channel``."""
    variable = message.get("Variable") or ""
    if not variable:
        session.send_error(message, "No variable specified")
        return
    name = message.get("Channel") or ""
    if name:
        channel = core.channels.get(name)
        if channel is None:
            session.send_error(message, "No such channel")
            return
        value = read_variable(channel, variable)
    else:
        value = core.globals.get(variable, "")
    session.send_response(message, "Success", [("Variable", variable), ("Value", value)])


def setvar(core: Core, session: AmiSession, message: Message) -> None:
    """``Setvar``: a channel variable, or a global without ``Channel``."""
    variable = message.get("Variable") or ""
    if not variable:
        session.send_error(message, "No variable specified")
        return
    value = message.get("Value") or ""
    name = message.get("Channel") or ""
    if name:
        channel = core.channels.get(name)
        if channel is None:
            session.send_error(message, "No such channel")
            return
        session.send_success(message, "Variable Set")
        core.set_var(channel, variable, value)
        return
    core.globals[variable] = value
    session.send_success(message, "Variable Set")


def read_variable(channel: Channel, variable: str) -> str:
    """A channel variable, else the built-in of that name (``UNIQUEID``, ``CHANNEL``, ...)."""
    builtin = {
        "UNIQUEID": channel.uniqueid,
        "CHANNEL": channel.name,
        "CALLERID(num)": channel.cid_num or "",
        "CALLERID(name)": channel.cid_name or "",
        "CONTEXT": channel.context,
        "EXTEN": channel.exten,
    }
    value = channel.variables.get(variable)
    return value if value is not None else builtin.get(variable, "")


def parse_callerid(text: str) -> tuple[str | None, str | None]:
    """``"Name" <number>``, ``Name <number>`` or a bare number."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].rpartition("<")
        name = name.strip().strip('"').strip()
        return number.strip() or None, name or None
    if text.replace("+", "").isdigit():
        return text, None
    return None, text.strip('"') or None


def parse_originate(message: Message) -> OriginateRequest | str:
    """The request, or Asterisk's error text for a bad one."""
    error = _originate_error(message)
    if error is not None:
        return error
    callerid_text = message.get("CallerID")
    return OriginateRequest(
        channel=message.get("Channel") or "",
        context=message.get("Context") or None,
        exten=message.get("Exten") or "s",
        priority=int(message.get("Priority") or "1"),
        application=message.get("Application") or None,
        data=message.get("Data") or "",
        timeout=max(int(message.get("Timeout") or "30000"), 0) / 1000.0,
        callerid=parse_callerid(callerid_text) if callerid_text else None,
        variables=_originate_variables(message),
        action_id=message.get("ActionID"),
        channel_id=message.get("ChannelId") or None,
        other_channel_id=message.get("OtherChannelId") or None,
        is_async=(message.get("Async") or "").lower() in ("true", "yes", "1", "on"),
    )


def _originate_error(message: Message) -> str | None:
    """Asterisk's error text for a bad ``Originate``, checked in Asterisk's order, or ``None``."""
    channel = message.get("Channel") or ""
    if not channel:
        return "Channel not specified"
    if not (message.get("Priority") or "1").lstrip("-").isdigit():
        return "Invalid priority"
    try:
        int(message.get("Timeout") or "30000")
    except ValueError:
        return "Invalid timeout"
    if "/" not in channel:
        return "Invalid channel"
    return None


def _originate_variables(message: Message) -> list[tuple[str, str]]:
    """Every ``Variable`` header's ``name=value`` items (comma-separated), in order."""
    variables: list[tuple[str, str]] = []
    for header in message.getall("Variable"):
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep and name.strip():
                variables.append((name.strip(), value))
    return variables
