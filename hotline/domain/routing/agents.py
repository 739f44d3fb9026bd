"""Agents: login, logout, pause, wrap-up, device state, and the display state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotline.domain.effects import (
    AgentPresenceChanged,
    AgentStateChanged,
    Effect,
    WrapUpEnded,
)
from hotline.domain.events import (
    DeviceStateChanged,
    DeviceStatus,
)
from hotline.domain.model import (
    Activity,
    Agent,
    AgentState,
    Call,
)
from hotline.domain.routing import calls, dispatch, timers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

NO_ANSWER_PAUSE = "no answer"
"""The pause reason given to an agent who missed ``max_consecutive_misses`` rings in a row."""


class UnknownAgent(KeyError):
    """An agent command named an agent that is not configured."""


def login(r: Router, agent_id: str, now: float) -> list[Effect]:
    """Log an agent in; they become available unless paused."""
    agent = agent_named(r, agent_id)
    effects: list[Effect] = []
    if not agent.logged_in:
        agent.logged_in = True
        agent.logged_in_since = now
        agent.idle_since = now
        agent.consecutive_misses = 0
        effects.append(AgentPresenceChanged("login", None, now, agent.presence))
        refresh(r, agent, now, effects)
        dispatch.dispatch(r, now, effects)
    return effects


def logout(r: Router, agent_id: str, now: float) -> list[Effect]:
    """Log an agent out: no new calls; a call in progress carries on."""
    agent = agent_named(r, agent_id)
    effects: list[Effect] = []
    if agent.logged_in:
        agent.logged_in = False
        agent.pause_reason = None
        effects.append(AgentPresenceChanged("logout", None, now, agent.presence))
        refresh(r, agent, now, effects)
    return effects


def pause(r: Router, agent_id: str, reason: str, now: float) -> list[Effect]:
    """Pause an agent with a reason: no new calls; a call in progress carries on."""
    agent = agent_named(r, agent_id)
    effects: list[Effect] = []
    if agent.pause_reason != (reason or "paused"):
        agent.pause_reason = reason or "paused"
        agent.paused_since = now
        effects.append(AgentPresenceChanged("pause", agent.pause_reason, now, agent.presence))
    refresh(r, agent, now, effects, reason=agent.pause_reason)
    return effects


def unpause(r: Router, agent_id: str, now: float) -> list[Effect]:
    """End an agent's pause."""
    agent = agent_named(r, agent_id)
    effects: list[Effect] = []
    if agent.pause_reason is not None:
        if agent.pause_reason == NO_ANSWER_PAUSE:
            agent.consecutive_misses = 0
        ended, agent.pause_reason = agent.pause_reason, None
        effects.append(AgentPresenceChanged("unpause", ended, now, agent.presence))
        if agent.activity is Activity.IDLE:
            agent.idle_since = now
        refresh(r, agent, now, effects)
        dispatch.dispatch(r, now, effects)
    return effects


def end_wrap_up(r: Router, agent_id: str, now: float) -> list[Effect]:
    """End an agent's wrap-up now, as its timer would; nothing otherwise."""
    agent = agent_named(r, agent_id)
    effects: list[Effect] = []
    if agent.activity is Activity.WRAP_UP and agent.wrap_up_until is not None:
        timers.fire(r, timers.WrapUpEnds(agent.wrap_up_until, agent.id), now, effects)
        dispatch.dispatch(r, now, effects)
    return effects


def prune_sticky(r: Router, now: float) -> None:
    """Hourly, forget sticky history older than ``sticky_days`` (memory stays bounded)."""
    if now - r._sticky_pruned_at >= 3600:
        r._sticky_pruned_at = now
        horizon = now - r.routing.sticky_days * 86400
        r.sticky = {n: entry for n, entry in r.sticky.items() if entry[1] >= horizon}


def agent_named(r: Router, agent_id: str) -> Agent:
    agent = r.agents.get(agent_id)
    if agent is None:
        raise UnknownAgent(agent_id)
    return agent


def start_wrap_up(
    r: Router, agent: Agent, call: Call | None, now: float, effects: list[Effect]
) -> None:
    if agent.activity is not Activity.ON_CALL:
        return
    wrap_up = r.queues[call.queue].wrap_up if call is not None else 0.0
    agent.offer_id = None
    if wrap_up > 0:
        agent.activity = Activity.WRAP_UP
        agent.wrap_up_until = now + wrap_up
        agent.wrap_up_started = now
        agent.wrap_up_call = (call.call_id, call.queue) if call is not None else None
        timers.schedule(r, timers.WrapUpEnds(agent.wrap_up_until, agent.id))
    else:
        agent.activity = Activity.IDLE
        agent.idle_since = now
        if call is not None and not call.is_callback:
            effects.append(WrapUpEnded(agent.id, call.call_id, call.queue, now, now))
    refresh(r, agent, now, effects)
    if call is not None:
        calls.forget_if_done(r, call)


def on_device_state(
    r: Router, event: DeviceStateChanged, now: float, effects: list[Effect]
) -> None:
    agent = r.agents_by_device.get(event.device)
    if agent is None:
        return
    agent.device_state = event.state
    if event.state is DeviceStatus.IDLE and agent.unavailable_until is not None:
        if now >= agent.retry_not_before:
            agent.unavailable_until = None
        else:
            agent.unavailable_until = agent.retry_not_before
            timers.schedule(r, timers.CooldownEnds(agent.retry_not_before, agent.id))
    refresh(r, agent, now, effects)


def refresh(
    r: Router, agent: Agent, now: float, effects: list[Effect], *, reason: str | None = None
) -> None:
    """Recompute the agent's display state and availability; record a change."""
    state = agent.derive_state()
    if state is AgentState.AVAILABLE:
        if agent.id not in r._available:
            r._available.add(agent.id)
            r._dirty = True
    else:
        r._available.discard(agent.id)
    if state is not agent.state:
        previous = agent.state
        agent.state = state
        agent.state_since = now
        why = reason or (agent.pause_reason if state is AgentState.PAUSED else None)
        effects.append(AgentStateChanged(agent.id, state, previous, why, now))
