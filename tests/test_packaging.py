"""The package as a user installs it: the wheel carries the migrations and scenarios, and
the installed ``hotline migrate`` with the shipped sample config finds its migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this tree, as `pip install .` would build it."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = folder.glob("hotline-*.whl")
    return built


def test_the_wheel_ships_the_migrations_and_the_bundled_scenarios(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {path.name for path in (ROOT / "hotline" / "migrations").glob("*.sql")}
    assert shipped
    assert {f"hotline/migrations/{name}" for name in shipped} <= names
    assert {"hotline/sim/scenarios/balanced.toml", "hotline/sim/scenarios/demo.toml"} <= names


@pytest.mark.timeout(600)
def test_an_installed_migrate_with_the_sample_config_applies_every_migration(
    wheel: Path, tmp_path: Path, database_url: str
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "HOTLINE_DATABASE_URL": database_url}
    where = subprocess.run(
        [sys.executable, "-c", "import hotline; print(hotline.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(target))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "migrate",
            "--config",
            str(ROOT / "config" / "hotline.toml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    shipped = sorted(path.name for path in (ROOT / "hotline" / "migrations").glob("*.sql"))
    assert result.stdout.split() == [word for name in shipped for word in ("applied", name)]
