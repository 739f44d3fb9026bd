"""A string that never shows itself in ``repr``, ``str`` or logs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["Secret"]


class Secret:
    """Holds a secret value; ``repr``/``str`` print ``'**********'``; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap ``value``."""
        self._value = value

    @classmethod
    def from_file(cls, path: str | Path) -> Secret:
        """Read a secret from a file (Docker/Kubernetes secrets), trailing newline removed."""
        return cls(Path(path).read_text(encoding="utf-8").rstrip("\r\n"))

    def reveal(self) -> str:
        """The secret value itself. Call it only where the value is sent or hashed."""
        return self._value

    def __bool__(self) -> bool:
        """True when the secret is not empty."""
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        """Secrets compare by value."""
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        """Hash by value, so settings holding a secret stay hashable."""
        return hash(self._value)

    def __repr__(self) -> str:
        """Never the value."""
        return "Secret('**********')"

    __str__ = __repr__
