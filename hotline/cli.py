"""The ``hotline`` command line. Each feature registers its own sub-commands.

A command module exposes ``register(commands)``, which adds its sub-parsers to the
``argparse`` sub-parser group and sets ``handler`` (a function of the parsed
arguments returning an exit status) as their default. To add a command, write
such a module and list it in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hotline.log import configure_logging

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES = [
    "hotline.service",
    "hotline.bench.cli",
    "hotline.store.cli",
    "hotline.reports.cli",
    "hotline.web.users_cli",
    "hotline.sim.cli",
    "hotline.ivr.cli",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="hotline", description="Call-center backend for Asterisk")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
