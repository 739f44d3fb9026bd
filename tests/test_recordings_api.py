"""Recording playback over HTTP: ranges byte-exact on a real WAV, who may listen, the
recordings directory as a boundary, and one audit row per playback."""

from __future__ import annotations

import math
import os
import struct
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hotline.domain.effects import CallArrived
from hotline.store.audit import AuditLog
from hotline.web.keys import STORE
from hotline.web.recordings import ByteRange, Unsatisfiable, parse_range
from tests.api_support import RunningApi, running_api

pytestmark = pytest.mark.integration

CALL_ID = "1772442000.1"


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A mono 16-bit tone of ``seconds`` (as MixMonitor writes, 8 kHz); its bytes."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path.read_bytes()


async def add_recording(api: RunningApi, path: str, *, agent_id: str = "1001") -> dict[str, Any]:
    """A ticket of queue support with a call and a recording at ``path``; the ticket's
    recordings listing (as the integration token) of that recording."""
    created = await api.bearer("POST", "/api/tickets", json={"queue": "support"})
    number = (await created.json())["number"]
    store = api.server.app[STORE]
    call_id = f"{CALL_ID}{number[-4:]}"
    at = datetime.now(UTC).timestamp()
    store.recorder(CallArrived(call_id, number, "13900139000", "support", 0, at, "pbx"))
    assert await store.outbox.flush(10)
    await api.pool.execute(
        "insert into recordings (path, ticket_id, call_id, offer_id, agent_id, started_at) "
        "select $2, id, $3, 'hl-1', $4, now() from tickets where number = $1",
        number,
        path,
        call_id,
        agent_id,
    )
    listed = await (await api.bearer("GET", f"/api/tickets/{number}/recordings")).json()
    (recording,) = [item for item in listed if item["path"] == path]
    return {**recording, "ticket": number}


async def _plays(api: RunningApi, recording_id: int) -> list[Any]:
    return await AuditLog(api.pool).find(
        object_type="recording", object_id=str(recording_id), action="recording.play"
    )


def test_parse_range_follows_rfc_9110() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == ByteRange(0, 9, 100)
    assert parse_range("bytes=90-", 100) == ByteRange(90, 99, 100)
    assert parse_range("bytes=90-1000", 100) == ByteRange(90, 99, 100)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 99, 100)
    assert parse_range("bytes=-1000", 100) == ByteRange(0, 99, 100)
    assert parse_range("BYTES = 5 - 5", 100) == ByteRange(5, 5, 100)
    for ignored in ("bytes=0-1,5-6", "items=0-1", "bytes=9-1", "bytes=-", "bytes=x-1", "0-1"):
        assert parse_range(ignored, 100) is None, ignored
    for unsatisfiable in ("bytes=100-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(unsatisfiable, 100)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-5", 0)


async def test_ranges_are_byte_exact_and_each_playback_is_audited_once(
    migrated_database_url: str, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    async with running_api(
        migrated_database_url, tmp_path, tickets={"monitor_dir": str(monitor)}
    ) as api:
        content = write_wav(monitor / "x.wav")
        size = len(content)
        recording = await add_recording(api, str(monitor / "x.wav"))
        assert recording["playable"] is True
        url = recording["audio_url"]
        assert url == f"/api/recordings/{recording['id']}/audio"
        sam = await api.sign_in("sam")

        whole = await sam.call("GET", url)
        assert whole.status == 200
        assert whole.headers["Content-Type"] == "audio/wav"
        assert whole.headers["Accept-Ranges"] == "bytes"
        assert whole.headers["Cache-Control"] == "private, no-store"
        assert "Content-Range" not in whole.headers
        assert int(whole.headers["Content-Length"]) == size
        assert await whole.read() == content
        assert len(await _plays(api, recording["id"])) == 1

        first = await sam.call("GET", url, headers={"Range": "bytes=0-99"})
        assert first.status == 206
        assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
        assert int(first.headers["Content-Length"]) == 100
        assert await first.read() == content[:100]
        assert len(await _plays(api, recording["id"])) == 2  # a new playback starts at 0

        for header, part, expected in (
            ("bytes=100-299", content[100:300], f"bytes 100-299/{size}"),
            ("bytes=1000-", content[1000:], f"bytes 1000-{size - 1}/{size}"),
            ("bytes=-44", content[-44:], f"bytes {size - 44}-{size - 1}/{size}"),
            (f"bytes={size - 1}-{size + 500}", content[-1:], f"bytes {size - 1}-{size - 1}/{size}"),
        ):
            answer = await sam.call("GET", url, headers={"Range": header})
            assert answer.status == 206, header
            assert answer.headers["Content-Range"] == expected
            assert await answer.read() == part, header
        assert len(await _plays(api, recording["id"])) == 2  # continuations: not audited

        past = await sam.call("GET", url, headers={"Range": f"bytes={size}-"})
        assert past.status == 416
        assert past.headers["Content-Range"] == f"bytes */{size}"
        assert (await past.json())["error"] == "range not satisfiable"

        several = await sam.call("GET", url, headers={"Range": "bytes=0-1,4-5"})
        assert several.status == 200  # several ranges: the whole file
        assert await several.read() == content

        etag = whole.headers["ETag"]
        same = await sam.call("GET", url, headers={"Range": "bytes=10-19", "If-Range": etag})
        assert (same.status, await same.read()) == (206, content[10:20])
        stale = await sam.call("GET", url, headers={"Range": "bytes=10-19", "If-Range": '"x"'})
        assert (stale.status, await stale.read()) == (200, content)

        head = await sam.call("HEAD", url, headers={"Range": "bytes=0-9"})
        assert head.status == 206
        assert head.headers["Content-Range"] == f"bytes 0-9/{size}"
        assert head.headers["Content-Type"] == "audio/wav"
        assert await head.read() == b""
        plays = await _plays(api, recording["id"])
        assert len(plays) == 4  # whole, 0-99, several (0-: the whole), the stale If-Range
        assert {entry.actor for entry in plays} == {"sam"}
        latest = plays[0]
        assert latest.detail["ticket"] == recording["ticket"]
        assert latest.detail["call_id"] == recording["call_id"]


async def test_who_may_listen_and_the_directory_boundary(
    migrated_database_url: str, tmp_path: Path
) -> None:
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    secret = tmp_path / "secret.wav"
    write_wav(secret, seconds=0.1)
    os.symlink(secret, monitor / "link.wav")
    async with running_api(
        migrated_database_url, tmp_path, tickets={"monitor_dir": str(monitor)}
    ) as api:
        write_wav(monitor / "mine.wav", seconds=0.1)
        mine = await add_recording(api, str(monitor / "mine.wav"), agent_id="1001")
        theirs = await add_recording(api, str(monitor / "mine.wav.2"), agent_id="1002")
        (monitor / "mine.wav.2").write_bytes((monitor / "mine.wav").read_bytes())
        alice = await api.sign_in("alice")  # agent 1001
        bob = await api.sign_in("bob")  # agent 1002, queue sales
        root = await api.sign_in("root")

        assert (await alice.call("GET", mine["audio_url"])).status == 200  # her own call
        refused = await alice.call("GET", theirs["audio_url"])
        assert refused.status == 403
        assert "own calls" in (await refused.json())["message"]
        assert (await bob.call("GET", mine["audio_url"])).status == 403
        assert (await bob.call("HEAD", mine["audio_url"])).status == 403
        assert (await root.call("GET", theirs["audio_url"])).status == 200
        assert (await api.bearer("GET", theirs["audio_url"])).status == 200
        listed = await (
            await alice.call("GET", f"/api/tickets/{theirs['ticket']}/recordings")
        ).json()
        assert [item["playable"] for item in listed] == [False]
        denied = await AuditLog(api.pool).find(action="recording.denied")
        assert {(entry.actor, entry.object_id) for entry in denied} == {
            ("alice", str(theirs["id"])),
            ("bob", str(mine["id"])),
        }

        # Out of the directory: by "..", by an absolute path elsewhere, by a symbolic link.
        for path in (f"{monitor}/../secret.wav", str(secret), str(monitor / "link.wav")):
            outside = await add_recording(api, path)
            answer = await root.call("GET", outside["audio_url"])
            assert answer.status == 403, path
            body = await answer.json()
            assert body["message"] == "the recording's file is outside the recordings directory"
            assert await _plays(api, outside["id"]) == []

        missing = await add_recording(api, str(monitor / "gone.wav"))
        answer = await root.call("GET", missing["audio_url"])
        assert answer.status == 404
        assert answer.content_type == "application/json"
        assert "not in the recordings directory" in (await answer.json())["message"]
        unknown = await root.call("GET", "/api/recordings/999999/audio")
        assert unknown.status == 404
        assert (await unknown.json())["error"] == "not found"
