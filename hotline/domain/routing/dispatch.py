"""The waiting order and dispatch: which waiting caller rings which available agent."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from hotline.domain.effects import (
    CallRequeued,
    Effect,
    RedirectChannel,
)
from hotline.domain.model import (
    Agent,
    Call,
    CallState,
    Outcome,
)
from hotline.domain.routing import calls, offers, timers

if TYPE_CHECKING:
    from hotline.domain.routing.router import Router

QueueKey = tuple[float, float, int, str]
"""A waiting caller's place: (minus effective priority, arrival, sequence, call id)."""


def queue_key(r: Router, call: Call) -> QueueKey:
    weight = r.queues[call.queue].priority_weight
    return (-(call.priority + weight), call.arrived_at, call.seq, call.call_id)


def enqueue(r: Router, call: Call) -> None:
    call.state = CallState.WAITING
    bisect.insort(r._waiting[call.queue], queue_key(r, call))
    r._dirty = True


def dequeue(r: Router, call: Call) -> None:
    waiting = r._waiting[call.queue]
    key = queue_key(r, call)
    index = bisect.bisect_left(waiting, key)
    if index < len(waiting) and waiting[index] == key:
        del waiting[index]


def schedule_max_wait(r: Router, call: Call, entered_at: float) -> None:
    max_wait = r.queues[call.queue].max_wait
    if max_wait is not None:
        timers.schedule(r, timers.MaxWaitReached(entered_at + max_wait, call.call_id, call.queue))


def requeue(r: Router, call: Call, reason: str, now: float, effects: list[Effect]) -> None:
    if call.overflow_due:
        call.overflow_due = False
        overflow(r, call, now, effects)
        return
    enqueue(r, call)
    if not call.is_callback:
        effects.append(CallRequeued(call.call_id, call.queue, reason, now))


def overflow(r: Router, call: Call, now: float, effects: list[Effect]) -> None:
    queue = r.queues[call.queue]
    if call.state is CallState.WAITING:
        dequeue(r, call)
    if queue.overflow_queue is not None and call.overflows < r.routing.max_overflows:
        call.overflows += 1
        call.queue = queue.overflow_queue
        call.skills = frozenset(r.queues[call.queue].skills) | (
            call.skills - frozenset(queue.skills)
        )
        call.queue_entered_at = now
        enqueue(r, call)
        schedule_max_wait(r, call, now)
        effects.append(CallRequeued(call.call_id, call.queue, "overflow", now))
    elif queue.overflow_target is not None:
        context, exten, priority = queue.overflow_target
        effects.append(RedirectChannel(call.channel, context, exten, priority))
        calls.end_call(r, call, Outcome.OVERFLOWED, now, "recv", effects)
        calls.forget_if_done(r, call)
    else:
        enqueue(r, call)


def dispatch(r: Router, now: float, effects: list[Effect]) -> None:
    """Ring agents for waiting callers until no waiting caller has an eligible agent.

    Only runs when a caller was queued or an agent became available since the
    last pass; any other event cannot create a new match.
    """
    if not r._dirty:
        return
    r._dirty = False
    while r._available:
        best = _best_match(r)
        if best is None:
            return
        call, eligible = best
        offers.make_offer(r, call, pick_agent(r, call, eligible, now), now, effects)


def _best_match(r: Router) -> tuple[Call, list[Agent]] | None:
    """The best waiting call that has an eligible agent, with those agents."""
    best: tuple[QueueKey, Call, list[Agent]] | None = None
    for queue_name, waiting in r._waiting.items():
        if not waiting:
            continue
        members = [
            r.agents[agent_id]
            for agent_id in r.queue_members[queue_name]
            if agent_id in r._available
        ]
        if not members:
            continue
        for key in waiting:
            if best is not None and key >= best[0]:
                break
            call = r.calls[key[3]]
            eligible = [agent for agent in members if r.is_eligible(agent, call)]
            if eligible:
                best = (key, call, eligible)
                break
    return (best[1], best[2]) if best is not None else None


def pick_agent(r: Router, call: Call, eligible: list[Agent], now: float) -> Agent:
    """The agent the queue's strategy rings: fewest misses of this caller first, then the
    caller's sticky agent, then the agent the IVR asked for, then speakers of the caller's
    language, then by strategy."""
    queue = r.queues[call.queue]
    fewest_misses = min(call.missed_by.get(agent.id, 0) for agent in eligible)
    candidates = [a for a in eligible if call.missed_by.get(a.id, 0) == fewest_misses]
    sticky = _sticky_agent(r, call, candidates, now) if queue.sticky else None
    if sticky is not None:
        return sticky
    # The IVR's choices: the agent of the caller's ticket when asked for (HotlineAgent),
    # else agents who speak the caller's language (HotlineLang; a skill named like the
    # language, e.g. "en") are offered first.
    for agent in candidates:
        if agent.id == call.preferred_agent:
            return agent
    speakers = [a for a in candidates if call.lang and call.lang in a.skills]
    return _by_strategy(r, call, speakers or candidates)


def _by_strategy(r: Router, call: Call, candidates: list[Agent]) -> Agent:
    """The candidate the queue's strategy picks (longest idle by default, and when round
    robin finds none)."""
    queue = r.queues[call.queue]
    strategy = queue.strategy
    if strategy == "round_robin":
        chosen = _next_in_turn(r, queue.name, candidates)
        if chosen is not None:
            return chosen
    if strategy == "fewest_calls":
        return min(candidates, key=lambda a: (a.calls_answered, a.idle_since, a.id))
    if strategy == "skill_level":
        return min(candidates, key=lambda a: (-skill_score(a, call), a.idle_since, a.id))
    return min(candidates, key=lambda a: (a.idle_since, a.id))


def _sticky_agent(r: Router, call: Call, candidates: list[Agent], now: float) -> Agent | None:
    """The agent who last served this number, if recent enough and among the candidates."""
    if call.number not in r.sticky:
        return None
    agent_id, served_at = r.sticky[call.number]
    if now - served_at <= r.routing.sticky_days * 86400:
        for agent in candidates:
            if agent.id == agent_id:
                return agent
    return None


def _next_in_turn(r: Router, queue_name: str, candidates: list[Agent]) -> Agent | None:
    """Round robin: the first candidate after the queue's last pick, in member order."""
    members = r.queue_members[queue_name]
    start = r._round_robin.get(queue_name, -1)
    ids = {agent.id for agent in candidates}
    for step in range(1, len(members) + 1):
        position = (start + step) % len(members)
        if members[position] in ids:
            r._round_robin[queue_name] = position
            return r.agents[members[position]]
    return None


def skill_score(agent: Agent, call: Call) -> int:
    """The agent's weakest level among the call's required skills (0 if none required)."""
    levels = [agent.config.skills.get(skill, 0) for skill in call.skills]
    return min(levels) if levels else 0
