"""The asyncio AMI client: one connection, actions by ActionID, events to subscribers.

Theory of operation
-------------------
A supervisor task owns the connection. Each round it connects (TCP, optionally
TLS), waits for the greeting, logs in (plain secret or MD5 challenge) and then
sleeps until the connection is lost; then it backs off exponentially, with
jitter, and tries again. A wrong secret on the very first login is fatal (the
configuration is wrong, and retrying fast would only hammer the PBX); on a later
reconnect it is retried at the longest back-off.

Bytes arrive in :meth:`_AmiProtocol.data_received`, which runs synchronously:
the sans-I/O codec turns them into messages and :meth:`AmiClient._dispatch`
routes each one, in order, without ever awaiting:

* a ``Response`` resolves the pending action with the same ActionID; if it says
  ``EventList: start`` the action stays pending and collects the events that
  carry its ActionID until the ``...Complete`` event. A list is bounded: past
  ``max_list_items`` items or ``max_list_bytes`` bytes of message text it is a
  protocol error: the action fails with :class:`AmiListTooLong` and the client
  drops the connection and reconnects, so a list that never completes cannot
  grow memory without bound;
* every other event goes to every :class:`Subscription`.

Subscriptions are bounded deques (in events, and in bytes of message text), so
the reader never waits on a slow consumer and a flood of large events cannot
grow memory without bound.
A *lossless* subscription (the engine's) that overflows makes the client drop
the connection on purpose: the subscriber then sees ``Disconnected`` and later
``Connected``, and resynchronises its state from the PBX. A *lossy* one (a debug
tap, a live feed) just drops events, counted and logged.

Every successful login pushes :class:`Connected` to every subscription *before*
any event of that connection, and every loss pushes :class:`Disconnected`. Actions
in flight when a connection drops fail with :class:`AmiConnectionLost`; nothing
is re-sent automatically, which matters for ``Originate``: re-sending it would
ring an agent twice.

A keepalive ``Ping`` runs on an idle connection; no reply within the timeout
counts as a dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import unquote, urlsplit

import structlog

from hotline.ami.codec import AmiCodec, AmiProtocolError, Message, encode_action
from hotline.secret import Secret

__all__ = [
    "ActionResult",
    "AmiActionError",
    "AmiActionTimeout",
    "AmiAuthError",
    "AmiClient",
    "AmiConnectionLost",
    "AmiError",
    "AmiListTooLong",
    "AmiNotConnected",
    "AmiSettings",
    "Connected",
    "Disconnected",
    "Subscription",
    "SubscriptionItem",
]

log = structlog.get_logger("hotline.ami")

_SUCCESS: Final = frozenset({"success", "follows", "goodbye"})


class AmiError(Exception):
    """Base class of the AMI client's errors."""


class AmiAuthError(AmiError):
    """The PBX refused the login (wrong username or secret)."""


class AmiNotConnected(AmiError):
    """An action was sent while no logged-in connection exists."""


class AmiConnectionLost(AmiError):
    """The connection dropped before the action's reply arrived; it was not re-sent."""


class AmiActionTimeout(AmiError):
    """No complete reply to the action arrived within its timeout."""


class AmiListTooLong(AmiError):
    """An event-list reply passed ``max_list_items`` or ``max_list_bytes``; the connection
    was dropped."""


class AmiActionError(AmiError):
    """The PBX answered the action with an error response."""

    def __init__(self, result: ActionResult) -> None:
        """Wrap the failed result."""
        message = result.response.get("Message") or result.response.name
        super().__init__(f"{result.action} failed: {message}")
        self.result = result


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """How to reach and log in to the PBX's AMI. The secret never shows in ``repr``."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "hotline"
    secret: Secret = field(default_factory=lambda: Secret(""))
    use_tls: bool = False
    tls_verify: bool = True
    tls_ca_file: str | None = None
    md5_auth: bool = False
    events: str = "on"
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 15.0
    ping_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    backoff_reset_after: float = 10.0
    max_list_items: int = 100_000
    max_list_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> AmiSettings:
        """Parse ``ami://user:secret@host:port`` (``amis://`` for TLS).

        Query parameters ``events``, ``auth=md5``, ``tls_verify=0`` and
        ``ca=/path/to/ca.pem`` are understood; keyword ``overrides`` replace any
        field.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("ami", "amis"):
            raise ValueError(f"AMI URL must start with ami:// or amis://, got {parts.scheme!r}")
        query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
        settings = cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5038,
            username=unquote(parts.username or "hotline"),
            secret=Secret(unquote(parts.password or "")),
            use_tls=parts.scheme == "amis",
            tls_verify=query.get("tls_verify", "1") not in ("0", "false", "no"),
            tls_ca_file=unquote(query["ca"]) if "ca" in query else None,
            md5_auth=query.get("auth", "").lower() == "md5",
            events=unquote(query.get("events", "on")),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Connected:
    """The client logged in; everything after this belongs to connection ``generation``."""

    generation: int
    greeting: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Connection ``generation`` is gone; events may have been missed until the next Connected."""

    generation: int
    reason: str


SubscriptionItem = Message | Connected | Disconnected


class Subscription:
    """A bounded, non-blocking queue of events and connection signals for one consumer."""

    def __init__(
        self,
        client: AmiClient,
        name: str,
        *,
        lossless: bool,
        maxsize: int,
        wakeup: asyncio.Event | None = None,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        """Use :meth:`AmiClient.subscribe` to create one."""
        self.name = name
        self.lossless = lossless
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.dropped = 0
        self.overflows = 0
        self._client = client
        self._items: deque[SubscriptionItem] = deque()
        self._events = 0
        self._bytes = 0
        self._wakeup = asyncio.Event()
        self._shared_wakeup = wakeup
        self._discarding = False
        self._last_drop_log = 0.0

    def __len__(self) -> int:
        """Items waiting to be consumed."""
        return len(self._items)

    def _push_signal(self, item: Connected | Disconnected) -> None:
        if isinstance(item, Connected):
            self._discarding = False
        self._items.append(item)
        self._wake()

    def _push_event(self, message: Message) -> None:
        if self._discarding:
            return
        size = len(message.text)
        if self._events >= self.maxsize:
            self._overflow(f"{self.maxsize}")
            return
        if self._bytes + size > self.max_bytes:
            self._overflow(f"{self.max_bytes} bytes")
            return
        self._events += 1
        self._bytes += size
        self._items.append(message)
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()
        if self._shared_wakeup is not None:
            self._shared_wakeup.set()

    def _overflow(self, behind: str) -> None:
        if self.lossless:
            self.overflows += 1
            self._discarding = True
            log.error(
                "ami.subscriber_overflow",
                subscriber=self.name,
                maxsize=self.maxsize,
                max_bytes=self.max_bytes,
            )
            self._client._drop_connection(f"subscriber {self.name!r} fell {behind} behind")
            return
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 5.0:
            self._last_drop_log = now
            log.warning("ami.events_dropped", subscriber=self.name, dropped=self.dropped)

    def get_nowait(self) -> SubscriptionItem | None:
        """The next item, or None if nothing is waiting."""
        if not self._items:
            self._wakeup.clear()
            return None
        item = self._items.popleft()
        if isinstance(item, Message):
            self._events -= 1
            self._bytes -= len(item.text)
        return item

    async def get(self) -> SubscriptionItem:
        """Wait for the next item."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self._wakeup.wait()

    async def get_batch(self, limit: int = 1024) -> list[SubscriptionItem]:
        """Wait until something is queued, then take up to ``limit`` items at once."""
        while not self._items:
            self._wakeup.clear()
            await self._wakeup.wait()
        items = self._items
        batch = [items.popleft() for _ in range(min(limit, len(items)))]
        messages = [item for item in batch if isinstance(item, Message)]
        self._events -= len(messages)
        self._bytes -= sum(len(message.text) for message in messages)
        return batch

    def __aiter__(self) -> AsyncIterator[SubscriptionItem]:
        """Iterate forever over the items, waiting as needed."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SubscriptionItem]:
        while True:
            yield await self.get()

    def close(self) -> None:
        """Stop receiving items."""
        self._client._unsubscribe(self)


@dataclass(slots=True)
class ActionResult:
    """The reply to one action: its response, and for event-list actions the items."""

    action: str
    action_id: str
    response: Message
    events: list[Message] = field(default_factory=list)
    complete: Message | None = None

    @property
    def ok(self) -> bool:
        """True when the response is Success, Follows or Goodbye."""
        return self.response.name.lower() in _SUCCESS

    def raise_for_error(self) -> ActionResult:
        """Raise :class:`AmiActionError` unless :attr:`ok`; return self for chaining."""
        if not self.ok:
            raise AmiActionError(self)
        return self


class _Pending:
    """An action waiting for its reply; ``result`` is set while an event list is collected."""

    __slots__ = (
        "action",
        "action_id",
        "future",
        "list_bytes",
        "on_success",
        "result",
        "timer",
    )

    def __init__(
        self,
        action: str,
        action_id: str,
        future: asyncio.Future[ActionResult],
        on_success: Callable[[], None] | None,
    ) -> None:
        self.action = action
        self.action_id = action_id
        self.future = future
        self.on_success = on_success
        self.result: ActionResult | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.list_bytes = 0


class _AmiProtocol(asyncio.Protocol):
    def __init__(self, client: AmiClient) -> None:
        self._client = client
        self.codec = AmiCodec()
        self.transport: asyncio.Transport | None = None
        self.greeted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.lost_reason: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        received = time.perf_counter()
        try:
            messages = self.codec.feed(data)
        except AmiProtocolError as exc:
            self._client._dispatch(exc.messages)
            log.error("ami.protocol_error", error=exc.reason)
            self._client._drop_connection(f"protocol error: {exc.reason}")
            return
        if not self.greeted.done() and self.codec.greeting is not None:
            self.greeted.set_result(self.codec.greeting)
        if messages:
            for message in messages:
                message.received = received
            self._client._dispatch(messages)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed by the PBX"
        self.lost_reason = reason
        if not self.greeted.done():
            self.greeted.set_exception(AmiConnectionLost(reason))
        if not self.lost.done():
            self.lost.set_result(reason)


class AmiClient:
    """An asyncio AMI client with reconnect, keepalive, subscriptions and ActionID matching."""

    def __init__(self, settings: AmiSettings, *, name: str = "hotline") -> None:
        """Create a client; nothing connects until :meth:`start`."""
        self.settings = settings
        self.generation = 0
        # down_since: time.monotonic() since when no login has been up (from creation on)
        self.down_since: float | None = time.monotonic()
        self.greeting: str | None = None
        self._id_prefix = f"{name}-{os.getpid()}-{random.getrandbits(32):08x}"
        self._ids = itertools.count(1)
        self._subscriptions: list[Subscription] = []
        self._pending: dict[str, _Pending] = {}
        self._lists: dict[str, _Pending] = {}  # pending actions collecting an event list
        self._protocol: _AmiProtocol | None = None
        self._logged_in = False
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._ever_connected = False
        self._fatal: BaseException | None = None
        self._state_changed = asyncio.Event()
        self._drop_reason: str | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self._logged_in

    def lists_in_progress(self) -> list[ActionResult]:
        """The event-list replies still being collected, each with its events so far (what
        ``max_list_items``/``max_list_bytes`` bound; empty once every list completed, failed
        or was dropped with its connection)."""
        return [entry.result for entry in self._lists.values() if entry.result is not None]

    def subscribe(
        self,
        name: str,
        *,
        lossless: bool = False,
        maxsize: int = 10_000,
        wakeup: asyncio.Event | None = None,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> Subscription:
        """A new subscription to every event and connection signal from now on.

        ``wakeup``, if given, is also set whenever an item is queued, so a consumer
        can wait on several sources with one event. At most ``maxsize`` events and
        ``max_bytes`` bytes of their text wait in it (past either: see the module
        docstring).
        """
        subscription = Subscription(
            self, name, lossless=lossless, maxsize=maxsize, wakeup=wakeup, max_bytes=max_bytes
        )
        self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    async def start(self) -> None:
        """Start the connection supervisor (it connects in the background)."""
        if self._supervisor is None:
            self._closing = False
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until logged in; raise the fatal error (e.g. :class:`AmiAuthError`) if any."""
        async with asyncio.timeout(timeout):
            while not self._logged_in:
                if self._fatal is not None:
                    raise self._fatal
                self._state_changed.clear()
                await self._state_changed.wait()

    async def close(self) -> None:
        """Log off if connected, stop reconnecting and close the socket."""
        self._closing = True
        if self._logged_in:
            with contextlib.suppress(AmiError, TimeoutError):
                await self.action("Logoff", timeout=1.0)
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None

    def next_action_id(self) -> str:
        """A fresh ActionID, unique across clients and processes."""
        return f"{self._id_prefix}-{next(self._ids)}"

    def send(
        self,
        action: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        action_id: str | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[ActionResult]:
        """Write an action now and return a future for its complete reply.

        The write happens before this returns. Raises :class:`AmiNotConnected`
        when not logged in and ``ValueError`` for a CR/LF in any header.
        """
        if not self._logged_in:
            raise AmiNotConnected(f"cannot send {action}: not connected to the PBX")
        return self._write_action(action, headers, action_id=action_id, timeout=timeout)

    async def action(
        self,
        action: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        action_id: str | None = None,
        timeout: float | None = None,
    ) -> ActionResult:
        """Send an action and wait for its complete reply (event lists included)."""
        return await self.send(action, headers, action_id=action_id, timeout=timeout)

    # -- connection supervision ---------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            started = time.monotonic()
            try:
                await self._connect_once()
            except AmiAuthError as exc:
                if not self._ever_connected:
                    log.error("ami.auth_failed", error=str(exc), fatal=True)
                    self._fatal = exc
                    self._state_changed.set()
                    return
                log.error("ami.auth_failed", error=str(exc), fatal=False)
                attempt = max(attempt, 32)
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("ami.connect_failed", error=str(exc) or type(exc).__name__)
            if self._closing:
                return
            uptime = time.monotonic() - started
            if self._ever_connected and uptime >= self.settings.backoff_reset_after:
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            log.info("ami.reconnect_in", seconds=round(delay, 3))
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        settings = self.settings
        base = min(settings.reconnect_max, settings.reconnect_min * 2.0 ** min(attempt, 32))
        return base / 2 + random.random() * base / 2

    async def _connect_once(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        ssl_context: ssl.SSLContext | None = None
        if settings.use_tls:
            ssl_context = ssl.create_default_context(cafile=settings.tls_ca_file)
            if not settings.tls_verify:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        async with asyncio.timeout(settings.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: _AmiProtocol(self), settings.host, settings.port, ssl=ssl_context
            )
        self._protocol = protocol
        self._drop_reason = None
        keepalive: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(settings.connect_timeout + settings.action_timeout):
                self.greeting = await protocol.greeted
                await self._login()
            self.generation += 1
            self._ever_connected = True
            log.info(
                "ami.connected",
                host=settings.host,
                port=settings.port,
                generation=self.generation,
                greeting=self.greeting,
            )
            keepalive = asyncio.create_task(self._keepalive(), name="ami-keepalive")
            await protocol.lost
        except asyncio.CancelledError:
            self._drop_reason = self._drop_reason or "client stopped"
            raise
        finally:
            if keepalive is not None:
                keepalive.cancel()
            if protocol.transport is not None:
                protocol.transport.abort()
            self._on_lost(
                self._drop_reason
                or protocol.lost_reason
                or ("client closed" if self._closing else "connection attempt failed")
            )

    async def _login(self) -> None:
        settings = self.settings
        headers: list[tuple[str, str]] = [("Username", settings.username)]
        if settings.md5_auth:
            challenge = await self._write_action(
                "Challenge", [("AuthType", "MD5")], timeout=settings.action_timeout
            )
            if not challenge.ok:
                raise AmiAuthError(f"MD5 challenge refused: {challenge.response.get('Message')}")
            digest = hashlib.md5(  # noqa: S324 - MD5 is what AMI's challenge auth defines
                ((challenge.response.get("Challenge") or "") + settings.secret.reveal()).encode()
            ).hexdigest()
            headers += [("AuthType", "MD5"), ("Key", digest)]
        else:
            headers.append(("Secret", settings.secret.reveal()))
        headers.append(("Events", settings.events))
        result = await self._write_action(
            "Login", headers, timeout=settings.action_timeout, on_success=self._on_logged_in
        )
        if not result.ok:
            raise AmiAuthError(
                f"AMI login as {settings.username!r} refused: "
                f"{result.response.get('Message') or result.response.name}"
            )

    def _on_logged_in(self) -> None:
        """Runs synchronously as the login response is dispatched, before any later event."""
        self._logged_in = True
        self.down_since = None
        self._state_changed.set()
        signal = Connected(self.generation + 1, self.greeting or "")
        for subscription in self._subscriptions:
            subscription._push_signal(signal)

    async def _keepalive(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.ping_interval)
            try:
                await self._write_action("Ping", timeout=settings.ping_timeout)
            except AmiActionTimeout:
                log.warning("ami.ping_timeout", timeout=settings.ping_timeout)
                self._drop_connection(f"no Pong within {settings.ping_timeout} s")
                return
            except AmiError:
                return

    def _drop_connection(self, reason: str) -> None:
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            return
        self._drop_reason = reason
        log.warning("ami.dropping_connection", reason=reason)
        protocol.transport.abort()

    def _on_lost(self, reason: str) -> None:
        was_logged_in = self._logged_in
        self._logged_in = False
        self._protocol = None
        self._state_changed.set()
        pending, self._pending = self._pending, {}
        self._lists.clear()
        for entry in pending.values():
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.future.done():
                entry.future.set_exception(
                    AmiConnectionLost(
                        f"{entry.action} (ActionID {entry.action_id}) got no reply before the "
                        f"connection dropped ({reason}); it was not re-sent"
                    )
                )
        if was_logged_in:
            self.down_since = time.monotonic()
            log.warning(
                "ami.disconnected",
                reason=reason,
                generation=self.generation,
                failed_actions=len(pending),
            )
            signal = Disconnected(self.generation, reason)
            for subscription in self._subscriptions:
                subscription._push_signal(signal)

    # -- actions and dispatch -------------------------------------------------------------------

    def _write_action(
        self,
        action: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        on_success: Callable[[], None] | None = None,
    ) -> asyncio.Future[ActionResult]:
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise AmiNotConnected(f"cannot send {action}: not connected to the PBX")
        action_id = action_id or self.next_action_id()
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is already waiting for a reply")
        data = encode_action(action, headers, action_id=action_id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ActionResult] = loop.create_future()
        entry = _Pending(action, action_id, future, on_success)
        delay = self.settings.action_timeout if timeout is None else timeout
        entry.timer = loop.call_later(delay, self._expire, action_id, delay)
        self._pending[action_id] = entry
        protocol.transport.write(data)
        return future

    def _expire(self, action_id: str, delay: float) -> None:
        entry = self._pending.pop(action_id, None)
        self._lists.pop(action_id, None)
        if entry is not None and not entry.future.done():
            entry.future.set_exception(
                AmiActionTimeout(f"{entry.action} (ActionID {action_id}) had no reply in {delay} s")
            )

    def _dispatch(self, messages: Iterable[Message]) -> None:
        lists = self._lists
        for message in messages:
            if message.kind == "response":
                self._on_response(message)
                continue
            # Only an event-list reply in progress needs an event's ActionID; checking the
            # raw text first keeps every other event unparsed (Asterisk spells it ActionID).
            if lists and "ActionID" in message.text:
                entry = lists.get(message.get("ActionID") or "")
                if entry is not None:
                    self._on_list_item(entry, message)
                    if self._drop_reason is not None:
                        return  # the list passed its cap: the rest of this read is discarded
                    continue
            if not self._logged_in:
                continue
            for subscription in self._subscriptions:
                subscription._push_event(message)

    def _on_response(self, message: Message) -> None:
        action_id = message.get("ActionID")
        entry = self._pending.get(action_id) if action_id is not None else None
        if entry is None:
            log.debug("ami.unmatched_response", action_id=action_id, response=message.name)
            return
        result = ActionResult(entry.action, entry.action_id, message)
        if (message.get("EventList") or "").lower() == "start":
            entry.result = result
            self._lists[entry.action_id] = entry
            return
        if entry.on_success is not None and result.ok:
            entry.on_success()
        self._finish(entry, result)

    def _on_list_item(self, entry: _Pending, message: Message) -> None:
        assert entry.result is not None
        if (message.get("EventList") or "").lower() == "complete":
            entry.result.complete = message
            self._finish(entry, entry.result)
            return
        events = entry.result.events
        entry.list_bytes += len(message.text)
        settings = self.settings
        if len(events) >= settings.max_list_items or entry.list_bytes > settings.max_list_bytes:
            self._list_too_long(entry, len(events) + 1)
            return
        events.append(message)

    def _list_too_long(self, entry: _Pending, items: int) -> None:
        """Fail the action, free what it collected, and drop the connection."""
        reason = (
            f"{entry.action} event list (ActionID {entry.action_id}) passed its cap at "
            f"{items} items, {entry.list_bytes} bytes (max_list_items "
            f"{self.settings.max_list_items}, max_list_bytes {self.settings.max_list_bytes})"
        )
        log.error("ami.protocol_error", error=reason)
        self._pending.pop(entry.action_id, None)
        self._lists.pop(entry.action_id, None)
        entry.result = None
        if entry.timer is not None:
            entry.timer.cancel()
        if not entry.future.done():
            entry.future.set_exception(AmiListTooLong(reason))
        self._drop_connection(f"protocol error: {reason}")

    def _finish(self, entry: _Pending, result: ActionResult) -> None:
        self._pending.pop(entry.action_id, None)
        self._lists.pop(entry.action_id, None)
        if entry.timer is not None:
            entry.timer.cancel()
        if not entry.future.done():
            entry.future.set_result(result)
