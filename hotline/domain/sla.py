"""Service-level arithmetic: rings, "answered within N rings", queue service levels, ASA, AHT.

Pure functions over plain numbers and small records: no I/O, no clock. The
metrics (live counters) and the period reports compute every figure here, so a
definition lives in one place. Times are seconds, measured as docs/ARCHITECTURE.md
section 2 "Timing" says (ring start and end, wait).

Definitions
-----------
*Per offered ring* (one agent leg):

- rings = ring seconds / ring cadence;
- answered within N rings: the offer was answered and its ring seconds are at
  most N x cadence (``<=``: an answer at exactly 15.0 s is within three 5 s
  rings). A ring-no-answer, busy or unavailable offer is a miss;
- ring service level = offers answered within N rings / (answered offers +
  misses). A cancelled offer (the caller left while it rang, or the ring was
  written off after a lost connection) is neither: it is left out (see
  :class:`OfferTally`).

*Per call* (its final outcome, and its wait from arrival to the answer or to
leaving): answered within the threshold when answered after a wait of at most
the service-level threshold (default ``sla_rings`` x cadence = 15 s); a *short
abandon* is an abandon after a wait of at most the short-abandon threshold
(default 5 s), which is left out of the service level and the abandon rate.

*Per queue*, over a set of calls (see :class:`CallTally`):

- service level = answered within threshold / (answered + abandoned after the
  short-abandon threshold + overflowed);
- app_queue SL = answered within threshold / answered;
- app_queue SL2 = (abandoned within threshold + answered within threshold) /
  (abandoned + answered), short abandons included, as Asterisk counts them;
- ASA (average speed of answer) = total wait of answered calls / answered;
- AHT (average handle time) = (talk + wrap-up) / answered;
- abandon rate = abandoned after the short-abandon threshold / (calls - short
  abandons);
- occupancy = (talk + wrap-up) / (logged-in time - pause time).

**Empty denominators**: every ratio returns ``None`` when its denominator is
zero (no calls, no time): "nothing to measure", never a made-up 0 % or 100 %.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hotline.domain.effects import CallEnded, OfferEnded
from hotline.domain.model import OfferResult, Outcome

__all__ = [
    "ABANDONED",
    "MISSES",
    "CallTally",
    "OfferTally",
    "abandon_rate",
    "answered_within_rings",
    "asterisk_service_level",
    "asterisk_service_level2",
    "average_handle_time",
    "average_speed_of_answer",
    "is_short_abandon",
    "occupancy",
    "ratio",
    "ring_service_level",
    "rings",
    "service_level",
    "tally_call",
    "tally_calls",
    "tally_offers",
    "within_rings",
]

ABANDONED = frozenset({Outcome.ABANDONED_WAITING, Outcome.ABANDONED_RINGING})
"""The outcomes that count as abandoned (while waiting, or while an agent rang)."""
MISSES = frozenset({OfferResult.NO_ANSWER, OfferResult.BUSY, OfferResult.UNAVAILABLE})
"""The offer results that are the agent's miss."""


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is zero (or less)."""
    if denominator <= 0:
        return None
    return numerator / denominator


def rings(ring_seconds: float, cadence: float) -> float:
    """How many rings ``ring_seconds`` of ringing is (``cadence`` seconds per ring)."""
    if cadence <= 0:
        raise ValueError(f"ring cadence must be positive, got {cadence}")
    return max(ring_seconds, 0.0) / cadence


def within_rings(ring_seconds: float, count: int, cadence: float) -> bool:
    """Ringing lasted at most ``count`` rings: ``ring_seconds <= count * cadence``."""
    return ring_seconds <= count * cadence


def answered_within_rings(
    result: OfferResult, ring_seconds: float, count: int, cadence: float
) -> bool:
    """An offer was answered within ``count`` rings; any other result is a miss."""
    return result is OfferResult.ANSWERED and within_rings(ring_seconds, count, cadence)


@dataclass(frozen=True, slots=True)
class OfferTally:
    """Counts of offers (rings) by what they mean for "answered within N rings"."""

    answered: int = 0
    answered_within: int = 0
    missed: int = 0
    cancelled: int = 0


def tally_offers(offers: Iterable[OfferEnded], count: int, cadence: float) -> OfferTally:
    """The tally of a set of ended offers, against ``count`` rings of ``cadence`` seconds."""
    answered = within = missed = cancelled = 0
    for offer in offers:
        if offer.result is OfferResult.ANSWERED:
            answered += 1
            within += within_rings(offer.ring_seconds, count, cadence)
        elif offer.result in MISSES:
            missed += 1
        else:
            cancelled += 1
    return OfferTally(answered, within, missed, cancelled)


def ring_service_level(tally: OfferTally) -> float | None:
    """Offers answered within N rings / (answered offers + misses)."""
    return ratio(tally.answered_within, tally.answered + tally.missed)


def is_short_abandon(outcome: Outcome, wait_seconds: float, short_abandon_threshold: float) -> bool:
    """The caller hung up after waiting at most the short-abandon threshold."""
    return outcome in ABANDONED and wait_seconds <= short_abandon_threshold


@dataclass(frozen=True, slots=True)
class CallTally:
    """Counts of calls by what they mean for the service level, and the answered calls' wait.

    ``abandoned`` includes the short abandons; ``answered_wait_seconds`` is the
    total wait of the answered calls (for ASA). Tallies add up with ``+``.
    """

    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_within: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    answered_wait_seconds: float = 0.0

    @property
    def calls(self) -> int:
        """Every call with a final outcome."""
        return self.answered + self.abandoned + self.overflowed

    def __add__(self, other: CallTally) -> CallTally:
        """Field by field sum."""
        return CallTally(
            answered=self.answered + other.answered,
            answered_within=self.answered_within + other.answered_within,
            abandoned=self.abandoned + other.abandoned,
            abandoned_within=self.abandoned_within + other.abandoned_within,
            short_abandoned=self.short_abandoned + other.short_abandoned,
            overflowed=self.overflowed + other.overflowed,
            answered_wait_seconds=self.answered_wait_seconds + other.answered_wait_seconds,
        )


def tally_call(
    outcome: Outcome,
    wait_seconds: float,
    service_level_threshold: float,
    short_abandon_threshold: float,
) -> CallTally:
    """The tally of one call with this final outcome and wait."""
    within = wait_seconds <= service_level_threshold
    if outcome is Outcome.ANSWERED:
        return CallTally(
            answered=1, answered_within=int(within), answered_wait_seconds=wait_seconds
        )
    if outcome in ABANDONED:
        short = is_short_abandon(outcome, wait_seconds, short_abandon_threshold)
        return CallTally(abandoned=1, abandoned_within=int(within), short_abandoned=int(short))
    return CallTally(overflowed=1)


def tally_calls(
    calls: Iterable[CallEnded], service_level_threshold: float, short_abandon_threshold: float
) -> CallTally:
    """The tally of a set of ended calls (filter them by queue and period first)."""
    total = CallTally()
    for call in calls:
        total += tally_call(
            call.outcome, call.wait_seconds, service_level_threshold, short_abandon_threshold
        )
    return total


def service_level(tally: CallTally) -> float | None:
    """Answered within threshold / (answered + abandoned after the short threshold + overflowed)."""
    return ratio(tally.answered_within, tally.calls - tally.short_abandoned)


def asterisk_service_level(tally: CallTally) -> float | None:
    """app_queue's ``SL``: answered within threshold / answered."""
    return ratio(tally.answered_within, tally.answered)


def asterisk_service_level2(tally: CallTally) -> float | None:
    """app_queue's ``SL2``: (abandoned + answered within threshold) / (abandoned + answered)."""
    return ratio(tally.abandoned_within + tally.answered_within, tally.abandoned + tally.answered)


def average_speed_of_answer(tally: CallTally) -> float | None:
    """ASA: the answered calls' average wait, in seconds."""
    return ratio(tally.answered_wait_seconds, tally.answered)


def abandon_rate(tally: CallTally) -> float | None:
    """Abandoned after the short-abandon threshold / (calls - short abandons)."""
    return ratio(tally.abandoned - tally.short_abandoned, tally.calls - tally.short_abandoned)


def average_handle_time(talk_seconds: float, wrap_up_seconds: float, answered: int) -> float | None:
    """AHT: (talk + wrap-up) / answered calls, in seconds."""
    return ratio(talk_seconds + wrap_up_seconds, answered)


def occupancy(
    talk_seconds: float, wrap_up_seconds: float, logged_in_seconds: float, paused_seconds: float
) -> float | None:
    """(talk + wrap-up) / (logged-in time - pause time)."""
    return ratio(talk_seconds + wrap_up_seconds, logged_in_seconds - paused_seconds)
