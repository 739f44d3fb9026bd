"""Long-running tasks end when cancelled: no ``asyncio.wait_for`` in the service.

On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives just as the
awaited work completes (CPython gh-86296, fixed in 3.12 by rebuilding it on
``asyncio.timeout``). A task that loops around it then never ends: the store's reconciler
did exactly that under load, and the service's shutdown (``await reconciler``) hung while
the loop went on reconciling. ``async with asyncio.timeout(...)`` runs in the caller's own
task, so a cancellation always reaches it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hotline

pytestmark = pytest.mark.unit

PACKAGE = Path(hotline.__file__).parent


def wait_for_calls(source: str) -> list[int]:
    """The lines of ``source`` that call ``asyncio.wait_for`` (or a bare imported ``wait_for``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "wait_for":
            lines.append(node.lineno)
    return lines


def test_the_detector_finds_a_wait_for() -> None:
    source = "import asyncio\nasync def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n"
    assert wait_for_calls(source) == [3]
    assert (
        wait_for_calls("async def f(e):\n    async with asyncio.timeout(1):\n        pass\n") == []
    )


def test_the_service_uses_asyncio_timeout_not_wait_for() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := wait_for_calls(path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"use `async with asyncio.timeout(...)` instead: {found}"
