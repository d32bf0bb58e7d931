"""A synthetic venue for the recorder's tests: pre-encoded VP8/H.264 + Opus fed as RTP through real
``sfu.Publication`` objects (their assemblers, taps and keyframe requests), faster than real time.

No network: each publication gets a real aiortc receiver on an unstarted transport (its PLIs go nowhere,
the venue answers them through the ``KeyframeRequested`` events the publication emits). The arrival clock
is injected (:class:`MediaClock`, installed as ``sfu.publication``'s monotonic clock and given to the
recorder): every frame arrives exactly at its media time, so 30 s of media are fed in a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.rtp import RtpPacket

import sfu.publication
from recorder.model import ManifestRef, RecorderAlarm, SegmentReport
from sfu import Options
from sfu.events import Event, KeyframeRequested
from sfu.publication import Publication
from tests.fakes.media import AUDIO_CLOCK, VIDEO_CLOCK, Clip

T = TypeVar("T")

_CERT: list[RTCCertificate] = []


class MediaClock:
    """A monotonic clock the feeder moves to each frame's media time (``base`` + seconds)."""

    def __init__(self) -> None:
        self.base = time.monotonic()
        self.now = self.base

    def monotonic(self) -> float:
        return self.now

    def at(self, media_time: float) -> None:
        self.now = max(self.now, self.base + media_time)


@contextlib.contextmanager
def install_media_clock(clock: MediaClock) -> Iterator[None]:
    """Make ``sfu.publication`` stamp arrivals with ``clock`` while the block runs."""
    original = sfu.publication.time
    fake = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    fake.monotonic = clock.monotonic
    sfu.publication.time = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        sfu.publication.time = original


def _transport() -> RTCDtlsTransport:
    if not _CERT:
        _CERT.append(RTCCertificate.generateCertificate())
    return RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), _CERT)


@dataclass
class SyntheticVenue:
    """A venue publishing ``video`` (looped, restarting at its keyframe when one is requested) and ``audio``."""

    room: str
    name: str
    video: Clip | None
    audio: Clip | None
    clock: MediaClock | None = None
    options: Options = field(default_factory=Options)
    events: list[Event] = field(default_factory=list)
    video_pub: Publication | None = None
    audio_pub: Publication | None = None
    video_sent: int = 0
    audio_sent: int = 0
    keyframes_sent: int = 0
    #: media seconds skipped (a silent publisher: timestamps advance, nothing is sent)
    skipped: float = 0.0
    _video_index: int = 0
    _restart: bool = False
    _seq: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        transport = _transport()
        if self.video is not None:
            pub = self._publication("camera", "video", self.video.codec, transport)
            throttled = pub.request_keyframe

            def request_keyframe(reason: str = "api") -> None:
                # this publisher answers every request at once (the PLI throttle runs on wall time, which
                # the fast feed outruns); the throttled PLI still goes through the publication
                self._restart = True
                throttled(reason)

            pub.request_keyframe = request_keyframe  # type: ignore[method-assign]
            self.video_pub = pub
        if self.audio is not None:
            self.audio_pub = self._publication("mic", "audio", "opus", transport)

    def _publication(self, name: str, kind: str, codec: str, transport: RTCDtlsTransport) -> Publication:
        return Publication(room_id=self.room, participant_id=self.name, name=name, kind=kind, mid=name,
                           codec=codec, receiver=RTCRtpReceiver(kind, transport), ssrc=None, options=self.options,
                           emit=self._emit, rtt=lambda: None)

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        video = self.video_pub
        if isinstance(event, KeyframeRequested) and video is not None and event.publication_id == video.id:
            self._restart = True

    @property
    def video_time(self) -> float:
        assert self.video is not None
        return self.video_sent / self.video.rate + self.skipped

    @property
    def audio_time(self) -> float:
        return self.audio_sent * 0.02 + self.skipped

    def _rtp(self, kind: str, timestamp: int, payload: bytes) -> RtpPacket:
        seq = self._seq.get(kind, 1000)
        self._seq[kind] = (seq + 1) & 0xFFFF
        return RtpPacket(payload_type=96 if kind == "video" else 111, marker=1, sequence_number=seq,
                         timestamp=timestamp & 0xFFFFFFFF, ssrc=1 if kind == "video" else 2, payload=payload)

    def send_video(self, clip: Clip | None = None) -> None:
        """Send the next video frame (of ``clip`` if given: a resolution change)."""
        clip = clip or self.video
        assert clip is not None and self.video_pub is not None
        if self._restart or self._video_index >= len(clip.frames):
            if self._restart:
                self._restart = False
                self._video_index = 0
            else:
                self._video_index = 1  # loop on delta frames (never decoded here: the recording is checked)
        data = clip.frames[self._video_index]
        if clip.keyframes[self._video_index]:
            self.keyframes_sent += 1
        self._video_index += 1
        timestamp = round(self.video_time * VIDEO_CLOCK)
        if self.clock is not None:
            self.clock.at(self.video_time)
        if clip.codec == "VP8":
            payload = b"\x10" + data  # RFC 7741 descriptor: S bit, partition 0
        else:
            payload = b"\x18" + data  # H.264: a STAP-A header in front (the assembler only reads the type)
        self.video_pub.on_rtp(self._rtp("video", timestamp, payload), data)
        self.video_sent += 1

    def send_audio(self) -> None:
        assert self.audio is not None and self.audio_pub is not None
        data = self.audio.frames[self.audio_sent % len(self.audio.frames)]
        timestamp = round(self.audio_time * AUDIO_CLOCK)
        if self.clock is not None:
            self.clock.at(self.audio_time)
        self.audio_pub.on_rtp(self._rtp("audio", timestamp, data), data)
        self.audio_sent += 1

    @property
    def next_time(self) -> float:
        v = self.video_time if self.video is not None else float("inf")
        a = self.audio_time if self.audio is not None else float("inf")
        return min(v, a)

    def send_next(self, video: Clip | None = None) -> None:
        """Send the frame due next (audio or video)."""
        v = self.video_time if self.video is not None else float("inf")
        a = self.audio_time if self.audio is not None else float("inf")
        if v <= a:
            self.send_video(video)
        else:
            self.send_audio()

    def skip(self, seconds: float) -> None:
        """A silent publisher: ``seconds`` of media time pass with nothing sent."""
        self.skipped += seconds

    async def close(self) -> None:
        for pub in (self.video_pub, self.audio_pub):
            if pub is not None:
                await pub.close()


async def feed(venues: list[SyntheticVenue], until: float, *, step: float = 0.2,
               sync: Callable[[], object] | None = None, video: dict[str, Clip] | None = None) -> None:
    """Feed ``venues`` up to media time ``until`` in ``step`` chunks, letting the taps drain after each;
    ``sync`` (an awaitable factory, e.g. the recorder's flush) runs about every second of media."""
    t = max(min(v.next_time for v in venues), 0.0)
    last_sync = t
    while t < until:
        t = min(until, t + step)
        while True:  # every venue's frames in media-time order: the injected clock only moves forward
            nxt = min(venues, key=lambda v: v.next_time)
            if nxt.next_time >= t:
                break
            nxt.send_next((video or {}).get(nxt.name))
        for _ in range(3):
            await asyncio.sleep(0)
        if sync is not None and (t - last_sync >= 1.0 or t >= until):
            last_sync = t
            result = sync()
            if asyncio.iscoroutine(result):
                await result


async def while_feeding(coro: Awaitable[T], venues: list[SyntheticVenue], *, step: float = 0.05,
                        limit: float = 15.0, sync: Callable[[], object] | None = None,
                        video: dict[str, Clip] | None = None) -> T:
    """Run ``coro`` (a recorder call waiting for keyframes) while the venues keep sending, paced at
    about 20x real time so that the call's thread hops see media time move on only a little."""
    keyframes = {v.name: v.keyframes_sent for v in venues}
    task = asyncio.ensure_future(coro)
    start = min(v.next_time for v in venues)
    t = start
    while not task.done():
        if t - start > limit:
            task.cancel()
            raise AssertionError(f"the call did not finish within {limit} s of media")
        t += step
        await feed(venues, t, step=step, sync=sync, video=video)
        await asyncio.sleep(step / 20)
        if all(v.keyframes_sent > keyframes[v.name] for v in venues if v.video is not None):
            break  # the keyframes the cut asked for are out: the rest is the recorder's own work
    return await task


class Calls:
    """What a :class:`~recorder.recorder.Recorder` reported: closed segments and alarms, in order."""

    def __init__(self) -> None:
        self.closed: list[tuple[SegmentReport, ManifestRef]] = []
        self.alarms: list[RecorderAlarm] = []

    async def segment_closed(self, report: SegmentReport, ref: ManifestRef) -> None:
        self.closed.append((report, ref))

    async def alarm(self, alarm: RecorderAlarm) -> None:
        self.alarms.append(alarm)
