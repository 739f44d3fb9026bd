"""SLA arithmetic with hand-computed values, its edge cases, and the ``[sla]`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, SlaConfig, load_settings, parse_settings
from hotline.domain.effects import CallEnded, OfferEnded
from hotline.domain.model import OfferResult, Outcome
from hotline.domain.sla import (
    CallTally,
    OfferTally,
    abandon_rate,
    answered_within_rings,
    asterisk_service_level,
    asterisk_service_level2,
    average_handle_time,
    average_speed_of_answer,
    is_short_abandon,
    occupancy,
    ratio,
    ring_service_level,
    rings,
    service_level,
    tally_call,
    tally_calls,
    tally_offers,
    within_rings,
)

pytestmark = pytest.mark.unit

MINIMAL = {
    "queues": [{"name": "support"}],
    "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
}


def offer(result: OfferResult, start: float, end: float) -> OfferEnded:
    return OfferEnded(
        offer_id="o",
        call_id="c",
        agent_id="1001",
        queue="support",
        ticket="T",
        requested_at=start,
        ring_started_at=start,
        ring_start_source="pbx",
        ended_at=end,
        end_source="pbx",
        result=result,
    )


def call(outcome: Outcome, arrived: float, answered: float | None, ended: float) -> CallEnded:
    return CallEnded(
        call_id="c",
        channel="PJSIP/trunk-1",
        linkedid="c",
        ticket="T",
        number="13900000000",
        queue="support",
        original_queue="support",
        priority=0,
        arrived_at=arrived,
        arrival_source="pbx",
        answered_at=answered,
        answered_by="1001" if answered is not None else None,
        talk_ended_at=None,
        ended_at=ended,
        end_source="pbx",
        outcome=outcome,
        offers=1,
    )


# -- rings ------------------------------------------------------------------------------------


def test_rings_are_ring_seconds_over_the_cadence() -> None:
    assert rings(12.5, 5.0) == 2.5
    assert rings(18.0, 6.0) == 3.0
    assert rings(0.0, 5.0) == 0.0
    assert rings(-0.2, 5.0) == 0.0  # clock skew never gives negative rings
    with pytest.raises(ValueError, match="cadence"):
        rings(3.0, 0.0)


def test_within_n_rings_is_inclusive_at_the_boundary() -> None:
    assert within_rings(15.0, 3, 5.0)
    assert not within_rings(15.000001, 3, 5.0)
    assert within_rings(17.9, 3, 6.0)
    assert answered_within_rings(OfferResult.ANSWERED, 15.0, 3, 5.0)
    assert not answered_within_rings(OfferResult.ANSWERED, 15.5, 3, 5.0)
    for miss in (OfferResult.NO_ANSWER, OfferResult.BUSY, OfferResult.UNAVAILABLE):
        assert not answered_within_rings(miss, 1.0, 3, 5.0)


def test_offer_tally_and_ring_service_level() -> None:
    offers = [
        offer(OfferResult.ANSWERED, 100.0, 104.0),  # 0.8 rings
        offer(OfferResult.ANSWERED, 100.0, 115.0),  # exactly 3 rings: within
        offer(OfferResult.ANSWERED, 100.0, 116.0),  # 3.2 rings: late
        offer(OfferResult.NO_ANSWER, 100.0, 115.0),
        offer(OfferResult.BUSY, 100.0, 100.2),
        offer(OfferResult.UNAVAILABLE, 100.0, 100.0),
        offer(OfferResult.CANCELLED, 100.0, 103.0),
    ]
    tally = tally_offers(offers, 3, 5.0)
    assert tally == OfferTally(answered=3, answered_within=2, missed=3, cancelled=1)
    assert ring_service_level(tally) == 2 / 6  # the cancelled ring counts for nothing
    assert ring_service_level(OfferTally(cancelled=4)) is None


# -- calls and queues -------------------------------------------------------------------------


def test_tally_of_single_calls() -> None:
    assert tally_call(Outcome.ANSWERED, 15.0, 15.0, 5.0) == CallTally(
        answered=1, answered_within=1, answered_wait_seconds=15.0
    )
    assert tally_call(Outcome.ANSWERED, 15.01, 15.0, 5.0) == CallTally(
        answered=1, answered_wait_seconds=15.01
    )
    assert tally_call(Outcome.ABANDONED_WAITING, 5.0, 15.0, 5.0) == CallTally(
        abandoned=1, abandoned_within=1, short_abandoned=1
    )
    assert tally_call(Outcome.ABANDONED_RINGING, 12.0, 15.0, 5.0) == CallTally(
        abandoned=1, abandoned_within=1
    )
    assert tally_call(Outcome.ABANDONED_WAITING, 40.0, 15.0, 5.0) == CallTally(abandoned=1)
    assert tally_call(Outcome.OVERFLOWED, 3.0, 15.0, 5.0) == CallTally(overflowed=1)
    assert is_short_abandon(Outcome.ABANDONED_RINGING, 4.9, 5.0)
    assert not is_short_abandon(Outcome.ANSWERED, 1.0, 5.0)


def test_queue_figures_by_hand() -> None:
    # 10 calls: 6 answered (waits 3, 8, 15, 16, 30, 60; 3 within 15 s), 3 abandoned
    # (after 2 s: short; after 10 s; after 50 s), 1 overflowed after 120 s.
    calls = [call(Outcome.ANSWERED, 0.0, wait, wait + 100.0) for wait in (3, 8, 15, 16, 30, 60)]
    calls += [call(Outcome.ABANDONED_WAITING, 0.0, None, wait) for wait in (2.0, 10.0)]
    calls.append(call(Outcome.ABANDONED_RINGING, 0.0, None, 50.0))
    calls.append(call(Outcome.OVERFLOWED, 0.0, None, 120.0))
    tally = tally_calls(calls, 15.0, 5.0)
    assert tally == CallTally(
        answered=6,
        answered_within=3,
        abandoned=3,
        abandoned_within=2,
        short_abandoned=1,
        overflowed=1,
        answered_wait_seconds=132.0,
    )
    assert tally.calls == 10
    # 3 / (6 answered + 2 abandoned after 5 s + 1 overflowed)
    assert service_level(tally) == pytest.approx(3 / 9)
    assert asterisk_service_level(tally) == pytest.approx(3 / 6)
    # (2 abandoned within 15 s + 3 answered within 15 s) / (3 abandoned + 6 answered)
    assert asterisk_service_level2(tally) == pytest.approx(5 / 9)
    assert average_speed_of_answer(tally) == pytest.approx(22.0)
    # 2 abandoned after the short threshold / (10 calls - 1 short abandon)
    assert abandon_rate(tally) == pytest.approx(2 / 9)
    assert tally + tally == CallTally(12, 6, 6, 4, 2, 2, 264.0)


def test_a_different_threshold_changes_the_service_level() -> None:
    calls = [call(Outcome.ANSWERED, 0.0, wait, 100.0) for wait in (3, 8, 15, 16, 30, 60)]
    assert service_level(tally_calls(calls, 20.0, 5.0)) == pytest.approx(4 / 6)
    assert service_level(tally_calls(calls, 60.0, 5.0)) == 1.0


def test_handle_time_and_occupancy_by_hand() -> None:
    # 4 calls, 600 s talk, 120 s wrap-up: AHT 180 s.
    assert average_handle_time(600.0, 120.0, 4) == 180.0
    # 8 h logged in, 1 h paused, 3.5 h talk + 0.5 h wrap-up: 4 / 7.
    assert occupancy(3.5 * 3600, 0.5 * 3600, 8 * 3600, 3600) == pytest.approx(4 / 7)


def test_empty_denominators_give_none_never_a_made_up_figure() -> None:
    empty = CallTally()
    for figure in (
        service_level,
        asterisk_service_level,
        asterisk_service_level2,
        average_speed_of_answer,
        abandon_rate,
    ):
        assert figure(empty) is None, figure.__name__
    # Only short abandons: nothing counts for the service level or the abandon rate.
    shorts = tally_calls([call(Outcome.ABANDONED_WAITING, 0.0, None, 1.0)] * 3, 15.0, 5.0)
    assert service_level(shorts) is None
    assert abandon_rate(shorts) is None
    assert asterisk_service_level2(shorts) == 1.0  # app_queue counts them: 3 within 15 s
    assert average_handle_time(0.0, 0.0, 0) is None
    assert occupancy(0.0, 0.0, 3600.0, 3600.0) is None  # paused the whole time
    assert ratio(1.0, 0.0) is None
    assert ratio(0.0, 4.0) == 0.0


# -- settings ---------------------------------------------------------------------------------


def test_sla_settings_default_to_the_rings_and_cadence() -> None:
    settings = parse_settings(MINIMAL, env={})
    assert settings.sla == SlaConfig(15.0, 5.0, 0.8, 60.0)
    six = parse_settings({**MINIMAL, "routing": {"ring_cadence": 6.0, "sla_rings": 4}}, env={})
    assert six.sla.service_level_threshold == 24.0


def test_sla_settings_are_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hotline.toml"
    path.write_text(
        '[[queues]]\nname = "support"\n\n'
        "[sla]\nservice_level_threshold = 20\nshort_abandon_threshold = 3.5\n"
        "service_level_target = 0.9\nlongest_wait_limit = 90\n",
        encoding="utf-8",
    )
    assert load_settings(path, env={}).sla == SlaConfig(20.0, 3.5, 0.9, 90.0)


@pytest.mark.parametrize(
    ("sla", "key", "problem"),
    [
        ({"service_level_treshold": 20}, "sla.service_level_treshold", "unknown key"),
        ({"service_level_threshold": 0}, "sla.service_level_threshold", "must be between"),
        ({"service_level_threshold": "15s"}, "sla.service_level_threshold", "must be a number"),
        ({"short_abandon_threshold": -1}, "sla.short_abandon_threshold", "must be between"),
        ({"service_level_target": 80}, "sla.service_level_target", "between 0.0 and 1.0"),
        ({"longest_wait_limit": True}, "sla.longest_wait_limit", "must be a number"),
    ],
)
def test_bad_sla_settings_name_the_key(sla: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({**MINIMAL, "sla": sla}, source="hotline.toml", env={})
    assert caught.value.source == "hotline.toml"
    assert caught.value.key == key
    assert problem in caught.value.problem
