"""Sans-I/O FastAGI, the dialect of Asterisk 22 (``tests/traces/fastagi_session.jsonl``).

:class:`AgiConnection` is the AGI server's side of one session, in the style of
h11: it does no I/O. Feed it the bytes Asterisk sent with :meth:`receive_data`
(``b""`` for end of file) and pull parsed events with :meth:`next_event`; turn a
command into bytes with :meth:`send_command`. Events, in order:

- :class:`AgiEnvironment`: the ``agi_*: value`` block up to its blank line, once;
- :class:`AgiReply`: one reply per command sent, in order: ``200 result=N``,
  optionally ``(data)`` and ``endpos=M``; ``510 Invalid or unknown command``;
  the multi-line ``520-...`` usage reply, complete once its ``520 End of proper
  usage.`` line arrives; any other ``5xx text`` line;
- :class:`AgiHangup`: the ``HANGUP`` line Asterisk sends a FastAGI socket when
  the channel hangs up (it may arrive between a command and its reply);
- :data:`NEED_DATA` until more bytes arrive, :data:`CLOSED` after end of file.

Anything else (a line without a reply code, a reply with no command pending, an
over-long line or block, bytes that are not UTF-8, end of file inside the
environment or inside a 520 block) raises :class:`AgiProtocolError`, the only
exception this module raises for bad peer input; the connection then stays
broken (every further call raises it again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

__all__ = [
    "CLOSED",
    "MAX_ENV_LINES",
    "MAX_LINE",
    "NEED_DATA",
    "AgiConnection",
    "AgiEnvironment",
    "AgiEvent",
    "AgiHangup",
    "AgiProtocolError",
    "AgiReply",
    "Sentinel",
    "format_command",
]

MAX_LINE: Final = 8192
"""Longest line accepted from Asterisk, in bytes (its own AGI buffer is 2,048)."""
MAX_ENV_LINES: Final = 200
"""Most ``agi_*`` lines in the environment block (Asterisk sends about 25)."""
MAX_USAGE_LINES: Final = 200
"""Most lines in one ``520-`` usage reply."""

_REPLY_200: Final = re.compile(r"200 result=(-?[0-9*#A-D]*)(?: \((.*)\))?(?: endpos=(-?\d+))?")
_REPLY_CODE: Final = re.compile(r"([1-5]\d\d)([ -])(.*)")
_ENV_LINE: Final = re.compile(r"(agi_[A-Za-z0-9_]+):(?: (.*))?")
_ARG_SAFE: Final = re.compile(r"[^\s\"\\]+")


class AgiProtocolError(Exception):
    """The peer broke the FastAGI protocol; the message says how."""


class Sentinel(Enum):
    """:data:`NEED_DATA` and :data:`CLOSED`."""

    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"


NEED_DATA: Final = Sentinel.NEED_DATA
"""No complete event yet: feed more bytes."""
CLOSED: Final = Sentinel.CLOSED
"""The peer closed the socket and every event before that was returned."""


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The ``agi_*`` block that opens a session, keys without the ``agi_`` prefix."""

    variables: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        """The value of ``agi_<name>`` (``default`` when absent)."""
        return self.variables.get(name, default)

    @property
    def channel(self) -> str:
        """``agi_channel``: the caller's channel name."""
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        """``agi_uniqueid``."""
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        """``agi_callerid``: the caller's number (``unknown`` when withheld)."""
        return self.get("callerid")

    @property
    def script(self) -> str:
        """``agi_network_script``: the path after the host in ``agi://host:port/<script>``."""
        return self.get("network_script")


@dataclass(frozen=True, slots=True)
class AgiReply:
    """Asterisk's reply to one command.

    ``code`` is 200 for a command that ran; then ``result`` is its ``result=``
    value as a number (``None`` when it is not one, e.g. ``GET DATA``'s
    ``result= (timeout)`` or ``result=12*``), ``raw_result`` its exact text,
    ``data`` the text in parentheses (or ``None``) and ``endpos`` the ``endpos=``
    offset (or ``None``). For a 5xx reply ``text`` is the message
    after the code and, for 520, ``usage`` the usage lines between its first and
    last line.
    """

    code: int
    result: int | None = None
    data: str | None = None
    endpos: int | None = None
    text: str = ""
    usage: tuple[str, ...] = field(default=())
    raw_result: str = field(default="", compare=False)

    @property
    def ok(self) -> bool:
        """The command ran (``200``)."""
        return self.code == 200


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """Asterisk's ``HANGUP`` line: the channel hung up."""


AgiEvent = AgiEnvironment | AgiReply | AgiHangup | Sentinel
"""What :meth:`AgiConnection.next_event` returns."""


def _quote(arg: str) -> str:
    """One command argument: bare when safe, else double-quoted with escapes."""
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise ValueError(f"an AGI argument cannot hold a line break or NUL: {arg!r}")
    if _ARG_SAFE.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(command: str, *args: str) -> bytes:
    """``command`` (e.g. ``"STREAM FILE"``) and its arguments as one AGI command line.

    Arguments with blanks or quotes are double-quoted (``STREAM FILE hotline-welcome
    "0123456789#*"`` as in the trace quotes the escape digits: they are always
    quoted when they contain ``#`` or ``*``).
    """
    if not re.fullmatch(r"[A-Z][A-Z ]*[A-Z]", command):
        raise ValueError(f"not an AGI command name: {command!r}")
    parts = [command]
    for arg in args:
        quoted = _quote(arg)
        if quoted == arg and ("#" in arg or "*" in arg):
            quoted = f'"{arg}"'
        parts.append(quoted)
    return (" ".join(parts) + "\n").encode()


class AgiConnection:
    """The AGI server's side of one FastAGI session (see the module docstring)."""

    def __init__(self) -> None:
        """A session waiting for the environment block."""
        self._buffer = bytearray()
        self._eof = False
        self._error: AgiProtocolError | None = None
        self._env: dict[str, str] | None = {}
        self._environment_done = False
        self._pending = 0
        self._usage: list[str] | None = None
        self._usage_text = ""
        self._closed_returned = False

    @property
    def pending(self) -> int:
        """Commands sent whose reply has not been returned yet."""
        return self._pending

    @property
    def environment_received(self) -> bool:
        """The environment block has been returned."""
        return self._environment_done

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed the socket."""
        if self._eof and data:
            raise RuntimeError("receive_data after end of file")
        if not data:
            self._eof = True
            return
        self._buffer += data

    def send_command(self, command: str, *args: str) -> bytes:
        """The bytes of ``command`` to write; its reply becomes pending."""
        if not self._environment_done:
            raise RuntimeError("no command before the environment block has been received")
        line = format_command(command, *args)
        self._pending += 1
        return line

    def send_raw(self, line: str) -> bytes:
        """One literal command line (no quoting); its reply becomes pending."""
        if "\n" in line or "\r" in line or not line:
            raise ValueError("a raw AGI command is one non-empty line")
        if not self._environment_done:
            raise RuntimeError("no command before the environment block has been received")
        self._pending += 1
        return (line + "\n").encode()

    def _fail(self, problem: str) -> AgiProtocolError:
        self._error = AgiProtocolError(problem)
        return self._error

    def _line(self) -> str | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise self._fail(f"line longer than {MAX_LINE} bytes")
            return None
        if end > MAX_LINE:
            raise self._fail(f"line longer than {MAX_LINE} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(f"line is not UTF-8: {raw[:60]!r}") from exc
        if "\0" in text:
            raise self._fail("NUL byte in a line")
        return text

    def next_event(self) -> AgiEvent:
        """The next parsed event, :data:`NEED_DATA` or :data:`CLOSED`."""
        if self._error is not None:
            raise self._error
        while True:
            line = self._line()
            if line is None:
                if not self._eof:
                    return NEED_DATA
                if self._buffer:
                    raise self._fail("end of file inside a line")
                if not self._environment_done:
                    raise self._fail("end of file inside the environment block")
                if self._usage is not None:
                    raise self._fail("end of file inside a 520 usage reply")
                self._closed_returned = True
                return CLOSED
            event = self._handle(line)
            if event is not None:
                return event

    def _handle(self, line: str) -> AgiEvent | None:
        if not self._environment_done:
            return self._handle_env(line)
        if self._usage is not None:
            return self._handle_usage(line)
        if line == "HANGUP":
            return AgiHangup()
        if self._pending == 0:
            raise self._fail(f"reply with no command pending: {line[:80]!r}")
        match = _REPLY_200.fullmatch(line)
        if match:
            self._pending -= 1
            endpos, raw = match.group(3), match.group(1)
            return AgiReply(
                code=200,
                result=int(raw) if re.fullmatch(r"-?\d+", raw) else None,
                raw_result=raw,
                data=match.group(2),
                endpos=None if endpos is None else int(endpos),
            )
        match = _REPLY_CODE.fullmatch(line)
        if match is None or match.group(1) == "200":
            raise self._fail(f"not an AGI reply: {line[:80]!r}")
        code, sep, text = int(match.group(1)), match.group(2), match.group(3)
        if sep == "-":
            if code != 520:
                raise self._fail(f"multi-line reply with code {code}: {line[:80]!r}")
            self._usage = []
            self._usage_text = text
            return None
        self._pending -= 1
        return AgiReply(code=code, text=text)

    def _handle_env(self, line: str) -> AgiEvent | None:
        assert self._env is not None
        if line == "":
            if not self._env:
                raise self._fail("empty environment block")
            self._environment_done = True
            env, self._env = self._env, None
            return AgiEnvironment(variables=env)
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise self._fail(f"not an agi_* environment line: {line[:80]!r}")
        if len(self._env) >= MAX_ENV_LINES:
            raise self._fail(f"more than {MAX_ENV_LINES} environment lines")
        self._env[match.group(1)[4:]] = match.group(2) or ""
        return None

    def _handle_usage(self, line: str) -> AgiEvent | None:
        assert self._usage is not None
        if line.startswith("520 "):
            usage, self._usage = tuple(self._usage), None
            self._pending -= 1
            return AgiReply(code=520, text=self._usage_text, usage=usage)
        if len(self._usage) >= MAX_USAGE_LINES:
            raise self._fail(f"520 usage reply longer than {MAX_USAGE_LINES} lines")
        self._usage.append(line)
        return None
