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
back later through the inbox, so the loop itself never waits on the network.
Facts go to the sinks (stores, metrics, live feeds), which must not block.
``decision_latency`` keeps, per kind of triggering event, the seconds from the
bytes' arrival to the Originate being written.

The router's timers (wrap-up, cool-downs, maximum wait, Originate guards) are
served by sleeping until its next deadline on the injected clock, so a
time-scaled clock runs them time-scaled too.

On every ``Connected`` the engine resynchronises before anything else: it asks
for ``CoreShowChannels``, ``Status`` (with the contract's variables) and
``DeviceStateList``, builds a snapshot and lets the router reconcile. Events that
arrive meanwhile wait in the subscription and are applied afterwards; the router
ignores what the snapshot already told it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final

import structlog

from hotline.ami.client import (
    ActionResult,
    AmiActionTimeout,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    Connected,
    Disconnected,
)
from hotline.ami.codec import Message
from hotline.clock import Clock
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
)
from hotline.domain.events import DomainEvent, OriginateRejected
from hotline.domain.model import Agent
from hotline.domain.routing import Router
from hotline.pbx.actions import to_action
from hotline.pbx.resync import JOURNAL_FAMILY, STATUS_VARIABLES, build_snapshot
from hotline.pbx.translate import translate

__all__ = ["AgentCommand", "Engine", "FactSink"]

log = structlog.get_logger("hotline.engine")

FactSink = Callable[[Fact], None]
_BATCH: Final = 2048
_LATENCY_SAMPLES: Final = 100_000


@dataclass(frozen=True, slots=True)
class AgentCommand:
    """An agent-control request: ``login``, ``logout``, ``pause`` (with a reason) or ``unpause``."""

    kind: str
    agent_id: str
    reason: str = ""


@dataclass(slots=True)
class _Pending:
    command: AgentCommand
    future: asyncio.Future[Agent]


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
    ) -> None:
        """Subscribe to ``ami`` right away, so no ``Connected`` is missed."""
        self.router = router
        self.ami = ami
        self.clock = clock
        self.sinks = list(sinks)
        self.action_timeout = action_timeout
        self.events_processed = 0
        self.resyncs = 0
        self.pbx_connected = False
        # synced: set once the state has been rebuilt from the PBX after a connect
        self.decision_latency: dict[str, deque[float]] = {}
        self.synced = asyncio.Event()
        self._wake = asyncio.Event()
        self._inbox: deque[DomainEvent | _Pending] = deque()
        self._subscription = ami.subscribe(
            "engine", lossless=True, maxsize=queue_size, wakeup=self._wake
        )
        self._stopped = False

    # -- API for other tasks ------------------------------------------------------------------

    async def command(self, command: AgentCommand) -> Agent:
        """Have the engine task apply an agent command; returns the agent afterwards."""
        future: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
        self._post(_Pending(command, future))
        return await future

    def submit(self, event: DomainEvent) -> None:
        """Queue a domain event from another task (a scheduler, a result); never blocks."""
        self._post(event)

    def _post(self, item: DomainEvent | _Pending) -> None:
        self._inbox.append(item)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Events and commands received but not applied yet (0: the engine has caught up)."""
        return len(self._inbox) + len(self._subscription)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stopped = True
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Process events, commands and timers until stopped or cancelled."""
        subscription = self._subscription
        try:
            while not self._stopped:
                processed = 0
                while processed < _BATCH:
                    if self._inbox:
                        self._apply_internal(self._inbox.popleft())
                    else:
                        item = subscription.get_nowait()
                        if item is None:
                            break
                        if isinstance(item, Message):
                            self._apply_message(item)
                        elif isinstance(item, Connected):
                            await self._resync(item)
                        elif isinstance(item, Disconnected):
                            self._on_disconnected(item)
                    processed += 1
                self._fire_timers()
                if processed:
                    await asyncio.sleep(0)
                else:
                    await self._idle()
        finally:
            subscription.close()

    async def _idle(self) -> None:
        self._wake.clear()
        if self._inbox or len(self._subscription) or self._stopped:
            return
        deadline = self.router.next_deadline()
        timer = None if deadline is None else self.clock.call_at(deadline, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _fire_timers(self) -> None:
        deadline = self.router.next_deadline()
        if deadline is not None:
            now = self.clock.now()
            if now >= deadline:
                self._execute(self.router.tick(now), now)

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

    def _apply_internal(self, item: DomainEvent | _Pending) -> None:
        now = self.clock.now()
        if not isinstance(item, _Pending):
            self._execute(self.router.handle(item, now), now)
            return
        command, future = item.command, item.future
        try:
            if command.kind == "login":
                effects = self.router.login(command.agent_id, now)
            elif command.kind == "logout":
                effects = self.router.logout(command.agent_id, now)
            elif command.kind == "pause":
                effects = self.router.pause(command.agent_id, command.reason, now)
            elif command.kind == "unpause":
                effects = self.router.unpause(command.agent_id, now)
            else:
                raise ValueError(f"unknown agent command {command.kind!r}")
        except (KeyError, ValueError) as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self._execute(effects, now)
        if not future.done():
            future.set_result(self.router.agents[command.agent_id])

    # -- PBX connection -------------------------------------------------------------------------

    async def _resync(self, signal: Connected) -> None:
        self.pbx_connected = True
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
        self.pbx_connected = False
        self.synced.clear()
        # The model is kept as it is: the next Connected's resync reconciles it.
        log.warning("engine.pbx_disconnected", reason=signal.reason)

    # -- effects ------------------------------------------------------------------------------

    def _execute(self, effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(
                effect, OriginateAgentLeg | HangupChannel | RedirectChannel | DeleteJournalEntry
            ):
                self._send(effect, now)
                continue
            if isinstance(effect, RoutingWarning):
                log.warning("routing." + effect.code, detail=effect.detail, call_id=effect.call_id)
            elif isinstance(effect, CallEnded):
                log.info(
                    "call.ended",
                    call_id=effect.call_id,
                    ticket=effect.ticket,
                    queue=effect.queue,
                    outcome=effect.outcome.value,
                    agent=effect.answered_by,
                    wait=round(effect.wait_seconds, 3),
                )
            for sink in self.sinks:
                try:
                    sink(effect)
                except Exception:  # a broken sink must not stop routing
                    log.exception("engine.sink_failed", sink=getattr(sink, "__name__", repr(sink)))

    def _send(self, command: Command, now: float) -> None:
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
