"""Call scenarios for the simulated PBX: a TOML file, validated, and the arrivals it generates.

A scenario says who calls (arrivals), who answers (agents), how callback
customers and supervisors' phones behave, and how fast the clock runs. Every
delay is in *scenario seconds*; the sim runs them ``time_scale`` times faster
than the wall clock. Example (``hotline/sim/scenarios/demo.toml`` is a full one)::

    name = "demo"            # written to the ground truth
    seed = 7                 # same seed, same arrivals and the same agent behaviour
    noise = true             # CEL, VarSet and Newexten events, as on a busy PBX
    time_scale = 10.0        # default for ``hotline sim-pbx`` (--time-scale overrides)

    [arrivals]
    count = 200              # Poisson arrivals in total (and/or:)
    duration = 900           # seconds during which Poisson arrivals happen
    rate_per_minute = 12     # Poisson rate
    start_after = 2          # seconds before the first arrival
    queues = { support = 3, sales = 1 }        # weights
    priorities = { "0" = 9, "5" = 1 }          # weights, keys are integers
    skills = { billing = 0.2, vip = 0.05 }     # independent probability of each skill
    lang = { en = 4, zh = 1 }                  # weights; omit for no HotlineLang
    repeat_share = 0.1       # share of callers who called before (same number)
    number_prefix = "139"    # fresh numbers: prefix + random digits ...
    number_length = 11       # ... to this many digits (or: numbers = ["1390...", ...])
    patience = { dist = "exponential", mean = 90 }

    [[arrivals.ivr]]         # caller groups: with any, every caller runs the IVR first
    weight = 3               # how often a caller is in this group (weights)
    dtmf = ["1", "1", "2"]   # one entry per input command of the main flow: digits,
                             # "" (no input: the timeout runs out), "hangup"
    survey = 4               # the post-call survey score (or ["0", "4"]; omitted: no answer)

    [[arrivals.bursts]]      # extra callers on top of the Poisson stream
    at = 120                 # seconds after start_after
    count = 40
    over = 20                # spread uniformly over this many seconds

    [[agents]]
    device = "Local/{ext}@agents"    # or PJSIP/{ext}; a single device needs no extensions
    extensions = "2001-2020"         # a range, or a list of strings
    answer_delay = { dist = "lognormal", mean = 4, sigma = 0.5 }
    no_answer = 0.05                 # probability an offered call is never answered
    busy = 0.02                      # probability an offered call gets busy
    talk = { dist = "normal", mean = 180, sd = 60 }
    private_calls_per_hour = 0.5     # non-hotline calls: the device is INUSE, offers get busy
    private_call_duration = 120

    [customers]              # the customers that callbacks dial (Local/<number>@callers)
    answer_delay = { dist = "uniform", low = 2, high = 10 }
    no_answer = 0.2
    busy = 0.05
    patience = 60            # how long a customer stays on a line that is not bridged

    [supervisors]            # Local/<ext>@supervisors, used for ChanSpy
    listen = 20              # the supervisor hangs up after this long

**Distributions** are a plain number (fixed) or a table with ``dist``: ``fixed``
(``value``), ``uniform`` (``low``, ``high``), ``exponential`` (``mean``),
``lognormal`` (``mean`` of the distribution and ``sigma`` of the underlying
normal) or ``normal`` (``mean``, ``sd``; truncated at 0 by resampling).

**Arrivals**: Poisson arrivals start ``start_after`` seconds in and stop after
``count`` arrivals or ``duration`` seconds, whichever comes first (at least one
is required when ``rate_per_minute`` is set). Bursts add their own callers.
Without ``[arrivals]`` the sim makes no calls itself; clients can still
originate them (that is how the trace replays work).

Every error names the file, the key and the problem, e.g.
``load.toml: agents[1].talk: unknown distribution 'gauss' (expected ...)``.

API: :func:`load_scenario` (a path, or the name of a bundled scenario such as
``demo``), :meth:`Scenario.from_dict`, or build :class:`Scenario` and its parts
directly in code; :func:`generate_arrivals` yields the callers of a scenario.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "AgentBehaviour",
    "AgentGroup",
    "Arrival",
    "Arrivals",
    "Burst",
    "CustomerBehaviour",
    "Distribution",
    "Exponential",
    "Fixed",
    "IvrCallers",
    "LogNormal",
    "Normal",
    "Scenario",
    "ScenarioError",
    "SupervisorBehaviour",
    "Uniform",
    "bundled_scenarios",
    "generate_arrivals",
    "load_scenario",
    "parse_distribution",
]


_DTMF: Final = frozenset("0123456789*#")


class ScenarioError(ValueError):
    """A scenario is invalid; the message names the file, the key and the problem."""


# -- distributions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always ``value`` seconds."""

    value: float

    def sample(self, rng: random.Random) -> float:  # noqa: ARG002 (the distribution interface; a constant ignores it)
        """The value."""
        return float(self.value)


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform between ``low`` and ``high``."""

    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        """One draw."""
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential with the given ``mean``."""

    mean: float

    def sample(self, rng: random.Random) -> float:
        """One draw."""
        return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal with the given ``mean`` (of the distribution) and ``sigma`` (of its log)."""

    mean: float
    sigma: float

    def sample(self, rng: random.Random) -> float:
        """One draw."""
        if self.mean <= 0:
            return 0.0
        mu = math.log(self.mean) - self.sigma**2 / 2
        return rng.lognormvariate(mu, self.sigma)


@dataclass(frozen=True, slots=True)
class Normal:
    """Normal with ``mean`` and ``sd``, truncated at 0 (negative draws are redrawn)."""

    mean: float
    sd: float

    def sample(self, rng: random.Random) -> float:
        """One non-negative draw."""
        for _ in range(100):
            value = rng.gauss(self.mean, self.sd)
            if value >= 0:
                return value
        return 0.0


Distribution = Fixed | Uniform | Exponential | LogNormal | Normal

_DISTRIBUTIONS: Final[dict[str, tuple[type[Any], tuple[str, ...]]]] = {
    "fixed": (Fixed, ("value",)),
    "uniform": (Uniform, ("low", "high")),
    "exponential": (Exponential, ("mean",)),
    "lognormal": (LogNormal, ("mean", "sigma")),
    "normal": (Normal, ("mean", "sd")),
}


def parse_distribution(value: object, where: str) -> Distribution:
    """A number (fixed) or a ``{dist = ..., ...}`` table; ``where`` prefixes any error."""
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        if number < 0:
            raise ScenarioError(f"{where}: must not be negative, got {value}")
        return Fixed(number)
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected a number or a table with 'dist', got {value!r}")
    kind = value.get("dist")
    if kind not in _DISTRIBUTIONS:
        names = ", ".join(_DISTRIBUTIONS)
        raise ScenarioError(f"{where}: unknown distribution {kind!r} (expected {names})")
    cls, params = _DISTRIBUTIONS[kind]
    unknown = sorted(set(value) - {"dist", *params})
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} for a {kind} distribution")
    numbers = {}
    for param in params:
        if param not in value:
            raise ScenarioError(f"{where}: a {kind} distribution needs {param!r}")
        number = value[param]
        if not _is_number(number) or number < 0:
            raise ScenarioError(f"{where}.{param}: must be a non-negative number, got {number!r}")
        numbers[param] = float(number)
    if kind == "uniform" and numbers["low"] > numbers["high"]:
        raise ScenarioError(f"{where}: low ({numbers['low']}) is above high ({numbers['high']})")
    distribution: Distribution = cls(**numbers)
    return distribution


# -- the scenario ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentBehaviour:
    """How an agent's phone answers offered calls."""

    answer_delay: Distribution = Fixed(2.0)
    no_answer: float = 0.0
    busy: float = 0.0
    talk: Distribution = Fixed(30.0)
    private_calls_per_hour: float = 0.0
    private_call_duration: Distribution = Fixed(120.0)


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """Agents that behave alike: their device strings and their behaviour."""

    devices: tuple[str, ...]
    behaviour: AgentBehaviour = AgentBehaviour()


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` extra callers spread over ``over`` seconds from ``at``."""

    at: float
    count: int
    over: float = 0.0


@dataclass(frozen=True, slots=True)
class IvrCallers:
    """A group of callers who key the same choices into the IVR (``[[arrivals.ivr]]``)."""

    weight: float = 1.0
    dtmf: tuple[str, ...] = ()
    """One entry per input command of the ``main`` flow: digits, ``""`` (no input) or
    ``"hangup"`` (the caller hangs up during that command)."""
    survey: tuple[str, ...] = ()
    """The entries keyed into the post-call survey; empty: no answer."""


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Who calls, when, and how long they wait."""

    count: int | None = None
    duration: float | None = None
    rate_per_minute: float = 0.0
    start_after: float = 0.0
    bursts: tuple[Burst, ...] = ()
    queues: tuple[tuple[str, float], ...] = (("support", 1.0),)
    priorities: tuple[tuple[int, float], ...] = ((0, 1.0),)
    skills: tuple[tuple[str, float], ...] = ()
    lang: tuple[tuple[str, float], ...] = ()
    repeat_share: float = 0.0
    number_prefix: str = "139"
    number_length: int = 11
    numbers: tuple[str, ...] = ()
    patience: Distribution = Fixed(60.0)
    ivr: tuple[IvrCallers, ...] = ()
    """With caller groups, every caller runs the IVR first (``HOTLINE_IVR=yes``)."""


@dataclass(frozen=True, slots=True)
class CustomerBehaviour:
    """How the customers dialled by callbacks (``Local/<number>@callers``) answer."""

    answer_delay: Distribution = Fixed(0.0)
    no_answer: float = 0.0
    busy: float = 0.0
    patience: Distribution = Fixed(60.0)


@dataclass(frozen=True, slots=True)
class SupervisorBehaviour:
    """How long a supervisor's phone stays on a ChanSpy call."""

    listen: Distribution = Fixed(20.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario. Build one in code, or load a TOML file with :func:`load_scenario`."""

    name: str = "adhoc"
    seed: int = 0
    noise: bool = True
    time_scale: float = 1.0
    arrivals: Arrivals | None = None
    agents: tuple[AgentGroup, ...] = ()
    customers: CustomerBehaviour = CustomerBehaviour()
    supervisors: SupervisorBehaviour = SupervisorBehaviour()
    source: str = field(default="<code>", compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Scenario:
        """Validate a parsed TOML document; errors start with ``source``."""
        return _Parser(source).scenario(data)

    @classmethod
    def from_toml(cls, text: str, source: str = "<toml>") -> Scenario:
        """Parse and validate TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, source)

    def agent_behaviours(self) -> dict[str, AgentBehaviour]:
        """Each configured agent device with its behaviour."""
        return {device: group.behaviour for group in self.agents for device in group.devices}


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped with Hotline (``demo``, ``load``, ...)."""
    folder = resources.files("hotline.sim") / "scenarios"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Load a scenario file, or a bundled one by name (``demo``)."""
    path = Path(path_or_name)
    if not path.exists() and path.suffix == "" and str(path_or_name) in bundled_scenarios():
        resource = resources.files("hotline.sim") / "scenarios" / f"{path_or_name}.toml"
        return Scenario.from_toml(resource.read_text(encoding="utf-8"), f"{path_or_name}.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text: {exc}") from exc
    return Scenario.from_toml(text, str(path))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Parser:
    """Turns a parsed TOML document into a :class:`Scenario`, naming the key of any error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {key}: {problem}")

    def table(self, value: object, key: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a table, got {value!r}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise self.fail(
                f"{key}.{unknown[0]}" if key else unknown[0],
                f"unknown key (expected one of {expected})",
            )
        return value

    def number(
        self, value: object, key: str, *, low: float = 0.0, high: float | None = None
    ) -> float:
        if not _is_number(value):
            raise self.fail(key, f"expected a number, got {value!r}")
        number = float(value)  # type: ignore[arg-type]
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.fail(key, f"must be {bound}, got {value}")
        return number

    def integer(self, value: object, key: str, *, low: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if value < low:
            raise self.fail(key, f"must be at least {low}, got {value}")
        return value

    def probability(self, value: object, key: str) -> float:
        return self.number(value, key, high=1.0)

    def distribution(self, value: object, key: str) -> Distribution:
        return parse_distribution(value, f"{self.source}: {key}")

    def weights(self, value: object, key: str) -> tuple[tuple[str, float], ...]:
        if not isinstance(value, Mapping) or not value:
            raise self.fail(key, f"expected a non-empty table of weights, got {value!r}")
        pairs = tuple((str(name), self.number(w, f"{key}.{name}")) for name, w in value.items())
        if sum(weight for _, weight in pairs) <= 0:
            raise self.fail(key, "the weights add up to zero")
        return pairs

    def scenario(self, data: Mapping[str, Any]) -> Scenario:
        allowed = frozenset(
            {
                "name",
                "seed",
                "noise",
                "time_scale",
                "arrivals",
                "agents",
                "customers",
                "supervisors",
            }
        )
        data = self.table(data, "", allowed)
        name = data.get("name", Path(self.source).stem or "adhoc")
        if not isinstance(name, str) or not name:
            raise self.fail("name", f"expected a non-empty string, got {name!r}")
        noise = data.get("noise", True)
        if not isinstance(noise, bool):
            raise self.fail("noise", f"expected true or false, got {noise!r}")
        time_scale = self.number(data.get("time_scale", 1.0), "time_scale")
        if time_scale <= 0:
            raise self.fail("time_scale", "must be positive")
        agents_value = data.get("agents", [])
        if not isinstance(agents_value, list):
            raise self.fail("agents", "expected an array of tables ([[agents]])")
        agents = tuple(
            self.agent_group(group, f"agents[{i}]") for i, group in enumerate(agents_value)
        )
        seen: set[str] = set()
        for i, group in enumerate(agents):
            for device in group.devices:
                if device in seen:
                    raise self.fail(f"agents[{i}]", f"device {device!r} is listed twice")
                seen.add(device)
        return Scenario(
            name=name,
            seed=self.integer(data.get("seed", 0), "seed"),
            noise=noise,
            time_scale=time_scale,
            arrivals=self.arrivals(data["arrivals"]) if "arrivals" in data else None,
            agents=agents,
            customers=self.customers(data.get("customers", {})),
            supervisors=self.supervisors(data.get("supervisors", {})),
            source=self.source,
        )

    def arrivals(self, value: object) -> Arrivals:
        allowed = frozenset(
            {
                "count", "duration", "rate_per_minute", "start_after", "bursts", "queues",
                "priorities", "skills", "lang", "repeat_share", "number_prefix",
                "number_length", "numbers", "patience", "ivr",
            }
        )  # fmt: skip
        data = self.table(value, "arrivals", allowed)
        count, duration, rate, bursts = self.traffic(data)
        prefix, length, numbers = self.numbers(data)
        return Arrivals(
            count=count,
            duration=duration,
            rate_per_minute=rate,
            start_after=self.number(data.get("start_after", 0.0), "arrivals.start_after"),
            bursts=bursts,
            queues=self.weights(data.get("queues", {"support": 1}), "arrivals.queues"),
            priorities=self.priorities(data.get("priorities", {"0": 1})),
            skills=self.skills(data),
            lang=self.weights(data["lang"], "arrivals.lang") if "lang" in data else (),
            repeat_share=self.probability(data.get("repeat_share", 0.0), "arrivals.repeat_share"),
            number_prefix=prefix,
            number_length=length,
            numbers=numbers,
            patience=self.distribution(data.get("patience", 60.0), "arrivals.patience"),
            ivr=self.ivr_groups(data.get("ivr", [])),
        )

    def traffic(
        self, data: Mapping[str, Any]
    ) -> tuple[int | None, float | None, float, tuple[Burst, ...]]:
        """``count``, ``duration``, ``rate_per_minute`` and ``bursts``, checked together."""
        count = self.integer(data["count"], "arrivals.count") if "count" in data else None
        duration = (
            self.number(data["duration"], "arrivals.duration") if "duration" in data else None
        )
        rate = self.number(data.get("rate_per_minute", 0.0), "arrivals.rate_per_minute")
        bursts_value = data.get("bursts", [])
        if not isinstance(bursts_value, list):
            raise self.fail("arrivals.bursts", "expected an array of tables ([[arrivals.bursts]])")
        bursts = tuple(self.burst(b, f"arrivals.bursts[{i}]") for i, b in enumerate(bursts_value))
        if rate > 0 and count is None and duration is None:
            raise self.fail("arrivals", "rate_per_minute needs count or duration (or both)")
        if rate == 0 and not bursts and (count or duration):
            raise self.fail("arrivals.rate_per_minute", "must be positive to make any calls")
        return count, duration, rate, bursts

    def priorities(self, value: object) -> tuple[tuple[int, float], ...]:
        return tuple(
            (self.priority_key(name), weight)
            for name, weight in self.weights(value, "arrivals.priorities")
        )

    def skills(self, data: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
        if "skills" not in data:
            return ()
        if not isinstance(data["skills"], Mapping):
            raise self.fail("arrivals.skills", "expected a table of skill = probability")
        return tuple(
            (str(skill), self.probability(p, f"arrivals.skills.{skill}"))
            for skill, p in data["skills"].items()
        )

    def numbers(self, data: Mapping[str, Any]) -> tuple[str, int, tuple[str, ...]]:
        """``number_prefix``, ``number_length`` and ``numbers``."""
        numbers = data.get("numbers", [])
        if not isinstance(numbers, list) or not all(
            isinstance(n, str) and n.isdigit() for n in numbers
        ):
            raise self.fail("arrivals.numbers", "expected an array of digit strings")
        prefix = data.get("number_prefix", "139")
        if not isinstance(prefix, str) or not prefix.isdigit():
            raise self.fail(
                "arrivals.number_prefix", f"expected a string of digits, got {prefix!r}"
            )
        length = self.integer(data.get("number_length", 11), "arrivals.number_length", low=1)
        if length < len(prefix):
            raise self.fail("arrivals.number_length", "is shorter than number_prefix")
        return prefix, length, tuple(numbers)

    def ivr_groups(self, value: object) -> tuple[IvrCallers, ...]:
        if not isinstance(value, list):
            raise self.fail("arrivals.ivr", "expected an array of tables ([[arrivals.ivr]])")
        groups = tuple(self.ivr_group(group, f"arrivals.ivr[{i}]") for i, group in enumerate(value))
        if groups and sum(group.weight for group in groups) <= 0:
            raise self.fail("arrivals.ivr", "the weights add up to zero")
        return groups

    def ivr_group(self, value: object, key: str) -> IvrCallers:
        data = self.table(value, key, frozenset({"weight", "dtmf", "survey"}))
        survey = data.get("survey", [])
        if isinstance(survey, int) and not isinstance(survey, bool):
            if not 0 <= survey <= 9:
                raise self.fail(f"{key}.survey", f"expected one digit 0-9, got {survey}")
            survey = [str(survey)]
        return IvrCallers(
            weight=self.number(data.get("weight", 1.0), f"{key}.weight"),
            dtmf=self.keys(data.get("dtmf", []), f"{key}.dtmf"),
            survey=self.keys(survey, f"{key}.survey"),
        )

    def keys(self, value: object, key: str) -> tuple[str, ...]:
        """DTMF entries: strings of 0-9, * and #, "" (no input) or "hangup"."""
        if not isinstance(value, list) or not all(
            isinstance(entry, str) and (entry == "hangup" or set(entry) <= _DTMF) for entry in value
        ):
            raise self.fail(
                key,
                'expected an array of key presses ("12", "" for no input, "hangup"), '
                f"got {value!r}",
            )
        return tuple(value)

    def priority_key(self, name: str) -> int:
        try:
            return int(name)
        except ValueError:
            raise self.fail(
                f"arrivals.priorities.{name}", "priority keys must be integers"
            ) from None

    def burst(self, value: object, key: str) -> Burst:
        data = self.table(value, key, frozenset({"at", "count", "over"}))
        for required in ("at", "count"):
            if required not in data:
                raise self.fail(key, f"a burst needs {required!r}")
        return Burst(
            at=self.number(data["at"], f"{key}.at"),
            count=self.integer(data["count"], f"{key}.count"),
            over=self.number(data.get("over", 0.0), f"{key}.over"),
        )

    def agent_group(self, value: object, key: str) -> AgentGroup:
        allowed = frozenset(
            {
                "device", "extensions", "answer_delay", "no_answer", "busy", "talk",
                "private_calls_per_hour", "private_call_duration",
            }
        )  # fmt: skip
        data = self.table(value, key, allowed)
        device = data.get("device")
        if not isinstance(device, str) or "/" not in device:
            raise self.fail(
                f"{key}.device", f"expected a device such as 'PJSIP/1001', got {device!r}"
            )
        if "{ext}" in device:
            if "extensions" not in data:
                raise self.fail(key, "a device template with {ext} needs 'extensions'")
            devices = tuple(
                device.replace("{ext}", ext)
                for ext in self.extensions(data["extensions"], f"{key}.extensions")
            )
        else:
            if "extensions" in data:
                raise self.fail(f"{key}.extensions", "only allowed with a {ext} device template")
            devices = (device,)
        no_answer = self.probability(data.get("no_answer", 0.0), f"{key}.no_answer")
        busy = self.probability(data.get("busy", 0.0), f"{key}.busy")
        if no_answer + busy > 1:
            raise self.fail(key, "no_answer + busy is more than 1")
        behaviour = AgentBehaviour(
            answer_delay=self.distribution(data.get("answer_delay", 2.0), f"{key}.answer_delay"),
            no_answer=no_answer,
            busy=busy,
            talk=self.distribution(data.get("talk", 30.0), f"{key}.talk"),
            private_calls_per_hour=self.number(
                data.get("private_calls_per_hour", 0.0), f"{key}.private_calls_per_hour"
            ),
            private_call_duration=self.distribution(
                data.get("private_call_duration", 120.0), f"{key}.private_call_duration"
            ),
        )
        return AgentGroup(devices=devices, behaviour=behaviour)

    def extensions(self, value: object, key: str) -> list[str]:
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
        extensions = _extension_range(value) if isinstance(value, str) else None
        if extensions is None:
            raise self.fail(
                key, f"expected a range like '2001-2020' or a list of strings, got {value!r}"
            )
        return extensions

    def customers(self, value: object) -> CustomerBehaviour:
        allowed = frozenset({"answer_delay", "no_answer", "busy", "patience"})
        data = self.table(value, "customers", allowed)
        no_answer = self.probability(data.get("no_answer", 0.0), "customers.no_answer")
        busy = self.probability(data.get("busy", 0.0), "customers.busy")
        if no_answer + busy > 1:
            raise self.fail("customers", "no_answer + busy is more than 1")
        return CustomerBehaviour(
            answer_delay=self.distribution(data.get("answer_delay", 0.0), "customers.answer_delay"),
            no_answer=no_answer,
            busy=busy,
            patience=self.distribution(data.get("patience", 60.0), "customers.patience"),
        )

    def supervisors(self, value: object) -> SupervisorBehaviour:
        data = self.table(value, "supervisors", frozenset({"listen"}))
        return SupervisorBehaviour(
            listen=self.distribution(data.get("listen", 20.0), "supervisors.listen")
        )


def _extension_range(value: str) -> list[str] | None:
    """``"2001-2020"`` (zero-padded like the first), or one extension ``"2001"``; else None."""
    first, sep, last = value.partition("-")
    if sep and first.isdigit() and last.isdigit() and int(first) <= int(last):
        return [str(n).zfill(len(first)) for n in range(int(first), int(last) + 1)]
    if not sep and value.isdigit():
        return [value]
    return None


# -- arrivals --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One caller: when (seconds after arrivals start) and who."""

    at: float
    number: str
    name: str
    queue: str
    priority: int
    skills: tuple[str, ...]
    lang: str | None
    patience: float
    agent: str | None = None
    """The agent the caller asked for in the IVR (``HOTLINE_STICKY_AGENT``)."""
    ivr: IvrCallers | None = None
    """The caller's IVR group when the scenario has ``[[arrivals.ivr]]``: the flow then sets
    the queue, priority, skills and language (see :func:`hotline.sim.agi.ivr_arrival`),
    and the dialplan's defaults fill in what it leaves unset."""


_SURNAMES: Final = (
    "Zhao", "Qian", "Sun", "Li", "Zhou", "Wu", "Zheng", "Wang", "Feng", "Chen",
    "Chu", "Wei", "Jiang", "Shen", "Han", "Yang", "Zhu", "Qin", "You", "Xu",
)  # fmt: skip
_GIVEN: Final = (
    "Yi", "Er", "San", "Si", "Wu", "Liu", "Qi", "Ba", "Jiu", "Shi",
    "Wei", "Min", "Hua", "Lei", "Jing", "Ying", "Tao", "Fang", "Jun", "Lan",
)  # fmt: skip


def _pick(rng: random.Random, weighted: tuple[tuple[Any, float], ...]) -> Any:
    total = sum(weight for _, weight in weighted)
    point = rng.random() * total
    for value, weight in weighted:
        point -= weight
        if point < 0:
            return value
    return weighted[-1][0]


def _arrival_times(spec: Arrivals, rng: random.Random) -> Iterator[float]:
    """Poisson times merged with burst times, in order."""
    bursts = sorted(
        burst.at + rng.random() * burst.over for burst in spec.bursts for _ in range(burst.count)
    )

    def poisson() -> Iterator[float]:
        if spec.rate_per_minute <= 0:
            return
        now = 0.0
        for made in itertools.count():
            if spec.count is not None and made >= spec.count:
                return
            now += rng.expovariate(spec.rate_per_minute / 60.0)
            if spec.duration is not None and now >= spec.duration:
                return
            yield now

    for at in heapq.merge(poisson(), bursts):
        yield spec.start_after + at


def generate_arrivals(scenario: Scenario) -> Iterator[Arrival]:
    """Every caller of the scenario, in arrival order; the same seed gives the same callers."""
    spec = scenario.arrivals
    if spec is None:
        return
    times_rng = random.Random(f"{scenario.seed}/arrival-times")
    rng = random.Random(f"{scenario.seed}/callers")
    ivr_rng = random.Random(f"{scenario.seed}/ivr")  # its own stream: other draws stay put
    groups = tuple((group, group.weight) for group in spec.ivr)
    known: list[str] = []
    names: dict[str, str] = {}
    pool = list(spec.numbers)
    digits = spec.number_length - len(spec.number_prefix)
    for index, at in enumerate(_arrival_times(spec, times_rng)):
        if known and rng.random() < spec.repeat_share:
            number = rng.choice(known)
        else:
            if pool:
                number = pool.pop(rng.randrange(len(pool)))
            else:
                number = spec.number_prefix + str(rng.randrange(10**digits)).zfill(digits)
            known.append(number)
        name = names.setdefault(
            number, f"{_SURNAMES[index % len(_SURNAMES)]} {_GIVEN[rng.randrange(len(_GIVEN))]}"
        )
        yield Arrival(
            at=at,
            number=number,
            name=name,
            queue=str(_pick(rng, spec.queues)),
            priority=int(_pick(rng, spec.priorities)),
            skills=tuple(skill for skill, p in spec.skills if rng.random() < p),
            lang=str(_pick(rng, spec.lang)) if spec.lang else None,
            patience=spec.patience.sample(rng),
            ivr=_pick(ivr_rng, groups) if groups else None,
        )
