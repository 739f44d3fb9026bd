"""Restore: bring a previous process' agent states and sticky history back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from hotline.domain.effects import (
    Effect,
    RoutingWarning,
)
from hotline.domain.model import (
    AgentPresence,
)
from hotline.domain.routing import agents, dispatch

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router


def restore(
    r: Router,
    states: Iterable[AgentPresence],
    sticky: Mapping[str, tuple[str, float]],
    now: float,
) -> list[Effect]:
    """Bring back what a previous process persisted, before the first PBX event.

    Agents get their login and pause state (and reason, and since when) back, and
    count as idle from ``now``; a state for an agent the configuration no longer
    has is ignored with a warning. Sticky history (``number -> (agent, answered
    at)``) older than ``sticky_days`` or naming an unknown agent is dropped; a
    newer entry already known wins.
    """
    effects: list[Effect] = []
    for presence in states:
        agent = r.agents.get(presence.agent_id)
        if agent is None:
            effects.append(
                RoutingWarning(
                    "restore_unknown_agent",
                    f"agent {presence.agent_id!r} is not configured; its saved state is ignored",
                )
            )
            continue
        agent.logged_in = presence.logged_in
        agent.logged_in_since = presence.logged_in_since or now
        agent.pause_reason = presence.pause_reason
        agent.paused_since = presence.paused_since or now
        agent.idle_since = now
        agents.refresh(r, agent, now, effects)
    horizon = now - r.routing.sticky_days * 86400
    for number, (agent_id, served_at) in sticky.items():
        known = r.sticky.get(number)
        if (
            agent_id in r.agents
            and served_at >= horizon
            and (known is None or known[1] < served_at)
        ):
            r.sticky[number] = (agent_id, served_at)
    dispatch.dispatch(r, now, effects)
    return effects
