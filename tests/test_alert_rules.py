"""``promtool test rules`` on the alert rules: ``HotlineNoActiveRouter`` across several
sites (``tests/promtool/*_test.yml``). Skips without ``promtool``, naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_prometheus import PROMTOOL, needs

pytestmark = pytest.mark.integration

TESTS = sorted((Path(__file__).parent / "promtool").glob("*_test.yml"))


def test_there_are_rule_tests() -> None:
    assert TESTS, "tests/promtool holds the promtool rule tests"


@pytest.mark.parametrize("path", TESTS, ids=[path.stem for path in TESTS])
def test_promtool_rule_test_passes(path: Path) -> None:
    needs(PROMTOOL)
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", path.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
