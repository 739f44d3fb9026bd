"""The PBX adapter against real Asterisk 22 traces: translation, actions, resync snapshots."""

from __future__ import annotations

import pytest

from hotline.ami.codec import AmiCodec, Message, encode_action
from hotline.config import QueueConfig, RoutingConfig
from hotline.domain.effects import (
    CallbackAttemptEnded,
    CallEnded,
    Effect,
    HangupChannel,
    OfferEnded,
    OriginateAgentLeg,
    RedirectChannel,
)
from hotline.domain.events import CallbackDue, CallerWaiting
from hotline.domain.model import OfferResult, Outcome
from hotline.domain.routing import Router, offer_id_for
from hotline.pbx.actions import caller_id, to_action
from hotline.pbx.resync import build_snapshot, parse_duration, parse_journal
from hotline.pbx.translate import translate
from hotline.traces import load_trace
from tests.routing_helpers import agent

pytestmark = pytest.mark.unit


def recv_messages(name: str, replace: dict[str, str] | None = None) -> list[Message]:
    entries = [e for e in load_trace(name) if e.dir == "recv"]
    text = "".join(e.raw for e in entries)
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return AmiCodec().feed(text.encode())


def timestamp_of(messages: list[Message], event: str, **match: str) -> float:
    for message in messages:
        if message.name == event and all(message.get(k) == v for k, v in match.items()):
            return float(message["Timestamp"])
    raise AssertionError(f"no {event} {match}")


def test_hotline_call_waiting_is_translated_from_the_user_event() -> None:
    messages = recv_messages("backend_answered")
    events = [translate(m, 0.0) for m in messages]
    [waiting] = [e for e in events if isinstance(e, CallerWaiting)]
    assert waiting.uniqueid == "1795712164.0"
    assert waiting.channel == "Local/13900139000@callers-00000000;1"
    assert waiting.number == "13900139000"
    assert waiting.name == "Zhao Liu"
    assert waiting.queue == "support"
    assert waiting.priority == 0  # HotlinePriority, not the dialplan's Priority: 5
    assert waiting.source == "pbx"
    assert waiting.at == pytest.approx(1795712164.279212)


def test_noise_and_unrelated_events_translate_to_nothing() -> None:
    messages = recv_messages("queue_load")
    names = {m.name for m in messages if translate(m, 0.0) is not None}
    assert names <= {
        "Newchannel",
        "Newstate",
        "Hangup",
        "BridgeEnter",
        "DeviceStateChange",
        "OriginateResponse",
        "DialEnd",  # only a channel's own Dial (app_queue's here); an Originate's has none
    }
    assert all(translate(m, 0.0) is None for m in messages if m.name in ("CEL", "VarSet"))
    originate_dials = [m for m in messages if m.name == "DialEnd" and not m.get("Uniqueid")]
    assert originate_dials
    assert all(translate(m, 0.0) is None for m in originate_dials)


def test_callback_trace_replayed_through_the_router_records_the_customer_answer() -> None:
    """callback_outbound.jsonl: the agent leg answers, dials the customer, who answers."""
    leg = offer_id_for("T20261126-0009", "callback-7-1", 1)
    messages = recv_messages(
        "callback_outbound",
        {"ActionID: rec-4\r\n": f"ActionID: {leg}\r\n", "1795712251.45": leg},
    )
    router = Router(
        RoutingConfig(),
        {"support": QueueConfig(name="support", wrap_up=0.0)},
        [agent("2002")],
        lambda _number, _now: "unused",
    )
    start = float(next(m for m in messages if m.get("Timestamp"))["Timestamp"])
    router.login("2002", start - 1)
    effects: list[Effect] = list(
        router.handle(
            CallbackDue(start, "recv", 7, "T20261126-0009", "13800138888", "support", 1), start
        )
    )
    [originate] = [e for e in effects if isinstance(e, OriginateAgentLeg)]
    assert (originate.context, originate.exten, originate.caller_channel) == (
        "hotline-outbound",
        "13800138888",
        "",
    )
    assert originate.offer_id == leg
    now = start
    for message in messages:
        event = translate(message, now)
        if event is not None:
            now = max(now, event.at)
            effects += router.handle(event, now)
    [attempt] = [e for e in effects if isinstance(e, CallbackAttemptEnded)]
    assert (attempt.callback_id, attempt.attempt, attempt.agent_id) == (7, 1, "2002")
    assert attempt.result == "answered"
    assert attempt.at == timestamp_of(messages, "DialEnd", Uniqueid=leg)
    assert not [e for e in effects if isinstance(e, OfferEnded | CallEnded)]
    assert router.agents["2002"].state.value == "available"
    assert router.pending_callbacks() == []


def test_backend_channelid_trace_replayed_through_the_router() -> None:
    """The real RONA-then-answer flow, the trace's ChannelIds mapped to our offer ids."""
    # Our offer ids carry the caller's Uniqueid; the trace's ChannelIds did not.
    first, second = (offer_id_for("T20261126-0010", "1795712502.0", n) for n in (1, 2))
    messages = recv_messages(
        "backend_channelid",
        {
            "ActionID: rec-7\r\n": "ActionID: hl-T20261126-0010-1\r\n",
            "ActionID: rec-8\r\n": "ActionID: hl-T20261126-0010-2\r\n",
            "hl-T20261126-0010-1": first,
            "hl-T20261126-0010-2": second,
        },
    )
    queue = QueueConfig(name="support", ring_timeout=5.0, wrap_up=0.0)
    router = Router(
        RoutingConfig(),
        {"support": queue},
        [agent("2001"), agent("2002")],
        lambda _number, _now: "T20261126-0010",
    )
    start = float(next(m for m in messages if m.get("Timestamp"))["Timestamp"])
    router.login("2001", start - 10)
    router.login("2002", start - 5)
    effects: list[Effect] = []
    now = start
    for message in messages:
        event = translate(message, now)
        if event is None:
            continue
        now = max(now, event.at)
        effects += router.handle(event, now)
    legs = [e for e in effects if isinstance(e, OriginateAgentLeg)]
    assert [(leg.offer_id, leg.device) for leg in legs] == [
        (first, "Local/2001@agents"),
        (second, "Local/2002@agents"),
    ]
    assert legs[0].caller_channel == "Local/13900139010@callers-00000000;1"
    offers = {e.offer_id: e for e in effects if isinstance(e, OfferEnded)}
    first_ring, second_ring = offers[first], offers[second]
    assert first_ring.result is OfferResult.NO_ANSWER
    assert first_ring.ring_started_at == timestamp_of(
        messages, "Newstate", Uniqueid=first, ChannelState="5"
    )
    assert first_ring.ended_at == timestamp_of(messages, "OriginateResponse", ActionID=first)
    assert second_ring.result is OfferResult.ANSWERED
    assert second_ring.ended_at == timestamp_of(
        messages, "Newstate", Uniqueid=second, ChannelState="6"
    )
    [call] = [e for e in effects if isinstance(e, CallEnded)]
    assert call.outcome is Outcome.ANSWERED
    assert call.answered_by == "2002"
    assert call.arrived_at == timestamp_of(messages, "UserEvent")
    assert call.ended_at == timestamp_of(messages, "Hangup", Uniqueid="1795712502.0")
    assert router.agents["2001"].consecutive_misses == 1
    assert router.calls == {}


def test_originate_action_follows_the_contract() -> None:
    leg = OriginateAgentLeg(
        offer_id="hl-T20261126-A0001-1",
        device="PJSIP/1001",
        context="hotline-bridge",
        caller_channel="PJSIP/trunk-00000001",
        ticket="T20261126-A0001",
        caller_number="13900139000",
        caller_name='Zhao "Z" Liu',
        timeout=15.0,
    )
    name, headers, action_id = to_action(leg)
    assert name == "Originate"
    assert action_id == leg.offer_id
    assert ("ChannelId", leg.offer_id) in headers
    assert ("Timeout", "15000") in headers
    assert ("Async", "true") in headers
    assert ("CallerID", '"Zhao Z Liu" <13900139000>') in headers
    assert [v for k, v in headers if k == "Variable"] == [
        "HOTLINE_CALLER=PJSIP/trunk-00000001",
        "HOTLINE_TICKET=T20261126-A0001",
    ]
    encode_action(name, headers, action_id=action_id)  # no CR/LF anywhere
    assert to_action(HangupChannel("Local/2001@agents-0000000a;2"))[1] == [
        ("Channel", "Local/2001@agents-0000000a;2"),
        ("Cause", "16"),
    ]
    assert to_action(RedirectChannel("x", "vm", "s", "1"))[0] == "Redirect"
    assert caller_id("<unknown>", "13900139000") == "<13900139000>"


def test_resync_snapshot_from_the_real_status_replies() -> None:
    messages = recv_messages("resync_status")
    channels = [m for m in messages if m.name == "CoreShowChannel"]
    statuses = [m for m in messages if m.name == "Status" and m.action_id == "rec-9"]
    snapshot = build_snapshot(1795712234.0, channels, statuses)
    by_uid = {c.uniqueid: c for c in snapshot.channels}
    assert len(by_uid) == 8
    bridged_caller = by_uid["1795712229.36"]
    assert bridged_caller.context == "hotline-inbound"
    assert bridged_caller.bridge_id == "19d47f8e-c069-4864-86eb-3655e9b2411a"
    assert bridged_caller.variables == {"HOTLINE_QUEUE": "support", "HOTLINE_PRIORITY": "0"}
    waiting = by_uid["1795712230.43"]
    assert waiting.application == "Wait"
    assert waiting.duration == 3.0
    leg = by_uid["1795712229.38"]
    assert leg.context == "hotline-bridge"
    assert leg.variables["HOTLINE_TICKET"] == "T20261126-0008"
    assert leg.variables["HOTLINE_CALLER"] == "Local/13900139007@callers-00000010;1"
    assert parse_duration("01:02:03") == 3723.0
    assert parse_duration("garbage") == 0.0


def test_router_resync_from_the_real_trace_adopts_the_bridged_call_and_both_waiters() -> None:
    messages = recv_messages("resync_status")
    channels = [m for m in messages if m.name == "CoreShowChannel"]
    statuses = [m for m in messages if m.name == "Status" and m.action_id == "rec-9"]
    snapshot = build_snapshot(1795712234.0, channels, statuses)
    router = Router(
        RoutingConfig(),
        {"support": QueueConfig(name="support")},
        [agent("2001"), agent("2002")],
        lambda _number, _now: "T20261126-9999",
    )
    router.resync(snapshot, 1795712234.0)
    connected = router.calls["1795712229.36"]
    assert connected.answered_by == "2001"
    assert connected.ticket == "T20261126-0008"
    assert {c.call_id for c in router.waiting_calls()} == {"1795712230.43", "1795712230.41"}
    assert all(c.arrival_source == "resync" for c in router.waiting_calls())


def test_journal_is_parsed_from_dbgettree_items() -> None:
    # Real DBGetTreeResponse items (journal_dbgettree.jsonl): no Family header, the
    # whole path in Key.
    def item(key: str, value: str) -> Message:
        return Message.from_pairs([("Event", "DBGetTreeResponse"), ("Key", key), ("Val", value)])

    items = [
        item("/hotline_journal/1795712164.0", "1795712164.279|support|5|13900139000"),
        item("/hotline_journal/1795712164.9", "1795712160.5|repairs|0|139|1795712170.25"),
        item("/agent/2001/delay", "3"),
        item("/hotline_journal/broken", "not|enough"),
    ]
    first, second = parse_journal(items)
    assert (first.uniqueid, first.queue, first.priority, first.ended_at) == (
        "1795712164.0",
        "support",
        5,
        None,
    )
    assert first.arrived_at == 1795712164.279
    assert (second.uniqueid, second.number, second.ended_at) == (
        "1795712164.9",
        "139",
        1795712170.25,
    )
