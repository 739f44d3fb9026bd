"""Domain commands -> AMI actions, per the integration contract (docs/ARCHITECTURE.md §2)."""

from __future__ import annotations

from typing import assert_never

from hotline.domain.effects import (
    Command,
    DeleteJournalEntry,
    HangupChannel,
    OriginateAgentLeg,
    RedirectChannel,
    SetChannelVariable,
)
from hotline.pbx.resync import JOURNAL_FAMILY

__all__ = ["Action", "caller_id", "to_action"]

Action = tuple[str, list[tuple[str, str]], str | None]
"""An AMI action: its name, its headers, and the ActionID to use (None: the client picks)."""


def caller_id(name: str, number: str) -> str:
    """``"Name" <number>``, with quotes and angle brackets removed from the parts."""
    if name.strip() == "<unknown>":
        name = ""
    clean_name = name.replace('"', "").replace("<", "").replace(">", "").strip()
    clean_number = number.replace("<", "").replace(">", "").strip()
    if clean_name:
        return f'"{clean_name}" <{clean_number}>'
    return f"<{clean_number}>"


def to_action(command: Command) -> Action:
    """The AMI action for a domain command."""
    match command:
        case OriginateAgentLeg():
            return (
                "Originate",
                [
                    ("Channel", command.device),
                    ("Context", command.context),
                    ("Exten", command.exten),
                    ("Priority", "1"),
                    ("Timeout", str(round(command.timeout * 1000))),
                    ("CallerID", caller_id(command.caller_name, command.caller_number)),
                    ("Async", "true"),
                    ("ChannelId", command.offer_id),
                    *(
                        [("Variable", f"HOTLINE_CALLER={command.caller_channel}")]
                        if command.caller_channel
                        else []
                    ),
                    ("Variable", f"HOTLINE_TICKET={command.ticket}"),
                ],
                command.offer_id,
            )
        case HangupChannel():
            return "Hangup", [("Channel", command.channel), ("Cause", str(command.cause))], None
        case DeleteJournalEntry():
            return "DBDel", [("Family", JOURNAL_FAMILY), ("Key", command.uniqueid)], None
        case RedirectChannel():
            return (
                "Redirect",
                [
                    ("Channel", command.channel),
                    ("Context", command.context),
                    ("Exten", command.exten),
                    ("Priority", command.priority),
                ],
                None,
            )
        case SetChannelVariable():
            return (
                "Setvar",
                [
                    ("Channel", command.channel),
                    ("Variable", command.variable),
                    ("Value", command.value),
                ],
                None,
            )
        case _:
            assert_never(command)
