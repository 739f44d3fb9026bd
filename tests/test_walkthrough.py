"""The README's "Run it against your Asterisk" walk-through, with ``hotline sim-pbx`` standing
in for Asterisk: the shipped sample config, ``hotline migrate``, the first admin, ``hotline
serve``, an agent logged in, and one call answered."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_serve import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "config" / "hotline.toml"
SECRET = "walkthrough-secret"
TOKEN = "walkthrough-token"
PASSWORD = "a long walk through"


def _run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _answered(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hotline_calls_total" and sample.labels.get("outcome") == "answered"
    )


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr


def _wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _request(
    url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URL
        url, data=data, method="POST" if data is not None or headers else "GET",
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status: int = response.status
            return status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.timeout(300)
def test_the_walkthrough_answers_a_call_with_the_sample_config(
    tmp_path: Path, database_url: str
) -> None:
    ami_port, http_port = free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env = {
        **clean,
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_AMI_URL": f"ami://hotline@127.0.0.1:{ami_port}?events=call,agent,user,dialplan,system",
        "HOTLINE_AMI_SECRET": SECRET,
        "HOTLINE_API_TOKEN": TOKEN,
        "HOTLINE_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "HOTLINE_STATE_DIR": str(tmp_path / "var"),
    }
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotline",
            "sim-pbx",
            "--listen",
            f"127.0.0.1:{ami_port}",
            "--scenario",
            "sample",
            "--secret",
            SECRET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )
    serve: subprocess.Popen[str] | None = None
    try:
        _wait_listening(ami_port)
        migrated = _run("migrate", "--config", str(SAMPLE), env=env)
        assert migrated.returncode == 0, migrated.stderr
        assert "applied 0001_initial.sql" in migrated.stdout
        admin = _run(
            "users", "add", "--config", str(SAMPLE), "--role", "admin", "--username", "root",
            env=env, stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert admin.returncode == 0, admin.stderr
        serve = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--config", str(SAMPLE)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        _wait_listening(http_port)
        base = f"http://127.0.0.1:{http_port}"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        login = _request(f"{base}/api/login", {"username": "root", "password": PASSWORD})
        assert login[0] == 200, login
        deadline = time.monotonic() + 60
        agent = _request(f"{base}/api/agents/1001/login", headers=bearer)
        while agent[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.25)  # the agent API answers once the engine has synced with the PBX
            agent = _request(f"{base}/api/agents/1001/login", headers=bearer)
        assert agent[0] == 200, agent
        answered = 0.0
        deadline = time.monotonic() + 120
        while answered < 1 and time.monotonic() < deadline:
            time.sleep(0.25)
            answered = _answered(_request(f"{base}/metrics")[1])
        assert answered >= 1
    finally:
        if serve is not None:
            status, serve_err = _stop(serve)
        sim_status, sim_err = _stop(sim)
    assert status == 0, serve_err
    assert sim_status == 0, sim_err
