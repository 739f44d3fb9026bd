"""The simulated PBX: an AMI server faithful to Asterisk 22, driven by a call scenario.

Use it in-process (tests, the demo, benchmarks)::

    sim = SimPbx(scenario, clock=ScaledClock(20), ground_truth_path="gt.jsonl")
    await sim.start(host="127.0.0.1", port=0)   # sim.port is the port
    sim.start_arrivals()                        # scenario callers start to dial in
    await sim.wait_idle(timeout=30)             # every arrival came and every call ended
    calls = [r for r in sim.ground_truth if r["type"] == "call"]
    sim.server.drop_all()                       # a PBX connection loss: calls go on
    await sim.close()                           # open calls are written as "open"

or standalone with ``hotline sim-pbx`` (:mod:`hotline.sim.cli`). Traffic comes
two ways: the scenario's arrivals, and the actions of clients, exactly as the
recorded traces made it (``Originate Channel=Local/<number>@callers
Context=hotline-inbound``, ``DBPut Family=agent/<ext> Key=delay|talk``).

Actions (besides the server core's ``Login``, ``Challenge``, ``Logoff``,
``Ping``, ``Events`` and ``Filter``): ``Originate`` (async or not, with
``ChannelId``/``OtherChannelId``, ``Variable``, ``CallerID``, ``Timeout``,
``Application=ChanSpy``), ``Hangup``, ``Redirect``, ``Getvar``, ``Setvar``,
``Status`` (with ``Variables``), ``CoreShowChannels``, ``Command`` (``core
show channels``), ``DBPut``, ``DBGetTree``, ``DBGet``, ``DBDel``,
``DBDelTree``, ``CoreStatus``, ``CoreSettings``, ``DeviceStateList`` (no
``Local/`` devices, as Asterisk) and ``ExtensionStateList`` (empty).
Anything else gets ``Response: Error`` as Asterisk gives it; errors use
Asterisk's own messages.

The actions on the PBX state live in :mod:`hotline.sim.chanactions` (channels),
:mod:`hotline.sim.listactions` (status and lists) and :mod:`hotline.sim.dbactions`
(AstDB); the flows themselves in :mod:`hotline.sim.calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import structlog

from hotline.ami.codec import Message
from hotline.clock import Clock, ScaledClock
from hotline.sim import chanactions, dbactions, listactions
from hotline.sim.amiserver import AmiServer, AmiSession, ServerCredentials
from hotline.sim.channels import Channel
from hotline.sim.core import Core
from hotline.sim.events import Wire
from hotline.sim.groundtruth import GroundTruth
from hotline.sim.scenario import AgentBehaviour, Arrival, Scenario, generate_arrivals

__all__ = ["SimPbx"]

log = structlog.get_logger("hotline.sim.pbx")

_ASTERISK_VERSION: Final = "22.10.1"

CoreAction = Callable[[Core, AmiSession, Message], None]
"""An action handler on the PBX state (the modules ``chanactions``, ``listactions``,
``dbactions``)."""

_CORE_ACTIONS: Final[dict[str, CoreAction]] = {
    "Originate": chanactions.originate,
    "Hangup": chanactions.hangup,
    "Redirect": chanactions.redirect,
    "Getvar": chanactions.getvar,
    "Setvar": chanactions.setvar,
    "Status": listactions.status,
    "CoreShowChannels": listactions.core_show_channels,
    "Command": listactions.command,
    "DBPut": dbactions.dbput,
    "DBGetTree": dbactions.dbgettree,
    "DBGet": dbactions.dbget,
    "DBDel": dbactions.dbdel,
    "DBDelTree": dbactions.dbdeltree,
    "DeviceStateList": listactions.device_state_list,
    "ExtensionStateList": listactions.extension_state_list,
}


class SimPbx:
    """A simulated Asterisk 22 PBX on a real TCP port; see the module docstring."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        clock: Clock | None = None,
        credentials: ServerCredentials | None = None,
        ground_truth_path: str | Path | None = None,
        keep_ground_truth: bool = True,
        noise: bool | None = None,
        write_timeout: float = 2.0,
        system_name: str = "",
    ) -> None:
        """``clock`` defaults to a :class:`ScaledClock` at the scenario's time scale;
        ``noise`` overrides the scenario's; ``write_timeout`` is how long a client
        may stop reading before it is disconnected; ``system_name`` is the PBX's
        ``asterisk.conf`` ``systemname`` (a prefix of every Uniqueid, and ``SystemName``
        in ``CoreSettings``): give each of several sims on one database its own."""
        self.system_name = system_name
        self.scenario = scenario or Scenario()
        self.clock: Clock = clock or ScaledClock(self.scenario.time_scale)
        self.server = AmiServer(
            credentials=credentials,
            clock=self.clock.now,
            sleep=self.clock.sleep,
            write_timeout=write_timeout,
        )
        self.server.security_events = True
        self._gt = GroundTruth(ground_truth_path, keep=keep_ground_truth)
        self._noise = self.scenario.noise if noise is None else noise
        self._core: Core | None = None
        self._agents: dict[str, AgentBehaviour] = {}
        self._arrivals: Any = None
        self._arrivals_origin = 0.0
        self._arrivals_pending = False
        self._arrival_timer: asyncio.TimerHandle | None = None
        self._private_timers: dict[str, asyncio.TimerHandle] = {}
        self._idle = asyncio.Event()
        self._started_at = time.time()
        self._closed = False
        for action, handler in self._handlers().items():
            self.server.register(action, handler)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        """Listen on ``host:port`` (0: a free port, see :attr:`port`); start the ground truth."""
        wire = Wire(self.server, self.clock, noise=self._noise)
        self._core = Core(
            wire=wire,
            clock=self.clock,
            scenario=self.scenario,
            ground_truth=self._gt,
            system_name=self.system_name,
        )
        self._core.behaviours.update(self._agents)
        self._core.on_idle = self._check_idle
        await self.server.start(host, port, tls=tls)
        epoch = getattr(self.clock, "epoch", None)
        self._gt.start(
            epoch=float(epoch) if epoch is not None else self.clock.now(),
            time_scale=float(getattr(self.clock, "scale", 1.0)),
            seed=self.scenario.seed,
            scenario=self.scenario.name,
        )
        log.info("sim.started", host=host, port=self.port, scenario=self.scenario.name)

    @property
    def port(self) -> int:
        """The TCP port the sim listens on."""
        return self.server.port

    @property
    def core(self) -> Core:
        """The PBX state (channels, devices, AstDB); only after :meth:`start`."""
        if self._core is None:
            raise RuntimeError("SimPbx.start() has not been awaited")
        return self._core

    def start_arrivals(self) -> None:
        """Start the scenario's callers (and the agents' private calls)."""
        core = self.core
        self._arrivals = generate_arrivals(self.scenario)
        self._arrivals_origin = self.clock.now()
        self._arrivals_pending = True
        self._idle.clear()
        self._next_arrival()
        for device, behaviour in core.behaviours.items():
            if behaviour.private_calls_per_hour > 0:
                self._schedule_private_call(device, behaviour)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every scheduled arrival has arrived and every call has ended."""
        async with asyncio.timeout(timeout):
            while not self.idle:
                self._idle.clear()
                await self._idle.wait()

    @property
    def idle(self) -> bool:
        """No arrival pending and no live channel."""
        core = self.core
        return not self._arrivals_pending and not core.legs and not len(core.channels)

    @property
    def ground_truth(self) -> list[dict[str, Any]]:
        """Every ground-truth line written so far (see :mod:`hotline.sim.groundtruth`)."""
        return self._gt.records

    @property
    def channels(self) -> Mapping[str, Channel]:
        """The live channels by name (read-only)."""
        return types.MappingProxyType(self.core.channels.by_name)

    @property
    def errors(self) -> list[str]:
        """Exceptions raised inside call flows (always empty unless the sim has a bug)."""
        return self.core.errors

    @property
    def peak_calls(self) -> int:
        """The most inbound calls that were live at once."""
        return self.core.peak_calls

    @property
    def events_sent(self) -> int:
        """Events emitted so far."""
        return self.core.wire.sent

    def configure_agent(self, device: str, behaviour: AgentBehaviour) -> None:
        """Set (or replace) an agent device's behaviour, before or after :meth:`start`."""
        self._agents[device] = behaviour
        if self._core is not None:
            self._core.behaviours[device] = behaviour

    async def close(self) -> None:
        """Stop arrivals, write open calls and the last ground-truth line, close the port."""
        if self._closed:
            return
        self._closed = True
        for timer in [self._arrival_timer, *self._private_timers.values()]:
            if timer is not None:
                timer.cancel()
        self._arrivals_pending = False
        if self._core is not None:
            self._core.close()
            self._gt.end()
        await self.server.close(graceful=True)
        log.info("sim.closed", events=self._core.wire.sent if self._core else 0)

    def _check_idle(self) -> None:
        if self.idle:
            self._idle.set()

    # -- scenario traffic ------------------------------------------------------------------------

    def _next_arrival(self) -> None:
        arrival: Arrival | None = next(self._arrivals, None)
        if arrival is None:
            self._arrivals_pending = False
            self._check_idle()
            return
        elapsed = self.clock.now() - self._arrivals_origin
        self._arrival_timer = self.core.later(max(arrival.at - elapsed, 0.0), self._arrive, arrival)

    def _arrive(self, arrival: Arrival) -> None:
        self.core.arrive(arrival)
        self._next_arrival()

    def _schedule_private_call(self, device: str, behaviour: AgentBehaviour) -> None:
        rng = self.core.rng(f"private/{device}")
        gap = rng.expovariate(behaviour.private_calls_per_hour / 3600.0)
        self._private_timers[device] = self.core.later(gap, self._private_call, device, behaviour)

    def _private_call(self, device: str, behaviour: AgentBehaviour) -> None:
        core = self.core
        if not self._arrivals_pending:
            return
        if not core.device_in_use(device):
            core.set_private_call(device, True)
            duration = behaviour.private_call_duration.sample(core.rng(f"private/{device}"))
            core.later(duration, core.set_private_call, device, False)
        self._schedule_private_call(device, behaviour)

    # -- actions ---------------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Any]:
        handlers: dict[str, Any] = {
            action: self._on_core(handler) for action, handler in _CORE_ACTIONS.items()
        }
        handlers["CoreStatus"] = self._core_status
        handlers["CoreSettings"] = self._core_settings
        return handlers

    def _on_core(self, handler: CoreAction) -> Callable[[AmiSession, Message], None]:
        """``handler`` as a server action: run on the PBX state once the sim has started."""

        def action(session: AmiSession, message: Message) -> None:
            handler(self.core, session, message)

        return action

    def _core_status(self, session: AmiSession, message: Message) -> None:
        started = time.gmtime(self._started_at)
        date, clock_time = time.strftime("%Y-%m-%d", started), time.strftime("%H:%M:%S", started)
        calls = len({ch.linkedid for ch in self.core.channels.by_name.values()})
        session.send_response(
            message,
            "Success",
            [
                ("CoreStartupDate", date),
                ("CoreStartupTime", clock_time),
                ("CoreReloadDate", date),
                ("CoreReloadTime", clock_time),
                ("CoreCurrentCalls", str(calls)),
                ("CoreProcessedCalls", str(self.core.channels.created)),
            ],
        )

    def _core_settings(self, session: AmiSession, message: Message) -> None:
        session.send_response(
            message,
            "Success",
            [
                ("AMIversion", self.server.version),
                ("AsteriskVersion", _ASTERISK_VERSION),
                ("SystemName", self.system_name),
                ("CoreMaxCalls", "0"),
                ("CoreMaxLoadAvg", "0.000000"),
                ("CoreRunUser", ""),
                ("CoreRunGroup", ""),
                ("CoreMaxFilehandles", "0"),
                ("CoreRealTimeEnabled", "No"),
                ("CoreCDRenabled", "Yes"),
                ("CoreHTTPenabled", "No"),
                ("SoundsSearchCustomDir", "No"),
            ],
        )

    async def __aenter__(self) -> SimPbx:
        """``async with SimPbx(...) as sim``: started on a free loopback port."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        with contextlib.suppress(Exception):
            await self.close()
