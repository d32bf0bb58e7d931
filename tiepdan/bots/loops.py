"""The demo's pre-rendered loops: a venue's picture (its name and a clock burned in) and a quiet tone.

Rendered once with Pillow and encoded with PyAV into ``<directory>/<venue>-<digest>.{high,low}.ivf`` (VP8,
a keyframe every :data:`KEYFRAME_EVERY` seconds from the loop's start: a bot replays encoded frames and cannot
answer a keyframe request, so the recorder's cut at the next keyframe, and a subscriber's switch to the
other layer, wait at most that long) and ``<directory>/tone-<digest>.ogg`` (Opus, 20 ms packets);
the digest covers everything that changes the picture, so a changed name renders again and an existing
file is read back as it is. A bot then only re-packetises: the machine is not busy encoding.

The demo sends 640×360 (high) and 320×180 (low) at 15 fps to keep a 2-core CI machine cheap; real venues
send 720p from their browsers. The centre of the picture is left plain: its colour tells a subscriber whose
frame it decoded (:attr:`VenueLoop.centre_yuv`).
"""

from __future__ import annotations

import fractions
import hashlib
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

from .media import AUDIO_CLOCK, Clip, centre_yuv

__all__ = ["LoopSpec", "VenueLoop", "PALETTE", "FONT_CANDIDATES", "render_venue_loop", "render_tone",
           "HIGH", "LOW", "FPS", "SECONDS", "KEYFRAME_EVERY"]

HIGH = (640, 360)
LOW = (320, 180)
FPS = 15
SECONDS = 10.0
KEYFRAME_EVERY = 2.0  # seconds; SECONDS is a multiple of it, so the loop's seam stays a keyframe
_VERSION = "3"  # bump when the drawing or the encoding changes: cached files are keyed by it

#: background colours, distinct enough that the decoded centre pixel names the venue
PALETTE: tuple[tuple[int, int, int], ...] = (
    (198, 40, 40),    # red
    (46, 125, 50),    # green
    (21, 101, 192),   # blue
    (239, 108, 0),    # orange
    (106, 27, 154),   # purple
    (0, 151, 167),    # cyan
    (175, 180, 43),   # lime
    (216, 27, 96),    # pink
    (84, 110, 122),   # blue grey
)

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)


@dataclass(frozen=True)
class LoopSpec:
    venue: str
    name: str
    rgb: tuple[int, int, int]
    subtitle: str = "Điểm cầu tiếp công dân trực tuyến"
    fps: int = FPS
    seconds: float = SECONDS
    high: tuple[int, int] = HIGH
    low: tuple[int, int] = LOW

    @property
    def digest(self) -> str:
        text = "|".join((_VERSION, self.venue, self.name, self.subtitle, repr(self.rgb), str(self.fps),
                         str(self.seconds), repr(self.high), repr(self.low)))
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class VenueLoop:
    spec: LoopSpec
    high: Clip
    low: Clip
    #: the YUV colour a decoder sees at the centre of this venue's picture
    centre_yuv: tuple[int, int, int]
    rendered: bool
    """True when this call rendered the files (False: read from the cache)."""


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _yuv(picture: Image.Image, size: tuple[int, int] | None = None,
         reformatter: VideoReformatter | None = None) -> av.VideoFrame:
    """``picture`` as a yuv420p frame (scaled to ``size``); a kept ``reformatter`` reuses its scaler."""
    frame: av.VideoFrame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
    width, height = size or picture.size
    if reformatter is None:
        return frame.reformat(format="yuv420p", width=width, height=height)
    return reformatter.reformat(frame, format="yuv420p", width=width, height=height)


def _packed(frame: av.VideoFrame) -> bool:
    """Whether every plane's rows are contiguous (line size equals the plane's width)."""
    return all(plane.line_size == plane.width for plane in frame.planes)


def _splice(base: av.VideoFrame, strip: av.VideoFrame, top: int) -> av.VideoFrame:
    """``base`` with the full-width rows from ``top`` replaced by ``strip`` (``top`` even; packed planes)."""
    out = av.VideoFrame(base.width, base.height, "yuv420p")
    for number, (target, whole, part) in enumerate(zip(out.planes, base.planes, strip.planes, strict=True)):
        row = top if number == 0 else top // 2
        data = bytes(whole)
        start = row * whole.line_size
        piece = bytes(part)
        target.update(data[:start] + piece + data[start + len(piece):])
    return out


def _pictures(spec: LoopSpec) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
    """The loop's frames, (high, low): name at the top, a clock and a running bar at the bottom, plain centre.

    The still part is converted once; per frame only the bottom strip is drawn, converted and spliced in.
    """
    width, height = spec.high
    base = Image.new("RGB", (width, height), spec.rgb)
    draw = ImageDraw.Draw(base)
    title = _font(max(12, height // 13))
    small = _font(max(10, height // 22))
    clock_size = max(12, height // 9)
    clock = _font(clock_size)
    draw.text((width // 2, height // 10), spec.name, font=title, fill="white", anchor="mm",
              stroke_width=2, stroke_fill="black")
    draw.text((width // 2, height // 10 + height // 12), spec.subtitle, font=small,
              fill="white", anchor="mm", stroke_width=1, stroke_fill="black")
    scale = height // spec.low[1]
    align = 2 * max(1, scale)  # the strip's top row stays even in both layers
    top = max(0, (height - height // 7 - clock_size) // align * align)
    base_high, base_low = _yuv(base), _yuv(base, spec.low)
    fast = scale * spec.low[1] == height and scale * spec.low[0] == width and _packed(base_high) and _packed(base_low)
    count = max(1, round(spec.fps * spec.seconds))
    to_high, to_low = VideoReformatter(), VideoReformatter()
    for index in range(count):
        strip = base.crop((0, top, width, height))
        draw = ImageDraw.Draw(strip)
        tenths = index * 10 // spec.fps
        draw.text((width // 2, height - height // 7 - top), f"00:{tenths // 10:02d}.{tenths % 10}", font=clock,
                  fill="white", anchor="mm", stroke_width=2, stroke_fill="black")
        # a bar that runs across the bottom once per loop: motion a viewer sees at a glance
        draw.rectangle((0, height - top - 6, (index + 1) * width // count, height - top), fill="white")
        if fast:
            high_strip = _yuv(strip, reformatter=to_high)
            low_strip = _yuv(strip, (spec.low[0], (height - top) // scale), to_low)
            if _packed(high_strip) and _packed(low_strip):
                yield _splice(base_high, high_strip, top), _splice(base_low, low_strip, top // scale)
                continue
        whole = base.copy()
        whole.paste(strip, (0, top))
        yield _yuv(whole), _yuv(whole, spec.low)


def _open_ivf(path: Path, size: tuple[int, int], fps: int, bitrate: int) -> tuple[Any, Any]:
    out: Any = av.open(str(path), "w", format="ivf")
    stream: Any = out.add_stream("libvpx", rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = bitrate
    every = str(round(KEYFRAME_EVERY * fps))
    # a keyframe exactly every KEYFRAME_EVERY seconds (min = max distance); one thread: libvpx's own threads
    # cost more than they bring on these small, still frames
    stream.options = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0", "error-resilient": "1",
                      "static-thresh": "1000", "threads": "1", "g": every, "keyint_min": every}
    return out, stream


def _render(spec: LoopSpec, high: Path, low: Path) -> None:
    tmp_high, tmp_low = high.with_suffix(f".tmp{os.getpid()}"), low.with_suffix(f".tmp{os.getpid()}")
    outputs = [_open_ivf(tmp_high, spec.high, spec.fps, 500_000), _open_ivf(tmp_low, spec.low, spec.fps, 150_000)]
    try:
        for index, frames in enumerate(_pictures(spec)):
            for (out, stream), frame in zip(outputs, frames, strict=True):
                frame.pts = index
                frame.time_base = fractions.Fraction(1, spec.fps)
                for packet in stream.encode(frame):
                    out.mux(packet)
        for out, stream in outputs:
            for packet in stream.encode(None):
                out.mux(packet)
    finally:
        for out, _ in outputs:
            out.close()
    tmp_high.replace(high)
    tmp_low.replace(low)


def _read_clip(path: Path, kind: str, codec: str, rate: float) -> Clip:
    frames: list[bytes] = []
    keys: list[bool] = []
    width = height = 0
    with av.open(str(path)) as inp:
        stream: Any = inp.streams[0]
        if kind == "video":
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        for packet in inp.demux(stream):
            if packet.size:
                frames.append(bytes(packet))
                keys.append(bool(packet.is_keyframe) or kind == "audio")
    if not frames or not keys[0]:
        raise ValueError(f"{path}: no media or not starting with a keyframe")
    return Clip(kind, codec, tuple(frames), tuple(keys), rate, width, height)


def _centre_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return centre_yuv(_yuv(Image.new("RGB", (16, 16), rgb)))


def render_venue_loop(directory: Path, spec: LoopSpec) -> VenueLoop:
    """The venue's loop, both layers: read from ``directory`` or, when missing, rendered there first.

    Blocking (Pillow and libvpx): call it in a thread from async code.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{spec.venue}-{spec.digest}"
    high, low = directory / f"{stem}.high.ivf", directory / f"{stem}.low.ivf"
    rendered = False
    if not (high.exists() and low.exists()):
        _render(spec, high, low)
        rendered = True
    return VenueLoop(spec, _read_clip(high, "video", "VP8", spec.fps), _read_clip(low, "video", "VP8", spec.fps),
                     _centre_of(spec.rgb), rendered)


def _tone(index: int, frequency: float, amplitude: float) -> bytes:
    start = index * 960
    # a gentle swell (0.5 Hz) so the loop does not sound like a test signal
    return struct.pack("<960h", *(
        int(amplitude * (0.6 + 0.4 * math.sin(math.pi * (start + n) / AUDIO_CLOCK))
            * 32767 * math.sin(2 * math.pi * frequency * (start + n) / AUDIO_CLOCK))
        for n in range(960)))


def render_tone(directory: Path, *, seconds: float = SECONDS, frequency: float = 220.0,
                amplitude: float = 0.05) -> Clip:
    """A quiet Opus tone loop (20 ms packets), read from ``directory`` or rendered there first. Blocking."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{_VERSION}|{seconds}|{frequency}|{amplitude}".encode()).hexdigest()[:10]
    path = directory / f"tone-{digest}.ogg"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with av.open(str(tmp), "w", format="ogg") as out:
            stream: Any = out.add_stream("libopus", rate=AUDIO_CLOCK)
            stream.layout = "mono"
            stream.bit_rate = 24_000
            stream.options = {"application": "voip", "frame_duration": "20"}
            for index in range(int(seconds * 50)):
                frame = av.AudioFrame(format="s16", layout="mono", samples=960)
                frame.sample_rate = AUDIO_CLOCK
                frame.planes[0].update(_tone(index, frequency, amplitude))
                frame.pts = index * 960
                frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        tmp.replace(path)
    return _read_clip(path, "audio", "opus", 50.0)
