"""Who each subscriber sees in its fixed slots (sans-I/O: pure functions of the room's state).

A subscriber connection has fixed video and audio slots (no renegotiation); the room server points
each slot at a venue's publication. :func:`assign` decides which venue, from:

* ``venues``: the session's venues in their order (the stable fallback order);
* ``floor``: the venue holding the floor; ``chair``: the chair's venue (the main venue);
* ``available``: the venues publishing, per kind;
* ``own``: the subscriber's own venue (never shown to itself);
* ``hidden``: venues this subscriber may not receive (a closed segment it is not part of);
* ``previous``: the last assignment, so that venues keep their slot when others change.

Rules (video):

1. the first slots show, in this order, the floor holder and the chair's venue (``floor``/``chair``
   roles; the "large" tiles): one slot when they are the same venue or one is not shown;
2. the other slots show the remaining venues (``other``); a venue shown before keeps its slot if
   that slot is still free, the rest fill the free slots in session order; when there are more
   venues than slots, the ones later in the session order are left out.

Audio: every eligible venue, floor holder and chair first when slots are short, each keeping its
previous slot when it can. A venue is eligible when it publishes that kind, is not ``own`` and
is not ``hidden``. The result maps every slot (``video-0``, …, ``audio-0``, …) to a venue or None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LayoutInput", "Assignment", "assign", "role_of"]

SlotRole = Literal["floor", "chair", "other"]


@dataclass(frozen=True)
class LayoutInput:
    venues: tuple[str, ...]
    floor: str | None
    chair: str | None
    available: Mapping[str, frozenset[str]]
    """kind (``video``/``audio``) → venues publishing that kind"""
    own: str | None = None
    hidden: frozenset[str] = field(default_factory=frozenset)


Assignment = dict[str, str | None]
"""slot id (``video-0``, ``audio-1``) → venue (None: empty)"""


def role_of(venue: str | None, floor: str | None, chair: str | None) -> SlotRole | None:
    if venue is None:
        return None
    if venue == floor:
        return "floor"
    if venue == chair:
        return "chair"
    return "other"


def _eligible(state: LayoutInput, kind: str) -> list[str]:
    available = state.available.get(kind, frozenset())
    return [v for v in state.venues if v in available and v != state.own and v not in state.hidden]


def _priority(state: LayoutInput, eligible: Sequence[str]) -> list[str]:
    result: list[str] = []
    for venue in (state.floor, state.chair):
        if venue is not None and venue in eligible and venue not in result:
            result.append(venue)
    return result


def _stable_fill(chosen: Sequence[str], free: list[int], kind: str, previous: Mapping[str, str | None],
                 out: dict[int, str]) -> None:
    """Put each chosen venue in its previous slot when that slot is free, the rest in the free slots."""
    placed: set[str] = set()
    for venue in chosen:
        for index in list(free):
            if previous.get(f"{kind}-{index}") == venue:
                out[index] = venue
                free.remove(index)
                placed.add(venue)
                break
    for venue in chosen:
        if venue not in placed and free:
            out[free.pop(0)] = venue


def _assign_kind(state: LayoutInput, kind: str, count: int, previous: Mapping[str, str | None],
                 pinned: bool) -> Assignment:
    eligible = _eligible(state, kind)
    priority = _priority(state, eligible)
    out: dict[int, str] = {}
    if pinned:  # video: the floor holder and the chair take the first slots
        for index, venue in enumerate(priority[:count]):
            out[index] = venue
        chosen = [v for v in eligible if v not in priority]
        free = list(range(min(len(priority), count), count))
    else:
        chosen = (priority + [v for v in eligible if v not in priority])[:count]
        free = list(range(count))
    _stable_fill(chosen, free, kind, previous, out)
    return {f"{kind}-{i}": out.get(i) for i in range(count)}


def assign(state: LayoutInput, *, video_slots: int, audio_slots: int,
           previous: Mapping[str, str | None] | None = None) -> Assignment:
    """The slot assignment for one subscriber (see the module docstring)."""
    previous = previous or {}
    result = _assign_kind(state, "video", video_slots, previous, pinned=True)
    result.update(_assign_kind(state, "audio", audio_slots, previous, pinned=False))
    return result
