"""structlog setup: JSON lines in production, pretty console in development, numbers masked.

Per-call context (``call_id``, ``agent``, ``ticket``) is bound with
``structlog.contextvars`` by the engine around the lines it logs about an effect
(see :mod:`hotline.engine`), and ``merge_contextvars`` merges
whatever is bound into every line.

Every line is structlog's: the standard library's records (aiohttp's access log,
asyncio, asyncpg...) go through :class:`structlog.stdlib.ProcessorFormatter`,
so with JSON on they are JSON lines too (``event`` is the formatted message,
``logger`` the stdlib logger's name), masked like the rest.

Phone numbers are masked wherever they stand: alone, inside a channel name
(``Local/13900139000@x``), written with spaces or dashes (``139 2574 2721``,
``139-2574-2721``, ``+86 139 2574 2721``), glued to letters (``tel13925742721``)
or dots (``13925742721.``). A run of 7 to 15 digits (groups after the first of
at least three digits, separated by one space or dash) keeps its first three and
last two digits: ``139******21``. Left alone: ticket numbers (``T20261126-A0001``),
decimals such as Uniqueids (``1795712164.12``) and dates (``2026-12-01``: its
groups are too short).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

__all__ = [
    "MaskPhoneNumbers",
    "configure_logging",
    "mask_phone_numbers",
    "mask_text",
    "stdlib_handler",
]

_PHONE: Final = re.compile(
    r"(?P<keep>T\d{8}-\w+|\d+\.\d+)"  # a ticket number, a decimal (Uniqueid): left alone
    r"|(?P<phone>(?<!\d)(?:\+\d{1,3}[ -]?)?\d{2,}(?:[ -]\d{3,})*)"
)
_MIN_DIGITS: Final = 7
_MAX_DIGITS: Final = 15
_ENCODED_PLUS: Final = re.compile(r"%2[Bb](?=\d)")
"""A URL-encoded ``+`` before digits (``?q=%2B8613900139000``), read as ``+`` for masking."""
_ENCODED_SPACE: Final = re.compile(r"(?<=\d)(?:%20|\+)(?=\d)")
"""A URL-encoded space between digits (``?q=139%202574%202721``, ``139+2574``), read as a
space for masking."""
_PHONE_KEYS: Final = frozenset(
    {"caller", "caller_number", "callerid", "calleridnum", "number", "phone", "customer_number"}
)


def _mask_match(match: re.Match[str]) -> str:
    text = match.group()
    if match.group("keep") is not None:
        return text
    digits = sum(char.isdigit() for char in text)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS:
        return text
    out: list[str] = []
    seen = 0
    for char in text:
        if char.isdigit():
            out.append(char if seen < 3 or seen >= digits - 2 else "*")
            seen += 1
        else:
            out.append(char)
    return "".join(out)


def mask_text(text: str) -> str:
    """Mask the middle digits of every phone-number-like run in ``text`` (see the module
    docstring)."""
    return _PHONE.sub(_mask_match, text)


def _mask_value(value: object) -> object:
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_phone_numbers(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers in every string value of the event."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            masked = mask_text(value)
            if key.lower() in _PHONE_KEYS and masked == value and len(value) > 4:
                masked = "*" * (len(value) - 4) + value[-4:]
            event_dict[key] = masked
        elif isinstance(value, list | tuple):
            event_dict[key] = type(value)(_mask_value(item) for item in value)
    return event_dict


class MaskPhoneNumbers(logging.Filter):
    """stdlib logging filter: mask phone numbers in the formatted message (aiohttp's access
    log writes request lines such as ``GET /api/customers?q=13900139000``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its masked text; never drops a record."""
        message = record.getMessage()
        masked = mask_text(_ENCODED_SPACE.sub(" ", _ENCODED_PLUS.sub("+", message)))
        if masked != message:
            record.msg, record.args = masked, None
        return True


def stdlib_handler(renderer: Any, stream: Any = None) -> logging.Handler:
    """A stdlib handler that writes each record as one structlog line (masked, with level,
    time and logger name) rendered by ``renderer``."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(MaskPhoneNumbers())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                mask_phone_numbers,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    return handler


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog (and stdlib logging) once, at process start.

    ``json`` defaults to True when stderr is not a terminal (containers, CI).
    """
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_phone_numbers,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, handlers=[stdlib_handler(renderer)], force=True)
