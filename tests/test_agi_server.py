"""The FastAGI server over real sockets, with a scripted peer speaking Asterisk's dialect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hotline.agi.server import AgiConfig, AgiHangupError, AgiServer, AgiSession
from hotline.traces import load_trace

pytestmark = pytest.mark.integration

ENV = "".join(
    entry.raw for entry in load_trace("fastagi_session")[:23] if entry.dir == "recv"
).encode()
LIMIT = 30.0


class Peer:
    """The Asterisk side of one FastAGI socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: AgiServer, env: bytes = ENV) -> Peer:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(env)
        await writer.drain()
        return cls(reader, writer)

    async def command(self) -> str:
        line = await asyncio.wait_for(self.reader.readline(), LIMIT)
        return line.decode()

    async def reply(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def closed(self) -> bool:
        """True once the server closed the socket (read gives EOF)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), LIMIT)
        except ConnectionResetError:
            rest = b""
        self.writer.close()
        return rest == b""


async def _serve(handler: Callable[[AgiSession], object], **config: object) -> AgiServer:
    async def run(session: AgiSession) -> None:
        await handler(session)  # type: ignore[misc]

    server = AgiServer(run, AgiConfig(listen="127.0.0.1:0", **config))  # type: ignore[arg-type]
    await server.start()
    return server


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(LIMIT):
        while not condition():  # noqa: ASYNC110 - polling the server task's counters
            await asyncio.sleep(0.01)


async def test_a_session_runs_commands_as_in_the_trace() -> None:
    """Environment, SET VARIABLE, WAIT FOR DIGIT: the bytes and results of the trace."""
    seen: dict[str, object] = {}

    async def handler(session: AgiSession) -> None:
        seen["channel"] = session.environment.channel
        await session.verbose("hotline ivr start")
        seen["digit"] = await session.wait_for_digit(0.5)
        await session.set_variable("HOTLINE_QUEUE", "repair")
        seen["queue"] = await session.get_variable("HOTLINE_QUEUE")
        seen["data"] = await session.get_data("hotline-menu", 2.0, 4)

    server = await _serve(handler)
    try:
        peer = await Peer.connect(server)
        assert await peer.command() == 'VERBOSE "hotline ivr start" 1\n'
        await peer.reply("200 result=1\n")
        assert await peer.command() == "WAIT FOR DIGIT 500\n"
        await peer.reply("200 result=0\n")
        assert await peer.command() == "SET VARIABLE HOTLINE_QUEUE repair\n"
        await peer.reply("200 result=1\n")
        assert await peer.command() == "GET VARIABLE HOTLINE_QUEUE\n"
        await peer.reply("200 result=1 (repair)\n")
        assert await peer.command() == "GET DATA hotline-menu 2000 4\n"
        await peer.reply("200 result=0123\n")
        assert await peer.closed()
    finally:
        await server.close()
    assert seen == {
        "channel": "Local/13700137000@callers-00000047;1",
        "digit": None,
        "queue": "repair",
        "data": "0123",
    }
    assert server.stats.started == 1
    assert server.stats.failed == 0


@pytest.mark.parametrize(
    "hangup",
    ["HANGUP\n200 result=-1\n", "200 result=-1\n", "511 Command Not Permitted\n", ""],
    ids=["hangup-line", "minus-one", "dead-channel", "socket-close"],
)
async def test_hangup_mid_command_ends_the_session(hangup: str) -> None:
    """HANGUP, a -1 from WAIT FOR DIGIT, a 511 or a closed socket raise AgiHangupError."""
    outcome: list[str] = []

    async def handler(session: AgiSession) -> None:
        try:
            await session.wait_for_digit(5.0)
        except AgiHangupError:
            outcome.append("hangup")
            assert session.hungup
            raise
        outcome.append("no hangup")

    server = await _serve(handler)
    try:
        peer = await Peer.connect(server)
        assert await peer.command() == "WAIT FOR DIGIT 5000\n"
        if hangup:
            await peer.reply(hangup)
            assert await peer.closed()
        else:
            peer.writer.close()
        await _until(lambda: server.stats.hangups == 1)
    finally:
        await server.close()
    assert outcome == ["hangup"]
    assert server.stats.failed == 0


async def test_minus_one_from_stream_file_is_a_missing_prompt_not_a_hangup() -> None:
    """The trace's STREAM FILE on a live channel answers -1 endpos=0: the session goes on."""
    digits: list[str | None] = []

    async def handler(session: AgiSession) -> None:
        digits.append(await session.stream_file("hotline-welcome", "0123456789#*"))
        digits.append(await session.wait_for_digit(1.0))

    server = await _serve(handler)
    try:
        peer = await Peer.connect(server)
        assert await peer.command() == 'STREAM FILE hotline-welcome "0123456789#*"\n'
        await peer.reply("200 result=-1 endpos=0\n")
        assert await peer.command() == "WAIT FOR DIGIT 1000\n"
        await peer.reply("200 result=50\n")
        assert await peer.closed()
    finally:
        await server.close()
    assert digits == [None, "2"]


async def test_garbage_on_one_socket_closes_that_session_only() -> None:
    """One peer sends garbage mid-session; the other session completes its commands."""
    done: list[str] = []

    async def handler(session: AgiSession) -> None:
        await session.set_variable("A", "1")
        await session.set_variable("B", "2")
        done.append(session.environment.callerid)

    server = await _serve(handler)
    try:
        good = await Peer.connect(server)
        bad = await Peer.connect(server, ENV.replace(b"13700137000", b"13900139000"))
        assert await good.command() == "SET VARIABLE A 1\n"
        assert await bad.command() == "SET VARIABLE A 1\n"
        await bad.reply("\x00\xff garbage that is not a reply\n")
        assert await bad.closed()
        await good.reply("200 result=1\n")
        assert await good.command() == "SET VARIABLE B 2\n"
        await good.reply("200 result=1\n")
        assert await good.closed()
        # A peer sending garbage instead of an environment is dropped too.
        junk = await Peer.connect(server, b"GET / HTTP/1.1\r\n\r\n")
        assert await junk.closed()
        await _until(lambda: server.stats.failed == 2)
    finally:
        await server.close()
    assert done == ["13700137000"]


async def test_a_command_without_reply_times_out_that_session() -> None:
    """A peer that never answers is disconnected after command_timeout, counted as failed."""

    async def handler(session: AgiSession) -> None:
        await session.answer()

    server = await _serve(handler, command_timeout=0.2)
    try:
        peer = await Peer.connect(server)
        assert await peer.command() == "ANSWER\n"
        assert await peer.closed()
        await _until(lambda: server.stats.failed == 1)
    finally:
        await server.close()


async def test_sessions_are_bounded() -> None:
    """Past max_sessions a connection is closed at once; the running session is unaffected."""
    release = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        await release.wait()
        await session.set_variable("X", "1")

    server = await _serve(handler, max_sessions=1)
    try:
        first = await Peer.connect(server)
        await _until(lambda: server.stats.active == 1)
        second = await Peer.connect(server)
        assert await second.closed()
        assert server.stats.refused == 1
        release.set()
        assert await first.command() == "SET VARIABLE X 1\n"
        await first.reply("200 result=1\n")
        assert await first.closed()
    finally:
        await server.close()
