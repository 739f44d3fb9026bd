"""Quality review (质检) and the audit-log viewer.

- ``GET /api/quality/calls``: recent answered calls with their recordings (each
  with the ``audio_url`` it plays from, :mod:`hotline.web.recordings`), to review
  (supervisors and admins), each with whether it was scored already.
- ``POST /api/quality/{call_id}``: a supervisor scores a call on the configured
  form (``[panels] quality_criteria``, each 0 to ``quality_max``, plus comments);
  the score is for the agent who answered it. Audited (``supervisor.quality_score``).
- ``GET /api/quality?agent_id=&day=|from=&until=``: the reviews, and with an
  agent, their mean total per day (the configured time zone). An agent may ask
  for their own only.
- ``GET /api/audit``: the audit log for admins, filtered by user (``actor``),
  object (``object_type``, ``object_id``), ``action`` (or a prefix such as
  ``supervisor.``) and day or time range, newest first.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from hotline.store.audit import AuditEntry, AuditLog
from hotline.store.desk import QualityScore, QualityScores
from hotline.web.auth import principal_of, store_of
from hotline.web.desk import DAY, day_range, supervisor_only
from hotline.web.errors import json_error
from hotline.web.keys import SETTINGS
from hotline.web.openapi import Api, Input, array, record, scalar, string
from hotline.web.recordings import audio_url
from hotline.web.schema import Array, DateTime, Integer, Object, Text

__all__ = ["api", "audit_json", "score_json"]

api = Api()

_CALL: Final = {"call_id": Text(max_length=128, min_length=1, single_line=True)}
_NAME: Final = Text(max_length=64, min_length=1, single_line=True)
_OBJECT: Final = {"type": "object"}

SCORE_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "call_id": string(),
        "agent_id": string(),
        "ticket": string(),
        "reviewer": string(),
        "scores": _OBJECT,
        "total": scalar("number"),
        "comments": string(),
        "scored_at": string(fmt="date-time"),
    }
)
AUDIT_SCHEMA: Final = record(
    {
        "id": scalar("integer"),
        "at": string(fmt="date-time"),
        "actor": string(),
        "action": string(),
        "object_type": string(),
        "object_id": string(),
        "detail": _OBJECT,
    }
)


def score_json(score: QualityScore) -> dict[str, Any]:
    """The API's view of a quality review."""
    return {
        "id": score.id,
        "call_id": score.call_id,
        "agent_id": score.agent_id,
        "ticket": score.ticket,
        "reviewer": score.reviewer,
        "scores": dict(score.scores),
        "total": score.total,
        "comments": score.comments,
        "scored_at": score.scored_at.isoformat(),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """The API's view of an audit-log entry."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "detail": dict(entry.detail),
    }


@api.operation(
    "GET",
    "/api/quality/calls",
    summary="Recent answered calls with recordings, to review (supervisors)",
    tag="panels",
    query={"agent_id": _NAME, "limit": Integer(minimum=1, maximum=200)},
    response=record(
        {
            "calls": array(
                record(
                    {
                        "call_id": string(),
                        "ticket": string(),
                        "agent_id": string(),
                        "caller_number": string(),
                        "answered_at": string(fmt="date-time"),
                        "recordings": array(string()),
                        "audio": array(
                            record(
                                {
                                    "id": scalar("integer"),
                                    "path": string(),
                                    "audio_url": string(),
                                }
                            )
                        ),
                        "scored": scalar("boolean"),
                    }
                )
            )
        }
    ),
)
async def reviewable_calls(request: web.Request, given: Input) -> web.Response:
    """The newest answered calls (optionally of one agent), with their recordings."""
    supervisor_only(request)
    rows = await store_of(request).pool.fetch(
        "select c.call_id, t.number as ticket, c.answered_by as agent_id, c.caller_number, "
        "c.answered_at, "
        "coalesce(array(select r.path from recordings r where r.call_id = c.call_id "
        "order by r.started_at, r.id), '{}') as recordings, "
        "coalesce(array(select r.id from recordings r where r.call_id = c.call_id "
        "order by r.started_at, r.id), '{}') as recording_ids, "
        "exists (select 1 from quality_scores q where q.call_id = c.call_id) as scored "
        "from calls c join tickets t on t.id = c.ticket_id "
        "where c.answered_by is not null and ($1::text is null or c.answered_by = $1) "
        "order by c.answered_at desc limit $2",
        given.query.get("agent_id"),
        given.query.get("limit", 50),
    )
    calls = [
        {
            "call_id": row["call_id"],
            "ticket": row["ticket"],
            "agent_id": row["agent_id"],
            "caller_number": row["caller_number"],
            "answered_at": row["answered_at"].isoformat(),
            "recordings": list(row["recordings"]),
            "audio": [
                {"id": ident, "path": path, "audio_url": audio_url(ident)}
                for ident, path in zip(row["recording_ids"], row["recordings"], strict=True)
            ],
            "scored": row["scored"],
        }
        for row in rows
    ]
    return web.json_response({"calls": calls})


@api.operation(
    "POST",
    "/api/quality/{call_id}",
    summary="Score a call on the quality review form (supervisors; audited)",
    tag="panels",
    path_params=_CALL,
    body=Object(
        {
            "scores": Array(
                Object(
                    {"criterion": _NAME, "score": Integer(minimum=0, maximum=1000)},
                    required=frozenset({"criterion", "score"}),
                ),
                max_items=50,
                unique=False,
            ),
            "comments": Text(max_length=4000),
        },
        required=frozenset({"scores"}),
    ),
    response=SCORE_SCHEMA,
    status=201,
    errors=(409,),
)
async def score_call(request: web.Request, given: Input) -> web.Response:
    """Store the supervisor's scores of the call, for the agent who answered it."""
    principal = supervisor_only(request)
    panels = request.app[SETTINGS].panels
    scores: dict[str, int] = {}
    for item in given.body["scores"]:
        criterion, score = item["criterion"], item["score"]
        if criterion not in panels.quality_criteria:
            raise json_error(422, "invalid input", fields={"scores": f"unknown {criterion}"})
        if criterion in scores:
            raise json_error(422, "invalid input", fields={"scores": f"{criterion} twice"})
        if score > panels.quality_max:
            raise json_error(
                422, "invalid input", fields={"scores": f"{criterion} above {panels.quality_max}"}
            )
        scores[criterion] = score
    missing = [name for name in panels.quality_criteria if name not in scores]
    if missing:
        raise json_error(422, "invalid input", fields={"scores": f"{missing[0]} is missing"})
    store = store_of(request)
    quality = QualityScores(store.pool)
    call_id = given.path["call_id"]
    agent_id = await quality.call_agent(call_id)  # 404 for an unknown call
    if agent_id is None:
        raise json_error(409, "conflict", message="nobody answered this call")
    comments = given.body.get("comments", "").strip()
    score = await quality.add(call_id, agent_id, principal.name, scores, comments)
    await AuditLog(store.pool).write(
        principal.name,
        "supervisor.quality_score",
        "call",
        call_id,
        {"agent": agent_id, "total": score.total},
    )
    return web.json_response(score_json(score), status=201)


@api.operation(
    "GET",
    "/api/quality",
    summary="Quality reviews, and an agent's mean total per day",
    tag="panels",
    query={"agent_id": _NAME, "day": DAY, "from": DateTime(), "until": DateTime()},
    response=record(
        {
            "criteria": array(string()),
            "max": scalar("integer"),
            "scores": array(SCORE_SCHEMA),
            "by_day": array(
                record(
                    {"day": string(), "reviews": scalar("integer"), "mean_total": scalar("number")}
                )
            ),
        }
    ),
)
async def quality_scores(request: web.Request, given: Input) -> web.Response:
    """Reviews in the range; an agent sees only their own."""
    principal = principal_of(request)
    agent_id = given.query.get("agent_id")
    if principal.role == "agent":
        if principal.agent_id is None or agent_id not in (None, principal.agent_id):
            raise json_error(403, "forbidden", message="you may see only your own reviews")
        agent_id = principal.agent_id
    since, until = day_range(request, given.query)
    settings = request.app[SETTINGS]
    quality = QualityScores(store_of(request).pool)
    scores = await quality.find(agent_id=agent_id, since=since, until=until)
    by_day = []
    if agent_id is not None:
        days = await quality.by_day(agent_id, settings.service.time_zone, since=since, until=until)
        by_day = [
            {"day": day.day, "reviews": day.reviews, "mean_total": day.mean_total} for day in days
        ]
    return web.json_response(
        {
            "criteria": list(settings.panels.quality_criteria),
            "max": settings.panels.quality_max,
            "scores": [score_json(score) for score in scores],
            "by_day": by_day,
        }
    )


@api.operation(
    "GET",
    "/api/audit",
    summary="The audit log, filtered by user, object, action and day (admins)",
    tag="panels",
    query={
        "actor": Text(max_length=128, min_length=1, single_line=True),
        "object_type": _NAME,
        "object_id": Text(max_length=128, min_length=1, single_line=True),
        "action": _NAME,
        "day": DAY,
        "from": DateTime(),
        "until": DateTime(),
        "limit": Integer(minimum=1, maximum=1000),
    },
    response=record({"entries": array(AUDIT_SCHEMA)}),
)
async def audit_entries(request: web.Request, given: Input) -> web.Response:
    """Entries matching every filter, newest first."""
    if not principal_of(request).is_admin:
        raise json_error(403, "forbidden", message="only admins may read the audit log")
    since, until = day_range(request, given.query)
    query = given.query
    entries = await AuditLog(store_of(request).pool).find(
        actor=query.get("actor"),
        object_type=query.get("object_type"),
        object_id=query.get("object_id"),
        action=query.get("action"),
        since=since,
        until=until,
        limit=query.get("limit", 200),
    )
    return web.json_response({"entries": [audit_json(entry) for entry in entries]})
