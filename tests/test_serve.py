"""``hotline serve`` as an operator runs it: a real subprocess, its signals and exit statuses.

The service is pointed at a simulated PBX started here (or at a closed port), with
no database, so each test shows one exit path: SIGTERM and SIGINT stop it with
status 0 once it has connected; a taken HTTP port, a refused AMI login and an
invalid file each end it at once with one line on stderr and their status.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario

pytestmark = pytest.mark.integration

SECRET = "serve-test-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(path: Path, *, http_port: int, ami_port: int, secret: str = SECRET) -> Path:
    path.write_text(
        "[service]\n"
        f'http_listen = "127.0.0.1:{http_port}"\n'
        'state_dir = ":memory:"\n'
        "[ami]\n"
        f'url = "ami://hotline:{secret}@127.0.0.1:{ami_port}"\n'
        '[[queues]]\nname = "support"\n'
        '[[agents]]\nid = "2001"\ndevice = "Local/2001@agents"\nqueues = ["support"]\n',
        encoding="utf-8",
    )
    return path


def environment() -> dict[str, str]:
    """This environment without HOTLINE_* (they would override the file)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}


async def start_serve(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotline",
        "serve",
        "--config",
        str(config),
        "--without-database",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 60.0) -> str:
    """Wait for the process to exit (killing it past ``timeout``); its stderr."""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        raise AssertionError(f"hotline serve did not exit: {stderr.decode()[-2000:]}") from None
    return stderr.decode()


def plain_lines(stderr: str) -> list[str]:
    """The stderr lines that are not JSON log records: what the operator is told."""
    lines = []
    for line in stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            lines.append(line)
    return lines


async def wait_logged_in(sim: SimPbx, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        # Polling: the condition is another process' login, seen by the sim.
        while not any(session.authenticated for session in sim.server.sessions):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def wait_listening(port: int, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_exits_0_on_sigterm_and_sigint(tmp_path: Path, signum: signal.Signals) -> None:
    sim = SimPbx(Scenario(name="serve"), credentials=ServerCredentials("hotline", SECRET))
    await sim.start()
    http_port = free_port()
    config = write_config(tmp_path / "hotline.toml", http_port=http_port, ami_port=sim.port)
    try:
        process = await start_serve(config)
        try:
            await wait_logged_in(sim)
            await wait_listening(http_port)
        except BaseException:
            process.kill()
            await process.communicate()
            raise
        process.send_signal(signum)
        stderr = await finish(process)
    finally:
        await sim.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert plain_lines(stderr) == []
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert "service.listening" in events
    assert events.index("service.stopping") > events.index("service.listening")


async def test_serve_exits_0_on_sigterm_while_the_pbx_is_unreachable(tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(tmp_path / "hotline.toml", http_port=http_port, ami_port=free_port())
    process = await start_serve(config)
    try:
        await wait_listening(http_port)
    except BaseException:
        process.kill()
        await process.communicate()
        raise
    process.send_signal(signal.SIGTERM)
    stderr = await finish(process)
    assert process.returncode == 0, stderr
    assert plain_lines(stderr) == []
    assert "Traceback" not in stderr


async def test_a_taken_http_port_is_one_line_and_status_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        config = write_config(tmp_path / "hotline.toml", http_port=http_port, ami_port=free_port())
        process = await start_serve(config)
        stderr = await finish(process)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert plain_lines(stderr) == [
        f"hotline: cannot listen on 127.0.0.1:{http_port} (service.http_listen): "
        "Address already in use"
    ]


async def test_a_refused_ami_login_is_one_line_and_status_3(tmp_path: Path) -> None:
    sim = SimPbx(Scenario(name="serve"), credentials=ServerCredentials("hotline", SECRET))
    sim.server.auth_failure_delay = 0.0
    await sim.start()
    config = write_config(
        tmp_path / "hotline.toml", http_port=free_port(), ami_port=sim.port, secret="wrong"
    )
    try:
        process = await start_serve(config)
        stderr = await finish(process)
    finally:
        await sim.close()
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    (line,) = plain_lines(stderr)
    assert line.startswith("hotline: AMI login as 'hotline' refused: ")
    assert "wrong" not in line


async def test_an_invalid_config_is_one_line_and_status_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "hotline.toml", http_port=free_port(), ami_port=free_port())
    config.write_text(config.read_text(encoding="utf-8") + "[nonsense]\n", encoding="utf-8")
    process = await start_serve(config)
    stderr = await finish(process)
    assert process.returncode == 2, stderr
    (line,) = plain_lines(stderr)
    assert line.startswith(f"hotline: invalid configuration: {config}")
    assert "nonsense" in line
