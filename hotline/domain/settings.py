"""The ACD's settings as domain values: queues, agents and routing-wide rules.

The router is built from these; :mod:`hotline.config` parses and validates the
TOML file into them (and re-exports them under their old names). This module
imports only the standard library, like the rest of :mod:`hotline.domain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["STRATEGIES", "AgentConfig", "QueueConfig", "RoutingConfig"]

STRATEGIES: Final = ("longest_idle", "round_robin", "fewest_calls", "skill_level")
"""The agent-selection strategies the router implements (a queue's ``strategy``)."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue: who may serve it, how agents are chosen, and what happens when it waits too long.

    ``priority_weight`` is added to every caller's priority in this queue when an
    agent who serves several queues picks the next caller. ``overflow_queue``
    moves a caller who waited ``max_wait`` seconds in this queue to another queue
    (keeping their arrival time); ``overflow_target`` (``context,exten,priority``)
    redirects them out of the hotline instead (voicemail, callback offer).
    """

    name: str
    skills: tuple[str, ...] = ()
    strategy: str = "longest_idle"
    ring_timeout: float = 15.0
    wrap_up: float = 10.0
    max_wait: float | None = None
    overflow_queue: str | None = None
    overflow_target: tuple[str, str, str] | None = None
    priority_weight: float = 0.0
    sticky: bool = True


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent: identity, softphone device, skills with levels (1-10), queues served."""

    id: str
    name: str
    device: str
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: tuple[str, ...] = ()

    def __hash__(self) -> int:
        """Agents are identified by id."""
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """ACD-wide settings.

    ``ring_cadence`` is the seconds of one ring (China: 1 s on, 4 s off = 5 s;
    North America: 6 s); ``sla_rings`` is the SLA in rings ("answered within three
    rings"). ``busy_retry_after`` is the earliest an agent whose phone answered
    busy/unavailable is offered a call again, even if its device is reported idle
    sooner; ``unavailable_cooldown`` the latest.
    """

    ring_cadence: float = 5.0
    sla_rings: int = 3
    max_consecutive_misses: int = 2
    unavailable_cooldown: float = 30.0
    busy_retry_after: float = 2.0
    sticky_days: float = 7.0
    default_queue: str = "support"
    inbound_context: str = "hotline-inbound"
    bridge_context: str = "hotline-bridge"
    outbound_context: str = "hotline-outbound"
    originate_grace: float = 5.0
    max_overflows: int = 3
