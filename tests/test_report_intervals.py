"""Reports by 15 minutes, 30 minutes and hour; agents' logged-in and paused time by reason,
occupancy and missed rings by kind; abandons split by where; callbacks. On a real
PostgreSQL, with the agents' changes recorded by the router's own presence facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hotline.config import QueueConfig, Settings, parse_settings
from hotline.domain.effects import AgentPresenceChanged, Fact
from hotline.domain.model import OfferResult, Outcome
from hotline.reports.aggregate import CallRow, CompletedRepair, OfferRow, RepairRow, ReportBuilder
from hotline.reports.period import ReportError, ReportRequest, parse_request, periods
from hotline.reports.presence import PresenceBuilder, StateChange
from hotline.reports.queries import build_report
from hotline.store.db import Pool
from tests.routing_helpers import agent, make_router
from tests.test_reports import RULES, SHANGHAI, abandoned_call, answered_call, local, write

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 3, 12, tzinfo=SHANGHAI)  # after the range: open sessions end at 24:00


def slot(hour: int, minute: int = 0) -> datetime:
    """The label of the local slot of 2 March starting at ``hour:minute``."""
    return datetime(2026, 3, 2, hour, minute)


def settings_with_names(dsn: str, folder: Path) -> Settings:
    return parse_settings(
        {
            "service": {"state_dir": str(folder), "time_zone": "Asia/Shanghai"},
            "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
            "database": {"url": dsn, "outbox_dir": str(folder / "outbox")},
            "queues": [{"name": "support"}, {"name": "sales"}],
            "agents": [
                {"id": "1001", "name": "李雷", "device": "PJSIP/1001", "queues": ["support"]},
                {"id": "1002", "device": "PJSIP/1002", "queues": ["support", "sales"]},
            ],
        },
        source="<report test>",
        env={},
    )


def presence() -> list[Fact]:
    """1001 works 09:00-10:10 with lunch 09:20-09:35; 1002 logged in the evening before,
    in training from 09:50 on and never logged out."""
    router = make_router(
        [agent("1001"), agent("1002", ("support", "sales"))],
        [QueueConfig(name="support", wrap_up=0), QueueConfig(name="sales", wrap_up=0)],
    )
    effects = [
        *router.login("1002", local(1, 23)),
        *router.login("1001", local(2, 9)),
        *router.pause("1001", "lunch", local(2, 9, 20)),
        *router.unpause("1001", local(2, 9, 35)),
        *router.pause("1002", "training", local(2, 9, 50)),
        *router.logout("1001", local(2, 10, 10)),
    ]
    return [e for e in effects if isinstance(e, AgentPresenceChanged)]


async def store_day(pool: Pool) -> None:
    await write(
        pool,
        [
            *presence(),
            *answered_call("a", "support", local(2, 9, 5), agent="1001", wait=12.0, ring=4.0,
                           talk=100.0, wrap_up=8.0),
            *answered_call("b", "support", local(2, 9, 16), agent="1001", wait=40.0, ring=6.0,
                           talk=200.0, wrap_up=20.0, missed_first="1002"),
            *abandoned_call("c", "support", local(2, 9, 40), 45.0),
            *abandoned_call("d", "sales", local(2, 10, 20), 2.0),
        ],
    )  # fmt: skip
    # Callbacks: two scheduled on 2 March, one done that day, one failed the next.
    await pool.execute(
        """
        insert into callbacks (ticket_id, phone, due_at, status, created_by, created_at,
                               last_attempt_at)
        select id, '13900139000', now(), s.status, 'test', s.created, s.attempted
        from tickets, (values
            ('done', $1::timestamptz, $2::timestamptz),
            ('failed', $1::timestamptz, $3::timestamptz)) as s(status, created, attempted)
        where number = 'T-a'
        """,
        datetime.fromtimestamp(local(2, 11), UTC),
        datetime.fromtimestamp(local(2, 15), UTC),
        datetime.fromtimestamp(local(3, 9), UTC),
    )


def test_intervals_are_local_slots_and_ranges_of_them_are_bounded() -> None:
    quarter = periods(parse_request("15min", "2026-03-02", "2026-03-03"))
    assert len(quarter) == 2 * 96
    assert (quarter[0].start, quarter[1].start, quarter[-1].start) == (
        slot(0),
        slot(0, 15),
        datetime(2026, 3, 3, 23, 45),
    )
    assert {p.first for p in quarter[:96]} == {DAY}
    assert len(periods(parse_request("30min", "2026-03-02", "2026-03-02"))) == 48
    assert len(periods(parse_request("hour", "2026-03-02", "2026-03-02"))) == 24
    assert parse_request("hour", "2026-01-01", "2026-03-03").days == 62
    with pytest.raises(ReportError, match="by hour may cover at most 62 days"):
        parse_request("hour", "2026-01-01", "2026-03-04")


def test_time_is_cut_at_the_period_boundaries_and_counted_only_while_logged_in() -> None:
    zone = SHANGHAI
    found = periods(ReportRequest("hour", DAY, DAY))
    starts = [p.start.replace(tzinfo=zone) for p in found if isinstance(p.start, datetime)]
    builder = PresenceBuilder(
        starts, [p.start for p in found], starts[0] + timedelta(days=1), now=NOW
    )
    at = datetime(2026, 3, 2, 8, 30, tzinfo=zone)
    builder.before(StateChange("x", "pause", "meeting", at - timedelta(days=1)))  # logged out
    builder.add(StateChange("x", "login", None, at))  # a login keeps the pause
    builder.add(StateChange("x", "unpause", "meeting", at + timedelta(minutes=45)))
    builder.add(StateChange("x", "logout", None, at + timedelta(minutes=90)))
    builder.finish()
    eight, nine = found[8].start, found[9].start
    assert builder.times[(eight, "x")].logged_in == 1800.0
    assert builder.times[(eight, "x")].paused == {"meeting": 1800.0}
    assert builder.times[(nine, "x")].logged_in == 3600.0
    assert builder.times[(nine, "x")].paused == {"meeting": 900.0}
    assert builder.logged_in == {eight: {"x"}, nine: {"x"}}


def test_abandons_by_where_longest_wait_and_missed_rings_by_kind() -> None:
    builder = ReportBuilder(ReportRequest("day", DAY, DAY), RULES, now=NOW)
    for call in (
        CallRow(DAY, "support", Outcome.ABANDONED_WAITING, 3.0),
        CallRow(DAY, "support", Outcome.ABANDONED_WAITING, 40.0),
        CallRow(DAY, "support", Outcome.ABANDONED_RINGING, 30.0),
        CallRow(DAY, "support", None, None),
    ):
        builder.add_call(call)
    for result in (OfferResult.NO_ANSWER, OfferResult.NO_ANSWER, OfferResult.BUSY):
        builder.add_offer(OfferRow(DAY, "support", "1001", result, 15.0))
    builder.add_offer(OfferRow(DAY, "support", "1001", OfferResult.UNAVAILABLE, 0.0))
    report = builder.build(time_zone="UTC")
    queue = report.queues[0]
    assert (queue.abandoned, queue.abandoned_waiting, queue.abandoned_ringing) == (3, 2, 1)
    assert (queue.short_abandoned, queue.longest_wait, queue.in_progress) == (1, 40.0, 1)
    who = report.agents[0]
    assert (who.missed, who.missed_no_answer, who.missed_busy, who.missed_unavailable) == (
        4,
        2,
        1,
        1,
    )


async def test_a_day_by_quarter_hour_hour_and_day_from_postgresql(
    pg_pool: Pool, migrated_database_url: str, tmp_path: Path
) -> None:
    await store_day(pg_pool)
    settings = settings_with_names(migrated_database_url, tmp_path)

    quarters = await build_report(pg_pool, parse_request("15min", "2026-03-02", "2026-03-02"),
                                  settings, now=NOW)  # fmt: skip
    hours = await build_report(pg_pool, parse_request("hour", "2026-03-02", "2026-03-02"),
                               settings, now=NOW)  # fmt: skip
    day = await build_report(pg_pool, parse_request("day", "2026-03-02", "2026-03-02"),
                             settings, now=NOW)  # fmt: skip

    queues = {(r.period, r.queue): r for r in quarters.queues}
    assert [key for key in queues if key[0] is not None and key[1] is None] == [
        (slot(9), None),
        (slot(9, 15), None),
        (slot(9, 30), None),
        (slot(10, 15), None),
    ]
    first = queues[(slot(9), "support")]
    assert (first.offered, first.answered, first.asa, first.longest_wait) == (1, 1, 12.0, 12.0)
    assert (first.agents_logged_in, queues[(slot(9), None)].agents_logged_in) == (2, 2)
    second = queues[(slot(9, 15), "support")]
    assert (second.answered, second.answered_within_threshold, second.service_level) == (1, 0, 0.0)
    assert (second.offers_missed, second.offers_answered_within_rings) == (1, 1)
    third = queues[(slot(9, 30), "support")]
    assert (third.abandoned, third.abandoned_waiting, third.abandoned_ringing) == (1, 1, 0)
    assert third.longest_wait == 45.0
    late = queues[(slot(10, 15), "sales")]
    assert (late.short_abandoned, late.agents_logged_in) == (1, 1)  # 1001 left at 10:10
    assert queues[(None, None)].agents_logged_in == 2
    assert queues[(None, None)].longest_wait == 45.0

    agents = {(r.period, r.agent): r for r in quarters.agents}
    lunch = agents[(slot(9, 15), "1001")]
    assert (lunch.agent_name, lunch.login_seconds, lunch.paused_by_reason) == (
        "李雷",
        900.0,
        {"lunch": 600.0},
    )
    assert agents[(slot(9, 30), "1001")].paused_by_reason == {"lunch": 300.0}
    assert agents[(slot(10, 0), "1001")].login_seconds == 600.0
    assert (slot(10, 15), "1001") not in agents
    assert agents[(slot(0), "1002")].agent_name == "1002"  # no name configured: the id
    assert agents[(slot(9, 45), "1002")].paused_by_reason == {"training": 600.0}

    by_hour = {(r.period, r.agent): r for r in hours.agents}
    nine = by_hour[(slot(9), "1001")]
    assert (nine.login_seconds, nine.paused_seconds) == (3600.0, 900.0)
    assert nine.calls_handled == 2
    handled = 100.0 + 8.0 + 200.0 + 20.0
    assert nine.occupancy == pytest.approx(handled / (3600.0 - 900.0), abs=1e-6)
    assert nine.available_seconds == pytest.approx(3600.0 - 900.0 - handled, abs=1e-5)

    whole = {r.agent: r for r in day.agents if r.period is None}
    lei = whole["1001"]
    assert (lei.agent_name, lei.login_seconds, lei.paused_by_reason) == (
        "李雷",
        4200.0,
        {"lunch": 900.0},
    )
    assert (lei.offered, lei.answered, lei.answered_within_rings) == (2, 2, 2)
    assert lei.aht == pytest.approx(handled / 2, abs=1e-5)
    assert lei.occupancy == pytest.approx(handled / (4200.0 - 900.0), abs=1e-6)
    han = whole["1002"]
    assert (han.login_seconds, han.paused_by_reason) == (86400.0, {"training": 51000.0})
    assert (han.missed, han.missed_no_answer, han.missed_busy) == (1, 1, 0)
    assert (han.calls_handled, han.occupancy) == (0, 0.0)
    everyone = whole[None]
    assert everyone.login_seconds == 4200.0 + 86400.0
    assert everyone.paused_by_reason == {"lunch": 900.0, "training": 51000.0}

    tickets = {r.period: r for r in day.tickets}
    assert (tickets[None].callbacks_scheduled, tickets[None].callbacks_done) == (2, 1)
    assert tickets[None].callbacks_failed == 0  # failed the next day: outside the range
    two_days = await build_report(pg_pool, parse_request("day", "2026-03-02", "2026-03-03"),
                                  settings, now=NOW)  # fmt: skip
    assert [(r.period, r.callbacks_failed) for r in two_days.tickets] == [
        (DAY, 0),
        (date(2026, 3, 3), 1),
        (None, 1),
    ]


def test_repair_timeliness_by_responsible_party() -> None:
    builder = ReportBuilder(ReportRequest("day", DAY, DAY + timedelta(days=1)), RULES, now=NOW)
    for repair in (
        CompletedRepair(DAY, True, "in_house"),
        CompletedRepair(DAY, False, "in_house"),
        CompletedRepair(DAY, True, "equipment_vendor"),
        CompletedRepair(DAY + timedelta(days=1), None, "in_house"),  # no due time: not judged
    ):
        builder.add_repair(repair)
    rows = {(r.period, r.party): r for r in builder.build(time_zone="UTC").repairs}
    assert list(rows) == [
        (DAY, "equipment_vendor"),
        (DAY, "in_house"),
        (DAY, None),
        (DAY + timedelta(days=1), "in_house"),
        (DAY + timedelta(days=1), None),
        (None, "equipment_vendor"),
        (None, "in_house"),
        (None, None),
    ]
    assert rows[(DAY, "in_house")] == RepairRow(DAY, "in_house", 2, 1, 1, 0.5)
    assert (rows[(None, "in_house")].completed, rows[(None, "in_house")].timeliness) == (3, 0.5)
    assert rows[(None, None)].timeliness == 2 / 3
    assert rows[(DAY + timedelta(days=1), None)].timeliness is None
