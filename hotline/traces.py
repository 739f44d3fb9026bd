"""Reading the recorded Asterisk traces (JSON lines of ``{"t", "dir", "raw"}``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TraceEntry", "default_trace_dir", "load_trace", "recv_stream"]


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One recorded read or write: seconds since start, direction, exact text."""

    t: float
    dir: str
    raw: str


def default_trace_dir() -> Path:
    """``$HOTLINE_TRACE_DIR``, else the snapshot in ``tests/traces`` of a source checkout."""
    configured = os.environ.get("HOTLINE_TRACE_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "tests" / "traces"


def load_trace(path: str | Path) -> list[TraceEntry]:
    """Load a trace file; a bare name like ``queue_load`` is looked up in the default folder."""
    file = Path(path)
    if not file.exists() and not file.is_absolute():
        file = default_trace_dir() / (file.name if file.suffix else f"{file.name}.jsonl")
    entries = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                entries.append(TraceEntry(float(record["t"]), str(record["dir"]), record["raw"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{file}:{number}: not a trace record: {exc}") from exc
    return entries


def recv_stream(entries: list[TraceEntry]) -> bytes:
    """The exact bytes the client received: every ``recv`` entry, concatenated."""
    return "".join(entry.raw for entry in entries if entry.dir == "recv").encode("utf-8")
