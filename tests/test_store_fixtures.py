"""The shared fixtures and the TCP proxy do what the other tests rely on."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis

from hotline.store.db import Pool
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

BROKEN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresError)
"""What a client sees of a refused or reset connection."""


async def test_every_test_gets_a_fresh_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("select current_database()")
        tables = await conn.fetchval("select count(*) from pg_tables where schemaname = 'public'")
    finally:
        await conn.close()
    assert name.startswith("hl_test_")
    assert tables == 0


async def test_the_migrated_database_is_a_private_copy(pg_pool: Pool) -> None:
    assert await pg_pool.fetchval("select count(*) from schema_migrations") >= 1
    assert (await pg_pool.fetchval("select current_database()")).startswith("hl_test_")
    await pg_pool.execute("insert into customers (name) values ('only here')")
    assert await pg_pool.fetchval("select count(*) from customers") == 1


async def test_redis_keys_live_under_the_test_prefix(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    await redis_client.set(f"{redis_prefix}agent:1001", "available")
    assert await redis_client.get(f"{redis_prefix}agent:1001") == b"available"
    assert [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")] == [
        f"{redis_prefix}agent:1001".encode()
    ]


async def test_the_proxy_refuses_stalls_and_heals(migrated_database_url: str) -> None:
    proxy, dsn = await TcpProxy.for_postgres(migrated_database_url)
    try:
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("select 1") == 1

        proxy.break_("refuse")
        with pytest.raises(BROKEN):
            await conn.fetchval("select 1")
        with pytest.raises(BROKEN):
            await asyncpg.connect(dsn, timeout=2)

        proxy.heal()
        conn = await asyncpg.connect(dsn)
        proxy.break_("stall")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetchval("select 2"), 0.3)
        conn.terminate()

        proxy.heal()
        conn = await asyncpg.connect(dsn)
        proxy.break_("drop")
        with pytest.raises(BROKEN):
            await conn.fetchval("select 1")
        conn = await asyncpg.connect(dsn)  # a drop is momentary
        assert await conn.fetchval("select 3") == 3
        await conn.close()
        assert proxy.accepted >= 5
    finally:
        await proxy.close()
