"""Media bots for the SFU tests, the benchmarks and ``tiepdan demo``: aiortc peers with synthetic, mostly
pre-encoded media.

- :func:`vp8_clip` / :func:`h264_clip` / :func:`opus_clip`: encode synthetic media once (PyAV) and
  cache it; a bot then only re-packetizes (``RTCRtpSender`` ``pack()`` path), so bots are cheap.
- :class:`ClipTrack` sends a clip in real time, looping; a keyframe request (PLI relayed by the SFU)
  restarts the clip at its first frame, which is a keyframe (pre-encoded media cannot make a new one).
- :class:`ToneTrack` sends raw audio frames that aiortc encodes live (so packets carry RFC 6464 levels).
- :class:`PublisherBot` offers send-only tracks; :class:`SubscriberBot` answers the SFU's offer,
  decodes what it receives with aiortc's real decoders (PyAV) and records counts, times and colours.

Colours are solid so that a decoded frame tells which publisher it came from (:data:`COLOURS`).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import os
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "AUDIO_CLOCK", "BOT_QUEUES", "COLOURS", "VIDEO_CLOCK", "Clip", "ClipTrack", "DecodeErrors", "PublisherBot",
    "Received", "RtpArrival", "SubscriberBot", "ToneTrack", "centre_yuv", "h264_clip", "nearest_colour", "opus_clip",
    "random_rtp_loss", "textured_vp8_clip", "vp8_clip",
]

import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from sfu import hooks
from sfu.rtp_forward import h264_keyframe_start, vp8_keyframe_start

#: BT.601 limited-range YUV of solid test colours
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (81, 90, 240),
    "green": (145, 54, 34),
    "blue": (41, 240, 110),
    "white": (235, 128, 128),
    "magenta": (106, 202, 222),
    "yellow": (210, 16, 146),
    "cyan": (170, 166, 16),
    "grey": (128, 128, 128),
    "black": (16, 128, 128),
}

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000


@dataclass(frozen=True)
class Clip:
    """Pre-encoded frames (first is a keyframe) and their nominal rate."""

    kind: str
    codec: str
    frames: tuple[bytes, ...]
    keyframes: tuple[bool, ...]
    rate: float
    width: int = 0
    height: int = 0

    @property
    def bitrate(self) -> float:
        """Average bits/s of the delta frames (what a looping sender settles at)."""
        deltas = [len(f) for f, key in zip(self.frames, self.keyframes, strict=True) if not key]
        deltas = deltas or [len(f) for f in self.frames]  # audio: every frame is a "keyframe"
        return 8 * sum(deltas) * self.rate / len(deltas)


def _video_frame(width: int, height: int, colour: str | None, index: int, noise: bool) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    y, u, v = COLOURS[colour or "grey"]
    for number, (plane, value) in enumerate(zip(frame.planes, (y, u, v), strict=True)):
        size = plane.buffer_size
        if noise and number == 0:
            # textured luma (random) so that the encoder needs a realistic bitrate
            plane.update(os.urandom(size))
        else:
            plane.update(bytes([value]) * size)
    frame.pts = index
    return frame


def _encode_video(
    codec_name: str,
    width: int,
    height: int,
    fps: int,
    count: int,
    colour: str | None,
    bitrate: int,
    noise: bool,
) -> tuple[list[bytes], list[bool]]:
    ctx: Any = av.CodecContext.create(codec_name, "w")
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = 10 * count
    if codec_name == "libvpx":
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
    else:
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": "repeat-headers=1:bframes=0",
        }
    frames: list[bytes] = []
    keys: list[bool] = []
    packets: list[Any] = []
    for i in range(count):
        packets.extend(ctx.encode(_video_frame(width, height, colour, i, noise)))
    packets.extend(ctx.encode(None))
    for p in packets:
        frames.append(bytes(p))
        keys.append(bool(p.is_keyframe))
    return frames, keys


@lru_cache(maxsize=32)
def vp8_clip(
    width: int = 320,
    height: int = 180,
    fps: int = 15,
    seconds: float = 2.0,
    colour: str | None = "grey",
    bitrate: int = 150_000,
    noise: bool = False,
) -> Clip:
    frames, keys = _encode_video(
        "libvpx", width, height, fps, max(1, int(fps * seconds)), colour, bitrate, noise
    )
    assert keys[0], "first VP8 frame must be a keyframe"
    return Clip("video", "VP8", tuple(frames), tuple(keys), fps, width, height)


@lru_cache(maxsize=8)
def h264_clip(
    width: int = 320, height: int = 180, fps: int = 15, seconds: float = 2.0, colour: str | None = "grey"
) -> Clip:
    frames, keys = _encode_video(
        "libx264", width, height, fps, max(1, int(fps * seconds)), colour, 150_000, False
    )
    assert keys[0], "first H.264 frame must be a keyframe"
    return Clip("video", "H264", tuple(frames), tuple(keys), fps, width, height)


@lru_cache(maxsize=8)
def textured_vp8_clip(
    width: int = 1280, height: int = 720, fps: int = 30, seconds: float = 2.0, q: int = 30, band: float = 0.07
) -> Clip:
    """A VP8 clip with a realistic, steady delta-frame bitrate (for benchmarks).

    A static low-contrast texture with a band of fresh noise per frame, at a fixed quantizer ``q``:
    720p30 with the defaults is about 1.5 Mbit/s; 320x180 at 15 fps, ``band=0.2`` about 150 kbit/s.
    """
    import random

    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.gop_size = 100_000
    ctx.qmin = ctx.qmax = q
    ctx.bit_rate = 20_000_000  # the fixed quantizer decides; libvpx needs a target anyway
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
    rnd = random.Random(1)
    first = av.VideoFrame(width, height, "yuv420p")
    size, line = first.planes[0].buffer_size, first.planes[0].line_size
    luma = bytearray(116 + rnd.randrange(25) for _ in range(size))
    chroma = bytes([128]) * first.planes[1].buffer_size
    rows = max(1, int(height * band))
    packets: list[Any] = []
    count = max(1, int(fps * seconds))
    for i in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        start = (i * rows) % max(1, height - rows)
        luma[start * line : (start + rows) * line] = bytes(116 + b % 25 for b in os.urandom(rows * line))
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = i
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    data = tuple(bytes(p) for p in packets)
    keys = tuple(bool(p.is_keyframe) for p in packets)
    return Clip("video", "VP8", data, keys, fps, width, height)


def _tone_samples(index: int, frequency: float, amplitude: float) -> bytes:
    start = index * 960
    return struct.pack(
        "<960h",
        *(
            int(amplitude * 32767 * math.sin(2 * math.pi * frequency * (start + n) / AUDIO_CLOCK))
            for n in range(960)
        ),
    )


@lru_cache(maxsize=8)
def opus_clip(seconds: float = 2.0, frequency: float = 440.0, bitrate: int = 32_000) -> Clip:
    """20 ms Opus packets of a tone (1 s on, then quieter)."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = AUDIO_CLOCK
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = bitrate
    ctx.time_base = fractions.Fraction(1, AUDIO_CLOCK)
    ctx.options = {"application": "voip", "fec": "1", "packet_loss": "5"}
    packets: list[Any] = []
    count = int(seconds * 50)
    for i in range(count):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate = AUDIO_CLOCK
        frame.planes[0].update(_tone_samples(i, frequency, 0.3))
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    data = tuple(bytes(p) for p in packets)
    return Clip("audio", "opus", data, tuple(True for _ in data), 50.0)


# --- tracks ---------------------------------------------------------------------------------------------


class ClipTrack(MediaStreamTrack):
    """Sends a pre-encoded clip in real time, looping; ``request_keyframe`` restarts at frame 0."""

    def __init__(self, clip: Clip, name: str = "", loop_to: int = 0) -> None:
        super().__init__()
        #: index the clip loops back to; 1 skips the keyframe (only for receivers that never decode)
        self.loop_to = loop_to
        self.kind = clip.kind
        self.clip = clip
        self.name = name
        self.clock = VIDEO_CLOCK if clip.kind == "video" else AUDIO_CLOCK
        self.step = round(self.clock / clip.rate)
        self.time_base = fractions.Fraction(1, self.clock)
        self.sent = 0
        self.keyframes_sent = 0
        self.keyframe_requests = 0
        self.keyframe_request_times: list[float] = []
        self.paused = False
        self._index = 0
        self._restart = False
        self._start: float | None = None

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self.keyframe_request_times.append(time.monotonic())
        self._restart = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        while True:
            due = self._start + self.sent / self.clip.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.paused:
                break
            self.sent += 1  # keep the clock running while paused
        if self._restart:
            self._index = 0
            self._restart = False
        elif self._index >= len(self.clip.frames):
            self._index = self.loop_to
        data = self.clip.frames[self._index]
        if self.clip.keyframes[self._index]:
            self.keyframes_sent += 1
        self._index += 1
        packet = av.Packet(data)
        packet.pts = self.sent * self.step
        packet.time_base = self.time_base
        self.sent += 1
        return packet


class ToneTrack(MediaStreamTrack):
    """Raw 20 ms mono frames of a tone, encoded live by aiortc (so packets carry audio levels)."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.5) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.sent = 0
        self._start: float | None = None
        self._cache: dict[int, bytes] = {}

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.sent * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        key = self.sent % 50  # one second of tone repeats exactly (440 Hz divides 50 Hz frames)
        if key not in self._cache:
            self._cache[key] = _tone_samples(key, self.frequency, self.amplitude)
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate = AUDIO_CLOCK
        frame.planes[0].update(self._cache[key])
        frame.pts = self.sent * 960
        frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        self.sent += 1
        return frame


# --- bots ------------------------------------------------------------------------------------------------


class PublisherBot:
    """A venue that publishes ``tracks`` (send-only), answering PLIs from its pre-encoded clips."""

    def __init__(
        self, tracks: Iterable[MediaStreamTrack], *, drop: Callable[[bytes], bool] | None = None
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.tracks = list(tracks)
        self.drop = drop
        self.dropped = 0
        for track in self.tracks:
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if isinstance(track, ClipTrack):
                hooks.on_keyframe_request(transceiver.sender, track.request_keyframe)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if self.drop is not None:
            self._install_drop()

    def _install_drop(self) -> None:
        # all m-lines are bundled on the first transceiver's DTLS transport
        dtls = self.pc.getTransceivers()[0].sender.transport
        drop = self.drop
        assert drop is not None

        async def lossy_send_rtp(data: bytes, send: hooks.RtpSend) -> None:
            if drop(data):
                self.dropped += 1
                return
            await send(data)

        hooks.intercept_rtp_send(dtls, lossy_send_rtp)

    async def close(self) -> None:
        await self.pc.close()
        for track in self.tracks:
            track.stop()


def random_rtp_loss(rate: float, seed: int = 7) -> Callable[[bytes], bool]:
    """A drop predicate for RTP (not RTCP) packets: in every block of ``round(1/rate)`` packets of a stream,
    one packet at a random position is dropped. Random positions, exact rate, reproducible."""
    import random

    block = max(1, round(1 / rate))
    rng = random.Random(seed)
    state: dict[int, list[int]] = {}  # ssrc -> [index in block, position to drop]

    def drop(data: bytes) -> bool:
        if len(data) < 12 or 192 <= data[1] <= 223:  # RTCP is kept
            return False
        ssrc = int.from_bytes(data[8:12], "big")
        entry = state.setdefault(ssrc, [0, rng.randrange(block)])
        hit = entry[0] == entry[1]
        entry[0] += 1
        if entry[0] == block:
            entry[0], entry[1] = 0, rng.randrange(block)
        return hit

    return drop


class RtpArrival(NamedTuple):
    """One RTP packet as it reached a subscriber bot: before its jitter buffer, RTX not yet unwrapped."""

    at: float  #: time.monotonic() on arrival
    ssrc: int
    sequence_number: int
    timestamp: int
    #: the first packet of a VP8 or H.264 keyframe (False for audio and for RTX-wrapped packets)
    keyframe: bool = False


@dataclass
class Received:
    """What a subscriber bot got on one m-line."""

    kind: str
    mid: str
    frames: int = 0
    times: list[float] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)
    colours: list[tuple[int, int, int]] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    #: (width, height) of each decoded video frame, parallel to ``times`` (with history)
    frame_sizes: list[tuple[int, int]] = field(default_factory=list)
    first_at: float | None = None
    #: each RTP packet, before the bot's own jitter buffer (with history)
    rtp: list[RtpArrival] = field(default_factory=list)
    #: centre colour (YUV) of the last decoded video frame (kept also without history)
    last_yuv: tuple[int, int, int] | None = None

    def colour(self) -> str | None:
        """Name of the closest test colour of the last decoded video frame."""
        if self.last_yuv is None:
            return None
        return nearest_colour(self.last_yuv)

    def colours_since(self, t: float) -> list[str]:
        return [nearest_colour(c) for c, at in zip(self.colours, self.times, strict=True) if at >= t]


def nearest_colour(yuv: tuple[int, int, int]) -> str:
    return min(COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOURS[n], yuv, strict=True)))


def centre_yuv(frame: av.VideoFrame) -> tuple[int, int, int]:
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    w, h = frame.width, frame.height
    # memoryview: one byte per plane, no copy of the planes
    y = memoryview(frame.planes[0])[(h // 2) * frame.planes[0].line_size + w // 2]
    u = memoryview(frame.planes[1])[(h // 4) * frame.planes[1].line_size + w // 4]
    v = memoryview(frame.planes[2])[(h // 4) * frame.planes[2].line_size + w // 4]
    return int(y), int(u), int(v)


#: ids of the decoder outputs (``sfu.hooks.decoder_output``) of subscriber-bot tracks: the only receivers
#: allowed to decode in SFU tests
BOT_QUEUES: set[int] = set()


class SubscriberBot:
    """A venue that answers the SFU's subscriber offer and decodes everything with aiortc (PyAV).

    ``history=False`` keeps counts and the last colour only (a long-running demo must not grow);
    ``on_video(mid, centre_yuv)`` is called for every decoded video frame when colours are sampled.
    """

    def __init__(self, *, sample_colours: bool = True, history: bool = True,
                 on_video: Callable[[str, tuple[int, int, int]], None] | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.received: dict[str, Received] = {}
        self.sample_colours = sample_colours
        self.history = history
        self.on_video = on_video
        self._tasks: set[asyncio.Task[None]] = set()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        BOT_QUEUES.add(id(hooks.decoder_output(track)))
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        assert mid is not None
        record = Received(track.kind, mid)
        self.received[mid] = record
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)

        def recording(packet: RtpPacket) -> None:
            payload = packet.payload
            keyframe = record.kind == "video" and (vp8_keyframe_start(payload) or h264_keyframe_start(payload))
            record.rtp.append(RtpArrival(time.monotonic(), packet.ssrc, packet.sequence_number, packet.timestamp,
                                         keyframe))

        if self.history:
            hooks.on_rtp_received(receiver, recording)
        task = asyncio.get_running_loop().create_task(self._read(track, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, track: MediaStreamTrack, record: Received) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                record.frames += 1
                if self.history:
                    record.times.append(now)
                    record.pts.append(int(frame.pts or 0))
                if record.first_at is None:
                    record.first_at = now
                if isinstance(frame, av.VideoFrame):
                    record.sizes.add((frame.width, frame.height))
                    yuv = centre_yuv(frame) if self.sample_colours else (0, 0, 0)
                    record.last_yuv = yuv
                    if self.history:
                        record.colours.append(yuv)
                        record.frame_sizes.append((frame.width, frame.height))
                    if self.on_video is not None and self.sample_colours:
                        self.on_video(record.mid, yuv)
        except MediaStreamError:
            pass

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def video(self, index: int) -> Received:
        mids = [t.mid for t in self.pc.getTransceivers() if t.kind == "video"]
        return self.received[str(mids[index])]

    def audio(self, index: int) -> Received:
        mids = [t.mid for t in self.pc.getTransceivers() if t.kind == "audio"]
        return self.received[str(mids[index])]

    async def close(self) -> None:
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in self.pc.getTransceivers():
            if t.receiver.track is not None:
                BOT_QUEUES.discard(id(hooks.decoder_output(t.receiver.track)))


class DecodeErrors(logging.Handler):
    """Counts aiortc 'failed to decode' warnings (decoder errors in the subscriber bots)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1
