"""docker-compose runs a second site's pair (docker-compose.site2.yml over
docker-compose.yml): validated by ``docker-compose config``; the Asterisk entrypoint's
systemname and FastAGI host for a second PBX, dry-run on a stock config."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline.config import load_settings
from tests.test_deploy_artifacts import (
    COMPOSE,
    COMPOSE_TEST_ENV,
    ENTRYPOINT,
    ROOT,
    FakeEtc,
    fake_etc,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.integration

OVERLAY = ROOT / "docker-compose.site2.yml"
STOCK_ASTERISK_CONF = "[directories](!)\nastetcdir => /etc/asterisk\n\n[options]\n;systemname = x\n"


def _compose(
    tmp_path: Path, env: Mapping[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml -f docker-compose.site2.yml config EXTRA``."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    files = ["-f", str(COMPOSE), "-f", str(OVERLAY)]
    command = [binary, "--project-directory", str(ROOT), "--env-file", str(env_file)]
    return subprocess.run(
        [*command, *files, "config", *extra],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        timeout=120,
        check=False,
    )


def _merged(tmp_path: Path) -> Any:
    """The merged document, as docker-compose prints it."""
    result = _compose(tmp_path, COMPOSE_TEST_ENV)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_overlay_runs_a_second_sites_pair_on_the_shared_database(tmp_path: Path) -> None:
    services = _merged(tmp_path)["services"]
    site1 = [services["hotline"], services["hotline-standby"]]
    site2 = [services["hotline-site2"], services["hotline-site2-standby"]]
    env = [service["environment"] for service in (*site1, *site2)]
    assert [e["HOTLINE_PBX_ID"] for e in env] == ["site1", "site1", "site2", "site2"]
    assert len({e["HOTLINE_INSTANCE"] for e in env}) == 4  # every instance its own letter
    for key in ("HOTLINE_DATABASE_URL", "HOTLINE_REDIS_URL"):
        assert len({e[key] for e in env}) == 1  # one database, one Redis for the centre
    assert {e["HOTLINE_AMI_URL"] for e in env[2:]} == {"ami://hotline@asterisk-site2:5038"}
    assert env[0]["HOTLINE_AMI_URL"] == "ami://hotline@asterisk:5038"
    volumes = [tuple(map(str, service["volumes"])) for service in (*site1, *site2)]
    assert len(set(volumes)) == 4  # each its own state directory
    assert all("site2.toml" in str(v) for v in services["hotline-site2"]["volumes"][:1])
    published = [p for service in services.values() for p in service.get("ports", [])]
    hosts = [str(p.get("published")) for p in published if isinstance(p, dict)]
    assert len(hosts) == len(set(hosts))  # no host port published twice
    assert {"8082", "8083"} <= set(hosts)
    for service in site2:
        assert service["healthcheck"] == services["hotline"]["healthcheck"]  # /ready
        assert service["restart"] == "unless-stopped"  # fenced: exits 5, comes back
    pbx1, pbx2 = services["asterisk"]["environment"], services["asterisk-site2"]["environment"]
    assert pbx1["ASTERISK_SYSTEMNAME"] != pbx2["ASTERISK_SYSTEMNAME"]  # Uniqueids apart
    assert pbx2["HOTLINE_BACKEND"] == "hotline-site2"  # its FastAGI goes to its own pair
    prometheus = " ".join(map(str, services["prometheus"]["volumes"]))
    assert "prometheus.site2.yml" in prometheus
    assert "monitoring/prometheus.yml:" not in prometheus  # replaced, not mounted twice


def test_the_overlay_refuses_to_run_without_the_database_password(tmp_path: Path) -> None:
    env = {k: v for k, v in COMPOSE_TEST_ENV.items() if k != "HOTLINE_DB_PASSWORD"}
    result = _compose(tmp_path, env, "-q")
    assert result.returncode != 0
    assert "set HOTLINE_DB_PASSWORD in .env" in result.stderr


def test_the_second_sites_configuration_has_agent_ids_of_its_own() -> None:
    site1 = load_settings(ROOT / "config" / "hotline.toml")
    site2 = load_settings(ROOT / "config" / "hotline-site2.toml")
    assert site2.agents
    assert not set(site1.agents) & set(site2.agents)
    assert set(site2.queues) == set(site1.queues)


def test_the_second_prometheus_file_is_the_first_plus_site_2() -> None:
    first = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text(encoding="utf-8"))
    second = yaml.safe_load(
        (ROOT / "monitoring" / "prometheus.site2.yml").read_text(encoding="utf-8")
    )
    hotline = next(job for job in second["scrape_configs"] if job["job_name"] == "hotline")
    site2 = {"targets": ["hotline-site2:8080", "hotline-site2-standby:8080"]}
    assert hotline["static_configs"][-1] == site2
    hotline["static_configs"].pop()
    assert second == first


def _entrypoint(etc: FakeEtc, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "true"],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ASTERISK_ETC": str(etc.etc),
            "HOTLINE_AMI_SECRET_FILE": str(etc.secret_file),
            **env,
        },
        timeout=60,
        check=False,
    )


def test_the_entrypoint_sets_the_systemname_and_the_fastagi_host(
    fake_etc: FakeEtc,  # noqa: F811 - the fixture imported above
) -> None:
    (fake_etc.etc / "asterisk.conf").write_text(STOCK_ASTERISK_CONF, encoding="utf-8")
    for _ in range(2):  # a restarted container: nothing is added twice
        result = _entrypoint(fake_etc, ASTERISK_SYSTEMNAME="site2", HOTLINE_BACKEND="hotline-site2")
        assert result.returncode == 0, result.stderr
    asterisk_conf = (fake_etc.etc / "asterisk.conf").read_text(encoding="utf-8")
    assert asterisk_conf.count("#tryinclude hotline-asterisk-local.conf") == 1
    local = (fake_etc.etc / "hotline-asterisk-local.conf").read_text(encoding="utf-8")
    assert "[options](+)\nsystemname = site2\n" in local
    lines = (fake_etc.etc / "extensions.conf").read_text(encoding="utf-8").splitlines()
    at = lines.index("#include hotline/extensions_globals.conf")
    # After the Hotline globals, still in [globals]: the later assignment wins.
    assert lines[at + 1] == "HOTLINE_BACKEND=hotline-site2 ; set by compose-entrypoint.sh"
    assert sum(line.startswith("HOTLINE_BACKEND=") for line in lines) == 1


def test_the_entrypoint_refuses_a_systemname_that_is_not_a_plain_name(
    fake_etc: FakeEtc,  # noqa: F811 - the fixture imported above
) -> None:
    (fake_etc.etc / "asterisk.conf").write_text(STOCK_ASTERISK_CONF, encoding="utf-8")
    result = _entrypoint(fake_etc, ASTERISK_SYSTEMNAME="site2\nrunuser = root")
    assert result.returncode == 1
    assert "ASTERISK_SYSTEMNAME must use only" in result.stderr
    assert not (fake_etc.etc / "hotline-asterisk-local.conf").exists()


def test_without_the_variables_the_entrypoint_leaves_asterisk_conf_alone(
    fake_etc: FakeEtc,  # noqa: F811 - the fixture imported above
) -> None:
    (fake_etc.etc / "asterisk.conf").write_text(STOCK_ASTERISK_CONF, encoding="utf-8")
    assert _entrypoint(fake_etc).returncode == 0
    assert (fake_etc.etc / "asterisk.conf").read_text(encoding="utf-8") == STOCK_ASTERISK_CONF
