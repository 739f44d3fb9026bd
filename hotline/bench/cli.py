"""``hotline bench ...``: the benchmark sub-commands."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register"]


def _ami_parse(args: argparse.Namespace) -> int:
    from hotline.bench import ami_parse

    modes = ["consumer", "full"] if args.mode == "both" else [args.mode]
    ami_parse.run(args.trace, args.repeat, modes, rounds=args.rounds)
    return 0


def _routing(args: argparse.Namespace) -> int:
    from hotline.bench import routing

    routing.run(iterations=args.iterations, pipeline_calls=args.pipeline_calls)
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from hotline.bench import scrape

    scrape.run(renders=args.renders, reference_renders=args.reference_renders)
    return 0


def _sim(args: argparse.Namespace) -> int:
    from hotline.bench import sim

    modes = {"both": [True, False], "on": [True], "off": [False]}[args.noise]
    sim.run(args.scenario, args.time_scale, modes, args.timeout)
    return 0


def _e2e(args: argparse.Namespace) -> int:
    from hotline.bench import e2e

    e2e.run(calls=args.calls, time_scale=args.time_scale, noise=not args.no_noise)
    return 0


def _report(args: argparse.Namespace) -> int:
    import os

    from hotline.bench import report

    dsn = (
        args.database_url
        or os.environ.get("HOTLINE_DATABASE_URL")
        or os.environ.get("HOTLINE_TEST_DATABASE_URL")
    )
    if not dsn:
        print("hotline bench report: --database-url or HOTLINE_DATABASE_URL is required")
        return 2
    report.run(dsn=dsn, calls=args.calls, rounds=args.rounds)
    return 0


def _failover(args: argparse.Namespace) -> int:
    from hotline.bench import failover

    dsn = args.database_url or os.environ.get("HOTLINE_DATABASE_URL", "")
    if not dsn:
        print("hotline bench failover: --database-url (or HOTLINE_DATABASE_URL) is needed")
        return 2
    failover.run(dsn, args.calls, args.agents, args.kills, args.every, args.lease_ttl)
    return 0


def _live(args: argparse.Namespace) -> int:
    from hotline.bench import live

    dsn = args.database_url or os.environ.get("HOTLINE_DATABASE_URL", "")
    if not dsn:
        print("hotline bench live: --database-url (or HOTLINE_DATABASE_URL) is needed")
        return 2
    live.run(dsn, args.calls, args.time_scale, args.panels, args.wallboards, args.logged_in)
    return 0


def register(commands: Any) -> None:
    """Add ``bench`` and its sub-commands."""
    bench = commands.add_parser("bench", help="benchmarks that print JSON lines")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    ami_parse = benches.add_parser(
        "ami-parse", help="AMI codec against panoramisk and asterisk-ami on the same bytes"
    )
    ami_parse.add_argument("--trace", help="trace file (default: queue_load.jsonl)")
    ami_parse.add_argument("--repeat", type=int, help="stream repetitions (default: ≥100k msgs)")
    ami_parse.add_argument("--mode", choices=["consumer", "full", "both"], default="both")
    ami_parse.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    ami_parse.set_defaults(handler=_ami_parse)
    routing = benches.add_parser(
        "routing", help="decision latency with 500 agents, 50 queues, 1,000 waiting callers"
    )
    routing.add_argument("--iterations", type=int, default=5000, help="decisions timed per kind")
    routing.add_argument(
        "--pipeline-calls", type=int, default=1000, help="sim calls recorded for the replay"
    )
    routing.set_defaults(handler=_routing)
    metrics = benches.add_parser(
        "metrics", help="/metrics render time with 500 agents x 50 queues, against generate_latest"
    )
    metrics.add_argument("--renders", type=int, default=300, help="timed renders")
    metrics.add_argument("--reference-renders", type=int, default=30, help="of generate_latest")
    metrics.set_defaults(handler=_metrics)
    e2e = benches.add_parser(
        "e2e", help="the service against the simulated PBX: latency, events/s, RSS"
    )
    e2e.add_argument("--calls", type=int, default=3000, help="callers in all (default 3000)")
    e2e.add_argument("--time-scale", type=float, default=20.0, help="clock speed-up")
    e2e.add_argument("--no-noise", action="store_true", help="no CEL/VarSet/Newexten")
    e2e.set_defaults(handler=_e2e)
    failover = benches.add_parser(
        "failover", help="kill -9 the active of a pair during a burst: takeover time, losses"
    )
    failover.add_argument(
        "--database-url", help="PostgreSQL server (a database is made and dropped on it)"
    )
    failover.add_argument("--calls", type=int, default=300, help="callers in all")
    failover.add_argument("--agents", type=int, default=50, help="agents logged in")
    failover.add_argument("--kills", type=int, default=3, help="kill -9 of the active, N times")
    failover.add_argument("--every", type=float, default=8.0, help="seconds between kills")
    failover.add_argument("--lease-ttl", type=float, default=3.0, help="[service] lease_ttl")
    failover.set_defaults(handler=_failover)
    live = benches.add_parser(
        "live", help="agent panels and wallboards on the live feed during the e2e load"
    )
    live.add_argument(
        "--database-url", help="PostgreSQL server (a database is made and dropped on it)"
    )
    live.add_argument("--calls", type=int, default=2000, help="callers in all (burst: half)")
    live.add_argument("--time-scale", type=float, default=20.0, help="clock speed-up")
    live.add_argument("--panels", type=int, default=500, help="agent panels connected")
    live.add_argument("--wallboards", type=int, default=20, help="supervisor wallboards")
    live.add_argument(
        "--logged-in", type=int, default=1_000_000, help="agents logged in (default: all)"
    )
    live.set_defaults(handler=_live)
    sim = benches.add_parser("sim", help="events/s the simulated PBX emits under load")
    sim.add_argument("--scenario", default="load", help="scenario file or bundled name")
    sim.add_argument("--time-scale", type=float, default=100.0, help="clock speed-up")
    sim.add_argument("--noise", choices=["both", "on", "off"], default="both")
    sim.add_argument("--timeout", type=float, default=600.0, help="give up after (wall seconds)")
    sim.set_defaults(handler=_sim)
    report = benches.add_parser(
        "report", help="the month report over --calls synthetic calls loaded with COPY, per format"
    )
    report.add_argument("--calls", type=int, default=1_000_000, help="calls in the month")
    report.add_argument("--rounds", type=int, default=2, help="timed runs per format, best kept")
    report.add_argument(
        "--database-url", help="a server to create the throw-away database on (its user may)"
    )
    report.set_defaults(handler=_report)
