"""The asyncio FastAGI server: one :class:`AgiSession` per connection from Asterisk.

Asterisk's ``AGI(agi://host:4573/<script>)`` connects, sends the environment
block, then waits for commands; when the server closes the socket the call goes
on in the dialplan (``AGISTATUS=SUCCESS``); when nothing listens, ``AGI()`` fails
and the dialplan's defaults queue the caller.

- **Hang-up detection.** A session is hung up once Asterisk sends ``HANGUP``, a
  command is refused with ``511`` (dead channel), a ``WAIT FOR DIGIT`` answers
  ``-1``, or the socket closes; every later command raises :class:`AgiHangup`.
  (``STREAM FILE`` and ``GET DATA`` also answer ``-1`` on a live channel when the
  sound file is missing, as the trace shows, so for them ``-1`` only means "not
  played".)
- **Timeouts.** Each command waits at most ``command_timeout`` seconds beyond its
  own wait (a ``GET DATA`` of 5 s waits 5 s + ``command_timeout``), the environment
  block ``command_timeout`` seconds; a timeout ends that session.
- **Bounds.** At most ``max_sessions`` sessions run at once; a connection beyond
  that is closed at once (the dialplan then falls back to its defaults).
- **Isolation.** A protocol error (garbage), a timeout or an exception in the
  handler closes that session only; it is logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import structlog

from hotline.agi.protocol import (
    CLOSED,
    NEED_DATA,
    AgiConnection,
    AgiEnvironment,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
)

__all__ = [
    "AgiConfig",
    "AgiHangupError",
    "AgiServer",
    "AgiSession",
    "AgiStats",
    "AgiTimeoutError",
    "Handler",
]

log = structlog.get_logger("hotline.agi")

_READ: Final = 4096
_HANGUP_ON_MINUS_ONE: Final = frozenset({"WAIT FOR DIGIT", "CHANNEL STATUS", "ANSWER"})


@dataclass(frozen=True, slots=True)
class AgiConfig:
    """``[agi]``: whether the FastAGI server runs, where it listens, its flows, its limits."""

    enabled: bool = True
    listen: str = "127.0.0.1:4573"
    flows: str = "ivr_flows"
    command_timeout: float = 10.0
    max_sessions: int = 200


class AgiHangupError(Exception):
    """The caller hung up (``HANGUP``, ``511``, a ``-1`` result, or the socket closed)."""


class AgiTimeoutError(Exception):
    """Asterisk did not answer a command (or send the environment) in time."""


@dataclass(slots=True)
class AgiStats:
    """Counters of the server: sessions started, refused (over the bound), failed."""

    started: int = 0
    refused: int = 0
    failed: int = 0
    hangups: int = 0
    active: int = 0


class AgiSession:
    """One FastAGI session: the environment and typed commands."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        environment: AgiEnvironment,
        connection: AgiConnection,
        command_timeout: float,
    ) -> None:
        """Wrap a connection whose environment block has been read."""
        self.environment = environment
        self._reader = reader
        self._writer = writer
        self._connection = connection
        self._timeout = command_timeout
        self.hungup = False
        self.variables: dict[str, str] = {}
        """Every variable this session set, as set."""

    async def command(self, command: str, *args: str, wait: float = 0.0) -> AgiReply:
        """Send ``command`` and return its reply; ``wait``: the command's own wait, in s."""
        if self.hungup:
            raise AgiHangupError(f"{command}: the channel has hung up")
        self._writer.write(self._connection.send_command(command, *args))
        try:
            async with asyncio.timeout(self._timeout):
                await self._writer.drain()
            async with asyncio.timeout(wait + self._timeout):
                reply = await self._reply()
        except TimeoutError as exc:
            raise AgiTimeoutError(f"{command}: no reply within {wait + self._timeout:g} s") from exc
        except (ConnectionError, OSError) as exc:
            self.hungup = True
            raise AgiHangupError(f"{command}: {exc}") from exc
        if reply.code == 511 or (reply.result == -1 and command in _HANGUP_ON_MINUS_ONE):
            self.hungup = True
        if self.hungup:
            raise AgiHangupError(f"{command}: the channel hung up")
        return reply

    async def _reply(self) -> AgiReply:
        while True:
            event = self._connection.next_event()
            if isinstance(event, AgiReply):
                return event
            if isinstance(event, AgiHangup):
                self.hungup = True
                continue
            if event is CLOSED:
                self.hungup = True
                raise AgiHangupError("the socket closed")
            if event is NEED_DATA:
                self._connection.receive_data(await self._reader.read(_READ))
                continue
            raise AgiProtocolError(f"unexpected event {event!r}")  # pragma: no cover

    async def answer(self) -> None:
        """``ANSWER``."""
        await self.command("ANSWER")

    async def verbose(self, message: str, level: int = 1) -> None:
        """``VERBOSE``: a line on Asterisk's console."""
        await self.command("VERBOSE", message, str(level))

    async def stream_file(self, name: str, escape: str = "") -> str | None:
        """``STREAM FILE``: the digit that interrupted it, else ``None``."""
        reply = await self.command("STREAM FILE", name, escape, wait=60.0)
        return chr(reply.result) if reply.result and reply.result > 0 else None

    async def get_data(self, prompt: str, timeout: float, max_digits: int) -> str | None:
        """``GET DATA``: the digits entered (``""`` on timeout), ``None`` if the prompt failed."""
        reply = await self.command(
            "GET DATA", prompt, str(int(timeout * 1000)), str(max_digits), wait=60.0 + timeout
        )
        if reply.result == -1:
            return None
        return reply.raw_result

    async def wait_for_digit(self, timeout: float) -> str | None:
        """``WAIT FOR DIGIT``: the digit pressed, ``None`` on timeout."""
        reply = await self.command("WAIT FOR DIGIT", str(int(timeout * 1000)), wait=timeout)
        return chr(reply.result) if reply.result else None

    async def set_variable(self, name: str, value: str) -> None:
        """``SET VARIABLE`` (also kept in :attr:`variables`)."""
        await self.command("SET VARIABLE", name, value)
        self.variables[name] = value

    async def get_variable(self, name: str) -> str | None:
        """``GET VARIABLE``: the value, ``None`` when unset."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == 1 else None

    async def exec(self, application: str, *args: str) -> int:
        """``EXEC``: run a dialplan application; its result."""
        reply = await self.command("EXEC", application, ",".join(args), wait=600.0)
        return reply.result or 0

    async def hangup(self) -> None:
        """``HANGUP`` the channel."""
        await self.command("HANGUP")


Handler = Callable[[AgiSession], Awaitable[None]]
"""Runs one session; returning ends it (the server closes the socket)."""


class AgiServer:
    """Listens for FastAGI connections and runs ``handler`` on each session."""

    def __init__(self, handler: Handler, config: AgiConfig | None = None) -> None:
        """A server, not yet listening."""
        self._handler = handler
        self.config = config or AgiConfig()
        self.stats = AgiStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (useful with port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start accepting; raises ``OSError`` if the address is taken."""
        host, _, port = self.config.listen.rpartition(":")
        self._server = await asyncio.start_server(self._accept, host.strip("[]"), int(port))
        log.info("agi.listening", listen=self.config.listen)

    async def close(self) -> None:
        """Stop accepting and end every session."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stats.active >= self.config.max_sessions:
            self.stats.refused += 1
            log.warning("agi.refused", reason="max_sessions", max=self.config.max_sessions)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.active += 1
        self.stats.started += 1
        try:
            await self._session(reader, writer)
        finally:
            self.stats.active -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = AgiConnection()
        channel = "?"
        try:
            async with asyncio.timeout(self.config.command_timeout):
                environment = await _environment(reader, connection)
            channel = environment.channel
            session = AgiSession(
                reader, writer, environment, connection, self.config.command_timeout
            )
            await self._handler(session)
        except AgiHangupError as exc:
            self.stats.hangups += 1
            log.info("agi.hangup", channel=channel, detail=str(exc))
        except (AgiProtocolError, AgiTimeoutError, TimeoutError) as exc:
            self.stats.failed += 1
            log.warning("agi.session_failed", channel=channel, error=str(exc) or "timeout")
        except (ConnectionError, OSError) as exc:
            self.stats.hangups += 1
            log.info("agi.hangup", channel=channel, detail=str(exc))
        except Exception:
            self.stats.failed += 1
            log.exception("agi.handler_failed", channel=channel)


async def _environment(reader: asyncio.StreamReader, connection: AgiConnection) -> AgiEnvironment:
    while True:
        event = connection.next_event()
        if isinstance(event, AgiEnvironment):
            return event
        if event is NEED_DATA:
            connection.receive_data(await reader.read(_READ))
            continue
        raise AgiProtocolError(f"unexpected event before the environment: {event!r}")
