"""What the recorder reports: the files of a segment, its speaker timeline and its link-loss gaps.

The one data shape shared by the writer (``recorder.recorder``), the manifests (``recorder.manifest``),
verification (``recorder.verify``), replay (``recorder.compose``), the room server (which publishes
``room.segment_closed`` from it) and the console. Pure data: no media or I/O imports.

Times: ``*_at`` are wall-clock epoch seconds (UTC); ``t0``/``start``/``end`` and ``media_t0``/``media_t1``
are seconds on the *session clock*: 0 is the moment the session's recording started
(``SegmentReport.session_epoch``, epoch seconds), so tracks of different venues line up.
Paths are POSIX paths relative to the session directory (``<root>/<session>/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["TrackFile", "Gap", "SpeakerSpan", "SegmentReport", "ManifestRef", "RecorderAlarm", "GapReason"]

GapReason = Literal["link_lost", "publisher_left", "lagging", "disk_full", "crash"]


@dataclass(frozen=True)
class TrackFile:
    """One media file: a venue's video and/or audio from ``t0`` for ``duration`` seconds of media."""

    path: str
    venue: str
    kinds: tuple[str, ...]
    codecs: tuple[str, ...]
    sha256: str
    size: int
    t0: float
    duration: float
    encrypted: bool = False
    kid: str | None = None
    recovered: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        data["codecs"] = list(self.codecs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrackFile:
        return cls(path=str(data["path"]), venue=str(data["venue"]), kinds=tuple(data["kinds"]),
                   codecs=tuple(data["codecs"]), sha256=str(data["sha256"]), size=int(data["size"]),
                   t0=float(data["t0"]), duration=float(data["duration"]), encrypted=bool(data.get("encrypted")),
                   kid=data.get("kid"), recovered=bool(data.get("recovered")))


@dataclass(frozen=True)
class Gap:
    """A stretch where a venue's media is missing (``end`` None: still missing at the segment's end)."""

    venue: str
    start: float
    end: float | None
    reason: GapReason

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gap:
        end = data.get("end")
        return cls(venue=str(data["venue"]), start=float(data["start"]),
                   end=None if end is None else float(end), reason=data["reason"])


@dataclass(frozen=True)
class SpeakerSpan:
    """Who spoke (``venue`` None: nobody) from ``start`` to ``end``."""

    venue: str | None
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpeakerSpan:
        venue = data.get("venue")
        return cls(venue=None if venue is None else str(venue), start=float(data["start"]), end=float(data["end"]))


@dataclass(frozen=True)
class SegmentReport:
    """A closed segment. ``case`` is None for the stretches recorded between cases (the session is
    recorded continuously; a case's segment is cut out of it at keyframes)."""

    session: str
    segment: str
    case: str | None
    confidential: bool
    session_epoch: float
    opened_at: float
    closed_at: float
    media_t0: float
    media_t1: float
    files: tuple[TrackFile, ...]
    speakers: tuple[SpeakerSpan, ...] = ()
    gaps: tuple[Gap, ...] = ()
    venue_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return max(0.0, self.media_t1 - self.media_t0)

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session, "segment": self.segment, "case": self.case,
            "confidential": self.confidential, "session_epoch": self.session_epoch,
            "opened_at": self.opened_at, "closed_at": self.closed_at,
            "media_t0": self.media_t0, "media_t1": self.media_t1,
            "files": [f.to_json() for f in self.files],
            "speakers": [s.to_json() for s in self.speakers],
            "gaps": [g.to_json() for g in self.gaps],
            "venue_names": dict(self.venue_names),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SegmentReport:
        case = data.get("case")
        return cls(
            session=str(data["session"]), segment=str(data["segment"]), case=None if case is None else str(case),
            confidential=bool(data["confidential"]), session_epoch=float(data["session_epoch"]),
            opened_at=float(data["opened_at"]), closed_at=float(data["closed_at"]),
            media_t0=float(data["media_t0"]), media_t1=float(data["media_t1"]),
            files=tuple(TrackFile.from_json(f) for f in data.get("files", ())),
            speakers=tuple(SpeakerSpan.from_json(s) for s in data.get("speakers", ())),
            gaps=tuple(Gap.from_json(g) for g in data.get("gaps", ())),
            venue_names={str(k): str(v) for k, v in dict(data.get("venue_names", {})).items()},
        )


@dataclass(frozen=True)
class ManifestRef:
    """A written, signed manifest: its path (relative to the recordings root), SHA-256 of its bytes,
    its place in the chain and the hash it chains to."""

    path: str
    sha256: str
    seq: int
    prev: str
    kid: str


@dataclass(frozen=True)
class RecorderAlarm:
    """Raised (``active`` True) when recording stops for a reason the chair must know, and cleared."""

    session: str | None
    code: Literal["disk_full", "write_failed", "recovered_files"]
    active: bool
    detail: str = ""
