"""IVR flows: the model, the YAML loader (``yaml.safe_load``) and the validator.

A flow directory (``ivr_flows/``) holds ``prompts.yaml`` (every prompt with its
text per language) and one ``<name>.yaml`` per flow; Asterisk picks the flow by
the script of its AGI URL (``agi://backend:4573/main`` runs ``main``). A flow
file::

    start: welcome              # the first node
    language: zh                # the prompt language until a set node changes it
    calendar: {time_zone: Asia/Shanghai, hours: {mon: "09:00-18:00", ...},
               holidays: [2026-10-01], workdays: [2026-10-10]}
    nodes:
      welcome: {type: play, prompt: welcome, next: menu}
      ...

Node types and their keys (``next``, ``then``, ``else``, ``fail``, ``target`` and
the values of ``options`` name other nodes):

========== ================================================================
play       ``prompt``, ``next``
menu       ``prompt``, ``options`` (digit: node), ``timeout`` (s, 5),
           ``retries`` (2), ``invalid`` (prompt), ``fail`` (node, else end)
collect    ``prompt``, ``variable``, ``pattern`` (regex), ``max_digits`` (10),
           ``timeout``, ``retries``, ``invalid``, ``next``, ``fail``
condition  ``check`` (business_hours, open_ticket, customer_tag, language),
           ``tag`` / ``language`` for the last two, ``then``, ``else``
set        any of ``queue``, ``priority``, ``skills`` (list), ``language``; ``next``
goto       ``target``
callback   ``prompt``: schedules a callback on the caller's ticket, says
           ``prompt``, hangs up
voicemail  ``prompt`` (optional): sends the caller to ``hotline-voicemail``
transfer   ``context``, ``exten`` (s), ``priority`` (1), ``prompt`` (optional)
sticky     ``prompt``, ``digit`` (1), ``timeout``, ``next``: "press 1 for the agent
           handling your case"; on the digit the ticket's agent is asked for first
survey     ``prompt``, ``thanks`` (prompt), ``timeout``, ``retries``, ``invalid``:
           a 1-5 score stored on the call's ticket and call row
hangup     ``prompt`` (optional)
end        (none): the flow ends and the caller waits for an agent
========== ================================================================

:func:`load_flows` returns a :class:`FlowSet` or raises :class:`FlowError`,
whose ``problems`` each name the file, the node and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from hotline.ivr.calendar import WEEKDAYS, BusinessCalendar, parse_hours

__all__ = [
    "CHECKS",
    "NODE_TYPES",
    "Flow",
    "FlowError",
    "FlowSet",
    "Node",
    "load_flows",
    "load_prompts",
]

_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DIGITS: Final = frozenset("0123456789*#")
CHECKS: Final = ("business_hours", "open_ticket", "customer_tag", "language")
_LINKS: Final = ("next", "then", "else", "fail", "target")
_COMMON: Final = frozenset({"type", "note"})
NODE_TYPES: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    # type: (required keys, optional keys)
    "play": (frozenset({"prompt", "next"}), frozenset()),
    "menu": (
        frozenset({"prompt", "options"}),
        frozenset({"timeout", "retries", "invalid", "fail"}),
    ),
    "collect": (
        frozenset({"prompt", "variable", "next"}),
        frozenset({"pattern", "max_digits", "timeout", "retries", "invalid", "fail"}),
    ),
    "condition": (frozenset({"check", "then", "else"}), frozenset({"tag", "language"})),
    "set": (frozenset({"next"}), frozenset({"queue", "priority", "skills", "language"})),
    "goto": (frozenset({"target"}), frozenset()),
    "callback": (frozenset({"prompt"}), frozenset()),
    "voicemail": (frozenset(), frozenset({"prompt"})),
    "transfer": (frozenset({"context"}), frozenset({"exten", "priority", "prompt"})),
    "sticky": (frozenset({"prompt", "next"}), frozenset({"digit", "timeout"})),
    "survey": (frozenset({"prompt", "thanks"}), frozenset({"timeout", "retries", "invalid"})),
    "hangup": (frozenset(), frozenset({"prompt"})),
    "end": (frozenset(), frozenset()),
}
_PROMPT_KEYS: Final = ("prompt", "invalid", "thanks")


class FlowError(Exception):
    """One or more flow files are invalid; ``problems`` lists ``file: node X: problem``."""

    def __init__(self, problems: list[str]) -> None:
        """Join the problems into the message."""
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Node:
    """One validated node: its id, type and keys (as in the file)."""

    id: str
    type: str
    spec: Mapping[str, Any]

    def text(self, key: str, default: str = "") -> str:
        """A string key."""
        value = self.spec.get(key, default)
        return str(value)

    def number(self, key: str, default: float) -> float:
        """A number key."""
        return float(self.spec.get(key, default))

    @property
    def options(self) -> Mapping[str, str]:
        """A menu's digit -> node map."""
        options: Mapping[str, str] = self.spec.get("options", {})
        return options


@dataclass(frozen=True, slots=True)
class Flow:
    """A validated flow."""

    name: str
    source: str
    start: str
    nodes: Mapping[str, Node]
    language: str = "zh"
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)


@dataclass(frozen=True, slots=True)
class FlowSet:
    """Every flow of a directory and the prompt list, as loaded together."""

    directory: str
    flows: Mapping[str, Flow]
    prompts: Mapping[str, Mapping[str, str]]


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(f"{path}: invalid YAML: {' '.join(str(exc).split())}")
        return None


def load_prompts(path: Path, problems: list[str]) -> dict[str, dict[str, str]]:
    """``prompts.yaml``: ``prompts: {id: {zh: text, en: text}}``; problems are appended."""
    data = _read_yaml(path, problems)
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        problems.append(f"{path}: must be a mapping with a 'prompts' mapping")
        return {}
    prompts: dict[str, dict[str, str]] = {}
    for name, texts in data["prompts"].items():
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{path}: prompt {name!r}: not a valid prompt id")
            continue
        if (
            not isinstance(texts, dict)
            or not texts
            or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in texts.items()
            )
        ):
            problems.append(f"{path}: prompt {name}: must map languages to non-empty texts")
            continue
        prompts[name] = dict(texts)
    return prompts


def _calendar(source: str, raw: Any, problems: list[str]) -> BusinessCalendar:
    where = f"{source}: calendar"
    if raw is None:
        return BusinessCalendar(hours={day: (time(9), time(18)) for day in WEEKDAYS[:5]})
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return BusinessCalendar()
    unknown = set(raw) - {"time_zone", "hours", "holidays", "workdays", "workday_hours"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    zone = str(raw.get("time_zone", "Asia/Shanghai"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}: unknown time zone {zone!r}")
        zone = "UTC"
    hours: dict[str, tuple[time, time]] = {}
    raw_hours = raw.get("hours", {})
    if not isinstance(raw_hours, dict):
        problems.append(f"{where}: hours must map weekdays (mon..sun) to 09:00-18:00")
        raw_hours = {}
    for day, text in raw_hours.items():
        if day not in WEEKDAYS:
            problems.append(f"{where}: hours: {day!r} is not a weekday (mon..sun)")
            continue
        try:
            hours[day] = parse_hours(str(text))
        except ValueError as exc:
            problems.append(f"{where}: hours: {day}: {exc}")
    workday_hours = (time(9), time(18))
    if "workday_hours" in raw:
        try:
            workday_hours = parse_hours(str(raw["workday_hours"]))
        except ValueError as exc:
            problems.append(f"{where}: workday_hours: {exc}")

    def dates(key: str) -> frozenset[date]:
        values = raw.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, date) for v in values):
            problems.append(f"{where}: {key} must be a list of dates (YYYY-MM-DD)")
            return frozenset()
        return frozenset(values)

    return BusinessCalendar(zone, hours, dates("holidays"), dates("workdays"), workday_hours)


def _check_node(
    source: str, node: Node, prompts: Mapping[str, object], problems: list[str]
) -> None:
    where = f"{source}: node {node.id}"
    required, optional = NODE_TYPES[node.type]
    keys = set(node.spec) - _COMMON
    for key in sorted(required - keys):
        problems.append(f"{where}: {node.type} needs '{key}'")
    for key in sorted(keys - required - optional):
        problems.append(f"{where}: unknown key '{key}' for a {node.type} node")
    for key in _PROMPT_KEYS:
        if key in node.spec and str(node.spec[key]) not in prompts:
            problems.append(f"{where}: prompt '{node.spec[key]}' is not in the prompt list")
    _check_numbers(where, node, problems)
    check = _TYPE_CHECKS.get(node.type)
    if check is not None:
        check(where, node, problems)


def _check_numbers(where: str, node: Node, problems: list[str]) -> None:
    timeout = node.spec.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or not 0 < timeout <= 60):
        problems.append(f"{where}: timeout must be a number of seconds in (0, 60]")
    for key in ("retries", "max_digits", "priority"):
        value = node.spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"{where}: {key} must be an integer")


def _check_menu(where: str, node: Node, problems: list[str]) -> None:
    options = node.spec.get("options")
    if not isinstance(options, dict) or not options:
        problems.append(f"{where}: a menu needs at least one option")
        return
    for digit in options:
        if str(digit) not in _DIGITS:
            problems.append(f"{where}: option {digit!r} is not one DTMF digit")


def _check_collect(where: str, node: Node, problems: list[str]) -> None:
    if "pattern" not in node.spec:
        return
    try:
        re.compile(str(node.spec["pattern"]))
    except re.error as exc:
        problems.append(f"{where}: pattern is not a regular expression: {exc}")


def _check_condition(where: str, node: Node, problems: list[str]) -> None:
    check = node.spec.get("check")
    if check not in CHECKS:
        problems.append(f"{where}: check must be one of {', '.join(CHECKS)}, got {check!r}")
    for needs in ("tag", "language"):
        if check == _NEEDS[needs] and needs not in node.spec:
            problems.append(f"{where}: check {check} needs '{needs}'")


def _check_set(where: str, node: Node, problems: list[str]) -> None:
    skills = node.spec.get("skills")
    if skills is not None and (
        not isinstance(skills, list) or not all(isinstance(s, str) for s in skills)
    ):
        problems.append(f"{where}: skills must be a list of names")
    if not set(node.spec) & {"queue", "priority", "skills", "language"}:
        problems.append(
            f"{where}: a set node sets at least one of queue, priority, skills, language"
        )


def _check_sticky(where: str, node: Node, problems: list[str]) -> None:
    if str(node.spec.get("digit", "1")) not in _DIGITS:
        problems.append(f"{where}: digit must be one DTMF digit")


_NEEDS: Final = {"tag": "customer_tag", "language": "language"}
"""A condition's extra key and the check that needs it."""
_TYPE_CHECKS: Final[Mapping[str, Callable[[str, Node, list[str]], None]]] = {
    "menu": _check_menu,
    "collect": _check_collect,
    "condition": _check_condition,
    "set": _check_set,
    "sticky": _check_sticky,
}
"""The checks of one node type beyond its keys, prompts and numbers."""


def _links(node: Node) -> list[str]:
    links = [str(node.spec[key]) for key in _LINKS if key in node.spec]
    if node.type == "menu" and isinstance(node.spec.get("options"), dict):
        links += [str(target) for target in node.spec["options"].values()]
    return links


def _load_flow(path: Path, prompts: Mapping[str, object], problems: list[str]) -> Flow | None:
    source = str(path)
    before = len(problems)
    data = _read_yaml(path, problems)
    if len(problems) > before:
        return None
    if not isinstance(data, dict):
        problems.append(f"{source}: a flow must be a mapping with 'start' and 'nodes'")
        return None
    unknown = set(data) - {"start", "nodes", "language", "calendar", "description"}
    if unknown:
        problems.append(f"{source}: unknown top-level keys {sorted(unknown)}")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        problems.append(f"{source}: 'nodes' must be a non-empty mapping")
        return None
    nodes = _parse_nodes(source, raw_nodes, prompts, problems)
    start = data.get("start")
    if not isinstance(start, str) or start not in raw_nodes:
        problems.append(f"{source}: start {start!r} is not a node")
    _check_links(source, nodes, raw_nodes, problems)
    if isinstance(start, str) and start in nodes:
        _check_reachable(source, nodes, start, problems)
    language = str(data.get("language", "zh"))
    calendar = _calendar(source, data.get("calendar"), problems)
    if len(problems) > before or not isinstance(start, str):
        return None
    return Flow(path.stem, source, start, nodes, language, calendar)


def _parse_nodes(
    source: str, raw_nodes: Mapping[Any, Any], prompts: Mapping[str, object], problems: list[str]
) -> dict[str, Node]:
    """The nodes with a valid id, a mapping and a known type, each checked."""
    nodes: dict[str, Node] = {}
    for node_id, spec in raw_nodes.items():
        where = f"{source}: node {node_id}"
        if not isinstance(node_id, str) or not _NAME.match(node_id):
            problems.append(f"{where}: not a valid node id")
        elif not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping with a 'type'")
        elif spec.get("type") not in NODE_TYPES:
            problems.append(f"{where}: unknown node type {spec.get('type')!r}")
        else:
            node = Node(node_id, str(spec["type"]), dict(spec))
            _check_node(source, node, prompts, problems)
            nodes[node_id] = node
    return nodes


def _check_links(
    source: str, nodes: Mapping[str, Node], raw_nodes: Mapping[Any, Any], problems: list[str]
) -> None:
    for node in nodes.values():
        for target in _links(node):
            if target not in raw_nodes:
                problems.append(f"{source}: node {node.id}: goes to '{target}', which is no node")


def _check_reachable(
    source: str, nodes: Mapping[str, Node], start: str, problems: list[str]
) -> None:
    seen, todo = {start}, [start]
    while todo:
        current = nodes.get(todo.pop())
        for target in _links(current) if current else []:
            if target in nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    for node_id in nodes:
        if node_id not in seen:
            problems.append(f"{source}: node {node_id}: unreachable from start '{start}'")


def load_flows(directory: str | Path) -> FlowSet:
    """Load and validate every flow in ``directory``; raises :class:`FlowError`."""
    root = Path(directory)
    problems: list[str] = []
    if not root.is_dir():
        raise FlowError([f"{root}: not a directory"])
    prompts_path = root / "prompts.yaml"
    if not prompts_path.exists():
        raise FlowError([f"{prompts_path}: the prompt list is missing"])
    prompts = load_prompts(prompts_path, problems)
    flows: dict[str, Flow] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == "prompts.yaml":
            continue
        if not _NAME.match(path.stem):
            problems.append(f"{path}: the file name is not a valid flow name")
            continue
        flow = _load_flow(path, prompts, problems)
        if flow is not None:
            flows[flow.name] = flow
    if not flows and not problems:
        problems.append(f"{root}: no flow (*.yaml) found")
    if problems:
        raise FlowError(problems)
    return FlowSet(str(root), flows, prompts)
