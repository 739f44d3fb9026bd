"""Request validation that writes its own JSON Schema.

Theory of operation
-------------------
Every JSON API operation declares its path parameters, query parameters and
body with the types of this module. The same objects do two jobs:

- :meth:`Type.parse` (a JSON value) and :meth:`Type.parse_text` (a query or path
  string) turn input into Python values, or raise :class:`Invalid` with a message
  for that one field;
- :meth:`Type.json_schema` describes exactly what ``parse`` accepts, and
  :mod:`hotline.web.openapi` builds the OpenAPI document from it, so the document
  cannot drift from what the server accepts.

The rules are strict on purpose (docs/ARCHITECTURE.md §7, "bad input"): unknown body
fields and unknown or repeated query parameters are errors; every string is
bounded and may not hold NUL or unpaired surrogates (PostgreSQL cannot store
them); integers are bounded to what the columns hold; times need a UTC offset
and a year from 1900 to 9999. So malformed input is a 422 naming the field, and
never reaches the database as something it would refuse with a 5xx.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from multidict import MultiMapping

__all__ = [
    "Array",
    "Boolean",
    "DateTime",
    "Integer",
    "Invalid",
    "Object",
    "Text",
    "Type",
    "ValidationFailed",
    "check_text",
    "parse_query",
]

_INT_DIGITS: Final = re.compile(r"[+-]?[0-9]{1,19}")
_EARLIEST: Final = 1900
_LATEST: Final = 9999


class Invalid(ValueError):
    """One value is not acceptable; the message says why."""


class ValidationFailed(ValueError):
    """Several fields are not acceptable: ``fields`` maps each name to its problem."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        """Collect the per-field messages."""
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = dict(fields)


class Type(ABC):
    """A value the API accepts: parsed from JSON or from text, and described as JSON Schema."""

    nullable: bool = False
    description: str = ""

    def parse(self, value: Any) -> Any:
        """The Python value of a JSON ``value``; raises :class:`Invalid`."""
        if value is None:
            if self.nullable:
                return None
            raise Invalid("may not be null")
        return self._parse(value)

    @abstractmethod
    def _parse(self, value: Any) -> Any: ...

    def parse_text(self, text: str) -> Any:
        """The Python value of a query or path parameter; raises :class:`Invalid`."""
        return self.parse(text)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3.0 dialect) of what :meth:`parse` accepts."""
        schema = self._schema()
        if self.nullable:
            schema["nullable"] = True
        if self.description:
            schema["description"] = self.description
        return schema

    @abstractmethod
    def _schema(self) -> dict[str, Any]: ...


def check_text(value: str) -> None:
    """Refuse what PostgreSQL's ``text`` cannot store: NUL and unpaired surrogates."""
    if "\x00" in value:
        raise Invalid("may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid("is not valid Unicode text") from exc


@dataclass(frozen=True, slots=True)
class Text(Type):
    """A string of at most ``max_length`` characters; ``single_line`` refuses control
    characters; ``pattern`` (a regular expression) and ``enum`` restrict it further."""

    max_length: int = 200
    min_length: int = 0
    single_line: bool = False
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    nullable: bool = False
    description: str = ""
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Compile the pattern once."""
        if self.pattern is not None:
            object.__setattr__(self, "_regex", re.compile(self.pattern))

    def _parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        check_text(value)
        if self.enum is not None and value not in self.enum:
            raise Invalid(f"must be one of {', '.join(self.enum)}")
        if len(value) > self.max_length:
            raise Invalid(f"must be at most {self.max_length} characters")
        if len(value) < self.min_length:
            raise Invalid(f"must be at least {self.min_length} characters")
        if self.single_line and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise Invalid("may not contain control characters or line breaks")
        if self._regex is not None and not self._regex.fullmatch(value):
            raise Invalid(f"must match {self.pattern}")
        return value

    def _schema(self) -> dict[str, Any]:
        if self.enum is not None:
            return {"type": "string", "enum": list(self.enum)}
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        elif self.single_line:
            schema["pattern"] = "^[^\\u0000-\\u001f\\u007f]*$"
        return schema


@dataclass(frozen=True, slots=True)
class Integer(Type):
    """An integer from ``minimum`` to ``maximum`` (booleans and floats are refused)."""

    minimum: int = 0
    maximum: int = 2**31 - 1
    nullable: bool = False
    description: str = ""

    def _parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise Invalid(f"must be from {self.minimum} to {self.maximum}")
        return value

    def parse_text(self, text: str) -> int:
        """Decimal digits, optionally signed."""
        if not _INT_DIGITS.fullmatch(text):
            raise Invalid("must be an integer")
        number: int = self.parse(int(text))
        return number

    def _schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, slots=True)
class Boolean(Type):
    """``true`` or ``false`` (in a query: the words ``true`` and ``false``)."""

    nullable: bool = False
    description: str = ""

    def _parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("must be true or false")
        return value

    def parse_text(self, text: str) -> bool:
        """``true`` or ``false``."""
        if text not in ("true", "false"):
            raise Invalid("must be true or false")
        return text == "true"

    def _schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True)
class DateTime(Type):
    """An RFC 3339 time with a UTC offset, e.g. ``2026-03-01T09:30:00+08:00``."""

    nullable: bool = False
    description: str = ""

    def _parse(self, value: Any) -> datetime:
        if not isinstance(value, str):
            raise Invalid("must be an RFC 3339 date-time string")
        check_text(value)
        if len(value) > 40:
            raise Invalid("must be an RFC 3339 date-time string")
        try:
            moment = datetime.fromisoformat(value.upper())
        except ValueError as exc:
            raise Invalid("must be an RFC 3339 date-time, e.g. 2026-03-01T09:30:00Z") from exc
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise Invalid("needs a UTC offset, e.g. Z or +08:00")
        if not _EARLIEST <= moment.year <= _LATEST - 1:
            raise Invalid(f"year must be from {_EARLIEST} to {_LATEST - 1}")
        return moment

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "maxLength": 40}


@dataclass(frozen=True, slots=True)
class Array(Type):
    """A list of ``items``, at most ``max_items`` long; ``unique`` refuses duplicates."""

    items: Type
    max_items: int = 20
    unique: bool = True
    nullable: bool = False
    description: str = ""

    def _parse(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid("must be an array")
        if len(value) > self.max_items:
            raise Invalid(f"must have at most {self.max_items} items")
        parsed: list[Any] = []
        for index, item in enumerate(value):
            try:
                parsed.append(self.items.parse(item))
            except Invalid as exc:
                raise Invalid(f"item {index} {exc}") from exc
        if self.unique and len(set(parsed)) != len(parsed):
            raise Invalid("may not have duplicates")
        return parsed

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "array",
            "items": self.items.json_schema(),
            "maxItems": self.max_items,
        }
        if self.unique:
            schema["uniqueItems"] = True
        return schema


@dataclass(frozen=True, slots=True)
class Object(Type):
    """A JSON object with the named ``fields``; ``required`` must be present, others may be.

    Unknown keys are errors. ``min_properties`` makes an empty change an error.
    """

    fields: Mapping[str, Type]
    required: frozenset[str] = frozenset()
    min_properties: int = 0
    nullable: bool = False
    description: str = ""

    def _parse(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationFailed({"body": "must be a JSON object"})
        problems: dict[str, str] = {}
        parsed: dict[str, Any] = {}
        for name, item in value.items():
            kind = self.fields.get(name)
            if kind is None:
                problems[str(name)[:64]] = "unknown field"
                continue
            try:
                parsed[name] = kind.parse(item)
            except Invalid as exc:
                problems[name] = str(exc)
        for name in sorted(self.required - set(value)):
            problems[name] = "is required"
        if not problems and len(parsed) < self.min_properties:
            problems["body"] = f"must have at least {self.min_properties} field"
        if problems:
            raise ValidationFailed(problems)
        return parsed

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: kind.json_schema() for name, kind in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = sorted(self.required)
        if self.min_properties:
            schema["minProperties"] = self.min_properties
        return schema


def parse_query(
    params: Mapping[str, Type],
    query: MultiMapping[str],
    required: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The query parameters ``params`` parsed from ``query``; unknown, repeated or missing
    ``required`` parameters are errors (raises :class:`ValidationFailed`)."""
    problems = dict.fromkeys(required - set(query.keys()), "is required")
    parsed: dict[str, Any] = {}
    for name in set(query.keys()):
        kind = params.get(name)
        label = name[:64]
        if kind is None:
            problems[label] = "unknown query parameter"
            continue
        values = query.getall(name)
        if len(values) > 1:
            problems[label] = "given more than once"
            continue
        try:
            parsed[name] = kind.parse_text(values[0])
        except Invalid as exc:
            problems[label] = str(exc)
    if problems:
        raise ValidationFailed(problems)
    return parsed
