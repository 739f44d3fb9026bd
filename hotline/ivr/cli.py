"""``hotline ivr check [PATH]`` and ``hotline ivr prompts [PATH] --out DIR``.

``check`` validates a flow directory (default ``ivr_flows``) and prints each
problem as ``file: node X: problem``; exit status 0 when valid, 1 when not.
``prompts`` renders every prompt of ``prompts.yaml`` with espeak-ng to
``DIR/<language>/<id>.wav`` (8 kHz mono 16-bit, what Asterisk's ``wav`` format
plays); exit status 1 when a prompt cannot be rendered, 2 when espeak-ng is missing.
"""

from __future__ import annotations

import argparse
import array
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any, Final

from hotline.ivr.flow import FlowError, load_flows, load_prompts

__all__ = ["ESPEAK_VOICES", "register", "render_prompts", "resample_to_8k"]

ESPEAK_VOICES: Final = {"zh": "cmn", "en": "en"}
"""espeak-ng voice per prompt language (any other language is passed as is)."""
EXIT_INVALID: Final = 1
EXIT_NO_ESPEAK: Final = 2


def _check(args: argparse.Namespace) -> int:
    try:
        flows = load_flows(args.path)
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"hotline: {len(exc.problems)} problem(s) in {args.path}", file=sys.stderr)
        return EXIT_INVALID
    nodes = sum(len(flow.nodes) for flow in flows.flows.values())
    print(
        f"{args.path}: {len(flows.flows)} flow(s) ({', '.join(sorted(flows.flows))}), "
        f"{nodes} nodes, {len(flows.prompts)} prompts: ok"
    )
    return 0


def resample_to_8k(source: Path, target: Path) -> None:
    """Write ``source`` (16-bit mono WAV at any rate) as 8 kHz 16-bit mono ``target``."""
    with wave.open(str(source), "rb") as reader:
        if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise ValueError(f"{source}: expected 16-bit mono audio")
        rate = reader.getframerate()
        samples = array.array("h", reader.readframes(reader.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    count = len(samples) * 8000 // rate
    out = array.array("h", bytes(2 * count))
    for index in range(count):
        position = index * rate / 8000
        low = int(position)
        high = min(low + 1, len(samples) - 1)
        fraction = position - low
        out[index] = int(samples[low] * (1 - fraction) + samples[high] * fraction)
    if sys.byteorder == "big":
        out.byteswap()
    with wave.open(str(target), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(out.tobytes())


def render_prompts(prompts_file: Path, out: Path, espeak: str) -> list[str]:
    """Render every prompt; returns the problems (an empty list when all rendered)."""
    problems: list[str] = []
    prompts = load_prompts(prompts_file, problems)
    if problems:
        return problems
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.wav"
        for prompt, texts in sorted(prompts.items()):
            for language, text in sorted(texts.items()):
                target = out / language / f"{prompt}.wav"
                target.parent.mkdir(parents=True, exist_ok=True)
                voice = ESPEAK_VOICES.get(language, language)
                done = subprocess.run(  # noqa: S603 - an argument list, no shell
                    [espeak, "-v", voice, "-w", str(raw), text],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    problems.append(f"{prompt} ({language}): espeak-ng: {done.stderr.strip()}")
                    continue
                resample_to_8k(raw, target)
    return problems


def _prompts(args: argparse.Namespace) -> int:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("hotline: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return EXIT_NO_ESPEAK
    problems = render_prompts(Path(args.path) / "prompts.yaml", Path(args.out), espeak)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_INVALID
    print(f"prompts rendered to {args.out}/<language>/<id>.wav")
    return 0


def register(commands: Any) -> None:
    """Add ``ivr check`` and ``ivr prompts``."""
    ivr = commands.add_parser("ivr", help="IVR flows: check them, render their prompts")
    sub = ivr.add_subparsers(dest="ivr_command", required=True, metavar="IVR_COMMAND")
    check = sub.add_parser("check", help="validate a flow directory")
    check.add_argument("path", nargs="?", default="ivr_flows", help="flow directory")
    check.set_defaults(handler=_check)
    prompts = sub.add_parser("prompts", help="render the prompts with espeak-ng")
    prompts.add_argument("path", nargs="?", default="ivr_flows", help="flow directory")
    prompts.add_argument("--out", required=True, help="output directory (Asterisk sounds/hotline)")
    prompts.set_defaults(handler=_prompts)
