"""``hotline sim-pbx``: run the simulated PBX standalone until SIGINT or SIGTERM.

    hotline sim-pbx --listen 127.0.0.1:5038 --scenario demo \\
        [--ground-truth gt.jsonl] [--time-scale 10] [--username hotline --secret ...]

``--scenario`` is a TOML file or the name of a bundled scenario (``demo``,
``load``). The scenario's callers start dialling at once; clients can also
originate calls. The secret defaults to ``$HOTLINE_SIM_SECRET``, then to the
sim's documented default. A bad scenario exits with status 2 and one line
naming the file, the key and the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from hotline.clock import ScaledClock
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.scenario import ScenarioError, load_scenario

__all__ = ["register"]


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _sim_pbx(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"hotline sim-pbx: {exc}", file=sys.stderr)
        return 2
    host, port = args.listen
    secret = args.secret or os.environ.get("HOTLINE_SIM_SECRET") or ServerCredentials().secret
    credentials = ServerCredentials(args.username, secret)
    scale = args.time_scale or scenario.time_scale
    return asyncio.run(
        _serve(scenario, host, port, scale, credentials, args.ground_truth, args.write_timeout)
    )


async def _serve(
    scenario: Any,
    host: str,
    port: int,
    scale: float,
    credentials: ServerCredentials,
    ground_truth: str | None,
    write_timeout: float,
) -> int:
    from hotline.sim.pbx import SimPbx

    sim = SimPbx(
        scenario,
        clock=ScaledClock(scale),
        credentials=credentials,
        ground_truth_path=ground_truth,
        keep_ground_truth=False,
        write_timeout=write_timeout,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await sim.start(host, port)
    except OSError as exc:
        print(f"hotline sim-pbx: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"hotline sim-pbx: listening on {host}:{sim.port} (time scale {scale})", file=sys.stderr)
    sim.start_arrivals()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await sim.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def register(commands: Any) -> None:
    """Add ``sim-pbx``."""
    parser = commands.add_parser(
        "sim-pbx", help="the simulated Asterisk PBX (AMI server driven by a call scenario)"
    )
    parser.add_argument(
        "--listen", type=_listen_address, default=("127.0.0.1", 5038), help="HOST:PORT to listen on"
    )
    parser.add_argument(
        "--scenario",
        required=True,
        help="scenario TOML file, or a bundled name (balanced, demo, load, sample)",
    )
    parser.add_argument("--ground-truth", help="write the ground truth to this JSONL file")
    parser.add_argument(
        "--time-scale", type=_positive, help="clock speed-up (default: the scenario's)"
    )
    parser.add_argument("--username", default="hotline", help="AMI username (default: hotline)")
    parser.add_argument(
        "--secret",
        help=f"AMI secret (default: $HOTLINE_SIM_SECRET, else {ServerCredentials().secret!r})",
    )
    parser.add_argument(
        "--write-timeout",
        type=_positive,
        default=2.0,
        help="seconds a client may stop reading before it is disconnected (default: 2)",
    )
    parser.set_defaults(handler=_sim_pbx)
