"""The ``hotline`` command line as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import free_port, run_hotline

pytestmark = pytest.mark.integration


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_hotline(*args)


def test_bench_ami_parse_prints_one_json_line_per_parser_and_mode() -> None:
    result = run_cli("bench", "ami-parse", "--repeat", "2", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["parser"], r["mode"]) for r in records} == {
        (parser, mode)
        for parser in ("hotline", "panoramisk", "asterisk-ami")
        for mode in ("consumer", "full")
    }
    for record in records:
        assert record["messages"] == 2 * 2164
        assert record["msgs_per_s"] > 0
        assert record["trace"] == "queue_load.jsonl"
    hotline = [r for r in records if r["parser"] == "hotline"]
    assert all("vs_panoramisk" in r for r in hotline)


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def login(port: int, secret: str) -> str:
    """Connect (retrying while the sim starts), log in, and return what the sim answered."""
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polls: the sim process is still starting (a blocking client)
    with connection:
        reply = b""
        connection.sendall(
            f"Action: Login\r\nUsername: hotline\r\nSecret: {secret}\r\n\r\n".encode()
        )
        while b"FullyBooted" not in reply:
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
        connection.sendall(b"Action: Logoff\r\n\r\n")
    return reply.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sim_pbx_serves_a_login_and_exits_cleanly_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    port = free_port()
    ground_truth = tmp_path / "gt.jsonl"
    command = [sys.executable, "-m", "hotline", "sim-pbx", "--listen", f"127.0.0.1:{port}"]
    command += ["--scenario", "demo", "--ground-truth", str(ground_truth)]
    command += ["--time-scale", "50", "--secret", "s3cret"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reply = login(port, "s3cret")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert reply.startswith("Asterisk Call Manager/11.0.0\r\n")
    assert "Message: Authentication accepted" in reply
    assert process.returncode == 0, stderr
    assert f"listening on 127.0.0.1:{port}" in stderr
    lines = [json.loads(line) for line in ground_truth.read_text().splitlines()]
    assert lines[0]["type"] == "start"
    assert (lines[0]["scenario"], lines[0]["time_scale"]) == ("demo", 50.0)
    assert lines[-1]["type"] == "end"


def test_sim_pbx_with_a_broken_scenario_exits_2_naming_file_key_and_problem(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[[agents]]\ndevice = "PJSIP/1001"\nbusy = 2\n')
    result = run_cli("sim-pbx", "--scenario", str(broken), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert f"{broken}: agents[0].busy: must be between 0.0 and 1.0, got 2" in result.stderr
    assert "Traceback" not in result.stderr
