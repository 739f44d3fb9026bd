"""The AMI wire protocol, sans I/O: bytes in, messages out; actions in, bytes out.

Theory of operation
-------------------
The Asterisk Manager Interface is a line protocol. After a one-line greeting
(``Asterisk Call Manager/11.0.0``), every message is a block of ``Key: Value``
lines ended by an empty line. Asterisk writes CRLF; we also accept bare LF, and a
block may mix the two. Keys repeat (``Variable``, ``ChanVariable``, ``Output``),
and their order matters.

:class:`AmiCodec` never touches a socket. ``feed(data)`` appends the bytes to a
buffer and returns every message the buffer now completes:

1. Framing works on bytes. It looks for the *last* blank line in the buffer
   (``\\n\\n`` or ``\\n\\r\\n``), searching only the bytes that are new since the
   previous call, so feeding one byte at a time stays linear.
2. Everything up to that blank line is complete: it is decoded as UTF-8 in one
   go, with replacement. A blank line is ASCII, and UTF-8 resynchronises on ASCII,
   so decoding the batch equals decoding each message on its own, and a
   multibyte character split across two reads is decoded only once it is whole.
3. CRLF is folded to LF and the batch is split on blank lines. Each block
   becomes a :class:`Message` that knows only its text and its name.
4. A message parses its headers on the first ``get``/``getall``/``items``. A
   router reads the name of every message but the headers of only a few of them
   (most traffic on a busy PBX is ``CEL``, ``VarSet`` and ``Newexten``), so most
   messages are never parsed at all.

Legacy ``Response: Follows`` replies to ``Command`` (Asterisk 13 and older) carry
free text, possibly with blank lines, until ``--END COMMAND--``; batches that hold
one take a slower path that frames them by that marker. Their text is exposed as
``Output`` values, the same as the modern form.

Bounds: a line over 64 KiB or a message over 1 MiB raises :class:`AmiProtocolError`,
whether it is complete or still buffered, so the buffer never grows without limit.
After an error the codec stays failed (as h11 does): the connection must be
dropped. Messages completed before the error in the same ``feed`` travel on the
exception, so none is lost.

Content is parsed leniently, as Asterisk itself does: a line without a colon is
kept as a body line (``Message.body``) rather than failing the whole stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "AmiCodec",
    "AmiProtocolError",
    "Message",
    "encode_action",
    "encode_message",
]

MAX_LINE_BYTES: Final = 64 * 1024
MAX_MESSAGE_BYTES: Final = 1024 * 1024

_FOLLOWS_MARKER: Final = b"Response: Follows"
_END_COMMAND: Final = "--END COMMAND--"
_BLANK_LINE_RE: Final = re.compile(rb"\n\r?\n")
_BLANK_LINE_TEXT_RE: Final = re.compile(r"\n\r?\n")
_LEGACY_HEADER_KEYS: Final = frozenset({"response", "privilege", "actionid", "message"})


class AmiProtocolError(Exception):
    """The peer broke the AMI protocol: bad greeting, or a line or message over the limits.

    ``messages`` holds the messages that the failing ``feed`` call completed
    before it met the error, so the caller can still deliver them.
    """

    def __init__(self, reason: str, messages: Sequence[Message] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.messages: list[Message] = list(messages)


class Message:
    """One AMI message (Event, Response or Action), parsed on first access.

    ``name`` is the value of the first header (``Newchannel``, ``Success``,
    ``Originate``) and ``kind`` is ``"event"``, ``"response"``, ``"action"``, or
    ``""`` for a block whose first line is none of those. Header lookups ignore
    case; ``get`` returns the first value of a key and ``getall`` all of them in
    order. ``received`` is a ``time.perf_counter()`` stamp the client sets when
    the bytes arrived (0.0 if nobody did).
    """

    __slots__ = ("_first", "_lower", "_pairs", "_text", "kind", "name", "received")

    kind: str
    name: str
    received: float
    _text: str
    _pairs: list[tuple[str, str]] | None
    _first: dict[str, str] | None
    _lower: dict[str, str] | None

    def __init__(self, text: str) -> None:
        """Wrap one message's text (lines ended by CRLF or LF, no terminating blank line)."""
        self._text = text
        self._pairs = None
        self._first = None
        self._lower = None
        self.received = 0.0
        newline = text.find("\n")
        first = text if newline < 0 else text[:newline]
        if first and first[-1] == "\r":
            first = first[:-1]
        if first.startswith("Event: "):
            self.kind, self.name = "event", first[7:]
        elif first.startswith("Response: "):
            self.kind, self.name = "response", first[10:]
        else:
            self.kind, self.name = _classify_first_line(first)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Message:
        """Build a message from ``(key, value)`` pairs, as if it had been received."""
        pair_list = list(pairs)
        message = cls("\n".join(f"{key}: {value}" for key, value in pair_list))
        message._pairs = pair_list
        return message

    @property
    def text(self) -> str:
        """The message as received, without its terminating blank line."""
        return self._text

    def _parse(self) -> list[tuple[str, str]]:
        pairs = self._pairs
        if pairs is None:
            pairs = self._pairs = _parse_headers(self._text)
        return pairs

    def _first_values(self) -> dict[str, str]:
        first = self._first
        if first is None:
            pairs = self._parse()
            first = dict(pairs)
            if len(first) != len(pairs):
                first = dict(reversed(pairs))
            self._first = first
        return first

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (case-insensitive), or ``default``."""
        value = self._first_values().get(key)
        if value is not None:
            return value
        lower = self._lower
        if lower is None:
            lower = self._lower = {k.lower(): v for k, v in reversed(self._parse())}
        return lower.get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        """The first value of ``key``; ``KeyError`` if absent."""
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        """Whether the message has the header ``key`` (case-insensitive)."""
        return isinstance(key, str) and self.get(key) is not None

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in order of appearance."""
        wanted = key.lower()
        return [v for k, v in self._parse() if k == key or k.lower() == wanted]

    def items(self) -> list[tuple[str, str]]:
        """All ``(key, value)`` headers in order, repeats included."""
        return self._parse()

    def keys(self) -> list[str]:
        """All header keys in order, repeats included."""
        return [k for k, _ in self._parse()]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the header keys, as :meth:`keys`."""
        return iter(self.keys())

    def __len__(self) -> int:
        """The number of headers, repeats included."""
        return len(self._parse())

    @property
    def body(self) -> list[str]:
        """Lines that are not ``Key: Value`` headers (empty for well-formed messages)."""
        lines = self._text.replace("\r\n", "\n").split("\n")
        return [line for line in lines if ":" not in line]

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` header, if any."""
        return self.get("ActionID")

    @property
    def output(self) -> list[str]:
        """The text lines of a ``Command`` reply, in either the modern or the legacy form."""
        return self.getall("Output")

    def __eq__(self, other: object) -> bool:
        """Messages are equal when their headers (and body lines) are equal."""
        if not isinstance(other, Message):
            return NotImplemented
        return self.items() == other.items() and self.body == other.body

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """A short form: kind, name and ActionID."""
        action_id = self.action_id
        suffix = f" ActionID={action_id!r}" if action_id is not None else ""
        return f"<Message {self.kind or '?'} {self.name!r}{suffix}>"


def _parse_headers(text: str) -> list[tuple[str, str]]:
    """``Key: Value`` lines to pairs; a colon without the space is tolerated."""
    lines = text.split("\r\n")
    if len(lines) - 1 != text.count("\n"):
        lines = text.replace("\r\n", "\n").split("\n")
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    for line in lines:
        key, sep, value = line.partition(": ")
        if sep:
            append((key, value))
        elif ":" in line:
            key, _, value = line.partition(":")
            append((key, value))
    return pairs


def _classify_first_line(first: str) -> tuple[str, str]:
    key, sep, value = first.partition(":")
    if not sep:
        return "", ""
    key = key.strip().lower()
    value = value.strip()
    if key == "event":
        return "event", value
    if key == "response":
        return "response", value
    if key == "action":
        return "action", value
    return "", ""


class AmiCodec:
    """Incremental AMI parser: ``feed(bytes) -> list[Message]``.

    ``expect_greeting`` is true on the client side (Asterisk starts with its
    greeting line) and false on the server side (clients start with an action).
    """

    __slots__ = ("_buf", "_error", "_expect_greeting", "_scan_from", "greeting")

    def __init__(self, *, expect_greeting: bool = True) -> None:
        """Create a parser; see the class docstring for ``expect_greeting``."""
        self._buf = bytearray()
        self._scan_from = 0
        self._expect_greeting = expect_greeting
        self._error: AmiProtocolError | None = None
        self.greeting: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes and return every message they complete, in order."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        if self._expect_greeting and self.greeting is None and not self._take_greeting():
            return []
        return self._take_messages()

    def _fail(self, reason: str, messages: Sequence[Message] = ()) -> AmiProtocolError:
        self._error = AmiProtocolError(reason)
        return AmiProtocolError(reason, messages)

    def _take_greeting(self) -> bool:
        buf = self._buf
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > MAX_LINE_BYTES:
                raise self._fail(f"greeting line longer than {MAX_LINE_BYTES} bytes")
            return False
        line = bytes(buf[:newline]).decode("utf-8", "replace").rstrip("\r")
        if "Call Manager/" not in line:
            raise self._fail(f"unexpected greeting {line[:80]!r}: not an Asterisk Manager")
        self.greeting = line
        del buf[: newline + 1]
        return True

    def _take_messages(self) -> list[Message]:
        buf = self._buf
        start = max(self._scan_from - 2, 0)
        end = _last_blank_line_end(buf, start)
        if end < 0:
            self._scan_from = len(buf)
            self._check_incomplete()
            return []
        chunk = bytes(buf[:end])
        if _FOLLOWS_MARKER in chunk:
            return self._take_messages_legacy()
        del buf[:end]
        self._scan_from = 0
        messages = _split_messages(chunk.decode("utf-8", "replace"), self)
        self._check_incomplete(messages)
        return messages

    def _take_messages_legacy(self) -> list[Message]:
        """Slow path: frame message by message, since ``Follows`` bodies hold blank lines."""
        buf = self._buf
        messages: list[Message] = []
        pos = 0
        while True:
            match = _BLANK_LINE_RE.search(buf, pos)
            if match is None:
                break
            head = bytes(buf[pos : match.end()])
            if head.lstrip(b"\r\n").startswith(_FOLLOWS_MARKER):
                marker = buf.find(_END_COMMAND.encode(), pos)
                if marker < 0:
                    break
                end_match = _BLANK_LINE_RE.search(buf, marker)
                if end_match is None:
                    break
                text = bytes(buf[pos : end_match.end()]).decode("utf-8", "replace")
                messages.append(_legacy_follows(text))
                pos = end_match.end()
                continue
            messages.extend(_split_messages(head.decode("utf-8", "replace"), self, messages))
            pos = match.end()
        del buf[:pos]
        self._scan_from = 0
        self._check_incomplete(messages)
        return messages

    def _check_incomplete(self, messages: Sequence[Message] = ()) -> None:
        buf = self._buf
        size = len(buf)
        if size > MAX_MESSAGE_BYTES:
            raise self._fail(f"message longer than {MAX_MESSAGE_BYTES} bytes", messages)
        if size > MAX_LINE_BYTES and size - buf.rfind(b"\n") - 1 > MAX_LINE_BYTES:
            raise self._fail(f"line longer than {MAX_LINE_BYTES} bytes", messages)


def _last_blank_line_end(buf: bytearray, start: int) -> int:
    """Offset just past the last blank line at or after ``start``, or -1."""
    lf_crlf = buf.rfind(b"\n\r\n", start)
    lf_lf = buf.rfind(b"\n\n", max(start, lf_crlf))
    if lf_lf > lf_crlf:
        return lf_lf + 2
    return lf_crlf + 3 if lf_crlf >= 0 else -1


def _split_messages(text: str, codec: AmiCodec, done: Sequence[Message] = ()) -> list[Message]:
    """Split decoded complete text into messages, checking the size limits.

    Asterisk frames with CRLF, so the batch is split on CRLF CRLF; a block that
    still holds a blank line made with a bare LF is split again.
    """
    parts = text.split("\r\n\r\n") if "\r" in text else text.split("\n\n")
    messages: list[Message] = []
    append = messages.append
    for part in parts:
        if "\n\n" in part or "\n\r\n" in part:
            for sub in _BLANK_LINE_TEXT_RE.split(part):
                _append_part(sub, codec, done, messages)
            continue
        if not part or part[0] in "\r\n" or len(part) > MAX_LINE_BYTES // 4:
            _append_part(part, codec, done, messages)
            continue
        append(Message(part))
    return messages


def _append_part(
    part: str, codec: AmiCodec, done: Sequence[Message], messages: list[Message]
) -> None:
    """Strip stray line ends around one block, check its limits and keep it if not empty."""
    part = part.strip("\r\n")
    if not part:
        return
    if len(part) > MAX_LINE_BYTES // 4:
        _check_limits(part, codec, [*done, *messages])
    messages.append(Message(part))


def _check_limits(part: str, codec: AmiCodec, done: Sequence[Message]) -> None:
    if len(part.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise codec._fail(f"message longer than {MAX_MESSAGE_BYTES} bytes", done)
    lines = part.split("\n")
    if any(len(line.encode("utf-8", "replace")) > MAX_LINE_BYTES for line in lines):
        raise codec._fail(f"line longer than {MAX_LINE_BYTES} bytes", done)


def _legacy_follows(text: str) -> Message:
    """Normalise a legacy ``Response: Follows`` reply: header lines, then ``Output`` lines."""
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        key, sep, value = lines[index].partition(":")
        if not sep or key.strip().lower() not in _LEGACY_HEADER_KEYS:
            break
        pairs.append((key.strip(), value.strip()))
        index += 1
    for line in lines[index:]:
        if line.rstrip("\r") == _END_COMMAND:
            break
        pairs.append(("Output", line.rstrip("\r")))
    return Message.from_pairs(pairs)


def _check_token(kind: str, text: str) -> None:
    if "\r" in text or "\n" in text or "\x00" in text:
        raise ValueError(f"AMI {kind} {text!r} contains CR, LF or NUL: refused (header injection)")


def encode_message(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Serialise ``(key, value)`` headers as one CRLF-framed AMI message.

    Any key or value holding CR, LF or NUL is refused with ``ValueError``: it
    would let the value inject headers or whole actions into the PBX. Keys must
    be non-empty, without a colon or surrounding blanks.
    """
    pair_list = pairs if isinstance(pairs, list) else list(pairs)
    for key, _ in pair_list:
        if not key or ":" in key or key != key.strip():
            raise ValueError(f"invalid AMI header key {key!r}")
    text = "".join([f"{key}: {value}\r\n" for key, value in pair_list])
    count = len(pair_list)
    if text.count("\n") != count or text.count("\r") != count or "\x00" in text:
        for key, value in pair_list:
            _check_token("key", key)
            _check_token("value", value)
    return (text + "\r\n").encode("utf-8")


def encode_action(
    name: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    *,
    action_id: str | None = None,
) -> bytes:
    """Serialise an action: ``Action: name``, ``ActionID`` when given, then ``headers``.

    ``headers`` may be a mapping or a sequence of pairs; pairs allow repeated
    keys such as ``Variable``.
    """
    pairs: list[tuple[str, str]] = [("Action", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs.extend(items)
    return encode_message(pairs)
