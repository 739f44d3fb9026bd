"""Configuration: the sample loads; every mistake names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, load_settings
from tests.support import run_hotline

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "hotline.toml"

MINIMAL = """
[[queues]]
name = "support"

[[agents]]
id = "1001"
device = "PJSIP/1001"
queues = ["support"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_sample_configuration_is_valid() -> None:
    settings = load_settings(SAMPLE, env={})
    assert set(settings.queues) == {"support", "repairs", "backup"}
    assert settings.queues["support"].overflow_queue == "backup"
    assert settings.queues["repairs"].overflow_target == ("hotline-callback-offer", "s", "1")
    assert settings.agents["1001"].skills == {"repair": 7}
    assert settings.routing.ring_cadence == 5.0
    assert settings.routing.sla_rings == 3
    assert settings.ami.events == "call,agent,user,dialplan,system"


def test_environment_overrides_keys_the_file_also_sets(tmp_path: Path) -> None:
    text = (
        '[service]\ninstance = "B"\nhttp_listen = "127.0.0.1:9000"\nstate_dir = "/tmp/x"\n'
        '[ami]\nurl = "ami://a@pbx:5038"\n[database]\nurl = "postgresql://file/db"\n' + MINIMAL
    )
    env = {
        "HOTLINE_INSTANCE": "C",
        "HOTLINE_HTTP_LISTEN": "0.0.0.0:8081",
        "HOTLINE_STATE_DIR": "/var/lib/hotline",
        "HOTLINE_AMI_URL": "ami://b@pbx2:5039",
        "HOTLINE_DATABASE_URL": "postgresql://env/db",
    }
    settings = load_settings(write(tmp_path, text), env=env)
    assert settings.service.instance == "C"
    assert settings.service.http_listen == "0.0.0.0:8081"
    assert settings.service.state_dir == "/var/lib/hotline"
    assert (settings.ami.host, settings.ami.username) == ("pbx2", "b")
    assert settings.database_url.reveal() == "postgresql://env/db"


def test_environment_overrides_secrets_and_addresses(tmp_path: Path) -> None:
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text("from-file\n", encoding="utf-8")
    env = {
        "HOTLINE_AMI_URL": "ami://hl@pbx.internal:5039",
        "HOTLINE_AMI_SECRET_FILE": str(secret_file),
        "HOTLINE_API_TOKEN": "tok-123",
        "HOTLINE_DATABASE_URL": "postgresql://u:p@db/hotline",
        "HOTLINE_HTTP_LISTEN": "0.0.0.0:9090",
    }
    settings = load_settings(write(tmp_path, MINIMAL), env=env)
    assert (settings.ami.host, settings.ami.port, settings.ami.username) == (
        "pbx.internal",
        5039,
        "hl",
    )
    assert settings.ami.secret.reveal() == "from-file"
    assert settings.service.api_token.reveal() == "tok-123"
    assert settings.service.http_listen == "0.0.0.0:9090"
    text = repr(settings)
    assert "from-file" not in text
    assert "tok-123" not in text
    assert "u:p@db" not in text


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (MINIMAL + "\n[routing]\nring_cadance = 5\n", "routing.ring_cadance", "unknown key"),
        (
            MINIMAL.replace('name = "support"', 'name = "support"\nstrategy = "random"'),
            "queues[0].strategy",
            "must be one of",
        ),
        (
            MINIMAL.replace('queues = ["support"]', 'queues = ["sales"]'),
            "agents[0].queues",
            "'sales' is not a configured queue",
        ),
        (
            MINIMAL + '\n[[agents]]\nid = "1002"\ndevice = "PJSIP/1001"\n',
            "agents[1].device",
            "already the device of agent '1001'",
        ),
        (
            MINIMAL.replace('device = "PJSIP/1001"', 'device = "1001"'),
            "agents[0].device",
            "is not a device",
        ),
        (
            MINIMAL.replace('name = "support"', 'name = "support"\nring_timeout = -3'),
            "queues[0].ring_timeout",
            "must be between",
        ),
        (
            MINIMAL.replace(
                'name = "support"', 'name = "support"\noverflow_queue = "support"\nmax_wait = 5'
            ),
            "queues[0].overflow_queue",
            "loops back",
        ),
        (
            MINIMAL.replace(
                'name = "support"', 'name = "support"\noverflow_target = "vm"\nmax_wait = 5'
            ),
            "queues[0].overflow_target",
            "context,exten,priority",
        ),
        (
            MINIMAL.replace('name = "support"', 'name = "support"\noverflow_target = "vm,s,1"'),
            "queues[0].max_wait",
            "required when an overflow",
        ),
        (
            "[service]\ntime_zone = 'Mars/Olympus'\n" + MINIMAL,
            "service.time_zone",
            "unknown time zone",
        ),
        ("", "queues", "at least one"),
        (
            MINIMAL.replace('id = "1001"', 'id = "1001"\nskills = { repair = 11 }'),
            "agents[0].skills.repair",
            "level from 1 to 10",
        ),
        (MINIMAL + "\n[ami]\nurl = 'http://pbx'\n", "ami.url", "ami://"),
    ],
)
def test_invalid_configuration_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.source == str(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(path) in str(caught.value)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[queues\nname="), env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_serve_refuses_to_start_half_configured(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('queues = ["support"]', 'queues = ["sales"]'))
    result = run_hotline("serve", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: agents[0].queues: 'sales' is not a configured queue" in result.stderr
    assert "Traceback" not in result.stderr
