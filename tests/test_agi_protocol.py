"""The sans-I/O FastAGI module against the real Asterisk 22 transcript, and fuzzed."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.agi.protocol import (
    CLOSED,
    NEED_DATA,
    AgiConnection,
    AgiEnvironment,
    AgiEvent,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    format_command,
)
from hotline.traces import load_trace, recv_stream

pytestmark = pytest.mark.unit

TRACE = load_trace("fastagi_session")
COMMANDS = [entry.raw for entry in TRACE if entry.dir == "send"]
STREAM = recv_stream(TRACE)

EXPECTED_REPLIES = [
    AgiReply(code=200, result=1),  # VERBOSE
    AgiReply(code=200, result=1, data="13700137000"),  # GET VARIABLE CALLERID(num)
    AgiReply(code=200, result=1, data="Qian Yi"),  # GET FULL VARIABLE
    AgiReply(code=200, result=0),  # ANSWER
    AgiReply(code=200, result=-1, endpos=0),  # STREAM FILE (no such sound file)
    AgiReply(code=200, result=-1),  # GET DATA (no such sound file)
    AgiReply(code=200, result=0),  # WAIT FOR DIGIT: timeout
    AgiReply(code=200, result=1),  # SET VARIABLE HOTLINE_QUEUE
    AgiReply(code=200, result=1),  # SET VARIABLE HOTLINE_PRIORITY
    AgiReply(code=200, result=1, data="repair"),  # GET VARIABLE HOTLINE_QUEUE
    AgiReply(code=510, text="Invalid or unknown command"),  # NOSUCHCOMMAND
]
USAGE_END = b"520 End of proper usage.\n"


def _parse_commands(line: str) -> tuple[str, list[str]]:
    """Split a trace command line into a command name and arguments, for send_command."""
    words = line.rstrip("\n").split(" ")
    for split in range(len(words), 0, -1):
        name = " ".join(words[:split])
        if name.isupper() and all(word.isalpha() for word in words[:split]):
            rest = " ".join(words[split:])
            break
    args: list[str] = []
    while rest:
        if rest.startswith('"'):
            end = rest.index('"', 1)
            args.append(rest[1:end])
            rest = rest[end + 1 :].lstrip(" ")
        else:
            word, _, rest = rest.partition(" ")
            args.append(word)
    return name, args


def _drain(connection: AgiConnection) -> list[AgiEvent]:
    events: list[AgiEvent] = []
    while (event := connection.next_event()) is not NEED_DATA and event is not CLOSED:
        events.append(event)
    if event is CLOSED:
        events.append(event)
    return events


def _replay(chunk: int) -> tuple[AgiConnection, list[AgiEvent]]:
    connection = AgiConnection()
    events: list[AgiEvent] = []
    head, _, _ = STREAM.partition(b"\n\n")
    env_bytes = head + b"\n\n"
    for start in range(0, len(env_bytes), chunk):
        connection.receive_data(env_bytes[start : start + chunk])
        events += _drain(connection)
    assert connection.environment_received
    for line in COMMANDS:
        name, args = _parse_commands(line)
        assert connection.send_command(name, *args) == line.encode()
    rest = STREAM[len(env_bytes) :]
    for start in range(0, len(rest), chunk):
        connection.receive_data(rest[start : start + chunk])
        events += _drain(connection)
    return connection, events


@pytest.mark.parametrize("chunk", [len(STREAM), 1, 7])
def test_replay_reproduces_the_transcript(chunk: int) -> None:
    """Whole, byte by byte and in odd chunks: the same environment and replies, in order."""
    connection, events = _replay(chunk)
    env = events[0]
    assert isinstance(env, AgiEnvironment)
    assert env.channel == "Local/13700137000@callers-00000047;1"
    assert env.uniqueid == "1795712399.147"
    assert env.callerid == "13700137000"
    assert env.get("calleridname") == "Qian Yi"
    assert env.script == "main"
    assert env.get("accountcode") == ""
    assert len(env.variables) == 22
    assert events[1:] == EXPECTED_REPLIES
    # The recording stops inside the 520 usage reply: it is still pending.
    assert connection.pending == 1
    connection.receive_data(USAGE_END)
    usage = connection.next_event()
    assert usage == AgiReply(
        code=520,
        text="Invalid command syntax.  Proper usage follows:",
        usage=("Sets a variable to the current channel.",),
    )
    assert connection.pending == 0
    connection.receive_data(b"HANGUP\n")
    assert isinstance(connection.next_event(), AgiHangup)
    connection.receive_data(b"")
    assert connection.next_event() is CLOSED


def test_hangup_between_command_and_reply() -> None:
    """Asterisk's HANGUP line may precede the reply of the command in flight."""
    connection = AgiConnection()
    connection.receive_data(b"agi_network: yes\n\n")
    assert isinstance(connection.next_event(), AgiEnvironment)
    connection.send_command("WAIT FOR DIGIT", "5000")
    connection.receive_data(b"HANGUP\n200 result=-1\n")
    assert isinstance(connection.next_event(), AgiHangup)
    assert connection.next_event() == AgiReply(code=200, result=-1)


def test_data_with_parentheses_and_endpos() -> None:
    """GET DATA's ``(timeout)`` and a value holding parentheses parse as data."""
    connection = AgiConnection()
    connection.receive_data(b"agi_network: yes\r\n\r\n")
    assert isinstance(connection.next_event(), AgiEnvironment)
    connection.send_command("GET DATA", "x", "1", "1")
    connection.send_command("GET VARIABLE", "X")
    connection.receive_data(b"200 result=12 (timeout)\n200 result=1 (a (b) c) endpos=5\n")
    assert connection.next_event() == AgiReply(code=200, result=12, data="timeout")
    assert connection.next_event() == AgiReply(code=200, result=1, data="a (b) c", endpos=5)


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (b"hello\n", "environment line"),
        (b"\n", "empty environment block"),
        (b"agi_network: yes\n\n200 result=1\n", "no command pending"),
        (b"agi_network: yes\n" + b"x" * 9000, "longer than"),
        (b"agi_network: \xff\xfe\n", "not UTF-8"),
    ],
)
def test_garbage_raises_the_protocol_error(stream: bytes, problem: str) -> None:
    """Each kind of garbage raises AgiProtocolError naming the problem, and stays raised."""
    connection = AgiConnection()
    connection.receive_data(stream)
    with pytest.raises(AgiProtocolError, match=problem):
        _drain(connection)
    with pytest.raises(AgiProtocolError):
        connection.next_event()


def test_end_of_file_inside_the_environment_is_an_error() -> None:
    """A peer that closes before the blank line is a protocol error, not a session."""
    connection = AgiConnection()
    connection.receive_data(b"agi_network: yes\n")
    connection.receive_data(b"")
    with pytest.raises(AgiProtocolError, match="end of file"):
        connection.next_event()


def test_format_command_quotes_and_refuses_line_breaks() -> None:
    """Blanks and quotes are quoted; a line break in an argument is refused."""
    assert format_command("EXEC", "Playback", 'a "b"') == b'EXEC Playback "a \\"b\\""\n'
    with pytest.raises(ValueError, match="line break"):
        format_command("VERBOSE", "a\nHANGUP")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    pending=st.integers(min_value=0, max_value=5),
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [b"200 result=", b"520-", b"520 End\n", b"HANGUP\n", b"\n", b"510 x\n", b"(", b")"]
            ),
        ),
        max_size=20,
    ),
    eof=st.booleans(),
)
def test_fuzzed_replies_raise_only_the_protocol_error(
    pending: int, chunks: list[bytes], eof: bool
) -> None:
    """Whatever bytes follow the environment, the parser returns events or AgiProtocolError."""
    connection = AgiConnection()
    connection.receive_data(b"agi_network: yes\n\n")
    assert isinstance(connection.next_event(), AgiEnvironment)
    for _ in range(pending):
        connection.send_command("NOOP")
    try:
        for chunk in chunks:
            if chunk:
                connection.receive_data(chunk)
            for event in _drain(connection):
                assert isinstance(event, AgiReply | AgiHangup)
        if eof:
            connection.receive_data(b"")
            _drain(connection)
    except AgiProtocolError:
        pass
    assert connection.pending >= 0


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_environment_raises_only_the_protocol_error(stream: bytes) -> None:
    """Random bytes before the environment's blank line never raise anything else."""
    connection = AgiConnection()
    connection.receive_data(stream)
    connection.receive_data(b"")
    with contextlib.suppress(AgiProtocolError):
        _drain(connection)
    assert connection.pending == 0
