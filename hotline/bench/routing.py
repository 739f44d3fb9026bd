"""``hotline bench routing``: routing decision latency with a loaded ACD, and pipeline speed.

The ACD holds 500 agents in 50 queues (10 per queue) and 1,000 waiting callers:
45 queues have every agent on a call and callers waiting; 5 queues have idle
agents. Two decisions are timed, each from the AMI bytes in to the Originate
bytes out (codec -> translator -> router -> action encoding):

* ``caller_waiting``: a ``HotlineCallWaiting`` UserEvent for a queue with an idle
  agent (the agent is then freed again, untimed);
* ``agent_free``: the ``Hangup`` of an agent's leg ends a call (wrap-up 0), and the
  agent takes the head of its queue's waiting list (untimed: a new caller's
  arrival, which keeps 1,000 callers waiting).

Then the pipeline: the AMI bytes a client receives while the real service
routes 1,000 sim callers (500 agents, noise on) are recorded, and replayed on
one core through codec -> translator -> router -> action encoding; events per
CPU second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from typing import Any

from hotline.ami.codec import AmiCodec, encode_action, encode_message
from hotline.bench.common import emit
from hotline.config import AgentConfig, QueueConfig, RoutingConfig, Settings
from hotline.domain.effects import Effect, HangupChannel, OriginateAgentLeg, RedirectChannel
from hotline.domain.events import (
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DialResult,
    LineState,
    OriginateResult,
)
from hotline.domain.routing import Router
from hotline.pbx.actions import to_action
from hotline.pbx.translate import translate
from hotline.sim.harness import start_stack
from hotline.sim.scenario import load_scenario

__all__ = ["run"]

QUEUES = 50
AGENTS_PER_QUEUE = 10
WAITING = 1000
IDLE_QUEUES = 5


class _Bench:
    def __init__(self) -> None:
        queues = {f"q{i:02d}": QueueConfig(name=f"q{i:02d}", wrap_up=0.0) for i in range(QUEUES)}
        agents = [
            AgentConfig(
                id=f"a{q:02d}{n}",
                name=f"Agent {q}-{n}",
                device=f"PJSIP/{1000 + q * AGENTS_PER_QUEUE + n}",
                queues=(f"q{q:02d}",),
            )
            for q in range(QUEUES)
            for n in range(AGENTS_PER_QUEUE)
        ]
        self.sequence = 0
        self._last: OriginateAgentLeg | None = None
        self.router = Router(RoutingConfig(), queues, agents, self._ticket)
        self.codec = AmiCodec(expect_greeting=False)
        self.now = 1_795_712_164.0
        self.uid = 0
        for agent in agents:
            self.router.login(agent.id, self.now)
        self.talking: dict[str, list[str]] = {f"q{i:02d}": [] for i in range(QUEUES)}
        for q in range(QUEUES - IDLE_QUEUES):
            for _ in range(AGENTS_PER_QUEUE):
                self._answer_all(self._arrive(f"q{q:02d}"))
        for i in range(WAITING):
            self._arrive(f"q{i % (QUEUES - IDLE_QUEUES):02d}")

    def _ticket(self, number: str, now: float) -> str:  # noqa: ARG002 (the TicketAllocator signature)
        self.sequence += 1
        return f"T20261126-B{self.sequence:06d}"

    def _user_event(self, queue: str) -> bytes:
        self.uid += 1
        uid = f"1795712164.{self.uid}"
        return encode_message(
            [
                ("Event", "UserEvent"),
                ("Privilege", "user,all"),
                ("Timestamp", f"{self.now:.6f}"),
                ("Channel", f"PJSIP/trunk-{self.uid:08x}"),
                ("ChannelState", "6"),
                ("ChannelStateDesc", "Up"),
                ("CallerIDNum", f"139{self.uid:08d}"),
                ("CallerIDName", "Bench Caller"),
                ("ConnectedLineNum", "<unknown>"),
                ("ConnectedLineName", "<unknown>"),
                ("Language", "en"),
                ("AccountCode", ""),
                ("Context", "hotline-inbound"),
                ("Exten", "400"),
                ("Priority", "5"),
                ("Uniqueid", uid),
                ("Linkedid", uid),
                ("UserEvent", "HotlineCallWaiting"),
                ("HotlineQueue", queue),
                ("HotlinePriority", str(self.uid % 3)),
            ]
        )

    def _hangup_bytes(self, uniqueid: str) -> bytes:
        return encode_message(
            [
                ("Event", "Hangup"),
                ("Privilege", "call,all"),
                ("Timestamp", f"{self.now:.6f}"),
                ("Channel", f"PJSIP/x-{uniqueid}"),
                ("Uniqueid", uniqueid),
                ("Cause", "16"),
                ("Cause-txt", "Normal Clearing"),
            ]
        )

    def _feed(self, data: bytes) -> list[bytes]:
        """Bytes in -> Originate bytes out: the timed path."""
        written = []
        for message in self.codec.feed(data):
            event = translate(message, self.now)
            if event is None:
                continue
            for effect in self.router.handle(event, self.now):
                if isinstance(effect, OriginateAgentLeg):
                    name, headers, action_id = to_action(effect)
                    written.append(encode_action(name, headers, action_id=action_id))
                    self._last = effect
        return written

    def _arrive(self, queue: str) -> list[Effect]:
        before = len(self.router.offers)
        self._last = None
        self._feed(self._user_event(queue))
        return [self._last] if self._last is not None and len(self.router.offers) > before else []

    def _answer_all(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, OriginateAgentLeg):
                self._answer(effect)

    def _answer(self, leg: OriginateAgentLeg) -> None:
        router, now, offer_id = self.router, self.now, leg.offer_id
        router.handle(ChannelState(now, "pbx", offer_id, f"{leg.device}-1", LineState.UP), now)
        router.handle(
            OriginateResult(now, "pbx", offer_id, offer_id, True, DialResult.ANSWERED), now
        )
        router.handle(ChannelBridged(now, "pbx", offer_id, f"{leg.device}-1", "b"), now)
        queue = router.offers[offer_id].queue
        self.talking[queue].append(offer_id)

    def _finish(self, offer_id: str) -> None:
        offer = self.router.offers[offer_id]
        now = self.now
        self.router.handle(ChannelHungUp(now, "pbx", offer.call_id, "caller", 16), now)

    def time_caller_waiting(self, iterations: int) -> list[float]:
        samples = []
        for i in range(iterations):
            queue = f"q{QUEUES - IDLE_QUEUES + i % IDLE_QUEUES:02d}"
            data = self._user_event(queue)
            started = time.perf_counter_ns()
            written = self._feed(data)
            samples.append((time.perf_counter_ns() - started) / 1e6)
            assert len(written) == 1, "the caller should have been offered at once"
            leg = self._last
            assert leg is not None
            self._answer(leg)
            self.talking[queue].remove(leg.offer_id)
            self._finish(leg.offer_id)
            self._feed(self._hangup_bytes(leg.offer_id))
            self.now += 0.01
        return samples

    def time_agent_free(self, iterations: int) -> list[float]:
        samples = []
        for i in range(iterations):
            queue = f"q{i % (QUEUES - IDLE_QUEUES):02d}"
            offer_id = self.talking[queue].pop(0)
            data = self._hangup_bytes(offer_id)
            started = time.perf_counter_ns()
            written = self._feed(data)
            samples.append((time.perf_counter_ns() - started) / 1e6)
            assert len(written) == 1, "the freed agent should take the head of the queue"
            assert self._last is not None
            self._finish(offer_id)
            self._answer(self._last)
            self._arrive(queue)
            self.now += 0.01
        return samples


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _record_stream(calls: int) -> tuple[bytes, Settings]:
    """The bytes an AMI client receives while the service routes ``calls`` sim callers."""
    scenario = load_scenario("load")
    assert scenario.arrivals is not None
    arrivals = dataclasses.replace(
        scenario.arrivals, count=calls, duration=None, rate_per_minute=600, bursts=()
    )
    stack = await start_stack(
        dataclasses.replace(scenario, arrivals=arrivals), time_scale=50.0, record_facts=False
    )
    recorded = bytearray()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.sim.port)
        writer.write(
            encode_action(
                "Login",
                {
                    "Username": "hotline",
                    "Secret": stack.settings.ami.secret.reveal(),
                    "Events": "on",
                },
            )
        )
        await stack.login_all()
        stack.sim.start_arrivals()
        idle = asyncio.ensure_future(stack.sim.wait_idle())
        while not idle.done():
            chunk = await reader.read(65536)
            if not chunk:
                break
            recorded += chunk
        writer.close()
    finally:
        await stack.close()
    return bytes(recorded), stack.settings


def _replay(stream: bytes, settings: Settings) -> tuple[int, float]:
    """Feed the recorded stream through codec, translator, router and action encoding."""
    router = Router(
        settings.routing,
        dict(settings.queues),
        settings.agents.values(),
        lambda number, _now: f"T20261126-R{number}",
    )
    for agent_id in settings.agents:
        router.login(agent_id, 0.0)
    codec = AmiCodec()
    messages = 0
    started = time.process_time()
    now = 0.0
    for offset in range(0, len(stream), 65536):
        for message in codec.feed(stream[offset : offset + 65536]):
            messages += 1
            event = translate(message, now)
            if event is None:
                continue
            now = event.at
            for effect in router.handle(event, now):
                if isinstance(effect, OriginateAgentLeg | HangupChannel | RedirectChannel):
                    name, headers, action_id = to_action(effect)
                    encode_action(name, headers, action_id=action_id)
    return messages, time.process_time() - started


def run(iterations: int = 5000, pipeline_calls: int = 1000) -> None:
    """Build the loaded ACD, time both decisions, print one JSON line each; then the pipeline."""
    bench = _Bench()
    waiting = len(bench.router.waiting_calls())
    for name, timer in (
        ("caller_waiting", bench.time_caller_waiting),
        ("agent_free", bench.time_agent_free),
    ):
        samples = timer(iterations)
        record: dict[str, Any] = {
            "bench": "routing",
            "decision": name,
            "agents": QUEUES * AGENTS_PER_QUEUE,
            "queues": QUEUES,
            "waiting_callers": waiting,
            "iterations": iterations,
            "p50_ms": round(statistics.median(samples), 4),
            "p99_ms": round(_percentile(samples, 0.99), 4),
            "max_ms": round(max(samples), 4),
            "goal_p99_ms": 2.0,
        }
        emit(record)
    if pipeline_calls:
        stream, settings = asyncio.run(_record_stream(pipeline_calls))
        messages, cpu = _replay(stream, settings)
        emit(
            {
                "bench": "routing",
                "pipeline": "codec+translator+router+actions",
                "calls": pipeline_calls,
                "agents": len(settings.agents),
                "messages": messages,
                "cpu_s": round(cpu, 3),
                "events_per_s": round(messages / cpu),
                "goal_events_per_s": 20_000,
            }
        )
