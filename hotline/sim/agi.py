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
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from hotline.sim.scenario import Arrival

__all__ = ["HANG_UP", "AgiCallResult", "arrival_after_ivr", "run_agi"]

HANG_UP: Final = "hangup"
"""A ``dtmf`` entry: the caller hangs up during that input command."""
_TOKEN: Final = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_COMMANDS: Final = (
    "GET FULL VARIABLE",
    "GET VARIABLE",
    "SET VARIABLE",
    "SET CONTEXT",
    "SET EXTENSION",
    "SET PRIORITY",
    "STREAM FILE",
    "GET DATA",
    "WAIT FOR DIGIT",
    "CHANNEL STATUS",
    "VERBOSE",
    "ANSWER",
    "HANGUP",
    "NOOP",
    "EXEC",
)
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
    reader, writer = await asyncio.open_connection(host, port)
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
    return result


async def _answer(  # noqa: C901 (one case per AGI command)
    line: str,
    result: AgiCallResult,
    presses: list[str],
    sleep: Sleep,
    prompt_seconds: float,
) -> tuple[str, bool]:
    name = next((c for c in _COMMANDS if line == c or line.startswith(c + " ")), line)
    rest = _args(line[len(name) :])
    if name in ("VERBOSE", "NOOP"):
        return "200 result=1\n", False
    if name == "ANSWER":
        return "200 result=0\n", False
    if name == "CHANNEL STATUS":
        return "200 result=6\n", False
    if name == "SET VARIABLE" and len(rest) == 2:
        result.variables[rest[0]] = rest[1]
        return "200 result=1\n", False
    if name in ("GET VARIABLE", "GET FULL VARIABLE") and len(rest) == 1:
        key = rest[0].removeprefix("${").removesuffix("}")
        if key in result.variables:
            return f"200 result=1 ({result.variables[key]})\n", False
        return "200 result=0\n", False
    if name == "STREAM FILE" and rest:
        result.prompts.append(rest[0])
        await sleep(prompt_seconds)
        return f"200 result=0 endpos={int(prompt_seconds * 8000)}\n", False
    if name in ("GET DATA", "WAIT FOR DIGIT") and rest:
        if name == "GET DATA":
            result.prompts.append(rest[0])
            await sleep(prompt_seconds)
        press = presses.pop(0) if presses else ""
        timeout = float(rest[1] if name == "GET DATA" and len(rest) > 1 else rest[0]) / 1000
        if press == HANG_UP:
            result.hung_up = True
            return "HANGUP\n200 result=-1\n", True
        if not press:
            await sleep(max(timeout, 0.0))
            return ("200 result= (timeout)\n" if name == "GET DATA" else "200 result=0\n"), False
        await sleep(0.5 * len(press))
        if name == "GET DATA":
            return f"200 result={press}\n", False
        return f"200 result={ord(press[0])}\n", False
    if name in ("SET CONTEXT", "SET EXTENSION", "SET PRIORITY") and len(rest) == 1:
        context, exten, prio = result.location or ("", "", "")
        if name == "SET CONTEXT":
            context = rest[0]
        elif name == "SET EXTENSION":
            exten = rest[0]
        else:
            prio = rest[0]
        result.location = (context, exten, prio)
        return "200 result=0\n", False
    if name == "EXEC" and rest:
        return "200 result=0\n", False
    if name == "HANGUP":
        result.hung_up = True
        return "200 result=1\n", True
    return "510 Invalid or unknown command\n", False


def arrival_after_ivr(
    result: AgiCallResult,
    number: str,
    *,
    name: str = "Caller",
    patience: float = 120.0,
    default_queue: str = "support",
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
        int(variables.get("HOTLINE_PRIORITY") or 0),
        skills,
        variables.get("HOTLINE_LANG") or None,
        patience,
        variables.get("HOTLINE_STICKY_AGENT") or None,
    )
