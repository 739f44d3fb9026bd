"""Every ``hotline`` command's ``--help`` has a description and an ``examples:`` section,
and every example is a command line the parser accepts, for that very command."""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex

import pytest

from hotline.cli import EXAMPLES, _subparsers, build_parser

pytestmark = pytest.mark.unit


def _commands() -> list[argparse.ArgumentParser]:
    return _subparsers(build_parser())


def _words(parser: argparse.ArgumentParser) -> list[str]:
    return parser.prog.split()[1:]


def _examples(help_text: str) -> list[str]:
    _, found, rest = help_text.partition("\nexamples:\n")
    assert found, help_text
    lines = []
    for line in rest.splitlines():
        if not line.startswith("  "):
            break
        lines.append(line.strip())
    return lines


def test_every_command_is_covered() -> None:
    commands = {" ".join(_words(parser)) for parser in _commands()}
    # The commands of this checkout, at the time of writing; new ones are covered below.
    assert {
        "serve",
        "migrate",
        "demo",
        "report",
        "users passwd",
        "sim-pbx",
        "ivr check",
        "bench e2e",
    } <= commands
    assert set(EXAMPLES) <= commands  # no examples for a command that does not exist


@pytest.mark.parametrize("parser", _commands(), ids=lambda p: " ".join(_words(p)))
def test_help_has_a_description_and_examples_that_parse(parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: {parser.prog}")
    assert parser.description, parser.prog
    assert not rest.startswith(("options:", "positional arguments:"))
    examples = _examples(text)
    assert examples, parser.prog
    words = _words(parser)
    for example in examples:
        argv = shlex.split(example)
        assert argv[0] == "hotline", example
        assert argv[1 : 1 + len(words)] == words, example
        fresh = build_parser()
        with contextlib.redirect_stderr(io.StringIO()) as errors:
            try:
                args = fresh.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{example!r} does not parse: {errors.getvalue()}")
        assert callable(args.handler), example


def test_the_examples_section_is_what_hotline_cmd_help_prints() -> None:
    parser = build_parser()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        parser.parse_args(["users", "passwd", "--help"])
    assert exit_.value.code == 0
    assert "examples:\n  hotline users passwd --config hotline.toml --username alice" in (
        out.getvalue()
    )
