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
from importlib import metadata

from hotline.log import configure_logging

__all__ = ["COMMAND_MODULES", "LOG_LEVELS", "build_parser", "main"]

COMMAND_MODULES = [
    "hotline.serve",
    "hotline.bench.cli",
    "hotline.store.cli",
    "hotline.reports.cli",
    "hotline.web.users_cli",
    "hotline.sim.cli",
    "hotline.demo",
    "hotline.ivr.cli",
]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
"""The values ``--log-level`` accepts (any case)."""


def _version() -> str:
    try:
        return metadata.version("hotline")
    except metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "unknown"


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--log-level", type=_log_level, default=default, help="DEBUG, INFO, WARNING or ERROR"
    )
    parser.add_argument("--log-json", action="store_true", default=default, help="JSON log lines")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command's parser below ``parser``, at any depth."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_subparsers(child)]
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command.

    ``--log-level`` and ``--log-json`` are accepted before or after the sub-command.
    """
    parser = argparse.ArgumentParser(prog="hotline", description="Call-center backend for Asterisk")
    parser.add_argument("--version", action="version", version=f"hotline {_version()}")
    _add_global_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    for child in _subparsers(parser):
        # SUPPRESS: given after the sub-command they override, else the top level's stand.
        _add_global_options(child, argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    args.log_level = args.log_level or "INFO"
    configure_logging(json=args.log_json, level=args.log_level)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
