"""The session clock by RTCP sender reports (issue #11: "timestamps on one session clock, RTCP sender reports
where available, arrival time otherwise"): the pure clocks with injected values, the SFU's sender report on a
publication's timeline, and real aiortc bots through the SFU whose video path is 300 ms slower than their
audio, recorded in line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import av
import pytest
from aiortc.sdp import SessionDescription

from evidence import Keyring
from recorder import RecorderOptions
from recorder.clock import SenderClock, TrackClock
from recorder.recorder import Recorder
from sfu import Options, SenderReport, Worker, hooks
from sfu.forwarding import AudioAssembler, EncodedFrame
from tests.fakes.media import ClipTrack, PublisherBot, opus_clip, vp8_clip
from tests.recorder._sources import Calls, MediaClock, SyntheticVenue
from tests.sfu.helpers import until

NTP_1970 = 2_208_988_800
VIDEO, AUDIO = 90000, 48000


def ntp(unix: float) -> int:
    """A 64-bit NTP timestamp of Unix time ``unix``."""
    seconds = int(unix)
    return ((seconds + NTP_1970) << 32) | round((unix - seconds) * (1 << 32))


# --- the SFU's sender report ------------------------------------------------------------------------------


@pytest.mark.unit
def test_sender_report_maps_timestamps_to_the_senders_wall_clock() -> None:
    assert SenderReport.ntp_seconds(ntp(1_796_515_200.25)) == pytest.approx(1_796_515_200.25, abs=1e-6)
    report = SenderReport(ntp=1000.0, timestamp=90000, clock_rate=VIDEO, received=5.0)
    assert report.sender_time(90000 + 45000) == pytest.approx(1000.5)
    assert report.sender_time(0) == pytest.approx(999.0)


@pytest.mark.unit
def test_the_assembler_puts_a_wrapping_rtp_timestamp_on_the_frames_timeline() -> None:
    assembler = AudioAssembler("opus", AUDIO)
    assert assembler.timeline(5) is None  # no frame yet
    start = 2**32 - 960
    assembler.push(1, start, True, b"x", b"x", 0.0)
    assembler.push(2, (start + 960) & 0xFFFFFFFF, True, b"x", b"x", 0.02)  # wrapped to 0
    assert assembler.timeline(1920) == 2880  # past the wrap, not moved on by the peek
    assert assembler.timeline(start - 960) == -960  # a report of a little earlier
    frames = assembler.push(3, 960, True, b"x", b"x", 0.04)
    assert [f.timestamp for f in frames] == [1920]


@pytest.mark.unit
async def test_a_publication_keeps_the_latest_report_of_its_media_ssrc_on_its_timeline(
        clock: MediaClock) -> None:
    venue = SyntheticVenue("room1", "tien-du", None, opus_clip(seconds=1.0), clock=clock)
    pub = venue.audio_pub
    assert pub is not None
    pub.on_sender_report(2, ntp(1000.0), 123)
    assert pub.sender_report is None  # before any frame there is no timeline to put it on
    for _ in range(5):
        venue.send_audio()
    pub.on_sender_report(2, ntp(1000.0), 4 * 960)  # the synthetic venue's audio SSRC is 2
    report = pub.sender_report
    assert report is not None and report.timestamp == 4 * 960 and report.ntp == pytest.approx(1000.0, abs=1e-6)
    assert report.received == clock.monotonic()
    pub.on_sender_report(99, ntp(2000.0), 0)  # another SSRC (RTX): ignored
    assert pub.sender_report is report
    tap = pub.attach_tap()
    assert tap.sender_report is report
    await venue.close()
    pub.on_sender_report(2, ntp(3000.0), 0)
    assert pub.sender_report is report  # a closed publication keeps what it had


# --- the pure clocks --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_sender_clock_takes_the_least_delay_and_refuses_what_does_not_fit() -> None:
    clock = SenderClock(window=30.0, buckets=6, max_early=1.0, max_late=2.0)
    assert clock.offset is None
    assert clock.observe(-99.95, 10.0) == pytest.approx(-99.95)  # the first sample sets it
    assert clock.observe(-99.65, 10.1) == pytest.approx(-99.95)  # slower path: the offset stays
    assert clock.observe(-99.97, 10.2) == pytest.approx(-99.97)  # a faster one lowers it
    assert clock.observe(-97.0, 10.3) is None  # 3 s late: a stale report
    assert clock.observe(-101.5, 10.4) is None  # 1.5 s early: a stepped clock
    assert (clock.used, clock.rejected) == (3, 2) and clock.offset == pytest.approx(-99.97)


@pytest.mark.unit
def test_sender_clock_follows_a_slow_sender_clock_as_its_window_slides() -> None:
    clock = SenderClock(window=30.0, buckets=6)
    # a sender clock 100 ppm slow: the apparent delay grows by 0.1 ms per second
    offsets = [clock.observe(-50.0 + 0.0001 * t, float(t)) for t in range(0, 600)]
    assert offsets[0] == pytest.approx(-50.0)
    assert offsets[-1] == pytest.approx(-50.0 + 0.0001 * 570, abs=0.0006)  # within one window's drift
    assert all(o is not None for o in offsets)


@pytest.mark.unit
def test_sender_clock_starts_afresh_after_a_window_without_a_fitting_sample() -> None:
    clock = SenderClock(window=30.0, buckets=6)
    clock.observe(-50.0, 0.0)
    assert clock.observe(-40.0, 5.0) is None  # the sender's clock stepped 10 s
    assert clock.observe(-40.0, 40.0) == pytest.approx(-40.0)  # the old estimate has left the window


@pytest.mark.unit
def test_a_delayed_video_path_is_placed_in_line_with_its_audio_by_the_sender_reports() -> None:
    """One publisher (sender clock 100 s ahead of ours): audio arrives 20 ms after capture, video 320 ms.
    Placed by the reports, a frame lands 20 ms after its capture whatever its path; by arrival the video
    would lag its audio by 300 ms."""
    epoch = 1000.0
    sender_ahead = 100.0
    shared = SenderClock()
    audio = TrackClock(AUDIO, epoch, sender_clock=shared)
    video = TrackClock(VIDEO, epoch, gap_after=1.0, sender_clock=shared)
    arrival_only = TrackClock(VIDEO, epoch, gap_after=1.0)
    placed: dict[str, list[tuple[float, float]]] = {"audio": [], "video": [], "arrival": []}
    for i in range(300):  # 6 s of audio and 15 fps video, in capture order
        captured = epoch + 1.0 + i * 0.02
        placed["audio"].append((captured - epoch, audio.map(i * 960, captured + 0.02, captured + sender_ahead).t))
        if i % 10 == 0 or i % 10 == 3 or i % 10 == 7:  # about 15 fps
            ts = round((captured - epoch - 1.0) * VIDEO)
            arrived = captured + 0.32
            placed["video"].append((captured - epoch, video.map(ts, arrived, captured + sender_ahead).t))
            placed["arrival"].append((captured - epoch, arrival_only.map(ts, arrived).t))
    for kind in ("audio", "video"):
        late = [t - c for c, t in placed[kind]]
        assert all(abs(d - 0.02) < 0.001 for d in late), (kind, late[:5])
    assert all(abs(t - c - 0.32) < 0.001 for c, t in placed["arrival"])  # what arrival alone gives
    assert audio.by_sender == 300 and video.by_sender == len(placed["video"])
    assert shared.offset == pytest.approx(0.02 - epoch - sender_ahead)  # session time minus sender time


@pytest.mark.unit
def test_before_the_first_report_a_track_goes_by_arrival_and_then_never_backwards() -> None:
    epoch = 0.0
    shared = SenderClock()
    video = TrackClock(VIDEO, epoch, gap_after=1.0, sender_clock=shared)
    audio = TrackClock(AUDIO, epoch, sender_clock=shared)
    ts = 0
    times: list[float] = []
    for i in range(15):  # 1 s without a report: by arrival, 300 ms late
        times.append(video.map(ts + i * 6000, 1.0 + i / 15 + 0.3).t)
    assert times[0] == pytest.approx(1.3) and video.by_sender == 0
    audio.map(0, 2.02, 2.0)  # the audio's report sets the offset at 20 ms
    for i in range(15, 30):
        times.append(video.map(ts + i * 6000, 1.0 + i / 15 + 0.3, 1.0 + i / 15).t)
    assert all(b > a for a, b in zip(times, times[1:], strict=False))  # strictly forward
    assert times[-1] == pytest.approx(1.0 + 29 / 15 + 0.02)  # in line after the squeeze
    assert video.by_sender == 15


@pytest.mark.unit
def test_a_report_that_does_not_fit_falls_back_to_arrival_and_silences_stay_gaps() -> None:
    shared = SenderClock()
    audio = TrackClock(AUDIO, 0.0, sender_clock=shared)
    for i in range(50):
        audio.map(i * 960, 1.0 + i * 0.02 + 0.01, 1.0 + i * 0.02)
    # the publisher restarted its timestamps: the old report maps them 60 s into the past
    stale = audio.map(0, 2.02, 2.0 - 60.0)
    assert stale.t == pytest.approx(2.0, abs=0.021) and shared.rejected == 1
    # a muted publisher whose sender clock went on for 5 s: a gap on the session clock, not a stretch
    after = audio.map(960 * 300, 7.03, 7.02)
    assert after.t == pytest.approx(7.03) and after.gap is not None and after.gap[1] - after.gap[0] > 4.9


@pytest.mark.unit
def test_two_venues_with_clocks_seconds_apart_line_up_on_the_session_clock() -> None:
    epoch = 50.0
    a = TrackClock(AUDIO, epoch, sender_clock=SenderClock())
    b = TrackClock(AUDIO, epoch, sender_clock=SenderClock())
    for i in range(100):
        captured = epoch + 2.0 + i * 0.02
        ta = a.map(i * 960, captured + 0.015, captured + 3.7).t  # its PC's clock is 3.7 s ahead
        tb = b.map(i * 960 + 12345, captured + 0.035, captured - 8.2).t  # 8.2 s behind, slower link
    assert abs(ta - tb) < 0.03


# --- real bots through the SFU ----------------------------------------------------------------------------


class SendLog:
    """The RTP packets a bot sends (monotonic time at send, SSRC); ``delay`` holds the video's for a while."""

    def __init__(self, bot: PublisherBot, delay: float) -> None:
        self.sent: list[tuple[float, int]] = []
        self.delay = delay
        self.pending: set[asyncio.Future[None]] = set()
        self.handles: list[asyncio.TimerHandle] = []
        sdp = SessionDescription.parse(bot.pc.localDescription.sdp)
        self.video = {s.ssrc for m in sdp.media if m.kind == "video" for s in m.ssrc}
        self.audio = {s.ssrc for m in sdp.media if m.kind == "audio" for s in m.ssrc}
        assert self.video and self.audio
        transport = bot.pc.getTransceivers()[0].sender.transport
        hooks.intercept_rtp_send(transport, self.handle)

    async def handle(self, data: bytes, send: Callable[[bytes], Awaitable[None]]) -> None:
        if len(data) < 12 or 192 <= data[1] <= 223:  # RTCP (the sender reports) goes at once
            await send(data)
            return
        ssrc = int.from_bytes(data[8:12], "big")
        self.sent.append((time.monotonic(), ssrc))
        if ssrc in self.video and self.delay > 0:
            def later() -> None:
                task = asyncio.ensure_future(send(data))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            self.handles.append(asyncio.get_running_loop().call_later(self.delay, later))
            return
        await send(data)

    def first_after(self, moment: float, kind: str) -> float:
        ssrcs = self.video if kind == "video" else self.audio
        return next(at for at, ssrc in self.sent if at > moment and ssrc in ssrcs)

    def close(self) -> None:
        for handle in self.handles:
            handle.cancel()


def resume_edges(path: Path) -> dict[str, float]:
    """File time of the first packet after the longest pause of each stream (no decoding)."""
    times: dict[str, list[float]] = {"video": [], "audio": []}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                times[packet.stream.type].append(float(packet.pts * packet.time_base))
    edges = {}
    for kind, ts in times.items():
        ts.sort()
        jump = max(range(1, len(ts)), key=lambda k: ts[k] - ts[k - 1])
        assert ts[jump] - ts[jump - 1] > 0.5, (kind, "no pause in the file")
        edges[kind] = ts[jump]
    return edges


async def media_seconds(camera: ClipTrack, seconds: float) -> None:
    target = camera.sent + round(seconds * camera.clip.rate)
    await until(lambda: camera.sent >= target, timeout=seconds * 6 + 10, what=f"{seconds} s of media")


@pytest.mark.media
async def test_a_venue_whose_video_path_is_300_ms_slower_is_recorded_in_line_by_the_sender_reports(
        tmp_path: Path, keyring: Keyring, calls: Calls) -> None:
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    worker = Worker(Options(connect_timeout=8.0), listener=lambda event: None)
    await worker.start()
    rec = Recorder(RecorderOptions(root=tmp_path / "rec", min_free_bytes=1024), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm)
    await rec.start()
    bots: list[PublisherBot] = []
    logs: dict[str, SendLog] = {}
    tracks: dict[str, tuple[ClipTrack, ClipTrack]] = {}
    arrivals: list[EncodedFrame] = []
    try:
        room = worker.create_room("s1")
        await rec.open_session("s1", {"tien-du": "Tiên Du", "que-vo": "Quế Võ"})
        for name, colour, delay in (("tien-du", "green", 0.3), ("que-vo", "blue", 0.0)):
            camera, mic = ClipTrack(vp8_clip(colour=colour, seconds=2.0), loop_to=1), ClipTrack(opus_clip(2.0))
            bot = PublisherBot([camera, mic])
            bots.append(bot)
            tracks[name] = (camera, mic)
            participant = room.join(name)
            answer = await participant.publish_offer(await bot.offer())
            await bot.accept(answer)
            logs[name] = SendLog(bot, delay)  # before any media: the DTLS handshake is still to come
            await participant.wait_connected("publisher")
            for pub in participant.publications:
                await rec.add_publication("s1", name, pub)
        publications = room.publications
        # what reaches the SFU of tien-du's video, and when
        watch = next(p for p in publications if p.participant_id == "tien-du" and p.kind == "video").attach_tap()

        async def collect() -> None:
            async for frame in watch:
                arrivals.append(frame)

        watcher = asyncio.create_task(collect())
        assert len(publications) == 4
        await rec.open_segment("s1", "c1-x", "x", confidential=False)
        await until(lambda: all(p.sender_report is not None for p in publications), timeout=20,
                    what="a sender report of every track")
        await media_seconds(tracks["que-vo"][0], 1.5)  # the offsets settle
        for camera, mic in tracks.values():  # every track stops at the same moment, and resumes together
            camera.paused = mic.paused = True
        await media_seconds(tracks["que-vo"][0], 0.8)
        resumed = time.monotonic()
        for camera, mic in tracks.values():
            camera.paused = mic.paused = False
        await media_seconds(tracks["que-vo"][0], 1.0)
        report = await rec.close_segment("s1", "c1-x")
        await watch.close()
        await watcher
    finally:
        await rec.close()
        for log in logs.values():
            log.close()
        for bot in bots:
            await bot.close()
        await worker.close()
        restore()
    assert report is not None and sorted(f.venue for f in report.files) == ["que-vo", "tien-du"]
    # the video of tien-du did reach the SFU 300 ms after it was sent
    sent_v = logs["tien-du"].first_after(resumed, "video")
    reached = next(f.arrival for f in arrivals if f.arrival > sent_v)
    assert reached - sent_v > 0.25
    # on the session clock every track resumes where its sender resumed it: residuals within 100 ms
    residual = {}
    for f in report.files:
        edges = resume_edges(tmp_path / "rec" / "s1" / f.path)
        for kind, at in edges.items():
            residual[f"{f.venue}/{kind}"] = f.t0 + at - logs[f.venue].first_after(resumed, kind)
    spread = max(residual.values()) - min(residual.values())
    print({k: round(v - min(residual.values()), 3) for k, v in residual.items()})
    assert spread < 0.1, residual
