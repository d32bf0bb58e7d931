"""The session clock of one published track: encoded frames mapped to session seconds.

Theory of operation
-------------------
Session time 0 is the moment the recorder opened the session (``SegmentReport.session_epoch``). A frame's
session time is its publication's *anchor* plus its media timestamp since the anchor:

- the anchor is taken from the arrival time (``EncodedFrame.arrival``, monotonic) of the first frame seen,
  so tracks of different venues line up to within their network and assembly delay (RTCP sender
  reports are not used: aiortc exposes them only through ``getStats()``, see aiortc-sfu.md §6);
- between anchors the media timestamps alone advance the clock, so network jitter never stretches or
  squeezes a track;
- a frame is never placed after its own arrival (it cannot have been captured later): when the timestamps
  run ahead of arrival by more than ``max_lead`` (the first frames came late, a sender caught up in a burst,
  a fast sender clock) the clock re-anchors on that frame, so a track settles on its least-delayed path;
- after a silence (no frame for ``resync_after`` seconds) the clock re-anchors on arrival when the
  timestamps did not advance with the silence (a muted or restarted publisher): the file shows the
  silence as a jump of its timestamps, a *gap*, never as a stretch. It also re-anchors when the timestamps
  go backwards (a restarted publisher).

Pure state machine: no clock reads, no I/O. :meth:`TrackClock.map` returns the frame's session time and
the gap (``(start, end)`` on the session clock) that precedes it, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrackClock", "Mapped"]


@dataclass(frozen=True, slots=True)
class Mapped:
    """A frame's session time; ``gap`` is the silence before it (start, end), or None."""

    t: float
    gap: tuple[float, float] | None


class TrackClock:
    """Maps one publication's frames to session seconds (see the module docstring)."""

    def __init__(self, clock_rate: int, epoch_monotonic: float, *, gap_after: float = 0.5,
                 resync_after: float = 1.0, max_lead: float = 0.005) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {clock_rate}")
        self.clock_rate = clock_rate
        self.epoch = epoch_monotonic
        self.gap_after = gap_after
        self.resync_after = resync_after
        self.max_lead = max_lead
        self._anchor_t: float | None = None
        self._anchor_ts = 0
        self._last_t: float | None = None
        self._last_arrival = 0.0
        self.resyncs = 0

    @property
    def last(self) -> float | None:
        """Session time of the last mapped frame."""
        return self._last_t

    def map(self, timestamp: int, arrival: float) -> Mapped:
        """Session time of a frame with media ``timestamp`` (1/clock_rate units) arriving at ``arrival``."""
        arrived = arrival - self.epoch
        if self._anchor_t is None or self._last_t is None:
            self._anchor_t, self._anchor_ts = arrived, timestamp
            self._last_t, self._last_arrival = arrived, arrival
            return Mapped(arrived, None)
        t = self._anchor_t + (timestamp - self._anchor_ts) / self.clock_rate
        silent = arrival - self._last_arrival >= self.resync_after
        if (silent and arrived - t > self.gap_after) or t - arrived > self.max_lead or t <= self._last_t:
            if t - arrived <= self.max_lead:
                self.resyncs += 1
            t = max(arrived, self._last_t + 1.0 / self.clock_rate)
            self._anchor_t, self._anchor_ts = t, timestamp
        gap = (self._last_t, t) if t - self._last_t > self.gap_after else None
        self._last_t, self._last_arrival = t, arrival
        return Mapped(t, gap)
