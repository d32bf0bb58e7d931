"""The recorder: per-track recording without re-encoding, case segments, signed manifests, replay.

This module re-exports only the light parts (data, options, errors), so that the console may import
``recorder.manifest`` and ``recorder.verify`` without loading aiortc. The recording engine
(``recorder.recorder``, which attaches to ``sfu`` publications) is imported by the room server only.
"""

from .errors import ComposeFailed, DiskFull, RecorderError, UnknownSegment, UnknownSession
from .model import Gap, ManifestRef, RecorderAlarm, SegmentReport, SpeakerSpan, TrackFile
from .options import RecorderOptions

__all__ = [
    "ComposeFailed", "DiskFull", "Gap", "ManifestRef", "RecorderAlarm", "RecorderError", "RecorderOptions",
    "SegmentReport", "SpeakerSpan", "TrackFile", "UnknownSegment", "UnknownSession",
]
