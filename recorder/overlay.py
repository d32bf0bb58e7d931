"""Pictures burned into a composed replay, rendered once and blitted per frame.

Everything is drawn with Pillow in RGBA (Liberation fonts from Debian's fonts-liberation2, which cover
Vietnamese), converted once to the output's YUV 4:2:0 planes by libswscale (the same BT.601 limited-range
conversion the encoder expects) and kept as three ``L`` planes plus the alpha at full and half size, so
that a blit is three ``Image.paste`` calls with a mask. The clock's glyphs (digits, ``:``, ``/`` and a
space) are rendered once as opaque cells of the clock's box; the clock picture is rebuilt from those
cells only when the displayed second changes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import av
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_DIR", "Planes", "Overlay", "render_label", "render_card", "Clock", "overlay_from_rgba",
           "LOCAL_TZ"]

FONT_DIR = Path("/usr/share/fonts/truetype/liberation2")
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

_BOX = (0, 0, 0, 150)
_TEXT = (255, 255, 255, 255)
_CARD = (58, 63, 68, 255)
_CARD_TEXT = (225, 228, 232, 255)


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"font {path} is missing (Debian package fonts-liberation2)")
    return ImageFont.truetype(str(path), size)


def _even_up(value: int) -> int:
    return value + (value % 2)


@dataclass(frozen=True)
class Planes:
    """One picture as YUV 4:2:0 planes (``L`` images; ``u``/``v`` at half size)."""

    y: Image.Image
    u: Image.Image
    v: Image.Image

    @classmethod
    def blank(cls, width: int, height: int, luma: int = 16) -> Planes:
        return cls(Image.new("L", (width, height), luma), Image.new("L", (width // 2, height // 2), 128),
                   Image.new("L", (width // 2, height // 2), 128))

    @classmethod
    def from_bytes(cls, width: int, height: int, y: bytes, u: bytes, v: bytes) -> Planes:
        half = (width // 2, height // 2)
        return cls(Image.frombytes("L", (width, height), y), Image.frombytes("L", half, u),
                   Image.frombytes("L", half, v))

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> Planes:
        """The planes of a ``yuv420p`` frame (rows may be padded: the line size is honoured)."""
        images = []
        for plane in frame.planes:
            images.append(Image.frombuffer("L", (plane.width, plane.height), bytes(plane), "raw", "L",
                                           plane.line_size, 1).copy())
        return cls(images[0], images[1], images[2])

    def copy(self) -> Planes:
        return Planes(self.y.copy(), self.u.copy(), self.v.copy())

    def paste(self, other: Planes, x: int, y: int) -> None:
        self.y.paste(other.y, (x, y))
        self.u.paste(other.u, (x // 2, y // 2))
        self.v.paste(other.v, (x // 2, y // 2))

    def fill(self, x: int, y: int, w: int, h: int, luma: int = 16) -> None:
        self.y.paste(luma, (x, y, x + w, y + h))
        self.u.paste(128, (x // 2, y // 2, (x + w) // 2, (y + h) // 2))
        self.v.paste(128, (x // 2, y // 2, (x + w) // 2, (y + h) // 2))

    def to_frame(self) -> av.VideoFrame:
        width, height = self.y.size
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, image in zip(frame.planes, (self.y, self.u, self.v), strict=True):
            data = image.tobytes()
            if plane.line_size != plane.width:
                row = plane.width
                pad = b"\0" * (plane.line_size - row)
                data = b"".join(data[r * row:(r + 1) * row] + pad for r in range(plane.height))
            plane.update(data)
        return frame


@dataclass(frozen=True)
class Overlay:
    """A pre-rendered picture with its alpha, ready to blit onto ``Planes`` at even coordinates."""

    planes: Planes
    alpha: Image.Image
    alpha_half: Image.Image

    @property
    def size(self) -> tuple[int, int]:
        return self.planes.y.size

    def blit(self, target: Planes, x: int, y: int) -> None:
        x, y = x // 2 * 2, y // 2 * 2
        target.y.paste(self.planes.y, (x, y), self.alpha)
        target.u.paste(self.planes.u, (x // 2, y // 2), self.alpha_half)
        target.v.paste(self.planes.v, (x // 2, y // 2), self.alpha_half)

    def is_blank(self) -> bool:
        return self.alpha.getbbox() is None


def _rgb_frame(image: Image.Image) -> av.VideoFrame:
    frame = av.VideoFrame(image.width, image.height, "rgb24")
    plane, data, row = frame.planes[0], image.tobytes(), image.width * 3
    if plane.line_size != row:
        pad = b"\0" * (plane.line_size - row)
        data = b"".join(data[r * row:(r + 1) * row] + pad for r in range(image.height))
    plane.update(data)
    return frame


def overlay_from_rgba(image: Image.Image) -> Overlay:
    """Convert an RGBA picture once (its size is padded to even with transparent pixels)."""
    image = image.convert("RGBA")
    width, height = _even_up(image.width), _even_up(image.height)
    if (width, height) != image.size:
        padded = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        padded.paste(image, (0, 0))
        image = padded
    frame = _rgb_frame(image.convert("RGB")).reformat(format="yuv420p")
    alpha = image.getchannel("A")
    return Overlay(Planes.from_frame(frame), alpha, alpha.resize((width // 2, height // 2), Image.Resampling.BOX))


def _nfc(text: str) -> str:
    # Vietnamese typed with combining marks is drawn from the precomposed glyphs of the font.
    return unicodedata.normalize("NFC", text)


def render_label(text: str, height: int, max_width: int) -> Overlay:
    """A venue's name in white on a translucent dark box ``height`` pixels high (cut with "…" to fit)."""
    size = max(8, int(height * 0.7))
    font = _font("LiberationSans-Bold.ttf", size)
    pad = max(2, height // 5)
    text = _nfc(text)
    shown = text
    while shown and font.getlength(shown) + 2 * pad > max_width:
        shown = shown[:-1]
    if shown != text:
        shown = shown[:-1].rstrip() + "…" if len(shown) > 1 else shown
    width = min(max_width, int(font.getlength(shown)) + 2 * pad)
    image = Image.new("RGBA", (max(2, width), height), _BOX)
    draw = ImageDraw.Draw(image)
    draw.text((pad, height // 2), shown, font=font, fill=_TEXT, anchor="lm")
    return overlay_from_rgba(image)


def render_card(name: str, width: int, height: int) -> Overlay:
    """The neutral card shown for a venue without media at a moment: its name centred on grey."""
    image = Image.new("RGBA", (width, height), _CARD)
    draw = ImageDraw.Draw(image)
    size = max(8, height // 9)
    font = _font("LiberationSans-Regular.ttf", size)
    words, lines, line = _nfc(name).split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width * 0.9:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    step = int(size * 1.25)
    top = height // 2 - step * (len(lines) - 1) // 2
    for index, text in enumerate(lines):
        draw.text((width // 2, top + index * step), text, font=font, fill=_CARD_TEXT, anchor="mm")
    return overlay_from_rgba(image)


class Clock:
    """The session time in local time (Asia/Ho_Chi_Minh) as ``dd/mm/yyyy HH:MM:SS``, from glyph cells
    rendered once."""

    GLYPHS = "0123456789:/ "

    def __init__(self, height: int, epoch: float) -> None:
        size = max(8, int(height * 0.7))
        font = _font("LiberationMono-Bold.ttf", size)
        self._epoch = epoch
        self._cell_w = _even_up(int(font.getlength("0")) + 1)
        self._height = _even_up(height)
        self._cells: dict[str, Overlay] = {}
        for glyph in self.GLYPHS:
            cell = Image.new("RGBA", (self._cell_w, self._height), _BOX)
            ImageDraw.Draw(cell).text((self._cell_w // 2, self._height // 2), glyph, font=font, fill=_TEXT,
                                      anchor="mm")
            self._cells[glyph] = overlay_from_rgba(cell)
        self._pad = self._cell_w // 2 * 2
        self._second: int | None = None
        self._overlay: Overlay | None = None
        self._boxes: dict[int, Overlay] = {}

    def text(self, t: float) -> str:
        return datetime.fromtimestamp(self._epoch + t, LOCAL_TZ).strftime("%d/%m/%Y %H:%M:%S")

    def at(self, t: float) -> Overlay:
        """The clock picture at session time ``t`` (rebuilt only when the second changes)."""
        second = int(self._epoch + t)
        if self._overlay is None or second != self._second:
            self._overlay = self._compose(self.text(t))
            self._second = second
        return self._overlay

    def _compose(self, text: str) -> Overlay:
        width = self._pad * 2 + self._cell_w * len(text)
        blank = self._boxes.get(width)
        if blank is None:
            blank = self._boxes[width] = overlay_from_rgba(Image.new("RGBA", (width, self._height), _BOX))
        box = Overlay(blank.planes.copy(), blank.alpha.copy(), blank.alpha_half.copy())
        for index, glyph in enumerate(text):
            cell = self._cells[glyph]
            x = self._pad + index * self._cell_w
            box.planes.paste(cell.planes, x, 0)
            box.alpha.paste(cell.alpha, (x, 0))
            box.alpha_half.paste(cell.alpha_half, (x // 2, 0))
        return box
