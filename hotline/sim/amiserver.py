"""An asyncio AMI *server*: sessions, login, event fan-out, action dispatch.

This is the transport half of the simulated PBX (:mod:`hotline.sim.pbx` adds the
calls). It behaves like Asterisk's manager as recorded in the traces:

* it greets with ``Asterisk Call Manager/11.0.0``;
* ``Login`` with the right secret answers ``Authentication accepted`` and then
  ``FullyBooted`` (and, with ``security_events``, broadcasts the
  ``SuccessfulAuth`` security event the traces show); a wrong one is answered
  about a second later with ``Authentication failed`` and the socket is
  closed (``bad_login.jsonl``); MD5 ``Challenge`` login works too;
* before login every other action gets ``Permission denied``; a message without
  ``Action`` gets ``Missing action in request``; an unknown action gets
  ``Invalid/unknown command``;
* ``Events`` and the login's ``Events:`` set the session's event mask, ``Filter``
  adds a regex filter, ``Ping`` answers ``Pong``, ``Logoff`` says goodbye;
* the account's ``event_filter`` plays the manager user's advanced include
  filters (``eventfilter(action(include),name(<Event>)) =`` lines in
  ``manager.conf``, ``backend_answered_filtered.jsonl``): only events so named
  are broadcast to its sessions. Like Asterisk, it filters broadcast events
  only: responses, event-list items and the ``FullyBooted`` written at login
  (``astman_append`` in ``action_login``) always pass;
* a client that stops reading is disconnected once its unsent output has stayed
  above the high-water mark for ``write_timeout`` (Asterisk's ``writetimeout``),
  so one stuck client never stalls the others.

Output to a session is gathered during one turn of the event loop and written
with one ``transport.write`` at its end: a burst of events costs one system call
per client, not one per event.

Actions other than these go to handlers registered with :meth:`AmiServer.register`.
An event is encoded once and written to every session that wants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import structlog

from hotline.ami.codec import AmiCodec, AmiProtocolError, Message, encode_message

__all__ = ["AmiServer", "AmiSession", "Handler", "ServerCredentials"]

log = structlog.get_logger("hotline.sim.ami")

Pairs = list[tuple[str, str]]
Handler = Callable[["AmiSession", Message], Awaitable[None] | None]

_ALWAYS_ALLOWED: Final = frozenset({"login", "challenge", "logoff", "ping"})
_HIGH_WATER: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class ServerCredentials:
    """The one manager account the server accepts."""

    username: str = "hotline"
    secret: str = "hotline-secret"  # noqa: S105 - the sim's documented default, not a real secret
    event_filter: frozenset[str] | None = None
    """Event names of the user's ``eventfilter(action(include),name(...))`` lines; None or
    empty: no such filter (every event the session's mask allows)."""


class AmiSession(asyncio.Protocol):
    """One client connection to :class:`AmiServer`."""

    def __init__(self, server: AmiServer) -> None:
        """Created by the server for each accepted connection."""
        self.server = server
        self.codec = AmiCodec(expect_greeting=False)
        self.transport: asyncio.Transport | None = None
        self.authenticated = False
        self.username: str | None = None
        self.event_classes: frozenset[str] | None = frozenset()
        self.filters: list[tuple[bool, re.Pattern[str]]] = []
        self.event_filter: frozenset[str] = frozenset()
        self.challenge: str | None = None
        self.closed = False
        self._write_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: list[bytes] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Greet the client."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        self.server.sessions.add(self)
        transport.write(f"Asterisk Call Manager/{self.server.version}\r\n".encode())

    def data_received(self, data: bytes) -> None:
        """Parse actions and dispatch them in order."""
        try:
            messages = self.codec.feed(data)
        except AmiProtocolError as exc:
            for message in exc.messages:
                self._handle(message)
            self.send_error(None, f"Protocol error: {exc.reason}")
            self.close()
            return
        for message in messages:
            self._handle(message)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 (asyncio.Protocol callback)
        """Forget the session."""
        self.closed = True
        self.server.sessions.discard(self)
        if self._write_timer is not None:
            self._write_timer.cancel()
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:
        """The client is not reading: start the write-timeout clock."""
        if self._write_timer is None:
            loop = asyncio.get_running_loop()
            self._write_timer = loop.call_later(self.server.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        """The client caught up."""
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        log.warning("sim.ami.write_timeout", timeout=self.server.write_timeout)
        self.server.slow_disconnects += 1
        self.abort()

    # -- sending ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue raw bytes (unless closed); they are written at the end of this loop turn."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        outbox = self._outbox
        if outbox is None:
            self._outbox = [data]
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            outbox.append(data)

    def flush(self) -> None:
        """Write the queued output now."""
        outbox, self._outbox = self._outbox, None
        transport = self.transport
        if outbox and transport is not None and not transport.is_closing():
            transport.write(b"".join(outbox))

    def send(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Encode and write one message."""
        self.write(encode_message(pairs))

    def send_response(
        self, action: Message | None, status: str, pairs: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Write ``Response: status``, the action's ActionID, then ``pairs``."""
        head: Pairs = [("Response", status)]
        action_id = action.get("ActionID") if action is not None else None
        if action_id is not None:
            head.append(("ActionID", action_id))
        head.extend(pairs)
        self.send(head)

    def send_success(self, action: Message, message: str | None = None) -> None:
        """``Response: Success`` with an optional ``Message``."""
        self.send_response(action, "Success", [("Message", message)] if message else [])

    def send_error(self, action: Message | None, message: str) -> None:
        """``Response: Error`` with ``Message``."""
        self.send_response(action, "Error", [("Message", message)])

    def wants(self, classes: frozenset[str], text: str, name: str) -> bool:
        """Whether event ``name`` of these privilege classes (and this text) goes to this session.

        As in Asterisk's manager, the user's name filters and the session's
        ``Filter`` regexes are one set of filters: with any include filter an event
        must match one of them, and then none of the exclude ones.
        """
        if not self.authenticated:
            return False
        mask = self.event_classes
        if mask is not None and not (mask & classes):
            return False
        return self._filters_pass(text, name)

    def _filters_pass(self, text: str, name: str) -> bool:
        """The name filters and ``Filter`` regexes let the event through."""
        names = self.event_filter
        if not self.filters:
            return not names or name in names
        allowed = [pattern.search(text) is not None for keep, pattern in self.filters if keep]
        if (names or allowed) and not (name in names or any(allowed)):
            return False
        return not any(pattern.search(text) for keep, pattern in self.filters if not keep)

    def close(self) -> None:
        """Close after the pending output is flushed."""
        if self.transport is not None and not self.closed:
            self.flush()
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self._outbox = None
            self.closed = True
            self.transport.abort()

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a coroutine tied to this session (cancelled when it closes)."""

        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- dispatch -----------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        action = message.get("Action")
        if not action:
            self.send_error(message, "Missing action in request")
            return
        name = action.lower()
        if not self.authenticated and name not in _ALWAYS_ALLOWED:
            self.send_error(message, "Permission denied")
            return
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            builtin(self, message)
            return
        handler = self.server.handlers.get(name)
        if handler is None:
            self.send_error(
                message,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
            return
        try:
            result = handler(self, message)
        except Exception as exc:  # a handler bug must not take the server down
            log.exception("sim.ami.handler_failed", action=action)
            self.send_error(message, f"Internal error: {type(exc).__name__}")
            return
        if result is not None:
            self.spawn(result)


def _login(session: AmiSession, message: Message) -> None:
    server = session.server
    server.login_attempts += 1
    creds = server.credentials
    username = message.get("Username") or ""
    if (message.get("AuthType") or "").lower() == "md5":
        expected = hashlib.md5(  # noqa: S324 - MD5 is what AMI's challenge auth defines
            ((session.challenge or "") + creds.secret).encode()
        ).hexdigest()
        accepted = session.challenge is not None and message.get("Key") == expected
    else:
        accepted = message.get("Secret") == creds.secret
    if username != creds.username or not accepted:
        session.spawn(_refuse_login(session, message))
        return
    session.authenticated = True
    session.username = username
    session.event_classes = _event_mask(message.get("Events"))
    session.event_filter = creds.event_filter or frozenset()
    session.send_success(message, "Authentication accepted")
    uptime = str(int(time.monotonic() - server.started_at))
    session.send(
        [
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", uptime),
            ("LastReload", uptime),
            ("Status", "Fully Booted"),
        ]
    )
    if server.security_events:
        _successful_auth(session, username)
    if server.on_login is not None:
        server.on_login(session)


def _successful_auth(session: AmiSession, username: str) -> None:
    """The ``SuccessfulAuth`` security event, to every session that reads ``security``."""
    server = session.server
    now = server.now()
    tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+0000"
    transport = session.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    remote = transport.get_extra_info("peername") if transport is not None else None
    server.broadcast(
        [
            ("Event", "SuccessfulAuth"),
            ("Privilege", "security,all"),
            ("EventTV", tv),
            ("Severity", "Informational"),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            ("AccountID", username),
            ("SessionID", f"0x{id(session):x}"),
            ("LocalAddress", _address(local)),
            ("RemoteAddress", _address(remote)),
            ("UsingPassword", "0"),
            ("SessionTV", tv),
        ]
    )


def _address(sockname: object) -> str:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return f"IPV{6 if ':' in str(sockname[0]) else 4}/TCP/{sockname[0]}/{sockname[1]}"
    return "IPV4/TCP/0.0.0.0/0"


async def _refuse_login(session: AmiSession, message: Message) -> None:
    await session.server.sleep(session.server.auth_failure_delay)
    session.send_error(message, "Authentication failed")
    session.close()


def _challenge(session: AmiSession, message: Message) -> None:
    if (message.get("AuthType") or "").lower() != "md5":
        session.send_error(message, "Must specify AuthType")
        return
    session.challenge = str(random.randint(100_000_000, 999_999_999))
    session.send_response(message, "Success", [("Challenge", session.challenge)])


def _logoff(session: AmiSession, message: Message) -> None:
    session.send_response(message, "Goodbye", [("Message", "Thanks for all the fish.")])
    session.close()


def _ping(session: AmiSession, message: Message) -> None:
    if session.server.answer_pings:
        session.send_response(
            message, "Success", [("Ping", "Pong"), ("Timestamp", f"{session.server.now():.6f}")]
        )


def _events(session: AmiSession, message: Message) -> None:
    mask = message.get("EventMask") or "off"
    session.event_classes = _event_mask(mask)
    session.send_response(
        message, "Success", [("Events", "Off" if session.event_classes == frozenset() else "On")]
    )


def _filter(session: AmiSession, message: Message) -> None:
    expression = message.get("Filter") or ""
    keep = not expression.startswith("!")
    try:
        pattern = re.compile(expression if keep else expression[1:])
    except re.error:
        session.send_error(message, "Filter Not Added")
        return
    session.filters.append((keep, pattern))
    session.send_success(message, "Success")


_BUILTINS: Final[dict[str, Callable[[AmiSession, Message], None]]] = {
    "login": _login,
    "challenge": _challenge,
    "logoff": _logoff,
    "ping": _ping,
    "events": _events,
    "filter": _filter,
}


def _event_mask(value: str | None) -> frozenset[str] | None:
    """``None`` means every class; an empty set means events off."""
    text = (value or "on").strip().lower()
    if text in ("on", "yes", "true", "all", "1"):
        return None
    if text in ("off", "no", "false", "0"):
        return frozenset()
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _encode_event(pairs: Pairs) -> bytes:
    """:func:`encode_message` without re-validating the server's own keys (events are hot)."""
    text = "".join([f"{key}: {value}\r\n" for key, value in pairs])
    count = len(pairs)
    if text.count("\n") != count or text.count("\r") != count or "\x00" in text:
        return encode_message(pairs)
    return (text + "\r\n").encode("utf-8")


class AmiServer:
    """An AMI server on a TCP port, with pluggable action handlers."""

    def __init__(
        self,
        *,
        credentials: ServerCredentials | None = None,
        clock: Callable[[], float] = time.time,
        auth_failure_delay: float = 1.0,
        write_timeout: float = 0.5,
        version: str = "11.0.0",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` gives the epoch seconds written in ``Timestamp`` headers; ``sleep``
        waits ``auth_failure_delay`` on that clock's time."""
        self.credentials = credentials or ServerCredentials()
        self.now = clock
        self.sleep = sleep
        self.auth_failure_delay = auth_failure_delay
        self.write_timeout = write_timeout
        self.version = version
        self.handlers: dict[str, Handler] = {}
        self.sessions: set[AmiSession] = set()
        self.started_at = time.monotonic()
        self.answer_pings = True
        self.slow_disconnects = 0
        self.login_attempts = 0
        self.security_events = False
        self._classes: dict[str, frozenset[str]] = {}
        self.on_login: Callable[[AmiSession], None] | None = None
        self._server: asyncio.Server | None = None

    def register(self, action: str, handler: Handler) -> None:
        """Handle ``action`` (case-insensitive) with ``handler(session, message)``."""
        self.handlers[action.lower()] = handler

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        """Listen on ``host:port`` (0 picks a free port; see :attr:`port`), over TLS if given."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AmiSession(self), host, port, ssl=tls)

    @property
    def port(self) -> int:
        """The port actually listened on."""
        assert self._server is not None, "server not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def broadcast(self, pairs: Pairs, *, timestamp: bool = True) -> None:
        """Send one event to every session that wants it.

        ``pairs`` must start with ``Event`` and ``Privilege``; a ``Timestamp``
        from the server clock is inserted after ``Privilege`` unless told not to.
        Keys come from the server's own code; values are checked for CR, LF and
        NUL (header injection) as :func:`encode_message` does.
        """
        if timestamp:
            pairs = [pairs[0], pairs[1], ("Timestamp", f"{self.now():.6f}"), *pairs[2:]]
        if not self.sessions:
            return
        data = _encode_event(pairs)
        name, privilege = pairs[0][1], pairs[1][1]
        classes = self._classes.get(privilege)
        if classes is None:
            classes = self._classes[privilege] = frozenset(
                part for part in privilege.lower().split(",") if part and part != "all"
            )
        text = ""
        for session in list(self.sessions):
            if session.filters and not text:
                text = data.decode("utf-8", "replace")
            if session.wants(classes, text, name):
                session.write(data)

    def drop_all(self) -> None:
        """Abort every client connection at once (a PBX restart, as seen by clients)."""
        for session in list(self.sessions):
            session.abort()

    async def close(self, *, graceful: bool = False) -> None:
        """Stop listening and drop every session.

        ``graceful`` first lets each client read what was already sent to it
        (for up to ``write_timeout``), then closes its socket.
        """
        if self._server is not None:
            self._server.close()
            if graceful:
                for session in list(self.sessions):
                    session.close()
                deadline = time.monotonic() + self.write_timeout
                while time.monotonic() < deadline:
                    if not self.sessions:
                        break
                    await asyncio.sleep(0.01)
            self.drop_all()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
