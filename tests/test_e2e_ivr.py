"""The IVR end to end: the service (FastAGI server, store) in front of the simulated PBX.

Callers run the shipped main flow over FastAGI from the sim's AGI channel, then wait
at the sim with the variables the flow set, as in hotline-inbound; answered callers
run the survey flow with the caller channel's Uniqueid, as Asterisk does after the
bridge ends. Checked against the service's facts, the sim's ground truth and the
database.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.agi.server import AgiConfig
from hotline.clock import ScaledClock
from hotline.domain.effects import CallEnded, Fact, OfferStarted
from hotline.ivr.service import IVR_SERVER
from hotline.sim.agi import (
    HANG_UP,
    AgiCallResult,
    IvrDialplan,
    IvrTraffic,
    arrival_after_ivr,
    run_agi,
)
from hotline.sim.amiserver import ServerCredentials
from hotline.sim.harness import Stack, build_settings, start_stack
from hotline.sim.pbx import SimPbx
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Fixed, Scenario
from tests.e2e_support import ground_truth_calls

pytestmark = pytest.mark.e2e

SHIPPED = Path(__file__).resolve().parent.parent / "ivr_flows"
ALL_DAY = '"00:00-23:59:59.999999"'
LIMIT = 90.0
SECRET = "ivr-test-secret"


def _scenario() -> Scenario:
    return Scenario(
        name="ivr",
        seed=12,
        time_scale=20.0,
        agents=(
            AgentGroup(
                ("Local/2001@agents", "Local/2002@agents"),
                AgentBehaviour(answer_delay=Fixed(1.0), talk=Fixed(10.0)),
            ),
        ),
    )


def _write_calendar(flows: Path, holidays: Sequence[str]) -> None:
    """The main flow open all day every day, except ``holidays``."""
    main = (flows / "main.yaml").read_text(encoding="utf-8")
    head, _, rest = main.partition("calendar:")
    _, _, nodes = rest.partition("\nnodes:")
    days = ", ".join(f"{d}: {ALL_DAY}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    calendar = (
        f"calendar:\n  time_zone: Asia/Shanghai\n  hours: {{{days}}}\n"
        f"  holidays: [{', '.join(holidays)}]\n"
    )
    (flows / "main.yaml").write_text(head + calendar + "nodes:" + nodes, encoding="utf-8")


@dataclass
class Ivr:
    stack: Stack
    flows: Path
    dsn: str

    @property
    def port(self) -> int:
        return self.stack.app[IVR_SERVER].port

    async def run(
        self, number: str, dtmf: Sequence[str], *, script: str = "main", uniqueid: str = ""
    ) -> AgiCallResult:
        return await run_agi(
            "127.0.0.1",
            self.port,
            script=script,
            channel=f"Local/{number}@callers-0000ab12;1",
            uniqueid=uniqueid or f"{int(self.stack.clock.now())}.{number[-4:]}",
            callerid=number,
            context="hotline-inbound",
            dtmf=dtmf,
        )

    async def call(self, number: str, dtmf: Sequence[str]) -> tuple[AgiCallResult, CallEnded]:
        """The caller runs the IVR, then waits at the PBX; the call's end fact."""
        result = await self.run(number, dtmf)
        arrival = arrival_after_ivr(result, number)
        assert arrival is not None, result
        seen = len(self.stack.facts)
        self.stack.sim.core.arrive(arrival)
        end = await self.fact(lambda f: isinstance(f, CallEnded) and f.number == number, seen)
        assert isinstance(end, CallEnded)
        return result, end

    async def fact(self, match: Callable[[Fact], bool], seen: int = 0) -> Fact:
        async with asyncio.timeout(LIMIT):
            while True:
                for fact in self.stack.facts[seen:]:
                    if match(fact):
                        return fact
                await asyncio.sleep(0.02)  # polling the service's facts

    async def rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def recorded(self, call_id: str) -> None:
        """Wait until the outbox has written the call as completed."""
        rows: list[asyncpg.Record] = []
        async with asyncio.timeout(LIMIT):
            while not rows:
                rows = await self.rows(
                    "select 1 from calls where call_id = $1 and state = 'completed'", call_id
                )
                await asyncio.sleep(0.05)  # polling the database the outbox writes

    async def status(self) -> dict[str, object]:
        async with self.stack.session.get(
            f"{self.stack.base_url}/api/ivr",
            headers={"Authorization": f"Bearer {self.stack.token}"},
        ) as response:
            assert response.status == 200
            body: dict[str, object] = await response.json()
            return body

    async def reload(self) -> dict[str, object]:
        async with self.stack.session.post(
            f"{self.stack.base_url}/api/ivr/reload",
            headers={"Authorization": f"Bearer {self.stack.token}"},
        ) as response:
            assert response.status == 200
            body: dict[str, object] = await response.json()
            return body


async def _start(database_url: str, tmp_path: Path, scenario: Scenario) -> tuple[Stack, Path]:
    """The service with the IVR on (the shipped flows, open all day) in front of a sim
    running ``scenario``, both agents logged in (2001 idle longest)."""
    flows = tmp_path / "flows"
    shutil.copytree(SHIPPED, flows)
    _write_calendar(flows, [])
    sim = SimPbx(
        scenario,
        clock=ScaledClock(scenario.time_scale),
        credentials=ServerCredentials("hotline", SECRET),
    )
    await sim.start(host="127.0.0.1", port=0)
    settings = build_settings(
        scenario,
        sim.port,
        secret=SECRET,
        queues=[
            {"name": "support", "wrap_up": 0, "sticky": False},
            {"name": "repair", "wrap_up": 0, "skills": ["repair"]},
            {"name": "complaint", "wrap_up": 0},
        ],
        agents=[
            {
                "id": agent_id,
                "device": f"Local/{agent_id}@agents",
                "queues": ["support", "repair", "complaint"],
                "skills": skills,
            }
            for agent_id, skills in (
                ("2001", {"repair": 5, "zh": 5}),
                ("2002", {"repair": 5, "en": 5, "zh": 2}),
            )
        ],
        database_url=database_url,
        state_dir=str(tmp_path / "state"),
    )
    settings = replace(
        settings, agi=AgiConfig(enabled=True, listen="127.0.0.1:0", flows=str(flows))
    )
    stack = await start_stack(scenario, settings=settings, sim=sim)
    await stack.agent("login", "2001")  # idle longest
    await stack.agent("login", "2002")
    return stack, flows


@pytest.fixture
async def ivr(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Ivr]:
    stack, flows = await _start(migrated_database_url, tmp_path, _scenario())
    try:
        yield Ivr(stack, flows, migrated_database_url)
    finally:
        await stack.close()


SCRIPTED = """\
name = "ivr-scripted"
seed = 12
time_scale = 20.0

[arrivals]
count = 6
rate_per_minute = 2
start_after = 1
numbers = ["13700000021", "13700000022", "13700000023",
           "13700000024", "13700000025", "13700000026"]
patience = 600

[[arrivals.ivr]]          # English, repair, ordinary; 5 in the survey
weight = 1
dtmf = ["2", "1", "2"]
survey = 5

[[arrivals.ivr]]          # 中文, enquiry; an invalid 0, then 3 in the survey
weight = 1
dtmf = ["1", "3"]
survey = ["0", "3"]

[[arrivals.ivr]]          # 7 (invalid), then 中文, 0 operator; no answer to the survey
weight = 1
dtmf = ["7", "1", "0"]

[[agents]]
device = "Local/{ext}@agents"
extensions = "2001-2002"
answer_delay = 1
talk = 3
"""
EXPECTED = {
    # first key: (queue, priority, skills, lang, survey score)
    ("2", "1", "2"): ("repair", 1, ["repair"], "en", 5),
    ("1", "3"): ("support", 0, [], "zh", 3),
    ("7", "1", "0"): ("support", 0, [], "zh", None),
}


@pytest.fixture
async def scripted(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[Ivr]:
    stack, flows = await _start(
        migrated_database_url, tmp_path, Scenario.from_toml(SCRIPTED, "ivr-scripted.toml")
    )
    try:
        yield Ivr(stack, flows, migrated_database_url)
    finally:
        await stack.close()


def _dialplan(ivr: Ivr, port: int) -> IvrDialplan:
    """hotline-inbound with HOTLINE_IVR=yes, AGI() connecting to ``port``; the sim's
    simulated waits (timeouts, key presses) on the scenario's clock."""
    return IvrDialplan("127.0.0.1", port, time_scale=1 / ivr.stack.sim.scenario.time_scale)


async def test_scenario_caller_groups_drive_the_ivr_and_the_survey(scripted: Ivr) -> None:
    """Each caller of the TOML scenario keys their group's choices into the main flow and,
    once answered, their survey keys: queue, priority, skills and language land in the
    sim's ground truth, English callers reach the English speaker, scores the call rows."""
    traffic = IvrTraffic(scripted.stack.sim, _dialplan(scripted, scripted.port))
    async with asyncio.timeout(LIMIT):
        await traffic.run()
    by_id = ground_truth_calls(scripted.stack)
    truth = {r["number"]: r for r in by_id.values()}
    assert len(traffic.flows) == len(truth) == 6
    groups = {arrival.ivr.dtmf for arrival, _ in traffic.flows if arrival.ivr}
    assert len(groups) > 1  # the seed spreads the callers over the groups
    scores: dict[str, int] = {}
    for arrival, result in traffic.flows:
        assert arrival.ivr is not None
        queue, priority, skills, lang, score = EXPECTED[arrival.ivr.dtmf]
        call = truth[arrival.number]
        assert (call["queue"], call["priority"], call["skills"], call["lang"]) == (
            queue, priority, skills, lang,
        )  # fmt: skip
        assert result.variables["HOTLINE_IVR_RESULT"] == "queued"
        assert call["outcome"] == "answered"
        if lang == "en":
            assert call["rings"][0]["agent"] == "Local/2002@agents"
        if score is not None:
            scores[call["call_id"]] = score
    surveyed = {call_id for call_id, _ in traffic.surveys}
    assert surveyed == {r["call_id"] for r in by_id.values() if r["hung_up_by"] == "agent"}
    assert surveyed  # the agents hang up at the end of their talk time
    for call_id in scores:
        await scripted.recorded(call_id)
    rows = await scripted.rows("select call_id, survey_score from calls where survey_score > 0")
    assert {r["call_id"]: r["survey_score"] for r in rows} == {
        call_id: score for call_id, score in scores.items() if call_id in surveyed
    }
    # The metrics count the same surveys, by the queue the caller waited in and the score.
    async with scripted.stack.session.get(f"{scripted.stack.base_url}/metrics") as response:
        metrics = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(await response.text())
            for sample in family.samples
            if sample.name.startswith("hotline_survey_")
        }
    responses = Counter(
        (str(by_id[call_id]["queue"]), str(given))
        for call_id, given in scores.items()
        if call_id in surveyed
    )
    for (queue_label, score_label), count in responses.items():
        labels = (("queue", queue_label), ("score", score_label))
        key = ("hotline_survey_responses_total", labels)
        assert metrics[key] == count
    offered = sum(v for (n, _), v in metrics.items() if n == "hotline_survey_offered_total")
    assert offered == len(surveyed)


async def test_agi_unreachable_callers_queue_on_the_dialplan_defaults(scripted: Ivr) -> None:
    """HOTLINE_IVR=yes but nothing answers on the AGI port: AGI() fails (AGISTATUS=FAILURE),
    the sample dialplan queues every caller on HOTLINE_DEFAULT_QUEUE at priority 0, the
    service routes them as usual, and no survey runs (it would fail the same way)."""
    port = scripted.port
    await scripted.stack.app[IVR_SERVER].close()
    traffic = IvrTraffic(scripted.stack.sim, _dialplan(scripted, port))
    async with asyncio.timeout(LIMIT):
        await traffic.run()
    assert {result.status for _, result in traffic.flows} == {"FAILURE"}
    truth = ground_truth_calls(scripted.stack)
    assert len(truth) == 6
    for call in truth.values():
        assert (call["queue"], call["priority"], call["skills"], call["lang"]) == (
            "support", 0, [], None,
        )  # fmt: skip
        assert call["outcome"] == "answered"
    answered_agent_hung_up = [r for r in truth.values() if r["hung_up_by"] == "agent"]
    assert len(traffic.surveys) == len(answered_agent_hung_up) > 0
    assert {result.status for _, result in traffic.surveys} == {"FAILURE"}
    rows = await scripted.rows("select count(*) as n from calls where survey_score is not null")
    assert rows[0]["n"] == 0


async def test_repair_english_survey_and_holiday_callback(ivr: Ivr) -> None:
    """The issue's end-to-end checks, in one service run."""
    # 2 English, 1 repair, 2 ordinary repair: the English speaker (2002) is offered first
    # although 2001 has been idle longer; the call is in the repair queue with its skill.
    english, end = await ivr.call("13700000002", ["2", "1", "2"])
    assert english.variables["HOTLINE_LANG"] == "en"
    assert end.answered_by == "2002"
    assert end.queue == "repair"
    first_offer = await ivr.fact(lambda f: isinstance(f, OfferStarted) and f.call_id == end.call_id)
    assert isinstance(first_offer, OfferStarted)
    assert first_offer.agent_id == "2002"
    truth = ground_truth_calls(ivr.stack)[end.call_id]
    assert (truth["queue"], truth["skills"], truth["lang"]) == ("repair", ["repair"], "en")
    assert [ring["agent"] for ring in truth["rings"]] == ["Local/2002@agents"]
    assert truth["answered_by"] == "Local/2002@agents"

    # 1 中文, 1 repair, 1 water leak: repair at priority 5 with the repair skill.
    chinese, end_zh = await ivr.call("13700000001", ["1", "1", "1"])
    assert chinese.variables["HOTLINE_QUEUE"] == "repair"
    assert chinese.variables["HOTLINE_PRIORITY"] == "5"
    assert chinese.variables["HOTLINE_SKILLS"] == "repair"
    assert end_zh.queue == "repair"
    truth_zh = ground_truth_calls(ivr.stack)[end_zh.call_id]
    assert (truth_zh["queue"], truth_zh["priority"], truth_zh["lang"]) == ("repair", 5, "zh")
    assert truth_zh["outcome"] == "answered"

    # The survey after the English call: 4 lands on its call row and ticket, once.
    await ivr.recorded(end.call_id)
    survey = await ivr.run("13700000002", ["4"], script="survey", uniqueid=end.call_id)
    assert survey.variables["HOTLINE_SURVEY_SCORE"] == "4"
    await ivr.run("13700000002", ["5"], script="survey", uniqueid=end.call_id)
    await ivr.run("13700000001", [HANG_UP], script="survey", uniqueid=end_zh.call_id)
    scored = await ivr.rows(
        "select c.call_id, c.survey_score as call_score, t.survey_score as ticket_score"
        " from calls c join tickets t on t.id = c.ticket_id where c.survey_score is not null"
    )
    assert [(r["call_id"], r["call_score"], r["ticket_score"]) for r in scored] == [
        (end.call_id, 4, 4)
    ]
    history = await ivr.rows(
        "select e.detail from ticket_events e join calls c on c.ticket_id = e.ticket_id"
        " where c.call_id = $1 and e.kind = 'survey'",
        end.call_id,
    )
    assert len(history) == 1
    status = await ivr.status()
    # Three surveys offered, two answered (4, then a 5 the store ignored), one hang-up.
    assert (status["survey_offered"], status["survey_responses"]) == (3, 2)

    # The Chinese caller calls again: with an open ticket they are offered "press 1 for
    # the agent handling your case", and that agent (2001, who answered them) is offered
    # first, although 2002 has been idle longer and the queue is not sticky.
    assert end_zh.answered_by == "2001"
    await ivr.recorded(end_zh.call_id)
    again, end_again = await ivr.call("13700000001", ["1", "1", "3"])
    assert again.variables["HOTLINE_STICKY_AGENT"] == "2001"
    assert again.variables["HOTLINE_QUEUE"] == "support"
    assert end_again.answered_by == "2001"
    truth_again = ground_truth_calls(ivr.stack)[end_again.call_id]
    assert [ring["agent"] for ring in truth_again["rings"]] == ["Local/2001@agents"]

    # A holiday today (Shanghai): reload the flows; the caller is offered a callback on
    # their ticket, due when the office next opens.
    today = (
        datetime.fromtimestamp(ivr.stack.clock.now(), UTC)
        .astimezone(ZoneInfo("Asia/Shanghai"))
        .date()
    )
    _write_calendar(ivr.flows, [str(today + timedelta(days=d)) for d in (-1, 0, 1)])
    reloaded = await ivr.reload()
    assert reloaded["problems"] == []
    after_hours = await ivr.run("13800000003", ["1"])
    assert after_hours.variables["HOTLINE_IVR_RESULT"] == "callback"
    ticket = after_hours.variables["HOTLINE_CALLBACK_TICKET"]
    callbacks = await ivr.rows(
        "select t.number, b.phone, b.status from callbacks b join tickets t on t.id = b.ticket_id"
    )
    assert [(r["number"], r["phone"], r["status"]) for r in callbacks] == [
        (ticket, "13800000003", "scheduled")
    ]

    # A broken flow does not replace the working one: the next caller still gets it.
    (ivr.flows / "main.yaml").write_text("start: x\nnodes: {x: {type: warp}}\n", "utf-8")
    broken = await ivr.reload()
    assert broken["problems"] == [f"{ivr.flows / 'main.yaml'}: node x: unknown node type 'warp'"]
    still = await ivr.run("13800000004", ["1"])
    assert still.variables["HOTLINE_IVR_RESULT"] == "callback"
