"""The ``hotline`` command line: one sub-command per entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hotline.log import configure_logging

__all__ = ["build_parser", "main"]


def _bench_ami_parse(args: argparse.Namespace) -> int:
    from hotline.bench import ami_parse

    modes = ["consumer", "full"] if args.mode == "both" else [args.mode]
    ami_parse.run(args.trace, args.repeat, modes, rounds=args.rounds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = commands.add_parser("bench", help="benchmarks that print JSON lines")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    ami_parse = benches.add_parser(
        "ami-parse", help="AMI codec against panoramisk and asterisk-ami on the same bytes"
    )
    ami_parse.add_argument("--trace", help="trace file (default: queue_load.jsonl)")
    ami_parse.add_argument("--repeat", type=int, help="stream repetitions (default: ≥100k msgs)")
    ami_parse.add_argument("--mode", choices=["consumer", "full", "both"], default="both")
    ami_parse.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    ami_parse.set_defaults(handler=_bench_ami_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
