"""From recorded rows to report figures: pure arithmetic, no I/O, no clock.

Theory of operation
-------------------
:class:`ReportBuilder` keeps the running sums of each group (period x queue,
period x agent, period for tickets, period x party for repairs). It takes them
either already summed, one group at a time (:class:`CallGroup`,
:class:`OfferGroup`, :class:`TicketGroup`, :class:`RepairGroup`: what
:mod:`hotline.reports.queries` reads from PostgreSQL's ``GROUP BY``, so a month
of a million calls arrives as a few thousand rows), or one recorded row at a
time (:class:`CallRow`, :class:`OfferRow`, ...), which it tallies with the same
definitions. :meth:`ReportBuilder.build` adds the groups up into the totals
(each key over the whole range, "every queue" / "every agent" of each period
and of the range; call tallies add up with ``+``) and turns the sums into rows.
Every definition comes from one place:

- a call's tally (answered within the service-level threshold, abandoned, short
  abandon, overflowed), the service level, the abandon rate, ASA and AHT from
  :mod:`hotline.domain.sla`, with the configured thresholds;
- an offer's "answered within N rings" and the ring service level from the same
  module, with ``[routing] sla_rings`` and ``ring_cadence``;
- a repair's timeliness rate from :mod:`hotline.store.rules`.

A call and everything about it (its rings, talk and wrap-up) belongs to the
period in which the caller started waiting, and to the queue the caller asked
for (``original_queue``, as the metrics count it). Tickets belong to the period
they were opened in, except repair completions, which belong to the period of
the completion (as :meth:`hotline.store.tickets.Tickets.repair_timeliness`).

An agent's logged-in and paused time comes from :mod:`hotline.reports.presence`,
cut at the period boundaries (time, not arrivals); their talk and wrap-up time
belong to the arrival period of the call, so in a short interval ``occupancy``
((talk + wrap-up) / (logged in - paused)) can exceed 1 for a call that spans
intervals; over a day or longer the two agree but for calls across midnight.
``available_seconds`` is logged in, less paused, talk and wrap-up (at least 0).
``agents_logged_in`` of a queue row counts the agents configured for the queue
(every agent for "every queue") logged in at some time in the period.

``survey_responses`` and ``survey_average`` count the calls with a post-call
survey score (``calls.survey_score``, migration 0005), in the queue asked for
and for the agent who answered.

Rows exist only for groups with something in them, so a range without calls or
tickets gives a report with empty lists. A ratio with an empty denominator is
``None`` (see :mod:`hotline.domain.sla`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from hotline.config import Settings
from hotline.domain.model import OfferResult, Outcome
from hotline.domain.sla import (
    MISSES,
    CallTally,
    OfferTally,
    abandon_rate,
    answered_within_rings,
    average_handle_time,
    average_speed_of_answer,
    ratio,
    ring_service_level,
    service_level,
    tally_call,
)
from hotline.reports.period import Period, ReportRequest, periods
from hotline.reports.presence import AgentTime
from hotline.store.rules import timeliness_rate

__all__ = [
    "SATISFACTION_SCORES",
    "AgentRow",
    "CallGroup",
    "CallRow",
    "CompletedRepair",
    "OfferGroup",
    "OfferRow",
    "OpenedTicket",
    "QueueRow",
    "RepairGroup",
    "RepairRow",
    "Report",
    "ReportBuilder",
    "SlaRules",
    "TicketGroup",
    "TicketRow",
]

SATISFACTION_SCORES = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class SlaRules:
    """The settings the figures are measured against (reported with them)."""

    ring_cadence: float
    sla_rings: int
    service_level_threshold: float
    short_abandon_threshold: float
    service_level_target: float

    @classmethod
    def of(cls, settings: Settings) -> SlaRules:
        """The rules of ``[routing]`` and ``[sla]``."""
        return cls(
            ring_cadence=settings.routing.ring_cadence,
            sla_rings=settings.routing.sla_rings,
            service_level_threshold=settings.sla.service_level_threshold,
            short_abandon_threshold=settings.sla.short_abandon_threshold,
            service_level_target=settings.sla.service_level_target,
        )


# -- input rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call: its period and queue asked for; ``outcome`` None while it is in progress.

    ``talk_seconds`` and ``wrap_up_seconds`` are set for answered calls (the wrap-up
    once it has ended); ``answered_by`` is the agent who talked.
    """

    period: date
    queue: str
    outcome: Outcome | None
    wait_seconds: float | None
    answered_by: str | None = None
    talk_seconds: float | None = None
    wrap_up_seconds: float | None = None
    survey_score: int | None = None


@dataclass(frozen=True, slots=True)
class OfferRow:
    """One ring of ``agent`` for a call of ``queue`` that arrived in ``period``."""

    period: date
    queue: str
    agent: str
    result: OfferResult
    ring_seconds: float


@dataclass(frozen=True, slots=True)
class OpenedTicket:
    """A ticket opened in ``period``: its category, committed reply time, reply, score."""

    period: date
    category: str
    due_at: datetime | None = None
    replied_at: datetime | None = None
    satisfaction: int | None = None


@dataclass(frozen=True, slots=True)
class CompletedRepair:
    """A repair completed in ``period``: on time, late, or ``None`` (no due time); ``party``
    is who was responsible for it (``tickets.dispatch_party``)."""

    period: date
    on_time: bool | None
    party: str | None = None


# -- input groups (summed in SQL) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallGroup:
    """The sums of the calls of one group: ``key`` is the queue asked for, or the agent who
    answered (answered calls only). ``tally`` covers the ended calls; talk and wrap-up
    are their totals; ``longest_wait`` the longest wait of an ended call. From SQL the
    seconds come as whole microseconds of talk and nanoseconds of wrap-up and of the
    answered calls' wait (``talk_us``, ``wrap_up_ns``, ``answered_wait_ns``), added as
    integers and turned into seconds once per report row, so any grouping of the same
    calls gives the same floats."""

    period: date
    key: str
    tally: CallTally
    in_progress: int = 0
    talk_seconds: float = 0.0
    wrap_up_seconds: float = 0.0
    abandoned_waiting: int = 0
    abandoned_ringing: int = 0
    longest_wait: float | None = None
    survey_responses: int = 0
    survey_score_total: int = 0
    talk_us: int = 0
    wrap_up_ns: int = 0
    answered_wait_ns: int = 0


@dataclass(frozen=True, slots=True)
class OfferGroup:
    """The rings of one group (``key``: the call's queue, or the ringing agent), by result;
    ``answered_within`` of the answered ones were within ``[routing] sla_rings``."""

    period: date
    key: str
    answered: int = 0
    answered_within: int = 0
    no_answer: int = 0
    busy: int = 0
    unavailable: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class TicketGroup:
    """The tickets opened in one period: complaints judged on time or late (see
    :meth:`ReportBuilder.add_ticket`), repairs, and the count of each score 1..5."""

    period: date
    tickets: int
    complaints: int = 0
    complaints_on_time: int = 0
    complaints_late: int = 0
    repairs: int = 0
    scores: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class RepairGroup:
    """The repairs completed in one period for which ``party`` was responsible
    (``unassigned`` if none): how many, on time, late."""

    period: date
    party: str
    completed: int
    on_time: int = 0
    late: int = 0


# -- output rows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRow:
    """The calls of one queue in one period. ``period`` None: the whole range; ``queue``
    None: every queue. Seconds are totals; ``asa`` and ``aht`` are averages."""

    period: date | None
    queue: str | None
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    overflowed: int
    in_progress: int
    abandoned_waiting: int
    abandoned_ringing: int
    longest_wait: float | None
    agents_logged_in: int | None
    answered_within_threshold: int
    service_level: float | None
    abandon_rate: float | None
    offers: int
    offers_answered: int
    offers_answered_within_rings: int
    offers_missed: int
    offers_cancelled: int
    within_rings_rate: float | None
    asa: float | None
    aht: float | None
    wait_seconds_answered: float
    talk_seconds: float
    wrap_up_seconds: float
    survey_responses: int = 0
    survey_average: float | None = None


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent's rings and calls in one period (``None`` as in :class:`QueueRow`).

    ``offered``, ``answered``, ``missed`` and ``abandoned`` count rings (offers); the
    figures after ``calls_handled`` are over the calls the agent answered.
    """

    period: date | None
    agent: str | None
    agent_name: str | None
    offered: int
    answered: int
    answered_within_rings: int
    missed: int
    missed_no_answer: int
    missed_busy: int
    missed_unavailable: int
    abandoned: int
    within_rings_rate: float | None
    login_seconds: float
    paused_seconds: float
    paused_by_reason: dict[str, float]
    available_seconds: float
    occupancy: float | None
    calls_handled: int
    answered_within_threshold: int
    service_level: float | None
    asa: float | None
    aht: float | None
    wait_seconds_answered: float
    talk_seconds: float
    wrap_up_seconds: float
    survey_responses: int = 0
    survey_average: float | None = None
    quality_reviews: int = 0
    quality_average: float | None = None


@dataclass(frozen=True, slots=True)
class TicketRow:
    """Ticket figures of one period (``None``: the whole range)."""

    period: date | None
    tickets: int
    complaints: int
    complaints_on_time: int
    complaints_late: int
    complaints_pending: int
    reply_on_time_rate: float | None
    repairs: int
    repairs_completed: int
    repairs_on_time: int
    repairs_late: int
    repair_timeliness: float | None
    satisfaction_count: int
    satisfaction_average: float | None
    satisfaction_1: int
    satisfaction_2: int
    satisfaction_3: int
    satisfaction_4: int
    satisfaction_5: int
    callbacks_scheduled: int
    callbacks_done: int
    callbacks_failed: int


@dataclass(frozen=True, slots=True)
class RepairRow:
    """Repairs completed in one period (``None``: the range) by one responsible party
    (``None``: every party): 维修及时率 by party."""

    period: date | None
    party: str | None
    completed: int
    on_time: int
    late: int
    timeliness: float | None


@dataclass(frozen=True, slots=True)
class Report:
    """A finished report: what was asked, the rules, and the rows."""

    request: ReportRequest
    time_zone: str
    rules: SlaRules
    generated_at: datetime
    periods: list[Period]
    queues: list[QueueRow]
    agents: list[AgentRow]
    tickets: list[TicketRow]
    repairs: list[RepairRow] = field(default_factory=list)

    @property
    def has_calls(self) -> bool:
        """Whether any call arrived in the range."""
        return bool(self.queues)


# -- running sums -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Calls:
    tally: CallTally = field(default_factory=CallTally)
    in_progress: int = 0
    talk: float = 0.0
    wrap_up: float = 0.0
    offers: int = 0
    offers_answered: int = 0
    offers_within: int = 0
    offers_missed: int = 0
    offers_cancelled: int = 0
    abandoned_waiting: int = 0
    abandoned_ringing: int = 0
    longest_wait: float | None = None
    missed_no_answer: int = 0
    missed_busy: int = 0
    missed_unavailable: int = 0
    survey_responses: int = 0
    survey_total: int = 0
    quality_reviews: int = 0
    quality_total: float = 0.0
    time: AgentTime = field(default_factory=AgentTime)
    logged_in: set[str] = field(default_factory=set)
    talk_us: int = 0
    wrap_up_ns: int = 0
    wait_ns: int = 0

    def folded(self) -> _Calls:
        """These sums with the whole micro- and nanoseconds (from SQL) turned into seconds
        once, at the end: any grouping of the same calls gives the same floats."""
        wait = self.tally.answered_wait_seconds + self.wait_ns / 1e9
        return replace(
            self,
            talk=self.talk + self.talk_us / 1e6,
            wrap_up=self.wrap_up + self.wrap_up_ns / 1e9,
            tally=replace(self.tally, answered_wait_seconds=wait),
        )

    def add_offers(self, group: OfferGroup) -> None:
        missed = group.no_answer + group.busy + group.unavailable
        self.offers += group.answered + missed + group.cancelled
        self.offers_answered += group.answered
        self.offers_within += group.answered_within
        self.offers_missed += missed
        self.missed_no_answer += group.no_answer
        self.missed_busy += group.busy
        self.missed_unavailable += group.unavailable
        self.offers_cancelled += group.cancelled

    def add_calls(self, group: CallGroup) -> None:
        self.tally += group.tally
        self.in_progress += group.in_progress
        self.talk += group.talk_seconds
        self.wrap_up += group.wrap_up_seconds
        self.abandoned_waiting += group.abandoned_waiting
        self.abandoned_ringing += group.abandoned_ringing
        self._wait(group.longest_wait)
        self.survey_responses += group.survey_responses
        self.survey_total += group.survey_score_total
        self.talk_us += group.talk_us
        self.wrap_up_ns += group.wrap_up_ns
        self.wait_ns += group.answered_wait_ns

    def _wait(self, wait: float | None) -> None:
        if wait is not None and (self.longest_wait is None or wait > self.longest_wait):
            self.longest_wait = wait

    def absorb(self, other: _Calls) -> None:
        self.tally += other.tally
        self.in_progress += other.in_progress
        self.talk += other.talk
        self.wrap_up += other.wrap_up
        self.offers += other.offers
        self.offers_answered += other.offers_answered
        self.offers_within += other.offers_within
        self.offers_missed += other.offers_missed
        self.offers_cancelled += other.offers_cancelled
        self.abandoned_waiting += other.abandoned_waiting
        self.abandoned_ringing += other.abandoned_ringing
        self._wait(other.longest_wait)
        self.missed_no_answer += other.missed_no_answer
        self.missed_busy += other.missed_busy
        self.missed_unavailable += other.missed_unavailable
        self.survey_responses += other.survey_responses
        self.survey_total += other.survey_total
        self.quality_reviews += other.quality_reviews
        self.quality_total += other.quality_total
        self.time.absorb(other.time)
        self.logged_in |= other.logged_in
        self.talk_us += other.talk_us
        self.wrap_up_ns += other.wrap_up_ns
        self.wait_ns += other.wait_ns

    @property
    def offer_tally(self) -> OfferTally:
        return OfferTally(
            self.offers_answered, self.offers_within, self.offers_missed, self.offers_cancelled
        )


@dataclass(slots=True)
class _Tickets:
    tickets: int = 0
    complaints: int = 0
    on_time: int = 0
    late: int = 0
    repairs: int = 0
    completed: int = 0
    repairs_on_time: int = 0
    repairs_late: int = 0
    scores: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SATISFACTION_SCORES, 0))
    callbacks: dict[str, int] = field(default_factory=dict)


def _call_group(call: CallRow, rules: SlaRules, agent: str | None = None) -> CallGroup:
    """One call as a group of one (of its queue, or of ``agent``)."""
    key = agent if agent is not None else call.queue
    scored = call.survey_score is not None
    survey = {"survey_responses": int(scored), "survey_score_total": call.survey_score or 0}
    if call.outcome is None:
        return CallGroup(call.period, key, CallTally(), in_progress=1, **survey)
    tally = tally_call(
        call.outcome,
        call.wait_seconds or 0.0,
        rules.service_level_threshold,
        rules.short_abandon_threshold,
    )
    return CallGroup(
        call.period,
        key,
        tally,
        talk_seconds=call.talk_seconds or 0.0,
        wrap_up_seconds=call.wrap_up_seconds or 0.0,
        abandoned_waiting=int(call.outcome is Outcome.ABANDONED_WAITING),
        abandoned_ringing=int(call.outcome is Outcome.ABANDONED_RINGING),
        longest_wait=call.wait_seconds,
        **survey,
    )


def _sums(sums: dict[tuple[date, str], _Calls], period: date, key: str) -> _Calls:
    found = sums.get((period, key))
    if found is None:
        found = sums[(period, key)] = _Calls()
    return found


def _with_totals(
    sums: dict[tuple[date, str], _Calls],
) -> dict[tuple[date | None, str | None], _Calls]:
    """``sums`` and, from them, the totals of each key over the range, of every key in each
    period, and of everything (``None`` standing for "every")."""
    groups: dict[tuple[date | None, str | None], _Calls] = {
        (period, key): part for (period, key), part in sums.items()
    }
    for (period, key), part in sorted(sums.items()):
        for group in ((None, key), (period, None), (None, None)):
            groups.setdefault(group, _Calls()).absorb(part)
    return groups


def _order(item: tuple[tuple[date | None, str | None], object]) -> tuple[bool, date, bool, str]:
    """Periods in order, the whole range last; within each, keys by name, "every" last."""
    period, key = item[0]
    return (period is None, period or date.min, key is None, key or "")


class ReportBuilder:
    """Running sums of the rows of one report; see the module docstring."""

    def __init__(
        self,
        request: ReportRequest,
        rules: SlaRules,
        *,
        now: datetime,
        names: dict[str, str] | None = None,
        members: dict[str, frozenset[str]] | None = None,
    ) -> None:
        """A report for ``request``; ``now`` (aware) judges complaints not replied to yet.

        ``names`` maps agent ids to names; ``members`` each queue to the ids of its
        agents (for ``agents_logged_in``)."""
        self.request = request
        self.rules = rules
        self.now = now
        self.names = names or {}
        self.members = members or {}
        self._queues: dict[tuple[date, str], _Calls] = {}
        self._agents: dict[tuple[date, str], _Calls] = {}
        self._tickets: dict[date | None, _Tickets] = {}
        self._logged_in: dict[date, set[str]] = {}
        self._repairs: dict[tuple[date | None, str | None], list[int]] = {}

    def add_call(self, call: CallRow) -> None:
        """Count one call in its queue, and in its answering agent's figures."""
        self.add_call_group(_call_group(call, self.rules))
        if call.outcome is Outcome.ANSWERED and call.answered_by is not None:
            self.add_call_group(_call_group(call, self.rules, call.answered_by), agent=True)

    def add_call_group(self, group: CallGroup, *, agent: bool = False) -> None:
        """Add the sums of a group of calls: of a queue, or (``agent``) of an agent."""
        _sums(self._agents if agent else self._queues, group.period, group.key).add_calls(group)

    def add_offer(self, offer: OfferRow) -> None:
        """Count one ring in its call's queue and in its agent's figures."""
        result = offer.result
        answered = result is OfferResult.ANSWERED
        within = answered and answered_within_rings(
            result, offer.ring_seconds, self.rules.sla_rings, self.rules.ring_cadence
        )
        counts = {
            "answered": int(answered),
            "answered_within": int(within),
            "no_answer": int(result is OfferResult.NO_ANSWER),
            "busy": int(result is OfferResult.BUSY),
            "unavailable": int(result is OfferResult.UNAVAILABLE),
            "cancelled": int(not answered and result not in MISSES),
        }
        self.add_offer_group(OfferGroup(offer.period, offer.queue, **counts))
        self.add_offer_group(OfferGroup(offer.period, offer.agent, **counts), agent=True)

    def add_offer_group(self, group: OfferGroup, *, agent: bool = False) -> None:
        """Add the counts of a group of rings: of a queue, or (``agent``) of an agent."""
        _sums(self._agents if agent else self._queues, group.period, group.key).add_offers(group)

    def add_quality(self, period: date, agent: str, reviews: int, total: float) -> None:
        """``reviews`` quality reviews of ``agent``'s calls of ``period``, their totals'
        sum (the quality form's scores, :mod:`hotline.web.review`)."""
        sums = _sums(self._agents, period, agent)
        sums.quality_reviews += reviews
        sums.quality_total += total

    def add_presence(
        self, times: dict[tuple[date, str], AgentTime], logged_in: dict[date, set[str]]
    ) -> None:
        """The agents' time per (period, agent), and who was logged in in each period."""
        for (period, agent), time in times.items():
            _sums(self._agents, period, agent).time.absorb(time)
        for period, agents in logged_in.items():
            for queue, part in self._queues.items():
                if queue[0] == period:
                    part.logged_in |= agents & self.members.get(queue[1], frozenset())
            self._logged_in.setdefault(period, set()).update(agents)

    def add_callback(self, period: date, status: str, count: int = 1) -> None:
        """``count`` callbacks scheduled (``scheduled``), or ended ``done`` or ``failed``, in
        ``period``."""
        for sums in self._ticket_sums(period):
            sums.callbacks[status] = sums.callbacks.get(status, 0) + count

    def _ticket_sums(self, period: date) -> tuple[_Tickets, _Tickets]:
        """The sums of ``period`` and of the whole range."""
        sums = self._tickets
        return sums.setdefault(period, _Tickets()), sums.setdefault(None, _Tickets())

    def add_ticket(self, ticket: OpenedTicket) -> None:
        """Count a ticket opened in its period: complaints and their reply, repairs, score."""
        complaint = ticket.category == "complaint"
        judged = self._reply_on_time(ticket) if complaint else None
        scores = [0, 0, 0, 0, 0]
        if ticket.satisfaction is not None:
            scores[SATISFACTION_SCORES.index(ticket.satisfaction)] = 1
        self.add_ticket_group(
            TicketGroup(
                ticket.period,
                tickets=1,
                complaints=int(complaint),
                complaints_on_time=int(judged is True),
                complaints_late=int(judged is False),
                repairs=int(ticket.category == "repair"),
                scores=(scores[0], scores[1], scores[2], scores[3], scores[4]),
            )
        )

    def add_ticket_group(self, group: TicketGroup) -> None:
        """Add the counts of the tickets opened in a period."""
        for sums in self._ticket_sums(group.period):
            sums.tickets += group.tickets
            sums.complaints += group.complaints
            sums.on_time += group.complaints_on_time
            sums.late += group.complaints_late
            sums.repairs += group.repairs
            for score, count in zip(SATISFACTION_SCORES, group.scores, strict=True):
                sums.scores[score] += count

    def add_repair(self, repair: CompletedRepair) -> None:
        """Count a repair completed in its period (on time, late, or neither)."""
        self.add_repair_group(
            RepairGroup(
                repair.period,
                repair.party or "unassigned",
                completed=1,
                on_time=int(repair.on_time is True),
                late=int(repair.on_time is False),
            )
        )

    def add_repair_group(self, group: RepairGroup) -> None:
        """Add the counts of the repairs a party completed in a period."""
        for sums in self._ticket_sums(group.period):
            sums.completed += group.completed
            sums.repairs_on_time += group.on_time
            sums.repairs_late += group.late
        period, party = group.period, group.party
        for key in ((period, party), (period, None), (None, party), (None, None)):
            counts = self._repairs.setdefault(key, [0, 0, 0])
            counts[0] += group.completed
            counts[1] += group.on_time
            counts[2] += group.late

    def _reply_on_time(self, complaint: OpenedTicket) -> bool | None:
        """On time (replied by the committed time), late (replied after it, or not replied
        and past it), or ``None``: not replied and not yet due, or with no committed time."""
        if complaint.due_at is None:
            return None
        if complaint.replied_at is not None:
            return complaint.replied_at <= complaint.due_at
        if complaint.due_at < self.now:
            return False
        return None

    def _queue_groups(self) -> dict[tuple[date | None, str | None], _Calls]:
        groups = _with_totals(self._queues)
        for (period, queue), part in groups.items():
            if queue is None:
                part.logged_in = (
                    set().union(*self._logged_in.values())
                    if period is None
                    else set(self._logged_in.get(period, ()))
                )
        return groups

    def build(self, *, time_zone: str) -> Report:
        """The report of everything added so far, made at ``now``."""
        presence = bool(self._logged_in)
        return Report(
            request=self.request,
            time_zone=time_zone,
            rules=self.rules,
            generated_at=self.now,
            periods=periods(self.request),
            queues=[
                _queue_row(g, s, presence)
                for g, s in sorted(self._queue_groups().items(), key=_order)
            ],
            agents=[
                _agent_row(g, s, self.names)
                for g, s in sorted(_with_totals(self._agents).items(), key=_order)
            ],
            tickets=[
                _ticket_row(period, s)
                for period, s in sorted(
                    self._tickets.items(), key=lambda i: (i[0] is None, i[0] or date.min)
                )
            ],
            repairs=[
                RepairRow(g[0], g[1], done, on_time, late, timeliness_rate(on_time, late))
                for g, (done, on_time, late) in sorted(self._repairs.items(), key=_order)
            ],
        )


def _queue_row(group: tuple[date | None, str | None], sums: _Calls, presence: bool) -> QueueRow:
    sums = sums.folded()
    tally = sums.tally
    return QueueRow(
        period=group[0],
        queue=group[1],
        offered=tally.calls + sums.in_progress,
        answered=tally.answered,
        abandoned=tally.abandoned,
        short_abandoned=tally.short_abandoned,
        overflowed=tally.overflowed,
        in_progress=sums.in_progress,
        abandoned_waiting=sums.abandoned_waiting,
        abandoned_ringing=sums.abandoned_ringing,
        longest_wait=sums.longest_wait,
        agents_logged_in=len(sums.logged_in) if presence else None,
        answered_within_threshold=tally.answered_within,
        service_level=service_level(tally),
        abandon_rate=abandon_rate(tally),
        offers=sums.offers,
        offers_answered=sums.offers_answered,
        offers_answered_within_rings=sums.offers_within,
        offers_missed=sums.offers_missed,
        offers_cancelled=sums.offers_cancelled,
        within_rings_rate=ring_service_level(sums.offer_tally),
        asa=average_speed_of_answer(tally),
        aht=average_handle_time(sums.talk, sums.wrap_up, tally.answered),
        wait_seconds_answered=tally.answered_wait_seconds,
        talk_seconds=sums.talk,
        wrap_up_seconds=sums.wrap_up,
        survey_responses=sums.survey_responses,
        survey_average=ratio(sums.survey_total, sums.survey_responses),
    )


def _agent_row(
    group: tuple[date | None, str | None], sums: _Calls, names: dict[str, str]
) -> AgentRow:
    sums = sums.folded()
    tally = sums.tally
    time = sums.time
    paused = time.paused_total
    working = time.logged_in - paused
    return AgentRow(
        period=group[0],
        agent=group[1],
        agent_name=names.get(group[1]) if group[1] is not None else None,
        offered=sums.offers,
        answered=sums.offers_answered,
        answered_within_rings=sums.offers_within,
        missed=sums.offers_missed,
        missed_no_answer=sums.missed_no_answer,
        missed_busy=sums.missed_busy,
        missed_unavailable=sums.missed_unavailable,
        abandoned=sums.offers_cancelled,
        within_rings_rate=ring_service_level(sums.offer_tally),
        login_seconds=time.logged_in,
        paused_seconds=paused,
        paused_by_reason=dict(sorted(time.paused.items())),
        available_seconds=max(working - sums.talk - sums.wrap_up, 0.0),
        occupancy=ratio(sums.talk + sums.wrap_up, working) if working > 0 else None,
        calls_handled=tally.answered,
        answered_within_threshold=tally.answered_within,
        service_level=service_level(tally),
        asa=average_speed_of_answer(tally),
        aht=average_handle_time(sums.talk, sums.wrap_up, tally.answered),
        wait_seconds_answered=tally.answered_wait_seconds,
        talk_seconds=sums.talk,
        wrap_up_seconds=sums.wrap_up,
        survey_responses=sums.survey_responses,
        survey_average=ratio(sums.survey_total, sums.survey_responses),
        quality_reviews=sums.quality_reviews,
        quality_average=ratio(sums.quality_total, sums.quality_reviews),
    )


def _ticket_row(period: date | None, sums: _Tickets) -> TicketRow:
    scores = sums.scores
    rated = sum(scores.values())
    return TicketRow(
        period=period,
        tickets=sums.tickets,
        complaints=sums.complaints,
        complaints_on_time=sums.on_time,
        complaints_late=sums.late,
        complaints_pending=sums.complaints - sums.on_time - sums.late,
        reply_on_time_rate=ratio(sums.on_time, sums.on_time + sums.late),
        repairs=sums.repairs,
        repairs_completed=sums.completed,
        repairs_on_time=sums.repairs_on_time,
        repairs_late=sums.repairs_late,
        repair_timeliness=timeliness_rate(sums.repairs_on_time, sums.repairs_late),
        satisfaction_count=rated,
        satisfaction_average=ratio(sum(s * n for s, n in scores.items()), rated),
        satisfaction_1=scores[1],
        satisfaction_2=scores[2],
        satisfaction_3=scores[3],
        satisfaction_4=scores[4],
        satisfaction_5=scores[5],
        callbacks_scheduled=sums.callbacks.get("scheduled", 0),
        callbacks_done=sums.callbacks.get("done", 0),
        callbacks_failed=sums.callbacks.get("failed", 0),
    )
