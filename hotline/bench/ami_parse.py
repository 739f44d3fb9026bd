"""``hotline bench ami-parse``: this codec against panoramisk 1.4 and asterisk-ami, same bytes.

Every parser gets the same 64 KiB chunks of the trace's received stream, once per
repetition (each repetition is a fresh connection with its greeting), and the
same access pattern:

* ``full``: read every header of every message;
* ``consumer``: read every message's name (Event or Response), and every header
  of the messages a router uses: responses, the events in :data:`ROUTER_EVENTS`
  and event-list ends.

panoramisk is driven through ``AMIProtocol.data_received``, exactly as its
asyncio transport calls it. asterisk-ami is a blocking client; its framing regex
(``AMIClient.asterisk_pack_regex``) splits the stream and ``Response.read`` /
``Event.read`` parse each pack, as its ``fire_recv_pack`` does. Rounds are
interleaved and the best round per parser is reported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from hotline.ami.codec import AmiCodec
from hotline.bench.common import best_of, emit
from hotline.traces import default_trace_dir, load_trace, recv_stream

__all__ = ["ROUTER_EVENTS", "run"]

ROUTER_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "Hangup",
        "UserEvent",
        "OriginateResponse",
        "DialState",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "DeviceStateChange",
        "CoreShowChannel",
        "Status",
    }
)
CHUNK = 64 * 1024
Consumer = Callable[[list[bytes], int, bool], int]


def _used_by_router(name: str) -> bool:
    return name in ROUTER_EVENTS or name.endswith("Complete")


def _hotline(chunks: list[bytes], repeat: int, full: bool) -> int:
    count = 0
    for _ in range(repeat):
        codec = AmiCodec()
        for chunk in chunks:
            for message in codec.feed(chunk):
                count += 1
                name = message.name
                if full or message.kind == "response" or _used_by_router(name):
                    for _key, _value in message.items():
                        pass
    return count


def _panoramisk() -> Consumer:
    from panoramisk.ami_protocol import AMIProtocol

    logging.getLogger("panoramisk").setLevel(logging.WARNING)  # one INFO line per connection

    class Collector(AMIProtocol):  # type: ignore[misc]
        def handle_message(self, message: Any) -> None:
            self.collected.append(message)

    def consume(chunks: list[bytes], repeat: int, full: bool) -> int:
        count = 0
        for _ in range(repeat):
            protocol = Collector()
            protocol.connection_made(None)
            protocol.collected = []
            for chunk in chunks:
                protocol.data_received(chunk)
                for message in protocol.collected:
                    count += 1
                    response = message.get("Response")
                    name = response or message.get("Event") or ""
                    if full or response or _used_by_router(name):
                        for _key, _value in message.items():
                            pass
                protocol.collected.clear()
        return count

    return consume


def _asterisk_ami() -> Consumer:
    from asterisk.ami.client import AMIClient
    from asterisk.ami.event import Event
    from asterisk.ami.response import Response

    pack_regex = AMIClient.asterisk_pack_regex
    line_regex = AMIClient.asterisk_line_regex

    def consume(chunks: list[bytes], repeat: int, full: bool) -> int:
        count = 0
        for _ in range(repeat):
            data = b""
            greeted = False
            for chunk in chunks:
                data += chunk
                if not greeted:
                    _greeting, data = line_regex.split(data, 1)
                    greeted = True
                *packs, data = pack_regex.split(data)
                for raw in packs:
                    pack = raw.decode("utf-8", errors="replace")
                    count += 1
                    if Response.match(pack):
                        response = Response.read(pack)
                        _ = response.status
                        for _key, _value in response.keys.items():
                            pass
                    elif Event.match(pack):
                        event = Event.read(pack)
                        if full or _used_by_router(event.name):
                            for _key, _value in event.keys.items():
                                pass
        return count

    return consume


def run(trace: str | None, repeat: int | None, modes: list[str], rounds: int = 3) -> None:
    """Benchmark every parser in every mode and print one JSON line each."""
    path = Path(trace) if trace else default_trace_dir() / "queue_load.jsonl"
    data = recv_stream(load_trace(path))
    per_stream = len(AmiCodec().feed(data))
    repeat = repeat or max(1, math.ceil(100_000 / per_stream))
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    parsers: dict[str, Consumer] = {"hotline": _hotline}
    for name, factory in (("panoramisk", _panoramisk), ("asterisk-ami", _asterisk_ami)):
        try:
            parsers[name] = factory()
        except ImportError as exc:
            emit({"bench": "ami-parse", "parser": name, "error": f"not installed: {exc}"})
    for mode in modes:
        full = mode == "full"
        best: dict[str, tuple[int, float]] = {}
        for _ in range(rounds):
            for name, consume in parsers.items():
                count, seconds = best_of(1, partial(consume, chunks, repeat, full))
                if name not in best or seconds < best[name][1]:
                    best[name] = (count, seconds)
        reference = best.get("panoramisk")
        for name, (count, seconds) in best.items():
            record: dict[str, Any] = {
                "bench": "ami-parse",
                "parser": name,
                "mode": mode,
                "messages": count,
                "seconds": round(seconds, 4),
                "msgs_per_s": round(count / seconds),
                "trace": path.name,
                "repeat": repeat,
            }
            if reference is not None:
                reference_rate = reference[0] / reference[1]
                record["vs_panoramisk"] = round(count / seconds / reference_rate, 2)
            emit(record)
