"""Replaying a recorded Asterisk trace against the simulated PBX, and comparing the two streams.

The replay acts as the trace's client did: it sends each ``send`` entry once
the message that preceded it in the trace (its *trigger*) has arrived from the
sim as many times as in the trace, after the trace's remaining gap on the sim's
clock. Channel names in the sends are replaced by role.

Channels are compared by *role*: the context of a Local channel (or the
technology of another), the order in which its pair first appeared within that
context, and its half, e.g. ``agents#1;2``. Ids are never compared.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hotline.ami.codec import AmiCodec, Message
from hotline.clock import Clock
from hotline.traces import TraceEntry, load_trace

NOISE = frozenset({"CEL", "Cdr", "VarSet", "Newexten"})
LIFECYCLE = frozenset(
    {
        "Newchannel",
        "Newstate",
        "UserEvent",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
        "ChanSpyStart",
        "ChanSpyStop",
    }
)
CHANNEL_LESS = frozenset(
    {
        "LocalBridge",
        "DialBegin",
        "DialEnd",
        "DialState",
        "BridgeCreate",
        "BridgeDestroy",
        "DeviceStateChange",
        "FullyBooted",
        "SuccessfulAuth",
    }
)
_CHANNEL_RE = re.compile(r"(?:Local|PJSIP|SIP)/[^\s|;,]+?-[0-9a-f]{8}(?:;[12])?")
_NAME_RE = re.compile(
    r"^(?P<tech>[A-Za-z0-9]+)/(?P<resource>.+)-(?P<suffix>[0-9a-f]{8})(?:;(?P<half>[12]))?$"
)

Signature = tuple[str, ...]


class Roles:
    """Channel name <-> role, assigned in order of first appearance."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}
        self.by_role: dict[str, str] = {}
        self._groups: dict[str, dict[str, int]] = collections.defaultdict(dict)

    def role(self, name: str) -> str:
        known = self.by_name.get(name)
        if known is not None:
            return known
        match = _NAME_RE.match(name)
        if match is None:
            return name
        resource = match["resource"]
        group = resource.partition("@")[2] if match["tech"] == "Local" else match["tech"]
        base = f"{match['tech']}/{resource}-{match['suffix']}"
        pairs = self._groups[group or match["tech"]]
        index = pairs.setdefault(base, len(pairs))
        role = f"{group or match['tech']}#{index};{match['half'] or 0}"
        self.by_name[name] = role
        self.by_role[role] = name
        return role

    def text(self, text: str) -> str:
        """``text`` with every channel name replaced by its role."""
        return _CHANNEL_RE.sub(
            lambda m: self.role(m.group()) if m.group() in self.by_name else m.group(), text
        )


def parse(raw: str) -> Message | None:
    """One recorded message (None for the greeting)."""
    if raw.startswith("Asterisk Call Manager"):
        return None
    messages = AmiCodec(expect_greeting=False).feed(raw.encode())
    assert len(messages) == 1, raw
    return messages[0]


def signature(message: Message, roles: Roles) -> Signature:
    """What identifies a message regardless of ids, for trigger counting."""
    if message.kind == "response":
        return ("Response", message.get("ActionID") or "")
    name = message.name
    action_id = message.get("ActionID")
    if action_id is not None:
        return ("Event", name, action_id)
    if name == "DeviceStateChange":
        return (name, message.get("Device") or "")
    channel = message.get("Channel") or message.get("SpyerChannel") or message.get("DestChannel")
    if channel is not None:
        state = message.get("ChannelState") or "" if name == "Newstate" else ""
        return (name, roles.role(channel), state)
    return (name,)


@dataclass
class Stream:
    """The non-noise messages a client received, with their roles."""

    messages: list[Message] = field(default_factory=list)
    roles: Roles = field(default_factory=Roles)
    counts: collections.Counter[Signature] = field(default_factory=collections.Counter)

    def add(self, message: Message) -> Signature | None:
        if message.kind == "event" and message.name in NOISE:
            return None
        self.messages.append(message)
        sig = signature(message, self.roles)
        self.counts[sig] += 1
        return sig


def trace_stream(entries: Iterable[TraceEntry]) -> Stream:
    """The trace's received messages as a :class:`Stream`."""
    stream = Stream()
    for entry in entries:
        if entry.dir == "recv":
            message = parse(entry.raw)
            if message is not None:
                stream.add(message)
    return stream


async def replay(
    name: str,
    port: int,
    clock: Clock,
    *,
    timeout: float = 15.0,
    logged_in: asyncio.Event | None = None,
    abort_at_end: bool = False,
    ignore: Callable[[Message], bool] | None = None,
) -> tuple[Stream, Stream]:
    """Replay trace ``name`` against the sim on ``port`` whose clock is ``clock``; returns
    (trace, sim) streams.

    ``logged_in`` is set once the sim answered the first action. With
    ``abort_at_end`` (a trace whose session died, with no ``recv-eof``) the socket
    is aborted once the sim has sent what the trace received last. Trace messages
    for which ``ignore`` is true (what the sim does not emulate) are left out.
    """
    entries = load_trace(name)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sim = Stream()
    arrived = asyncio.Event()
    codec = AmiCodec()

    async def read() -> None:
        while data := await reader.read(65536):
            for message in codec.feed(data):
                sim.add(message)
                if logged_in is not None and message.kind == "response":
                    logged_in.set()
            arrived.set()
        arrived.set()

    reading = asyncio.create_task(read())
    trace = Stream()
    trigger: tuple[Signature, int, float] | None = None
    try:
        for entry in entries:
            if entry.dir == "recv":
                trigger = _received(entry, trace, ignore) or trigger
                continue
            if entry.dir != "send":
                continue
            if trigger is not None:
                sig, count, at = trigger
                await _until_sim_sent(sim, sig, count, arrived, timeout, reading=reading)
                await clock.sleep(max(entry.t - at, 0.0))
            writer.write(_substitute(entry.raw, trace.roles, sim.roles).encode())
        if abort_at_end and trigger is not None:
            sig, count, _ = trigger
            await _until_sim_sent(sim, sig, count, arrived, timeout)
            writer.transport.abort()
            return trace, sim
        async with asyncio.timeout(timeout):
            await reading
    finally:
        reading.cancel()
        writer.close()
    return trace, sim


def _received(
    entry: TraceEntry, trace: Stream, ignore: Callable[[Message], bool] | None
) -> tuple[Signature, int, float] | None:
    """Add a trace's received message to ``trace``; the new trigger when it has a signature."""
    message = parse(entry.raw)
    if message is None or (ignore is not None and ignore(message)):
        return None
    sig = trace.add(message)
    if sig is None:
        return None
    return (sig, trace.counts[sig], entry.t)


async def _until_sim_sent(
    sim: Stream,
    sig: Signature,
    count: int,
    arrived: asyncio.Event,
    timeout: float,
    *,
    reading: asyncio.Task[None] | None = None,
) -> None:
    """Wait until the sim has sent its ``count``-th ``sig``; with ``reading``, fail if the
    sim closed the connection first."""
    async with asyncio.timeout(timeout):
        while sim.counts[sig] < count:
            if reading is not None and reading.done():
                raise AssertionError(f"sim closed before {sig} #{count}")
            arrived.clear()
            await arrived.wait()


def _substitute(raw: str, trace_roles: Roles, sim_roles: Roles) -> str:
    def swap(match: re.Match[str]) -> str:
        name = match.group()
        role = trace_roles.by_name.get(name)
        if role is None:
            return name
        return sim_roles.by_role.get(role, name)

    return _CHANNEL_RE.sub(swap, raw)


# -- comparison --------------------------------------------------------------------------------


def _keys(message: Message) -> frozenset[str]:
    return frozenset(message.keys())


@dataclass
class Digest:
    """A stream reduced to what the fidelity test compares."""

    lifecycle: dict[str, list[str]]
    per_channel: dict[str, collections.Counter[tuple[str, frozenset[str]]]]
    channel_less: collections.Counter[tuple[str, frozenset[str]]]
    replies: dict[str, collections.Counter[tuple[str, ...]]]
    key_order: dict[tuple[str, frozenset[str]], tuple[str, ...]]


def digest(stream: Stream) -> Digest:
    """Per channel role: lifecycle order and event multiset; channel-less multiset; replies."""
    roles = stream.roles
    lifecycle: dict[str, list[str]] = collections.defaultdict(list)
    per_channel: dict[str, collections.Counter[tuple[str, frozenset[str]]]] = (
        collections.defaultdict(collections.Counter)
    )
    channel_less: collections.Counter[tuple[str, frozenset[str]]] = collections.Counter()
    replies: dict[str, collections.Counter[tuple[str, ...]]] = collections.defaultdict(
        collections.Counter
    )
    key_order: dict[tuple[str, frozenset[str]], tuple[str, ...]] = {}
    for message in stream.messages:
        keys = _keys(message)
        key_order.setdefault((message.name, keys), tuple(message.keys()))
        action_id = message.get("ActionID")
        if message.kind == "response" or (
            action_id is not None and message.name != "DeviceStateChange"
        ):
            replies[action_id or ""][_reply_key(message, roles)] += 1
            continue
        name = message.name
        if name in CHANNEL_LESS:
            channel_less[(name, keys)] += 1
            continue
        channels = [message.get(k) for k in ("Channel", "SpyerChannel", "SpyeeChannel")]
        named = [c for c in channels if c]
        if not named:
            channel_less[(name, keys)] += 1
            continue
        for channel in named:
            role = roles.role(channel)
            per_channel[role][(name, keys)] += 1
            if name in LIFECYCLE:
                state = message.get("ChannelState") if name == "Newstate" else None
                lifecycle[role].append(f"{name}({state})" if state else name)
    return Digest(dict(lifecycle), dict(per_channel), channel_less, dict(replies), key_order)


def _reply_key(message: Message, roles: Roles) -> tuple[str, ...]:
    keys = ",".join(sorted(_keys(message)))
    channel = message.get("Channel")
    role = roles.role(channel) if channel and _NAME_RE.match(channel) else channel or ""
    values = [
        message.get(k) or "" for k in ("Response", "Reason", "Variable", "Value", "EventList")
    ]
    text = roles.text(message.get("Message") or "")
    return (message.kind, message.name, keys, role, text, *values)
