"""Agents stay logged in (and paused, with the reason) across a restart; sticky history too.

The router's presence facts and :meth:`Router.restore` (pure); the round trip through the
recorder, the outbox's writes and the loaders on real PostgreSQL; the JSON file used
without a database; and the real service restarted against the same simulated PBX.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from structlog.testing import capture_logs

from hotline.clock import SystemClock
from hotline.config import QueueConfig
from hotline.domain.effects import (
    AgentPresenceChanged,
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    Effect,
    Fact,
    OfferStarted,
    RoutingWarning,
)
from hotline.domain.model import AgentPresence, AgentState
from hotline.domain.routing import NO_ANSWER_PAUSE, Router
from hotline.sim.harness import Stack, build_settings, start_stack
from hotline.sim.scenario import AgentBehaviour, AgentGroup, Arrival, Fixed, Scenario
from hotline.store.agentstate import (
    AGENT_STATE_FILE,
    AgentStateFile,
    load_agent_states,
    load_sticky,
    open_agent_state,
)
from hotline.store.records import Record, Recorder, apply_records
from hotline.store.resources import store_context
from hotline.ticketno import MemorySequenceStore, TicketNumbers
from hotline.web.keys import STORE
from tests.routing_helpers import T0, Pbx, agent, make_router, originates
from tests.support import hold, scenario_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SUPPORT = [QueueConfig(name="support", wrap_up=0)]


def presence_facts(effects: list[Effect]) -> list[AgentPresenceChanged]:
    return [e for e in effects if isinstance(e, AgentPresenceChanged)]


def three_agents() -> Router:
    return make_router([agent("2001"), agent("2002"), agent("2003")], SUPPORT)


# -- the router -------------------------------------------------------------------------------


def test_every_login_logout_pause_and_unpause_is_a_presence_fact() -> None:
    router = three_agents()
    facts = presence_facts(router.login("2001", T0))
    facts += presence_facts(router.pause("2001", "lunch", T0 + 10))
    assert presence_facts(router.pause("2001", "lunch", T0 + 11)) == []  # nothing changed
    facts += presence_facts(router.pause("2001", "training", T0 + 20))
    facts += presence_facts(router.unpause("2001", T0 + 30))
    facts += presence_facts(router.pause("2001", "", T0 + 40))
    facts += presence_facts(router.logout("2001", T0 + 50))
    assert presence_facts(router.logout("2001", T0 + 60)) == []

    assert [(f.change, f.reason, f.at) for f in facts] == [
        ("login", None, T0),
        ("pause", "lunch", T0 + 10),
        ("pause", "training", T0 + 20),
        ("unpause", "training", T0 + 30),
        ("pause", "paused", T0 + 40),
        ("logout", None, T0 + 50),
    ]
    assert facts[2].presence == AgentPresence("2001", True, T0, "training", T0 + 20)
    assert facts[3].presence == AgentPresence("2001", True, T0, None, None)
    assert facts[-1].presence == AgentPresence("2001", False, None, None, None)


def test_the_no_answer_pause_is_a_presence_fact_too() -> None:
    router = make_router([agent("2001")], SUPPORT, max_consecutive_misses=1)
    pbx = Pbx(router)
    router.login("2001", pbx.now)
    _, effects = pbx.caller()
    [offer] = originates(effects)
    pbx.ring(offer)
    pbx.now += 15
    [fact] = presence_facts(pbx.fail(offer, 3))
    assert (fact.change, fact.reason) == ("pause", NO_ANSWER_PAUSE)
    assert fact.presence == AgentPresence("2001", True, T0, NO_ANSWER_PAUSE, pbx.now)


def test_restore_brings_back_logins_and_pauses_and_routes_without_a_login() -> None:
    before = three_agents()
    before.login("2001", T0)
    before.login("2002", T0 + 1)
    before.pause("2002", "training", T0 + 2)
    saved = [a.presence for a in before.agents.values()]
    gone = AgentPresence("2999", True, T0, None, None)

    router = three_agents()
    now = T0 + 3600
    effects = router.restore([*saved, gone], {}, now)

    assert [a.presence for a in router.agents.values()] == saved
    assert router.agents["2001"].state is AgentState.AVAILABLE
    assert router.agents["2002"].state is AgentState.PAUSED
    assert router.agents["2002"].pause_reason == "training"
    assert router.agents["2003"].state is AgentState.LOGGED_OUT
    assert router.available_agents() == {"2001"}
    [warning] = [e for e in effects if isinstance(e, RoutingWarning)]
    assert warning.code == "restore_unknown_agent"
    assert "2999" in warning.detail
    states = [(e.agent_id, e.state) for e in effects if isinstance(e, AgentStateChanged)]
    assert states == [("2001", AgentState.AVAILABLE), ("2002", AgentState.PAUSED)]
    paused = next(e for e in effects if isinstance(e, AgentStateChanged) and e.agent_id == "2002")
    assert paused.reason == "training"
    assert presence_facts(effects) == []  # restoring is not a new change to record

    pbx = Pbx(router)
    pbx.now = now + 1
    _, effects = pbx.caller()
    assert [o.device for o in originates(effects)] == ["Local/2001@agents"]


def test_restored_sticky_history_prefers_the_previous_agent_within_sticky_days() -> None:
    router = make_router([agent("2001"), agent("2002")], SUPPORT)
    now = T0 + 86400
    both = [AgentPresence(i, True, T0, None, None) for i in ("2001", "2002")]
    sticky = {
        "13900000001": ("2002", now - 3600),
        "13900000002": ("2002", now - 8 * 86400),  # older than sticky_days (7)
        "13900000003": ("2999", now - 60),  # an agent no longer configured
    }
    router.restore(both, sticky, now)
    assert router.sticky == {"13900000001": ("2002", now - 3600)}

    pbx = Pbx(router)
    pbx.now = now + 1
    _, effects = pbx.caller(number="13900000001")
    # Both count as idle since the restore: by id alone 2001 would ring.
    assert [o.device for o in originates(effects)] == ["Local/2002@agents"]


# -- PostgreSQL -------------------------------------------------------------------------------


def recorder(into: list[Record]) -> Recorder:
    return Recorder(into.append, ring_cadence=5.0, monitor_dir="/var/spool/asterisk/monitor")


def record_all(effects: list[Effect], into: list[Record]) -> None:
    sink = recorder(into)
    for effect in effects:
        if isinstance(effect, Fact):
            sink(effect)


async def write(dsn: str, records: list[Record]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await apply_records(conn, records)
    finally:
        await conn.close()


async def read(dsn: str, query: Callable[[Any], Any]) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await query(conn)
    finally:
        await conn.close()


async def test_store_round_trip_current_state_and_the_append_only_log(
    migrated_database_url: str,
) -> None:
    dsn = migrated_database_url
    router = three_agents()
    effects = router.login("2001", T0)
    effects += router.login("2002", T0 + 1)
    effects += router.pause("2002", "training", T0 + 2.25)
    effects += router.login("2003", T0 + 3)
    effects += router.pause("2003", "lunch", T0 + 4)
    effects += router.unpause("2003", T0 + 5)
    effects += router.logout("2003", T0 + 6)
    records: list[Record] = []
    record_all(effects, records)
    await write(dsn, records[:3])
    await write(dsn, records[3:])

    loaded = await read(dsn, load_agent_states)
    assert loaded == [router.agents[i].presence for i in ("2001", "2002", "2003")]
    assert loaded[1] == AgentPresence("2002", True, T0 + 1, "training", T0 + 2.25)

    log_query = "select agent_id, event, reason, extract(epoch from at)::float8 as at from agent_state_log order by id"  # noqa: E501
    log = await read(dsn, lambda c: c.fetch(log_query))
    assert [tuple(row) for row in log] == [
        ("2001", "login", None, T0),
        ("2002", "login", None, T0 + 1),
        ("2002", "pause", "training", T0 + 2.25),
        ("2003", "login", None, T0 + 3),
        ("2003", "pause", "lunch", T0 + 4),
        ("2003", "unpause", "lunch", T0 + 5),
        ("2003", "logout", None, T0 + 6),
    ]

    # A replayed batch (after a crash, or a lost commit acknowledgement) changes nothing,
    # and an older change never overwrites a newer one.
    await write(dsn, records[3:5])
    assert await read(dsn, load_agent_states) == loaded
    assert len(await read(dsn, lambda c: c.fetch(log_query))) == len(log)

    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await read(dsn, lambda c: c.execute("delete from agent_state_log"))


async def test_sticky_history_is_read_back_from_the_calls_a_router_recorded(
    migrated_database_url: str,
) -> None:
    dsn = migrated_database_url
    router = make_router([agent("2001"), agent("2002")], SUPPORT)
    pbx = Pbx(router)
    records: list[Record] = []
    effects = router.login("2002", pbx.now) + router.login("2001", pbx.now + 1)
    pbx.now += 2
    for number in ("13900000001", "13900000002", "13900000001"):
        uid, more = pbx.caller(number=number)
        [offer] = originates(more)
        effects += more + pbx.answer(offer)
        pbx.now += 30
        effects += pbx.hangup(uid)
        pbx.now += 5
    record_all(effects, records)
    await write(dsn, records)
    answered = [e for e in effects if isinstance(e, CallAnswered)]
    assert len(answered) == 3

    sticky = await read(dsn, lambda c: load_sticky(c, T0 - 86400))
    assert sticky == router.sticky
    assert sticky["13900000001"] == (answered[2].agent_id, answered[2].answered_at)
    assert await read(dsn, lambda c: load_sticky(c, pbx.now)) == {}


async def test_a_bad_row_is_skipped_with_a_warning(migrated_database_url: str) -> None:
    dsn = migrated_database_url
    insert = """
        insert into agent_states (agent_id, logged_in, logged_in_since, pause_reason,
                                  paused_since, changed_at)
        values ($1, true, now(), $2, case when $2::text is null then null else now() end, now())
    """

    async def setup(conn: Any) -> None:
        await conn.execute(insert, "2001", None)
        await conn.execute(insert, "20\x0702", None)
        await conn.execute(insert, "2003", "x" * 500)

    await read(dsn, setup)
    with capture_logs() as logs:
        loaded = await read(dsn, load_agent_states)
    assert [p.agent_id for p in loaded] == ["2001"]
    skipped = [e for e in logs if e["event"] == "agent_state.skipped"]
    assert len(skipped) == 2


async def test_an_unreachable_database_at_start_is_a_warning_then_the_state_loads(
    migrated_database_url: str, tmp_path: Path
) -> None:
    router = three_agents()
    records: list[Record] = []
    record_all(router.login("2001", T0) + router.pause("2001", "meeting", T0 + 1), records)
    await write(migrated_database_url, records)
    proxy, proxied = await TcpProxy.for_postgres(migrated_database_url)
    settings = build_settings(Scenario(), 1, database_url=proxied, state_dir=str(tmp_path))
    numbers = TicketNumbers("A", ZoneInfo("UTC"), MemorySequenceStore())
    try:
        proxy.break_("refuse")
        async with store_context(settings, numbers, warm_timeout=1) as store:
            with capture_logs() as logs:
                persisted = await open_agent_state(
                    settings, store, three_agents(), SystemClock(), timeout=1
                )
            assert (persisted.states, persisted.sticky, persisted.sinks) == ([], {}, [])
            assert "agent_state.load_failed" in [e["event"] for e in logs]

            proxy.heal()
            persisted = await open_agent_state(settings, store, three_agents(), SystemClock())
            assert persisted.states == [AgentPresence("2001", True, T0, "meeting", T0 + 1)]
    finally:
        await proxy.close()


# -- without a database: the JSON file --------------------------------------------------------


async def test_the_file_round_trip_is_atomic_and_survives_bad_entries(tmp_path: Path) -> None:
    router = three_agents()
    router.login("2001", T0)
    router.pause("2001", "training", T0 + 5)
    router.sticky["13900000001"] = ("2001", T0 + 9)
    path = tmp_path / "state" / AGENT_STATE_FILE
    saved = AgentStateFile(
        path, lambda: ([a.presence for a in router.agents.values()], dict(router.sticky))
    )
    await saved.write()
    assert not list(path.parent.glob("*.tmp"))

    states, sticky = AgentStateFile(path, lambda: ([], {})).load()
    assert states == [a.presence for a in router.agents.values()]
    assert sticky == {"13900000001": ("2001", T0 + 9)}

    data = json.loads(path.read_text())
    data["agents"].append({"agent_id": "2004", "logged_in": "yes"})
    data["agents"].append("garbage")
    data["sticky"]["13900000002"] = ["2002", float("nan")]
    path.write_text(json.dumps(data))
    with capture_logs() as logs:
        states, sticky = AgentStateFile(path, lambda: ([], {})).load()
    assert [s.agent_id for s in states] == ["2001", "2002", "2003"]
    assert sticky == {"13900000001": ("2001", T0 + 9)}
    assert len([e for e in logs if e["event"] == "agent_state.skipped"]) == 3

    path.write_text("{not json")
    with capture_logs() as logs:
        assert AgentStateFile(path, lambda: ([], {})).load() == ([], {})
    assert [e["event"] for e in logs] == ["agent_state.unreadable"]


async def test_the_file_writer_writes_each_change_and_the_sticky_history_at_close(
    tmp_path: Path,
) -> None:
    router = three_agents()
    path = tmp_path / AGENT_STATE_FILE
    saved = AgentStateFile(
        path,
        lambda: ([a.presence for a in router.agents.values()], dict(router.sticky)),
        sticky_interval=3600.0,
    )
    saved.start()
    try:
        for fact in presence_facts(router.login("2001", T0)):
            saved.sink(fact)
        async with asyncio.timeout(10):
            # Polling is fine here: the test waits on the writer task.
            while saved.writes < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        router.sticky["13900000001"] = ("2001", T0 + 5)
        saved.sink(CallAnswered("c1", "2001", "support", "T1", T0, T0 + 5, "pbx"))
        assert AgentStateFile(path, lambda: ([], {})).load()[1] == {}  # not yet
    finally:
        await saved.close()
    states, sticky = AgentStateFile(path, lambda: ([], {})).load()
    assert states[0] == AgentPresence("2001", True, T0, None, None)
    assert sticky == {"13900000001": ("2001", T0 + 5)}
    assert saved.writes == 2


# -- end to end: the service restarted against the same PBX ----------------------------------


def restart_scenario() -> Scenario:
    devices = tuple(f"Local/{ext}@agents" for ext in range(2001, 2005))
    return Scenario(
        name="agent-restart",
        seed=3,
        time_scale=20.0,
        agents=(AgentGroup(devices, AgentBehaviour(answer_delay=Fixed(1.0), talk=Fixed(5.0))),),
    )


def arrive(stack: Stack, number: str) -> None:
    stack.sim.core.arrive(Arrival(0.0, number, "Caller", "support", 0, (), None, 120.0))


async def wait_for(stack: Stack, found: Callable[[list[Fact]], bool], what: str) -> None:
    """Wait for the service's facts to show ``what``, checking every 50 ms of scenario time
    (a wall-time poll would let the virtual clock run on unseen)."""
    await scenario_until(stack.clock, lambda: found(stack.facts), 60, what=what)


async def agents_view(stack: Stack) -> dict[str, dict[str, Any]]:
    async with stack.session.get(
        f"{stack.base_url}/api/agents", headers={"Authorization": f"Bearer {stack.token}"}
    ) as response:
        response.raise_for_status()
        return {a["id"]: a for a in await response.json()}


async def call_and_wait(stack: Stack, number: str) -> str:
    """A caller from ``number`` arrives; returns who answered, once the call has ended."""
    seen = len(stack.facts)
    arrive(stack, number)
    return await answered_by(stack, number, seen)


async def answered_by(stack: Stack, number: str, seen: int = 0) -> str:
    """Who answered the caller from ``number`` (a fact after the first ``seen``), once the
    call has ended."""

    def ended(facts: list[Fact]) -> bool:
        return any(isinstance(f, CallEnded) and f.number == number for f in facts[seen:])

    await wait_for(stack, ended, f"the call from {number} to end")
    [end] = [f for f in stack.facts[seen:] if isinstance(f, CallEnded) and f.number == number]
    assert end.answered_by is not None, "the caller was answered"
    return end.answered_by


async def restart_keeps_logins_pauses_and_sticky_agents(
    database_url: str | None, tmp_path: Path
) -> None:
    """Log in and pause agents, serve a caller, restart the service on the same sim."""
    with_database = database_url is not None
    options: dict[str, Any] = {
        "queues": [{"name": "support", "wrap_up": 0}],
        "database_url": database_url,
        "state_dir": str(tmp_path),
    }
    first = await start_stack(restart_scenario(), **options)
    try:
        await first.agent("login", "2001")  # idle longest: serves the first caller
        await first.agent("login", "2002")
        await first.agent("login", "2003")
        await first.agent("pause", "2003", "training")
        assert await call_and_wait(first, "13900000001") == "2001"
        before = await agents_view(first)
        if with_database:
            with hold(first.clock):
                assert await first.app[STORE].outbox.flush(30)
    finally:
        await first.stop_service()
    second: Stack | None = None
    try:
        if not with_database:
            assert (tmp_path / AGENT_STATE_FILE).exists()
        # The restart takes no scenario time: the clock stands still while the new
        # process reads its state (from PostgreSQL, say) and connects.
        with hold(first.clock):
            arrive(first, "13900000003")  # waits at the PBX while the service is down
            second = await start_stack(restart_scenario(), sim=first.sim, **options)
        after = await agents_view(second)
        for agent_id in ("2001", "2002", "2003", "2004"):
            for key in ("logged_in", "pause_reason"):
                assert after[agent_id][key] == before[agent_id][key]
            for key in ("logged_in_since", "paused_since"):
                if before[agent_id][key] is None:
                    assert after[agent_id][key] is None
                else:
                    moments = [datetime.fromisoformat(v[agent_id][key]) for v in (after, before)]
                    assert moments[0].timestamp() == pytest.approx(moments[1].timestamp(), abs=1e-3)
        assert (after["2003"]["state"], after["2004"]["state"]) == ("paused", "logged_out")
        assert after["2003"]["pause_reason"] == "training"

        # No login after the restart. The caller who waited through it is routed at the
        # first resync (the states were restored before it; both idle since the start,
        # so 2001 by id). Then 2002 has been idle longest, yet the repeat caller goes
        # back to 2001 (sticky); a new caller gets 2002; 2003 stays paused.
        assert await answered_by(second, "13900000003") == "2001"
        arrived = next(f for f in second.facts if isinstance(f, CallArrived))
        # Adopted at the resync, with the journal's millisecond arrival (issue 9, item 6).
        assert (arrived.number, arrived.source) == ("13900000003", "journal")
        assert await call_and_wait(second, "13900000001") == "2001"
        assert await call_and_wait(second, "13900000002") == "2002"
        offered = {f.agent_id for f in second.facts if isinstance(f, OfferStarted)}
        assert offered == {"2001", "2002"}
    finally:
        if second is not None:
            await second.close()
        else:
            await first.sim.close()


async def test_a_restarted_service_keeps_agents_and_sticky_history_in_postgresql(
    migrated_database_url: str, tmp_path: Path
) -> None:
    await restart_keeps_logins_pauses_and_sticky_agents(migrated_database_url, tmp_path)


async def test_a_restarted_service_keeps_agents_and_sticky_history_in_the_state_file(
    tmp_path: Path,
) -> None:
    await restart_keeps_logins_pauses_and_sticky_agents(None, tmp_path)
