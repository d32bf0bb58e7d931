"""Where each venue goes in a composed replay, and which venue is shown large when (pure functions).

The picture is split into a grid of ``k × k`` cells: the floor holder (the speaking venue) takes the
top-left ``(k-1) × (k-1)`` cells, the others one cell each down the right column and along the bottom row
(``2k - 1`` small tiles). ``k`` is the smallest value (at least 3) with room for every venue, so 9 venues
get a 1024×576 large tile and 256×144 small ones in a 1280×720 picture.

The floor schedule follows the speaker timeline without flicker: a turn shorter than ``min_span`` is
ignored, and the large tile changes at most once per ``min_hold`` seconds (a change that comes sooner
waits until the hold has passed, and is dropped if that speaker has stopped by then).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .model import SpeakerSpan

__all__ = ["Rect", "Layout", "grid_layout", "floor_schedule", "FloorPlan", "MAX_GRID"]

MAX_GRID = 12
"""At most ``2 * MAX_GRID - 1`` small tiles; venues beyond that are left out of the picture (not the sound)."""


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    large: Rect
    small: tuple[Rect, ...]

    @property
    def capacity(self) -> int:
        return 1 + len(self.small)

    def rects(self, order: Sequence[str], floor: str) -> dict[str, Rect]:
        """The tile of each venue when ``floor`` is large: the others fill the small tiles in ``order``."""
        placed = {floor: self.large}
        others = [v for v in order if v != floor]
        for venue, rect in zip(others, self.small, strict=False):
            placed[venue] = rect
        return placed


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def grid_layout(count: int, width: int = 1280, height: int = 720) -> Layout:
    """The layout for ``count`` venues in a ``width × height`` picture (all sizes and offsets even, as
    4:2:0 chroma needs)."""
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise ValueError(f"picture size must be even and at least 64×64, not {width}×{height}")
    if count <= 1:
        return Layout(width, height, Rect(0, 0, width, height), ())
    k = 3
    while 2 * k - 1 < count - 1 and k < MAX_GRID:
        k += 1
    sw, sh = _even(width / k), _even(height / k)
    large = Rect(0, 0, _even(width - sw), _even(height - sh))
    right_x, bottom_y = width - sw, height - sh
    column = [Rect(right_x, j * sh, sw, sh) for j in range(k - 1)] + [Rect(right_x, bottom_y, sw, sh)]
    row = [Rect(j * sw, bottom_y, sw, sh) for j in range(k - 1)]
    return Layout(width, height, large, tuple(column + row))


@dataclass(frozen=True)
class FloorPlan:
    """Who is large from when: ``times[i]`` (session clock) onwards ``venues[i]``."""

    times: tuple[float, ...]
    venues: tuple[str, ...]

    def at(self, t: float) -> str:
        index = bisect.bisect_right(self.times, t) - 1
        return self.venues[max(0, index)]


def floor_schedule(venues: Sequence[str], speakers: Sequence[SpeakerSpan], start: float, end: float, *,
                   min_hold: float = 2.0, min_span: float = 1.0) -> FloorPlan:
    """The large-tile schedule over ``[start, end)`` from the speaker timeline (see the module doc).

    Before the first turn the first speaker is shown (or the first venue when nobody speaks); while
    nobody speaks the last speaker stays large."""
    if not venues:
        raise ValueError("no venue to lay out")
    known = set(venues)
    turns = sorted(
        (s for s in speakers
         if s.venue is not None and s.venue in known and min(s.end, end) - max(s.start, start) >= min_span),
        key=lambda s: (s.start, s.end),
    )
    current = venues[0]
    covering = [s for s in turns if s.start <= start < s.end]
    if covering:
        current = covering[0].venue or current
    elif turns:
        current = turns[0].venue or current
    times, chosen = [start], [current]
    last_switch = start - min_hold  # the first change is never held back
    for turn in turns:
        if turn.venue is None or turn.venue == current:
            continue
        switch_at = max(turn.start, last_switch + min_hold, start)
        if switch_at >= min(turn.end, end):
            continue
        current, last_switch = turn.venue, switch_at
        times.append(switch_at)
        chosen.append(current)
    return FloorPlan(tuple(times), tuple(chosen))
