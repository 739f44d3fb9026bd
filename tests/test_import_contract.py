"""The import contract: the pure domain loads no I/O, framework or adapter module.

``hotline.domain`` is pure by construction, not by convention: importing every one
of its submodules, in a fresh interpreter, must not load asyncio, ssl, socket,
structlog, aiohttp, asyncpg or redis, nor any ``hotline.ami``, ``hotline.store``
or ``hotline.web`` module (directly or through another module). Storage
(``hotline.store``) loads no web framework: no aiohttp, no ``hotline.web`` module.
A fresh interpreter is needed because this test process has imported them all already.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import hotline.domain
import hotline.store

pytestmark = pytest.mark.unit

FORBIDDEN_PACKAGES = (
    "asyncio",
    "ssl",
    "socket",
    "structlog",
    "aiohttp",
    "asyncpg",
    "redis",
    "hotline.ami",
    "hotline.store",
    "hotline.web",
)

_PROBE = """
import importlib, json, sys
modules = json.loads(sys.argv[1])
forbidden = tuple(json.loads(sys.argv[2]))
loaded_by = {module: "interpreter start" for module in sys.modules}
for name in modules:
    loaded = set(sys.modules)
    importlib.import_module(name)
    for new in set(sys.modules) - loaded:
        loaded_by[new] = name
offenders = {
    module: loaded_by.get(module, "?")
    for module in sys.modules
    if any(module == f or module.startswith(f + ".") for f in forbidden)
}
print(json.dumps(offenders))
"""


def domain_modules() -> list[str]:
    """``hotline.domain`` and every module below it, found on disk (new ones count too)."""
    root = Path(hotline.domain.__file__).parent
    names = ["hotline.domain"]
    for info in pkgutil.walk_packages([str(root)], prefix="hotline.domain."):
        names.append(info.name)
    return names


def test_the_domain_package_has_the_submodules_the_contract_covers() -> None:
    """The walk finds the domain's modules (an empty walk would pass vacuously)."""
    names = domain_modules()
    for expected in ("model", "routing", "events", "effects", "sla", "settings"):
        assert f"hotline.domain.{expected}" in names


def test_importing_the_domain_loads_no_io_framework_or_adapter_module() -> None:
    """A fresh interpreter imports every domain module; no forbidden module gets loaded."""
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _PROBE,
            json.dumps(domain_modules()),
            json.dumps(FORBIDDEN_PACKAGES),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(hotline.domain.__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    offenders: dict[str, str] = json.loads(result.stdout)
    if offenders:
        pytest.fail(f"hotline.domain loaded forbidden modules:\n{describe(offenders)}")


STORE_FORBIDDEN_PACKAGES = ("aiohttp", "hotline.web")


def store_modules() -> list[str]:
    """``hotline.store`` and every module below it, found on disk."""
    root = Path(hotline.store.__file__).parent
    names = ["hotline.store"]
    names += [info.name for info in pkgutil.walk_packages([str(root)], prefix="hotline.store.")]
    return names


def test_importing_the_store_loads_no_web_framework() -> None:
    """A fresh interpreter imports every storage module; neither aiohttp nor the web layer
    gets loaded (the composition root, not the store, knows the web application)."""
    assert "hotline.store.resources" in store_modules()
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _PROBE,
            json.dumps(store_modules()),
            json.dumps(STORE_FORBIDDEN_PACKAGES),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(hotline.store.__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    offenders: dict[str, str] = json.loads(result.stdout)
    if offenders:
        pytest.fail(
            "hotline.store loaded forbidden modules:\n"
            + describe(offenders, STORE_FORBIDDEN_PACKAGES)
        )


def describe(offenders: dict[str, str], packages: tuple[str, ...] = FORBIDDEN_PACKAGES) -> str:
    """One line per forbidden package: how many of its modules, and which domain import did it."""
    lines = []
    for package in packages:
        hits = sorted(m for m in offenders if m == package or m.startswith(package + "."))
        if hits:
            via = sorted({offenders[m] for m in hits})
            lines.append(
                f"  {package} ({len(hits)} module(s): {', '.join(hits[:3])}"
                f"{', ...' if len(hits) > 3 else ''}) loaded by importing {', '.join(via)}"
            )
    return "\n".join(lines)
