"""Capture files for Chromium's fake camera (``--use-file-for-fake-video-capture``): one per venue.

Each file is a short Y4M loop (raw I420, which Chromium reads and repeats) of one solid colour with the
venue's label in a corner; the centre of the picture stays plain, so a page that samples the centre
pixel of a ``<video>`` can tell whose picture it shows. Written with PyAV (``yuv4mpegpipe``); the label
is drawn with Pillow. Small on purpose (320×180, 15 fps, 2 s): three browsers encode and decode on a
two-core machine.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
from PIL import Image, ImageDraw, ImageFont

__all__ = ["CaptureSource", "write_capture_file", "colour_distance", "FONT_PATHS"]

FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)


@dataclass(frozen=True)
class CaptureSource:
    venue: str
    colour: tuple[int, int, int]
    path: Path


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_PATHS:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default()


def write_capture_file(directory: Path, venue: str, label: str, colour: tuple[int, int, int], *,
                       size: tuple[int, int] = (320, 180), fps: int = 15, seconds: float = 2.0) -> CaptureSource:
    """Write ``<directory>/<venue>.y4m``: ``seconds`` of ``colour`` with ``label`` at the top left.

    Raises:
        ValueError: a size that is not even (I420 needs even sides), or a non-positive rate or length.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"capture size must be positive and even, not {width}×{height}")
    if fps <= 0 or seconds <= 0:
        raise ValueError("capture rate and length must be positive")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{venue}.y4m"
    picture = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(picture)
    band = max(12, height // 6)
    draw.rectangle((0, 0, width, band + 4), fill=(20, 20, 20))
    draw.text((6, 2), label, fill=(255, 255, 255), font=_font(band - 2))
    frames = max(1, round(fps * seconds))
    with av.open(str(path), mode="w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, fps)
        from_image = cast(Callable[[Image.Image], av.VideoFrame], av.VideoFrame.from_image)
        template = from_image(picture).reformat(format="yuv420p")
        for index in range(frames):
            frame = template.reformat(format="yuv420p")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return CaptureSource(venue, colour, path)


def colour_distance(a: tuple[int, int, int] | list[int], b: tuple[int, int, int] | list[int]) -> int:
    """The largest per-channel difference of two RGB colours."""
    return max(abs(int(x) - int(y)) for x, y in zip(a[:3], b[:3], strict=True))
