"""structlog setup: JSON lines in production, pretty console in development, numbers masked.

Per-call context (``call_id``, ``agent``, ``ticket``) is bound with
``structlog.contextvars`` by the engine around the lines it logs about an effect
(see :mod:`hotline.engine`), and ``merge_contextvars`` merges
whatever is bound into every line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

__all__ = ["MaskPhoneNumbers", "configure_logging", "mask_phone_numbers", "mask_text"]

# A run of 7 to 15 digits standing alone or inside a channel name (``Local/13900139000@x``),
# but not part of a word (a ticket like T20261126-0001) or a decimal (a Uniqueid 1795712164.0).
_PHONE: Final = re.compile(r"(?<![\w.])(\+?\d{3})(\d{2,10})(\d{2})(?![\w.]|\.\d)")
_ENCODED_PLUS: Final = re.compile(r"%2[Bb](?=\d)")
"""A URL-encoded ``+`` before digits (``?q=%2B8613900139000``), read as ``+`` for masking."""
_PHONE_KEYS: Final = frozenset(
    {"caller", "caller_number", "callerid", "calleridnum", "number", "phone", "customer_number"}
)


def mask_text(text: str) -> str:
    """Mask the middle digits of every phone-number-like run in ``text``."""
    return _PHONE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


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
        masked = mask_text(_ENCODED_PLUS.sub("+", message))
        if masked != message:
            record.msg, record.args = masked, None
        return True


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
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskPhoneNumbers())
    logging.basicConfig(level=numeric, format="%(name)s %(message)s", handlers=[handler])
