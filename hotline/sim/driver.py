"""A naive first-in-first-out router that drives the simulated PBX in benchmarks and tests.

It is *not* Hotline's ACD (that is :mod:`hotline.engine`); it only makes
traffic flow through the sim over a real AMI connection, the way the contract
says a router does: on ``UserEvent: HotlineCallWaiting`` it queues the caller;
whenever an agent is free it sends ``Originate Channel=<agent>
Context=hotline-bridge`` with ``HOTLINE_CALLER``/``HOTLINE_TICKET`` and a
``ChannelId``; the agent is free again once that leg's ``;1`` hangs up (or its
``OriginateResponse`` fails without a channel); a caller whose leg failed goes
back to the head of the queue. It reads only the headers of the few events it
uses, like a real consumer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Callable, Iterable
from typing import ClassVar

from hotline.ami.client import ActionResult, AmiClient, Disconnected, Subscription
from hotline.ami.codec import Message

__all__ = ["FifoRouter"]


class FifoRouter:
    """Offers waiting callers to free agents, first come first served."""

    def __init__(
        self, client: AmiClient, agents: Iterable[str], *, ring_timeout: float = 15.0
    ) -> None:
        """``agents`` are device strings; ``ring_timeout`` is scenario seconds."""
        self.client = client
        self.free: collections.deque[str] = collections.deque(agents)
        self.ring_timeout = ring_timeout
        self.waiting: collections.deque[str] = collections.deque()
        self.callers: dict[str, tuple[str, str]] = {}
        self.legs: dict[str, tuple[str, str]] = {}
        self.legs_with_channel: set[str] = set()
        self.events = 0
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._subscription: Subscription = client.subscribe("fifo-router", maxsize=1_000_000)
        self._task: asyncio.Task[None] | None = None
        self.disconnected = asyncio.Event()

    def start(self) -> None:
        """Start consuming events."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fifo-router")

    async def close(self) -> None:
        """Stop consuming events."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._subscription.close()

    async def _run(self) -> None:
        subscription = self._subscription
        while True:
            for item in await subscription.get_batch():
                if isinstance(item, Message):
                    self.events += 1
                    self._on_event(item)
                elif isinstance(item, Disconnected):
                    self.disconnected.set()
            self._dispatch()

    def _on_event(self, message: Message) -> None:
        handler = self._HANDLERS.get(message.name)
        if handler is not None:
            handler(self, message)

    def _on_user_event(self, message: Message) -> None:
        if message.get("UserEvent") == "HotlineCallWaiting":
            channel = message.get("Channel") or ""
            if channel not in self.callers:
                number = message.get("CallerIDNum") or ""
                self.callers[channel] = (number, message.get("CallerIDName") or "")
                self.waiting.append(channel)

    def _on_newchannel(self, message: Message) -> None:
        uniqueid = message.get("Uniqueid") or ""
        if uniqueid in self.legs:
            self.legs_with_channel.add(uniqueid)

    def _on_hangup(self, message: Message) -> None:
        uniqueid = message.get("Uniqueid") or ""
        leg = self.legs.pop(uniqueid, None)
        if leg is not None:
            self.legs_with_channel.discard(uniqueid)
            self.free.append(leg[0])
        else:
            self.callers.pop(message.get("Channel") or "", None)

    def _on_bridge_enter(self, message: Message) -> None:
        self.callers.pop(message.get("Channel") or "", None)

    def _on_originate_response(self, message: Message) -> None:
        if message.get("Response") == "Failure":
            self._leg_failed(message.get("Uniqueid") or "")

    _HANDLERS: ClassVar[dict[str, Callable[[FifoRouter, Message], None]]] = {
        "UserEvent": _on_user_event,
        "Newchannel": _on_newchannel,
        "Hangup": _on_hangup,
        "BridgeEnter": _on_bridge_enter,
        "OriginateResponse": _on_originate_response,
    }

    def _leg_failed(self, leg_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is None:
            return
        agent, caller = leg
        if leg_id not in self.legs_with_channel:
            del self.legs[leg_id]
            self.free.append(agent)
        if caller in self.callers:
            self.waiting.appendleft(caller)

    def _dispatch(self) -> None:
        while self.waiting and self.free:
            caller = self.waiting.popleft()
            if caller not in self.callers:
                continue
            agent = self.free.popleft()
            leg_id = f"fifo-{next(self._ids)}"
            self.legs[leg_id] = (agent, caller)
            number, name = self.callers[caller]
            reply = self.client.send(
                "Originate",
                [
                    ("Channel", agent),
                    ("Context", "hotline-bridge"),
                    ("Exten", "s"),
                    ("Priority", "1"),
                    ("Timeout", str(int(self.ring_timeout * 1000))),
                    ("Async", "true"),
                    ("CallerID", f'"{name}" <{number}>'),
                    ("ChannelId", leg_id),
                    ("Variable", f"HOTLINE_CALLER={caller}"),
                    ("Variable", f"HOTLINE_TICKET=T{leg_id}"),
                ],
            )
            reply.add_done_callback(self._check_reply)

    def _check_reply(self, future: asyncio.Future[ActionResult]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.errors.append(str(error))
        elif not future.result().ok:
            self.errors.append(future.result().response.get("Message") or "Originate failed")


async def _drive(port: int, agents: list[str], ring_timeout: float, secret: str) -> None:
    from hotline.ami.client import AmiSettings
    from hotline.secret import Secret

    settings = AmiSettings(port=port, secret=Secret(secret), reconnect_max=1.0)
    client = AmiClient(settings, name="fifo-router")
    router = FifoRouter(client, agents, ring_timeout=ring_timeout)
    await client.start()
    await client.wait_connected(10)
    router.start()
    try:
        await router.disconnected.wait()
    finally:
        await router.close()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m hotline.sim.driver --port P --scenario NAME``: route until the sim goes away."""
    import argparse

    from hotline.sim.amiserver import ServerCredentials
    from hotline.sim.scenario import load_scenario

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", required=True, help="the agents are the scenario's")
    parser.add_argument("--ring-timeout", type=float, default=15.0)
    parser.add_argument("--secret", default=ServerCredentials().secret)
    args = parser.parse_args(argv)
    agents = list(load_scenario(args.scenario).agent_behaviours())
    asyncio.run(_drive(args.port, agents, args.ring_timeout, args.secret))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
