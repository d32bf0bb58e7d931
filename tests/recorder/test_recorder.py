"""The recording engine: per-venue files from sfu taps, segments, timeline, bad input (issue #11 items 1-2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from evidence import Keyring
from recorder import RecorderOptions
from recorder.clock import TrackClock
from recorder.manifest import list_segments, load_segment
from recorder.model import SegmentReport
from recorder.recorder import Recorder
from tests.fakes.media import h264_clip, opus_clip, vp8_clip
from tests.recorder._checks import decode, ffprobe
from tests.recorder._sources import Calls, MediaClock, SyntheticVenue, feed, while_feeding


@pytest.fixture
async def recorder(tmp_path: Path, keyring: Keyring, calls: Calls, clock: MediaClock) -> AsyncIterator[Recorder]:
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic)
    await rec.start()
    yield rec
    await rec.close()
    assert [a for a in calls.alarms if a.active] == []


def venue(clock: MediaClock, name: str, colour: str = "grey", **kw: Any) -> SyntheticVenue:
    return SyntheticVenue("room1", name, kw.get("video", vp8_clip(colour=colour, seconds=2.0)),
                          kw.get("audio", opus_clip(seconds=2.0)), clock=clock)


async def add(recorder: Recorder, session: str, *venues: SyntheticVenue) -> None:
    for v in venues:
        if v.video_pub is not None:
            await recorder.add_publication(session, v.name, v.video_pub)
        if v.audio_pub is not None:
            await recorder.add_publication(session, v.name, v.audio_pub)


def files_of(report: SegmentReport, venue: str) -> list[Any]:
    return [f for f in report.files if f.venue == venue]


@pytest.mark.media
async def test_case_segment_files_decode_and_line_up_on_the_session_clock(
        recorder: Recorder, clock: MediaClock, calls: Calls, keyring: Keyring, tmp_path: Path) -> None:
    a, b = venue(clock, "tien-du", "red"), venue(clock, "que-vo", "blue")
    await recorder.open_session("s1", {"tien-du": "Tiên Du", "que-vo": "Quế Võ"})
    await add(recorder, "s1", a, b)
    await feed([a, b], 1.0, sync=lambda: recorder.flush("s1"))
    await while_feeding(recorder.open_segment("s1", "c1-case7", "case7", confidential=False), [a, b])
    recorder.speaker_changed("s1", "tien-du")
    await feed([a, b], 6.0, sync=lambda: recorder.flush("s1"))
    recorder.speaker_changed("s1", "que-vo")
    await feed([a, b], 11.0, sync=lambda: recorder.flush("s1"))
    report = await while_feeding(recorder.close_segment("s1", "c1-case7"), [a, b])
    assert report is not None and report.case == "case7" and not report.confidential
    assert [r.segment for r, _ in calls.closed] == ["b1", "c1-case7"]
    assert {f.venue for f in report.files} == {"tien-du", "que-vo"}
    session_dir = tmp_path / "rec" / "s1"
    ends: dict[str, float] = {}
    for f in report.files:
        assert f.path.startswith("media/c1-case7/") and f.path.endswith(".webm") and not f.encrypted
        assert f.kinds == ("video", "audio") and f.codecs == ("vp8", "opus")
        probe = ffprobe(session_dir / f.path)
        assert [s["codec_name"] for s in probe["streams"]] == ["vp8", "opus"]
        d = decode(session_dir / f.path)
        assert d.errors == 0 and d.frames["video"] > 50 and d.frames["audio"] > 200
        assert abs(d.end("video") - d.end("audio")) < 0.1, d  # A/V of one venue end together
        assert d.first["video"] == 0.0  # the file starts on a keyframe
        assert 9.5 < d.length < 11.0 and abs(f.duration - d.length) < 0.15
        ends[f.venue] = f.t0 + d.end("audio")
    starts = [f.t0 for f in report.files]
    assert abs(starts[0] - starts[1]) < 0.1 and abs(ends["tien-du"] - ends["que-vo"]) < 0.1
    assert report.media_t0 == min(starts) and report.media_t1 >= max(ends.values()) - 0.1
    assert [s.venue for s in report.speakers] == [None, "tien-du", "que-vo"]
    assert report.speakers[1].end == report.speakers[2].start
    assert report.venue_names["tien-du"] == "Tiên Du" and report.gaps == ()
    loaded = load_segment(session_dir, "c1-case7", keyring)
    assert loaded.files == report.files
    # idempotent close; close without open
    assert await recorder.close_segment("s1", "c1-case7") is None
    assert await recorder.close_segment("s1", "c9-unknown") is None
    assert len(calls.closed) == 2
    ref = await recorder.close_session("s1")
    assert ref is not None and await recorder.close_session("s1") is None
    assert [r.segment for _, r in list_segments(session_dir)][:2] == ["b1", "c1-case7"]
    await a.close()
    await b.close()


@pytest.mark.media
async def test_silent_publisher_is_a_gap_not_a_stretch(recorder: Recorder, clock: MediaClock, tmp_path: Path) -> None:
    a = venue(clock, "tien-du")
    await recorder.open_session("s2", {"tien-du": "Tiên Du"})
    await add(recorder, "s2", a)
    await while_feeding(recorder.open_segment("s2", "c1-x", "x", confidential=False), [a])
    await feed([a], 3.0, sync=lambda: recorder.flush("s2"))
    a.skip(20.0)  # silent for 20 s
    a.video_pub.request_keyframe("test")  # type: ignore[union-attr]
    await feed([a], 26.0, sync=lambda: recorder.flush("s2"))
    report = await while_feeding(recorder.close_segment("s2", "c1-x"), [a])
    assert report is not None
    gaps = [g for g in report.gaps if g.venue == "tien-du"]
    assert len(gaps) == 1 and gaps[0].reason == "link_lost"
    assert 19.5 < gaps[0].end - gaps[0].start < 20.5  # type: ignore[operator]
    (f,) = report.files
    d = decode(tmp_path / "rec" / "s2" / f.path)
    assert d.errors == 0
    # the timestamps jump over the silence: about 6 s of frames spread over 26 s of file time
    assert 25.0 < d.length < 26.5 and d.frames["audio"] < 6.5 * 50


@pytest.mark.media
async def test_resolution_change_starts_a_new_playable_part(
        recorder: Recorder, clock: MediaClock, tmp_path: Path) -> None:
    a = venue(clock, "tien-du")
    await recorder.open_session("s3", {})
    await add(recorder, "s3", a)
    await while_feeding(recorder.open_segment("s3", "c1-x", "x", confidential=False), [a])
    await feed([a], 3.0, sync=lambda: recorder.flush("s3"))
    big = vp8_clip(width=640, height=360, colour="green", seconds=1.0)
    a._restart = True  # the encoder restarts at the new size with a keyframe
    await feed([a], 6.0, sync=lambda: recorder.flush("s3"), video={"tien-du": big})
    report = await while_feeding(recorder.close_segment("s3", "c1-x"), [a], video={"tien-du": big})
    assert report is not None and len(report.files) == 2
    sizes = []
    for f in report.files:
        d = decode(tmp_path / "rec" / "s3" / f.path)
        assert d.errors == 0
        sizes.extend(d.sizes)
    assert sizes == [(320, 180), (640, 360)]
    first, second = report.files
    assert abs(first.t0 + first.duration - second.t0) < 0.15


@pytest.mark.media
async def test_h264_goes_into_matroska_with_avcc(recorder: Recorder, clock: MediaClock, tmp_path: Path) -> None:
    # a clip longer than the test, so the source never loops (a looped H.264 stream has frame_num gaps)
    a = SyntheticVenue("room1", "tien-du", h264_clip(seconds=6.0), opus_clip(seconds=2.0), clock=clock)
    await recorder.open_session("s4", {})
    await add(recorder, "s4", a)
    await while_feeding(recorder.open_segment("s4", "c1-x", "x", confidential=False), [a])
    await feed([a], 4.0, sync=lambda: recorder.flush("s4"))
    report = await while_feeding(recorder.close_segment("s4", "c1-x"), [a])
    assert report is not None
    (f,) = report.files
    assert f.path.endswith(".mkv") and f.codecs == ("h264", "opus")
    probe = ffprobe(tmp_path / "rec" / "s4" / f.path)
    video = probe["streams"][0]
    assert video["codec_name"] == "h264" and video["is_avc"] == "true" and video["width"] == 320
    d = decode(tmp_path / "rec" / "s4" / f.path)
    assert d.errors == 0 and d.frames["video"] >= 55 and d.first["video"] < 0.02


@pytest.mark.media
async def test_case_closed_before_any_keyframe_reports_no_file(
        recorder: Recorder, clock: MediaClock, calls: Calls) -> None:
    await recorder.open_session("s5", {})
    await recorder.open_segment("s5", "c1-x", "x", confidential=False)
    report = await recorder.close_segment("s5", "c1-x")
    assert report is not None and report.files == () and report.case == "x"
    assert [r.segment for r, _ in calls.closed] == ["c1-x"]  # empty between-case stretches are not reported
    assert await recorder.close_segment("s5", "c1-x") is None


@pytest.mark.unit
async def test_bad_ids_are_refused_and_unknown_sessions_are_harmless(recorder: Recorder, clock: MediaClock) -> None:
    for bad in ("", "../x", "a/b", "x" * 81, "sp ace", "ngày"):
        with pytest.raises(ValueError):
            await recorder.open_session(bad, {})
    await recorder.open_session("s6", {})
    with pytest.raises(ValueError):
        await recorder.open_session("s6", {"../etc": "x"})
    with pytest.raises(ValueError):
        await recorder.open_segment("s6", "c1/../../x", "x", confidential=False)
    assert await recorder.close_segment("nope", "c1") is None
    assert await recorder.close_session("nope") is None
    recorder.speaker_changed("nope", "x")
    recorder.link_changed("nope", "x", True)
    recorder.set_closed_segment("nope", True)
    status = recorder.status()
    assert status.recording and status.alarms == () and status.free_bytes is not None


@pytest.mark.unit
def test_track_clock_maps_timestamps_and_sees_silences() -> None:
    clock = TrackClock(48000, epoch_monotonic=100.0)
    assert clock.map(0, 101.0).t == 1.0
    assert clock.map(960, 101.5).t == pytest.approx(1.02)  # jitter does not stretch
    late = clock.map(960 + 48000 * 5, 106.03)  # 5 s of timestamps skipped: a gap
    assert late.t == pytest.approx(6.02) and late.gap == pytest.approx((1.02, 6.02))
    muted = clock.map(960 + 48000 * 5 + 960, 116.0)  # silence with frozen timestamps: re-anchored
    assert muted.t == pytest.approx(16.0) and muted.gap is not None and clock.resyncs == 1
    back = clock.map(0, 116.02)  # timestamps went backwards (publisher restarted)
    assert back.t > muted.t


@pytest.mark.media
async def test_recorder_after_close_refuses_nothing_and_records_nothing(
        tmp_path: Path, keyring: Keyring, calls: Calls) -> None:
    rec = Recorder(RecorderOptions(root=tmp_path / "r", min_free_bytes=1024), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm)
    await rec.start()
    await rec.open_session("s7", {})
    await rec.close()
    await rec.close()
    await rec.open_session("s7", {})
    assert rec.status().recording is False
    assert await rec.close_segment("s7", "c1") is None
    await asyncio.sleep(0)


@pytest.mark.media
async def test_aiortc_bots_through_the_sfu_are_recorded_without_decoding(
        tmp_path: Path, keyring: Keyring, calls: Calls) -> None:
    import aiortc.codecs

    from sfu import Options, Worker, hooks
    from tests.fakes.media import ClipTrack, PublisherBot
    from tests.sfu.helpers import publish, until

    restore = hooks.announce_host_addresses(("127.0.0.1",))
    decoders: list[str] = []

    def no_decoding(codec: Any, output: object) -> Any:
        decoders.append(codec.name)  # nobody in this test may decode: there are no subscriber bots
        return aiortc.codecs.get_decoder(codec)

    restore_decoders = hooks.route_decoders(no_decoding)
    worker = Worker(Options(connect_timeout=8.0), listener=lambda event: None)
    await worker.start()
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm)
    await rec.start()
    bots: list[PublisherBot] = []
    cameras: list[ClipTrack] = []
    try:
        room = worker.create_room("s9")
        await rec.open_session("s9", {"tien-du": "Tiên Du", "que-vo": "Quế Võ"})
        for name, colour in (("tien-du", "red"), ("que-vo", "blue")):
            camera = ClipTrack(vp8_clip(colour=colour, seconds=2.0), loop_to=1)
            bot = PublisherBot([camera, ClipTrack(opus_clip(seconds=2.0))])
            bots.append(bot)
            cameras.append(camera)
            participant = await publish(room, name, bot)
            video, audio = participant.publications[0], participant.publications[1]
            await rec.add_publication("s9", name, video)
            await rec.add_publication("s9", name, audio)
        await rec.open_segment("s9", "c1-x", "x", confidential=False)
        sent = [c.sent for c in cameras]
        await until(lambda: all(c.sent >= s + 45 for c, s in zip(cameras, sent, strict=True)), 30.0, "3 s of media")
        report = await rec.close_segment("s9", "c1-x")
    finally:
        await rec.close()
        for bot in bots:
            await bot.close()
        await worker.close()
        restore_decoders()
        restore()
    assert decoders == []
    assert report is not None and {f.venue for f in report.files} == {"tien-du", "que-vo"}
    for f in report.files:
        d = decode(tmp_path / "rec" / "s9" / f.path)
        assert d.errors == 0 and d.frames["video"] >= 40 and d.first["video"] == 0.0
        assert abs(d.end("video") - d.end("audio")) < 0.1, d
    # each venue is cut at its own next keyframe, which the SFU asks for at most every 500 ms per publisher
    first, second = report.files
    assert abs(first.t0 - second.t0) < 0.7 and abs(first.t0 + first.duration - second.t0 - second.duration) < 0.7


@pytest.mark.media
async def test_a_vanished_venue_holds_a_cut_up_once_not_twice(tmp_path: Path, keyring: Keyring, calls: Calls,
                                                               clock: MediaClock) -> None:
    """A venue that stops sending mid-case (its link gone) sends no keyframe: the case's cut waits for one
    ``cut_timeout``, then is forced, and the forced cut is done at once (it waited ``2 × cut_timeout`` more,
    which held a session's close up for 9 s)."""
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic,
                   cut_timeout=1.0)
    await rec.start()
    try:
        a = venue(clock, "tien-du")
        await rec.open_session("s9", {"tien-du": "Tiên Du"})
        await add(rec, "s9", a)
        await while_feeding(rec.open_segment("s9", "c1-x", "x", confidential=False), [a])
        await feed([a], 2.0, sync=lambda: rec.flush("s9"))
        started = asyncio.get_running_loop().time()
        report = await rec.close_segment("s9", "c1-x")  # nothing fed any more: the venue is gone
        took = asyncio.get_running_loop().time() - started
        assert report is not None and len(report.files) == 1
        assert 1.0 <= took < 2.0, took  # one cut_timeout, not three
        await a.close()
    finally:
        await rec.close()
