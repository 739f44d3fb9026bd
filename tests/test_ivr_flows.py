"""IVR flows: the shipped ones validate, broken ones are named, reload keeps the last good set."""

from __future__ import annotations

import shutil
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.cli import build_parser
from hotline.ivr.cli import render_prompts
from hotline.ivr.flow import FlowError, load_flows
from hotline.ivr.runner import FlowHolder

pytestmark = pytest.mark.integration


def main(argv: list[str]) -> int:
    """Run one ``hotline`` command without reconfiguring logging (as the CLI's main does)."""
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


SHIPPED = Path(__file__).resolve().parent.parent / "ivr_flows"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(SHIPPED, target)
    return target


def test_the_shipped_flows_validate(capsys: pytest.CaptureFixture[str]) -> None:
    """main and survey load; `hotline ivr check` says ok and exits 0."""
    flows = load_flows(SHIPPED)
    assert set(flows.flows) == {"main", "survey"}
    main_flow = flows.flows["main"]
    assert main_flow.nodes["menu"].options == {
        "1": "repair",
        "2": "complaint",
        "3": "enquiry",
        "0": "operator",
    }
    assert (
        main_flow.nodes["emergency"].spec["priority"]
        > main_flow.nodes["repair_normal"].spec["priority"]
    )
    for texts in flows.prompts.values():
        assert set(texts) == {"zh", "en"}
    assert main(["ivr", "check", str(SHIPPED)]) == 0
    assert "ok" in capsys.readouterr().out


BROKEN = {
    "unknown node type": (
        "welcome: {type: play, prompt: welcome, next: done}\n  done: {type: dance}\n",
        "node done: unknown node type 'dance'",
    ),
    "dangling goto": (
        "welcome: {type: play, prompt: welcome, next: nowhere}\n",
        "node welcome: goes to 'nowhere', which is no node",
    ),
    "menu without options": (
        "welcome: {type: menu, prompt: welcome, options: {}}\n",
        "node welcome: a menu needs at least one option",
    ),
    "unreachable node": (
        "welcome: {type: end}\n  orphan: {type: hangup}\n",
        "node orphan: unreachable from start 'welcome'",
    ),
    "missing prompt": (
        "welcome: {type: play, prompt: no_such_prompt, next: done}\n  done: {type: end}\n",
        "node welcome: prompt 'no_such_prompt' is not in the prompt list",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_each_broken_flow_is_rejected_naming_file_and_node(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The problem names the file and the node; `hotline ivr check` exits 1."""
    flows = _copy(tmp_path)
    nodes, problem = BROKEN[kind]
    broken = flows / "broken.yaml"
    broken.write_text(f"start: welcome\nnodes:\n  {nodes}", encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flows(flows)
    assert caught.value.problems == [f"{broken}: {problem}"]
    assert main(["ivr", "check", str(flows)]) == 1
    assert f"{broken}: {problem}" in capsys.readouterr().err


def test_invalid_yaml_is_rejected_naming_the_file(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the position."""
    flows = _copy(tmp_path)
    (flows / "main.yaml").write_text("start: [unclosed\nnodes: {}\n", encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flows(flows)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{flows / 'main.yaml'}: invalid YAML:")
    assert "line" in problem


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    """The safe loader refuses Python object tags: an invalid-YAML problem, nothing run."""
    flows = _copy(tmp_path)
    (flows / "main.yaml").write_text(
        "start: !!python/object/apply:os.system ['touch pwned']\nnodes: {}\n", encoding="utf-8"
    )
    with pytest.raises(FlowError, match="invalid YAML"):
        load_flows(flows)
    assert not (Path.cwd() / "pwned").exists()


def test_a_broken_reload_keeps_the_last_good_flows(tmp_path: Path) -> None:
    """Reload with a broken file: problems returned, the old set still served; a fix loads."""
    flows = _copy(tmp_path)
    holder = FlowHolder(flows)
    good = holder.flows
    (flows / "main.yaml").write_text("start: a\nnodes: {a: {type: goto, target: b}}\n", "utf-8")
    problems = holder.reload()
    assert problems == [f"{flows / 'main.yaml'}: node a: goes to 'b', which is no node"]
    assert holder.flows is good
    assert holder.failures == 1
    assert holder.last_error is not None
    (flows / "main.yaml").write_text("start: a\nnodes: {a: {type: end}}\n", "utf-8")
    assert holder.reload() == []
    assert list(holder.flows.flows["main"].nodes) == ["a"]
    assert holder.last_error is None


def test_calendar_holidays_and_make_up_workdays() -> None:
    """A weekday holiday is closed, a make-up Saturday open, evenings closed (Asia/Shanghai)."""
    calendar = load_flows(SHIPPED).flows["main"].calendar
    # 2026-10-01 (Thursday) is a holiday; 10:00 Shanghai is 02:00 UTC.
    assert not calendar.is_open(datetime(2026, 10, 1, 2, 0, tzinfo=UTC))
    # 2026-10-10 is a Saturday worked in exchange.
    assert calendar.is_open(datetime(2026, 10, 10, 2, 0, tzinfo=UTC))
    # An ordinary Tuesday: open at 10:00, closed at 19:00 local.
    assert calendar.is_open(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 12, 1, 11, 0, tzinfo=UTC))
    # An ordinary Sunday is closed.
    assert not calendar.is_open(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))


def test_prompts_render_to_8khz_wav(tmp_path: Path) -> None:
    """Every prompt in both languages becomes an 8 kHz mono 16-bit WAV (needs espeak-ng)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("prompts:\n  welcome: {zh: 您好, en: Hello}\n", encoding="utf-8")
    assert render_prompts(prompts, tmp_path / "out", espeak) == []
    for language in ("zh", "en"):
        with wave.open(str(tmp_path / "out" / language / "welcome.wav")) as audio:
            assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (
                8000,
                1,
                2,
            )
            assert audio.getnframes() > 800
