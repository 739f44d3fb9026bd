"""``[service] pbx_id`` and ``lease_ttl``: validated at start."""

from __future__ import annotations

from typing import Any

import pytest

from hotline.config import ConfigError, parse_settings

pytestmark = pytest.mark.integration

DATABASE = {"url": "postgresql://hotline@127.0.0.1/hotline"}


def settings(
    service: dict[str, Any], database: dict[str, Any] | None = DATABASE, **env: str
) -> Any:
    data: dict[str, Any] = {
        "service": service,
        "queues": [{"name": "support"}],
        "agents": [{"id": "1001", "device": "PJSIP/1001", "queues": ["support"]}],
    }
    if database is not None:
        data["database"] = database
    return parse_settings(data, source="t.toml", env=env)


def test_the_defaults_are_no_pair_and_a_three_second_lease() -> None:
    service = settings({}).service
    assert (service.pbx_id, service.lease_ttl) == ("", 3.0)


def test_a_pair_member_has_its_pbx_id_and_lease() -> None:
    service = settings({"pbx_id": "site1", "lease_ttl": 1.5}).service
    assert (service.pbx_id, service.lease_ttl) == ("site1", 1.5)
    assert settings({}, HOTLINE_PBX_ID="site2").service.pbx_id == "site2"


@pytest.mark.parametrize(
    ("service", "database", "key", "problem"),
    [
        ({"pbx_id": "site 1"}, DATABASE, "service.pbx_id", "must be a name"),
        ({"pbx_id": "site1"}, None, "service.pbx_id", "needs [database] url"),
        ({"lease_ttl": 0.1}, DATABASE, "service.lease_ttl", "between 0.5 and 60.0"),
        ({"lease_ttl": "3"}, DATABASE, "service.lease_ttl", "must be a number"),
    ],
)
def test_a_bad_pair_setting_is_refused(
    service: dict[str, Any], database: dict[str, Any] | None, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(service, database)
    assert caught.value.key == key
    assert problem in caught.value.problem
