"""Web and session security (issue 9 items 15-19), on real PostgreSQL and Redis.

15: what an agent may see (customers of their tickets, the caller on their phone), refusals
audited, callbacks only through their own phone. 16: the login limit counted atomically, per
(name, address) pair. 17: password rules, and a new password ends the other sessions.
18: unauthenticated load cannot starve signed-in users of Redis connections. 19: undecodable
bodies are 400, every response says ``nosniff``.

The screen-pop test puts a caller on an agent's phone by handing the engine's router the
domain events a PBX would cause (:class:`tests.routing_helpers.Pbx`); the router's effects
are not executed (there is no PBX), and nothing wakes the engine task meanwhile.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import tomllib
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from hotline.config import ConfigError, parse_settings
from hotline.store.audit import AuditLog
from hotline.store.customers import Customers
from hotline.store.users import common_passwords
from hotline.web.auth import COOKIE
from hotline.web.keys import CLOCK, ENGINE
from hotline.web.sessions import SessionIds
from tests.api_support import BEARER, PASSWORD, RunningApi, Signed, running_api
from tests.routing_helpers import Pbx

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a fresh and long secret"


async def _audit(api: RunningApi, action: str) -> list[Any]:
    return [e for e in await AuditLog(api.pool).find(limit=1000) if e.action == action]


# -- 15: what an agent may see ---------------------------------------------------------------


async def test_agents_cannot_reach_customers_through_tickets_they_open_or_repoint(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        customers = Customers(api.pool)
        supported = await customers.create(phones=["13900139005"], name="Zhao Support")
        stranger = await customers.create(phones=["13900139006"], name="Qian Stranger")
        opened = await api.bearer(
            "POST", "/api/tickets", json={"customer_id": supported.id, "queue": "support"}
        )
        assert opened.status == 201
        alice = await api.sign_in("alice")

        # Opening a ticket for any customer id does not open that customer's file.
        created = await alice.call("POST", "/api/tickets", json={"customer_id": stranger.id})
        read = await alice.call("GET", f"/api/customers/{stranger.id}")
        changed = await alice.call("PATCH", f"/api/customers/{stranger.id}", json={"notes": "x"})
        # Nor does re-pointing her own ticket at that customer.
        own = await alice.call("POST", "/api/tickets", json={"subject": "mine"})
        number = (await own.json())["number"]
        repointed = await alice.call(
            "PATCH", f"/api/tickets/{number}", json={"customer_id": stranger.id}
        )
        # A customer she may see is fine, and so is keeping a ticket's own customer.
        visible = await alice.call(
            "PATCH", f"/api/tickets/{number}", json={"customer_id": supported.id}
        )
        kept = await alice.call(
            "PATCH",
            f"/api/tickets/{number}",
            json={"customer_id": supported.id, "subject": "still mine"},
        )
        # A supervisor may do all of it.
        sam = await api.sign_in("sam")
        supervised = await sam.call("POST", "/api/tickets", json={"customer_id": stranger.id})

        stranger_tickets = await api.pool.fetchval(
            "select count(*) from tickets where customer_id = $1", stranger.id
        )
        denied = await _audit(api, "customer.denied")
        untouched = await customers.get(stranger.id)

    assert created.status == 403
    assert read.status == 403
    assert changed.status == 403
    assert own.status == 201
    assert repointed.status == 403
    assert visible.status == 200
    assert kept.status == 200
    assert supervised.status == 201
    assert stranger_tickets == 1  # the supervisor's only
    assert untouched.notes == ""
    assert sorted((e.actor, e.object_id, e.detail["operation"]) for e in denied) == sorted(
        [
            ("alice", str(stranger.id), "ticket.create"),
            ("alice", str(stranger.id), "read"),
            ("alice", str(stranger.id), "update"),
            ("alice", str(stranger.id), "ticket.update"),
        ]
    )


async def test_the_caller_on_an_agents_phone_is_visible_for_the_screen_pop(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        caller = await Customers(api.pool).create(phones=["13925742721"], name="Wu Caller")
        alice = await api.sign_in("alice")
        bob = await api.sign_in("bob")
        before = await alice.call("GET", f"/api/customers/{caller.id}")
        assert (await alice.call("POST", "/api/agents/1001/login")).status == 200

        router = api.server.app[ENGINE].router
        pbx = Pbx(router)
        pbx.now = api.server.app[CLOCK].now()
        uniqueid, _effects = pbx.caller("support", number="13925742721")
        assert router.caller_on_phone("1001") == "13925742721"
        ringing = await alice.call("GET", f"/api/customers/{caller.id}")
        found = await (await alice.call("GET", "/api/customers?q=Wu")).json()
        by_number = await (await alice.call("GET", "/api/customers?q=2574")).json()
        elsewhere = await bob.call("GET", f"/api/customers/{caller.id}")
        noted = await alice.call(
            "PATCH", f"/api/customers/{caller.id}", json={"notes": "asked about water"}
        )

        pbx.hangup(uniqueid)
        assert router.caller_on_phone("1001") is None
        after = await alice.call("GET", f"/api/customers/{caller.id}")

    assert before.status == 403
    assert ringing.status == 200
    assert [c["id"] for c in found] == [caller.id]
    assert [c["id"] for c in by_number] == [caller.id]
    assert elsewhere.status == 403  # not on bob's phone
    assert noted.status == 200
    assert after.status == 403  # the call is over


async def test_agents_schedule_callbacks_only_through_their_own_phone(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        alice = await api.sign_in("alice")
        number = (await (await alice.call("POST", "/api/tickets", json={})).json())["number"]
        callback = {"phone": "13900139000", "due_at": "2030-01-01T09:00:00Z"}
        other = await alice.call(
            "POST", f"/api/tickets/{number}/callbacks", json={**callback, "assigned_to": "1002"}
        )
        own = await alice.call("POST", f"/api/tickets/{number}/callbacks", json=callback)
        explicit = await alice.call(
            "POST", f"/api/tickets/{number}/callbacks", json={**callback, "assigned_to": "1001"}
        )
        supervised = await api.bearer(
            "POST", f"/api/tickets/{number}/callbacks", json={**callback, "assigned_to": "1002"}
        )
        denied = await _audit(api, "callback.denied")
        own_body = await own.json()

    assert other.status == 403
    assert own.status == 201
    assert own_body["assigned_to"] == "1001"  # her own phone, not the queue
    assert explicit.status == 201
    assert supervised.status == 201
    assert [(e.actor, e.object_id, e.detail["assigned_to"]) for e in denied] == [
        ("alice", number, "1002")
    ]


# -- 16: the login limit ---------------------------------------------------------------------


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_parallel_wrong_passwords_are_all_counted(
    store: str,
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,  # noqa: ARG001 (a fixture wanted for its set-up)
) -> None:
    options: dict[str, Any] = {"web": {"login_window": 300}}
    if store == "redis":
        options |= {"redis_url": redis_server_url, "redis_prefix": redis_prefix}
    async with running_api(migrated_database_url, tmp_path, **options) as api:
        client = await api.client()
        wrong = {"username": "alice", "password": "wrong password"}
        answers = await asyncio.gather(*(client.post("/api/login", json=wrong) for _ in range(200)))
        statuses = Counter(answer.status for answer in answers)
        right = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        failed = await _audit(api, "user.login_failed")

    assert statuses == {401: 5, 429: 195}  # login_max_failures = 5, however parallel
    assert right.status == 429
    assert len(failed) == 5
    assert {e.detail["username"] for e in failed} == {"alice"}


async def _login_from(api: RunningApi, address: str, body: dict[str, str]) -> int:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.post(api.server.make_url("/api/login"), json=body)
        return response.status


async def test_nobody_locks_a_named_user_out_from_elsewhere(
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,  # noqa: ARG001 (a fixture wanted for its set-up)
) -> None:
    async with running_api(
        migrated_database_url, tmp_path, redis_url=redis_server_url, redis_prefix=redis_prefix
    ) as api:
        attacker = [
            await _login_from(api, "127.0.0.2", {"username": "alice", "password": "guess"})
            for _ in range(8)
        ]
        alice = await _login_from(api, "127.0.0.1", {"username": "alice", "password": PASSWORD})
        # The typed "user name" is really a password: it is audited only as a fingerprint.
        typo = await _login_from(api, "127.0.0.3", {"username": PASSWORD, "password": "alice"})
        failed = await _audit(api, "user.login_failed")

    assert attacker == [401] * 5 + [429] * 3
    assert alice == 200
    assert typo == 401
    assert {e.detail["address"] for e in failed} == {"127.0.0.2", "127.0.0.3"}
    typed = next(e for e in failed if e.detail["address"] == "127.0.0.3")
    assert typed.object_id == ""
    assert "username" not in typed.detail
    assert PASSWORD not in json.dumps([dict(e.detail) for e in failed])
    assert typed.detail["name"].startswith("h:")


# -- 17: passwords ---------------------------------------------------------------------------


async def test_common_and_name_like_passwords_are_refused(
    migrated_database_url: str, tmp_path: Path
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        root = await api.sign_in("root")
        answers = {}
        for password in ("password123", "Qwerty12345!", "carol-the-agent", " " * 12, "carol123"):
            response = await root.call(
                "POST",
                "/api/users",
                json={"username": "carol", "password": password, "role": "agent"},
            )
            answers[password] = (response.status, (await response.json())["fields"]["password"])
        alice_id = (await api.sign_in("alice")).me["user_id"]
        reset = await root.call("PATCH", f"/api/users/{alice_id}", json={"password": "iloveyou123"})
        created = await root.call(
            "POST",
            "/api/users",
            json={"username": "carol", "password": NEW_PASSWORD, "role": "agent"},
        )

    assert {status for status, _ in answers.values()} == {422}
    assert "common" in answers["password123"][1]
    assert "common" in answers["Qwerty12345!"][1]  # trailing digits and symbols do not help
    assert "user name" in answers["carol-the-agent"][1]
    assert "user name" in answers["carol123"][1]
    assert "whitespace" in answers[" " * 12][1]
    assert reset.status == 422
    assert created.status == 201


def test_the_common_password_list_ships_as_package_data() -> None:
    assert len(common_passwords()) > 400
    assert {"password", "qwerty123", "woaini1314"} <= common_passwords()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "data/*.txt" in pyproject["tool"]["setuptools"]["package-data"]["hotline.store"]


async def test_a_new_password_ends_the_users_other_sessions(
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,  # noqa: ARG001 (a fixture wanted for its set-up)
) -> None:
    async with running_api(
        migrated_database_url, tmp_path, redis_url=redis_server_url, redis_prefix=redis_prefix
    ) as api:
        root = await api.sign_in("root")
        phone = await api.sign_in("alice")
        laptop = await api.sign_in("alice")
        bob = await api.sign_in("bob")
        # Alice changes her own password on the laptop: the phone is signed out.
        weak = await laptop.call(
            "POST",
            "/api/me/password",
            json={"current_password": PASSWORD, "new_password": "password123"},
        )
        weak_body = await weak.json()
        wrong_current = await laptop.call(
            "POST",
            "/api/me/password",
            json={"current_password": "not it", "new_password": NEW_PASSWORD},
        )
        changed = await laptop.call(
            "POST",
            "/api/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        laptop = Signed(laptop.client, (await changed.json())["csrf_token"], laptop.me)
        phone_after = await phone.call("GET", "/api/me")
        laptop_after = await laptop.call("GET", "/api/me")
        bob_after = await bob.call("GET", "/api/me")
        client = await api.client()
        old = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        # An admin resets it: every session of alice ends; the admin's own does not.
        reset = await root.call(
            "PATCH", f"/api/users/{laptop.me['user_id']}", json={"password": "yet another one"}
        )
        laptop_reset = await laptop.call("GET", "/api/me")
        root_after = await root.call("GET", "/api/me")
        again = await api.sign_in("alice", "yet another one")

    assert weak.status == 422
    assert "common" in weak_body["fields"]["new_password"]
    assert wrong_current.status == 403
    assert changed.status == 200
    assert phone_after.status == 401
    assert laptop_after.status == 200
    assert bob_after.status == 200
    assert old.status == 401
    assert reset.status == 200
    assert laptop_reset.status == 401
    assert root_after.status == 200
    assert again.me["name"] == "alice"


# -- 18: unauthenticated load ----------------------------------------------------------------


async def test_malformed_session_cookies_are_refused_without_redis(
    migrated_database_url: str, tmp_path: Path
) -> None:
    """Redis is unreachable here: a cookie the service never made still gets a plain 401,
    so forged cookies cost no Redis work at all."""
    async with running_api(
        migrated_database_url, tmp_path, redis_url="redis://127.0.0.1:1/0"
    ) as api:
        client = await api.client()
        answers = []
        for forged in ("x", "a" * 42, "a" * 44, "a" * 42 + "!", "ä" * 43, "a" * 200):
            response = await client.get("/api/me", cookies={COOKIE: forged})
            answers.append(response.status)

    assert answers == [401] * 6


async def test_with_a_session_key_forged_ids_of_the_right_shape_cost_no_redis_either(
    migrated_database_url: str, tmp_path: Path
) -> None:
    key = "a session key for the tests, 32+ chars"
    ids = SessionIds(key)
    real = ids.new()
    token, mac = real.split(".")
    forged = [
        "a" * 43,  # an unsigned id
        f"{'a' * 43}.{mac}",  # another token with a real signature
        f"{token}.{'A' * 22}",  # the real token with a made-up signature
        SessionIds("another key of the same length!!!!!").new(),
    ]
    async with running_api(
        migrated_database_url,
        tmp_path,
        redis_url="redis://127.0.0.1:1/0",
        web={"session_key": key},
    ) as api:
        client = await api.client()
        answers = [
            (await client.get("/api/me", cookies={COOKIE: cookie})).status for cookie in forged
        ]
        # One the server would have made gets as far as Redis, which is down here: 503.
        recognised = await client.get("/api/me", cookies={COOKIE: real})

    assert ids.recognises(real)
    assert not any(ids.recognises(cookie) for cookie in forged)
    assert answers == [401] * 4
    assert recognised.status == 503
    assert key not in repr(ids)


async def test_signed_session_ids_sign_in_and_out(
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,  # noqa: ARG001 (a fixture wanted for its set-up)
) -> None:
    async with running_api(
        migrated_database_url,
        tmp_path,
        redis_url=redis_server_url,
        redis_prefix=redis_prefix,
        web={"session_key": "a session key for the tests, 32+ chars"},
    ) as api:
        sam = await api.sign_in("sam")
        cookie = sam.client.session.cookie_jar.filter_cookies(api.server.make_url("/"))[COOKIE]
        me = await sam.call("GET", "/api/me")
        out = await sam.call("POST", "/api/logout")
        after = await sam.call("GET", "/api/me")

    assert SessionIds("a session key for the tests, 32+ chars").recognises(cookie.value)
    assert (me.status, out.status, after.status) == (200, 204, 401)


async def test_unauthenticated_load_does_not_starve_signed_in_users(
    migrated_database_url: str,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,  # noqa: ARG001 (a fixture wanted for its set-up)
) -> None:
    """Three Redis connections for the whole process, 200 requests with well-formed but
    unknown cookies and 30 by a signed-in user, all at once: the pool makes them wait their
    turn instead of failing, so nobody gets a 503."""
    small_pool = f"{redis_server_url}{'&' if '?' in redis_server_url else '?'}max_connections=3"
    async with running_api(
        migrated_database_url, tmp_path, redis_url=small_pool, redis_prefix=redis_prefix
    ) as api:
        sam = await api.sign_in("sam")
        anonymous = await api.client()
        forged = [anonymous.get("/api/tickets", cookies={COOKIE: f"{n:043d}"}) for n in range(200)]
        signed = [sam.call("GET", "/api/me") for _ in range(30)]
        answers = await asyncio.gather(*forged, *signed)

    assert Counter(a.status for a in answers[:200]) == {401: 200}
    assert Counter(a.status for a in answers[200:]) == {200: 30}


# -- 19: bodies and headers ------------------------------------------------------------------


async def test_undecodable_bodies_are_400_and_every_answer_says_nosniff(
    migrated_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_api(migrated_database_url, tmp_path) as api:
        client = await api.client()
        body = json.dumps({"username": "alice", "password": PASSWORD}).encode()
        answers = {}
        for encoding in ("gzip", "deflate"):
            for path in ("/api/login", "/api/tickets"):
                # A fresh connection each: the server closes one whose body it cannot read.
                response = await (await api.client()).post(
                    path,
                    data=b"this is not compressed at all",
                    headers={
                        "Content-Encoding": encoding,
                        "Content-Type": "application/json",
                        **BEARER,
                    },
                )
                answers[(encoding, path)] = (response.status, await response.json())
        gzipped = await client.post(
            "/api/login",
            data=gzip.compress(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        deflated = await client.post(
            "/api/login",
            data=zlib.compress(body),
            headers={"Content-Encoding": "deflate", "Content-Type": "application/json"},
        )
        headers = [
            gzipped.headers,
            (await client.get("/api/me")).headers,  # 401 (a new client has no cookie)
            (await api.bearer("GET", "/api/nothing")).headers,  # 404
            (await client.get("/health")).headers,
            (await client.get("/metrics")).headers,
        ]

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
    for status, error in answers.values():
        assert status == 400
        assert error["error"] == "bad request"
        assert "Content-Encoding" in error["message"]
    assert gzipped.status == 200
    assert deflated.status == 200
    assert all(h["X-Content-Type-Options"] == "nosniff" for h in headers)


def test_the_session_key_is_a_secret_of_16_or_more_characters(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "ami": {"url": "ami://hotline:secret@127.0.0.1:1"},
        "queues": [{"name": "support"}],
    }
    with pytest.raises(ConfigError, match=r"web\.session_key: must be at least 16") as short:
        parse_settings({**base, "web": {"session_key": "too short"}}, source="<t>", env={})
    assert "too short" not in str(short.value)
    key_file = tmp_path / "session.key"
    key_file.write_text("a key from a file, long enough\n")
    settings = parse_settings(base, source="<t>", env={"HOTLINE_SESSION_KEY_FILE": str(key_file)})
    assert settings.web.session_key.reveal() == "a key from a file, long enough"
    assert "long enough" not in repr(settings)
    assert not parse_settings(base, source="<t>", env={}).web.session_key
