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

The flows themselves live in :mod:`hotline.sim.calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import structlog

from hotline.ami.codec import Message
from hotline.clock import Clock, ScaledClock
from hotline.sim.amiserver import AmiServer, AmiSession, ServerCredentials
from hotline.sim.channels import STATE_DESC, Channel, Pairs
from hotline.sim.core import Core
from hotline.sim.events import Wire
from hotline.sim.groundtruth import GroundTruth
from hotline.sim.legs import OriginateRequest
from hotline.sim.scenario import AgentBehaviour, Arrival, Scenario, generate_arrivals

__all__ = ["SimPbx"]

log = structlog.get_logger("hotline.sim.pbx")

_ASTERISK_VERSION: Final = "22.10.1"
_UNKNOWN_COMMAND: Final = (
    "No such command '{0}' (type 'core show help {0}' for other possible commands)"
)


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
    ) -> None:
        """``clock`` defaults to a :class:`ScaledClock` at the scenario's time scale;
        ``noise`` overrides the scenario's; ``write_timeout`` is how long a client
        may stop reading before it is disconnected."""
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
            wire=wire, clock=self.clock, scenario=self.scenario, ground_truth=self._gt
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
        return {
            "Originate": self._originate,
            "Hangup": self._hangup,
            "Redirect": self._redirect,
            "Getvar": self._getvar,
            "Setvar": self._setvar,
            "Status": self._status,
            "CoreShowChannels": self._core_show_channels,
            "Command": self._command,
            "DBPut": self._dbput,
            "DBGetTree": self._dbgettree,
            "DBGet": self._dbget,
            "DBDel": self._dbdel,
            "DBDelTree": self._dbdeltree,
            "CoreStatus": self._core_status,
            "CoreSettings": self._core_settings,
            "DeviceStateList": self._device_state_list,
            "ExtensionStateList": self._extension_state_list,
        }

    def _originate(self, session: AmiSession, message: Message) -> None:
        request = _parse_originate(message)
        if isinstance(request, str):
            session.send_error(message, request)
            return
        if request.is_async:
            session.send_success(message, "Originate successfully queued")
        self.core.originate(request, session)

    def _channel(self, session: AmiSession, message: Message, missing: str) -> Channel | None:
        name = message.get("Channel") or ""
        if not name:
            session.send_error(message, missing)
            return None
        channel = self.core.channels.get(name)
        if channel is None:
            session.send_error(message, "No such channel")
        return channel

    def _hangup(self, session: AmiSession, message: Message) -> None:
        channel = self._channel(session, message, "No channel specified")
        if channel is None:
            return
        try:
            cause = int(message.get("Cause") or 16)
        except ValueError:
            cause = 16
        session.send_success(message, "Channel Hungup")
        self.core.manager_hangup(channel, cause)

    def _redirect(self, session: AmiSession, message: Message) -> None:
        name = message.get("Channel") or ""
        if not name:
            session.send_error(message, "Channel not specified")
            return
        priority_text = message.get("Priority") or "1"
        if not priority_text.isdigit():
            session.send_error(message, "Invalid priority")
            return
        channel = self.core.channels.get(name)
        if channel is None:
            session.send_error(message, f"Channel does not exist: {name}")
            return
        context = message.get("Context") or channel.context
        exten = message.get("Exten") or channel.exten
        session.send_success(message, "Redirect successful")
        self.core.redirect(channel, context, exten, int(priority_text))

    def _getvar(self, session: AmiSession, message: Message) -> None:
        variable = message.get("Variable") or ""
        if not variable:
            session.send_error(message, "No variable specified")
            return
        name = message.get("Channel") or ""
        if name:
            channel = self.core.channels.get(name)
            if channel is None:
                session.send_error(message, "No such channel")
                return
            value = _read_variable(channel, variable)
        else:
            value = self.core.globals.get(variable, "")
        session.send_response(message, "Success", [("Variable", variable), ("Value", value)])

    def _setvar(self, session: AmiSession, message: Message) -> None:
        variable = message.get("Variable") or ""
        if not variable:
            session.send_error(message, "No variable specified")
            return
        value = message.get("Value") or ""
        name = message.get("Channel") or ""
        if name:
            channel = self.core.channels.get(name)
            if channel is None:
                session.send_error(message, "No such channel")
                return
            session.send_success(message, "Variable Set")
            self.core.set_var(channel, variable, value)
            return
        self.core.globals[variable] = value
        session.send_success(message, "Variable Set")

    def _status(self, session: AmiSession, message: Message) -> None:
        name = message.get("Channel") or ""
        channels: list[Channel]
        if name:
            channel = self.core.channels.get(name)
            if channel is None:
                session.send_error(message, "No such channel")
                return
            channels = [channel]
        else:
            channels = list(self.core.channels.by_name.values())
        wanted = [v.strip() for v in (message.get("Variables") or "").split(",") if v.strip()]
        action_id = message.get("ActionID")
        tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Channel status will follow")]
        )
        now = self.clock.now()
        for channel in channels:
            pairs: Pairs = [("Event", "Status"), ("Privilege", "Call"), *channel.snapshot()]
            pairs += _status_details(channel, now)
            pairs += [("Variable", f"{v}={channel.variables.get(v, '(null)')}") for v in wanted]
            session.send(pairs + tail)
        _complete(session, "StatusComplete", action_id, len(channels), items=True)

    def _core_show_channels(self, session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID")
        head: Pairs = [("ActionID", action_id)] if action_id is not None else []
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Channels will follow")]
        )
        now = self.clock.now()
        channels = list(self.core.channels.by_name.values())
        for channel in channels:
            session.send(
                [
                    ("Event", "CoreShowChannel"),
                    *head,
                    *channel.snapshot(),
                    ("Application", channel.app or ""),
                    ("ApplicationData", channel.app_data),
                    ("Duration", _hms(now - channel.created_at)),
                    ("BridgeId", channel.bridge.uniqueid if channel.bridge else ""),
                ]
            )
        _complete(session, "CoreShowChannelsComplete", action_id, len(channels))

    def _command(self, session: AmiSession, message: Message) -> None:
        command = " ".join((message.get("Command") or "").split())
        if command == "core show channels":
            output = self._core_show_channels_text()
            pairs: Pairs = [("Message", "Command output follows")]
            session.send_response(message, "Success", pairs + [("Output", line) for line in output])
            return
        session.send_response(
            message,
            "Error",
            [("Message", "Command output follows"), ("Output", _UNKNOWN_COMMAND.format(command))],
        )

    def _core_show_channels_text(self) -> list[str]:
        core = self.core
        line = "{:<64.64} {:<32.32} {:<7.7} {:<30.30}"
        lines = [line.format("Channel", "Location", "State", "Application(Data)")]
        for channel in core.channels.by_name.values():
            location = f"{channel.exten}@{channel.context}:{channel.priority}"
            app = f"{channel.app}({channel.app_data})" if channel.app else "(None)"
            lines.append(line.format(channel.name, location, STATE_DESC[channel.state], app))
        channels, calls = (
            len(core.channels),
            len({ch.linkedid for ch in core.channels.by_name.values()}),
        )
        lines.append(f"{channels} active channel{'' if channels == 1 else 's'}")
        lines.append(f"{calls} active call{'' if calls == 1 else 's'}")
        processed = core.channels.created
        lines.append(f"{processed} call{'' if processed == 1 else 's'} processed")
        return lines

    def _dbgettree(self, session: AmiSession, message: Message) -> None:
        """Every entry of a family (or of all families, or under ``Key``), as an event list.

        As Asterisk 22 answers (``journal_dbgettree.jsonl``): each item's ``Key`` is
        the whole path ``/<family>/<key>`` and there is no ``Family`` header; an
        empty result is still a ``Success`` with ``ListItems: 0``.
        """
        family = (message.get("Family") or "").strip("/")
        key = (message.get("Key") or "").strip("/")
        prefix = f"/{family}/{key}" if key else f"/{family}" if family else ""
        items = sorted(
            (f"/{name}/{entry_key}", value)
            for name, entries in self.core.db.items()
            for entry_key, value in entries.items()
        )
        items = [
            (path, value)
            for path, value in items
            if not prefix or path == prefix or path.startswith(prefix + "/")
        ]
        action_id = message.get("ActionID")
        tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Result will follow")]
        )
        for path, value in items:
            session.send([("Event", "DBGetTreeResponse"), ("Key", path), ("Val", value), *tail])
        _complete(session, "DBGetTreeComplete", action_id, len(items))

    def _dbput(self, session: AmiSession, message: Message) -> None:
        family, key = message.get("Family") or "", message.get("Key") or ""
        if not family:
            session.send_error(message, "No family specified")
            return
        if not key:
            session.send_error(message, "No key specified")
            return
        self.core.db.setdefault(family, {})[key] = message.get("Val") or ""
        session.send_success(message, "Updated database successfully")

    def _dbget(self, session: AmiSession, message: Message) -> None:
        family, key = message.get("Family") or "", message.get("Key") or ""
        if not family or not key:
            session.send_error(
                message, "No family specified." if not family else "No key specified."
            )
            return
        value = self.core.db.get(family, {}).get(key)
        if value is None:
            session.send_error(message, "Database entry not found")
            return
        action_id = message.get("ActionID")
        tail: Pairs = [("ActionID", action_id)] if action_id is not None else []
        session.send_response(
            message, "Success", [("EventList", "start"), ("Message", "Result will follow")]
        )
        session.send(
            [("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value), *tail]
        )
        _complete(session, "DBGetComplete", action_id, 1)

    def _dbdel(self, session: AmiSession, message: Message) -> None:
        family, key = message.get("Family") or "", message.get("Key") or ""
        if not family or not key:
            session.send_error(
                message, "No family specified." if not family else "No key specified."
            )
            return
        if self.core.db.get(family, {}).pop(key, None) is None:
            session.send_error(message, "Database entry could not be deleted")
            return
        session.send_success(message, "Key deleted successfully")

    def _dbdeltree(self, session: AmiSession, message: Message) -> None:
        family = message.get("Family") or ""
        if not family:
            session.send_error(message, "No family specified.")
            return
        key = message.get("Key") or ""
        entries = self.core.db.get(family, {})
        doomed = [k for k in entries if not key or k == key or k.startswith(key + "/")]
        if not doomed:
            session.send_error(message, "Database entry not found")
            return
        for entry_key in doomed:
            del entries[entry_key]
        session.send_success(message, "Key tree deleted successfully")

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
                ("SystemName", ""),
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

    def _device_state_list(self, session: AmiSession, message: Message) -> None:
        action_id = message.get("ActionID")
        head: Pairs = [("ActionID", action_id)] if action_id is not None else []
        core = self.core
        # Real DeviceStateList never lists Local/ devices (devicestate_local.jsonl).
        devices = sorted(
            device
            for device in set(core.behaviours) | set(core.devices)
            if not device.startswith("Local/")
        )
        session.send_response(
            message,
            "Success",
            [("EventList", "start"), ("Message", "Device State Changes will follow")],
        )
        for device in devices:
            session.send(
                [
                    ("Event", "DeviceStateChange"),
                    *head,
                    ("Device", device),
                    ("State", core.device_state(device)),
                ]
            )
        _complete(session, "DeviceStateListComplete", action_id, len(devices))

    def _extension_state_list(self, session: AmiSession, message: Message) -> None:
        """The sim's dialplan has no hints: an empty list (``devicestate_local.jsonl``)."""
        session.send_response(
            message,
            "Success",
            [("EventList", "start"), ("Message", "Extension Statuses will follow")],
        )
        _complete(session, "ExtensionStateListComplete", message.get("ActionID"), 0)

    async def __aenter__(self) -> SimPbx:
        """``async with SimPbx(...) as sim``: started on a free loopback port."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        with contextlib.suppress(Exception):
            await self.close()


def _complete(
    session: AmiSession, name: str, action_id: str | None, count: int, *, items: bool = False
) -> None:
    """The event that ends an event list (``...Complete``, ``EventList: Complete``)."""
    pairs: Pairs = [("Event", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs += [("EventList", "Complete"), ("ListItems", str(count))]
    if items:
        pairs.append(("Items", str(count)))
    session.send(pairs)


def _hms(seconds: float) -> str:
    whole = max(int(seconds), 0)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _read_variable(channel: Channel, variable: str) -> str:
    builtin = {
        "UNIQUEID": channel.uniqueid,
        "CHANNEL": channel.name,
        "CALLERID(num)": channel.cid_num or "",
        "CALLERID(name)": channel.cid_name or "",
        "CONTEXT": channel.context,
        "EXTEN": channel.exten,
    }
    value = channel.variables.get(variable)
    return value if value is not None else builtin.get(variable, "")


def _status_details(channel: Channel, now: float) -> Pairs:
    formats = "slin" if channel.tech == "Local" else "ulaw"
    return [
        ("Type", channel.tech),
        ("DNID", ""),
        ("EffectiveConnectedLineNum", channel.conn_num or "<unknown>"),
        ("EffectiveConnectedLineName", channel.conn_name or "<unknown>"),
        ("TimeToHangup", "0"),
        ("BridgeID", channel.bridge.uniqueid if channel.bridge else ""),
        ("Application", channel.app or "(null)"),
        ("Data", channel.app_data if channel.app else "(null)"),
        ("Nativeformats", f"({formats})"),
        ("Readformat", formats),
        ("Readtrans", ""),
        ("Writeformat", formats),
        ("Writetrans", ""),
        ("Callgroup", "0"),
        ("Pickupgroup", "0"),
        ("Seconds", str(max(int(now - channel.created_at), 0))),
    ]


def _parse_callerid(text: str) -> tuple[str | None, str | None]:
    """``"Name" <number>``, ``Name <number>`` or a bare number."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].rpartition("<")
        name = name.strip().strip('"').strip()
        return number.strip() or None, name or None
    if text.replace("+", "").isdigit():
        return text, None
    return None, text.strip('"') or None


def _parse_originate(message: Message) -> OriginateRequest | str:
    """The request, or Asterisk's error text for a bad one."""
    channel = message.get("Channel") or ""
    if not channel:
        return "Channel not specified"
    priority_text = message.get("Priority") or "1"
    if not priority_text.lstrip("-").isdigit():
        return "Invalid priority"
    timeout_text = message.get("Timeout") or "30000"
    try:
        timeout_ms = int(timeout_text)
    except ValueError:
        return "Invalid timeout"
    if "/" not in channel:
        return "Invalid channel"
    variables: list[tuple[str, str]] = []
    for header in message.getall("Variable"):
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep and name.strip():
                variables.append((name.strip(), value))
    callerid_text = message.get("CallerID")
    return OriginateRequest(
        channel=channel,
        context=message.get("Context") or None,
        exten=message.get("Exten") or "s",
        priority=int(priority_text),
        application=message.get("Application") or None,
        data=message.get("Data") or "",
        timeout=max(timeout_ms, 0) / 1000.0,
        callerid=_parse_callerid(callerid_text) if callerid_text else None,
        variables=variables,
        action_id=message.get("ActionID"),
        channel_id=message.get("ChannelId") or None,
        other_channel_id=message.get("OtherChannelId") or None,
        is_async=(message.get("Async") or "").lower() in ("true", "yes", "1", "on"),
    )
