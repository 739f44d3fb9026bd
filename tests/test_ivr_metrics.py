"""The post-call survey in the metrics: ``hotline_survey_*`` by queue and score."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from hotline.clock import SystemClock
from hotline.config import Settings, parse_settings
from hotline.prometheus import SURVEY_SCORES, Metrics

pytestmark = pytest.mark.unit

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _settings() -> Settings:
    return parse_settings(
        {
            "queues": [{"name": "support"}, {"name": "repair"}],
            "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support", "repair"]}],
        },
        env={},
    )


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_every_queue_and_score_starts_at_zero() -> None:
    """Before any survey each configured queue has its offered series, one response series
    per score, and an empty histogram, so rate() sees them from the start."""
    samples = _parse(
        Metrics(_settings(), CollectorRegistry(), clock=SystemClock()).render().decode()
    )
    for queue in ("support", "repair"):
        assert _value(samples, "hotline_survey_offered_total", queue=queue) == 0
        for score in SURVEY_SCORES:
            assert (
                _value(samples, "hotline_survey_responses_total", queue=queue, score=str(score))
                == 0
            )
        assert _value(samples, "hotline_survey_score_count", queue=queue) == 0
    assert {labels for name, labels in samples if name == "hotline_survey_responses_total"} == {
        frozenset({("queue", q), ("score", str(s))})
        for q in ("support", "repair")
        for s in SURVEY_SCORES
    }


def test_surveys_are_counted_by_queue_and_score() -> None:
    """Offered, responses by score and the score histogram; no answer counts as offered
    only; an unset or unknown queue is the default queue's (bounded labels)."""
    registry = CollectorRegistry()
    metrics = Metrics(_settings(), registry, clock=SystemClock())
    for queue, score in [
        ("repair", 5),
        ("repair", 4),
        ("repair", None),
        ("support", 2),
        ("", 3),  # HOTLINE_QUEUE unset
        ("nosuch", None),  # not a configured queue
    ]:
        metrics.survey(queue, score)
    samples = _parse(metrics.render().decode())
    assert _value(samples, "hotline_survey_offered_total", queue="repair") == 3
    assert _value(samples, "hotline_survey_offered_total", queue="support") == 3
    assert _value(samples, "hotline_survey_responses_total", queue="repair", score="5") == 1
    assert _value(samples, "hotline_survey_responses_total", queue="repair", score="4") == 1
    assert _value(samples, "hotline_survey_responses_total", queue="repair", score="1") == 0
    assert _value(samples, "hotline_survey_responses_total", queue="support", score="3") == 1
    assert _value(samples, "hotline_survey_score_count", queue="repair") == 2
    assert _value(samples, "hotline_survey_score_sum", queue="repair") == 9
    assert _value(samples, "hotline_survey_score_bucket", queue="repair", le="4.0") == 1
    assert _value(samples, "hotline_survey_score_bucket", queue="support", le="2.0") == 1
    assert _value(samples, "hotline_survey_score_bucket", queue="support", le="3.0") == 2
    assert not any(("queue", "nosuch") in labels for _, labels in samples)
    assert samples == _parse(generate_latest(registry).decode())  # the fast renderer agrees
