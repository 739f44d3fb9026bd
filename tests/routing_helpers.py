"""Building blocks for router tests: configuration and PBX-like domain events."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from hotline.config import AgentConfig, QueueConfig, RoutingConfig
from hotline.domain.effects import Effect, OriginateAgentLeg
from hotline.domain.events import (
    CallerWaiting,
    ChannelBridged,
    ChannelHungUp,
    ChannelState,
    DeviceStateChanged,
    DialResult,
    LegChannelCreated,
    LineState,
    OriginateResult,
)
from hotline.domain.routing import Router, TicketAllocator
from hotline.pbx.translate import device_status, originate_reason
from hotline.ticketno import MemorySequenceStore, TicketNumbers

T0 = 1_795_712_164.0


def agent(agent_id: str, queues: Iterable[str] = ("support",), **skills: int) -> AgentConfig:
    return AgentConfig(
        id=agent_id,
        name=f"Agent {agent_id}",
        device=f"Local/{agent_id}@agents",
        skills=skills,
        queues=tuple(queues),
    )


def make_router(
    agents: Iterable[AgentConfig],
    queues: Iterable[QueueConfig] = (QueueConfig(name="support", wrap_up=5.0),),
    *,
    tickets: TicketAllocator | None = None,
    **routing: object,
) -> Router:
    """A router on ``RoutingConfig(**routing)``; tickets from a fresh in-memory pool unless
    ``tickets`` allocates them."""
    numbers = TicketNumbers("A", ZoneInfo("UTC"), MemorySequenceStore())
    return Router(
        RoutingConfig(**routing),  # type: ignore[arg-type]
        {queue.name: queue for queue in queues},
        list(agents),
        tickets or numbers,
    )


def originates(effects: Iterable[Effect]) -> list[OriginateAgentLeg]:
    return [effect for effect in effects if isinstance(effect, OriginateAgentLeg)]


class Pbx:
    """Makes the domain events the PBX would cause, with consistent ids and times."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.now = T0
        self._ids = itertools.count(1)

    def advance(self, seconds: float) -> list[Effect]:
        self.now += seconds
        return self.router.tick(self.now)

    def caller(
        self, queue: str = "support", priority: int = 0, number: str | None = None, **kw: object
    ) -> tuple[str, list[Effect]]:
        uid = f"{int(self.now)}.{next(self._ids)}"
        event = CallerWaiting(
            at=self.now,
            source="pbx",
            uniqueid=uid,
            channel=f"Local/{number or uid}@callers-0000{uid[-4:]};1",
            linkedid=uid,
            number=number or f"139{uid.replace('.', '')[-8:]}",
            name="Caller",
            queue=queue,
            priority=priority,
            **kw,  # type: ignore[arg-type]
        )
        return uid, self.router.handle(event, self.now)

    def leg_created(self, offer: OriginateAgentLeg) -> list[Effect]:
        channel = f"{offer.device}-0000abcd;1"
        return self.router.handle(
            LegChannelCreated(self.now, "pbx", offer.offer_id, channel), self.now
        )

    def ring(self, offer: OriginateAgentLeg) -> list[Effect]:
        effects = self.leg_created(offer)
        channel = f"{offer.device}-0000abcd;1"
        return effects + self.router.handle(
            ChannelState(self.now, "pbx", offer.offer_id, channel, LineState.RINGING), self.now
        )

    def answer(self, offer: OriginateAgentLeg) -> list[Effect]:
        channel = f"{offer.device}-0000abcd;1"
        effects = self.router.handle(
            ChannelState(self.now, "pbx", offer.offer_id, channel, LineState.UP), self.now
        )
        effects += self.router.handle(
            OriginateResult(
                self.now, "pbx", offer.offer_id, offer.offer_id, True, DialResult.ANSWERED
            ),
            self.now,
        )
        return effects + self.router.handle(
            ChannelBridged(self.now, "pbx", offer.offer_id, channel, "bridge-1"), self.now
        )

    def fail(self, offer: OriginateAgentLeg, reason: int) -> list[Effect]:
        """The Originate failed with AMI ``Reason`` ``reason``, decoded as the translator does."""
        result = originate_reason(reason)
        return self.router.handle(
            OriginateResult(self.now, "pbx", offer.offer_id, offer.offer_id, False, result),
            self.now,
        )

    def hangup(self, uniqueid: str, channel: str = "x", cause: int = 16) -> list[Effect]:
        return self.router.handle(
            ChannelHungUp(self.now, "pbx", uniqueid, channel, cause), self.now
        )

    def device(self, device: str, state: str) -> list[Effect]:
        """A ``DeviceStateChange`` to AMI's ``state`` word, decoded as the translator does."""
        event = DeviceStateChanged(self.now, "pbx", device, device_status(state))
        return self.router.handle(event, self.now)
