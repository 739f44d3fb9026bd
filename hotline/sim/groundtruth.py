"""Ground truth: what really happened in the simulated PBX, one JSON object per line.

Tests compare the service's figures against these records, so the format is
fixed. Every time is an epoch float equal to a ``Timestamp`` header the sim sent
(or, where no event marks the moment, the scenario-clock time of the action),
so comparisons can be exact.

Lines, in the order they are written:

* ``{"type": "start", "epoch", "time_scale", "seed", "scenario"}``;
* ``{"type": "call", ...}`` when an inbound call ends (its caller's ``;1``
  hung up, or was redirected out of ``hotline-inbound``): ``call_id`` (the
  caller ``;1`` Uniqueid), ``channel``, ``linkedid``, ``number``, ``queue``,
  ``priority``, ``skills``, ``lang`` (as last announced by
  ``HotlineCallWaiting``), ``arrived_at`` (the first ``HotlineCallWaiting``),
  ``rings`` (below), ``answered_at``, ``answered_by``, ``ended_at``,
  ``hung_up_by`` (``caller``, ``agent``, ``manager`` or ``redirect``),
  ``outcome`` (``answered``, ``abandoned``, ``redirected``, or ``open`` for a
  call still live at close), ``abandoned_while`` (``waiting``, ``ringing`` or
  null) and ``redirect_to`` (``context,exten,priority`` or null);
* each ring is ``{"agent", "leg_id", "action_id", "ticket", "requested_at",
  "ring_start", "ring_end", "outcome"}`` with ``outcome`` one of ``answered``,
  ``no_answer`` (Reason 3), ``busy`` (Reason 5), ``unavailable`` (another
  failure), ``cancelled`` (the caller left, or a manager ``Hangup`` ended the
  leg while the caller was there), or null if the call was still open;
* ``{"type": "callback", "ticket", "agent", "leg_id", "number", "requested_at",
  "ring_start", "ring_end", "agent_outcome", "customer_answered_at",
  "customer_outcome", "ended_at", "hung_up_by"}`` when a callback ends;
* ``{"type": "ring", "caller_channel", "call_id", ...ring fields}`` for an
  agent leg whose ``HOTLINE_CALLER`` had already gone when it was originated
  (``call_id`` is that call's id when known): it belongs to no call record;
* ``{"type": "end", "calls": N, "callbacks": M}`` last, at close.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["CallRecord", "CallbackRecord", "GroundTruth", "RingRecord"]


@dataclass(slots=True)
class RingRecord:
    """One agent leg offered to a caller."""

    agent: str
    leg_id: str | None
    action_id: str
    ticket: str
    requested_at: float
    ring_start: float | None = None
    ring_end: float | None = None
    outcome: str | None = None

    @property
    def resolved(self) -> bool:
        """Whether the ring's outcome is known."""
        return self.outcome is not None

    def resolve(self, outcome: str, at: float) -> None:
        """Set the outcome and end time, unless already set."""
        if self.outcome is None:
            self.outcome = outcome
            self.ring_end = at

    def to_json(self) -> dict[str, Any]:
        """The ring as written in a call record."""
        return {
            "agent": self.agent,
            "leg_id": self.leg_id,
            "action_id": self.action_id,
            "ticket": self.ticket,
            "requested_at": self.requested_at,
            "ring_start": self.ring_start,
            "ring_end": self.ring_end,
            "outcome": self.outcome,
        }


@dataclass(slots=True)
class CallRecord:
    """One inbound call, from its first ``HotlineCallWaiting`` to its end."""

    call_id: str
    channel: str
    linkedid: str
    number: str
    queue: str
    priority: int
    skills: list[str]
    lang: str | None
    arrived_at: float
    rings: list[RingRecord] = field(default_factory=list)
    answered_at: float | None = None
    answered_by: str | None = None
    ended_at: float | None = None
    hung_up_by: str | None = None
    outcome: str | None = None
    abandoned_while: str | None = None
    redirect_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``call`` line."""
        return {
            "type": "call",
            "call_id": self.call_id,
            "channel": self.channel,
            "linkedid": self.linkedid,
            "number": self.number,
            "queue": self.queue,
            "priority": self.priority,
            "skills": list(self.skills),
            "lang": self.lang,
            "arrived_at": self.arrived_at,
            "rings": [ring.to_json() for ring in self.rings],
            "answered_at": self.answered_at,
            "answered_by": self.answered_by,
            "ended_at": self.ended_at,
            "hung_up_by": self.hung_up_by,
            "outcome": self.outcome,
            "abandoned_while": self.abandoned_while,
            "redirect_to": self.redirect_to,
        }


@dataclass(slots=True)
class CallbackRecord:
    """One callback: the agent leg into ``hotline-outbound`` and the customer it dials."""

    ticket: str
    agent: str
    leg_id: str | None
    number: str
    requested_at: float
    ring_start: float | None = None
    ring_end: float | None = None
    agent_outcome: str | None = None
    customer_answered_at: float | None = None
    customer_outcome: str | None = None
    ended_at: float | None = None
    hung_up_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``callback`` line."""
        return {
            "type": "callback",
            "ticket": self.ticket,
            "agent": self.agent,
            "leg_id": self.leg_id,
            "number": self.number,
            "requested_at": self.requested_at,
            "ring_start": self.ring_start,
            "ring_end": self.ring_end,
            "agent_outcome": self.agent_outcome,
            "customer_answered_at": self.customer_answered_at,
            "customer_outcome": self.customer_outcome,
            "ended_at": self.ended_at,
            "hung_up_by": self.hung_up_by,
        }


class GroundTruth:
    """Writes ground-truth lines to a JSONL file and/or keeps them in memory."""

    def __init__(self, path: str | Path | None = None, *, keep: bool = True) -> None:
        """``path`` is optional; ``keep`` keeps every line in :attr:`records`."""
        self.path = Path(path) if path is not None else None
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        self.calls = 0
        self.callbacks = 0
        self._file: IO[str] | None = None

    def _write(self, record: dict[str, Any]) -> None:
        if self.keep:
            self.records.append(record)
        if self.path is not None:
            if self._file is None:
                self._file = self.path.open("w", encoding="utf-8", buffering=1)
            self._file.write(json.dumps(record) + "\n")

    def start(self, *, epoch: float, time_scale: float, seed: int, scenario: str) -> None:
        """The first line."""
        self._write(
            {
                "type": "start",
                "epoch": epoch,
                "time_scale": time_scale,
                "seed": seed,
                "scenario": scenario,
            }
        )

    def call(self, record: CallRecord) -> None:
        """An inbound call ended (or is still open at close)."""
        self.calls += 1
        self._write(record.to_json())

    def callback(self, record: CallbackRecord) -> None:
        """A callback ended (or is still open at close)."""
        self.callbacks += 1
        self._write(record.to_json())

    def orphan_ring(self, caller_channel: str, call_id: str | None, ring: RingRecord) -> None:
        """An agent leg for a caller that had already gone."""
        self._write(
            {"type": "ring", "caller_channel": caller_channel, "call_id": call_id, **ring.to_json()}
        )

    def end(self) -> None:
        """The last line; closes the file."""
        self._write({"type": "end", "calls": self.calls, "callbacks": self.callbacks})
        if self._file is not None:
            self._file.close()
            self._file = None
