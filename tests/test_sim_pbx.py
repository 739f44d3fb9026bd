"""The simulated PBX driven by scenarios and clients, over real sockets.

Ground truth is checked against the very events the sim sent; the reference
AMI clients (panoramisk, asterisk-ami) talk to it; bad input and stuck clients
do not take it down; and it carries 1,000 concurrent calls with 500 agents.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hotline.ami import AmiClient, AmiSettings, Message
from hotline.ami.codec import AmiCodec
from hotline.clock import ScaledClock, VirtualClock, virtual_clock_of
from hotline.secret import Secret
from hotline.sim.driver import FifoRouter
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import (
    AgentBehaviour,
    AgentGroup,
    Arrivals,
    Burst,
    CustomerBehaviour,
    Exponential,
    Fixed,
    LogNormal,
    Scenario,
    ScenarioError,
    Uniform,
    generate_arrivals,
    load_scenario,
)
from tests.support import eventually, spin_until

pytestmark = pytest.mark.e2e

EPOCH = 1_800_000_000.0
AGENTS = tuple(f"Local/{ext}@agents" for ext in range(2001, 2006))


class Recorder:
    """Every event an AMI client receives, in order."""

    def __init__(self, client: AmiClient) -> None:
        self.events: list[Message] = []
        self.arrived = asyncio.Event()
        self._subscription = client.subscribe("recorder", lossless=True, maxsize=1_000_000)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for item in await self._subscription.get_batch():
                if isinstance(item, Message):
                    self.events.append(item)
            self.arrived.set()

    def named(self, name: str, **headers: str) -> list[Message]:
        return [
            e
            for e in self.events
            if e.name == name and all(e.get(k) == v for k, v in headers.items())
        ]

    async def wait_for(self, name: str, timeout: float = 10.0, **headers: str) -> Message:
        await self.until(lambda: bool(self.named(name, **headers)), timeout)
        return self.named(name, **headers)[0]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.arrived.clear()
                await self.arrived.wait()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def running(
    scenario: Scenario, scale: float = 40.0, *, virtual: bool = True, **kwargs: Any
) -> AsyncIterator[tuple[SimPbx, AmiClient, Recorder]]:
    # The e2e tier's virtual clock (scenario time moves only when the process is idle);
    # ``scale`` is the speed-up on a scaled clock, when the loop has no virtual clock.
    clock = (virtual_clock_of() if virtual else None) or ScaledClock(scale, epoch=EPOCH)
    sim = SimPbx(scenario, clock=clock, **kwargs)
    await sim.start()
    client = AmiClient(
        AmiSettings(
            port=sim.port,
            secret=Secret("hotline-secret"),
            # At once on a virtual clock: a real back-off lets scenario time run on meanwhile.
            reconnect_min=0.0 if isinstance(clock, VirtualClock) else 0.05,
        )
    )
    await client.start()
    await client.wait_connected(5)
    recorder = Recorder(client)
    try:
        yield sim, client, recorder
    finally:
        await sim.close()
        await eventually(lambda: not client.connected)
        await recorder.close()
        await client.close()
    assert sim.errors == []


def epoch_of(sim: SimPbx) -> float:
    """Where the sim's clock started."""
    epoch: float = getattr(sim.clock, "epoch")  # noqa: B009 - ScaledClock and VirtualClock
    return epoch


def stamp(message: Message) -> float:
    return float(message["Timestamp"])


def agents_scenario(behaviour: AgentBehaviour, **arrivals: Any) -> Scenario:
    return Scenario(
        name="test",
        seed=5,
        arrivals=Arrivals(**arrivals) if arrivals else None,
        agents=(AgentGroup(devices=AGENTS, behaviour=behaviour),),
    )


async def originate_caller(client: AmiClient, number: str, patience: float = 60) -> None:
    result = await client.action(
        "Originate",
        [
            ("Channel", f"Local/{number}@callers"),
            ("Context", "hotline-inbound"),
            ("Exten", "400"),
            ("Priority", "1"),
            ("CallerID", f'"Test Caller" <{number}>'),
            ("Variable", f"PATIENCE={patience}"),
            ("Async", "true"),
        ],
    )
    assert result.ok


async def originate_agent(
    client: AmiClient, agent: str, caller: str, *, timeout_ms: int = 8000, **extra: str
) -> str:
    result = await client.action(
        "Originate",
        [
            ("Channel", agent),
            ("Context", "hotline-bridge"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Timeout", str(timeout_ms)),
            ("Async", "true"),
            ("CallerID", '"Test Caller" <13900000001>'),
            ("Variable", f"HOTLINE_CALLER={caller}"),
            ("Variable", "HOTLINE_TICKET=T-1"),
            *extra.items(),
        ],
    )
    assert result.ok
    return result.action_id


# -- ground truth against the wire --------------------------------------------------------------


async def test_ground_truth_agrees_with_the_events_on_the_wire(tmp_path: Path) -> None:
    behaviour = AgentBehaviour(
        answer_delay=Uniform(1, 4), no_answer=0.2, busy=0.1, talk=LogNormal(20, 0.4)
    )
    scenario = agents_scenario(
        behaviour,
        count=40,
        rate_per_minute=30,
        patience=Exponential(40),
        queues=(("support", 2.0), ("sales", 1.0)),
        skills=(("billing", 0.5),),
        lang=(("en", 1.0), ("zh", 1.0)),
    )
    path = tmp_path / "gt.jsonl"
    async with running(scenario, scale=50, ground_truth_path=path) as (sim, client, rec):
        router = FifoRouter(client, AGENTS, ring_timeout=6)
        router.start()
        sim.start_arrivals()
        await sim.wait_idle(60)
        # A caller's Hangup is the last event of its call: once the client has them all,
        # it has every event the checks below read.
        callers = {r["channel"] for r in sim.ground_truth if r["type"] == "call"}
        await rec.until(lambda: callers <= {e["Channel"] for e in rec.named("Hangup")})
        await router.close()
    records = sim.ground_truth
    assert [json.loads(line) for line in path.read_text().splitlines()] == records
    assert records[0]["type"] == "start"
    assert records[0]["epoch"] == epoch_of(sim)
    assert records[-1] == {"type": "end", "calls": 40, "callbacks": 0}
    calls = [r for r in records if r["type"] == "call"]
    assert len(calls) == 40 == len({c["call_id"] for c in calls})
    assert all(c["outcome"] in ("answered", "abandoned") for c in calls)
    outcomes = collections.Counter(ring["outcome"] for c in calls for ring in c["rings"])
    assert min(outcomes["answered"], outcomes["no_answer"], outcomes["busy"]) > 0

    waiting = {e["Channel"]: e for e in reversed(rec.named("UserEvent"))}
    hangups = {e["Channel"]: e for e in rec.named("Hangup")}
    by_leg: dict[str, dict[str, list[Message]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for event in rec.events:
        uniqueid = event.get("Uniqueid")
        if uniqueid is not None:
            by_leg[uniqueid][event.name].append(event)
    for call in calls:
        announce = waiting[call["channel"]]
        assert call["arrived_at"] == stamp(announce)
        assert call["call_id"] == announce["Uniqueid"]
        assert call["queue"] == announce["HotlineQueue"]
        assert str(call["priority"]) == announce["HotlinePriority"]
        assert call["lang"] == announce.get("HotlineLang")
        assert ",".join(call["skills"]) == (announce.get("HotlineSkills") or "")
        assert call["ended_at"] == stamp(hangups[call["channel"]])
        answered = [ring for ring in call["rings"] if ring["outcome"] == "answered"]
        if call["outcome"] == "answered":
            assert len(answered) >= 1
            assert call["answered_at"] == answered[0]["ring_end"]
            assert call["answered_by"] == answered[0]["agent"]
            assert call["hung_up_by"] == "agent"
        else:
            assert call["answered_at"] is None
            assert call["abandoned_while"] in ("waiting", "ringing")
        for ring in call["rings"]:
            leg = by_leg[ring["leg_id"]]
            states = {e["ChannelState"]: stamp(e) for e in leg["Newstate"]}
            if ring["outcome"] == "busy":
                assert ring["ring_start"] is None
            else:
                assert ring["ring_start"] == states["5"]
            if ring["outcome"] == "answered":
                assert ring["ring_end"] == states["6"]
            responses = rec.named("OriginateResponse", ActionID=ring["action_id"])
            if ring["outcome"] in ("no_answer", "busy"):
                (failure,) = responses
                assert failure["Reason"] == {"no_answer": "3", "busy": "5"}[ring["outcome"]]
                assert failure["Uniqueid"] == ring["leg_id"]
                assert ring["ring_end"] == stamp(failure)
            if ring["outcome"] == "no_answer":  # RONA at the Timeout (plus scheduling lag)
                assert 6.0 <= ring["ring_end"] - ring["requested_at"] < 8.0
            if ring["outcome"] == "cancelled":
                assert ring["ring_end"] == call["ended_at"]


async def test_same_seed_same_callers_and_same_agent_behaviour() -> None:
    def scenario(seed: int) -> Scenario:
        return Scenario(
            seed=seed,
            arrivals=Arrivals(
                count=30,
                rate_per_minute=10,
                patience=Exponential(30),
                queues=(("a", 1.0), ("b", 1.0)),
                repeat_share=0.3,
            ),
        )

    first, again, other = (list(generate_arrivals(scenario(s))) for s in (1, 1, 2))
    assert first == again
    assert first != other
    assert len({a.number for a in first}) < 30  # repeat callers reuse numbers

    async def outcomes(seed: int) -> list[tuple[str | None, ...]]:
        behaviour = AgentBehaviour(answer_delay=Uniform(0.5, 2), no_answer=0.3, busy=0.3)
        async with running(
            Scenario(seed=seed, agents=(AgentGroup(("Local/2001@agents",), behaviour),))
        ) as (sim, client, rec):
            results: list[tuple[str | None, ...]] = []
            for i in range(12):
                await originate_caller(client, f"1390000{i:04d}")
                caller = (await rec.wait_for("UserEvent", CallerIDNum=f"1390000{i:04d}"))["Channel"]
                action_id = await originate_agent(
                    client, "Local/2001@agents", caller, timeout_ms=3000
                )
                event = await rec.wait_for("OriginateResponse", ActionID=action_id)
                results.append((event["Response"], event["Reason"]))
                await client.action("Hangup", {"Channel": caller})
                await sim.wait_idle(10)
            return results

    assert await outcomes(9) == await outcomes(9)


# -- flows -----------------------------------------------------------------------------------------


async def test_channel_id_names_the_legs_and_the_failed_response() -> None:
    never = AgentBehaviour(no_answer=1.0)
    async with running(agents_scenario(never)) as (sim, client, rec):
        await originate_caller(client, "13900000001")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        action_id = await originate_agent(
            client,
            AGENTS[0],
            caller,
            timeout_ms=2000,
            ChannelId="hl-T1-1",
            OtherChannelId="hl-T1-1b",
        )
        failed = await rec.wait_for("OriginateResponse", ActionID=action_id)
        assert (failed["Response"], failed["Reason"], failed["Uniqueid"]) == (
            "Failure",
            "3",
            "hl-T1-1",
        )
        assert failed["Channel"] == AGENTS[0]
        pair = rec.named("Newchannel", Linkedid="hl-T1-1")
        assert [(e["Uniqueid"], e["Channel"][-2:]) for e in pair] == [
            ("hl-T1-1", ";1"),
            ("hl-T1-1b", ";2"),
        ]
        again = await originate_agent(
            client, AGENTS[0], caller, timeout_ms=2000, ChannelId="hl-T1-2"
        )
        await rec.wait_for("OriginateResponse", ActionID=again)
        assert [e["Uniqueid"] for e in rec.named("Newchannel", Linkedid="hl-T1-2")] == [
            "hl-T1-2",
            "hl-T1-2;2",
        ]
        unnamed = await originate_agent(client, AGENTS[1], caller, timeout_ms=1000)
        assert (await rec.wait_for("OriginateResponse", ActionID=unnamed))[
            "Uniqueid"
        ] == "<unknown>"
        await client.action("Hangup", {"Channel": caller})
        await sim.wait_idle(10)
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    assert [ring["outcome"] for ring in call["rings"]] == ["no_answer"] * 3
    assert [ring["leg_id"] for ring in call["rings"]][:2] == ["hl-T1-1", "hl-T1-2"]
    assert (call["outcome"], call["hung_up_by"]) == ("abandoned", "manager")


async def test_an_unknown_technology_fails_without_a_channel() -> None:
    async with running(Scenario()) as (sim, client, rec):
        await originate_caller(client, "13900000012")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        action_id = await originate_agent(client, "Foo/1001", caller, ChannelId="hl-x")
        failure = await rec.wait_for("OriginateResponse", ActionID=action_id)
        assert (failure["Response"], failure["Reason"], failure["Uniqueid"]) == (
            "Failure",
            "0",
            "hl-x",
        )
        assert not [e for e in rec.named("Newchannel") if e["Channel"].startswith("Foo/")]
        await client.action("Hangup", {"Channel": caller})
        await sim.wait_idle(5)
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    (ring,) = call["rings"]
    assert (ring["leg_id"], ring["ring_start"], ring["outcome"]) == (None, None, "unavailable")
    assert ring["ring_end"] == stamp(failure)


async def test_channel_names_uniqueids_and_linkedid_on_bridge() -> None:
    async with running(agents_scenario(AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(2)))) as (
        sim,
        client,
        rec,
    ):
        await originate_caller(client, "13900000002")
        waiting = await rec.wait_for("UserEvent")
        caller = waiting["Channel"]
        await originate_agent(client, AGENTS[0], caller)
        await sim.wait_idle(10)
    new = rec.named("Newchannel")
    assert [e["Channel"] for e in new] == [
        "Local/13900000002@callers-00000000;1",
        "Local/13900000002@callers-00000000;2",
        f"{AGENTS[0]}-00000001;1",
        f"{AGENTS[0]}-00000001;2",
    ]
    seconds = str(int(epoch_of(sim)))
    assert [e["Uniqueid"] for e in new] == [f"{seconds}.{n}" for n in range(4)]
    assert [e["Linkedid"] for e in new] == [f"{seconds}.0"] * 2 + [f"{seconds}.2"] * 2
    agent_enter = rec.named("BridgeEnter")[1]
    assert agent_enter["Channel"].endswith("-00000001;1")
    assert agent_enter["Linkedid"] == f"{seconds}.0"  # the agent leg joins the caller's call
    assert [e.name for e in rec.events if e.name.startswith("MixMonitor")] == ["MixMonitorStart"]
    assert all("Timestamp" in e for e in rec.events if (e.get("Privilege") or "").endswith(",all"))


async def test_abandon_while_ringing_cancels_the_ring_at_the_callers_hangup() -> None:
    async with running(agents_scenario(AgentBehaviour(no_answer=1.0))) as (sim, client, rec):
        await originate_caller(client, "13900000003", patience=2)
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        action_id = await originate_agent(client, AGENTS[0], caller, timeout_ms=20000)
        hangup = await rec.wait_for("Hangup", Channel=caller)
        leg = rec.named("Newchannel", Channel=f"{AGENTS[0]}-00000001;2")[0]
        await client.action("Hangup", {"Channel": leg["Channel"]})
        failure = await rec.wait_for("OriginateResponse", ActionID=action_id)
        await sim.wait_idle(10)
    assert (failure["Response"], failure["Reason"]) == ("Failure", "0")
    assert rec.named("DialEnd", DialStatus="NOANSWER")
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    assert (call["outcome"], call["abandoned_while"], call["hung_up_by"]) == (
        "abandoned",
        "ringing",
        "caller",
    )
    assert call["ended_at"] == stamp(hangup)
    assert call["rings"][0]["outcome"] == "cancelled"
    assert call["rings"][0]["ring_end"] == call["ended_at"]


async def test_private_call_makes_the_agent_busy() -> None:
    behaviour = AgentBehaviour(private_calls_per_hour=3600 * 50, private_call_duration=Fixed(600))
    scenario = Scenario(
        agents=(AgentGroup(("PJSIP/1001",), behaviour),),
        arrivals=Arrivals(count=1, rate_per_minute=6, patience=Fixed(30)),
    )
    async with running(scenario) as (sim, client, rec):
        sim.start_arrivals()
        await rec.wait_for("DeviceStateChange", Device="PJSIP/1001", State="INUSE")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        action_id = await originate_agent(client, "PJSIP/1001", caller)
        failure = await rec.wait_for("OriginateResponse", ActionID=action_id)
        assert (failure["Response"], failure["Reason"]) == ("Failure", "5")
        busy = rec.named("Hangup", Channel=failure_channel(rec, "PJSIP/1001"))
        assert busy[0]["Cause"] == "17"
        await client.action("Hangup", {"Channel": caller})
    assert not rec.named("LocalBridge", LocalOneChannel=failure_channel(rec, "PJSIP/1001"))


def failure_channel(rec: Recorder, device: str) -> str:
    (channel,) = {e["Channel"] for e in rec.named("Newchannel") if e["Channel"].startswith(device)}
    assert channel.startswith(f"{device}-")
    assert ";" not in channel
    return channel


async def test_pjsip_agent_answers_on_one_channel() -> None:
    behaviour = AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(2))
    scenario = Scenario(agents=(AgentGroup(("PJSIP/1001",), behaviour),))
    async with running(scenario) as (sim, client, rec):
        await originate_caller(client, "13900000004")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        await originate_agent(client, "PJSIP/1001", caller)
        await sim.wait_idle(10)
    assert failure_channel(rec, "PJSIP/1001") == "PJSIP/1001-00000001"
    assert len(rec.named("LocalBridge")) == 1  # the caller's Local pair only
    assert [e["ChannelState"] for e in rec.named("Newstate", Channel="PJSIP/1001-00000001")] == [
        "5",
        "6",
    ]
    states = [e["State"] for e in rec.named("DeviceStateChange", Device="PJSIP/1001")]
    assert states == ["RINGING", "INUSE", "NOT_INUSE"]
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    assert (call["outcome"], call["answered_by"], call["hung_up_by"]) == (
        "answered",
        "PJSIP/1001",
        "agent",
    )


async def test_redirect_back_to_the_queue_and_out_of_it() -> None:
    async with running(Scenario()) as (sim, client, rec):
        await originate_caller(client, "13900000005")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        assert (
            await client.action(
                "Setvar", {"Channel": caller, "Variable": "HOTLINE_PRIORITY", "Value": "5"}
            )
        ).ok
        moved = await client.action(
            "Redirect",
            {"Channel": caller, "Context": "hotline-inbound", "Exten": "400", "Priority": "1"},
        )
        assert moved.response.get("Message") == "Redirect successful"
        await rec.until(lambda: len(rec.named("UserEvent")) == 2)
        assert rec.named("UserEvent")[1]["HotlinePriority"] == "5"
        out = await client.action(
            "Redirect", {"Channel": caller, "Context": "voicemail", "Exten": "100", "Priority": "1"}
        )
        assert out.ok
        unknown = await client.action(
            "Redirect", {"Channel": "Local/nope-00000000;1", "Context": "x"}
        )
        assert unknown.response.get("Message") == "Channel does not exist: Local/nope-00000000;1"
        await client.action("Hangup", {"Channel": caller})
        await sim.wait_idle(5)
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    assert (call["outcome"], call["hung_up_by"], call["redirect_to"]) == (
        "redirected",
        "redirect",
        "voicemail,100,1",
    )
    assert call["priority"] == 5
    assert call["arrived_at"] == stamp(rec.named("UserEvent")[0])


async def test_redirecting_a_bridged_caller_back_to_the_queue_releases_the_agent() -> None:
    sim_agent = AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(600))
    async with running(Scenario()) as (sim, client, rec):
        sim.configure_agent(AGENTS[0], sim_agent)
        await originate_caller(client, "13900000011", patience=600)
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        await originate_agent(client, AGENTS[0], caller)
        await rec.wait_for("BridgeEnter", Channel=caller)
        moved = await client.action(
            "Redirect",
            {"Channel": caller, "Context": "hotline-inbound", "Exten": "400", "Priority": "1"},
        )
        assert moved.ok
        agent = f"{AGENTS[0]}-00000001;1"
        await rec.wait_for("Hangup", Channel=agent)
        await rec.until(lambda: len(rec.named("UserEvent")) == 2)
        assert {e["Channel"] for e in rec.named("BridgeLeave")} == {caller, agent}
        assert len(rec.named("BridgeDestroy")) == 1
        assert caller in sim.channels
        await client.action("Hangup", {"Channel": caller})
        await sim.wait_idle(5)
    (call,) = [r for r in sim.ground_truth if r["type"] == "call"]
    assert (call["outcome"], call["answered_by"], call["hung_up_by"]) == (
        "answered",
        AGENTS[0],
        "manager",
    )


async def test_callback_to_a_customer_who_rings_then_answers() -> None:
    scenario = Scenario(
        agents=(AgentGroup(AGENTS[:1], AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(8))),),
        customers=CustomerBehaviour(answer_delay=Fixed(3)),
    )
    async with running(scenario) as (sim, client, rec):
        result = await client.action(
            "Originate",
            [
                ("Channel", AGENTS[0]),
                ("Context", "hotline-outbound"),
                ("Exten", "13800138888"),
                ("Timeout", "15000"),
                ("Async", "true"),
                ("CallerID", '"Callback T-8" <400>'),
                ("Variable", "HOTLINE_TICKET=T-8"),
                ("ChannelId", "cb-1"),
            ],
        )
        assert result.ok
        await sim.wait_idle(10)
    customer = "Local/13800138888@callers-00000001;1"
    ringing = rec.named("DialState", DestChannel=customer)
    assert [e["Channel"] for e in ringing] == [f"{AGENTS[0]}-00000000;1"]
    states = {e["ChannelState"]: stamp(e) for e in rec.named("Newstate", Channel=customer)}
    (record,) = [r for r in sim.ground_truth if r["type"] == "callback"]
    assert record["leg_id"] == "cb-1"
    assert (record["agent_outcome"], record["customer_outcome"], record["hung_up_by"]) == (
        "answered",
        "answered",
        "agent",
    )
    assert record["customer_answered_at"] == states["6"]
    assert states["6"] - states["5"] == pytest.approx(3.0, abs=0.5)
    agent_states = {e["ChannelState"]: stamp(e) for e in rec.named("Newstate", Uniqueid="cb-1")}
    assert (record["ring_start"], record["ring_end"]) == (agent_states["5"], agent_states["6"])
    assert record["ended_at"] == stamp(rec.named("Hangup", Uniqueid="cb-1")[0])


async def test_a_synchronous_originate_answers_once_the_outcome_is_known() -> None:
    scenario = Scenario(
        agents=(
            AgentGroup(AGENTS[:1], AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(1))),
            AgentGroup(AGENTS[1:2], AgentBehaviour(busy=1.0)),
        )
    )
    async with running(scenario) as (sim, client, rec):
        for agent, expected in (
            (AGENTS[0], "Originate successfully queued"),
            (AGENTS[1], "Originate failed"),
        ):
            result = await client.action(
                "Originate",
                {"Channel": agent, "Context": "nowhere", "Exten": "s", "Async": "false"},
            )
            assert result.response.get("Message") == expected
        await sim.wait_idle(5)
    assert rec.named("OriginateResponse") == []


async def test_status_variables_and_core_show_channels_duration() -> None:
    async with running(Scenario(), scale=20) as (sim, client, rec):
        await originate_caller(client, "13900000006")
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        await sim.clock.sleep(3.2)
        status = await client.action(
            "Status", {"Channel": caller, "Variables": "HOTLINE_QUEUE,HOTLINE_TICKET"}
        )
        (item,) = status.events
        assert item.getall("Variable") == ["HOTLINE_QUEUE=support", "HOTLINE_TICKET=(null)"]
        assert (item["Application"], item["Data"], item["Privilege"]) == ("Wait", "600", "Call")
        assert int(item["Seconds"]) in (3, 4)
        assert status.complete is not None
        assert status.complete["Items"] == "1"
        shown = await client.action("CoreShowChannels")
        durations = {e["Channel"]: e["Duration"] for e in shown.events}
        assert len(durations) == 2
        assert durations[caller] in ("00:00:03", "00:00:04")
        missing = await client.action("Status", {"Channel": "Local/none-00000009;1"})
        assert missing.response.get("Message") == "No such channel"
        text = await client.action("Command", {"Command": "core show channels"})
        assert text.response.get("Message") == "Command output follows"
        assert text.response.getall("Output")[-3:-1] == ["2 active channels", "1 active call"]
        assert caller in "".join(text.response.getall("Output"))
        value = await client.action("Getvar", {"Channel": caller, "Variable": "HOTLINE_QUEUE"})
        assert value.response.get("Value") == "support"
        await client.action("Hangup", {"Channel": caller})


async def test_callback_customer_who_does_not_answer() -> None:
    scenario = Scenario(
        agents=(AgentGroup(AGENTS[:1], AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(60))),),
        customers=CustomerBehaviour(no_answer=1.0),
    )
    async with running(scenario, scale=50) as (sim, client, rec):
        result = await client.action(
            "Originate",
            [
                ("Channel", AGENTS[0]),
                ("Context", "hotline-outbound"),
                ("Exten", "13800138888"),
                ("Priority", "1"),
                ("Timeout", "15000"),
                ("Async", "true"),
                ("CallerID", '"Callback T-9" <400>'),
                ("Variable", "HOTLINE_TICKET=T-9"),
            ],
        )
        assert result.ok
        await sim.wait_idle(10)
    (record,) = [r for r in sim.ground_truth if r["type"] == "callback"]
    assert (record["agent_outcome"], record["customer_outcome"], record["hung_up_by"]) == (
        "answered",
        "no_answer",
        "customer",
    )
    assert record["customer_answered_at"] is None
    assert record["ended_at"] - record["ring_end"] == pytest.approx(30.0, abs=1.5)
    assert rec.named("DialEnd", DialStatus="NOANSWER")[0]["Channel"].endswith(";1")


async def test_pbx_connection_loss_keeps_the_calls_and_resync_sees_them() -> None:
    async with running(agents_scenario(AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(600)))) as (
        sim,
        client,
        rec,
    ):
        await originate_caller(client, "13900000007", patience=600)
        caller = (await rec.wait_for("UserEvent"))["Channel"]
        await originate_agent(client, AGENTS[0], caller)
        await rec.wait_for("BridgeEnter", Channel=caller)
        generation = client.generation
        sim.server.drop_all()
        await spin_until(lambda: client.generation > generation, what="the client reconnected")
        shown = await client.action("CoreShowChannels")
        assert len(shown.events) == 4
        bridged = [e for e in shown.events if e["BridgeId"]]
        assert {e["Channel"] for e in bridged} == {caller, f"{AGENTS[0]}-00000001;1"}
    calls = [r for r in sim.ground_truth if r["type"] == "call"]
    assert [c["outcome"] for c in calls] == ["open"]
    assert sim.ground_truth[-1] == {"type": "end", "calls": 1, "callbacks": 0}


# -- independent clients ---------------------------------------------------------------------------


async def test_panoramisk_logs_in_runs_an_action_and_receives_events() -> None:
    from panoramisk import Manager

    async with running(Scenario()) as (sim, client, _):
        manager = Manager(
            host="127.0.0.1",
            port=sim.port,
            username="hotline",
            secret="hotline-secret",
            ping_delay=0,
            loop=asyncio.get_running_loop(),
        )
        seen: list[Any] = []
        manager.register_event("UserEvent", lambda _manager, event: seen.append(event))
        await manager.connect()
        try:
            pong = await manager.send_action({"Action": "Ping"})
            assert pong.Ping == "Pong"
            await originate_caller(client, "13900000008")
            await eventually(lambda: bool(seen))
            assert seen[0].UserEvent == "HotlineCallWaiting"
            assert seen[0].HotlineQueue == "support"
        finally:
            manager.close()


@pytest.mark.filterwarnings("ignore:notifyAll:DeprecationWarning")  # asterisk-ami's own code
async def test_asterisk_ami_client_in_a_thread() -> None:
    from asterisk.ami import AMIClient, SimpleAction

    async with running(Scenario()) as (sim, client, _):
        events: list[Any] = []
        replies: list[Any] = []
        ready = threading.Event()

        def blocking_client() -> None:
            ami = AMIClient(address="127.0.0.1", port=sim.port)
            assert ami.login(username="hotline", secret="hotline-secret").response is not None
            ami.add_event_listener(
                lambda event, **_kwargs: events.append(event), white_list=["UserEvent"]
            )
            replies.append(ami.send_action(SimpleAction("Ping")).response)
            ready.set()
            deadline = time.monotonic() + 10
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)  # polls: a blocking reference client, in its own thread
            ami.logoff()
            ami.disconnect()

        thread = threading.Thread(target=blocking_client)
        thread.start()
        await asyncio.to_thread(ready.wait, 10)
        await originate_caller(client, "13900000009")
        await asyncio.to_thread(thread.join, 15)
        assert [reply.keys.get("Ping") for reply in replies] == ["Pong"]
        assert events
        assert events[0].keys["UserEvent"] == "HotlineCallWaiting"


# -- bad input and stuck clients -------------------------------------------------------------------


async def raw_login(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"Action: Login\r\nUsername: hotline\r\nSecret: hotline-secret\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def read_response(reader: asyncio.StreamReader, action_id: str) -> Message:
    codec = AmiCodec(expect_greeting=False)
    async with asyncio.timeout(5):
        while True:
            for message in codec.feed(await reader.read(4096)):
                if message.kind == "response" and message.get("ActionID") == action_id:
                    return message


async def test_malformed_input_gets_errors_and_the_server_keeps_serving() -> None:
    async with running(Scenario()) as (sim, client, rec):
        reader, writer = await raw_login(sim.port)
        writer.write(b"this is not an action\r\nActionID: x1\r\n\r\n")
        assert (await read_response(reader, "x1"))["Message"] == "Missing action in request"
        writer.write(b"Action: Originate\r\nActionID: x2\r\nContext: hotline-inbound\r\n\r\n")
        assert (await read_response(reader, "x2"))["Message"] == "Channel not specified"
        writer.write(b"Action: Originate\r\nActionID: x3\r\nChannel: nochannel\r\n\r\n")
        assert (await read_response(reader, "x3"))["Message"] == "Invalid channel"
        writer.write(
            b"Action: Originate\r\nActionID: x4\r\nChannel: Local/1@agents\r\nTimeout: soon\r\n\r\n"
        )
        assert (await read_response(reader, "x4"))["Message"] == "Invalid timeout"
        writer.write(b"Action: Hangup\r\nActionID: x5\r\nChannel: Local/nope-00000000;1\r\n\r\n")
        assert (await read_response(reader, "x5"))["Message"] == "No such channel"
        writer.write(b"Action: NoSuchThing\r\nActionID: x6\r\n\r\n")
        assert (await read_response(reader, "x6"))["Response"] == "Error"
        writer.write(b"Action: Ping\r\nActionID: x7\r\n" + b"X" * 70_000 + b"\r\n\r\n")
        async with asyncio.timeout(5):
            rest = await reader.read()
        assert b"Response: Error" in rest
        writer.close()
        assert (await client.action("Ping")).response.get("Ping") == "Pong"
        await originate_caller(client, "13900000010")
        assert (await rec.wait_for("UserEvent"))["CallerIDNum"] == "13900000010"


async def test_a_client_that_stops_reading_is_dropped_without_stalling_the_others() -> None:
    scenario = Scenario(
        arrivals=Arrivals(bursts=(Burst(at=0, count=400, over=2),), patience=Fixed(4))
    )
    with contextlib.ExitStack() as cleanup:
        # A real-time mechanism (the sim's write timeout, in wall seconds) on a scaled
        # clock: on a virtual one the burst comes at once and every reader looks slow.
        async with running(scenario, scale=20, write_timeout=0.3, virtual=False) as (
            sim,
            client,
            rec,
        ):
            stuck = socket.create_connection(("127.0.0.1", sim.port))
            cleanup.callback(stuck.close)
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.sendall(b"Action: Login\r\nUsername: hotline\r\nSecret: hotline-secret\r\n\r\n")
            await eventually(lambda: len(sim.server.sessions) == 2)
            started = time.monotonic()
            sim.start_arrivals()
            await eventually(lambda: sim.server.slow_disconnects > 0)
            # Counted as the write times out; the session leaves once its connection is lost.
            await eventually(lambda: len(sim.server.sessions) == 1)
            assert sim.server.slow_disconnects == 1
            ping_started = time.monotonic()
            assert (await client.action("Ping")).ok
            # Generous (a loaded machine): a sim that waited on the stuck reader would hold
            # this answer behind the burst's writes to it.
            assert time.monotonic() - ping_started < 5.0
            await sim.wait_idle(30)
            assert time.monotonic() - started < 20
        assert len(rec.named("UserEvent")) == 400


# -- scenarios -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nosuch = 1", "bad.toml: nosuch: unknown key"),
        ("[arrivals]\ncount = 5", "bad.toml: arrivals.rate_per_minute: must be positive"),
        (
            '[arrivals]\ncount = 5\nrate_per_minute = 1\npatience = { dist = "gauss", mean = 1 }',
            "bad.toml: arrivals.patience: unknown distribution 'gauss'",
        ),
        (
            "[arrivals]\nduration = 5\nrate_per_minute = 1\n"
            'patience = { dist = "uniform", low = 5, high = 1 }',
            "bad.toml: arrivals.patience: low (5.0) is above high (1.0)",
        ),
        (
            '[[agents]]\ndevice = "Local/{ext}@agents"\nextensions = "20-10"',
            "bad.toml: agents[0].extensions",
        ),
        (
            '[[agents]]\ndevice = "PJSIP/1"\nno_answer = 1.5',
            "bad.toml: agents[0].no_answer: must be between",
        ),
        (
            '[[agents]]\ndevice = "PJSIP/1"\ntalk = { dist = "lognormal", mean = 3 }',
            "needs 'sigma'",
        ),
        ("[arrivals]\nrate_per_minute = 3", "rate_per_minute needs count or duration"),
        ("[arrivals\n", "bad.toml: not valid TOML"),
        (
            "[arrivals]\ncount = 2\nrate_per_minute = 1\npriorities = { high = 1 }",
            "priority keys must be integers",
        ),
    ],
)
def test_scenario_errors_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert problem.replace("bad.toml", str(path)) in message


def test_bundled_scenarios_load_and_expand_agent_ranges() -> None:
    demo, load = load_scenario("demo"), load_scenario("load")
    assert len(demo.agent_behaviours()) == 10
    assert len(load.agent_behaviours()) == 500
    assert "Local/3499@agents" in load.agent_behaviours()
    assert sum(1 for _ in generate_arrivals(load)) == 3000
    with pytest.raises(ScenarioError, match=r"nosuch\.toml: cannot read"):
        load_scenario("nosuch.toml")


# -- scale -----------------------------------------------------------------------------------------


async def test_thousand_concurrent_calls_with_five_hundred_agents() -> None:
    agents = tuple(f"Local/{ext}@agents" for ext in range(3000, 3500))
    scenario = Scenario(
        name="scale",
        noise=False,
        agents=(AgentGroup(agents, AgentBehaviour(answer_delay=Fixed(1), talk=Fixed(60))),),
        arrivals=Arrivals(bursts=(Burst(at=0, count=1000, over=2),), patience=Fixed(300)),
    )
    async with running(scenario, scale=25, write_timeout=10) as (sim, client, _):
        router = FifoRouter(client, agents, ring_timeout=15)
        router.start()
        started = time.monotonic()
        sim.start_arrivals()
        await sim.wait_idle(60)
        elapsed = time.monotonic() - started
        await router.close()
    calls = [r for r in sim.ground_truth if r["type"] == "call"]
    assert sim.peak_calls == 1000
    assert len(calls) == 1000
    assert collections.Counter(c["outcome"] for c in calls) == {"answered": 1000}
    assert len({c["answered_by"] for c in calls}) == 500
    assert sim.server.slow_disconnects == 0
    assert router.errors == []
    assert elapsed < 30
