"""The ``hotline`` command line as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
