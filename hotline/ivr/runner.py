"""Running a flow over one FastAGI session.

:class:`IvrRunner` is the FastAGI handler: it picks the flow named by the AGI
script (``agi://host:4573/main``), walks its nodes with the session's commands and
returns, after which Asterisk continues the dialplan (``end``), or hangs up or
transfers the caller. What the flow needs to know about the caller and the
actions it takes outside the call go through :class:`IvrServices` (the store in
the service). The flow set is held by :class:`FlowHolder`, which a reload
replaces only with a set that validated.

Variables the flow sets on the channel: ``HOTLINE_QUEUE``, ``HOTLINE_PRIORITY``,
``HOTLINE_SKILLS`` (comma-separated), ``HOTLINE_LANG``, a collect node's
``variable``, ``HOTLINE_STICKY_AGENT`` (the agent of the caller's open ticket,
when the caller asked for them) and ``HOTLINE_IVR_RESULT`` (``queued``,
``callback``, ``voicemail``, ``transfer``, ``hangup``, ``survey``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Final, Protocol

import structlog

from hotline.agi.server import AgiSession
from hotline.ivr.calendar import next_open
from hotline.ivr.flow import Flow, FlowError, FlowSet, Node, load_flows

__all__ = [
    "MAX_STEPS",
    "CallerInfo",
    "FlowHolder",
    "IvrRunner",
    "IvrServices",
    "SurveyObserver",
    "prompt_file",
]

log = structlog.get_logger("hotline.ivr")

MAX_STEPS: Final = 200
"""A flow that loops (goto) ends after this many nodes; the caller is queued."""


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """What the store knows about a calling number."""

    ticket: str | None = None
    agent: str | None = None
    tags: frozenset[str] = frozenset()


class IvrServices(Protocol):
    """What a flow asks of the rest of the service."""

    async def caller(self, number: str) -> CallerInfo:
        """The caller's open ticket (and its agent) and customer tags."""

    async def schedule_callback(
        self, number: str, queue: str, language: str, due_at: datetime
    ) -> str | None:
        """Schedule a callback at ``due_at`` on the caller's ticket; its number, None if not."""

    async def record_survey(self, uniqueid: str, score: int) -> bool:
        """Store a survey score on the call ``uniqueid`` and its ticket; False if no such call."""

    def now(self) -> datetime:
        """The current time (aware)."""


def prompt_file(prompt: str, language: str) -> str:
    """The sound file a prompt is played from: ``hotline/<language>/<prompt>``."""
    return f"hotline/{language}/{prompt}"


class FlowHolder:
    """The current flow set; :meth:`reload` keeps the last good set on failure."""

    def __init__(self, directory: str | Path) -> None:
        """Load ``directory``; raises :class:`FlowError` if the first load fails."""
        self.directory = Path(directory)
        self.flows: FlowSet = load_flows(self.directory)
        self.loads = 1
        self.failures = 0
        self.last_error: str | None = None

    def reload(self) -> list[str]:
        """Load again; on failure keep serving the last good set. The problems (none: ok)."""
        try:
            flows = load_flows(self.directory)
        except FlowError as exc:
            self.failures += 1
            self.last_error = str(exc)
            log.error(
                "ivr.reload_failed",
                problems=exc.problems,
                serving=sorted(self.flows.flows),
                note="the last good flows stay in service",
            )
            return exc.problems
        self.flows = flows
        self.loads += 1
        self.last_error = None
        log.info("ivr.reloaded", flows=sorted(flows.flows))
        return []


@dataclass(slots=True)
class _Call:
    session: AgiSession
    flow: Flow
    language: str
    number: str
    queue: str = ""
    info: CallerInfo | None = None
    visited: list[str] = field(default_factory=list)


class IvrRunner:
    """The FastAGI handler running the flows of a :class:`FlowHolder`."""

    def __init__(
        self,
        holder: FlowHolder,
        services: IvrServices,
        default_flow: str = "main",
        survey_observer: SurveyObserver | None = None,
    ) -> None:
        """A runner over ``holder``'s current flows; ``survey_observer`` is told of every
        survey (the metrics)."""
        self.holder = holder
        self.services = services
        self.default_flow = default_flow
        self.survey_observer: SurveyObserver = survey_observer or _ignore_survey
        self.survey_offered = 0
        """Survey nodes reached (callers asked for a score)."""
        self.survey_responses = 0
        """Valid scores given (stored or not)."""

    async def __call__(self, session: AgiSession) -> None:
        """Run the flow the session's AGI script names (``main`` when none)."""
        flows = self.holder.flows
        name = session.environment.script.strip("/") or self.default_flow
        flow = flows.flows.get(name)
        if flow is None:
            log.warning("ivr.unknown_flow", flow=name, channel=session.environment.channel)
            await session.verbose(f"hotline: no IVR flow {name!r}")
            return
        number = session.environment.callerid
        call = _Call(session, flow, flow.language, number)
        node: Node | None = flow.nodes[flow.start]
        steps = 0
        while node is not None:
            steps += 1
            call.visited.append(node.id)
            if steps > MAX_STEPS:
                log.warning("ivr.too_many_steps", flow=flow.name, node=node.id)
                await self._result(call, "queued")
                return
            node = await self._step(call, node)

    async def _info(self, call: _Call) -> CallerInfo:
        if call.info is None:
            call.info = await self.services.caller(call.number)
        return call.info

    async def _play(self, call: _Call, prompt: str, escape: str = "") -> str | None:
        return await call.session.stream_file(prompt_file(prompt, call.language), escape)

    async def _ask(self, call: _Call, prompt: str, timeout: float, max_digits: int) -> str:
        """Play ``prompt`` and read up to ``max_digits`` digits ("" on no input)."""
        digits = await call.session.get_data(
            prompt_file(prompt, call.language), timeout, max_digits
        )
        if digits is None:  # the prompt could not be played: still listen
            digit = await call.session.wait_for_digit(timeout)
            digits = digit or ""
        return digits

    async def _result(self, call: _Call, result: str) -> None:
        await call.session.set_variable("HOTLINE_IVR_RESULT", result)

    async def _step(self, call: _Call, node: Node) -> Node | None:
        """Run ``node``; the next node, ``None`` when the flow is over."""
        handler = self._handlers.get(node.type, IvrRunner._end)
        return await handler(self, call, node)

    async def _play_node(self, call: _Call, node: Node) -> Node | None:
        await self._play(call, node.text("prompt"))
        return call.flow.nodes[node.text("next")]

    async def _condition(self, call: _Call, node: Node) -> Node | None:
        branch = "then" if await self._check(call, node) else "else"
        return call.flow.nodes[node.text(branch)]

    async def _set(self, call: _Call, node: Node) -> Node | None:
        spec, session = node.spec, call.session
        if "queue" in spec:
            call.queue = str(spec["queue"])
            await session.set_variable("HOTLINE_QUEUE", call.queue)
        if "priority" in spec:
            await session.set_variable("HOTLINE_PRIORITY", str(int(spec["priority"])))
        if "skills" in spec:
            await session.set_variable("HOTLINE_SKILLS", ",".join(spec["skills"]))
        if "language" in spec:
            call.language = str(spec["language"])
            await session.set_variable("HOTLINE_LANG", call.language)
        return call.flow.nodes[node.text("next")]

    async def _goto(self, call: _Call, node: Node) -> Node | None:
        return call.flow.nodes[node.text("target")]

    async def _sticky(self, call: _Call, node: Node) -> Node | None:
        info = await self._info(call)
        if info.agent:
            digit = await self._ask(call, node.text("prompt"), node.number("timeout", 3), 1)
            if digit == node.text("digit", "1"):
                await call.session.set_variable("HOTLINE_STICKY_AGENT", info.agent)
        return call.flow.nodes[node.text("next")]

    async def _callback(self, call: _Call, node: Node) -> Node | None:
        due_at = next_open(call.flow.calendar, self.services.now())
        ticket = await self.services.schedule_callback(
            call.number, call.queue or "support", call.language, due_at
        )
        await call.session.set_variable("HOTLINE_CALLBACK_TICKET", ticket or "")
        await self._result(call, "callback")
        await self._play(call, node.text("prompt"))
        await call.session.hangup()
        return None

    async def _send_elsewhere(self, call: _Call, node: Node) -> Node | None:
        """voicemail (``hotline-voicemail,s,1``) and transfer (its target): the channel
        leaves the flow for that dialplan location."""
        if "prompt" in node.spec:
            await self._play(call, node.text("prompt"))
        await self._result(call, node.type)
        if node.type == "voicemail":
            target = ("hotline-voicemail", "s", "1")
        else:
            target = (node.text("context"), node.text("exten", "s"), node.text("priority", "1"))
        await call.session.command("SET CONTEXT", target[0])
        await call.session.command("SET EXTENSION", target[1])
        await call.session.command("SET PRIORITY", target[2])
        return None

    async def _hangup(self, call: _Call, node: Node) -> Node | None:
        if "prompt" in node.spec:
            await self._play(call, node.text("prompt"))
        await self._result(call, "hangup")
        await call.session.hangup()
        return None

    async def _end(self, call: _Call, node: Node) -> Node | None:  # noqa: ARG002 (the handler signature)
        await self._result(call, "queued")
        return None

    async def _check(self, call: _Call, node: Node) -> bool:
        check = node.text("check")
        if check == "business_hours":
            return call.flow.calendar.is_open(self.services.now().astimezone(UTC))
        if check == "language":
            return call.language == node.text("language")
        info = await self._info(call)
        if check == "open_ticket":
            return info.ticket is not None
        return node.text("tag") in info.tags  # customer_tag

    async def _menu(self, call: _Call, node: Node) -> Node | None:
        for _ in range(int(node.spec.get("retries", 2)) + 1):
            digits = await self._ask(call, node.text("prompt"), node.number("timeout", 5), 1)
            if digits in node.options:
                return call.flow.nodes[str(node.options[digits])]
            await self._invalid(call, node, digits)
        return await self._failed(call, node)

    async def _collect(self, call: _Call, node: Node) -> Node | None:
        max_digits = int(node.spec.get("max_digits", 10))
        pattern = node.text("pattern", r"[0-9]+")
        for _ in range(int(node.spec.get("retries", 2)) + 1):
            digits = await self._ask(
                call, node.text("prompt"), node.number("timeout", 5), max_digits
            )
            if re.fullmatch(pattern, digits):
                await call.session.set_variable(node.text("variable"), digits)
                return call.flow.nodes[node.text("next")]
            await self._invalid(call, node, digits)
        return await self._failed(call, node)

    async def _survey(self, call: _Call, node: Node) -> Node | None:
        self.survey_offered += 1
        queue = await call.session.get_variable("HOTLINE_QUEUE") or ""
        for _ in range(int(node.spec.get("retries", 2)) + 1):
            digits = await self._ask(call, node.text("prompt"), node.number("timeout", 5), 1)
            if digits in ("1", "2", "3", "4", "5"):
                await self._scored(call, node, queue, int(digits))
                return None
            await self._invalid(call, node, digits)
        self.survey_observer(queue, None)
        await self._result(call, "survey")
        await call.session.hangup()
        return None

    async def _scored(self, call: _Call, node: Node, queue: str, score: int) -> None:
        stored = await self.services.record_survey(call.session.environment.uniqueid, score)
        log.info("ivr.survey", score=score, stored=stored)
        self.survey_responses += 1
        self.survey_observer(queue, score)
        await call.session.set_variable("HOTLINE_SURVEY_SCORE", str(score))
        await self._result(call, "survey")
        await self._play(call, node.text("thanks"))
        await call.session.hangup()

    async def _invalid(self, call: _Call, node: Node, digits: str) -> None:
        """Input that matched nothing: the invalid prompt (none after no input)."""
        if digits and "invalid" in node.spec:
            await self._play(call, node.text("invalid"))

    async def _failed(self, call: _Call, node: Node) -> Node | None:
        """Every try failed: the ``fail`` node, else the caller is queued."""
        if "fail" in node.spec:
            return call.flow.nodes[node.text("fail")]
        await self._result(call, "queued")
        return None

    _handlers: ClassVar[Mapping[str, _NodeHandler]] = {
        "play": _play_node,
        "menu": _menu,
        "collect": _collect,
        "survey": _survey,
        "condition": _condition,
        "set": _set,
        "goto": _goto,
        "sticky": _sticky,
        "callback": _callback,
        "voicemail": _send_elsewhere,
        "transfer": _send_elsewhere,
        "hangup": _hangup,
        "end": _end,
    }
    """One handler per node type (flow.NODE_TYPES)."""


_NodeHandler = Callable[[IvrRunner, _Call, Node], Awaitable[Node | None]]
SurveyObserver = Callable[[str, int | None], None]
"""Told of each survey: the channel's ``HOTLINE_QUEUE`` ("" when unset) and the score,
``None`` when the caller gave none (no answer or only invalid keys)."""


def _ignore_survey(queue: str, score: int | None) -> None:
    """The default :data:`SurveyObserver`."""
