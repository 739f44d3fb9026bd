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

import pytest

from hotline.clock import virtual_clock_of
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import Scenario
from tests.simtrace import digest, replay

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
]


@pytest.mark.parametrize("name", TRACES)
async def test_sim_matches_the_real_trace(name: str) -> None:
    clock = virtual_clock_of()
    assert clock is not None, "the e2e tier runs on a virtual clock"
    sim = SimPbx(Scenario(name=name), clock=clock)
    await sim.start()
    try:
        trace, replayed = await replay(name, sim.port, clock)
    finally:
        await sim.close()
    assert sim.errors == []
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
