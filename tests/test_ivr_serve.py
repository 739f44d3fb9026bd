"""``hotline serve`` with ``[agi] enabled``: FastAGI on its port, SIGHUP reloads, bad flows."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from pathlib import Path

import pytest

from hotline.config import ConfigError, parse_settings
from hotline.sim.agi import AgiCallResult, run_agi
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario
from tests.test_serve import (
    SECRET,
    finish,
    free_port,
    plain_lines,
    start_serve,
    wait_listening,
    write_config,
)

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parent.parent / "ivr_flows"
LIMIT = 60.0


def _flow(queue: str) -> str:
    return (
        "start: hello\nnodes:\n"
        "  hello: {type: play, prompt: welcome, next: route}\n"
        f"  route: {{type: set, queue: {queue}, next: done}}\n"
        "  done: {type: end}\n"
    )


def _config(tmp_path: Path, flows: Path, http_port: int, agi_port: int, ami_port: int) -> Path:
    config = write_config(tmp_path / "hotline.toml", http_port=http_port, ami_port=ami_port)
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'[agi]\nenabled = true\nlisten = "127.0.0.1:{agi_port}"\nflows = "{flows}"\n',
        encoding="utf-8",
    )
    return config


async def _session(port: int) -> AgiCallResult:
    return await run_agi(
        "127.0.0.1",
        port,
        channel="Local/13700137000@callers-00000047;1",
        uniqueid="1795712399.147",
        callerid="13700137000",
    )


def test_agi_settings_are_parsed_and_checked() -> None:
    """[agi] keys land in Settings.agi; a bad listen address names the key."""
    base = {
        "queues": [{"name": "support"}],
        "agents": [{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
    }
    settings = parse_settings(
        {**base, "agi": {"enabled": True, "listen": "0.0.0.0:4573", "max_sessions": 5}}, env={}
    )
    assert (settings.agi.enabled, settings.agi.listen, settings.agi.max_sessions) == (
        True,
        "0.0.0.0:4573",
        5,
    )
    assert parse_settings(base, env={}).agi.enabled is False
    with pytest.raises(ConfigError, match=r"^x\.toml: agi\.listen: must be HOST:PORT, got '4573'$"):
        parse_settings({**base, "agi": {"listen": "4573"}}, source="x.toml", env={})


async def test_serve_answers_fastagi_and_sighup_reloads_only_good_flows(tmp_path: Path) -> None:
    """A session runs the flow; SIGHUP with a broken flow keeps it; a good one replaces it."""
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(SHIPPED / "prompts.yaml", flows / "prompts.yaml")
    (flows / "main.yaml").write_text(_flow("repair"), encoding="utf-8")
    sim = SimPbx(Scenario(name="serve-ivr"), credentials=ServerCredentials("hotline", SECRET))
    await sim.start()
    http_port, agi_port = free_port(), free_port()
    config = _config(tmp_path, flows, http_port, agi_port, sim.port)
    try:
        process = await start_serve(config)
        try:
            await wait_listening(agi_port)
            first = await _session(agi_port)
            assert first.variables["HOTLINE_QUEUE"] == "repair"

            (flows / "main.yaml").write_text("start: a\nnodes: {a: {type: warp}}\n", "utf-8")
            process.send_signal(signal.SIGHUP)
            # The broken main.yaml keeps the whole set out; the last good main serves.
            second = await _session(agi_port)
            assert second.variables["HOTLINE_QUEUE"] == "repair"

            (flows / "main.yaml").write_text(_flow("complaint"), encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            async with asyncio.timeout(LIMIT):
                # Polling: the condition is the other process' reload.
                while (await _session(agi_port)).variables.get("HOTLINE_QUEUE") != "complaint":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            stderr = await finish(process)
    finally:
        await sim.close()
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "ivr.reload_failed"]
    assert len(failed) == 1
    assert failed[0]["problems"] == [f"{flows / 'main.yaml'}: node a: unknown node type 'warp'"]
    assert any(e["event"] == "ivr.reloaded" for e in events)


async def test_invalid_flows_at_start_exit_2_naming_file_and_node(tmp_path: Path) -> None:
    """Flows that do not validate stop the start with status 2 and the problem lines."""
    flows = tmp_path / "flows"
    shutil.copytree(SHIPPED, flows)
    (flows / "main.yaml").write_text("start: a\nnodes: {a: {type: goto, target: b}}\n", "utf-8")
    sim = SimPbx(Scenario(name="serve-ivr-bad"), credentials=ServerCredentials("hotline", SECRET))
    await sim.start()
    try:
        config = _config(tmp_path, flows, free_port(), free_port(), sim.port)
        process = await start_serve(config)
        stderr = await finish(process)
    finally:
        await sim.close()
    assert process.returncode == 2, stderr
    assert plain_lines(stderr) == [
        "hotline: invalid IVR flows ([agi] flows):",
        f"{flows / 'main.yaml'}: node a: goes to 'b', which is no node",
    ]
