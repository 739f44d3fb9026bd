"""The wallboard's alert rules and board (hotline/domain/alerts.py, pure), and the alert
centre (hotline/web/wall.py) on a router driven by hand: no network, no clock."""

from __future__ import annotations

import pytest

from hotline.clock import SystemClock
from hotline.config import QueueConfig, parse_settings
from hotline.domain.alerts import AlertBoard, Condition, QueueFigures, queue_conditions
from hotline.web.live import LiveHub
from hotline.web.wall import AlertCenter
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit

T0 = 1_795_712_164.0


def _figures(**changes: object) -> QueueFigures:
    base: dict[str, object] = {
        "name": "support",
        "waiting": 0,
        "longest_since": None,
        "available": 1,
        "service_level": None,
        "service_level_target": 0.8,
        "longest_wait_limit": 60.0,
    }
    return QueueFigures(**{**base, **changes})  # type: ignore[arg-type]


def _kinds(figures: QueueFigures, now: float = T0) -> list[str]:
    return [condition.kind for condition in queue_conditions(figures, now)]


def test_a_quiet_queue_raises_nothing() -> None:
    assert _kinds(_figures()) == []
    assert _kinds(_figures(service_level=0.8)) == []  # at the target is not under it
    assert _kinds(_figures(waiting=2, longest_since=T0 - 60, available=1)) == []


def test_each_rule_raises_its_alert() -> None:
    assert _kinds(_figures(service_level=0.5)) == ["service_level"]
    assert _kinds(_figures(waiting=1, longest_since=T0 - 61)) == ["long_wait"]
    assert _kinds(_figures(waiting=3, longest_since=T0 - 5, available=0)) == ["nobody_available"]
    [condition] = queue_conditions(_figures(waiting=3, longest_since=T0, available=0), T0)
    assert condition.key == "queue:support:nobody_available"
    assert condition.detail == {"queue": "support", "waiting": 3}


def test_the_board_keeps_the_first_moment_and_clears_what_ended() -> None:
    board = AlertBoard()
    busy = Condition("queue:support:nobody_available", "nobody_available", {"waiting": 1})
    assert board.replace("queue:", [busy], T0)
    assert not board.replace("queue:", [busy], T0 + 1)  # unchanged: nothing to push
    more = Condition(busy.key, busy.kind, {"waiting": 2})
    assert board.replace("queue:", [more], T0 + 2)
    assert board.alerts[busy.key].since == T0  # still the same alert
    ask = board.raise_(Condition("ask:1", "ask", {"agent_id": "2001"}), T0 + 3)
    assert [alert.condition.key for alert in board.newest_first()] == ["ask:1", busy.key]
    assert board.replace("queue:", [], T0 + 4)  # the condition ended
    assert list(board.alerts) == ["ask:1"]  # other groups untouched
    assert board.resolve("ask:1") == ask
    assert board.resolve("ask:1") is None
    assert ask.to_json() == {"id": "ask:1", "kind": "ask", "since": T0 + 3, "agent_id": "2001"}
    with pytest.raises(ValueError, match="outside"):
        board.replace("queue:", [ask.condition], T0)


class _Still(SystemClock):
    """A clock that only moves when told to."""

    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_an_ask_is_resolved_when_the_call_ends_and_queue_alerts_follow_the_router() -> None:
    settings = parse_settings(
        {
            "service": {"state_dir": "/nonexistent"},
            "queues": [{"name": "support"}],
            "agents": [{"id": "2001", "device": "Local/2001@agents", "queues": ["support"]}],
        },
        env={},
    )
    router = make_router([agent("2001")], [QueueConfig(name="support", wrap_up=0.0)])
    pbx = Pbx(router)
    clock = _Still(pbx.now)
    hub = LiveHub(settings, clock)
    hub.router = router
    center = AlertCenter(hub, clock)
    pushed: list[list[dict[str, object]]] = []
    hub.push_alerts = pushed.append  # type: ignore[method-assign]  # what the feed gets

    uid, _ = pbx.caller()
    assert center.evaluate()
    assert [alert["kind"] for alert in pushed[-1]] == ["nobody_available"]
    [offer] = originates(router.login("2001", pbx.now))
    pbx.ring(offer)
    pbx.answer(offer)
    assert center.evaluate()  # the caller is answered: nobody waits
    assert pushed[-1] == []

    call = router.call_of_agent("2001")
    assert call is not None
    first = center.ask("2001", "Ann", call, "help")
    assert center.ask("2001", "Ann", call, "again") == first  # one per call
    assert [alert["id"] for alert in pushed[-1]] == [first.condition.key]
    assert pushed[-1][0]["ticket"] == call.ticket
    assert not center.evaluate()  # still on the call: nothing changes
    center.agent_joined("2002")  # another agent's call: nothing
    assert len(center.board.alerts) == 1
    center.agent_joined("2001")  # a supervisor listens from the tile: answered
    assert pushed[-1] == []
    center.ask("2001", "Ann", call, "once more")

    pbx.hangup(uid, call.channel)
    assert center.evaluate()
    assert pushed[-1] == []
