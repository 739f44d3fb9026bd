"""Fidelity: the simulated PBX against real Asterisk 22 recordings of the same flows.

Each trace's client is replayed against the sim (same actions, same agent
settings, channel names swapped by role), and the two event streams are
compared the way the issue asks: per channel role, the order of the lifecycle
events and the multiset of all events with their key sets; channel-less events
as a multiset; the replies to each action; the order of each event's keys;
noise ignored. Concurrent events that
Asterisk itself orders differently from run to run (``backend_rona`` against
``backend_channelid``) are not ordered across channels, so both pass.
"""

from __future__ import annotations

import asyncio

import pytest

from hotline.ami.codec import Message
from hotline.clock import VirtualClock, virtual_clock_of
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario
from tests.simtrace import Stream, digest, replay

pytestmark = pytest.mark.e2e

TRACES = [
    "backend_answered",
    "backend_rona",
    "backend_channelid",
    "backend_busy",
    "backend_abandon",
    "backend_abandon_while_ringing",
    "resync_status",
    "callback_outbound",
    "supervisor_spy",
    "redirect_and_hangup",
    "backend_answered_filtered",
    "journal_dbgettree",
    "devicestate_local",
    "channelid_conflict",
]
# The manager users the traces were recorded with, where not the default one: the
# filtered trace's user has the eleven eventfilter lines its README row lists.
USERS = {
    "backend_answered_filtered": ServerCredentials(
        "filtered",
        "filtered-secret",
        event_filter=frozenset(
            {
                "Newchannel",
                "Newstate",
                "Hangup",
                "UserEvent",
                "OriginateResponse",
                "DialEnd",
                "BridgeEnter",
                "BridgeLeave",
                "DeviceStateChange",
                "FullyBooted",
                "MixMonitorStart",
            }
        ),
    ),
}


@pytest.mark.parametrize("name", TRACES)
async def test_sim_matches_the_real_trace(name: str) -> None:
    clock = _virtual_clock()
    sim = SimPbx(Scenario(name=name), clock=clock, credentials=USERS.get(name))
    await sim.start()
    try:
        trace, replayed = await replay(name, sim.port, clock, ignore=_app_queue)
    finally:
        await sim.close()
    assert sim.errors == []
    assert_same_shapes(trace, replayed)


def _virtual_clock() -> VirtualClock:
    clock = virtual_clock_of()
    assert clock is not None, "the e2e tier runs on a virtual clock"
    return clock


def _app_queue(message: Message) -> bool:
    """What the recording harness' own app_queue ``support`` queue added (the sim runs no
    app_queue): ``QueueMemberStatus`` and the ``Queue:`` pseudo-devices."""
    return message.name == "QueueMemberStatus" or (
        message.name == "DeviceStateChange" and (message.get("Device") or "").startswith("Queue:")
    )


def assert_same_shapes(trace: Stream, replayed: Stream) -> None:
    """The comparison the module docstring describes."""
    want, got = digest(trace), digest(replayed)
    assert sorted(got.lifecycle) == sorted(want.lifecycle), "channel roles differ"
    for role, events in want.lifecycle.items():
        assert got.lifecycle[role] == events, f"lifecycle order of {role}"
    for role, counted in want.per_channel.items():
        assert got.per_channel[role] == counted, f"events of {role}"
    assert got.channel_less == want.channel_less
    assert sorted(got.replies) == sorted(want.replies)
    for action_id, replies in want.replies.items():
        assert got.replies[action_id] == replies, f"replies to {action_id}"
    for kind, order in want.key_order.items():
        assert got.key_order[kind] == order, f"key order of {kind[0]}"


async def test_sim_matches_a_router_restart_while_its_leg_rings() -> None:
    """``reconnect_while_ringing``: two sessions. The first originates the agent leg and
    dies; the second (logged in all along) finds the leg still ringing, with no Local
    device in DeviceStateList, and receives the dead session's OriginateResponse."""
    clock = _virtual_clock()
    sim = SimPbx(Scenario(name="reconnect_while_ringing"), clock=clock)
    await sim.start()
    try:
        logged_in = asyncio.Event()
        survivor = asyncio.create_task(
            replay(
                "reconnect_while_ringing", sim.port, clock, logged_in=logged_in, ignore=_app_queue
            )
        )
        async with asyncio.timeout(15):
            await logged_in.wait()
        dead_trace, dead = await replay(
            "reconnect_while_ringing_before", sim.port, clock, abort_at_end=True, ignore=_app_queue
        )
        trace, replayed = await survivor
    finally:
        await sim.close()
    assert sim.errors == []
    assert_same_shapes(dead_trace, dead)
    assert_same_shapes(trace, replayed)
    devices = [m.get("Device") or "" for m in replayed.messages if m.get("ActionID") == "rec-4"]
    assert not any(device.startswith("Local/") for device in devices)
    (inherited,) = [
        m
        for m in replayed.messages
        if m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("hl-")
    ]
    assert inherited.get("ActionID") == "rec-5", "the dead session's ActionID"
