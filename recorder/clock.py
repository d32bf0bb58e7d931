"""The session clock of one published track: encoded frames mapped to session seconds.

Theory of operation
-------------------
Session time 0 is the moment the recorder opened the session (``SegmentReport.session_epoch``). Two ways
place a frame, the first whenever it can:

1. **By the sender's clock** (RTCP sender reports, ``sfu.Tap.sender_report``): the report maps the frame's
   media timestamp to the sender's wall clock (``sender``, seconds). The publisher's audio and video share
   that clock, so one :class:`SenderClock` per publisher connection holds the offset from it to the session
   clock: the least ``arrival - sender`` of the last ``window`` seconds over *all* its tracks. A track whose
   path is slower (a delayed video path, a deeper jitter buffer at the sender) is therefore placed where
   its media was captured, in line with the publisher's other track, and publishers line up against each
   other to within their least network delay. The sender's clock is never taken as ours (a venue's PC may
   be seconds off): only its differences are used. A sample far from the offset (a stale report after the
   publisher restarted its timestamps, a stepped sender clock) is not used: that frame goes by 2.
2. **By arrival** (no sender report yet, or one that does not fit): the anchor is taken from the arrival
   time (``EncodedFrame.arrival``, monotonic) of the first frame seen, so tracks of different venues line
   up to within their network and assembly delay;

   - between anchors the media timestamps alone advance the clock, so network jitter never stretches or
     squeezes a track;
   - a frame is never placed after its own arrival (it cannot have been captured later): when the
     timestamps run ahead of arrival by more than ``max_lead`` (the first frames came late, a sender caught
     up in a burst, a fast sender clock) the clock re-anchors on that frame, so a track settles on its
     least-delayed path;
   - after a silence (no frame for ``resync_after`` seconds) the clock re-anchors on arrival when the
     timestamps did not advance with the silence (a muted or restarted publisher): the file shows the
     silence as a jump of its timestamps, a *gap*, never as a stretch. It also re-anchors when the
     timestamps go backwards (a restarted publisher).

A frame placed by 1 also anchors 2, so a fallback continues from it on the media timestamps. Frames never
go backwards: one that would is placed a tick after its predecessor (once, when the first sender report
moves a slow track back in line).

Pure state machines: no clock reads, no I/O. :meth:`TrackClock.map` returns the frame's session time and
the gap (``(start, end)`` on the session clock) that precedes it, if any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TrackClock", "Mapped", "SenderClock"]


@dataclass(frozen=True, slots=True)
class Mapped:
    """A frame's session time; ``gap`` is the silence before it (start, end), or None."""

    t: float
    gap: tuple[float, float] | None


class SenderClock:
    """The offset from one publisher's wall clock (its sender reports) to the session clock.

    ``observe(delay, arrival)`` takes a frame's ``delay`` (its arrival on the session clock minus its
    sender time: network and assembly delay plus the difference of the clocks) at monotonic ``arrival``
    and returns the offset to place it by, or None when the sample is further than ``max_early`` below or
    ``max_late`` above the offset (the frame then goes by arrival; see the module docstring). The offset is
    the least delay of the samples used over the last ``window`` seconds, kept as the minimum of each of
    ``buckets`` slices: a sender clock slower than ours is followed as old slices leave the window. When
    no sample was used for a whole window, the next one starts afresh.
    """

    def __init__(self, *, window: float = 30.0, buckets: int = 6, max_early: float = 1.0,
                 max_late: float = 2.0) -> None:
        if window <= 0 or buckets <= 0:
            raise ValueError(f"window ({window}) and buckets ({buckets}) must be positive")
        self.span = window / buckets
        self.buckets = buckets
        self.max_early = max_early
        self.max_late = max_late
        self._mins: dict[int, float] = {}
        self.used = 0
        self.rejected = 0

    @property
    def offset(self) -> float | None:
        """Session time minus sender time, as estimated so far (None before a sample)."""
        return min(self._mins.values()) if self._mins else None

    def observe(self, delay: float, arrival: float) -> float | None:
        bucket = math.floor(arrival / self.span)
        oldest = bucket - self.buckets + 1
        for old in [k for k in self._mins if k < oldest]:
            del self._mins[old]
        offset = self.offset
        if offset is not None and not offset - self.max_early <= delay <= offset + self.max_late:
            self.rejected += 1
            return None
        least = self._mins.get(bucket)
        if least is None or delay < least:
            self._mins[bucket] = delay
        self.used += 1
        return delay if offset is None else min(offset, delay)


class TrackClock:
    """Maps one publication's frames to session seconds (see the module docstring); ``sender_clock`` is
    shared by the tracks of one publisher connection (None: arrival only)."""

    def __init__(self, clock_rate: int, epoch_monotonic: float, *, gap_after: float = 0.5,
                 resync_after: float = 1.0, max_lead: float = 0.005,
                 sender_clock: SenderClock | None = None) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {clock_rate}")
        self.clock_rate = clock_rate
        self.sender_clock = sender_clock
        #: frames placed by the sender's clock (the others by arrival)
        self.by_sender = 0
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

    def map(self, timestamp: int, arrival: float, sender: float | None = None) -> Mapped:
        """Session time of a frame with media ``timestamp`` (1/clock_rate units) arriving at ``arrival``;
        ``sender``: its time on the publisher's clock from a sender report (seconds), if known."""
        arrived = arrival - self.epoch
        if sender is not None and self.sender_clock is not None:
            offset = self.sender_clock.observe(arrived - sender, arrival)
            if offset is not None:
                self.by_sender += 1
                return self._place(sender + offset, timestamp, arrival)
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

    def _place(self, t: float, timestamp: int, arrival: float) -> Mapped:
        last = self._last_t
        if last is not None and t <= last:
            t = last + 1.0 / self.clock_rate
        gap = (last, t) if last is not None and t - last > self.gap_after else None
        self._anchor_t, self._anchor_ts = t, timestamp
        self._last_t, self._last_arrival = t, arrival
        return Mapped(t, gap)
