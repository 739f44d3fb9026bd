"""The sans-I/O AMI codec against the real Asterisk 22 traces, chunked every way, and fuzzed."""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.ami.codec import (
    MAX_LINE_BYTES,
    MAX_MESSAGE_BYTES,
    AmiCodec,
    AmiProtocolError,
    Message,
    encode_action,
    encode_message,
)
from hotline.traces import default_trace_dir, load_trace, recv_stream

pytestmark = pytest.mark.unit

TRACES = sorted(p.stem for p in default_trace_dir().glob("*.jsonl"))
AMI_TRACES = [name for name in TRACES if name != "fastagi_session"]


def expected_messages(name: str) -> list[list[tuple[str, str]]]:
    """Each recv entry after the greeting, split into (key, value) pairs straight from its text."""
    entries = [e for e in load_trace(name) if e.dir == "recv"]
    result = []
    for entry in entries[1:]:
        assert entry.raw.endswith("\r\n\r\n")
        lines = entry.raw[:-4].split("\r\n")
        result.append([(line.split(": ", 1)[0], line.split(": ", 1)[1]) for line in lines])
    return result


@cache
def stream(name: str) -> bytes:
    return recv_stream(load_trace(name))


def feed_chunks(data: bytes, sizes: list[int]) -> tuple[AmiCodec, list[Message]]:
    codec = AmiCodec()
    messages: list[Message] = []
    position = 0
    index = 0
    while position < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        messages.extend(codec.feed(data[position : position + size]))
        position += size
        index += 1
    return codec, messages


def feed_until_error(codec: AmiCodec, chunk: bytes, times: int) -> None:
    for _ in range(times):
        codec.feed(chunk)


def test_every_trace_is_present() -> None:
    assert len(AMI_TRACES) == 25
    assert "queue_load" in AMI_TRACES


@pytest.mark.parametrize("name", AMI_TRACES)
def test_trace_parses_whole_into_exactly_the_recorded_messages(name: str) -> None:
    codec = AmiCodec()
    messages = codec.feed(stream(name))
    assert codec.greeting == "Asterisk Call Manager/11.0.0"
    assert codec.buffered == 0
    expected = expected_messages(name)
    assert len(messages) == len(expected)
    for message, pairs in zip(messages, expected, strict=True):
        assert message.items() == pairs
        assert message.name == pairs[0][1]
        assert message.kind == pairs[0][0].lower()


@pytest.mark.parametrize("name", AMI_TRACES)
def test_trace_parses_one_byte_at_a_time(name: str) -> None:
    data = stream(name)
    if len(data) > 200_000:
        data = data[:200_000]
    _, whole = feed_chunks(data, [])
    _, single = feed_chunks(data, [1])
    assert [m.items() for m in single] == [m.items() for m in whole]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(AMI_TRACES),
    sizes=st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=50),
)
def test_trace_parses_the_same_in_random_chunks(name: str, sizes: list[int]) -> None:
    data = stream(name)
    _, whole = feed_chunks(data, [])
    codec, chunked = feed_chunks(data, sizes)
    assert codec.buffered == 0
    assert [m.items() for m in chunked] == [m.items() for m in whole]
    assert [m.name for m in chunked] == [m.name for m in whole]


def test_keys_are_case_insensitive_and_repeats_keep_order() -> None:
    status = next(
        m
        for m in AmiCodec().feed(stream("resync_status"))
        if m.name == "Status" and (m.get("Channel") or "").startswith("Local/2001")
    )
    assert status.get("channel") == status.get("CHANNEL") == status["Channel"]
    assert status.getall("variable") == [
        "HOTLINE_QUEUE=(null)",
        "HOTLINE_PRIORITY=(null)",
        "HOTLINE_TICKET=T20261126-0008",
        "HOTLINE_CALLER=Local/13900139007@callers-00000010;1",
    ]
    assert status.get("Variable") == "HOTLINE_QUEUE=(null)"
    assert "accountcode" in status
    assert status.get("AccountCode") == ""
    assert status.get("NoSuchKey") is None
    assert "NoSuchKey" not in status
    with pytest.raises(KeyError):
        status["NoSuchKey"]


def test_modern_command_output_keeps_every_line() -> None:
    reply = next(m for m in AmiCodec().feed(stream("misc_actions")) if m.action_id == "rec-6")
    assert reply.name == "Success"
    assert reply.output[0].startswith("support has 0 calls")
    assert reply.output[-2:] == ["", ""]
    assert len(reply.output) == 7


def test_legacy_follows_output_with_blank_lines_is_framed_by_end_command() -> None:
    data = (
        b"Asterisk Call Manager/1.1\r\n"
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Channel              Location\n\nfirst: line\n2 active channels\n"
        b"--END COMMAND--\r\n\r\n"
        b"Event: Newchannel\r\nChannel: SIP/1-1\r\n\r\n"
    )
    for size in (1, 3, 7, len(data)):
        _, messages = feed_chunks(data, [size])
        assert [m.name for m in messages] == ["Follows", "Newchannel"]
        follows = messages[0]
        assert follows.action_id == "7"
        assert follows.get("Privilege") == "Command"
        assert follows.output == [
            "Channel              Location",
            "",
            "first: line",
            "2 active channels",
        ]
        assert messages[1].get("Channel") == "SIP/1-1"


def test_bare_lf_and_mixed_line_ends() -> None:
    data = (
        b"Asterisk Call Manager/11.0.0\n"
        b"Event: A\nKey: 1\n\n"
        b"Event: B\r\nKey: 2\n\r\n"
        b"Event: C\nKey: 3\r\n\r\n"
        b"\r\n"
        b"Event: D\r\nKey: 4\r\n\n"
    )
    for size in (1, 2, 5, len(data)):
        _, messages = feed_chunks(data, [size])
        assert [(m.name, m.get("Key")) for m in messages] == [
            ("A", "1"),
            ("B", "2"),
            ("C", "3"),
            ("D", "4"),
        ]


def test_multibyte_utf8_split_across_reads_is_kept() -> None:
    text = "Event: UserEvent\r\nCallerIDName: 张伟\r\nNote: café\r\n\r\n"
    data = b"Asterisk Call Manager/11.0.0\r\n" + text.encode()
    _, messages = feed_chunks(data, [1])
    assert messages[0].get("CallerIDName") == "张伟"
    assert messages[0].get("Note") == "café"
    _, broken = feed_chunks(data.replace("张".encode(), b"\xe5\xbc"), [1])
    assert broken[0].get("CallerIDName") == "\ufffd伟"


def test_line_over_the_limit_raises_even_while_incomplete() -> None:
    codec = AmiCodec()
    codec.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: Big\r\nData: ")
    with pytest.raises(AmiProtocolError, match="line longer"):
        feed_until_error(codec, b"x" * 4096, MAX_LINE_BYTES // 4096 + 2)
    assert codec.buffered <= MAX_LINE_BYTES + 8192
    with pytest.raises(AmiProtocolError):
        codec.feed(b"\r\n\r\n")


def test_message_over_the_limit_raises_and_keeps_earlier_messages() -> None:
    codec = AmiCodec()
    lines = b"".join(b"Key%d: %s\r\n" % (i, b"v" * 1000) for i in range(1100))
    data = b"Asterisk Call Manager/11.0.0\r\nEvent: Small\r\n\r\nEvent: Huge\r\n" + lines + b"\r\n"
    with pytest.raises(AmiProtocolError, match="message longer") as caught:
        codec.feed(data)
    assert [m.name for m in caught.value.messages] == ["Small"]


def test_incomplete_message_over_the_limit_raises() -> None:
    codec = AmiCodec()
    codec.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: Huge\r\n")
    with pytest.raises(AmiProtocolError, match="message longer"):
        feed_until_error(codec, b"Key: " + b"v" * 60_000 + b"\r\n", MAX_MESSAGE_BYTES // 60_000 + 2)


def test_greeting_that_is_not_asterisk_is_refused() -> None:
    with pytest.raises(AmiProtocolError, match="unexpected greeting"):
        AmiCodec().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_lenient_content_keeps_non_header_lines_as_body() -> None:
    codec = AmiCodec()
    [message] = codec.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\njunk line\r\nA:b\r\n\r\n")
    assert message.name == "X"
    assert message.body == ["junk line"]
    assert message.get("A") == "b"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30), st.booleans())
def test_fuzz_arbitrary_bytes_only_ever_raise_the_protocol_error(
    chunks: list[bytes], greet: bool
) -> None:
    codec = AmiCodec(expect_greeting=greet)
    for chunk in chunks:
        try:
            for message in codec.feed(chunk):
                assert isinstance(message.name, str)
                message.items()
                message.get("ActionID")
                assert isinstance(message.body, list)
        except AmiProtocolError:
            return
        assert codec.buffered <= MAX_MESSAGE_BYTES


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Event", "Key", "Variable", "Output"]),
            st.text(
                alphabet=st.characters(
                    blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]
                ),
                max_size=40,
            ).map(str.strip),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_encode_then_parse_round_trips(pairs: list[tuple[str, str]]) -> None:
    pairs = [("Event", "Fuzz"), *pairs]
    codec = AmiCodec(expect_greeting=False)
    messages = codec.feed(encode_message(pairs))
    assert len(messages) == 1
    assert messages[0].items() == pairs


def test_fuzz_random_garbage_with_blank_lines_bounds_memory() -> None:
    rng = random.Random(7)
    codec = AmiCodec(expect_greeting=False)
    alphabet = b"ab:\r\n \xff\xe4"
    for _ in range(2000):
        chunk = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 600)))
        try:
            codec.feed(chunk)
        except AmiProtocolError:
            break
        assert codec.buffered <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Channel", "PJSIP/1001\r\nAction: Originate"),
        ("Channel", "x\ny"),
        ("Channel", "x\ry"),
        ("Channel", "nul\x00"),
        ("Bad\r\nKey", "v"),
        ("Bad: Key", "v"),
        ("", "v"),
    ],
)
def test_header_injection_is_refused(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="AMI"):
        encode_action("Originate", [(key, value)])


def test_encode_action_puts_action_and_id_first_and_keeps_repeats() -> None:
    data = encode_action(
        "Originate",
        [("Variable", "A=1"), ("Variable", "B=2")],
        action_id="x-1",
    )
    assert data == b"Action: Originate\r\nActionID: x-1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    [parsed] = AmiCodec(expect_greeting=False).feed(data)
    assert parsed.kind == "action"
    assert parsed.name == "Originate"
    assert parsed.getall("Variable") == ["A=1", "B=2"]
