"""Plain stats snapshots (frozen dataclasses) and the cheap meters that feed them.

The room server turns snapshots into Prometheus metrics; nothing here knows about Prometheus.
Rates are measured over windows of about one second on the hot path, so a snapshot is a read.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PublicationStats:
    """One published track, as received by the SFU from the publisher."""

    publication_id: str
    participant_id: str
    kind: str
    codec: str
    bitrate_bps: float
    packets: int
    packets_lost: int
    frames: int
    frames_per_second: float
    frames_lost: int
    keyframes: int
    keyframe_requests: int
    jitter_ms: float | None
    rtt_ms: float | None
    sinks: int
    audio_level: int | None
    #: the uplink estimate last sent to the publisher in REMB (bits/s; None: none sent, or not this track)
    bandwidth_estimate_bps: int | None = None
    #: REMB packets sent for this track, and estimates held back by the throttle (sfu.hooks.RembThrottle)
    remb_sent: int = 0
    remb_held: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """One subscriber slot, as sent by the SFU."""

    subscription_id: str
    participant_id: str
    kind: str
    source_id: str | None
    bitrate_bps: float
    packets: int
    packets_lost: int
    frames: int
    frames_per_second: float
    frames_dropped: int
    overflows: int
    keyframe_requests: int
    jitter_ms: float | None
    rtt_ms: float | None
    queued: int
    #: forwarding delay inside the SFU (a frame's last packet in → the frame handed to the sender),
    #: median and 99th percentile of the last frames, in ms; None before any frame
    delay_p50_ms: float | None = None
    delay_p99_ms: float | None = None
    #: RTP-level forwarding: packets dropped because the subscriber's link took no more (frame-level
    #: forwarding drops whole frames instead: ``frames_dropped``)
    packets_dropped: int = 0


@dataclass(frozen=True, slots=True)
class RoomStats:
    room_id: str
    participants: int
    publications: tuple[PublicationStats, ...]
    subscriptions: tuple[SubscriptionStats, ...]


@dataclass(frozen=True, slots=True)
class WorkerStats:
    rooms: tuple[RoomStats, ...]


class DelaySampler:
    """The last ``size`` delays (seconds) of a stream; percentiles on demand (stats, not the hot path)."""

    __slots__ = ("_samples",)

    def __init__(self, size: int = 1000) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def percentiles_ms(self) -> tuple[float | None, float | None]:
        """(p50, p99) in milliseconds, or (None, None) without samples."""
        if not self._samples:
            return None, None
        ordered = sorted(self._samples)
        last = len(ordered) - 1
        return 1000.0 * ordered[round(0.5 * last)], 1000.0 * ordered[round(0.99 * last)]


class RateMeter:
    """Counts events and bytes; recomputes per-second rates once per ``window`` on ``add``."""

    __slots__ = ("window", "count", "bytes", "count_rate", "byte_rate", "_t0", "_c0", "_b0")

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.count = 0
        self.bytes = 0
        self.count_rate = 0.0
        self.byte_rate = 0.0
        self._t0: float | None = None
        self._c0 = 0
        self._b0 = 0

    def add(self, now: float, nbytes: int) -> None:
        self.count += 1
        self.bytes += nbytes
        if self._t0 is None:
            self._t0, self._c0, self._b0 = now, self.count, self.bytes
            return
        dt = now - self._t0
        if dt >= self.window:
            self.count_rate = (self.count - self._c0) / dt
            self.byte_rate = (self.bytes - self._b0) / dt
            self._t0, self._c0, self._b0 = now, self.count, self.bytes

    def rates(self, now: float) -> tuple[float, float]:
        """(events/s, bytes/s); decays to zero when nothing was added for two windows."""
        if self._t0 is None or now - self._t0 > 2 * self.window:
            return 0.0, 0.0
        return self.count_rate, self.byte_rate
