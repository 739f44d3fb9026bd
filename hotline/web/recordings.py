"""Recording playback: ``GET /api/recordings/{id}/audio`` (and ``HEAD``).

Theory of operation
-------------------
A recording row (:mod:`hotline.store.recordings`) names the ``MixMonitor`` file
of one answered offer. The file is served only from the configured recordings
directory (``[tickets] monitor_dir``): the stored path must lie in it both as
written and once every symbolic link is resolved, so neither ``..`` nor a link
pointing out of the directory reads anything else (403, audited as
``recording.denied``). A row whose file is not on disk is a 404 JSON error.

Who may listen (checked before the file is touched, a refusal audited as
``recording.denied``): supervisors, admins and the integration token, any
recording (quality review, complaints); an agent, only the recordings of calls
they answered themselves (to hear their own calls back), never a colleague's.

HTTP ranges (RFC 9110 §14): ``Accept-Ranges: bytes``; one range
(``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) answers 206 with its
``Content-Range``; a range that starts past the end (or ``-0``) answers 416 with
``Content-Range: bytes */<size>``; no ``Range``, a malformed one or several
ranges answer 200 with the whole file (the RFC lets a server ignore them);
an ``If-Range`` that does not match the file's ``ETag`` or ``Last-Modified``
(the file grew: a call still being recorded) answers 200 with the whole file.
Answers are ``audio/wav`` and ``Cache-Control: private, no-store``.

The audit: one ``recording.play`` row (user, recording, ticket, call) per
playback, not per chunk: a player asks for the start of the file when it starts
playing (``Range: bytes=0-``, or no ``Range``) and for later ranges while it
buffers or seeks, so only a ``GET`` whose range starts at byte 0 is audited;
``HEAD`` reads nothing and is not.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web

from hotline.store.audit import AuditLog
from hotline.store.recordings import Recording, Recordings
from hotline.web.auth import Principal, principal_of, store_of
from hotline.web.errors import json_error
from hotline.web.keys import SETTINGS
from hotline.web.openapi import Api, Input
from hotline.web.schema import Integer

__all__ = ["AUDIO_TYPE", "CHUNK", "ByteRange", "api", "audio_url", "may_play", "parse_range"]

api = Api()
log = structlog.get_logger("hotline.web.recordings")

AUDIO_TYPE: Final = "audio/wav"
CHUNK: Final = 64 * 1024
"""Bytes read from the file per write to the client."""
LISTENING_ROLES: Final = frozenset({"supervisor", "admin", "integration"})
"""Roles that may play any recording."""
_PATH: Final = "/api/recordings/{id}/audio"
_ID: Final = {"id": Integer(minimum=1, maximum=2**63 - 1)}
_SPEC: Final = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


def audio_url(recording_id: int) -> str:
    """Where a recording is played from."""
    return _PATH.replace("{id}", str(recording_id))


def may_play(principal: Principal, recording: Recording) -> bool:
    """Supervisors, admins and the integration token: any; an agent: their own calls'."""
    if principal.role in LISTENING_ROLES:
        return True
    return principal.agent_id is not None and recording.agent_id == principal.agent_id


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """How many bytes."""
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The range asks for no byte of the file (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range ``header`` asks of a file of ``size`` bytes; ``None`` for the
    whole file (no header, a malformed one, another unit, several ranges). Raises
    :class:`Unsatisfiable` when the range starts past the end."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.fullmatch(spec)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or path.is_relative_to(directory)


def _file_of(monitor_dir: str, stored: str) -> Path:
    """The stored path, checked to be in ``monitor_dir`` as written and resolved: 403 when
    outside, 404 when not on disk."""
    written = Path(os.path.abspath(monitor_dir))
    root = written.resolve()
    candidate = Path(stored) if os.path.isabs(stored) else written / stored
    lexical = Path(os.path.normpath(candidate))
    if not (_inside(lexical, written) or _inside(lexical, root)):
        raise _Outside
    try:
        real = lexical.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise json_error(
            404, "not found", message="the recording's file is not in the recordings directory"
        ) from exc
    if not _inside(real, root):
        raise _Outside
    return real


class _Outside(Exception):
    """The recording's path leads out of the recordings directory."""


def _open(path: Path) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file ``path`` (no symbolic link followed) and its
    status; 404 when it is gone or not a file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise json_error(
            404, "not found", message="the recording's file is not in the recordings directory"
        ) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise json_error(404, "not found", message="the recording's file is not a file")
    return fd, info


def _validators(info: os.stat_result) -> tuple[str, str]:
    """The file's strong ``ETag`` and its ``Last-Modified``."""
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}"', formatdate(info.st_mtime, usegmt=True)


def _chosen_range(request: web.Request, info: os.stat_result) -> ByteRange | None:
    """The range to send (``None``: the whole file); 416 when unsatisfiable."""
    header = request.headers.get("Range")
    condition = request.headers.get("If-Range")
    stale = condition is not None and condition.strip() not in _validators(info)
    if header is not None and stale:
        return None  # the file changed since the client's first part: all of it
    try:
        return parse_range(header, info.st_size)
    except Unsatisfiable as exc:
        raise web.HTTPRequestRangeNotSatisfiable(
            text='{"error": "range not satisfiable", '
            f'"message": "the file has {info.st_size} bytes"}}',
            content_type="application/json",
            headers={"Content-Range": f"bytes */{info.st_size}", "Accept-Ranges": "bytes"},
        ) from exc


async def _refuse(
    request: web.Request, principal: Principal, recording: Recording, why: str
) -> None:
    await AuditLog(store_of(request).pool).write(
        principal.name,
        "recording.denied",
        "recording",
        str(recording.id),
        {"ticket": recording.ticket_number, "call_id": recording.call_id, "why": why},
    )


async def _audit_play(
    request: web.Request, principal: Principal, recording: Recording, chosen: ByteRange | None
) -> None:
    await AuditLog(store_of(request).pool).write(
        principal.name,
        "recording.play",
        "recording",
        str(recording.id),
        {
            "ticket": recording.ticket_number,
            "call_id": recording.call_id,
            "agent_id": recording.agent_id,
            "range": request.headers.get("Range") if chosen is not None else None,
        },
    )


async def _checked(request: web.Request, recording_id: int) -> tuple[Principal, Recording, Path]:
    """The principal, the recording and its file, or the refusal (403, 404)."""
    principal = principal_of(request)
    recording = await Recordings(store_of(request).pool).by_id(recording_id)  # 404
    if not may_play(principal, recording):
        await _refuse(request, principal, recording, "role")
        raise json_error(
            403, "forbidden", message="you may play only the recordings of your own calls"
        )
    try:
        path = _file_of(request.app[SETTINGS].tickets.monitor_dir, recording.path)
    except _Outside as exc:
        await _refuse(request, principal, recording, "outside the recordings directory")
        raise json_error(
            403, "forbidden", message="the recording's file is outside the recordings directory"
        ) from exc
    return principal, recording, path


async def _send(response: web.StreamResponse, fd: int, start: int, length: int) -> None:
    """Write ``length`` bytes of ``fd`` from ``start``, a chunk at a time."""
    sent = 0
    while sent < length:
        data = await asyncio.to_thread(os.pread, fd, min(CHUNK, length - sent), start + sent)
        if not data:  # the file shrank meanwhile: the client sees a short body
            break
        await response.write(data)
        sent += len(data)


@api.operation(
    "GET",
    _PATH,
    summary="Play a recording (audio/wav, HTTP ranges; supervisors any, agents their own "
    "calls'; audited)",
    description=(
        "The recording's WAV file from the configured recordings directory. Send "
        "`Range: bytes=a-b` (or `a-`, `-n`) for part of it: 206 with `Content-Range`; "
        "a range past the end is 416. HEAD answers the headers only. Supervisors, admins "
        "and the integration token may play any recording, an agent only those of calls "
        "they answered (403 otherwise, audited as recording.denied). Each playback is "
        "audited once (recording.play): a GET without a Range or with one starting at "
        "byte 0; the later ranges of the same playback are not. A file missing from disk "
        "is 404; a path outside the recordings directory is 403."
    ),
    tag="tickets",
    path_params=_ID,
    other_media={AUDIO_TYPE: {"type": "string", "format": "binary"}},
    also={206: "part of the file: the one range asked for, with its Content-Range"},
    errors=(416,),
)
async def recording_audio(request: web.Request, given: Input) -> web.StreamResponse:
    """The recording's file, whole or one range of it (see the module docstring)."""
    principal, recording, path = await _checked(request, given.path["id"])
    fd, info = _open(path)
    try:
        chosen = _chosen_range(request, info)
        etag, modified = _validators(info)
        response = web.StreamResponse(status=200 if chosen is None else 206)
        response.content_type = AUDIO_TYPE
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["ETag"] = etag
        response.headers["Last-Modified"] = modified
        start, length = (0, info.st_size) if chosen is None else (chosen.start, chosen.length)
        if chosen is not None:
            response.headers["Content-Range"] = f"bytes {chosen.start}-{chosen.end}/{info.st_size}"
        response.content_length = length
        if request.method == "GET" and start == 0:
            await _audit_play(request, principal, recording, chosen)
        await response.prepare(request)
        try:
            if request.method == "GET":
                await _send(response, fd, start, length)
            await response.write_eof()
        except ConnectionError:  # the player went away (it often drops a request to seek)
            log.debug("web.recording_client_gone", recording=recording.id)
        return response
    finally:
        os.close(fd)


async def _head(request: web.Request) -> web.StreamResponse:
    """``HEAD``: the same checks and headers as ``GET``, no body (not audited)."""
    return await recording_audio(request, await api.operations[0].parse(request))


api.routes.route("HEAD", _PATH, name="recording_audio_head")(_head)
