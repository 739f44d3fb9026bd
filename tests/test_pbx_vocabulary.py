"""AMI vocabulary stops at the translator: channel-state numbers, Originate reasons,
DialStatus, device states.

The translator decodes them into domain values (:class:`LineState`,
:class:`DialResult`, :class:`DeviceStatus`); the router and the rest of
:mod:`hotline.domain` never compare against AMI's numbers or words.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hotline.domain
from hotline.ami.codec import AmiCodec, Message
from hotline.domain.events import (
    ChannelState,
    DeviceStateChanged,
    DeviceStatus,
    DialEnded,
    DialResult,
    LineState,
    OriginateResult,
)
from hotline.pbx.resync import build_snapshot
from hotline.pbx.translate import (
    device_status,
    dial_status,
    line_state,
    originate_reason,
    translate,
)
from tests.test_pbx_adapter import recv_messages

pytestmark = pytest.mark.unit

TRACES = (
    "backend_busy",
    "backend_rona",
    "backend_channelid",
    "backend_abandon_while_ringing",
    "redirect_and_hangup",
    "queue_answered",
)


def message(**headers: str) -> Message:
    """One AMI message parsed by the real codec."""
    text = "".join(f"{key}: {value}\r\n" for key, value in headers.items()) + "\r\n"
    [parsed] = AmiCodec(expect_greeting=False).feed(text.encode())
    return parsed


def test_channel_states_from_real_traces_decode_to_line_states() -> None:
    """``Newstate`` 5 rings, 6 is up, every other number (0, 4, 7 in the traces) is other."""
    expected = {"5": LineState.RINGING, "6": LineState.UP}
    seen: set[str] = set()
    for trace in TRACES:
        for msg in recv_messages(trace):
            if msg.name == "Newstate":
                event = translate(msg, 0.0)
                assert isinstance(event, ChannelState)
                number = msg["ChannelState"]
                seen.add(number)
                assert event.state is expected.get(number, LineState.OTHER), (trace, number)
    assert {"5", "6"} <= seen
    assert seen - {"5", "6"}


def test_originate_reasons_from_real_traces_decode_to_dial_results() -> None:
    """``OriginateResponse``: Success (Reason 4) answered, 3 no answer, 5 busy, 0 unavailable."""
    expected = {
        "4": DialResult.ANSWERED,
        "3": DialResult.NO_ANSWER,
        "5": DialResult.BUSY,
        "0": DialResult.UNAVAILABLE,
    }
    seen: set[str] = set()
    for trace in TRACES:
        for msg in recv_messages(trace):
            if msg.name == "OriginateResponse":
                event = translate(msg, 0.0)
                assert isinstance(event, OriginateResult)
                reason = msg["Reason"]
                seen.add(reason)
                assert event.reason is expected[reason], (trace, reason)
                assert event.success is (reason == "4")
    assert seen == set(expected)


def test_originate_reasons_no_trace_shows_are_unavailable() -> None:
    """Reasons 1 (hangup) and 8 (congestion), garbage, and 4 without Success: unavailable."""
    for reason in ("1", "8", "", "x"):
        event = translate(
            message(Event="OriginateResponse", Response="Failure", Reason=reason, ActionID="a"), 0.0
        )
        assert isinstance(event, OriginateResult)
        assert (event.success, event.reason) == (False, DialResult.UNAVAILABLE)
    assert originate_reason(4) is DialResult.UNAVAILABLE
    assert originate_reason(3, success=True) is DialResult.ANSWERED


def test_dial_statuses_decode_to_dial_results() -> None:
    """Every ``DialStatus`` the router distinguishes, in any case; anything else failed."""
    cases = {
        "ANSWER": DialResult.ANSWERED,
        "BUSY": DialResult.BUSY,
        "NOANSWER": DialResult.NO_ANSWER,
        "CANCEL": DialResult.NO_ANSWER,
        "CHANUNAVAIL": DialResult.UNAVAILABLE,
        "congestion": DialResult.UNAVAILABLE,
        "TORTURE": DialResult.FAILED,
        "": DialResult.FAILED,
    }
    for status, result in cases.items():
        event = translate(
            message(Event="DialEnd", Uniqueid="1.1", DestUniqueid="1.2", DialStatus=status), 0.0
        )
        assert isinstance(event, DialEnded)
        assert event.status is result, status
        assert dial_status(status) is result
    assert line_state(7) is LineState.OTHER


DEVICE_TRACES = ("backend_busy", "backend_rona", "devicestate_local", "queue_load", "fastagi_ami")


def test_device_states_from_real_traces_decode_to_device_statuses() -> None:
    """``DeviceStateChange``: NOT_INUSE idle, INUSE and RINGING in use, INVALID unknown."""
    expected = {
        "NOT_INUSE": DeviceStatus.IDLE,
        "INUSE": DeviceStatus.IN_USE,
        "RINGING": DeviceStatus.IN_USE,
        "INVALID": DeviceStatus.UNKNOWN,
    }
    seen: set[str] = set()
    for trace in DEVICE_TRACES:
        for msg in recv_messages(trace):
            if msg.name == "DeviceStateChange" and msg.get("State"):
                event = translate(msg, 0.0)
                assert isinstance(event, DeviceStateChanged)
                state = msg["State"]
                seen.add(state)
                assert event.device == msg["Device"]
                assert event.state is expected[state], (trace, state)
    assert {"NOT_INUSE", "INUSE", "RINGING"} <= seen


def test_device_states_no_trace_shows_decode_as_asterisk_names_them() -> None:
    """The rest of Asterisk's device states (``ast_devstate_str``), in any case; anything
    else is unknown."""
    cases = {
        "BUSY": DeviceStatus.IN_USE,
        "RINGINUSE": DeviceStatus.IN_USE,
        "ONHOLD": DeviceStatus.IN_USE,
        "UNAVAILABLE": DeviceStatus.UNAVAILABLE,
        "not_inuse": DeviceStatus.IDLE,
        "UNKNOWN": DeviceStatus.UNKNOWN,
        "": DeviceStatus.UNKNOWN,
        "TORTURE": DeviceStatus.UNKNOWN,
    }
    for state, status in cases.items():
        event = translate(message(Event="DeviceStateChange", Device="PJSIP/1", State=state), 0.0)
        assert isinstance(event, DeviceStateChanged)
        assert event.state is status, state
        assert device_status(state) is status


def test_a_snapshot_holds_decoded_device_states() -> None:
    """``DeviceStateList`` items decode alike; a device with a live channel is in use."""
    channel = message(
        Event="CoreShowChannel", Channel="PJSIP/2-00000001", Uniqueid="1.1", ChannelState="6"
    )
    devices = [
        message(Event="DeviceStateChange", Device="PJSIP/1", State="UNAVAILABLE"),
        message(Event="DeviceStateChange", Device="PJSIP/2", State="NOT_INUSE"),
        message(Event="DeviceStateChange", Device="PJSIP/3", State="NOT_INUSE"),
    ]
    snapshot = build_snapshot(0.0, [channel], [], devices)
    assert snapshot.device_states == {
        "PJSIP/1": DeviceStatus.UNAVAILABLE,
        "PJSIP/2": DeviceStatus.IN_USE,
        "PJSIP/3": DeviceStatus.IDLE,
    }


def test_the_domain_source_holds_no_ami_status_words() -> None:
    """No DialStatus or device-state word, and no comparison with a channel-state number,
    in the domain."""
    words = re.compile(
        r"[\"'](ANSWER|BUSY|NOANSWER|CANCEL|CHANUNAVAIL|CONGESTION"
        r"|NOT_INUSE|INUSE|RINGING|RINGINUSE|ONHOLD|UNAVAILABLE|INVALID|UNKNOWN)[\"']"
    )
    numbers = re.compile(r"state\s*(==|!=)\s*\d|_RINGING\s*=\s*5|_UP\s*=\s*6")
    root = Path(hotline.domain.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert files
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert not words.findall(text), file
        assert not numbers.findall(text), file
