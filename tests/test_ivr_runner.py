"""The IVR runner behind the real FastAGI server, driven by the simulated PBX's AGI channel."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.agi.server import AgiConfig, AgiServer
from hotline.ivr.runner import CallerInfo, FlowHolder, IvrRunner
from hotline.sim.agi import (
    HANG_UP,
    AgiCallResult,
    IvrDialplan,
    arrival_after_ivr,
    ivr_arrival,
    run_agi,
)
from hotline.sim.scenario import Arrival, IvrCallers

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parent.parent / "ivr_flows"
OPEN = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
HOLIDAY = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)  # 1 October, 10:00 in Shanghai


@dataclass
class MemoryServices:
    """IvrServices over dictionaries (the store-backed one is tested end to end)."""

    moment: datetime = OPEN
    callers: dict[str, CallerInfo] = field(default_factory=dict)
    callbacks: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)

    async def caller(self, number: str) -> CallerInfo:
        return self.callers.get(number, CallerInfo())

    async def schedule_callback(
        self, number: str, queue: str, language: str, due_at: datetime
    ) -> str | None:
        self.callbacks.append((number, queue, language, due_at))
        return "T-1"

    async def record_survey(self, uniqueid: str, score: int) -> bool:
        self.scores.setdefault(uniqueid, score)
        return True

    def now(self) -> datetime:
        return self.moment


@dataclass
class Ivr:
    server: AgiServer
    services: MemoryServices
    runner: IvrRunner

    async def call(
        self, dtmf: Sequence[str], *, script: str = "main", number: str = "13700137000"
    ) -> AgiCallResult:
        return await run_agi(
            "127.0.0.1",
            self.server.port,
            script=script,
            channel=f"Local/{number}@callers-00000047;1",
            uniqueid="1795712399.147",
            callerid=number,
            dtmf=dtmf,
        )


@pytest.fixture
async def ivr(tmp_path: Path) -> AsyncIterator[Ivr]:
    flows = tmp_path / "flows"
    shutil.copytree(SHIPPED, flows)
    services = MemoryServices()
    runner = IvrRunner(FlowHolder(flows), services)
    server = AgiServer(runner, AgiConfig(listen="127.0.0.1:0"))
    await server.start()
    try:
        yield Ivr(server, services, runner)
    finally:
        await server.close()


async def test_chinese_caller_pressing_1_then_2_goes_to_repair(ivr: Ivr) -> None:
    """1 中文, 1 repair, 2 ordinary: the repair queue with its skill, Chinese prompts."""
    result = await ivr.call(["1", "1", "2"])
    assert result.variables == {
        "HOTLINE_LANG": "zh",
        "HOTLINE_QUEUE": "repair",
        "HOTLINE_PRIORITY": "1",
        "HOTLINE_SKILLS": "repair",
        "HOTLINE_IVR_RESULT": "queued",
    }
    assert result.prompts[0] == "hotline/zh/welcome"
    assert result.prompts[-1] == "hotline/zh/please_wait"
    assert not result.hung_up
    assert ivr.server.stats.failed == 0


async def test_english_emergency_gets_a_higher_priority(ivr: Ivr) -> None:
    """2 English, 1 repair, 1 water leak: priority 5, HOTLINE_LANG=en, English prompts."""
    result = await ivr.call(["2", "1", "1"])
    assert result.variables["HOTLINE_LANG"] == "en"
    assert result.variables["HOTLINE_PRIORITY"] == "5"
    assert result.variables["HOTLINE_QUEUE"] == "repair"
    assert "hotline/en/repair_menu" in result.prompts


async def test_invalid_then_no_input_then_fail_path(ivr: Ivr) -> None:
    """An invalid key plays the invalid prompt; three failed tries go to the operator."""
    result = await ivr.call(["1", "7", "", "9"])
    assert result.prompts.count("hotline/zh/invalid_choice") == 2
    assert result.prompts.count("hotline/zh/main_menu") == 3
    assert result.variables["HOTLINE_QUEUE"] == "support"
    assert result.variables["HOTLINE_IVR_RESULT"] == "queued"


async def test_hang_up_mid_menu_sets_nothing_more(ivr: Ivr) -> None:
    """The caller hangs up in the main menu: no queue is set, the session counts a hang-up."""
    result = await ivr.call(["1", HANG_UP])
    assert result.hung_up
    assert "HOTLINE_QUEUE" not in result.variables
    async with asyncio.timeout(30):
        while ivr.server.stats.active:  # noqa: ASYNC110 - the server task's counters
            await asyncio.sleep(0.01)
    assert ivr.server.stats.hangups == 1
    assert ivr.server.stats.failed == 0


async def test_after_hours_on_a_holiday_schedules_a_callback(ivr: Ivr) -> None:
    """On 1 October (a holiday in the calendar) the caller is offered a callback and hung up."""
    ivr.services.moment = HOLIDAY
    result = await ivr.call(["2"], number="13900139000")
    # Due when the office next opens: 2026-10-08 (the first working day after the
    # National Day holidays), 09:00 in Shanghai.
    assert ivr.services.callbacks == [
        ("13900139000", "support", "en", datetime(2026, 10, 8, 1, 0, tzinfo=UTC))
    ]
    assert result.variables["HOTLINE_CALLBACK_TICKET"] == "T-1"
    assert result.variables["HOTLINE_IVR_RESULT"] == "callback"
    assert result.prompts[-1] == "hotline/en/after_hours"
    assert result.commands[-1] == "HANGUP"


async def test_open_ticket_caller_asks_for_their_agent(ivr: Ivr) -> None:
    """A caller with an open ticket who presses 1 gets HOTLINE_STICKY_AGENT set."""
    ivr.services.callers["13700137000"] = CallerInfo(ticket="T-9", agent="2001")
    result = await ivr.call(["1", "1", "3"])
    assert result.variables["HOTLINE_STICKY_AGENT"] == "2001"
    assert result.variables["HOTLINE_QUEUE"] == "support"


async def test_survey_score_is_recorded_once(ivr: Ivr) -> None:
    """The survey stores 4 for the call; a 0 first is invalid and asked again."""
    result = await ivr.call(["0", "4"], script="survey")
    assert ivr.services.scores == {"1795712399.147": 4}
    assert result.variables["HOTLINE_SURVEY_SCORE"] == "4"
    assert result.hung_up


async def test_survey_without_answer_or_hang_up_stores_nothing(ivr: Ivr) -> None:
    """No input twice, or a hang-up mid-survey: no score."""
    await ivr.call(["", ""], script="survey")
    await ivr.call([HANG_UP], script="survey")
    assert ivr.services.scores == {}


async def test_unknown_flow_returns_to_the_dialplan(ivr: Ivr) -> None:
    """agi://.../nosuch: the session ends without setting anything; defaults then apply."""
    result = await ivr.call([], script="nosuch")
    assert result.variables == {}
    assert result.commands == ["VERBOSE \"hotline: no IVR flow 'nosuch'\" 1"]


NODES_FLOW = """\
start: unit
nodes:
  unit:
    type: collect
    prompt: main_menu
    variable: HOTLINE_UNIT
    pattern: "[0-9]{4}"
    max_digits: 4
    timeout: 4
    retries: 1
    invalid: invalid_choice
    next: route
    fail: voicemail
  route: {type: menu, prompt: repair_menu, options: {"1": transfer, "2": voicemail}}
  transfer: {type: transfer, context: hotline-operator, exten: "100", priority: 2,
             prompt: please_wait}
  voicemail: {type: voicemail, prompt: goodbye}
"""


@pytest.fixture
async def nodes(ivr: Ivr) -> Ivr:
    """The shipped flows plus ``nodes`` (collect, menu, transfer, voicemail), loaded."""
    (ivr.runner.holder.directory / "nodes.yaml").write_text(NODES_FLOW, encoding="utf-8")
    assert ivr.runner.holder.reload() == []
    return ivr


async def test_collect_stores_the_digits_and_transfer_sends_the_caller_on(nodes: Ivr) -> None:
    """A 4-digit unit number lands in the collect node's variable; the transfer node plays
    its prompt and points the channel at its dialplan target (SET CONTEXT/EXTENSION/PRIORITY)."""
    result = await nodes.call(["1203", "1"], script="nodes")
    assert result.variables == {"HOTLINE_UNIT": "1203", "HOTLINE_IVR_RESULT": "transfer"}
    assert result.commands[0] == "GET DATA hotline/zh/main_menu 4000 4"
    assert result.commands[-3:] == [
        "SET CONTEXT hotline-operator",
        "SET EXTENSION 100",
        "SET PRIORITY 2",
    ]
    assert result.location == ("hotline-operator", "100", "2")
    assert result.prompts[-1] == "hotline/zh/please_wait"
    assert not result.hung_up
    assert arrival_after_ivr(result, "13700137000") is None  # the caller does not queue
    assert nodes.server.stats.failed == 0


async def test_collect_rejects_bad_input_then_fails_over_to_voicemail(nodes: Ivr) -> None:
    """12 (too short) plays the invalid prompt; no input on the retry takes the fail
    link: voicemail, i.e. hotline-voicemail,s,1 after its prompt, no variable collected."""
    result = await nodes.call(["12", ""], script="nodes")
    assert "HOTLINE_UNIT" not in result.variables
    assert result.prompts == [
        "hotline/zh/main_menu",
        "hotline/zh/invalid_choice",
        "hotline/zh/main_menu",
        "hotline/zh/goodbye",
    ]
    assert result.variables["HOTLINE_IVR_RESULT"] == "voicemail"
    assert result.location == ("hotline-voicemail", "s", "1")
    assert not result.hung_up


async def test_menu_choice_to_voicemail(nodes: Ivr) -> None:
    """A valid unit, then 2 at the menu: the voicemail node."""
    result = await nodes.call(["0042", "2"], script="nodes")
    assert result.variables["HOTLINE_UNIT"] == "0042"
    assert result.location == ("hotline-voicemail", "s", "1")


async def test_agi_server_unreachable_falls_back_to_the_default_queue(ivr: Ivr) -> None:
    """HOTLINE_IVR=yes with nothing listening on the AGI port: AGI() fails
    (AGISTATUS=FAILURE) and the sample dialplan queues the caller on its defaults."""
    port = ivr.server.port
    await ivr.server.close()
    dialplan = IvrDialplan("127.0.0.1", port, default_queue="support", default_priority=0)
    caller = Arrival(
        3.0,
        "13700137000",
        "Qian Yi",
        "repair",
        5,
        ("repair",),
        "en",
        60.0,
        ivr=IvrCallers(dtmf=("2", "1", "1")),
    )
    result, waiting = await ivr_arrival(dialplan, caller, "1795712399.147")
    assert result.status == "FAILURE"
    assert result.commands == []
    assert waiting == Arrival(
        3.0, "13700137000", "Qian Yi", "support", 0, (), None, 60.0, ivr=caller.ivr
    )
    assert ivr.runner.survey_offered == 0


async def test_surveys_reach_the_metrics_with_the_channels_queue(ivr: Ivr) -> None:
    """The survey flow reads HOTLINE_QUEUE from the channel and tells the observer (the
    metrics in the service) the queue and the score, or no score."""
    seen: list[tuple[str, int | None]] = []
    ivr.runner.survey_observer = lambda queue, score: seen.append((queue, score))
    for dtmf, variables in [
        (["9", "5"], {"HOTLINE_QUEUE": "repair"}),
        (["", ""], {"HOTLINE_QUEUE": "support"}),
        (["3"], {}),
    ]:
        result = await run_agi(
            "127.0.0.1",
            ivr.server.port,
            script="survey",
            channel="Local/13700137000@callers-00000047;1",
            uniqueid=f"1795712399.{len(seen)}",
            callerid="13700137000",
            dtmf=dtmf,
            variables=variables,
        )
        assert result.commands[0] == "GET VARIABLE HOTLINE_QUEUE"
    assert seen == [("repair", 5), ("support", None), ("", 3)]
    assert (ivr.runner.survey_offered, ivr.runner.survey_responses) == (3, 2)
