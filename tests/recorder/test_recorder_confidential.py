"""Confidential segments and closed segments (phiên kín): encrypted from the first byte (issue #11 item 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from evidence import Keyring
from recorder import RecorderOptions
from recorder.recorder import Recorder
from tests.fakes.media import opus_clip, vp8_clip
from tests.recorder._checks import MATROSKA_MAGIC, decode, decrypted
from tests.recorder._sources import Calls, MediaClock, SyntheticVenue, feed, while_feeding


@pytest.fixture
async def recorder(tmp_path: Path, keyring: Keyring, calls: Calls, clock: MediaClock) -> AsyncIterator[Recorder]:
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024, encrypt_chunk_bytes=16384), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic)
    await rec.start()
    yield rec
    await rec.close()
    assert [a for a in calls.alarms if a.active] == []


def assert_opaque(path: Path, frames: tuple[bytes, ...]) -> None:
    """No Matroska magic, no frame's bytes, nothing a demuxer could open."""
    raw = path.read_bytes()
    assert len(raw) > 1000, f"{path} holds too little to judge"
    assert MATROSKA_MAGIC not in raw
    for frame in frames:
        assert frame[16:48] not in raw
    with pytest.raises(av.FFmpegError):
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                pass


@pytest.mark.media
async def test_confidential_segment_is_never_plaintext_on_disk(
        recorder: Recorder, calls: Calls, clock: MediaClock, keyring: Keyring, tmp_path: Path) -> None:
    video = vp8_clip(colour="red", seconds=2.0)
    audio = opus_clip(seconds=2.0)
    a = SyntheticVenue("room1", "tien-du", video, audio, clock=clock)
    await recorder.open_session("s1", {"tien-du": "Tiên Du"})
    await recorder.add_publication("s1", "tien-du", a.video_pub)  # type: ignore[arg-type]
    await recorder.add_publication("s1", "tien-du", a.audio_pub)  # type: ignore[arg-type]
    await feed([a], 1.0, sync=lambda: recorder.flush("s1"))
    await while_feeding(recorder.open_segment("s1", "c1-denounce", "case9", confidential=True), [a])
    start = a.next_time
    await feed([a], start + 2.0, sync=lambda: recorder.flush("s1"))
    await recorder.flush("s1")
    session_dir = tmp_path / "rec" / "s1"
    open_files = sorted((session_dir / "media" / "c1-denounce").iterdir())
    assert [p.name for p in open_files] == ["tien-du-1.webm.enc"]
    assert_opaque(open_files[0], video.frames + audio.frames)  # after 2 s of recording, still open
    await feed([a], start + 6.0, sync=lambda: recorder.flush("s1"))
    report = await while_feeding(recorder.close_segment("s1", "c1-denounce"), [a])
    assert report is not None and report.confidential
    (f,) = report.files
    assert f.encrypted and f.kid == keyring.active_data.kid and f.path.endswith(".webm.enc")
    path = session_dir / f.path
    assert_opaque(path, video.frames + audio.frames)
    d = decode(decrypted(path, session_dir, keyring))
    assert d.errors == 0 and d.first["video"] < 0.1 and d.length > 5.5  # audio from the cut, video from its keyframe
    assert abs(d.end("video") - d.end("audio")) < 0.1
    # the stretch before the case stays plaintext
    (before,) = [r for r, _ in calls.closed if r.segment == "b1"]
    assert not before.confidential and before.files and not any(f.encrypted for f in before.files)
    await a.close()


@pytest.mark.media
async def test_closed_segment_encrypts_from_its_start_to_its_end(
        recorder: Recorder, calls: Calls, clock: MediaClock, keyring: Keyring, tmp_path: Path) -> None:
    a = SyntheticVenue("room1", "tien-du", vp8_clip(colour="red"), opus_clip(), clock=clock)
    b = SyntheticVenue("room1", "que-vo", vp8_clip(colour="blue"), opus_clip(), clock=clock)
    await recorder.open_session("s2", {})
    for v in (a, b):
        await recorder.add_publication("s2", v.name, v.video_pub)  # type: ignore[arg-type]
        await recorder.add_publication("s2", v.name, v.audio_pub)  # type: ignore[arg-type]
    await while_feeding(recorder.open_segment("s2", "c1-x", "x", confidential=False), [a, b])
    await feed([a, b], a.next_time + 2.0, sync=lambda: recorder.flush("s2"))
    closed_from = clock.now - clock.base
    recorder.set_closed_segment("s2", True)
    await while_feeding(recorder.flush("s2"), [a, b])
    await feed([a, b], a.next_time + 3.0, sync=lambda: recorder.flush("s2"))
    closed_to = clock.now - clock.base
    recorder.set_closed_segment("s2", False)
    await while_feeding(recorder.flush("s2"), [a, b])
    await feed([a, b], a.next_time + 2.0, sync=lambda: recorder.flush("s2"))
    report = await while_feeding(recorder.close_segment("s2", "c1-x"), [a, b])
    assert report is not None and report.confidential
    session_dir = tmp_path / "rec" / "s2"
    for venue in ("tien-du", "que-vo"):
        files = [f for f in report.files if f.venue == venue]
        assert [f.encrypted for f in files] == [False, True, False], files
        plain1, secret, plain2 = files
        # the plaintext part before ends at the cut; the encrypted part covers the whole closed stretch
        assert plain1.t0 + plain1.duration <= closed_from + 0.05
        assert secret.t0 <= closed_from + 0.05 and secret.t0 + secret.duration >= closed_to - 0.1
        assert_opaque(session_dir / secret.path, ())
        for f in files:
            data = decrypted(session_dir / f.path, session_dir, keyring) if f.encrypted else None
            d = decode(data if data is not None else session_dir / f.path)
            assert d.errors == 0 and d.frames["video"] > 10
    await a.close()
    await b.close()


@pytest.mark.media
async def test_encrypt_all_keeps_every_file_opaque_and_only_sealed_segments_confidential(
        tmp_path: Path, keyring: Keyring, calls: Calls, clock: MediaClock) -> None:
    """The product's setting (TIEPDAN_RECORDING_ENCRYPT_ALL): nothing in clear, whatever the room knows; a
    segment is still confidential only when it was sealed (a closed segment ran, or the caller said so)."""
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024, encrypt_chunk_bytes=16384,
                                   encrypt_all=True), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic)
    await rec.start()
    video = vp8_clip(colour="green", seconds=2.0)
    audio = opus_clip(seconds=2.0)
    a = SyntheticVenue("room1", "tien-du", video, audio, clock=clock)
    try:
        await rec.open_session("s3", {"tien-du": "Tiên Du"})
        await rec.add_publication("s3", "tien-du", a.video_pub)  # type: ignore[arg-type]
        await rec.add_publication("s3", "tien-du", a.audio_pub)  # type: ignore[arg-type]
        await while_feeding(rec.open_segment("s3", "c1-open", "case1", confidential=False), [a])
        await feed([a], a.next_time + 2.0, sync=lambda: rec.flush("s3"))
        ordinary = await while_feeding(rec.close_segment("s3", "c1-open"), [a])
        await while_feeding(rec.open_segment("s3", "c2-sealed", "case2", confidential=False), [a])
        rec.set_closed_segment("s3", True)
        await while_feeding(rec.flush("s3"), [a])
        await feed([a], a.next_time + 2.0, sync=lambda: rec.flush("s3"))
        sealed = await while_feeding(rec.close_segment("s3", "c2-sealed"), [a])
    finally:
        await a.close()
        await rec.close()
    assert ordinary is not None and sealed is not None
    assert not ordinary.confidential and sealed.confidential
    session_dir = tmp_path / "rec" / "s3"
    for report in (ordinary, sealed):
        assert report.files and all(f.encrypted and f.path.endswith(".enc") for f in report.files)
        frames = 0
        for f in report.files:
            path = session_dir / f.path
            assert MATROSKA_MAGIC not in path.read_bytes()
            if path.stat().st_size > 1000:  # the part cut at the closed segment's start may hold a frame or two
                assert_opaque(path, video.frames + audio.frames)
            d = decode(decrypted(path, session_dir, keyring))
            assert d.errors == 0
            frames += d.frames.get("video", 0)
        assert frames > 10
    assert [a for a in calls.alarms if a.active] == []
