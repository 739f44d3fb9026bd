"""Agent commands: what an agent (or a supervisor) asks the router to do, one type each;
caller commands: what a supervisor does to a waiting caller (:data:`CallerCommand`).

The engine applies them in its task (:meth:`hotline.engine.Engine.command`), matching
on the type; :func:`agent_command` turns the API's verb into one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AgentCommand",
    "CallerCommand",
    "Login",
    "Logout",
    "MoveCaller",
    "Pause",
    "Ready",
    "SetPriority",
    "Transfer",
    "Unpause",
    "agent_command",
]


@dataclass(frozen=True, slots=True)
class Login:
    """Log the agent in; they become available unless paused."""

    agent_id: str
    kind: ClassVar[str] = "login"


@dataclass(frozen=True, slots=True)
class Logout:
    """Log the agent out: no new calls; a call in progress carries on."""

    agent_id: str
    kind: ClassVar[str] = "logout"


@dataclass(frozen=True, slots=True)
class Pause:
    """Pause the agent with a reason (``"paused"`` when empty)."""

    agent_id: str
    reason: str = ""
    kind: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class Unpause:
    """End the agent's pause."""

    agent_id: str
    kind: ClassVar[str] = "unpause"


@dataclass(frozen=True, slots=True)
class Ready:
    """End the agent's wrap-up now (the panel's "ready now"); nothing otherwise."""

    agent_id: str
    kind: ClassVar[str] = "ready"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Send the caller the agent is talking to back into the inbound context for ``queue``
    (the same call and ticket); the agent goes to wrap-up."""

    agent_id: str
    queue: str
    kind: ClassVar[str] = "transfer"


AgentCommand = Login | Logout | Pause | Unpause | Ready | Transfer
"""Every agent command."""


@dataclass(frozen=True, slots=True)
class SetPriority:
    """Give a waiting caller a new priority (the wallboard's "raise priority")."""

    call_id: str
    priority: int
    kind: ClassVar[str] = "priority"


@dataclass(frozen=True, slots=True)
class MoveCaller:
    """Move a waiting caller to another queue, keeping their arrival time."""

    call_id: str
    queue: str
    kind: ClassVar[str] = "move"


CallerCommand = SetPriority | MoveCaller
"""Every command on a waiting caller."""


def agent_command(kind: str, agent_id: str, reason: str = "") -> AgentCommand:
    """The command named by ``kind`` (``login``, ``logout``, ``pause``, ``unpause``,
    ``ready``).

    Raises :class:`ValueError` for any other verb.
    """
    match kind:
        case "login":
            return Login(agent_id)
        case "logout":
            return Logout(agent_id)
        case "pause":
            return Pause(agent_id, reason)
        case "unpause":
            return Unpause(agent_id)
        case "ready":
            return Ready(agent_id)
        case _:
            raise ValueError(f"unknown agent command {kind!r}")
