"""Agent control: log in, log out, pause with a reason, unpause; and the agents' live states."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hotline.domain.model import Agent
from hotline.domain.routing import UnknownAgent
from hotline.engine import AgentCommand
from hotline.web.keys import ENGINE

__all__ = ["agent_json", "routes"]

routes = web.RouteTableDef()


def agent_json(agent: Agent) -> dict[str, Any]:
    """The public view of an agent's live state."""
    return {
        "id": agent.id,
        "name": agent.config.name,
        "device": agent.config.device,
        "queues": list(agent.config.queues),
        "skills": dict(agent.config.skills),
        "state": agent.state.value,
        "state_since": agent.state_since,
        "pause_reason": agent.pause_reason,
        "logged_in": agent.logged_in,
        "calls_answered": agent.calls_answered,
        "consecutive_misses": agent.consecutive_misses,
    }


def _error(status: int, error: str, **detail: Any) -> web.HTTPException:
    body = json.dumps({"error": error, **detail})
    exc_class = {404: web.HTTPNotFound, 422: web.HTTPUnprocessableEntity}[status]
    return exc_class(text=body, content_type="application/json")


@routes.get("/api/agents")
async def list_agents(request: web.Request) -> web.Response:
    """Every configured agent with its live state."""
    router = request.app[ENGINE].router
    return web.json_response([agent_json(agent) for agent in router.agents.values()])


@routes.get("/api/agents/{agent_id}")
async def get_agent(request: web.Request) -> web.Response:
    """One agent's live state."""
    agent = request.app[ENGINE].router.agents.get(request.match_info["agent_id"])
    if agent is None:
        raise _error(404, "unknown agent", agent=request.match_info["agent_id"])
    return web.json_response(agent_json(agent))


async def _reason(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(422, "body is not valid JSON", detail=str(exc)) from exc
    if not isinstance(body, dict):
        raise _error(422, "body must be a JSON object")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 64 or any(c in reason for c in "\r\n\x00"):
        raise _error(422, "invalid field", fields={"reason": "a string of at most 64 characters"})
    return reason.strip()


@routes.post("/api/agents/{agent_id}/{action:login|logout|pause|unpause}")
async def control_agent(request: web.Request) -> web.Response:
    """Apply an agent command through the engine task; returns the agent's new state."""
    action = request.match_info["action"]
    reason = await _reason(request) if action == "pause" else ""
    command = AgentCommand(action, request.match_info["agent_id"], reason or "paused")
    try:
        agent = await request.app[ENGINE].command(command)
    except UnknownAgent as exc:
        raise _error(404, "unknown agent", agent=command.agent_id) from exc
    return web.json_response(agent_json(agent))
