"""Prometheus metrics: counters and histograms from the engine's facts, live gauges at scrape.

Theory of operation
-------------------
:class:`Metrics` is one Prometheus collector, registered on a registry the
caller injects (never the global one). It has two inputs:

* :meth:`Metrics.sink` is a :data:`~hotline.engine.FactSink`. The engine calls it
  synchronously for every fact; it updates plain dictionaries in O(1) (a
  ``match`` on the fact's type, a few increments, one ``bisect`` per histogram
  observation) and never does I/O, so it cannot stall routing.
* The live gauges (waiting callers, longest wait, agents by state, the AMI
  connection, the outbox backlog, recent routing-decision latency) are read at
  scrape time from the in-memory state of the engine given to :meth:`watch`
  (its router and AMI client) and from an optional backlog callable. A scrape
  never touches the network.

Counters are initialised at zero for every configured queue and agent (and
every outcome), so ``rate()`` and ``increase()`` see a series before its first
event. Labels come from small bounded sets: ``queue`` and ``agent`` (the
configuration), ``outcome`` (call outcomes, offer results), ``state`` (agent
states), ``score`` (the survey's 1-5) and ``reason`` (routing-warning codes;
pause reasons, of which the first :data:`MAX_PAUSE_REASONS` distinct ones get
their own value and the rest share ``"other"``). No family crosses agent with
queue, and nothing is labelled per call.

**Attribution.** Every per-queue call and offer figure belongs to the queue the
caller asked for (``HotlineQueue``, or the default queue for an unknown one),
even after an overflow moved them on; the live gauges show where callers wait
now, and ``hotline_queue_overflows_total`` counts callers by the queue they left.

**Surveys.** The IVR tells :meth:`Metrics.survey` of each post-call survey,
with the queue the caller's channel carries (``HOTLINE_QUEUE``; the default queue
for an unset or unknown one): ``hotline_survey_offered_total`` counts the surveys
started, ``hotline_survey_responses_total`` the scores given by score, and the
``hotline_survey_score`` histogram the scores (its ``_count`` over the offered
counter is the response rate).

**Time sources.** Ring and wait times come from the facts, which carry the PBX's
``Timestamp`` (docs/ARCHITECTURE.md §2). Talk time runs from the answer to the
end of the talk (``talk_ended_at``), also PBX time, and is counted when the call
ends. Wrap-up, pause, logged-in and staffed time come from the agents' state
changes (``AgentStateChanged.at``, the engine's clock); the interval still open
is added at scrape time with the same injected clock, so those counters grow
live and stay monotonic.

**Rendering.** :meth:`collect` yields ordinary ``prometheus_client`` families,
so ``generate_latest(registry)`` works. ``/metrics`` serves :meth:`render`, which
writes the same exposition text from the same dictionaries with every series'
``name{labels} `` prefix built once and cached (and each agent's block of state
lines cached per state): with 500 agents and 50 queues (about 12,000 samples)
it is about ten times faster than ``generate_latest``, which formats every label
of every sample on every scrape (``hotline bench metrics`` measures both; a test
checks that they parse to the same samples).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from hotline.clock import Clock
from hotline.config import Settings
from hotline.domain.effects import (
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallRequeued,
    Fact,
    OfferEnded,
    RoutingWarning,
)
from hotline.domain.model import AgentState, CallState, OfferResult, Outcome
from hotline.domain.sla import ABANDONED, answered_within_rings, is_short_abandon

if TYPE_CHECKING:
    from hotline.engine import Engine
    from hotline.store.lease import Lease

__all__ = [
    "DECISION_BUCKETS",
    "MAX_PAUSE_REASONS",
    "RING_BUCKETS",
    "SURVEY_SCORES",
    "WAIT_BUCKETS",
    "Metrics",
    "ring_buckets",
    "wait_buckets",
]

RING_BUCKETS: Final = (1, 2, 3, 4, 5, 6)
"""Ring-to-answer histogram buckets, in rings (multiples of the cadence)."""
WAIT_BUCKETS: Final = (1, 2, 3, 4, 6, 12, 24, 60)
"""Wait histogram buckets, in rings (with a 5 s cadence: 5 s to 5 min)."""
MAX_PAUSE_REASONS: Final = 20
"""Distinct pause reasons with a label value of their own; later ones are ``"other"``."""
SURVEY_SCORES: Final = (1, 2, 3, 4, 5)
"""The post-call survey's scores: the ``score`` label values and the histogram's buckets."""
DECISION_BUCKETS: Final = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0)
"""Routing decision time histogram buckets, in (wall) seconds."""
_STATE_INDEX: Final = {state: n for n, state in enumerate(AgentState)}
_Key = tuple[str, ...]
_TimeCounters = tuple[
    dict[_Key, float], dict[_Key, float], dict[_Key, float], dict[_Key, float], dict[_Key, float]
]


def ring_buckets(cadence: float) -> tuple[float, ...]:
    """Upper bounds (seconds) of the ring-to-answer histogram: 1 to 6 rings."""
    return tuple(rings * cadence for rings in RING_BUCKETS)


def wait_buckets(cadence: float, *extra: float) -> tuple[float, ...]:
    """Upper bounds (seconds) of the wait histogram: ring multiples plus ``extra`` thresholds."""
    return tuple(sorted({rings * cadence for rings in WAIT_BUCKETS} | set(extra)))


def _number(value: float) -> str:
    """A sample value as the text format writes it (``repr``, but ``+Inf``, ``-Inf``, ``NaN``)."""
    text = repr(value)
    if text[-1] in "fn":  # inf, -inf, nan: every other repr of a number ends in a digit
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Family:
    """One metric family: name, type, help, label names, stored values, rendered prefixes.

    ``values`` holds what the sink counts (counters); gauges and the agent time
    counters get their values at scrape time instead.
    """

    __slots__ = ("help", "kind", "labels", "name", "prefixes", "sample", "values")

    def __init__(
        self,
        name: str,
        kind: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        keys: Iterable[_Key] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.labels = labels
        # The sample name a series is written with (counters carry "_total").
        self.sample = name + "_total" if kind == "counter" else name
        self.values: dict[_Key, float] = dict.fromkeys(keys, 0)
        self.prefixes: dict[_Key, str] = {}

    def add(self, key: _Key, amount: float = 1) -> None:
        """Add to one stored series; a non-finite amount is ignored (a sum never turns NaN)."""
        if math.isfinite(amount):
            self.values[key] = self.values.get(key, 0) + amount

    def header(self) -> str:
        """The HELP and TYPE lines."""
        return f"# HELP {self.sample} {self.help}\n# TYPE {self.sample} {self.kind}\n"

    def prefix(self, key: _Key, suffix: str = "", extra: str = "") -> str:
        """``name{labels} `` for one series (``extra`` is a pre-rendered trailing label)."""
        pairs = [f'{name}="{_escape(value)}"' for name, value in zip(self.labels, key, strict=True)]
        if extra:
            pairs.append(extra)
        labels = "{" + ",".join(pairs) + "}" if pairs else ""
        return f"{self.sample}{suffix}{labels} "

    def to_client(self, values: Mapping[_Key, float]) -> Metric:
        """A prometheus_client family holding ``values``."""
        family: CounterMetricFamily | GaugeMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.help, labels=self.labels)
        else:
            family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        for key, value in values.items():
            family.add_metric(key, value)
        return family

    def render(self, out: list[str], values: Mapping[_Key, float]) -> None:
        """Append the header and one line per series."""
        out.append(self.header())
        prefixes = self.prefixes
        append = out.append
        for key, value in values.items():
            prefix = prefixes.get(key)
            if prefix is None:
                prefix = prefixes[key] = self.prefix(key)
            text = repr(value)
            if text[-1] in "fn":
                text = _number(value)
            append(f"{prefix}{text}\n")


class _Histogram:
    """Observations of one histogram series: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)
        self.total = 0.0


class _HistogramFamily(_Family):
    """A histogram family: ``_bucket`` (cumulative, with ``le``), ``_count`` and ``_sum``."""

    __slots__ = ("bounds", "le", "lines", "series")

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...],
        bounds: tuple[float, ...],
        keys: Iterable[_Key],
    ) -> None:
        super().__init__(name, "histogram", help_text, labels)
        self.bounds = bounds
        self.le = [_number(float(bound)) for bound in bounds] + ["+Inf"]
        self.series = {key: _Histogram(len(bounds)) for key in keys}
        self.lines: dict[_Key, list[str]] = {}

    def observe(self, key: _Key, value: float) -> None:
        """Count one observation; a value equal to a bound falls in that bound's bucket.

        A non-finite value (which no valid event yields) is ignored, so ``_sum`` stays a number.
        """
        if not math.isfinite(value):
            return
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Histogram(len(self.bounds))
        series.counts[bisect.bisect_left(self.bounds, value)] += 1
        series.total += value

    def _lines(self, key: _Key) -> list[str]:
        lines = self.lines.get(key)
        if lines is None:
            lines = [self.prefix(key, "_bucket", f'le="{le}"') for le in self.le]
            lines += [self.prefix(key, "_count"), self.prefix(key, "_sum")]
            self.lines[key] = lines
        return lines

    def render(self, out: list[str], values: Mapping[_Key, float]) -> None:  # noqa: ARG002 (the signature every metric family shares)
        """Append the header and the bucket, count and sum lines of every series."""
        out.append(self.header())
        for key, series in self.series.items():
            lines = self._lines(key)
            cumulative = 0
            for line, count in zip(lines, series.counts, strict=False):
                cumulative += count
                out.append(f"{line}{cumulative}\n")
            out.append(f"{lines[-2]}{cumulative}\n{lines[-1]}{_number(series.total)}\n")

    def to_client(self, values: Mapping[_Key, float]) -> Metric:  # noqa: ARG002 (the signature every metric family shares)
        """A prometheus_client histogram family with every series."""
        family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for key, series in self.series.items():
            buckets = list(zip(self.le, itertools.accumulate(series.counts), strict=True))
            family.add_metric(key, buckets, series.total)
        return family


class _StateFamily(_Family):
    """A gauge that is 1 for each agent's current state and 0 for its other states.

    Its values map ``(agent,)`` to the index of the agent's state in ``states``.
    The block of lines for an agent in a state is rendered once and cached, so a
    scrape writes one string per agent instead of one line per state.
    """

    __slots__ = ("blocks", "states")

    def __init__(self, name: str, help_text: str, states: tuple[str, ...]) -> None:
        super().__init__(name, "gauge", help_text, ("agent", "state"))
        self.states = states
        self.blocks: dict[tuple[_Key, float], str] = {}

    def render(self, out: list[str], values: Mapping[_Key, float]) -> None:
        """Append the header and every agent's block."""
        out.append(self.header())
        blocks = self.blocks
        for key, index in values.items():
            block = blocks.get((key, index))
            if block is None:
                block = blocks[(key, index)] = "".join(
                    f"{self.prefix((*key, state))}{1.0 if n == index else 0.0}\n"
                    for n, state in enumerate(self.states)
                )
            out.append(block)

    def to_client(self, values: Mapping[_Key, float]) -> Metric:
        """A prometheus_client gauge family with a 0/1 sample per agent and state."""
        family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        for key, index in values.items():
            for n, state in enumerate(self.states):
                family.add_metric((*key, state), 1.0 if n == index else 0.0)
        return family


class Metrics:
    """Hotline's Prometheus metrics; see the module docstring for the theory of operation."""

    def __init__(self, settings: Settings, registry: CollectorRegistry, *, clock: Clock) -> None:
        """Start every counter at zero for the configured queues and agents; register."""
        routing, sla = settings.routing, settings.sla
        self.clock = clock
        self.cadence = routing.ring_cadence
        self.sla_rings = routing.sla_rings
        self.threshold = sla.service_level_threshold
        self.short_abandon = sla.short_abandon_threshold
        self.agent_queues = {agent.id: agent.queues for agent in settings.agents.values()}
        self.queues = frozenset(settings.queues)
        self.default_queue = routing.default_queue
        self._engine: Engine | None = None
        self._lease: Lease | None = None
        self._outbox_backlog: Callable[[], int] | None = None
        self._outbox_dropped: Callable[[], int] | None = None
        self._overdue: dict[_Key, float] | None = None
        self._calls: dict[str, list[str]] = {}  # call id -> [queue asked for, queue now]
        self._handled_queue: dict[str, str] = {}  # agent -> queue of the call last answered
        self._agent_state: dict[str, tuple[AgentState, float, str]] = {}
        self._pause_reasons: set[str] = set()
        self._families: list[_Family] = []
        self._define_counters(settings)
        self._define_gauges(settings)
        registry.register(self)

    # -- the families ---------------------------------------------------------------------------

    def _family(self, family: _Family) -> _Family:
        self._families.append(family)
        return family

    def _counter(
        self, name: str, help_text: str, labels: tuple[str, ...], keys: Iterable[_Key] = ()
    ) -> _Family:
        return self._family(_Family(name, "counter", help_text, labels, keys))

    def _gauge(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> _Family:
        return self._family(_Family(name, "gauge", help_text, labels))

    def _define_counters(self, settings: Settings) -> None:
        queues = [(name,) for name in settings.queues]
        agents = [(agent,) for agent in settings.agents]
        outcomes = [(q, outcome.value) for (q,) in queues for outcome in Outcome]
        results = [(q, result.value) for (q,) in queues for result in OfferResult]
        cadence = settings.routing.ring_cadence
        counter = self._counter
        self.arrived = counter(
            "hotline_calls_arrived", "Callers who started waiting.", ("queue",), queues
        )
        self.calls = counter(
            "hotline_calls",
            "Calls that reached their final outcome, by the queue asked for.",
            ("queue", "outcome"),
            outcomes,
        )
        self.answered_within = counter(
            "hotline_calls_answered_within_threshold",
            "Calls answered after a wait of at most the service-level threshold.",
            ("queue",),
            queues,
        )
        self.abandoned_within = counter(
            "hotline_calls_abandoned_within_threshold",
            "Calls abandoned after a wait of at most the service-level threshold.",
            ("queue",),
            queues,
        )
        self.short_abandoned = counter(
            "hotline_calls_short_abandoned",
            "Calls abandoned after a wait of at most the short-abandon threshold.",
            ("queue",),
            queues,
        )
        self.overflows = counter(
            "hotline_queue_overflows",
            "Callers who left this queue after its max_wait (to another queue or a target).",
            ("queue",),
            queues,
        )
        self.wait = _HistogramFamily(
            "hotline_wait_seconds",
            "Callers' wait, arrival to answer or to leaving, by final outcome.",
            ("queue", "outcome"),
            wait_buckets(cadence, self.threshold, self.short_abandon),
            outcomes,
        )
        self._family(self.wait)
        self.offers = counter(
            "hotline_offers",
            "Agent rings (offers) that ended, by result.",
            ("queue", "outcome"),
            results,
        )
        self.offers_within = counter(
            "hotline_offers_answered_within_sla",
            "Offers answered within sla_rings rings.",
            ("queue",),
            queues,
        )
        self.ring = _HistogramFamily(
            "hotline_ring_to_answer_seconds",
            "Ring time of answered offers (ring start to answer).",
            ("queue",),
            ring_buckets(cadence),
            queues,
        )
        self._family(self.ring)
        self.queue_talk = counter(
            "hotline_queue_talk_seconds",
            "Talk time of the queue's answered calls (answer to end of talk).",
            ("queue",),
            queues,
        )
        self.queue_wrap = counter(
            "hotline_queue_wrap_up_seconds",
            "Wrap-up time after the queue's calls.",
            ("queue",),
            queues,
        )
        self.queue_staffed = counter(
            "hotline_queue_staffed_seconds",
            "Logged-in time minus pause time of the agents serving the queue "
            "(an agent counts in every queue it serves).",
            ("queue",),
            queues,
        )
        self.agent_offers = counter(
            "hotline_agent_offers",
            "Offers to the agent that ended, by result.",
            ("agent", "outcome"),
            [(a, result.value) for (a,) in agents for result in OfferResult],
        )
        self.agent_within = counter(
            "hotline_agent_offers_answered_within_sla",
            "Offers the agent answered within sla_rings rings.",
            ("agent",),
            agents,
        )
        self.agent_talk = counter(
            "hotline_agent_talk_seconds",
            "The agent's talk time on answered calls (counted when the call ends).",
            ("agent",),
            agents,
        )
        self.agent_wrap = counter(
            "hotline_agent_wrap_up_seconds", "The agent's time in wrap-up.", ("agent",), agents
        )
        self.agent_logged_in = counter(
            "hotline_agent_logged_in_seconds",
            "The agent's logged-in time (any state but logged out).",
            ("agent",),
            agents,
        )
        self.agent_paused = counter(
            "hotline_agent_paused_seconds",
            "The agent's time paused, by reason.",
            ("agent", "reason"),
        )
        self._define_survey(queues)
        self.warnings = counter(
            "hotline_routing_warnings", "Odd but handled routing events, by code.", ("reason",)
        )
        self.events = counter("hotline_ami_events", "AMI events the engine processed.", ())
        self.resyncs = counter("hotline_ami_resyncs", "Resynchronisations with the PBX.", ())
        self.engine_errors = counter(
            "hotline_engine_errors",
            "Unexpected exceptions the engine caught and skipped, by stage.",
            ("stage",),
        )
        self.rejected_events = counter(
            "hotline_pbx_events_rejected",
            "AMI events refused at the edge (invalid values), by reason.",
            ("reason",),
        )

    def _define_gauges(self, settings: Settings) -> None:
        gauge = self._gauge
        self.waiting = gauge(
            "hotline_queue_waiting_calls",
            "Callers in the queue now, not yet answered (waiting or ringing an agent).",
            ("queue",),
        )
        self.longest_wait = gauge(
            "hotline_queue_longest_wait_seconds",
            "How long the longest-waiting caller in the queue has waited so far (0 if none).",
            ("queue",),
        )
        self.available = gauge(
            "hotline_queue_available_agents",
            "Agents serving the queue who could take a call now.",
            ("queue",),
        )
        self.logged_in = gauge(
            "hotline_queue_logged_in_agents",
            "Agents serving the queue who are logged in.",
            ("queue",),
        )
        self.staffed = gauge(
            "hotline_queue_staffed_agents",
            "Agents serving the queue who are logged in and not paused.",
            ("queue",),
        )
        self.agents_by_state = gauge("hotline_agents", "Agents in each state.", ("state",))
        self.agent_state = self._family(
            _StateFamily(
                "hotline_agent_state",
                "1 for the agent's current state, 0 for the others.",
                tuple(state.value for state in AgentState),
            )
        )
        self.ami_up = gauge("hotline_ami_up", "1 while the AMI connection is up.")
        self.engine_up = gauge("hotline_engine_up", "1 while the engine task runs.")
        self.outbox = gauge(
            "hotline_outbox_backlog",
            "Records accepted but not yet written to PostgreSQL (0 without a database).",
        )
        self.outbox_dropped = self._counter(
            "hotline_outbox_dropped",
            "Records the outbox lost: past its memory cap while the spill disk refused writes.",
            (),
            [()],
        )
        self.decision = _HistogramFamily(
            "hotline_routing_decision_seconds",
            "Routing decision time: the triggering event's bytes in to the Originate written.",
            (),
            DECISION_BUCKETS,
            [()],
        )
        self._family(self.decision)
        self.overdue = gauge(
            "hotline_tickets_overdue",
            "Open tickets past their committed reply time, by category (set by the store).",
            ("category",),
        )
        routing, sla = settings.routing, settings.sla
        self._settings = [
            (gauge("hotline_ring_cadence_seconds", "Seconds per ring."), routing.ring_cadence),
            (gauge("hotline_sla_rings", "The SLA in rings."), float(routing.sla_rings)),
            (
                gauge(
                    "hotline_service_level_threshold_seconds",
                    "Wait within which an answer counts for the service level.",
                ),
                sla.service_level_threshold,
            ),
            (
                gauge(
                    "hotline_short_abandon_threshold_seconds",
                    "Abandons within this wait are short abandons.",
                ),
                sla.short_abandon_threshold,
            ),
            (
                gauge("hotline_service_level_target_ratio", "The service level the alerts expect."),
                sla.service_level_target,
            ),
            (
                gauge("hotline_longest_wait_limit_seconds", "The longest wait the alerts accept."),
                sla.longest_wait_limit,
            ),
        ]
        # Failover (issue 14): present once watch() got a lease, or always 1 without one.
        self.router_active = gauge(
            "hotline_router_active",
            "1 while this instance is the active router of its PBX (pbx_id), else 0.",
            ("pbx_id", "role"),
        )
        self.lease_epoch = gauge(
            "hotline_lease_epoch",
            "The epoch of the lease this instance holds or held.",
            ("pbx_id",),
        )
        self.lease_takeover = gauge(
            "hotline_lease_last_takeover_timestamp_seconds",
            "When this instance last took the lease (Unix time).",
            ("pbx_id",),
        )
        self.refused_actions = self._counter(
            "hotline_engine_refused_actions",
            "AMI actions a standby or fenced instance refused to send.",
            (),
        )

    def _define_survey(self, queues: Sequence[_Key]) -> None:
        self.survey_offered = self._counter(
            "hotline_survey_offered",
            "Post-call surveys started (callers asked for a score), by the call's queue.",
            ("queue",),
            queues,
        )
        self.survey_responses = self._counter(
            "hotline_survey_responses",
            "Post-call survey scores given, by the call's queue and score.",
            ("queue", "score"),
            [(q, str(score)) for (q,) in queues for score in SURVEY_SCORES],
        )
        self.survey_score = _HistogramFamily(
            "hotline_survey_score",
            "Post-call survey scores (1-5), by the call's queue.",
            ("queue",),
            SURVEY_SCORES,
            queues,
        )
        self._family(self.survey_score)

    # -- inputs ---------------------------------------------------------------------------------

    def watch(
        self,
        engine: Engine,
        *,
        outbox_backlog: Callable[[], int] | None = None,
        outbox_dropped: Callable[[], int] | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Read the live gauges from ``engine`` (and the outbox backlog and losses, and the
        lease) at every scrape."""
        self._lease = lease
        self._engine = engine
        engine.decision_observers.append(lambda _kind, seconds: self.decision.observe((), seconds))
        self._outbox_backlog = outbox_backlog
        self._outbox_dropped = outbox_dropped

    def set_overdue(self, counts: Mapping[str, int]) -> None:
        """Overdue open tickets by category, as last counted by the store.

        ``hotline_tickets_overdue`` is exported once this has been called.
        """
        self._overdue = {(category,): float(count) for category, count in counts.items()}

    def sink(self, fact: Fact) -> None:
        """Count one fact (a :data:`~hotline.engine.FactSink`: O(1), no I/O)."""
        match fact:
            case OfferEnded():
                self._on_offer_ended(fact)
            case AgentStateChanged():
                self._on_agent_state(fact)
            case CallArrived():
                self._calls[fact.call_id] = [fact.queue, fact.queue]
                self.arrived.add((fact.queue,))
            case CallAnswered():
                self._handled_queue[fact.agent_id] = self._queue_asked(fact.call_id, fact.queue)
            case CallEnded():
                self._on_call_ended(fact)
            case CallRequeued():
                queues = self._calls.get(fact.call_id)
                if fact.reason == "overflow" and queues is not None:
                    self.overflows.add((queues[1],))
                    queues[1] = fact.queue
            case RoutingWarning():
                self.warnings.add((fact.code,))

    def survey(self, queue: str, score: int | None) -> None:
        """One post-call survey (an IVR survey observer): the call's queue (the default
        queue when it is not a configured one) and the score, ``None`` when none was given."""
        key = (queue if queue in self.queues else self.default_queue,)
        self.survey_offered.add(key)
        if score is not None and score in SURVEY_SCORES:
            self.survey_responses.add((key[0], str(score)))
            self.survey_score.observe(key, score)

    def _queue_asked(self, call_id: str, fallback: str) -> str:
        queues = self._calls.get(call_id)
        return queues[0] if queues is not None else fallback

    def _on_offer_ended(self, fact: OfferEnded) -> None:
        queue = self._queue_asked(fact.call_id, fact.queue)
        result = fact.result.value
        self.offers.add((queue, result))
        self.agent_offers.add((fact.agent_id, result))
        if fact.result is OfferResult.ANSWERED:
            ring_seconds = fact.ring_seconds
            self.ring.observe((queue,), ring_seconds)
            if answered_within_rings(fact.result, ring_seconds, self.sla_rings, self.cadence):
                self.offers_within.add((queue,))
                self.agent_within.add((fact.agent_id,))

    def _on_call_ended(self, fact: CallEnded) -> None:
        self._calls.pop(fact.call_id, None)
        queue = (fact.original_queue or fact.queue,)
        outcome = fact.outcome
        wait = fact.wait_seconds
        within = wait <= self.threshold
        self.calls.add((queue[0], outcome.value))
        self.wait.observe((queue[0], outcome.value), wait)
        if outcome is Outcome.ANSWERED:
            if within:
                self.answered_within.add(queue)
            if fact.answered_at is not None and fact.answered_by is not None:
                talk_end = fact.talk_ended_at if fact.talk_ended_at is not None else fact.ended_at
                talk = max(talk_end - fact.answered_at, 0.0)
                self.queue_talk.add(queue, talk)
                self.agent_talk.add((fact.answered_by,), talk)
        elif outcome in ABANDONED:
            if within:
                self.abandoned_within.add(queue)
            if is_short_abandon(outcome, wait, self.short_abandon):
                self.short_abandoned.add(queue)
        else:
            self.overflows.add((fact.queue,))

    def _pause_label(self, reason: str | None) -> str:
        label = reason or "paused"
        if label not in self._pause_reasons:
            if len(self._pause_reasons) >= MAX_PAUSE_REASONS:
                return "other"
            self._pause_reasons.add(label)
        return label

    def _on_agent_state(self, fact: AgentStateChanged) -> None:
        current = self._agent_state.get(fact.agent_id)
        if current is not None:
            state, since, reason = current
            self._account(fact.agent_id, state, reason, fact.at - since, self._time_counters())
        reason = self._pause_label(fact.reason) if fact.state is AgentState.PAUSED else ""
        self._agent_state[fact.agent_id] = (fact.state, fact.at, reason)

    def _time_counters(self) -> _TimeCounters:
        return (
            self.agent_logged_in.values,
            self.agent_wrap.values,
            self.agent_paused.values,
            self.queue_wrap.values,
            self.queue_staffed.values,
        )

    def _account(
        self, agent: str, state: AgentState, reason: str, seconds: float, into: _TimeCounters
    ) -> None:
        """Add ``seconds`` spent in ``state`` to the agent's (and its queues') time counters."""
        if state is AgentState.LOGGED_OUT or not 0 < seconds < math.inf:  # also skips NaN
            return
        logged_in, wrap, paused, queue_wrap, staffed = into
        key = (agent,)
        logged_in[key] = logged_in.get(key, 0) + seconds
        if state is AgentState.PAUSED:
            paused[(agent, reason)] = paused.get((agent, reason), 0) + seconds
            return
        if state is AgentState.WRAP_UP:
            wrap[key] = wrap.get(key, 0) + seconds
            handled = self._handled_queue.get(agent)
            if handled is not None:
                queue_wrap[(handled,)] = queue_wrap.get((handled,), 0) + seconds
        for queue in self.agent_queues.get(agent, ()):
            staffed[(queue,)] = staffed.get((queue,), 0) + seconds

    # -- scrape ---------------------------------------------------------------------------------

    def _time_counters_now(self) -> _TimeCounters:
        """The agent time counters plus the time spent so far in each agent's current state."""
        logged_in, wrap, paused, queue_wrap, staffed = self._time_counters()
        counters = (dict(logged_in), dict(wrap), dict(paused), dict(queue_wrap), dict(staffed))
        now = self.clock.now()
        for agent, (state, since, reason) in self._agent_state.items():
            self._account(agent, state, reason, now - since, counters)
        return counters

    def _queue_gauges(self, engine: Engine) -> list[tuple[_Family, dict[_Key, float]]]:
        router = engine.router
        now = self.clock.now()
        waiting: dict[_Key, float] = {(name,): 0.0 for name in router.queues}
        longest, available, logged_in, staffed = (dict(waiting) for _ in range(4))
        for call in router.calls.values():
            if call.state is CallState.WAITING or call.state is CallState.RINGING:
                key = (call.queue,)
                waiting[key] += 1
                longest[key] = max(longest[key], now - call.arrived_at)
        for agent_id in router.available_agents():
            for queue in router.agents[agent_id].config.queues:
                available[(queue,)] += 1
        for agent in router.agents.values():
            if agent.logged_in:
                for queue in agent.config.queues:
                    logged_in[(queue,)] += 1
                    if agent.pause_reason is None:
                        staffed[(queue,)] += 1
        return [
            (self.waiting, waiting),
            (self.longest_wait, longest),
            (self.available, available),
            (self.logged_in, logged_in),
            (self.staffed, staffed),
        ]

    def _agent_gauges(self, engine: Engine) -> list[tuple[_Family, dict[_Key, float]]]:
        index = _STATE_INDEX
        counts = [0.0] * len(index)
        states: dict[_Key, float] = {}
        for agent in engine.router.agents.values():
            state = index[agent.state]
            counts[state] += 1
            states[(agent.config.id,)] = state
        by_state: dict[_Key, float] = {(state.value,): counts[n] for state, n in index.items()}
        return [(self.agents_by_state, by_state), (self.agent_state, states)]

    def _system_gauges(self, engine: Engine) -> list[tuple[_Family, dict[_Key, float]]]:
        backlog = self._outbox_backlog() if self._outbox_backlog is not None else 0
        dropped = self._outbox_dropped() if self._outbox_dropped is not None else 0
        gauges: list[tuple[_Family, dict[_Key, float]]] = [
            (self.ami_up, {(): 1.0 if engine.ami.connected else 0.0}),
            (self.outbox, {(): float(backlog)}),
            (self.outbox_dropped, {(): float(dropped)}),
            (self.events, {(): engine.events_processed}),
            (self.resyncs, {(): engine.resyncs}),
            (self.engine_up, {(): 1.0 if engine.alive else 0.0}),
            (self.engine_errors, {(stage,): float(n) for stage, n in engine.errors.items()}),
            (self.rejected_events, {(reason,): float(n) for reason, n in engine.rejected.items()}),
            (self.refused_actions, {(): float(engine.refused_actions)}),
        ]
        lease = self._lease
        if lease is None:
            gauges.append((self.router_active, {("", "active"): 1.0}))
        else:
            role = lease.role
            gauges.append((self.router_active, {(lease.pbx_id, role): float(role == "active")}))
            gauges.append((self.lease_epoch, {(lease.pbx_id,): float(lease.epoch)}))
            if lease.last_takeover is not None:
                taken = lease.last_takeover.timestamp()
                gauges.append((self.lease_takeover, {(lease.pbx_id,): taken}))
        return gauges

    def _snapshot(self) -> list[tuple[_Family, Mapping[_Key, float]]]:
        """Every exported family with its values at this moment, in exposition order.

        Histograms carry their own series (their mapping here is empty). Live
        gauges are present only once :meth:`watch` has been called, the overdue
        tickets once :meth:`set_overdue` has.
        """
        logged_in, wrap, paused, queue_wrap, staffed = self._time_counters_now()
        scraped: dict[str, Mapping[_Key, float]] = {
            self.agent_logged_in.name: logged_in,
            self.agent_wrap.name: wrap,
            self.agent_paused.name: paused,
            self.queue_wrap.name: queue_wrap,
            self.queue_staffed.name: staffed,
        }
        engine = self._engine
        if engine is not None:
            for family, values in (
                self._queue_gauges(engine)
                + self._agent_gauges(engine)
                + self._system_gauges(engine)
            ):
                scraped[family.name] = values
        if self._overdue is not None:
            scraped[self.overdue.name] = self._overdue
        for family, value in self._settings:
            scraped[family.name] = {(): value}
        snapshot: list[tuple[_Family, Mapping[_Key, float]]] = []
        for family in self._families:
            if family.kind == "counter":
                snapshot.append((family, scraped.get(family.name, family.values)))
            elif family.kind == "histogram" or family.name in scraped:
                snapshot.append((family, scraped.get(family.name, {})))
        return snapshot

    def collect(self) -> Iterator[Metric]:
        """The prometheus_client collector protocol: every family, as of now."""
        for family, values in self._snapshot():
            yield family.to_client(values)

    def describe(self) -> Iterator[Metric]:
        """Every family's name and type, without samples (for the registry's duplicate check)."""
        for family in self._families:
            yield family.to_client({})

    def render(self) -> bytes:
        """The exposition text (format 0.0.4) of every family: what ``/metrics`` serves."""
        out: list[str] = []
        for family, values in self._snapshot():
            family.render(out, values)
        return "".join(out).encode()
