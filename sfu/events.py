"""Typed events the SFU reports to its owner (the room server).

The worker calls its ``listener`` synchronously on the event loop with one of the frozen dataclasses
below; the listener must not block (queue the event if it needs I/O). Events carry ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.errors import SfuError
from sfu.stats import RoomStats


@dataclass(frozen=True, slots=True)
class TrackPublished:
    room_id: str
    participant_id: str
    publication_id: str
    kind: str
    name: str
    codec: str


@dataclass(frozen=True, slots=True)
class TrackUnpublished:
    room_id: str
    participant_id: str
    publication_id: str


@dataclass(frozen=True, slots=True)
class LinkUp:
    """A peer connection of a participant connected; ``restored`` if it replaces a failed one."""

    room_id: str
    participant_id: str
    role: str
    restored: bool


@dataclass(frozen=True, slots=True)
class LinkLost:
    """A peer connection failed or timed out. The connection is closed; re-negotiate to restore."""

    room_id: str
    participant_id: str
    role: str
    error: SfuError


@dataclass(frozen=True, slots=True)
class KeyframeRequested:
    """A PLI was sent to a publisher (after throttling). ``reason``: sink, subscriber, loss, retry."""

    room_id: str
    publication_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """Periodic audio level of a publication from RFC 6464 (-dBov: 0 loudest, 127 silence)."""

    room_id: str
    participant_id: str
    publication_id: str
    level: int
    speaking: bool


@dataclass(frozen=True, slots=True)
class SpeakingChanged:
    room_id: str
    participant_id: str
    publication_id: str
    speaking: bool


@dataclass(frozen=True, slots=True)
class SourceChanged:
    """A subscriber slot now forwards ``publication_id`` (``None``: nothing, e.g. its source ended)."""

    room_id: str
    participant_id: str
    subscription_id: str
    publication_id: str | None


@dataclass(frozen=True, slots=True)
class SinkLagging:
    """A slot or tap overflowed its bounded queue; frames were dropped for that sink only."""

    room_id: str
    sink_id: str
    dropped_frames: int
    error: SfuError


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """A background task of the room (a stats round, closing a publication, a transport's watchdog or
    close, a keyframe request) ended with an exception; it was logged. ``task`` is its kind,
    ``error`` the exception type."""

    room_id: str
    task: str
    error: str


@dataclass(frozen=True, slots=True)
class StatsReport:
    room_id: str
    stats: RoomStats


Event = (
    TrackPublished
    | TrackUnpublished
    | LinkUp
    | LinkLost
    | KeyframeRequested
    | AudioLevel
    | SpeakingChanged
    | SourceChanged
    | SinkLagging
    | StatsReport
    | TaskFailed
)
