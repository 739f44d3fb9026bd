"""The router prefers an agent who speaks the caller's language (HotlineLang, set by the IVR)."""

from __future__ import annotations

import pytest

from hotline.ami.codec import Message
from hotline.domain.events import CallerWaiting
from hotline.pbx.translate import translate
from tests.routing_helpers import Pbx, agent, make_router, originates

pytestmark = pytest.mark.unit


def _router_with_two_idle_agents() -> tuple[Pbx, list[str]]:
    # 2001 (Chinese only) has been idle longest, so without a language it is offered first.
    router = make_router([agent("2001", zh=5), agent("2002", en=5, zh=3)])
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    pbx.now += 1.0
    router.login("2002", pbx.now)
    pbx.now += 1.0
    return pbx, ["2001", "2002"]


def test_an_english_caller_is_offered_to_the_english_speaker_first() -> None:
    """HotlineLang en: the en-skilled agent is offered although the other idled longer."""
    pbx, _ = _router_with_two_idle_agents()
    _, effects = pbx.caller(lang="en")
    [offer] = originates(effects)
    assert offer.device == "Local/2002@agents"


def test_without_a_language_the_strategy_decides() -> None:
    """No HotlineLang: least recent (the longest idle agent) as before."""
    pbx, _ = _router_with_two_idle_agents()
    _, effects = pbx.caller()
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"


def test_a_language_nobody_speaks_still_reaches_an_agent() -> None:
    """HotlineLang fr: no speaker, so any eligible agent (the preference never blocks a call)."""
    pbx, _ = _router_with_two_idle_agents()
    _, effects = pbx.caller(lang="fr")
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"


def test_the_agent_the_caller_asked_for_is_offered_first() -> None:
    """HotlineAgent 2002 (the IVR's "agent handling your case") beats idle time and language."""
    pbx, _ = _router_with_two_idle_agents()
    _, effects = pbx.caller(preferred_agent="2002")
    [offer] = originates(effects)
    assert offer.device == "Local/2002@agents"


def test_an_unavailable_asked_for_agent_does_not_block_the_call() -> None:
    """The asked-for agent is busy: the call goes to another eligible agent at once."""
    pbx, _ = _router_with_two_idle_agents()
    pbx.router.logout("2002", pbx.now)
    _, effects = pbx.caller(preferred_agent="2002")
    [offer] = originates(effects)
    assert offer.device == "Local/2001@agents"


def test_the_translator_reads_hotline_agent() -> None:
    """The UserEvent's HotlineAgent header becomes CallerWaiting.preferred_agent."""
    headers = [
        ("Event", "UserEvent"),
        ("UserEvent", "HotlineCallWaiting"),
        ("Channel", "Local/13900139000@callers-00000001;1"),
        ("Uniqueid", "1795711228.1"),
        ("Linkedid", "1795711228.1"),
        ("CallerIDNum", "13900139000"),
        ("HotlineQueue", "repair"),
        ("HotlinePriority", "1"),
        ("HotlineLang", "en"),
        ("HotlineAgent", "2002"),
    ]
    message = Message("".join(f"{key}: {value}\r\n" for key, value in headers) + "\r\n")
    event = translate(message, 0.0)
    assert isinstance(event, CallerWaiting)
    assert (event.preferred_agent, event.lang, event.queue) == ("2002", "en", "repair")
