"""The pure parts of surviving a restart, on the bytes real Asterisk 22 sent.

``journal_dbgettree.jsonl`` (the journal as ``DBGetTree`` returns it),
``reconnect_while_ringing.jsonl`` (what a restarted router finds while its
predecessor's agent leg rings) and ``channelid_conflict.jsonl`` (a ChannelId
that a live leg holds) are parsed, snapshotted and fed to a fresh router.
"""

from __future__ import annotations

import pytest

from hotline.ami.codec import AmiCodec, Message
from hotline.config import QueueConfig
from hotline.domain.effects import (
    CallAnswered,
    CallArrived,
    CallEnded,
    Effect,
    HangupChannel,
    OfferEnded,
)
from hotline.domain.events import (
    CallerWaiting,
    DeviceStatus,
    DialResult,
    JournalEntry,
    OriginateResult,
    PbxSnapshot,
)
from hotline.domain.model import Activity, AgentState, CallState, OfferResult, Outcome
from hotline.domain.routing import Router, offer_id_for
from hotline.pbx.resync import build_snapshot, device_of, parse_journal
from hotline.pbx.translate import translate
from hotline.traces import load_trace
from tests.routing_helpers import agent, make_router, originates

pytestmark = pytest.mark.unit


def received(name: str) -> list[Message]:
    """Every message of a trace that Asterisk sent, parsed from the exact bytes."""
    codec = AmiCodec()
    messages: list[Message] = []
    for entry in load_trace(name):
        if entry.dir == "recv":
            messages += codec.feed(entry.raw.encode())
    return messages


def items(messages: list[Message], action_id: str, *names: str) -> list[Message]:
    """The event-list items of one action."""
    return [m for m in messages if m.name in names and m.get("ActionID") == action_id]


# -- the journal ---------------------------------------------------------------------------------


def test_journal_is_read_from_the_real_dbgettree_reply() -> None:
    messages = received("journal_dbgettree")
    first, second = parse_journal(items(messages, "rec-4", "DBGetTreeResponse"))
    assert first == JournalEntry(
        "1796147008.0", 1796147008.344, "support", 0, "13911110000", 1796147012.849
    )
    assert second == JournalEntry("1796147010.4", 1796147010.912, "repairs", 5, "13911110001")
    (only,) = parse_journal(items(messages, "rec-5", "DBGetTreeResponse"))
    assert only.uniqueid == "1796147010.4"


def test_an_empty_journal_is_a_successful_empty_list() -> None:
    messages = received("journal_dbgettree")
    reply = next(m for m in messages if m.kind == "response" and m.get("ActionID") == "rec-6")
    assert reply.get("Response") == "Success"
    assert parse_journal(items(messages, "rec-6", "DBGetTreeResponse", "DBGetTreeComplete")) == ()


def test_the_answered_form_of_an_entry_names_the_agent_leg() -> None:
    value = (
        "1796148844.423|support|0|13900139013|1796148855.940"
        "|1796148850.431|Local/2001@agents-00000006;1|hl-T20261201-0013-1|T20261201-0013"
    )
    item = Message.from_pairs(
        [("Event", "DBGetTreeResponse"), ("Key", "/hotline_journal/1796148844.10"), ("Val", value)]
    )
    (entry,) = parse_journal([item])
    assert entry.ended_at == 1796148855.94
    assert entry.answered_at == 1796148850.431
    assert entry.agent_device == "Local/2001@agents"
    assert entry.agent_leg == "hl-T20261201-0013-1"
    assert entry.ticket == "T20261201-0013"


def test_device_of_a_channel_name() -> None:
    assert device_of("Local/2001@agents-00000006;1") == "Local/2001@agents"
    assert device_of("PJSIP/1001-0000000a") == "PJSIP/1001"


def test_a_call_answered_before_a_crash_and_ended_in_the_gap_is_recorded_answered() -> None:
    router = make_router([agent("2001")])
    entry = JournalEntry(
        "1796148844.10",
        1796148844.423,
        "support",
        0,
        "13900139013",
        ended_at=1796148855.94,
        answered_at=1796148850.431,
        agent_device="Local/2001@agents",
        agent_leg="hl-T20261201-0013-1",
        ticket="T20261201-0013",
    )
    effects = router.resync(PbxSnapshot(at=1796148860.0, channels=(), journal=(entry,)), 1796148860)
    (arrived,) = [e for e in effects if isinstance(e, CallArrived)]
    (answered,) = [e for e in effects if isinstance(e, CallAnswered)]
    (ended,) = [e for e in effects if isinstance(e, CallEnded)]
    assert arrived.ticket == ended.ticket == "T20261201-0013"
    assert (answered.agent_id, answered.answered_at) == ("2001", 1796148850.431)
    assert ended.outcome is Outcome.ANSWERED
    assert (ended.answered_by, ended.answered_at, ended.ended_at) == (
        "2001",
        1796148850.431,
        1796148855.94,
    )
    assert ended.wait_seconds == 1796148850.431 - ended.arrived_at
    assert ended.offers == 1
    again = router.resync(PbxSnapshot(at=1796148861.0, channels=(), journal=(entry,)), 1796148861)
    assert not [e for e in again if isinstance(e, CallEnded)], "recorded once"


# -- a restarted router while its predecessor's leg rings ----------------------------------------


def ringing_snapshot() -> tuple[PbxSnapshot, list[Message]]:
    """The resync replies of ``reconnect_while_ringing`` and the messages after them."""
    messages = received("reconnect_while_ringing")
    snapshot = build_snapshot(
        1796148846.0,
        items(messages, "rec-2", "CoreShowChannel"),
        items(messages, "rec-3", "Status"),
        items(messages, "rec-4", "DeviceStateChange"),
    )
    last = max(i for i, m in enumerate(messages) if m.name == "DeviceStateListComplete")
    return snapshot, messages[last + 1 :]


def test_the_snapshot_decodes_our_ringing_leg_and_its_device() -> None:
    snapshot, _ = ringing_snapshot()
    (leg,) = [c for c in snapshot.channels if c.own_leg]
    assert leg.uniqueid == "hl-T20261201-0013-1"
    assert (leg.context, leg.application) == ("agents", "AppDial2")
    assert leg.device == "Local/2001@agents"
    assert leg.caller_channel == "Local/13900139013@callers-00000005;1"
    assert leg.ticket == "T20261201-0013"
    assert not any(d.startswith("Local/") for d in ringing_device_list())
    assert snapshot.device_states["Local/2001@agents"] is DeviceStatus.IN_USE, "from its channel"


def ringing_device_list() -> list[str]:
    messages = received("reconnect_while_ringing")
    return [m.get("Device") or "" for m in items(messages, "rec-4", "DeviceStateChange")]


def booted(router: Router, boot_id: str = "b2") -> Router:
    """The router as the app builds it: with this process' boot id."""
    router.boot_id = boot_id
    return router


def restarted_router() -> tuple[Router, list[Effect]]:
    router = booted(make_router([agent("2001"), agent("2002")]))
    for agent_id in ("2001", "2002"):
        router.login(agent_id, 1796148845.0)
    snapshot, _ = ringing_snapshot()
    return router, router.resync(snapshot, 1796148846.0)


def test_a_restarted_router_adopts_the_ringing_leg_of_its_predecessor() -> None:
    router, effects = restarted_router()
    assert not [e for e in effects if isinstance(e, HangupChannel)], "the ring goes on"
    assert originates(effects) == [], "nobody else is rung for the caller"
    call = router.calls["1796148844.10"]
    assert call.state is CallState.RINGING
    assert call.ticket == "T20261201-0013"
    ringing = router.agents["2001"]
    assert (ringing.activity, ringing.state) == (Activity.RINGING, AgentState.RINGING)
    assert router.agents["2002"].state is AgentState.AVAILABLE


def test_the_adopted_leg_answers_and_bridges_with_no_hang_up_and_no_cool_down() -> None:
    router, _ = restarted_router()
    effects: list[Effect] = []
    for message in ringing_snapshot()[1]:
        event = translate(message, 1796148850.5)
        if event is not None:
            effects += router.handle(event, 1796148850.5)
    # The trace's own client used ActionID rec-5; our legs' ActionID is the leg id.
    effects += router.handle(
        OriginateResult(
            1796148850.44,
            "pbx",
            "hl-T20261201-0013-1",
            "hl-T20261201-0013-1",
            True,
            DialResult.ANSWERED,
        ),
        1796148850.5,
    )
    assert not [e for e in effects if isinstance(e, HangupChannel)]
    assert originates(effects) == []
    (answered,) = [e for e in effects if isinstance(e, CallAnswered)]
    assert answered.agent_id == "2001"
    (offer,) = [e for e in effects if isinstance(e, OfferEnded)]
    assert offer.result is OfferResult.ANSWERED
    (ended,) = [e for e in effects if isinstance(e, CallEnded)]
    assert (ended.outcome, ended.answered_by) == (Outcome.ANSWERED, "2001")
    agent_2001 = router.agents["2001"]
    assert agent_2001.unavailable_until is None


def test_a_device_with_a_channel_is_not_rung_for_a_second_caller() -> None:
    # The leg rings for a caller this router cannot adopt: its device is still in use.
    router = booted(make_router([agent("2001")]))
    router.login("2001", 1796148845.0)
    snapshot, _ = ringing_snapshot()
    foreign = PbxSnapshot(
        at=snapshot.at,
        channels=tuple(c for c in snapshot.channels if c.device == "Local/2001@agents"),
        device_states=snapshot.device_states,
    )
    router.resync(foreign, 1796148846.0)
    effects = router.handle(
        CallerWaiting(
            1796148846.5,
            "pbx",
            "1796148846.3",
            "Local/139@callers-0000000a;1",
            "x",
            "139",
            "",
            "support",
            0,
        ),
        1796148846.5,
    )
    assert originates(effects) == [], "the agent's phone is busy"


# -- leg ids unique across processes -----------------------------------------------------------


def test_offer_ids_of_two_processes_never_collide() -> None:
    first = offer_id_for("T20261201-0012", "1796148816.5", 1, "a1")
    second = offer_id_for("T20261201-0012", "1796148816.5", 1, "b2")
    assert first != second
    assert first.startswith("hl-")
    assert second.startswith("hl-")


def test_a_refused_originate_is_blamed_by_its_action_id_only() -> None:
    # channelid_conflict: the refusal carries the Uniqueid of the leg that still rings.
    router = booted(
        make_router([agent("2001"), agent("2002")], (QueueConfig(name="support", wrap_up=5.0),))
    )
    for agent_id in ("2001", "2002"):
        router.login(agent_id, 1796148816.0)
    effects = router.handle(
        CallerWaiting(
            1796148816.6,
            "pbx",
            "1796148816.5",
            "Local/139@callers-00000002;1",
            "x",
            "139",
            "",
            "support",
            0,
        ),
        1796148816.6,
    )
    (first,) = originates(effects)
    conflict = next(
        m
        for m in received("channelid_conflict")
        if m.name == "OriginateResponse" and m.get("Reason") == "0"
    )
    refused = translate(conflict, 1796148816.61)
    assert isinstance(refused, OriginateResult)
    assert refused.uniqueid == "hl-T20261201-0012-1"
    effects = router.handle(refused, 1796148816.61)
    assert router.offers[first.offer_id].open, "an unknown ActionID blames no leg"
    assert router.agents[first.device.split("/")[1].split("@")[0]].state is AgentState.RINGING
    assert not [e for e in effects if isinstance(e, OfferEnded)]
