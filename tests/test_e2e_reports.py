"""End to end: the period report of a simulated call centre equals its ground truth.

A time-scaled run (300 calls with a burst into two queues; agents who answer
after one to four rings, who never answer, and who answer slowly, some after
the ring timeout; abandons, short abandons and overflows) goes through the real
service into PostgreSQL. The JSON report for the run's dates, asked for over the
API, is then compared, row by row and field by field, with what the sim's ground
truth implies: per day x queue, per day x agent, and every total. Counts match
exactly, and so do the ratios made of them; durations are within 10 ms a call.

Where the PBX has no time of its own the comparison uses the service's facts,
as ``tests/test_metrics.py`` does: a ring that never rang starts when the
Originate was written; a redirect on ``max_wait`` ends the wait at the service's
decision; talk ends at the agent's hang-up, which the ground truth does not
record (its ``ended_at`` is the caller's, a few scenario milliseconds later), so
talk is compared with the facts and, as "at most, and nearly", with the ground
truth; wrap-up runs on the engine's clock (``WrapUpEnded``).

Ticket figures: the run's calls open tickets (repeat callers attach); a few are
then made complaints (replied on time, late, not yet), a repair (dispatched and
completed on time) and scored, and the report must count exactly those.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.domain.effects import CallArrived, CallEnded, OfferEnded, WrapUpEnded
from hotline.domain.model import Outcome
from hotline.domain.routing import NO_ANSWER_PAUSE
from hotline.domain.sla import (
    CallTally,
    OfferTally,
    abandon_rate,
    average_handle_time,
    average_speed_of_answer,
    ring_service_level,
    service_level,
    tally_call,
)
from hotline.sim.harness import Stack, start_stack
from hotline.sim.scenario import (
    Scenario,
)
from hotline.store.tickets import Tickets
from hotline.web.keys import STORE
from tests.support import (
    MEASURED_QUEUES,
    OUTCOMES,
    eventually,
    hold,
    measured_agents,
    measured_call_centre,
    wait_settled,
)

pytestmark = pytest.mark.e2e

QUEUES = MEASURED_QUEUES
MISSES = {"no_answer", "busy", "unavailable"}
PER_CALL = 0.010
"""Durations agree within 10 ms a call."""


def call_centre() -> Scenario:
    """The shared figure-checking run."""
    return measured_call_centre("reports-ground-truth", repeat_share=0.15)


def agent_id(device: str) -> str:
    return device.split("/", 1)[1].split("@", 1)[0]


def day_of(epoch: float) -> date:
    """The report's period of a moment: its date in the service's time zone (UTC here)."""
    return datetime.fromtimestamp(epoch, UTC).date()


@dataclass
class Expected:
    """What the ground truth says about one group of calls and rings."""

    tally: CallTally = field(default_factory=CallTally)
    talk: float = 0.0
    wrap_up: float = 0.0
    truth_talk: float = 0.0
    rings: Counter[str] = field(default_factory=Counter)
    within_rings: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def offers(self) -> OfferTally:
        misses = sum(self.rings[outcome] for outcome in MISSES)
        return OfferTally(
            self.rings["answered"], self.within_rings, misses, self.rings["cancelled"]
        )


def groups(period: date, key: str) -> Iterable[tuple[str | None, str | None]]:
    """The rows a call or ring counts in: its own, its key over the range, all keys of its
    day, everything."""
    day = period.isoformat()
    return [(day, key), (None, key), (day, None), (None, None)]


def queue_figures(expected: Expected) -> dict[str, Any]:
    tally, offers = expected.tally, expected.offers
    return {
        "offered": tally.calls,
        "answered": tally.answered,
        "abandoned": tally.abandoned,
        "abandoned_waiting": expected.outcomes["abandoned_waiting"],
        "abandoned_ringing": expected.outcomes["abandoned_ringing"],
        "short_abandoned": tally.short_abandoned,
        "overflowed": tally.overflowed,
        "in_progress": 0,
        "answered_within_threshold": tally.answered_within,
        "service_level": service_level(tally),
        "abandon_rate": abandon_rate(tally),
        "offers": sum(expected.rings.values()),
        "offers_answered": offers.answered,
        "offers_answered_within_rings": offers.answered_within,
        "offers_missed": offers.missed,
        "offers_cancelled": offers.cancelled,
        "within_rings_rate": ring_service_level(offers),
    }


def agent_figures(expected: Expected) -> dict[str, Any]:
    tally, offers = expected.tally, expected.offers
    return {
        "offered": sum(expected.rings.values()),
        "answered": offers.answered,
        "answered_within_rings": offers.answered_within,
        "missed": offers.missed,
        "missed_no_answer": expected.rings["no_answer"],
        "missed_busy": expected.rings["busy"],
        "missed_unavailable": expected.rings["unavailable"],
        "abandoned": offers.cancelled,
        "within_rings_rate": ring_service_level(offers),
        "calls_handled": tally.answered,
        "answered_within_threshold": tally.answered_within,
        "service_level": service_level(tally),
    }


def check_rows(
    rows: list[dict[str, Any]],
    key: str,
    expected: dict[tuple[str | None, str | None], Expected],
    counts: Callable[[Expected], dict[str, Any]],
) -> None:
    """Every row of the report is one of the expected groups, with its exact counts and ratios,
    its durations within 10 ms a call, and vice versa."""
    assert {(row["period"], row[key]) for row in rows} == set(expected)
    for row in rows:
        group = expected[(row["period"], row[key])]
        label = (row["period"], row[key])
        exact = counts(group)
        assert {name: row[name] for name in exact} == exact, label
        answered = group.tally.answered
        assert row["wait_seconds_answered"] == pytest.approx(
            group.tally.answered_wait_seconds, abs=PER_CALL * max(answered, 1)
        ), label
        asa = average_speed_of_answer(group.tally)
        assert row["asa"] == (None if asa is None else pytest.approx(asa, abs=PER_CALL)), label
        # Talk: the facts' PBX times (to the microsecond the database keeps); and no longer
        # than the ground truth's answer-to-caller-hang-up, by at most 0.1 s a call.
        slack = 1e-5 * max(answered, 1)
        assert row["talk_seconds"] == pytest.approx(group.talk, abs=slack), label
        assert group.truth_talk - 0.1 * answered <= row["talk_seconds"] <= group.truth_talk + slack
        # Wrap-up: the engine's clock (WrapUpEnded).
        assert row["wrap_up_seconds"] == pytest.approx(group.wrap_up, abs=1e-6), label
        aht = average_handle_time(group.talk, group.wrap_up, answered)
        assert row["aht"] == (None if aht is None else pytest.approx(aht, abs=PER_CALL)), label


def add_logged_in_days(
    agents: dict[tuple[str | None, str | None], Expected],
    ids: Iterable[str],
    logged_in_at: float,
    asked_at: float,
) -> list[str]:
    """Every agent was logged in from before the first call until the report was asked for,
    so each has a row for every day of that span, calls or not (time logged in): add the
    groups the ground truth put nothing in. Returns the span's days."""
    first, last = day_of(logged_in_at), day_of(asked_at)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    for day in days:
        for agent in ids:
            for group in [(day, agent), (None, agent), (day, None)]:
                agents.setdefault(group, Expected())
    return days


def check_presence(row: dict[str, Any]) -> None:
    """An agent row's logged-in, paused and occupancy figures agree with each other; the
    only pauses are the router's own after missed rings."""
    assert row["login_seconds"] > 0, (row["period"], row["agent"])
    assert set(row["paused_by_reason"]) <= {NO_ANSWER_PAUSE}
    assert row["paused_seconds"] == pytest.approx(sum(row["paused_by_reason"].values()))
    busy = row["talk_seconds"] + row["wrap_up_seconds"]
    working = row["login_seconds"] - row["paused_seconds"]
    if working > 0:
        assert row["occupancy"] == pytest.approx(busy / working, rel=1e-9)
    else:  # paused all that day (the never-answering agent, after midnight)
        assert (row["occupancy"], busy) == (None, 0)


def assert_same_figures(left: dict[str, Any], right: dict[str, Any]) -> None:
    """The same row of figures, to the last bit: the roll-ups sum whole nanoseconds (and
    microseconds of talk), so a week's total is exactly its days' total, however the
    groups add up."""
    assert left.keys() == right.keys()
    for name, value in left.items():
        assert value == right[name], name


async def wait_for_wrap_ups(stack: Stack, answered: int) -> list[WrapUpEnded]:
    """Every answered call's wrap-up has ended (they end a few scenario seconds after)."""

    def wrap_ups() -> list[WrapUpEnded]:
        return [f for f in stack.facts if isinstance(f, WrapUpEnded)]

    await eventually(lambda: len(wrap_ups()) >= answered, what="every wrap-up ended")
    return wrap_ups()


async def get(stack: Stack, path: str) -> tuple[int, str]:
    async with stack.session.get(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {stack.token}"}
    ) as response:
        return response.status, await response.text()


async def shape_tickets(stack: Stack, arrivals: dict[str, float]) -> dict[str, str]:
    """Make a few of the run's tickets complaints, a repair, and scored ones; returns what was
    done to each (by ticket number)."""
    tickets = Tickets(stack.app[STORE].pool, complaint_reply_hours=24)
    numbers = sorted(arrivals, key=lambda number: (arrivals[number], number))
    on_time, late, pending, repair, *scored = numbers[:10]
    for number in (on_time, late, pending):
        await tickets.update(number, {"category": "complaint"}, actor="test")
    opened = {n: datetime.fromtimestamp(arrivals[n], UTC) for n in numbers[:10]}
    await tickets.update(on_time, {"replied_at": opened[on_time] + timedelta(hours=2)}, actor="t")
    await tickets.update(late, {"replied_at": opened[late] + timedelta(hours=30)}, actor="t")
    await tickets.update(repair, {"category": "repair"}, actor="t")
    await tickets.dispatch(
        repair, party="in_house", due_at=opened[repair] + timedelta(days=3), actor="t",
        at=opened[repair] + timedelta(minutes=1),
    )  # fmt: skip
    await tickets.complete_repair(
        repair, completed_at=opened[repair] + timedelta(minutes=5), actor="t"
    )
    for score, number in zip((5, 4, 4, 2, 1, 5), scored, strict=True):
        await tickets.update(number, {"satisfaction": score}, actor="t")
    roles = {on_time: "on_time", late: "late", pending: "pending", repair: "repair"}
    roles |= {
        number: f"score:{score}" for score, number in zip((5, 4, 4, 2, 1, 5), scored, strict=True)
    }
    return roles


def expected_tickets(
    arrivals: dict[str, float], roles: dict[str, str], repair_completed: date
) -> dict[str | None, dict[str, Any]]:
    rows: dict[str | None, Counter[str]] = defaultdict(Counter)
    for number, arrived in arrivals.items():
        role = roles.get(number, "")
        for period in (day_of(arrived).isoformat(), None):
            row = rows[period]
            row["tickets"] += 1
            if role in ("on_time", "late", "pending"):
                row["complaints"] += 1
                row[f"complaints_{role}"] += 1
            if role == "repair":
                row["repairs"] += 1
            if role.startswith("score:"):
                row["satisfaction_count"] += 1
                row[f"satisfaction_{role[6:]}"] += 1
                row["score_sum"] += int(role[6:])
    for period in (repair_completed.isoformat(), None):
        rows[period]["repairs_completed"] += 1
        rows[period]["repairs_on_time"] += 1
    figures: dict[str | None, dict[str, Any]] = {}
    for period, row in rows.items():
        judged = row["complaints_on_time"] + row["complaints_late"]
        figures[period] = {
            "tickets": row["tickets"],
            "complaints": row["complaints"],
            "complaints_on_time": row["complaints_on_time"],
            "complaints_late": row["complaints_late"],
            "complaints_pending": row["complaints_pending"],
            "reply_on_time_rate": row["complaints_on_time"] / judged if judged else None,
            "repairs": row["repairs"],
            "repairs_completed": row["repairs_completed"],
            "repairs_on_time": row["repairs_on_time"],
            "repairs_late": 0,
            "repair_timeliness": 1.0 if row["repairs_completed"] else None,
            "satisfaction_count": row["satisfaction_count"],
            "satisfaction_average": (
                row["score_sum"] / row["satisfaction_count"] if row["satisfaction_count"] else None
            ),
            **{f"satisfaction_{s}": row[f"satisfaction_{s}"] for s in range(1, 6)},
        }
    return figures


MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
START = MIDNIGHT - 5 * 60
"""The run starts five minutes before midnight (UTC, the report's time zone; its callers arrive
over some ten minutes), so it spans two report days whatever time of day the suite runs:
agents stay logged in across the day boundary, and calls fall on both days."""


@pytest.mark.virtual_epoch(START)
async def test_the_report_equals_the_ground_truth_of_a_simulated_call_centre(
    migrated_database_url: str, tmp_path: Path
) -> None:
    stack = await start_stack(
        call_centre(),
        queues=QUEUES,
        agents=measured_agents(),
        database_url=migrated_database_url,
        state_dir=str(tmp_path),
    )
    try:
        await stack.login_all()
        logged_in_at = stack.clock.now()
        stack.sim.start_arrivals()
        await wait_settled(stack)
        ended = {f.call_id: f for f in stack.facts if isinstance(f, CallEnded)}
        answered = sum(f.outcome is Outcome.ANSWERED for f in ended.values())
        wrap_ups = await wait_for_wrap_ups(stack, answered)
        with hold(stack.clock):
            assert await stack.app[STORE].outbox.flush(60), "the outbox did not drain"
        arrivals: dict[str, float] = {}
        for fact in stack.facts:
            if isinstance(fact, CallArrived):
                arrivals.setdefault(fact.ticket, fact.at)
        roles = await shape_tickets(stack, arrivals)
        truth = [r for r in stack.sim.ground_truth if r["type"] == "call"]
        first = day_of(min(r["arrived_at"] for r in truth)) - timedelta(days=1)
        last = day_of(max(r["arrived_at"] for r in truth)) + timedelta(days=1)
        dates = f"from={first.isoformat()}&to={last.isoformat()}"
        asked_at = stack.clock.now()
        status, body = await get(stack, f"/api/reports?period=day&{dates}")
        csv_status, csv_body = await get(stack, f"/api/reports?period=day&{dates}&format=csv")
        week_status, week_body = await get(stack, f"/api/reports?period=week&{dates}")
    finally:
        await stack.close()

    assert stack.sim.errors == []
    assert (status, csv_status, week_status) == (200, 200, 200)
    report = json.loads(body)
    assert len(truth) == 300
    assert len(ended) == 300
    assert report["time_zone"] == "UTC"
    assert [p["period"] for p in report["periods"]] == [
        (first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)
    ]

    # The service's outcome of every call is the ground truth's (else the routing is wrong,
    # and every figure with it); each answered call had one wrap-up.
    disagree = [
        (r["call_id"], r["outcome"], r["abandoned_while"], ended[r["call_id"]].outcome.value)
        for r in truth
        if ended[r["call_id"]].outcome is not OUTCOMES[(r["outcome"], r["abandoned_while"])]
    ]
    assert disagree == [], disagree
    wrap_up_of = {f.call_id: f.seconds for f in wrap_ups}
    assert len(wrap_up_of) == len(wrap_ups) == answered

    threshold = stack.settings.sla.service_level_threshold
    short = stack.settings.sla.short_abandon_threshold
    sla_seconds = stack.settings.routing.sla_rings * stack.settings.routing.ring_cadence
    ring_started = {f.offer_id: f.ring_started_at for f in stack.facts if isinstance(f, OfferEnded)}
    queues: dict[tuple[str | None, str | None], Expected] = defaultdict(Expected)
    agents: dict[tuple[str | None, str | None], Expected] = defaultdict(Expected)
    call_of: dict[str, dict[str, Any]] = {}
    for record in truth:
        call_of[record["call_id"]] = record
        outcome = OUTCOMES[(record["outcome"], record["abandoned_while"])]
        fact = ended[record["call_id"]]
        if outcome is Outcome.OVERFLOWED:
            wait = fact.wait_seconds  # the service's max_wait decision ends this wait
        else:
            wait = (record["answered_at"] or record["ended_at"]) - record["arrived_at"]
        tally = tally_call(outcome, wait, threshold, short)
        period = day_of(record["arrived_at"])
        handlers = [queues[g] for g in groups(period, record["queue"])]
        if outcome is Outcome.ANSWERED:
            assert fact.answered_at == record["answered_at"]
            assert fact.talk_ended_at is not None
            assert fact.talk_ended_at <= record["ended_at"] == fact.ended_at
            agent = agent_id(record["answered_by"])
            handlers += [agents[g] for g in groups(period, agent)]
        for expected in handlers:
            expected.tally += tally
            expected.outcomes[outcome.value] += 1
            if outcome is Outcome.ANSWERED:
                assert fact.talk_ended_at is not None
                assert fact.answered_at is not None
                expected.talk += fact.talk_ended_at - fact.answered_at
                expected.truth_talk += record["ended_at"] - record["answered_at"]
                expected.wrap_up += wrap_up_of[record["call_id"]]
    orphans = [r for r in stack.sim.ground_truth if r["type"] == "ring"]
    rings = [(call_of[r["call_id"]], ring) for r in truth for ring in r["rings"]]
    rings += [(call_of[r["call_id"]], r) for r in orphans]
    for record, ring in rings:
        period = day_of(record["arrived_at"])
        agent = agent_id(ring["agent"])
        if ring["outcome"] == "answered":
            # A leg that never rang starts at the Originate write, a time only the service has.
            start = (
                ring["ring_start"]
                if ring["ring_start"] is not None
                else ring_started[ring["action_id"]]
            )
            within = ring["ring_end"] - start <= sla_seconds
        else:
            within = False
        for expected in [
            *(queues[g] for g in groups(period, record["queue"])),
            *(agents[g] for g in groups(period, agent)),
        ]:
            expected.rings[ring["outcome"]] += 1
            expected.within_rings += within

    logged_days = add_logged_in_days(agents, stack.settings.agents, logged_in_at, asked_at)
    assert len(logged_days) == 2, "the run spans midnight (START)"
    assert {day_of(r["arrived_at"]) for r in truth} == {day_of(START), day_of(MIDNIGHT)}

    everything = queues[(None, None)]
    assert everything.tally.calls == 300
    assert everything.tally.short_abandoned > 0
    assert everything.tally.overflowed > 0
    assert everything.tally.abandoned > everything.tally.short_abandoned
    assert 0 < everything.within_rings < everything.rings["answered"], "both sides of 3 rings"
    assert set(everything.rings) >= {"answered", "no_answer", "busy", "cancelled"}
    assert agents[(None, "2009")].rings["no_answer"] > 0  # a never-answering agent
    assert agents[(None, "2009")].rings["answered"] == 0
    assert everything.outcomes["abandoned_waiting"] > 0
    assert everything.outcomes["abandoned_ringing"] > 0
    check_rows(report["queues"], "queue", queues, queue_figures)
    check_rows(report["agents"], "agent", agents, agent_figures)
    # Every agent was logged in (login_all) from before the first call to the report; the
    # only pauses are the router's own after missed rings; occupancy from talk + wrap-up.
    for row in report["agents"]:
        check_presence(row)
    never = next(r for r in report["agents"] if (r["period"], r["agent"]) == (None, "2009"))
    assert never["paused_seconds"] > 0  # paused by the router after its missed rings
    every_queue = next(r for r in report["queues"] if (r["period"], r["queue"]) == (None, None))
    assert every_queue["agents_logged_in"] == len(stack.settings.agents)

    # Tickets: one per first call of each ticket, and exactly the complaints, repair and
    # scores given to some of them.
    completed = day_of(arrivals[next(n for n, r in roles.items() if r == "repair")] + 300)
    tickets = {row["period"]: row for row in report["tickets"]}
    assert len(arrivals) < 300, "repeat callers attach to their open ticket"
    ticket_figures = expected_tickets(arrivals, roles, completed)
    assert set(tickets) == set(ticket_figures)
    for day, figures in ticket_figures.items():
        assert {name: tickets[day][name] for name in figures} == figures, day

    # The same figures in CSV, and the weekly report's totals are the daily one's.
    rows = list(csv.DictReader(io.StringIO(csv_body)))
    total = next(r for r in rows if (r["period"], r["queue"]) == ("total", "*"))
    assert int(total["offered"]) == 300
    assert int(total["answered"]) == answered
    weekly = json.loads(week_body)
    assert_same_figures(weekly["queues"][-1], report["queues"][-1])
    # Open sessions count up to each report's own "now": the later weekly one has more.
    clock = {"login_seconds", "paused_seconds", "paused_by_reason", "available_seconds",
             "occupancy"}  # fmt: skip
    week_all, day_all = weekly["agents"][-1], report["agents"][-1]
    assert_same_figures(
        {k: v for k, v in week_all.items() if k not in clock},
        {k: v for k, v in day_all.items() if k not in clock},
    )
    assert week_all["login_seconds"] >= day_all["login_seconds"]
