"""Settings: one TOML file, validated at start, with environment overrides for secrets.

The file is parsed with the standard library's ``tomllib`` and checked key by key;
any problem raises :class:`ConfigError` naming the file, the key and the problem,
and the service does not start half-configured. Unknown keys are errors too (a
typo must not silently fall back to a default).

Environment overrides (applied after the file, before validation):

========================== =====================================================
``HOTLINE_AMI_URL``        ``[ami] url``
``HOTLINE_AMI_SECRET``     ``[ami] secret`` (``HOTLINE_AMI_SECRET_FILE``: read it from a file)
``HOTLINE_API_TOKEN``      ``[service] api_token`` (``HOTLINE_API_TOKEN_FILE`` likewise)
``HOTLINE_HTTP_LISTEN``    ``[service] http_listen``
``HOTLINE_INSTANCE``       ``[service] instance``
``HOTLINE_PBX_ID``         ``[service] pbx_id``
``HOTLINE_STATE_DIR``      ``[service] state_dir``
``HOTLINE_DATABASE_URL``   ``[database] url``
``HOTLINE_REDIS_URL``      ``[redis] url``
``HOTLINE_SESSION_KEY``    ``[web] session_key`` (``HOTLINE_SESSION_KEY_FILE`` likewise)
========================== =====================================================

Secrets are held as :class:`hotline.secret.Secret` and never appear in ``repr``.
The queue, agent and routing settings are domain values
(:mod:`hotline.domain.settings`); this module only parses into them and
re-exports them under their old names.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hotline.agi.server import AgiConfig
from hotline.ami.client import AmiSettings
from hotline.domain.settings import STRATEGIES, AgentConfig, QueueConfig, RoutingConfig
from hotline.secret import Secret

__all__ = [
    "ATTACH_RULES",
    "STRATEGIES",
    "AgentConfig",
    "ConfigError",
    "DatabaseConfig",
    "PanelsConfig",
    "QueueConfig",
    "RoutingConfig",
    "ServiceConfig",
    "Settings",
    "SlaConfig",
    "TicketsConfig",
    "WebConfig",
    "load_settings",
    "load_settings_with_database",
    "parse_settings",
]

ATTACH_RULES: Final = ("open", "recent", "never")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DEVICE: Final = re.compile(r"^[A-Za-z0-9_]+/[^\s,;|]+$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        """Build the message ``source: key: problem``."""
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SlaConfig:
    """How the service level is measured and what it is held to.

    A call counts as answered within the service level when it waited at most
    ``service_level_threshold`` seconds (default: ``sla_rings`` x ``ring_cadence``
    of ``[routing]``); a caller who hung up after at most
    ``short_abandon_threshold`` seconds is a short abandon and is left out of the
    service level. ``service_level_target`` (a fraction) and ``longest_wait_limit``
    (seconds) are what the alerts compare against; the service exports all four.
    """

    service_level_threshold: float = 15.0
    short_abandon_threshold: float = 5.0
    service_level_target: float = 0.8
    longest_wait_limit: float = 60.0


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Process-level settings: identity, HTTP listener, API token, state directory, time zone.

    ``pbx_down_grace``: seconds without a PBX connection that ``/ready`` tolerates.
    ``pbx_id``: instances with the same one form an active/standby pair (a lease in
    the database, :mod:`hotline.store.lease`); empty: no lease, always active.
    ``lease_ttl``: seconds the lease lasts without a renewal (the takeover bound).
    """

    instance: str = "A"
    http_listen: str = "127.0.0.1:8080"
    api_token: Secret = field(default_factory=lambda: Secret(""))
    state_dir: str = "var"
    time_zone: str = "UTC"
    pbx_down_grace: float = 30.0
    pbx_id: str = ""
    lease_ttl: float = 3.0

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """PostgreSQL beyond its URL: migrations on start, pool size, and the outbox.

    The outbox keeps up to ``outbox_max_memory`` records in memory and spills the
    rest (and everything while PostgreSQL is unreachable) to append-only files in
    ``outbox_dir``; it writes ``outbox_batch`` records per transaction. While that
    disk refuses writes (full), up to ``outbox_max_held`` more records wait in memory;
    past that they are dropped and counted.
    ``reconcile_interval`` is how often the in-memory view of open tickets is
    refreshed from the database. ``migrations_dir`` defaults to the package's
    ``hotline/migrations/``.
    """

    migrate_on_start: bool = False
    migrations_dir: str | None = None
    pool_size: int = 10
    outbox_dir: str = "var/outbox"
    outbox_max_memory: int = 10_000
    outbox_batch: int = 500
    outbox_max_held: int = 100_000
    reconcile_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class TicketsConfig:
    """How calls land on tickets, and where recordings are.

    ``attach``: ``"open"`` puts a call on the caller's open ticket if there is one;
    ``"recent"`` only when that ticket had a call in the last ``attach_days`` days;
    ``"never"`` opens a ticket for every call. ``monitor_dir`` is where
    ``MixMonitor`` writes ``<ticket>-<uniqueid>.wav``. A complaint must be replied
    to within ``complaint_reply_hours`` of being opened (its ``due_at``).

    Callbacks: the engine looks for due ones every ``callback_poll_interval``
    seconds; one is given up after ``callback_max_attempts`` attempts; after an
    unanswered attempt *n* the next is ``callback_retry_delays[n - 1]`` seconds
    later (the last delay repeats), after a busy line ``callback_busy_delay``.
    """

    attach: str = "open"
    attach_days: float = 7.0
    monitor_dir: str = "/var/spool/asterisk/monitor"
    complaint_reply_hours: float = 24.0
    callback_poll_interval: float = 5.0
    callback_max_attempts: int = 3
    callback_retry_delays: tuple[float, ...] = (900.0, 3600.0, 14_400.0)
    callback_busy_delay: float = 300.0


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The JSON API's sessions and login protection.

    Sessions end after ``session_idle_minutes`` without a request, and in any case
    ``session_max_hours`` after the login. ``cookie_secure`` marks the session
    cookie ``Secure`` (sent over HTTPS only); turn it off only for plain-HTTP
    development. ``login_max_failures`` failed logins for one (user name, client
    address) pair, or ``login_address_max_failures`` from one client address,
    within ``login_window`` seconds block further attempts (429) until the window
    ends. ``session_key`` (a secret of at least 16 characters, shared by every
    instance) signs session ids, so a forged cookie is refused without a Redis
    lookup; unset, ids are unsigned and only their shape is checked.
    """

    cookie_secure: bool = True
    session_idle_minutes: float = 480.0
    session_max_hours: float = 24.0
    login_max_failures: int = 5
    login_window: float = 300.0
    login_address_max_failures: int = 50
    session_key: Secret = field(default_factory=lambda: Secret(""))


QUALITY_CRITERIA: Final = ("greeting", "courtesy", "accuracy", "resolution")
"""The quality review form's default criteria."""


@dataclass(frozen=True, slots=True)
class PanelsConfig:
    """The panels' configurable parts (``[panels]``).

    ``supervisor_queue``: the queue the agent panel's "transfer" offers first (the
    supervisors' queue; empty: none). ``transfer_queues``: the queues a caller may be
    transferred to (empty: every configured queue). ``quality_criteria``: the quality
    review form, each criterion scored 0 to ``quality_max``, plus free comments.
    ``long_call``: seconds after which the wallboard marks a call as long.
    """

    supervisor_queue: str = ""
    transfer_queues: tuple[str, ...] = ()
    quality_criteria: tuple[str, ...] = QUALITY_CRITERIA
    quality_max: int = 5
    long_call: float = 600.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs, validated."""

    source: str
    service: ServiceConfig
    ami: AmiSettings
    routing: RoutingConfig
    queues: Mapping[str, QueueConfig]
    agents: Mapping[str, AgentConfig]
    database_url: Secret = field(default_factory=lambda: Secret(""))
    redis_url: Secret = field(default_factory=lambda: Secret(""))
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    tickets: TicketsConfig = field(default_factory=TicketsConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    web: WebConfig = field(default_factory=WebConfig)
    redis_prefix: str = "hotline:"
    agi: AgiConfig = field(default_factory=AgiConfig)
    panels: PanelsConfig = field(default_factory=PanelsConfig)


class _Reader:
    """Typed access to one TOML table, collecting the key path for error messages."""

    def __init__(self, source: str, path: str, table: Mapping[str, Any]) -> None:
        self.source = source
        self.path = path
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.table.get(name)

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required or default is None:
                raise self.error(name, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def optional_string(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def number(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(name, f"must be {bound}, got {value}")
        return float(value)

    def numbers(
        self, name: str, default: tuple[float, ...], *, maximum: float
    ) -> tuple[float, ...]:
        value = self.raw(name)
        if value is None:
            return default
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not all(0 <= v <= maximum for v in value)
        ):
            raise self.error(name, f"must be a non-empty list of numbers from 0 to {maximum}")
        return tuple(float(v) for v in value)

    def optional_number(self, name: str, *, minimum: float) -> float | None:
        if self.raw(name) is None:
            return None
        return self.number(name, 0.0, minimum=minimum)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.error(name, f"must be >= {minimum}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be a list of strings, got {value!r}")
        for item in value:
            if not _NAME.match(item):
                raise self.error(name, f"{item!r} is not a valid name (letters, digits, _ . -)")
        if len(set(value)) != len(value):
            raise self.error(name, "has duplicates")
        return tuple(value)

    def sub(self, name: str) -> _Reader:
        value = self.raw(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(name, "must be a table")
        return _Reader(self.source, self.key(name), value)

    def tables(self, name: str) -> list[_Reader]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"must be an array of tables ([[{name}]])")
        return [_Reader(self.source, f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _override(env: Mapping[str, str], name: str, value: str) -> str:
    """The environment's ``name`` if set and not empty, else the file's ``value``."""
    return env.get(name) or value


def _env_secret(env: Mapping[str, str], name: str) -> Secret | None:
    file = env.get(f"{name}_FILE")
    if file:
        return Secret.from_file(file)
    value = env.get(name)
    return Secret(value) if value is not None else None


def _parse_queue(reader: _Reader) -> QueueConfig:
    name = reader.string("name", required=True)
    if not _NAME.match(name):
        raise reader.error("name", f"{name!r} is not a valid queue name")
    strategy = reader.string("strategy", "longest_idle")
    if strategy not in STRATEGIES:
        raise reader.error("strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    target = reader.optional_string("overflow_target")
    overflow_target: tuple[str, str, str] | None = None
    if target is not None:
        parts = [part.strip() for part in target.split(",")]
        if len(parts) != 3 or not all(parts):
            raise reader.error(
                "overflow_target", f"must be 'context,exten,priority', got {target!r}"
            )
        overflow_target = (parts[0], parts[1], parts[2])
    queue = QueueConfig(
        name=name,
        skills=reader.names("skills"),
        strategy=strategy,
        ring_timeout=reader.number("ring_timeout", 15.0, minimum=1.0, maximum=600.0),
        wrap_up=reader.number("wrap_up", 10.0, maximum=3600.0),
        max_wait=reader.optional_number("max_wait", minimum=1.0),
        overflow_queue=reader.optional_string("overflow_queue"),
        overflow_target=overflow_target,
        priority_weight=reader.number("priority_weight", 0.0, minimum=-1000.0, maximum=1000.0),
        sticky=reader.boolean("sticky", True),
    )
    if queue.overflow_queue and queue.overflow_target:
        raise reader.error("overflow_queue", "set overflow_queue or overflow_target, not both")
    if (queue.overflow_queue or queue.overflow_target) and queue.max_wait is None:
        raise reader.error("max_wait", "is required when an overflow is configured")
    reader.finish()
    return queue


def _parse_agent(reader: _Reader) -> AgentConfig:
    agent_id = reader.string("id", required=True)
    if not _NAME.match(agent_id):
        raise reader.error("id", f"{agent_id!r} is not a valid agent id")
    device = reader.string("device", required=True)
    if not _DEVICE.match(device):
        raise reader.error(
            "device", f"{device!r} is not a device like PJSIP/1001 or Local/2001@agents"
        )
    raw_skills = reader.raw("skills") or {}
    if not isinstance(raw_skills, dict):
        raise reader.error("skills", "must be a table of skill = level (1-10)")
    skills: dict[str, int] = {}
    for skill, level in raw_skills.items():
        if not _NAME.match(skill):
            raise reader.error(f"skills.{skill}", "is not a valid skill name")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
            raise reader.error(f"skills.{skill}", f"must be a level from 1 to 10, got {level!r}")
        skills[skill] = level
    agent = AgentConfig(
        id=agent_id,
        name=reader.string("name", agent_id),
        device=device,
        skills=skills,
        queues=reader.names("queues"),
    )
    reader.finish()
    return agent


def _check_references(
    source: str, queues: dict[str, QueueConfig], agents: list[AgentConfig], routing: RoutingConfig
) -> None:
    if routing.default_queue not in queues:
        raise ConfigError(
            source, "routing.default_queue", f"{routing.default_queue!r} is not a configured queue"
        )
    for index, queue in enumerate(queues.values()):
        if queue.overflow_queue is not None:
            if queue.overflow_queue not in queues:
                raise ConfigError(
                    source,
                    f"queues[{index}].overflow_queue",
                    f"{queue.overflow_queue!r} is not a configured queue",
                )
            seen = {queue.name}
            current: str | None = queue.overflow_queue
            while current is not None:
                if current in seen:
                    raise ConfigError(
                        source,
                        f"queues[{index}].overflow_queue",
                        f"overflow chain from {queue.name!r} loops back to {current!r}",
                    )
                seen.add(current)
                current = queues[current].overflow_queue
    devices: dict[str, str] = {}
    for index, agent in enumerate(agents):
        if agent.device in devices:
            raise ConfigError(
                source,
                f"agents[{index}].device",
                f"{agent.device!r} is already the device of agent {devices[agent.device]!r}",
            )
        devices[agent.device] = agent.id
        for queue_name in agent.queues:
            if queue_name not in queues:
                raise ConfigError(
                    source, f"agents[{index}].queues", f"{queue_name!r} is not a configured queue"
                )


def parse_settings(
    data: Mapping[str, Any], *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Settings:
    """Validate parsed TOML ``data`` (plus environment overrides) into :class:`Settings`."""
    env = os.environ if env is None else env
    root = _Reader(source, "", data)
    service = _parse_service(root.sub("service"), env, source)
    ami = _parse_ami(root.sub("ami"), env)
    routing = _parse_routing(root.sub("routing"))
    sla_reader = root.sub("sla")
    sla = _parse_sla(sla_reader, routing)
    sla_reader.finish()
    queues = _parse_queues(root, source)
    agents = _parse_agents(root)
    _check_references(source, queues, agents, routing)
    database_url, database = _parse_database_section(root.sub("database"), env, service, source)
    tickets_reader = root.sub("tickets")
    tickets = _parse_tickets(tickets_reader)
    tickets_reader.finish()
    redis_reader = root.sub("redis")
    file_redis_url = redis_reader.optional_string("url")
    redis_url = env.get("HOTLINE_REDIS_URL") or file_redis_url or ""
    redis_prefix = redis_reader.string("prefix", "hotline:")
    redis_reader.finish()
    web_reader = root.sub("web")
    web = _parse_web(web_reader, env)
    web_reader.finish()
    agi_reader = root.sub("agi")
    agi = _parse_agi(agi_reader)
    agi_reader.finish()
    panels_reader = root.sub("panels")
    panels = _parse_panels(panels_reader, queues)
    panels_reader.finish()
    root.finish()
    return Settings(
        source=source,
        service=service,
        ami=ami,
        routing=routing,
        queues=queues,
        agents={agent.id: agent for agent in agents},
        database_url=Secret(database_url),
        redis_url=Secret(redis_url),
        redis_prefix=redis_prefix,
        web=web,
        database=database,
        tickets=tickets,
        sla=sla,
        agi=agi,
        panels=panels,
    )


def _parse_panels(reader: _Reader, queues: Mapping[str, QueueConfig]) -> PanelsConfig:
    """``[panels]``: the transfer targets and the quality review form."""
    supervisor_queue = reader.string("supervisor_queue", "")
    if supervisor_queue and supervisor_queue not in queues:
        raise reader.error("supervisor_queue", f"{supervisor_queue!r} is not a configured queue")
    transfer_queues = reader.names("transfer_queues")
    for name in transfer_queues:
        if name not in queues:
            raise reader.error("transfer_queues", f"{name!r} is not a configured queue")
    criteria = reader.names("quality_criteria") or QUALITY_CRITERIA
    return PanelsConfig(
        supervisor_queue=supervisor_queue,
        transfer_queues=transfer_queues,
        quality_criteria=criteria,
        quality_max=reader.integer("quality_max", 5, minimum=1),
        long_call=reader.number("long_call", 600.0, minimum=1.0, maximum=86400.0),
    )


def _parse_service(reader: _Reader, env: Mapping[str, str], source: str) -> ServiceConfig:
    """``[service]``, with its environment overrides."""
    time_zone = reader.string("time_zone", "UTC")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise reader.error("time_zone", f"unknown time zone {time_zone!r}") from exc
    # The file's values are read (and checked) even when the environment overrides them.
    instance = _override(env, "HOTLINE_INSTANCE", reader.string("instance", "A"))
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", instance):
        raise reader.error("instance", f"must be 1-8 letters or digits, got {instance!r}")
    api_token = _env_secret(env, "HOTLINE_API_TOKEN") or Secret(
        reader.optional_string("api_token") or ""
    )
    service = ServiceConfig(
        instance=instance,
        http_listen=_override(
            env, "HOTLINE_HTTP_LISTEN", reader.string("http_listen", "127.0.0.1:8080")
        ),
        api_token=api_token,
        state_dir=_override(env, "HOTLINE_STATE_DIR", reader.string("state_dir", "var")),
        time_zone=time_zone,
        pbx_down_grace=reader.number("pbx_down_grace", 30.0, maximum=3600.0),
        pbx_id=_override(env, "HOTLINE_PBX_ID", reader.string("pbx_id", "")),
        lease_ttl=reader.number("lease_ttl", 3.0, minimum=0.5, maximum=60.0),
    )
    if service.pbx_id and not _NAME.fullmatch(service.pbx_id):
        raise reader.error(
            "pbx_id", f"must be a name (letters, digits, _.-), got {service.pbx_id!r}"
        )
    reader.raw("api_token")
    reader.finish()
    _check_listen(source, "service.http_listen", service.http_listen)
    return service


def _parse_ami(reader: _Reader, env: Mapping[str, str]) -> AmiSettings:
    """``[ami]``: the URL and secret (environment first) and the list limits."""
    url = _override(env, "HOTLINE_AMI_URL", reader.string("url", "ami://hotline@127.0.0.1:5038"))
    secret = _env_secret(env, "HOTLINE_AMI_SECRET")
    file_secret = reader.optional_string("secret")
    try:
        ami = AmiSettings.from_url(url)
    except ValueError as exc:
        raise reader.error("url", str(exc)) from exc
    if secret is None and file_secret is not None:
        secret = Secret(file_secret)
    if secret is not None:
        ami = _replace_secret(ami, secret)
    ami = replace(
        ami,
        max_list_items=reader.integer("max_list_items", ami.max_list_items, minimum=100),
        max_list_bytes=reader.integer("max_list_bytes", ami.max_list_bytes, minimum=65_536),
    )
    reader.finish()
    return ami


def _parse_routing(reader: _Reader) -> RoutingConfig:
    """``[routing]``: ring cadence, penalties, dialplan contexts, overflow limit."""
    routing = RoutingConfig(
        ring_cadence=reader.number("ring_cadence", 5.0, minimum=0.5, maximum=60.0),
        sla_rings=reader.integer("sla_rings", 3, minimum=1),
        max_consecutive_misses=reader.integer("max_consecutive_misses", 2, minimum=1),
        unavailable_cooldown=reader.number("unavailable_cooldown", 30.0, maximum=3600.0),
        busy_retry_after=reader.number("busy_retry_after", 2.0, maximum=3600.0),
        sticky_days=reader.number("sticky_days", 7.0, maximum=365.0),
        default_queue=reader.string("default_queue", "support"),
        inbound_context=reader.string("inbound_context", "hotline-inbound"),
        bridge_context=reader.string("bridge_context", "hotline-bridge"),
        outbound_context=reader.string("outbound_context", "hotline-outbound"),
        originate_grace=reader.number("originate_grace", 5.0, minimum=0.5, maximum=120.0),
        max_overflows=reader.integer("max_overflows", 3, minimum=0),
    )
    reader.finish()
    return routing


def _parse_queues(root: _Reader, source: str) -> dict[str, QueueConfig]:
    """Every ``[[queues]]`` table, by name (at least one, no name twice)."""
    queues: dict[str, QueueConfig] = {}
    for reader in root.tables("queues"):
        queue = _parse_queue(reader)
        if queue.name in queues:
            raise reader.error("name", f"queue {queue.name!r} is defined twice")
        queues[queue.name] = queue
    if not queues:
        raise ConfigError(source, "queues", "at least one [[queues]] table is required")
    return queues


def _parse_agents(root: _Reader) -> list[AgentConfig]:
    """Every ``[[agents]]`` table, in file order (no id twice)."""
    agents: list[AgentConfig] = []
    for reader in root.tables("agents"):
        agent = _parse_agent(reader)
        if any(existing.id == agent.id for existing in agents):
            raise reader.error("id", f"agent {agent.id!r} is defined twice")
        agents.append(agent)
    return agents


def _parse_database_section(
    reader: _Reader, env: Mapping[str, str], service: ServiceConfig, source: str
) -> tuple[str, DatabaseConfig]:
    """``[database]``: the URL (environment first) and the outbox settings."""
    # The file's value is read (and checked) even when the environment overrides it.
    file_database_url = reader.optional_string("url")
    database_url = env.get("HOTLINE_DATABASE_URL") or file_database_url or ""
    database = _parse_database(reader, service.state_dir, bool(database_url))
    if service.pbx_id and not database_url:
        raise ConfigError(
            source, "service.pbx_id", "needs [database] url (the lease is held there)"
        )
    reader.finish()
    return database_url, database


def _parse_agi(reader: _Reader) -> AgiConfig:
    """``[agi]``: the FastAGI server of the IVR (off unless ``enabled``)."""
    listen = reader.string("listen", "127.0.0.1:4573")
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise reader.error("listen", f"must be HOST:PORT, got {listen!r}")
    return AgiConfig(
        enabled=reader.boolean("enabled", False),
        listen=listen,
        flows=reader.string("flows", "ivr_flows"),
        command_timeout=reader.number("command_timeout", 10.0, minimum=0.1, maximum=600.0),
        max_sessions=reader.integer("max_sessions", 200, minimum=1),
    )


def _parse_database(reader: _Reader, state_dir: str, configured: bool) -> DatabaseConfig:
    outbox_dir = reader.optional_string("outbox_dir")
    if outbox_dir is None:
        if state_dir == ":memory:" and configured:
            raise reader.error("outbox_dir", "is required when service.state_dir is ':memory:'")
        outbox_dir = f"{state_dir}/outbox"
    return DatabaseConfig(
        migrate_on_start=reader.boolean("migrate_on_start", False),
        migrations_dir=reader.optional_string("migrations_dir"),
        pool_size=reader.integer("pool_size", 10, minimum=2),
        outbox_dir=outbox_dir,
        outbox_max_memory=reader.integer("outbox_max_memory", 10_000, minimum=1),
        outbox_batch=reader.integer("outbox_batch", 500, minimum=1),
        outbox_max_held=reader.integer("outbox_max_held", 100_000, minimum=0),
        reconcile_interval=reader.number("reconcile_interval", 30.0, minimum=0.1, maximum=3600.0),
    )


_MIN_SESSION_KEY: Final = 16


def _parse_web(reader: _Reader, env: Mapping[str, str]) -> WebConfig:
    file_key = reader.optional_string("session_key") or ""
    session_key = _env_secret(env, "HOTLINE_SESSION_KEY") or Secret(file_key)
    if session_key and len(session_key.reveal()) < _MIN_SESSION_KEY:
        raise reader.error("session_key", f"must be at least {_MIN_SESSION_KEY} characters")
    return WebConfig(
        session_key=session_key,
        cookie_secure=reader.boolean("cookie_secure", True),
        session_idle_minutes=reader.number(
            "session_idle_minutes", 480.0, minimum=1.0, maximum=7 * 24 * 60.0
        ),
        session_max_hours=reader.number("session_max_hours", 24.0, minimum=0.1, maximum=24 * 30.0),
        login_max_failures=reader.integer("login_max_failures", 5, minimum=1),
        login_window=reader.number("login_window", 300.0, minimum=1.0, maximum=86_400.0),
        login_address_max_failures=reader.integer("login_address_max_failures", 50, minimum=1),
    )


def _parse_tickets(reader: _Reader) -> TicketsConfig:
    attach = reader.string("attach", "open")
    if attach not in ATTACH_RULES:
        raise reader.error("attach", f"must be one of {', '.join(ATTACH_RULES)}, got {attach!r}")
    return TicketsConfig(
        attach=attach,
        attach_days=reader.number("attach_days", 7.0, minimum=0.0, maximum=3650.0),
        monitor_dir=reader.string("monitor_dir", "/var/spool/asterisk/monitor"),
        complaint_reply_hours=reader.number(
            "complaint_reply_hours", 24.0, minimum=0.0, maximum=24.0 * 365
        ),
        callback_poll_interval=reader.number(
            "callback_poll_interval", 5.0, minimum=0.01, maximum=3600.0
        ),
        callback_max_attempts=reader.integer("callback_max_attempts", 3, minimum=1),
        callback_retry_delays=reader.numbers(
            "callback_retry_delays", (900.0, 3600.0, 14_400.0), maximum=7 * 86400.0
        ),
        callback_busy_delay=reader.number("callback_busy_delay", 300.0, maximum=7 * 86400.0),
    )


def _parse_sla(reader: _Reader, routing: RoutingConfig) -> SlaConfig:
    return SlaConfig(
        service_level_threshold=reader.number(
            "service_level_threshold",
            routing.sla_rings * routing.ring_cadence,
            minimum=0.1,
            maximum=3600.0,
        ),
        short_abandon_threshold=reader.number(
            "short_abandon_threshold", 5.0, minimum=0.0, maximum=600.0
        ),
        service_level_target=reader.number("service_level_target", 0.8, minimum=0.0, maximum=1.0),
        longest_wait_limit=reader.number("longest_wait_limit", 60.0, minimum=1.0, maximum=86400.0),
    )


def _replace_secret(ami: AmiSettings, secret: Secret) -> AmiSettings:
    from dataclasses import replace

    return replace(ami, secret=secret)


def _check_listen(source: str, key: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(source, key, f"must be HOST:PORT, got {value!r}")


def load_settings_with_database(path: str | Path) -> Settings:
    """:func:`load_settings` for the commands that need PostgreSQL (``migrate``, ``users``,
    ``report``): a configuration without a database URL is a :class:`ConfigError`."""
    settings = load_settings(path)
    if not settings.database_url:
        raise ConfigError(
            settings.source,
            "database.url",
            "no database configured (set [database] url or HOTLINE_DATABASE_URL)",
        )
    return settings


def load_settings(path: str | Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a TOML configuration file."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(str(file), "-", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), "-", f"not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), "-", f"cannot read: {exc}") from exc
    return parse_settings(data, source=str(file), env=env)
