"""The command line's first-hour polish: --version, global options after the sub-command,
a validated --log-level, the sim's default secret in its help, ``report`` defaulting to
today, and ``serve`` refusing to start without a database unless told to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hotline.sim.amiserver import ServerCredentials

pytestmark = pytest.mark.integration

CONFIG = """
[service]
time_zone = "Asia/Shanghai"
state_dir = "{state}"
{database}
[[queues]]
name = "support"

[[agents]]
id = "1001"
device = "PJSIP/1001"
queues = ["support"]
"""


def _hotline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
        check=False,
    )


def _config(tmp_path: Path, database: str = "", extra: str = "") -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(
        CONFIG.format(database=database, state=tmp_path / "var") + extra, encoding="utf-8"
    )
    return path


def test_version_prints_the_package_version() -> None:
    result = _hotline("--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("hotline ")
    assert result.stdout.split()[1][0].isdigit()


def test_global_options_are_accepted_after_the_sub_command_and_validated(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    after = _hotline("report", "--config", missing, "--period", "day", "--log-level", "debug")
    assert after.returncode == 2
    assert "file not found" in after.stderr
    # In subprocesses: main() configures the process-wide logging.
    assert _hotline("users", "list", "--config", missing, "--log-json").returncode == 2
    late = _hotline("serve", "--config", missing, "--log-level", "loud")
    assert late.returncode == 2
    assert "--log-level: must be one of" in late.stderr
    bad = _hotline("--log-level", "loud", "serve", "--config", missing)
    assert bad.returncode == 2
    assert "--log-level: must be one of DEBUG, INFO, WARNING, ERROR, got 'loud'" in bad.stderr


def test_sim_pbx_help_names_its_default_secret() -> None:
    result = _hotline("sim-pbx", "--help")
    assert result.returncode == 0
    assert repr(ServerCredentials().secret) in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["serve", "report", "demo"])
def test_help_has_a_description_and_examples(command: str) -> None:
    result = _hotline(command, "--help")
    assert result.returncode == 0
    usage, _, rest = result.stdout.partition("\n\n")
    assert usage.startswith(f"usage: hotline {command}")
    assert rest.strip()
    assert not rest.startswith("options:")
    assert f"examples:\n  hotline {command}" in result.stdout


def test_report_without_dates_covers_today_in_the_configured_zone(
    tmp_path: Path, migrated_database_url: str
) -> None:
    config = _config(tmp_path, f'[database]\nurl = "{migrated_database_url}"\n')
    before = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    result = _hotline("report", "--config", str(config), "--period", "day")
    after = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["from"] == report["to"]
    assert report["from"] in {before, after}


def test_serve_refuses_to_start_without_a_database_unless_told(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = _hotline("serve", "--config", str(config))
    assert result.returncode == 2
    assert "no database configured" in result.stderr
    assert "--without-database" in result.stderr
    migrating = _config(tmp_path, "[database]\nmigrate_on_start = true\n")
    refused = _hotline("serve", "--config", str(migrating), "--without-database")
    assert refused.returncode == 2
    assert "migrate_on_start = true needs a database" in refused.stderr
