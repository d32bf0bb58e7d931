"""Errors of the recorder. None of them ever propagates into the room: the room server logs them,
raises an alarm and carries on forwarding."""

from __future__ import annotations

__all__ = ["RecorderError", "DiskFull", "UnknownSession", "UnknownSegment", "ComposeFailed"]


class RecorderError(Exception):
    """Base class of the recorder's errors."""


class DiskFull(RecorderError):
    """The recordings volume has less free space than ``RecorderOptions.min_free_bytes``, or a write failed
    with ENOSPC: recording stops (alarm), forwarding goes on."""


class UnknownSession(RecorderError):
    """No recording is open for this session."""


class UnknownSegment(RecorderError):
    """No segment of that id is open in this session."""


class ComposeFailed(RecorderError):
    """A replay could not be composed (missing, altered or undecodable input)."""
