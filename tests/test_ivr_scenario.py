"""The IVR keys of a scenario: ``[[arrivals.ivr]]`` caller groups, parsed and drawn."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from hotline.sim.scenario import (
    IvrCallers,
    Scenario,
    ScenarioError,
    generate_arrivals,
    load_scenario,
)

pytestmark = pytest.mark.unit

BASE = """\
seed = 3
[arrivals]
count = 400
rate_per_minute = 60
queues = { support = 1 }
"""


def test_groups_parse_with_their_keys() -> None:
    """weight, dtmf and survey (an integer, a list, or nothing) per group."""
    scenario = Scenario.from_toml(
        BASE
        + '[[arrivals.ivr]]\nweight = 3\ndtmf = ["2", "1", "", "hangup"]\nsurvey = 4\n'
        + '[[arrivals.ivr]]\ndtmf = ["1#"]\nsurvey = ["0", "5"]\n'
        + "[[arrivals.ivr]]\n",
        "s.toml",
    )
    assert scenario.arrivals is not None
    assert scenario.arrivals.ivr == (
        IvrCallers(3.0, ("2", "1", "", "hangup"), ("4",)),
        IvrCallers(1.0, ("1#",), ("0", "5")),
        IvrCallers(1.0, (), ()),
    )


def test_arrivals_are_spread_over_the_groups_by_weight() -> None:
    """Every caller gets a group, about in proportion to the weights; the other draws
    (numbers, queues, patience) are those of the same scenario without groups."""
    plain = Scenario.from_toml(BASE, "plain.toml")
    grouped = Scenario.from_toml(
        BASE + '[[arrivals.ivr]]\nweight = 3\ndtmf = ["1"]\n[[arrivals.ivr]]\ndtmf = ["2"]\n',
        "grouped.toml",
    )
    with_groups = list(generate_arrivals(grouped))
    counts = Counter(arrival.ivr.dtmf for arrival in with_groups if arrival.ivr)
    assert sum(counts.values()) == 400
    assert 250 <= counts[("1",)] <= 350
    for before, after in itertools.zip_longest(generate_arrivals(plain), with_groups):
        assert before is not None
        assert after is not None
        assert (before.at, before.number, before.queue, before.patience) == (
            after.at,
            after.number,
            after.queue,
            after.patience,
        )
        assert before.ivr is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("ivr = 3\n", "s.toml: arrivals.ivr: expected an array of tables"),
        ('[[arrivals.ivr]]\ndtmf = "12"\n', "s.toml: arrivals.ivr[0].dtmf: expected an array"),
        ('[[arrivals.ivr]]\ndtmf = ["1a"]\n', "s.toml: arrivals.ivr[0].dtmf: expected an array"),
        ("[[arrivals.ivr]]\nsurvey = 12\n", "s.toml: arrivals.ivr[0].survey: expected one digit"),
        ("[[arrivals.ivr]]\nweight = 0\n", "s.toml: arrivals.ivr: the weights add up to zero"),
        ("[[arrivals.ivr]]\nscore = 1\n", "s.toml: arrivals.ivr[0].score: unknown key"),
    ],
)
def test_bad_groups_name_the_file_and_key(body: str, message: str) -> None:
    """Each mistake names the file, the group and the key."""
    text = (
        BASE + body
        if body.startswith("[[")
        else BASE.replace("[arrivals]\n", "[arrivals]\n" + body)
    )
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_toml(text, "s.toml")
    assert str(caught.value).startswith(message)


def test_the_bundled_ivr_scenario_has_caller_groups() -> None:
    """``ivr.toml``: menu choices, languages, survey scores, no input and a hang-up."""
    scenario = load_scenario("ivr")
    assert scenario.arrivals is not None
    groups = scenario.arrivals.ivr
    assert ("1", "hangup") in {group.dtmf for group in groups}
    assert {group.survey for group in groups} >= {("4",), ("5",), ()}
    first = next(generate_arrivals(scenario))
    assert first.ivr in groups
