"""The ``hotline`` command line. Each feature registers its own sub-commands.

A command module exposes ``register(commands)``, which adds its sub-parsers to the
``argparse`` sub-parser group and sets ``handler`` (a function of the parsed
arguments returning an exit status) as their default. To add a command, write
such a module and list it in :data:`COMMAND_MODULES`.

Every command's ``--help`` ends with an ``examples:`` section: a module gives its
own in the parser's ``epilog`` (starting with ``examples:``), else
:data:`EXAMPLES` holds them, by the command's words after ``hotline``. A command
without a description gets its one-line ``help`` as one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from hotline.log import configure_logging

__all__ = ["COMMAND_MODULES", "EXAMPLES", "LOG_LEVELS", "build_parser", "main"]

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


EXAMPLES: dict[str, tuple[str, ...]] = {
    "bench": ("hotline bench ami-parse", "hotline bench e2e --calls 500"),
    "bench ami-parse": (
        "hotline bench ami-parse",
        "hotline bench ami-parse --mode consumer --rounds 5",
    ),
    "bench routing": ("hotline bench routing", "hotline bench routing --iterations 20000"),
    "bench metrics": ("hotline bench metrics", "hotline bench metrics --renders 1000"),
    "bench e2e": ("hotline bench e2e", "hotline bench e2e --calls 2000 --time-scale 20"),
    "bench failover": (
        "hotline bench failover --database-url postgresql://postgres@127.0.0.1/bench",
        "hotline bench failover --database-url postgresql://postgres@127.0.0.1/bench --kills 5",
    ),
    "bench sim": ("hotline bench sim", "hotline bench sim --scenario load --noise off"),
    "bench live": (
        "hotline bench live --database-url postgresql://postgres@127.0.0.1/test",
        "hotline bench live --calls 200 --panels 50 --wallboards 5",
    ),
    "bench report": (
        "hotline bench report --database-url postgresql://postgres@127.0.0.1/bench",
        "hotline bench report --calls 100000 --rounds 3 "
        "--database-url postgresql://postgres@127.0.0.1/bench",
    ),
    "migrate": (
        "hotline migrate --config /etc/hotline/hotline.toml",
        "hotline migrate --config hotline.toml --dir ./hotline/migrations",
    ),
    "queue-log": (
        "hotline queue-log --config hotline.toml --from 2026-03-01 --to 2026-03-31 --out march.log",
        "hotline queue-log --config hotline.toml --from 2026-03-01 --to 2026-03-01 "
        "--append /var/log/asterisk/queue_log",
    ),
    "users add": (
        "hotline users add --config hotline.toml --username alice --role agent --agent-id 1001",
        "hotline users add --config hotline.toml --username sam --role supervisor "
        "--queues support,repair --password-file sam.pw",
    ),
    "users list": ("hotline users list --config hotline.toml",),
    "users passwd": (
        "hotline users passwd --config hotline.toml --username alice",
        "hotline users passwd --config hotline.toml --username alice --password-file alice.pw",
    ),
    "users disable": ("hotline users disable --config hotline.toml --username alice",),
    "users enable": ("hotline users enable --config hotline.toml --username alice",),
    "sim-pbx": (
        "hotline sim-pbx --scenario demo",
        "hotline sim-pbx --listen 127.0.0.1:5039 --scenario balanced --time-scale 4 "
        "--ground-truth truth.jsonl",
    ),
    "ivr": ("hotline ivr check ivr_flows", "hotline ivr prompts ivr_flows --out prompts"),
    "ivr check": ("hotline ivr check", "hotline ivr check /etc/hotline/ivr_flows"),
    "ivr prompts": (
        "hotline ivr prompts --out prompts",
        "hotline ivr prompts /etc/hotline/ivr_flows --out /var/lib/asterisk/sounds/hotline",
    ),
}
"""Examples for the commands whose module gives none, by command (the words after
``hotline``); a module's own ``examples:`` epilog wins."""

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


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line ``help`` of each sub-command of ``parser``, by its ``prog``."""
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                helps[child.prog] = choice.help or ""
                helps.update(_helps(child))
    return helps


def _document(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command a description and an ``examples:`` epilog."""
    helps = _helps(parser)
    for child in _subparsers(parser):
        if not child.description and helps.get(child.prog):
            child.description = helps[child.prog][:1].upper() + helps[child.prog][1:] + "."
        if (child.epilog or "").startswith("examples:"):
            continue
        command = child.prog.removeprefix(f"{parser.prog} ")
        examples = EXAMPLES.get(command)
        if examples:
            child.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
            if child.formatter_class is argparse.HelpFormatter:
                child.formatter_class = argparse.RawDescriptionHelpFormatter


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
    _document(parser)
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
