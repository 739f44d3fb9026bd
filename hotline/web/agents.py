"""Agent control: log in, log out, pause with a reason, unpause; and the agents' live states.

Behind the API's authentication (:mod:`hotline.web.auth`): every signed-in
principal may read the live states; an agent may control only their own agent
id (403 otherwise), supervisors, admins and the integration token any.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from hotline.domain.commands import agent_command
from hotline.domain.model import Agent, AgentState
from hotline.domain.routing import UnknownAgent
from hotline.engine import EngineError
from hotline.web.auth import principal_of
from hotline.web.errors import json_error
from hotline.web.keys import ENGINE
from hotline.web.openapi import Api, Input, array, enum, record, rfc3339, scalar, string
from hotline.web.schema import Object, Text

__all__ = ["agent_json", "api"]

api = Api()

_ID: Final = {"agent_id": Text(max_length=64, min_length=1, single_line=True)}
AGENT_SCHEMA: Final = record(
    {
        "id": string(),
        "name": string(),
        "device": string(),
        "queues": array(string()),
        "skills": {"type": "object", "additionalProperties": {"type": "integer"}},
        "state": enum(AgentState),
        "state_since": string(fmt="date-time", nullable=True),
        "pause_reason": string(nullable=True),
        "logged_in": scalar("boolean"),
        "logged_in_since": string(fmt="date-time", nullable=True),
        "paused_since": string(fmt="date-time", nullable=True),
        "calls_answered": scalar("integer"),
        "consecutive_misses": scalar("integer"),
    }
)
_PAUSE: Final = Object(
    {"reason": Text(max_length=64, single_line=True, description="default: paused")}
)


def agent_json(agent: Agent) -> dict[str, Any]:
    """The public view of an agent's live state."""
    return {
        "id": agent.id,
        "name": agent.config.name,
        "device": agent.config.device,
        "queues": list(agent.config.queues),
        "skills": dict(agent.config.skills),
        "state": agent.state.value,
        "state_since": rfc3339(agent.state_since),
        "pause_reason": agent.pause_reason,
        "logged_in": agent.logged_in,
        "logged_in_since": rfc3339(agent.presence.logged_in_since),
        "paused_since": rfc3339(agent.presence.paused_since),
        "calls_answered": agent.calls_answered,
        "consecutive_misses": agent.consecutive_misses,
    }


@api.operation(
    "GET",
    "/api/agents",
    summary="Every configured agent with its live state",
    tag="agents",
    response=array(AGENT_SCHEMA),
)
async def list_agents(request: web.Request, _: Input) -> web.Response:
    """Every configured agent with its live state."""
    router = request.app[ENGINE].router
    return web.json_response([agent_json(agent) for agent in router.agents.values()])


@api.operation(
    "GET",
    "/api/agents/{agent_id}",
    summary="One agent's live state",
    tag="agents",
    path_params=_ID,
    response=AGENT_SCHEMA,
)
async def get_agent(request: web.Request, given: Input) -> web.Response:
    """One agent's live state."""
    agent = request.app[ENGINE].router.agents.get(given.path["agent_id"])
    if agent is None:
        raise json_error(404, "not found", message="unknown agent", agent=given.path["agent_id"])
    return web.json_response(agent_json(agent))


async def _command(request: web.Request, action: str, agent_id: str, reason: str) -> web.Response:
    """Apply an agent command through the engine task; answers the agent's new state."""
    if not principal_of(request).controls(agent_id):
        raise json_error(403, "forbidden", message="agents may only control themselves")
    try:
        agent = await request.app[ENGINE].command(agent_command(action, agent_id, reason))
    except UnknownAgent as exc:
        raise json_error(404, "not found", message="unknown agent", agent=agent_id) from exc
    except EngineError as exc:  # the engine logged the cause; the request never hangs
        raise json_error(503, "engine unavailable", message=str(exc)) from exc
    return web.json_response(agent_json(agent))


@api.operation(
    "POST",
    "/api/agents/{agent_id}/login",
    summary="Log the agent in",
    tag="agents",
    path_params=_ID,
    response=AGENT_SCHEMA,
)
async def login_agent(request: web.Request, given: Input) -> web.Response:
    """Log the agent in (it becomes available for calls)."""
    return await _command(request, "login", given.path["agent_id"], "")


@api.operation(
    "POST",
    "/api/agents/{agent_id}/logout",
    summary="Log the agent out",
    tag="agents",
    path_params=_ID,
    response=AGENT_SCHEMA,
)
async def logout_agent(request: web.Request, given: Input) -> web.Response:
    """Log the agent out."""
    return await _command(request, "logout", given.path["agent_id"], "")


@api.operation(
    "POST",
    "/api/agents/{agent_id}/pause",
    summary="Pause the agent, with an optional reason",
    tag="agents",
    path_params=_ID,
    body=_PAUSE,
    body_required=False,
    response=AGENT_SCHEMA,
)
async def pause_agent(request: web.Request, given: Input) -> web.Response:
    """Pause the agent (no new calls) with a reason."""
    reason = given.body.get("reason", "").strip() or "paused"
    return await _command(request, "pause", given.path["agent_id"], reason)


@api.operation(
    "POST",
    "/api/agents/{agent_id}/unpause",
    summary="Unpause the agent",
    tag="agents",
    path_params=_ID,
    response=AGENT_SCHEMA,
)
async def unpause_agent(request: web.Request, given: Input) -> web.Response:
    """Unpause the agent."""
    return await _command(request, "unpause", given.path["agent_id"], "")


@api.operation(
    "POST",
    "/api/agents/{agent_id}/ready",
    summary="End the agent's wrap-up now (ready for the next call)",
    tag="agents",
    path_params=_ID,
    response=AGENT_SCHEMA,
)
async def ready_agent(request: web.Request, given: Input) -> web.Response:
    """End the agent's wrap-up now; nothing changes when not wrapping up."""
    return await _command(request, "ready", given.path["agent_id"], "")
