"""The engine: the one task that owns live state.

Theory of operation
-------------------
Everything that changes the live model goes through :meth:`Engine.run`, a single
asyncio task; nothing else writes to the :class:`~hotline.domain.routing.Router`.
It takes work from two places, in arrival order: the AMI client's *lossless*
subscription (events and connection signals) and its own inbox (agent commands
from the API, results of the actions it sent). Both set one wake-up event.

For each AMI event: translate it (most events translate to nothing), hand the
domain event and ``now`` to the router, then run the effects. Commands become
AMI actions written at once (``AmiClient.send`` never waits); their replies come
back later through the inbox, so processing events never waits on the network.
The one place the loop awaits the PBX is the resync after a ``Connected`` (below).
Facts go to the sinks (stores, metrics, live feeds), which must not block. The
lines logged about an effect carry its ``call_id``, ``agent`` and ``ticket``,
bound with ``structlog.contextvars`` (so a failing sink's line has them too).

The router's ticket numbers come from an in-memory pool
(:class:`~hotline.ticketno.TicketNumbers`); when it runs low the engine reserves
the next block (an fsync'd file write) in a worker thread, off the hot path.
``decision_latency`` keeps, per kind of triggering event, the seconds from the
bytes' arrival to the Originate being written.

The router's timers (wrap-up, cool-downs, maximum wait, Originate guards) are
served by sleeping until its next deadline on the injected clock, so a
time-scaled clock runs them time-scaled too.

On every ``Connected`` the engine resynchronises before anything else: it asks
for ``CoreShowChannels``, ``Status`` (with the contract's variables) and
``DeviceStateList``, builds a snapshot and lets the router reconcile. Events that
arrive meanwhile wait in the subscription and are applied afterwards; the router
ignores what the snapshot already told it. A resync that fails (an action timed
out, a reply the snapshot cannot use) is retried with exponential back-off
(:data:`RESYNC_RETRY_MIN` to :data:`RESYNC_RETRY_MAX` wall seconds) for as long
as that connection stays up.

**The loop never dies of one bad input.** An unexpected exception while handling
one AMI message, one inbox item, one timer tick or one resync is logged (with
the AMI event's name; the log masks phone numbers), counted in
:attr:`Engine.errors` by stage (``hotline_engine_errors_total``) and skipped. An
agent command whose handling raised is answered with :class:`EngineError`. An
event the translator refuses (:class:`~hotline.pbx.translate.PbxValueError`) is
counted in :attr:`Engine.rejected` by reason and dropped with a warning. Should
the task end anyway, :attr:`Engine.ended` is set, waiting and later commands get
:class:`EngineUnavailable`, ``/ready`` turns red and ``hotline serve`` exits
non-zero.

**Active or standby.** With a ``lease`` (:class:`Gate`, e.g.
:class:`hotline.store.lease.Lease`), the engine routes only while the lease says
it is active. A standby (or a fenced former active) drops the PBX's events,
runs no timers, answers agent commands with :class:`EngineStandby`, and refuses
every action before it leaves the process (:attr:`Engine.refused_actions`): the
gate is read on each message and each action, so a process that wakes from a
pause past its lease sends nothing. When a standby becomes active it takes over
as a restarted process would: ``reload`` gives it the agents' persisted states,
then it resyncs from the PBX (journal and adoption of ringing legs).

With ``durable`` (the store's "everything taken so far is stored"), a call's
journal entry is deleted on the PBX only once that holds, so a process killed
before its outbox wrote a call's end leaves the entry for the next one.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, Protocol, assert_never

import structlog
from structlog.contextvars import bound_contextvars

from hotline.ami.client import (
    ActionResult,
    AmiActionTimeout,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    Connected,
    Disconnected,
    SubscriptionItem,
)
from hotline.ami.codec import Message
from hotline.clock import Clock
from hotline.domain.commands import (
    AgentCommand,
    CallerCommand,
    Login,
    Logout,
    MoveCaller,
    Pause,
    Ready,
    SetPriority,
    Transfer,
    Unpause,
)
from hotline.domain.effects import (
    CallEnded,
    Command,
    DeleteJournalEntry,
    Effect,
    Fact,
    HangupChannel,
    OriginateAgentLeg,
    RedirectChannel,
    RoutingWarning,
    SetChannelVariable,
)
from hotline.domain.events import DomainEvent, OriginateRejected
from hotline.domain.model import Agent, AgentPresence, Call
from hotline.domain.routing import Router
from hotline.pbx.actions import to_action
from hotline.pbx.resync import JOURNAL_FAMILY, STATUS_VARIABLES, build_snapshot
from hotline.pbx.translate import REJECT_REASONS, PbxValueError, translate
from hotline.ticketno import TicketNumbers

__all__ = [
    "ENGINE_STAGES",
    "RESYNC_RETRY_MAX",
    "RESYNC_RETRY_MIN",
    "AgentCommand",
    "Engine",
    "EngineError",
    "EngineStandby",
    "EngineUnavailable",
    "FactSink",
    "Gate",
    "Reload",
]

log = structlog.get_logger("hotline.engine")

FactSink = Callable[[Fact], None]
_CONTEXT_KEYS: Final = (
    ("call_id", "call_id"),
    ("agent", "agent_id"),
    ("agent", "answered_by"),
    ("ticket", "ticket"),
)
_BATCH: Final = 2048
_LATENCY_SAMPLES: Final = 100_000
ENGINE_STAGES: Final = ("ami_message", "command", "domain_event", "timer", "resync")
"""Where an unexpected exception can be caught (the ``stage`` label of the error counter)."""
RESYNC_RETRY_MIN: Final = 0.5
"""Wall seconds before the first retry of a failed resync; doubled per failure."""
RESYNC_RETRY_MAX: Final = 30.0
"""The longest wait between two resync attempts."""
_TIMER_BACKOFF: Final = 1.0
_LOG_EVERY: Final = 1.0
_DELETE_POLL: Final = 0.05


class EngineError(RuntimeError):
    """The engine could not apply a command: handling it raised (the log says why)."""


class EngineUnavailable(EngineError):
    """The engine task is not running, so nothing can be applied."""


class EngineStandby(EngineError):
    """This instance does not hold the PBX's lease (standby or fenced): it does not route."""


class Gate(Protocol):
    """What the engine asks before routing: may this instance act on the PBX now?"""

    @property
    def active(self) -> bool:
        """True while this instance holds the lease."""
        ...  # pragma: no cover


Reload = Callable[[], Awaitable[tuple[Iterable[AgentPresence], Mapping[str, tuple[str, float]]]]]
"""At a takeover: the agents' persisted states and sticky history, read afresh."""


@dataclass(slots=True)
class _Pending:
    command: AgentCommand | CallerCommand
    future: asyncio.Future[Agent | Call]


@dataclass(frozen=True, slots=True)
class _RetryResync:
    signal: Connected


class Engine:
    """Runs the router against the PBX; see the module docstring."""

    def __init__(
        self,
        router: Router,
        ami: AmiClient,
        clock: Clock,
        *,
        sinks: Sequence[FactSink] = (),
        queue_size: int = 200_000,
        action_timeout: float = 10.0,
        ticket_numbers: TicketNumbers | None = None,
        lease: Gate | None = None,
        reload: Reload | None = None,
        durable: Callable[[], bool] | None = None,
    ) -> None:
        """Subscribe to ``ami`` right away, so no ``Connected`` is missed.

        ``ticket_numbers``, the router's number pool, is topped up off the hot path.
        ``lease``: route only while it is active (None: always); ``reload``: what a
        takeover restores (see the module docstring). ``durable``: True when every
        record the sinks took so far is stored; a call's journal entry is deleted on
        the PBX only then, so a crash before the store has its end leaves the entry
        for the next process to record the call from.
        """
        self._durable = durable
        self._held_deletes: list[DeleteJournalEntry] = []
        self.lease = lease
        self._reload = reload
        self._routing = lease is None
        self._connected: Connected | None = None
        self.refused_actions = 0
        self.standby_events = 0
        self.router = router
        self.ticket_numbers = ticket_numbers
        self._top_up_task: asyncio.Task[None] | None = None
        self._top_up_after = 0.0
        self.ami = ami
        self.clock = clock
        self.sinks = list(sinks)
        self.action_timeout = action_timeout
        self.events_processed = 0
        self.resyncs = 0
        # queue_size: how many PBX events may wait unapplied before the connection is dropped
        self.queue_size = queue_size
        # synced: set once the state has been rebuilt from the PBX after a connect
        self.decision_latency: dict[str, deque[float]] = {}
        # called with (trigger event kind, seconds) at each decision (the metrics' histogram)
        self.decision_observers: list[Callable[[str, float], None]] = []
        self.synced = asyncio.Event()
        self._wake = asyncio.Event()
        self._inbox: deque[DomainEvent | _Pending | _RetryResync] = deque()
        self._subscription = ami.subscribe(
            "engine", lossless=True, maxsize=queue_size, wakeup=self._wake
        )
        self._stopped = False
        # Supervision: errors by stage, refused PBX events by reason, the task's end.
        self.errors: dict[str, int] = dict.fromkeys(ENGINE_STAGES, 0)
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.ended = asyncio.Event()
        self.failure: BaseException | None = None
        self._running = False
        self._resync_failures = 0
        self._resync_retry: asyncio.TimerHandle | None = None
        self._timers_blocked_until = 0.0
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    @property
    def alive(self) -> bool:
        """True while :meth:`run` is running (readiness checks this)."""
        return self._running and not self.ended.is_set()

    # -- API for other tasks ------------------------------------------------------------------

    async def command(self, command: AgentCommand) -> Agent:
        """Have the engine task apply an agent command; returns the agent afterwards.

        Raises :class:`EngineError` if applying it raised, and
        :class:`EngineUnavailable` if the engine task has ended (never hangs on a dead engine).
        """
        result = await self._submit(command)
        assert isinstance(result, Agent)
        return result

    async def caller_command(self, command: CallerCommand) -> Call:
        """Have the engine task apply a command on a waiting caller (raise their priority,
        move them); returns the call afterwards. Raises as :meth:`command` does."""
        result = await self._submit(command)
        assert isinstance(result, Call)
        return result

    async def _submit(self, command: AgentCommand | CallerCommand) -> Agent | Call:
        if self.ended.is_set():
            raise EngineUnavailable("the engine is not running")
        if not self.may_act():
            raise EngineStandby("this instance is a standby: the active one routes")
        future: asyncio.Future[Agent | Call] = asyncio.get_running_loop().create_future()
        self._post(_Pending(command, future))
        return await future

    def submit(self, event: DomainEvent) -> None:
        """Queue a domain event from another task (a scheduler, a result); never blocks."""
        self._post(event)

    def _post(self, item: DomainEvent | _Pending | _RetryResync) -> None:
        self._inbox.append(item)
        self._wake.set()

    def restore(
        self, states: Iterable[AgentPresence], sticky: Mapping[str, tuple[str, float]]
    ) -> None:
        """Give the router the agents' persisted states and sticky history; call before
        :meth:`run`, so they hold before the first routing decision."""
        now = self.clock.now()
        self._execute(self.router.restore(states, sticky, now), now)

    @property
    def pending(self) -> int:
        """Events and commands received but not applied yet (0: the engine has caught up)."""
        return len(self._inbox) + len(self._subscription)

    def may_act(self) -> bool:
        """True when this instance may change calls (no lease, or the lease is active)."""
        return self.lease is None or self.lease.active

    def wake(self) -> None:
        """Have the loop look at the lease again (it became active)."""
        self._wake.set()

    async def _take_over(self) -> None:
        """The lease became active: restore the agents' states, then resync from the PBX."""
        self._routing = True
        log.info("engine.takeover", connected=self.ami.connected)
        if self._reload is not None:
            states, sticky = await self._reload()
            now = self.clock.now()
            self._execute(self.router.restore(states, sticky, now), now)
        if self._connected is not None and self.ami.connected:
            await self._resync_supervised(self._connected)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stopped = True
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Process events, commands and timers until stopped or cancelled."""
        subscription = self._subscription
        self._running = True
        self._first_top_up()
        try:
            while not self._stopped:
                processed = 0
                if not self._routing and self.may_act():
                    await self._take_over()
                processed = await self._process_batch()
                self._fire_timers()
                self._release_journal_deletes()
                self._top_up_ticket_numbers()
                if processed:
                    await asyncio.sleep(0)
                else:
                    await self._idle()
        except BaseException as exc:
            self.failure = exc
            if not isinstance(exc, asyncio.CancelledError):
                log.critical("engine.died", error=_describe(exc), traceback=_traceback(exc))
            raise
        finally:
            self._end()
            subscription.close()
            if self._top_up_task is not None:
                self._top_up_task.cancel()

    def _first_top_up(self) -> None:
        """Reserve ticket numbers before the first call; a failure is retried later."""
        if self.ticket_numbers is not None:
            try:
                self.ticket_numbers.top_up(self.clock.now())  # before the first call
            except Exception as exc:  # retried off the hot path; allocating says why, too
                log.error("engine.ticket_reserve_failed", error=str(exc))
                self._top_up_after = self.clock.now() + 5.0

    async def _process_batch(self) -> int:
        """Apply up to a batch of commands and PBX messages; how many were there."""
        processed = 0
        while processed < _BATCH:
            if self._inbox:
                await self._process_internal(self._inbox.popleft())
            else:
                item = self._subscription.get_nowait()
                if item is None:
                    break
                await self._process_item(item)
            processed += 1
        return processed

    async def _process_internal(self, internal: DomainEvent | _Pending | _RetryResync) -> None:
        try:
            if isinstance(internal, _RetryResync):
                await self._retry_resync(internal)
            else:
                self._apply_internal(internal)
        except Exception as exc:
            self._internal_failed(internal, exc)

    async def _process_item(self, item: SubscriptionItem) -> None:
        if not self.may_act():
            self._standby_item(item)
            return
        if isinstance(item, Message):
            try:
                self._apply_message(item)
            except PbxValueError as exc:
                self._rejected(item, exc)
            except Exception as exc:
                self._failed("ami_message", exc, ami_event=item.name)
        elif isinstance(item, Connected):
            self._connected = item
            await self._resync_supervised(item)
        elif isinstance(item, Disconnected):
            self._on_disconnected(item)

    def _release_journal_deletes(self) -> None:
        """Send the held journal deletions once the store has every record taken so far."""
        if self._held_deletes and self._durable is not None and self._durable():
            held, self._held_deletes = self._held_deletes, []
            now = self.clock.now()
            for command in held:
                self._send(command, now)

    def _standby_item(self, item: object) -> None:
        """Not active: PBX events are dropped; the connection state is kept for a takeover."""
        if isinstance(item, Message):
            self.standby_events += 1
        elif isinstance(item, Connected):
            self._connected = item
        elif isinstance(item, Disconnected):
            self._connected = None
            self._on_disconnected(item)

    def _end(self) -> None:
        """The task is over: readiness turns red and every waiting command is answered."""
        self.ended.set()
        if self._resync_retry is not None:
            self._resync_retry.cancel()
        while self._inbox:
            item = self._inbox.popleft()
            if isinstance(item, _Pending) and not item.future.done():
                item.future.set_exception(EngineUnavailable("the engine stopped"))

    # -- supervision ----------------------------------------------------------------------------

    def _failed(self, stage: str, exc: BaseException, **context: object) -> None:
        """Count and log one unexpected exception; the loop goes on (rate-limited log)."""
        self.errors[stage] = self.errors.get(stage, 0) + 1
        now = time.monotonic()
        if now - self._last_log.get(stage, -_LOG_EVERY) < _LOG_EVERY:
            self._unlogged[stage] = self._unlogged.get(stage, 0) + 1
            return
        self._last_log[stage] = now
        log.error(
            "engine.error",
            stage=stage,
            error=_describe(exc),
            traceback=_traceback(exc),
            suppressed=self._unlogged.pop(stage, 0),
            **context,
        )

    def _rejected(self, message: Message, exc: PbxValueError) -> None:
        """An event the translator refused: counted by reason, logged (rate-limited), dropped."""
        self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
        key = "rejected:" + exc.reason
        now = time.monotonic()
        if now - self._last_log.get(key, -_LOG_EVERY) < _LOG_EVERY:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._last_log[key] = now
        log.warning(
            "engine.pbx_event_rejected",
            ami_event=message.name,
            reason=exc.reason,
            detail=exc.detail,
            suppressed=self._unlogged.pop(key, 0),
        )

    def _internal_failed(self, item: DomainEvent | _Pending | _RetryResync, exc: Exception) -> None:
        if isinstance(item, _Pending):
            command = item.command
            target = (
                {"call_id": command.call_id}
                if isinstance(command, SetPriority | MoveCaller)
                else {"agent": command.agent_id}
            )
            self._failed("command", exc, command=command.kind, **target)
            if not item.future.done():
                item.future.set_exception(
                    EngineError(f"{item.command.kind} failed inside the engine: {_describe(exc)}")
                )
        elif isinstance(item, _RetryResync):
            self._failed("resync", exc)
        else:
            self._failed("domain_event", exc, domain_event=type(item).__name__)

    async def _idle(self) -> None:
        self._wake.clear()
        if self._inbox or len(self._subscription) or self._stopped:
            return
        deadline = self.router.next_deadline() if self.may_act() else None
        blocked = self._timers_blocked_until - time.monotonic()
        loop = asyncio.get_running_loop()
        timers: list[asyncio.TimerHandle] = []
        if blocked > 0:  # a timer raised: real-time back-off before the next try
            timers.append(loop.call_later(blocked, self._wake.set))
        elif deadline is not None:
            timers.append(self.clock.call_at(deadline, self._wake.set))
        if self._held_deletes:  # look at the store's progress again soon
            timers.append(loop.call_later(_DELETE_POLL, self._wake.set))
        try:
            await self._wake.wait()
        finally:
            for timer in timers:
                timer.cancel()

    def _fire_timers(self) -> None:
        if not self.may_act():
            return
        if self._timers_blocked_until and time.monotonic() < self._timers_blocked_until:
            return
        try:
            deadline = self.router.next_deadline()
            if deadline is not None:
                now = self.clock.now()
                if now >= deadline:
                    self._execute(self.router.tick(now), now)
        except Exception as exc:
            # The same deadline would fail again at once: wait a little before the next try.
            self._timers_blocked_until = time.monotonic() + _TIMER_BACKOFF
            self._failed("timer", exc)

    def _top_up_ticket_numbers(self) -> None:
        """Start reserving ticket-number blocks in a worker thread when the pool runs low."""
        numbers = self.ticket_numbers
        if numbers is None or self._top_up_task is not None:
            return
        now = self.clock.now()
        if now < self._top_up_after:
            return
        days = numbers.shortfall(now)
        if days:
            self._top_up_task = asyncio.create_task(
                self._reserve_ticket_numbers(numbers, days), name="ticket-numbers"
            )

    async def _reserve_ticket_numbers(self, numbers: TicketNumbers, days: tuple[str, ...]) -> None:
        try:
            numbers.add(await asyncio.to_thread(numbers.reserve, days))
        except Exception as exc:  # the pool's inline fallback still serves numbers
            log.error("engine.ticket_reserve_failed", error=str(exc), days=list(days))
            self._top_up_after = self.clock.now() + 5.0
        finally:
            self._top_up_task = None

    def _apply_message(self, message: Message) -> None:
        self.events_processed += 1
        now = self.clock.now()
        event = translate(message, now)
        if event is None:
            return
        effects = self.router.handle(event, now)
        self._execute(effects, now)
        if message.received and any(isinstance(e, OriginateAgentLeg) for e in effects):
            latency = time.perf_counter() - message.received
            self.decision_latency.setdefault(
                type(event).__name__, deque(maxlen=_LATENCY_SAMPLES)
            ).append(latency)
            for observe in self.decision_observers:
                observe(type(event).__name__, latency)

    def _apply_internal(self, item: DomainEvent | _Pending) -> None:
        if not self.may_act():
            if isinstance(item, _Pending) and not item.future.done():
                item.future.set_exception(EngineStandby("this instance is a standby"))
            return
        now = self.clock.now()
        if not isinstance(item, _Pending):
            self._execute(self.router.handle(item, now), now)
            return
        command, future = item.command, item.future
        try:
            effects = self._run_command(command, now)
        except (KeyError, ValueError) as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self._execute(effects, now)
        if not future.done():
            future.set_result(self._commanded(command))

    def _commanded(self, command: AgentCommand | CallerCommand) -> Agent | Call:
        """What a command's caller gets back: the agent, or the call, afterwards."""
        if isinstance(command, SetPriority | MoveCaller):
            return self.router.calls[command.call_id]
        return self.router.agents[command.agent_id]

    def _run_command(self, command: AgentCommand | CallerCommand, now: float) -> list[Effect]:
        """The router's answer to one command (it raises on an unknown agent or a caller
        who is not waiting)."""
        router = self.router
        match command:
            case SetPriority(call_id, priority):
                return router.set_priority(call_id, priority, now)
            case MoveCaller(call_id, queue):
                return router.move_caller(call_id, queue, now)
            case Login(agent_id):
                return router.login(agent_id, now)
            case Logout(agent_id):
                return router.logout(agent_id, now)
            case Pause(agent_id, reason):
                return router.pause(agent_id, reason, now)
            case Unpause(agent_id):
                return router.unpause(agent_id, now)
            case Ready(agent_id):
                return router.end_wrap_up(agent_id, now)
            case Transfer(agent_id, queue):
                return router.transfer(agent_id, queue, now)
            case _:
                assert_never(command)

    # -- PBX connection -------------------------------------------------------------------------

    async def _retry_resync(self, retry: _RetryResync) -> None:
        signal = retry.signal
        if self.ami.connected and self.ami.generation == signal.generation:
            log.info(
                "engine.resync_retry", attempt=self._resync_failures, generation=signal.generation
            )
            await self._resync_supervised(signal)

    def _resync_failed(self, signal: Connected) -> None:
        """Schedule another resync of this connection after an exponential back-off."""
        self._resync_failures += 1
        delay = min(RESYNC_RETRY_MAX, RESYNC_RETRY_MIN * 2.0 ** min(self._resync_failures - 1, 16))
        if self._resync_retry is not None:
            self._resync_retry.cancel()
        self._resync_retry = asyncio.get_running_loop().call_later(
            delay, self._post, _RetryResync(signal)
        )
        log.warning("engine.resync_retry_in", seconds=delay, failures=self._resync_failures)

    async def _resync_supervised(self, signal: Connected) -> None:
        """:meth:`_resync`, with an exception in it logged, counted and retried."""
        if self._resync_retry is not None:
            self._resync_retry.cancel()
            self._resync_retry = None
        try:
            await self._resync(signal)
        except Exception as exc:
            self._failed("resync", exc, generation=signal.generation)
            self._resync_failed(signal)
            return
        if self.synced.is_set():
            self._resync_failures = 0

    async def _resync(self, signal: Connected) -> None:
        try:
            channels = await self.ami.action("CoreShowChannels", timeout=self.action_timeout)
            statuses = await self.ami.action(
                "Status", {"Variables": ",".join(STATUS_VARIABLES)}, timeout=self.action_timeout
            )
            devices = await self.ami.action("DeviceStateList", timeout=self.action_timeout)
            journal = await self.ami.action(
                "DBGetTree", {"Family": JOURNAL_FAMILY}, timeout=self.action_timeout
            )
        except AmiError as exc:
            log.warning("engine.resync_failed", error=str(exc), generation=signal.generation)
            if not isinstance(exc, AmiConnectionLost | AmiNotConnected):
                self._resync_failed(signal)  # the next Connected resyncs a lost connection
            return
        now = self.clock.now()
        snapshot = build_snapshot(
            now,
            channels.events if channels.ok else [],
            statuses.events if statuses.ok else [],
            devices.events if devices.ok else [],
            journal.events if journal.ok else [],
        )
        self.resyncs += 1
        log.info(
            "engine.resynced",
            generation=signal.generation,
            channels=len(snapshot.channels),
            devices=len(snapshot.device_states),
        )
        self._execute(self.router.resync(snapshot, now), now)
        self.synced.set()

    def _on_disconnected(self, signal: Disconnected) -> None:
        self.synced.clear()
        if self._resync_retry is not None:
            self._resync_retry.cancel()
            self._resync_retry = None
        self._resync_failures = 0
        # The model is kept as it is: the next Connected's resync reconciles it.
        log.warning("engine.pbx_disconnected", reason=signal.reason)

    # -- effects ------------------------------------------------------------------------------

    def _execute(self, effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, DeleteJournalEntry) and self._durable is not None:
                self._held_deletes.append(effect)  # after the call's records are stored
                continue
            if isinstance(
                effect,
                OriginateAgentLeg
                | HangupChannel
                | RedirectChannel
                | SetChannelVariable
                | DeleteJournalEntry,
            ):
                self._send(effect, now)
                continue
            if isinstance(effect, RoutingWarning):
                with bound_contextvars(**_log_context(effect)):
                    log.warning("routing." + effect.code, detail=effect.detail)
            elif isinstance(effect, CallEnded):
                with bound_contextvars(**_log_context(effect)):
                    log.info(
                        "call.ended",
                        queue=effect.queue,
                        outcome=effect.outcome.value,
                        wait=round(effect.wait_seconds, 3),
                    )
            for sink in self.sinks:
                try:
                    sink(effect)
                except Exception:  # a broken sink must not stop routing
                    with bound_contextvars(**_log_context(effect)):
                        log.exception(
                            "engine.sink_failed", sink=getattr(sink, "__name__", repr(sink))
                        )

    def _send(self, command: Command, now: float) -> None:
        if not self.may_act():  # fenced: nothing leaves the process
            self.refused_actions += 1
            log.warning("engine.action_refused_standby", action=type(command).__name__)
            return
        name, headers, action_id = to_action(command)
        try:
            future = self.ami.send(name, headers, action_id=action_id, timeout=self.action_timeout)
        except (AmiNotConnected, ValueError) as exc:
            self._action_failed(command, exc, now)
            return
        future.add_done_callback(partial(self._action_done, command))

    def _action_done(self, command: Command, future: asyncio.Future[ActionResult]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._action_failed(command, exc, self.clock.now())
            return
        result = future.result()
        if result.ok:
            return
        message = result.response.get("Message") or result.response.name
        if isinstance(command, OriginateAgentLeg):
            self._post(OriginateRejected(self.clock.now(), "recv", command.offer_id, message))
        elif not isinstance(command, DeleteJournalEntry):  # absent: no journal in the dialplan
            log.info("engine.action_refused", action=result.action, message=message)

    def _action_failed(self, command: Command, exc: BaseException, now: float) -> None:
        lost = isinstance(exc, AmiNotConnected | AmiConnectionLost | AmiActionTimeout)
        if isinstance(command, OriginateAgentLeg):
            self._post(OriginateRejected(now, "recv", command.offer_id, str(exc), lost))
        else:
            log.warning("engine.action_failed", action=type(command).__name__, error=str(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _traceback(exc: BaseException) -> str:
    """The traceback as a string field, so the log's phone masking covers it too."""
    return "".join(traceback.format_exception(exc))


def _log_context(effect: Effect) -> dict[str, str]:
    """The per-call context an effect carries, for the lines logged about it: ``call_id``,
    ``agent`` and ``ticket`` (those it has)."""
    context: dict[str, str] = {}
    for key, attribute in _CONTEXT_KEYS:
        value = getattr(effect, attribute, None)
        if value and key not in context:
            context[key] = value
    return context
