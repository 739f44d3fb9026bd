"""The simulated PBX's side of FastAGI: one channel running ``AGI(agi://host:port/<script>)``.

:func:`run_agi` connects to the FastAGI server, sends an environment block shaped
like the one in ``tests/traces/fastagi_session.jsonl`` and answers each command as
Asterisk 22 does, taking the caller's key presses from a script:

- each ``GET DATA`` / ``WAIT FOR DIGIT`` consumes the next entry of ``dtmf``: a
  string of digits (``WAIT FOR DIGIT`` takes its first), ``""`` for no input (the
  command's timeout elapses), or :data:`HANG_UP` (the caller hangs up during the
  command: Asterisk sends ``HANGUP``, then ``200 result=-1``, then closes);
  when the script is exhausted the caller gives no more input;
- ``STREAM FILE`` plays for ``prompt_seconds`` (``200 result=0 endpos=N``);
- ``SET VARIABLE`` / ``GET VARIABLE`` / ``GET FULL VARIABLE`` act on the channel's
  variables; ``VERBOSE`` and ``ANSWER`` succeed; an unknown command gets ``510``.

When nothing listens on the port, :func:`run_agi` returns at once with
``status="FAILURE"`` (``AGISTATUS``), as ``AGI()`` does before the dialplan goes on.
:class:`IvrTraffic` runs a scenario's callers (``[[arrivals.ivr]]`` groups) through
the ``main`` flow and, after an answered call, the ``survey`` flow.

Reply shapes seen in the trace: ``200 result=1``, ``200 result=1 (value)``,
``200 result=0``, ``200 result=-1 endpos=0``, ``200 result=-1``, ``510 Invalid or
unknown command``. Inferred from Asterisk's res_agi.c (README, "The IVR"): GET DATA's
``200 result=<digits>`` and ``200 result= (timeout)``, WAIT FOR DIGIT's
``200 result=<ASCII code>``, STREAM FILE's ``200 result=0 endpos=<samples>``,
``HANGUP`` before the ``-1`` of a command interrupted by a hang-up, ``GET VARIABLE``
of an unset variable (``200 result=0``), SET CONTEXT / SET EXTENSION / SET PRIORITY
(``200 result=0``), EXEC (``200 result=<app's result>``), the HANGUP command
(``200 result=1``), and CHANNEL STATUS (``200 result=6``, up).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from hotline.sim.scenario import Arrival, generate_arrivals

if TYPE_CHECKING:
    from hotline.sim.pbx import SimPbx

__all__ = [
    "HANG_UP",
    "AgiCallResult",
    "IvrDialplan",
    "IvrTraffic",
    "arrival_after_ivr",
    "ivr_arrival",
    "run_agi",
    "run_survey",
]

HANG_UP: Final = "hangup"
"""A ``dtmf`` entry: the caller hangs up during that input command."""
_TOKEN: Final = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class AgiCallResult:
    """What happened on the simulated channel."""

    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    hung_up: bool = False
    """The caller hung up (the script said so) or the flow hung up the channel."""
    location: tuple[str, str, str] | None = None
    """Where the flow sent the channel (SET CONTEXT/EXTENSION/PRIORITY), if anywhere."""
    status: str = "SUCCESS"
    """``AGISTATUS`` after ``AGI()``: ``SUCCESS``, ``HANGUP``, or ``FAILURE`` when the
    FastAGI server could not be reached (the dialplan then goes on with its defaults)."""


def _args(line: str) -> list[str]:
    return [
        re.sub(r"\\(.)", r"\1", quoted) if quoted else bare for quoted, bare in _TOKEN.findall(line)
    ]


async def run_agi(
    host: str,
    port: int,
    *,
    script: str = "main",
    channel: str,
    uniqueid: str,
    callerid: str,
    calleridname: str = "",
    context: str = "hotline-inbound",
    extension: str = "s",
    priority: int = 3,
    dtmf: Sequence[str] = (),
    variables: Mapping[str, str] | None = None,
    prompt_seconds: float = 0.0,
    time_scale: float = 0.0,
) -> AgiCallResult:
    """Run one channel's AGI session to its end; the variables the flow left set.

    ``time_scale`` multiplies every simulated wait (prompt playback, input
    timeouts); 0 answers at once.
    """
    result = AgiCallResult(variables=dict(variables or {}))
    presses = list(dtmf)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        # res_agi.c: "FastAGI connection to '...' failed"; AGI() sets AGISTATUS=FAILURE
        # and returns 0, so the channel goes on in the dialplan.
        result.status = "FAILURE"
        return result
    env = {
        "network": "yes",
        "network_script": script,
        "request": f"agi://{host}:{port}/{script}",
        "channel": channel,
        "language": "en",
        "type": channel.partition("/")[0],
        "uniqueid": uniqueid,
        "version": "22.10.1",
        "callerid": callerid,
        "calleridname": calleridname or "unknown",
        "callingpres": "0",
        "callingani2": "0",
        "callington": "0",
        "callingtns": "0",
        "dnid": "unknown",
        "rdnis": "unknown",
        "context": context,
        "extension": extension,
        "priority": str(priority),
        "enhanced": "0.0",
        "accountcode": "",
        "threadid": "140507216168640",
    }
    writer.write(("".join(f"agi_{k}: {v}\n" for k, v in env.items()) + "\n").encode())

    async def wait(seconds: float) -> None:
        if seconds > 0 and time_scale > 0:
            await asyncio.sleep(seconds * time_scale)

    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\n")
            result.commands.append(line)
            reply, close = await _answer(line, result, presses, wait, prompt_seconds)
            writer.write(reply.encode())
            await writer.drain()
            if close:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if result.hung_up:
        result.status = "HANGUP"
    return result


@dataclass(slots=True)
class _Line:
    """One command line as the simulated channel sees it, with what answering it needs."""

    args: list[str]
    result: AgiCallResult
    presses: list[str]
    sleep: Sleep
    prompt_seconds: float


_Reply = tuple[str, bool]
"""The reply text and whether the channel then closes the socket."""


async def _always(reply: str, line: _Line) -> _Reply:  # noqa: ARG001 (the handler signature)
    return reply, False


async def _set_variable(line: _Line) -> _Reply | None:
    if len(line.args) != 2:
        return None
    line.result.variables[line.args[0]] = line.args[1]
    return "200 result=1\n", False


async def _get_variable(line: _Line) -> _Reply | None:
    if len(line.args) != 1:
        return None
    key = line.args[0].removeprefix("${").removesuffix("}")
    if key in line.result.variables:
        return f"200 result=1 ({line.result.variables[key]})\n", False
    return "200 result=0\n", False


async def _stream_file(line: _Line) -> _Reply | None:
    if not line.args:
        return None
    line.result.prompts.append(line.args[0])
    await line.sleep(line.prompt_seconds)
    return f"200 result=0 endpos={int(line.prompt_seconds * 8000)}\n", False


async def _key_press(line: _Line, timeout_ms: str) -> str | None:
    """The caller's next entry: its digits, ``""`` once the timeout ran out, ``None``: hang-up."""
    press = line.presses.pop(0) if line.presses else ""
    if press == HANG_UP:
        line.result.hung_up = True
        return None
    if not press:
        await line.sleep(max(float(timeout_ms) / 1000, 0.0))
        return ""
    await line.sleep(0.5 * len(press))
    return press


async def _get_data(line: _Line) -> _Reply | None:
    if not line.args:
        return None
    line.result.prompts.append(line.args[0])
    await line.sleep(line.prompt_seconds)
    press = await _key_press(line, line.args[1] if len(line.args) > 1 else "0")
    if press is None:
        return "HANGUP\n200 result=-1\n", True
    return (f"200 result={press}\n" if press else "200 result= (timeout)\n"), False


async def _wait_for_digit(line: _Line) -> _Reply | None:
    if not line.args:
        return None
    press = await _key_press(line, line.args[0])
    if press is None:
        return "HANGUP\n200 result=-1\n", True
    return f"200 result={ord(press[0]) if press else 0}\n", False


def _set_location(index: int) -> Callable[[_Line], Awaitable[_Reply | None]]:
    """SET CONTEXT (0), SET EXTENSION (1) or SET PRIORITY (2)."""

    async def handler(line: _Line) -> _Reply | None:
        if len(line.args) != 1:
            return None
        location = list(line.result.location or ("", "", ""))
        location[index] = line.args[0]
        line.result.location = (location[0], location[1], location[2])
        return "200 result=0\n", False

    return handler


async def _exec(line: _Line) -> _Reply | None:
    return ("200 result=0\n", False) if line.args else None


async def _hangup(line: _Line) -> _Reply | None:
    line.result.hung_up = True
    return "200 result=1\n", True


_Handler = Callable[[_Line], Awaitable[_Reply | None]]
_HANDLERS: Final[Mapping[str, _Handler]] = {
    "GET FULL VARIABLE": _get_variable,
    "GET VARIABLE": _get_variable,
    "SET VARIABLE": _set_variable,
    "SET CONTEXT": _set_location(0),
    "SET EXTENSION": _set_location(1),
    "SET PRIORITY": _set_location(2),
    "STREAM FILE": _stream_file,
    "GET DATA": _get_data,
    "WAIT FOR DIGIT": _wait_for_digit,
    "CHANNEL STATUS": functools.partial(_always, "200 result=6\n"),
    "VERBOSE": functools.partial(_always, "200 result=1\n"),
    "ANSWER": functools.partial(_always, "200 result=0\n"),
    "HANGUP": _hangup,
    "NOOP": functools.partial(_always, "200 result=1\n"),
    "EXEC": _exec,
}
"""One handler per AGI command (longest names first where one prefixes another); a
handler answers ``None`` for arguments Asterisk would not accept."""
_UNKNOWN: Final = ("510 Invalid or unknown command\n", False)


async def _answer(
    line: str,
    result: AgiCallResult,
    presses: list[str],
    sleep: Sleep,
    prompt_seconds: float,
) -> _Reply:
    name = next((c for c in _HANDLERS if line == c or line.startswith(c + " ")), None)
    if name is None:
        return _UNKNOWN
    reply = await _HANDLERS[name](
        _Line(_args(line[len(name) :]), result, presses, sleep, prompt_seconds)
    )
    return reply if reply is not None else _UNKNOWN


def arrival_after_ivr(
    result: AgiCallResult,
    number: str,
    *,
    name: str = "Caller",
    patience: float = 120.0,
    default_queue: str = "support",
    default_priority: int = 0,
) -> Arrival | None:
    """The caller who finished the flow, waiting with the variables it set (the
    dialplan's defaults for the rest); ``None`` when the flow hung up or transferred."""
    if result.hung_up or result.location is not None:
        return None
    variables = result.variables
    skills = tuple(s for s in variables.get("HOTLINE_SKILLS", "").split(",") if s)
    return Arrival(
        0.0,
        number,
        name,
        variables.get("HOTLINE_QUEUE") or default_queue,
        int(variables.get("HOTLINE_PRIORITY") or default_priority),
        skills,
        variables.get("HOTLINE_LANG") or None,
        patience,
        variables.get("HOTLINE_STICKY_AGENT") or None,
    )


@dataclass(frozen=True, slots=True)
class IvrDialplan:
    """``hotline-inbound`` with ``HOTLINE_IVR=yes``: where ``AGI()`` connects
    (``${HOTLINE_BACKEND}:4573``) and the globals' defaults for what the flow left unset."""

    host: str
    port: int
    flow: str = "main"
    survey_flow: str = "survey"
    default_queue: str = "support"
    default_priority: int = 0
    prompt_seconds: float = 0.0
    time_scale: float = 0.0


async def ivr_arrival(
    dialplan: IvrDialplan, arrival: Arrival, uniqueid: str
) -> tuple[AgiCallResult, Arrival | None]:
    """A scenario caller runs the flow with their group's keys; then, as the sample
    dialplan does after ``AGI()``, waits with what the flow set, the defaults filling in
    the rest (all of it when the server was unreachable: ``AGISTATUS=FAILURE``). The
    arrival is ``None`` when the flow hung up or sent the caller elsewhere."""
    result = await run_agi(
        dialplan.host,
        dialplan.port,
        script=dialplan.flow,
        channel=f"Local/{arrival.number}@callers-{uniqueid.replace('.', '')[-8:]};1",
        uniqueid=uniqueid,
        callerid=arrival.number,
        calleridname=arrival.name,
        dtmf=arrival.ivr.dtmf if arrival.ivr else (),
        prompt_seconds=dialplan.prompt_seconds,
        time_scale=dialplan.time_scale,
    )
    after = arrival_after_ivr(
        result,
        arrival.number,
        name=arrival.name,
        patience=arrival.patience,
        default_queue=dialplan.default_queue,
        default_priority=dialplan.default_priority,
    )
    return result, replace(after, at=arrival.at, ivr=arrival.ivr) if after else None


async def run_survey(dialplan: IvrDialplan, arrival: Arrival, call_id: str) -> AgiCallResult:
    """The answered caller resumes ``hotline-inbound`` after the bridge and runs the survey
    flow on their own channel (Uniqueid ``call_id``, still carrying the ``HOTLINE_QUEUE``
    and ``HOTLINE_PRIORITY`` it waited with) with their group's survey keys."""
    return await run_agi(
        dialplan.host,
        dialplan.port,
        script=dialplan.survey_flow,
        channel=f"Local/{arrival.number}@callers-{call_id.replace('.', '')[-8:]};1",
        uniqueid=call_id,
        callerid=arrival.number,
        calleridname=arrival.name,
        priority=30,
        dtmf=arrival.ivr.survey if arrival.ivr else (),
        variables={"HOTLINE_QUEUE": arrival.queue, "HOTLINE_PRIORITY": str(arrival.priority)},
        prompt_seconds=dialplan.prompt_seconds,
        time_scale=dialplan.time_scale,
    )


class IvrTraffic:
    """The scenario's callers dialling in through the IVR (``HOTLINE_IVR=yes``).

    Instead of :meth:`SimPbx.start_arrivals <hotline.sim.pbx.SimPbx.start_arrivals>`:
    each caller runs the ``main`` flow with their group's keys when the scenario says
    they arrive, then waits at the sim with what the flow set (the dialplan's defaults
    for the rest, all of them when the FastAGI server is unreachable). A caller whose
    call ends answered with the agent hanging up first then runs the survey flow with
    their group's survey keys on the call's Uniqueid. (Asterisk runs the survey on the
    caller's channel before it hangs up; the sim runs it once the call is written to
    the ground truth, after the channel is gone: the backend only needs the Uniqueid.)
    A call is matched to its caller by number, so two overlapping calls from one number
    may swap their surveys.
    """

    def __init__(self, sim: SimPbx, dialplan: IvrDialplan, *, poll: float = 0.5) -> None:
        """Over a started ``sim``; ``poll``: how often (scenario seconds) the ground truth
        is read for the end of a caller's call."""
        self.sim = sim
        self.dialplan = dialplan
        self.poll = poll
        self.flows: list[tuple[Arrival, AgiCallResult]] = []
        """Each caller's main-flow session, in arrival order of their end."""
        self.surveys: list[tuple[str, AgiCallResult]] = []
        """Each survey session with the call id it ran for."""
        self._claimed: set[str] = set()

    async def run(self) -> None:
        """Every arrival of the scenario, through the IVR, to the end of its call."""
        clock = self.sim.clock
        origin = clock.now()
        async with asyncio.TaskGroup() as group:
            for index, arrival in enumerate(generate_arrivals(self.sim.scenario)):
                await clock.sleep(max(arrival.at - (clock.now() - origin), 0.0))
                group.create_task(self._caller(arrival, f"{clock.now():.0f}.{index}"))

    async def _caller(self, arrival: Arrival, uniqueid: str) -> None:
        result, waiting = await ivr_arrival(self.dialplan, arrival, uniqueid)
        self.flows.append((arrival, result))
        if waiting is None:
            return
        self.sim.core.arrive(waiting)
        record = await self._ended(waiting.number)
        if record.get("outcome") == "answered" and record.get("hung_up_by") == "agent":
            survey = await run_survey(self.dialplan, waiting, str(record["call_id"]))
            self.surveys.append((str(record["call_id"]), survey))

    async def _ended(self, number: str) -> dict[str, Any]:
        """The ground-truth line of this caller's call, once it is written."""
        while True:
            for record in self.sim.ground_truth:
                call_id = str(record.get("call_id"))
                if (
                    record.get("type") == "call"
                    and record.get("number") == number
                    and call_id not in self._claimed
                ):
                    self._claimed.add(call_id)
                    return record
            await self.sim.clock.sleep(self.poll)
