"""PBX values are validated at the edge (translator and resync parsing), never in the domain."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hotline.ami.codec import AmiCodec, Message
from hotline.clock import SystemClock
from hotline.config import parse_settings
from hotline.domain.effects import CallEnded, OfferEnded
from hotline.domain.events import CallerWaiting, ChannelHungUp
from hotline.domain.model import OfferResult, Outcome
from hotline.pbx.resync import MAX_DURATION, build_snapshot, parse_duration, parse_journal
from hotline.pbx.translate import PRIORITY_RANGE, PbxValueError, clean_text, translate
from hotline.prometheus import Metrics

pytestmark = pytest.mark.unit

NOW = 1_795_712_170.0


def user_event(**headers: str) -> Message:
    """A HotlineCallWaiting as Asterisk 22 sends it (channel snapshot first), with overrides."""
    pairs = {
        "Event": "UserEvent",
        "Privilege": "user,all",
        "Timestamp": "1795712164.279212",
        "Channel": "Local/13900139000@callers-00000000;1",
        "CallerIDNum": "13900139000",
        "CallerIDName": "Zhao Liu",
        "Uniqueid": "1795712164.0",
        "Linkedid": "1795712164.0",
        "UserEvent": "HotlineCallWaiting",
        "HotlineQueue": "support",
        "HotlinePriority": "0",
    }
    pairs.update(headers)
    text = "".join(f"{key}: {value}\r\n" for key, value in pairs.items() if value is not None)
    [message] = AmiCodec().feed(b"Asterisk Call Manager/11.0.0\r\n" + text.encode() + b"\r\n")
    return message


def waiting(**headers: str) -> CallerWaiting:
    event = translate(user_event(**headers), NOW)
    assert isinstance(event, CallerWaiting)
    return event


def test_a_normal_caller_keeps_the_pbx_timestamp() -> None:
    event = waiting()
    assert event.at == pytest.approx(1795712164.279212)
    assert event.source == "pbx"
    assert (event.uniqueid, event.number, event.priority) == ("1795712164.0", "13900139000", 0)


@pytest.mark.parametrize(
    "stamp", ["nan", "NaN", "inf", "-inf", "+Infinity", "1e300", "-1e300", "0", "12abc"]
)
def test_an_absurd_timestamp_is_replaced_by_the_receive_time(stamp: str) -> None:
    event = waiting(Timestamp=stamp)
    assert (event.at, event.source) == (NOW, "recv")


def test_a_timestamp_a_day_away_from_the_receive_time_is_not_believed() -> None:
    assert waiting(Timestamp=str(NOW - 2 * 86_400)).source == "recv"
    assert waiting(Timestamp=str(NOW + 2 * 86_400)).source == "recv"
    assert waiting(Timestamp=str(NOW - 3600)).source == "pbx"  # a skewed clock is still a clock


def test_every_translated_event_gets_the_same_timestamp_check() -> None:
    text = (
        "Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: nan\r\nChannel: PJSIP/1001-1\r\n"
        "Uniqueid: 1795712164.3\r\nCause: 16\r\n\r\n"
    )
    [message] = AmiCodec().feed(b"Asterisk Call Manager/11.0.0\r\n" + text.encode())
    event = translate(message, NOW)
    assert isinstance(event, ChannelHungUp)
    assert (event.at, event.source) == (NOW, "recv")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7),
        ("-3", -3),
        ("99999999999999999999999", PRIORITY_RANGE[1]),
        ("-2147483649", PRIORITY_RANGE[0]),
        ("9" * 5000, 0),  # longer than Python's int() accepts: unreadable
        ("nan", 0),
        ("", 0),
        ("(null)", 0),
    ],
)
def test_priority_is_clamped_into_a_sane_range(value: str, expected: int) -> None:
    assert waiting(HotlinePriority=value).priority == expected


@pytest.mark.parametrize("missing", ["Uniqueid", "Channel"])
@pytest.mark.parametrize("value", [None, "", "  ", "\x00"])
def test_a_waiting_caller_without_uniqueid_or_channel_is_refused(
    missing: str, value: str | None
) -> None:
    message = user_event(**{missing: value})  # type: ignore[arg-type]
    with pytest.raises(PbxValueError) as raised:
        translate(message, NOW)
    assert raised.value.reason == "caller_without_id"
    assert missing in raised.value.detail


def test_control_characters_are_removed_from_numbers_and_names() -> None:
    event = waiting(
        CallerIDNum="139\x000013\x1b9000",
        CallerIDName="Zhao\x07 Liu\x7f\x85",
        HotlineQueue="sup\x00port",
    )
    assert event.number == "13900139000"
    assert event.name == "Zhao Liu"
    assert event.queue == "support"
    assert clean_text("李雷 +86 139") == "李雷 +86 139"  # printable text is kept as it is


def test_a_huge_duration_reads_zero_instead_of_overflowing() -> None:
    assert parse_duration("1" + "0" * 400) == 0.0
    assert parse_duration("99999999:00:00") == 0.0
    assert parse_duration("-5") == 0.0
    assert parse_duration(str(MAX_DURATION)) == float(MAX_DURATION)
    assert parse_duration("00:01:05") == 65.0


def test_a_resync_snapshot_survives_hostile_values() -> None:
    lines = (
        "Event: CoreShowChannel\r\nActionID: a-1\r\nChannel: Local/1@callers-1;1\r\n"
        "ChannelState: 6\r\nCallerIDNum: 139\x00001\r\nCallerIDName: \x1bevil\r\n"
        "Uniqueid: 1795712164.0\r\nLinkedid: 1795712164.0\r\nContext: hotline-inbound\r\n"
        "Exten: 400\r\nApplication: Wait\r\nDuration: 1" + "0" * 400 + "\r\n\r\n"
        "Event: Status\r\nActionID: a-2\r\nChannel: Local/1@callers-1;1\r\n"
        "Uniqueid: 1795712164.0\r\nVariable: HOTLINE_QUEUE=support\r\n"
        "Variable: HOTLINE_PRIORITY=123456789012345678901234567890\r\n\r\n"
    )
    channel, status = AmiCodec().feed(b"Asterisk Call Manager/11.0.0\r\n" + lines.encode())
    snapshot = build_snapshot(NOW, [channel], [status])
    [info] = snapshot.channels
    assert info.duration == 0.0
    assert (info.number, info.name) == ("139001", "evil")
    assert info.variables["HOTLINE_PRIORITY"] == str(PRIORITY_RANGE[1])


def test_metric_sums_never_become_nan() -> None:
    settings = parse_settings(
        {
            "queues": [{"name": "support"}],
            "agents": [{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
        },
        env={},
    )
    metrics = Metrics(settings, CollectorRegistry(), clock=SystemClock())
    nan = math.nan
    metrics.sink(
        OfferEnded(
            offer_id="o-1", call_id="c-1", agent_id="2001", queue="support", ticket="T-1",
            requested_at=nan, ring_started_at=nan, ring_start_source="pbx", ended_at=nan,
            end_source="pbx", result=OfferResult.ANSWERED,
        )
    )  # fmt: skip
    metrics.sink(
        CallEnded(
            call_id="c-1", channel="Local/1@callers-1;1", linkedid="c-1", ticket="T-1",
            number="139", queue="support", original_queue="support", priority=0,
            arrived_at=nan, arrival_source="pbx", answered_at=nan, answered_by="2001",
            talk_ended_at=math.inf, ended_at=nan, end_source="pbx",
            outcome=Outcome.ANSWERED, offers=1,
        )
    )  # fmt: skip
    text = metrics.render().decode()
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith(("hotline_wait", "hotline_ring", "hotline_queue_talk"))
        or family.name.startswith("hotline_agent_talk")
    ]
    assert samples
    assert all(math.isfinite(sample.value) for sample in samples), [
        s for s in samples if not math.isfinite(s.value)
    ]


def test_journal_entries_with_unbelievable_times_are_skipped() -> None:
    def item(key: str, value: str) -> Message:
        # Asterisk 22's shape (journal_dbgettree.jsonl), or the older one with a Family header,
        # whichever parse_journal reads: this test is about the times, not the item's shape.
        real = [("Event", "DBGetTreeResponse"), ("Key", f"/hotline_journal/{key}"), ("Val", value)]
        older = [("Event", "DBGetTreeResponse"), ("Family", "hotline_journal"), ("Key", key)]
        probe = Message.from_pairs([*real[:2], ("Val", f"{NOW}|support|0|139")])
        if parse_journal([probe]):
            return Message.from_pairs(real)
        return Message.from_pairs([*older, ("Val", value)])

    good = f"{NOW - 30}|support|{'9' * 30}|139\x00001"
    items = [
        item("1795712164.1", good),
        item("1795712164.2", "nan|support|0|139"),
        item("1795712164.3", "inf|support|0|139"),
        item("1795712164.4", f"{NOW - 30}|support|0|139|1e300"),
        item("1795712164.5", f"{NOW + 5 * 86_400}|support|0|139"),
        item("1795712164.6", f"{NOW - 30}|support|0|139|{NOW - 60}"),  # ended before it arrived
    ]
    assert len(parse_journal(items)) == 6  # the parser reads them all ...
    snapshot = build_snapshot(NOW, [], [], [], items)
    [entry] = snapshot.journal  # ... the snapshot keeps the believable one
    assert entry.uniqueid == "1795712164.1"
    assert (entry.priority, entry.number) == (PRIORITY_RANGE[1], "139001")
