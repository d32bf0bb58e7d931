"""Options of the recorder (mapped from ``TIEPDAN_RECORDING_*`` by ``tiepdan/settings.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RecorderOptions"]


@dataclass(frozen=True)
class RecorderOptions:
    """``root``: the recordings volume (one directory per session under it).

    ``queue_frames``: frames a track's writer may hold before the tap's own overflow rules apply.
    ``flush_interval_s``: how often a file is flushed to disk (what a killed process can lose at most).
    ``min_free_bytes``: below this free space recording stops with an alarm (never a crash of the room).
    ``retention_days``: media older than this is deleted, leaving a tombstone (None: kept for ever).
    ``encrypt_all``: every file is encrypted as it is written (``evidence.stream``), not only those of a
    closed segment or a confidential case. The product turns it on (``TIEPDAN_RECORDING_ENCRYPT_ALL``): the room
    learns that a case is a denunciation only when the chair starts the closed segment, so without it the
    seconds between the call and that start would be on disk in clear. Whether a segment is confidential
    (who may replay it) does not depend on it.
    """

    root: Path = Path("data/recordings")
    enabled: bool = True
    queue_frames: int = 512
    flush_interval_s: float = 1.0
    min_free_bytes: int = 256 * 1024 * 1024
    retention_days: int | None = None
    encrypt_chunk_bytes: int = 64 * 1024
    encrypt_all: bool = False
