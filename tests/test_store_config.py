"""The [database] and [tickets] settings of the store."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.config import ConfigError, DatabaseConfig, TicketsConfig, parse_settings

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "queues": [{"name": "support"}],
    "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
}


def parse(env: dict[str, str] | None = None, **tables: Any) -> Any:
    return parse_settings({**BASE, **tables}, source="hotline.toml", env=env or {})


def test_defaults() -> None:
    settings = parse(service={"state_dir": "/var/lib/hotline"})
    assert settings.database == DatabaseConfig(outbox_dir="/var/lib/hotline/outbox")
    assert not settings.database.migrate_on_start
    assert settings.tickets == TicketsConfig()
    assert settings.tickets.attach == "open"


def test_every_key() -> None:
    settings = parse(
        database={
            "url": "postgresql://hotline@db/hotline",
            "migrate_on_start": True,
            "migrations_dir": "/usr/share/hotline/migrations",
            "pool_size": 4,
            "outbox_dir": "/spool/outbox",
            "outbox_max_memory": 2000,
            "outbox_batch": 100,
            "reconcile_interval": 5,
        },
        tickets={
            "attach": "recent",
            "attach_days": 3,
            "monitor_dir": "/rec",
            "complaint_reply_hours": 48,
        },
    )
    assert settings.database_url.reveal() == "postgresql://hotline@db/hotline"
    assert settings.database == DatabaseConfig(
        migrate_on_start=True,
        migrations_dir="/usr/share/hotline/migrations",
        pool_size=4,
        outbox_dir="/spool/outbox",
        outbox_max_memory=2000,
        outbox_batch=100,
        reconcile_interval=5.0,
    )
    assert settings.tickets == TicketsConfig("recent", 3.0, "/rec", 48.0)


@pytest.mark.parametrize(
    ("tables", "key", "problem"),
    [
        ({"tickets": {"attach": "always"}}, "tickets.attach", "must be one of open, recent"),
        ({"tickets": {"attach_days": -1}}, "tickets.attach_days", "must be between"),
        ({"tickets": {"colour": "red"}}, "tickets.colour", "unknown key"),
        ({"database": {"migrate_on_start": "yes"}}, "database.migrate_on_start", "true or false"),
        ({"database": {"outbox_max_memory": 0}}, "database.outbox_max_memory", ">= 1"),
        ({"database": {"pool_size": 1}}, "database.pool_size", ">= 2"),
        ({"database": {"outbox": "/x"}}, "database.outbox", "unknown key"),
        (
            {"service": {"state_dir": ":memory:"}, "database": {"url": "postgresql://db/x"}},
            "database.outbox_dir",
            "is required when service.state_dir is ':memory:'",
        ),
    ],
)
def test_mistakes_name_the_key(tables: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**tables)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"hotline.toml: {key}: ")


def test_the_database_url_comes_from_the_environment_too() -> None:
    settings = parse(
        env={"HOTLINE_DATABASE_URL": "postgresql://env@db/hotline"},
        service={"state_dir": ":memory:"},
        database={"outbox_dir": "/spool/outbox"},
    )
    assert settings.database_url.reveal() == "postgresql://env@db/hotline"
    assert "env@db" not in repr(settings)
