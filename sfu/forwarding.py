"""The hot path: re-assemble encoded frames on ingest, fan them out to bounded per-sink queues.

Theory of operation
-------------------
Each published track has one *assembler* fed with RTP packets by the receiver hook (see
``sfu.hooks``), below aiortc's jitter buffer and decoder, which are never used:

- **Audio** (:class:`AudioAssembler`): every Opus packet is one frame and is emitted at once. A lost
  packet is never waited for (the subscriber's decoder conceals it, helped by in-band FEC); a late or
  duplicate packet is dropped. This is what keeps a lossy district link intelligible: aiortc's own
  audio jitter buffer stalls 320 ms per lost packet.
- **Video** (:class:`VideoAssembler`): packets are stored by extended sequence number; a frame is
  emitted as soon as its packets from the frame start to the marker bit are contiguous (no extra frame
  of delay). A hole is given ``loss_wait`` seconds for its NACK retransmission (aiortc's receiver sends
  the NACK and unwraps RTX before we see the packet); after that the frame is declared lost, delta
  frames are dropped until the next keyframe and ``keyframe_wanted`` is raised so that the owner sends a
  PLI. Corrupt frames are therefore never forwarded.

Each sink (a subscriber slot or a recorder tap) owns a :class:`SinkQueue`: bounded, gated on a video
keyframe at start, after a source switch and after an overflow (an overflow flushes the queue and asks
for a keyframe; audio drops its oldest frame instead). The queue rebases timestamps so that the
outgoing RTP timestamps stay monotonic across source switches.

:class:`KeyframeRequester` throttles PLIs to one per ``min_interval`` per publication, with one
deferred retry so a request inside the window is not lost.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu import _tasks
from sfu.stats import DelaySampler, RateMeter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One re-assembled frame, still encoded, as forwarded.

    ``timestamp`` is in units of ``1/clock_rate`` (90 kHz video, 48 kHz Opus), counted from the first
    frame of the publication and unwrapped. ``arrival`` is ``time.monotonic()`` at its last packet.
    """

    kind: str
    codec: str
    data: bytes
    timestamp: int
    clock_rate: int
    keyframe: bool
    arrival: float

    @property
    def time_base(self) -> fractions.Fraction:
        return _time_base(self.clock_rate)

    def to_packet(self, pts: int | None = None) -> av.Packet[Any]:
        """A fresh ``av.Packet`` (never shared between sinks) with ``pts`` (default: ``timestamp``)."""
        packet = av.Packet(self.data)
        packet.pts = self.timestamp if pts is None else pts
        packet.dts = packet.pts
        packet.time_base = self.time_base
        packet.is_keyframe = self.keyframe
        return packet


#: seconds from the NTP era (1900-01-01) to the Unix epoch
_NTP_UNIX = 2_208_988_800


@dataclass(frozen=True, slots=True)
class SenderReport:
    """The publisher's latest RTCP sender report, on the publication's own timeline.

    ``ntp`` is the sender's wall clock (Unix seconds, from the SR's 64-bit NTP time) at the RTP timestamp
    ``timestamp`` (the publication's timeline, as :attr:`EncodedFrame.timestamp`); ``received`` is
    ``time.monotonic()`` when the report arrived. The sender's clock is not ours: only differences between
    sender times of one publisher (its audio and video share the clock) are meaningful as they are.
    """

    ntp: float
    timestamp: int
    clock_rate: int
    received: float

    @staticmethod
    def ntp_seconds(ntp_timestamp: int) -> float:
        """Unix seconds of a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
        return (ntp_timestamp >> 32) - _NTP_UNIX + (ntp_timestamp & 0xFFFFFFFF) / 4294967296.0

    def sender_time(self, timestamp: int) -> float:
        """The sender's wall-clock time (Unix seconds) of the media timestamp ``timestamp``."""
        return self.ntp + (timestamp - self.timestamp) / self.clock_rate


@lru_cache(maxsize=8)
def _time_base(clock_rate: int) -> fractions.Fraction:
    return fractions.Fraction(1, clock_rate)


# --- bitstream inspection (no decoding) ---------------------------------------------------------------


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether the depayloaded frame ``data`` is a keyframe (VP8 frame tag, H.264 IDR/SPS in Annex B)."""
    if codec == "VP8":
        return len(data) >= 10 and data[0] & 0x01 == 0 and data[3:6] == b"\x9d\x01\x2a"
    if codec == "H264":
        return any(t in (5, 7) for t in _annexb_nal_types(data))
    return True


def vp8_frame_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 keyframe header, else None."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def _annexb_nal_types(data: bytes) -> list[int]:
    types = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def is_frame_start(codec: str, payload: bytes) -> bool:
    """Whether the RTP ``payload`` (not depayloaded) starts a frame."""
    if not payload:
        return False
    if codec == "VP8":
        # RFC 7741 §4.2: S bit set and partition index 0 on the first packet of a frame
        return payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0
    if codec == "H264":
        nal_type = payload[0] & 0x1F
        if nal_type == 28:  # FU-A: start bit, then first_mb_in_slice == 0 for slices
            if len(payload) < 3 or not payload[1] & 0x80:
                return False
            inner = payload[1] & 0x1F
            return inner not in (1, 5) or payload[2] & 0x80 != 0
        if nal_type == 24:  # STAP-A: aggregation of parameter sets / first slices
            return True
        if nal_type in (1, 5):
            return len(payload) > 1 and payload[1] & 0x80 != 0
        return nal_type in (6, 7, 8, 9)
    return True


# --- unwrapping ---------------------------------------------------------------------------------------


class _Unwrapper:
    """Extends a wrapping counter of ``bits`` bits to an int, relative to its first value."""

    __slots__ = ("_bits", "_half", "_mask", "_last", "_ext")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last: int | None = None
        self._ext = 0

    def unwrap(self, value: int) -> int:
        if self._last is None:
            self._last = value
            return 0
        delta = (value - self._last) & self._mask
        if delta >= self._half:
            delta -= 1 << self._bits
        ext = self._ext + delta
        if delta > 0:
            self._last, self._ext = value, ext
        return ext

    def peek(self, value: int) -> int | None:
        """What :meth:`unwrap` would return for ``value``, without moving on; None before the first value."""
        if self._last is None:
            return None
        delta = (value - self._last) & self._mask
        if delta >= self._half:
            delta -= 1 << self._bits
        return self._ext + delta


# --- assemblers ---------------------------------------------------------------------------------------


class AudioAssembler:
    """Every packet is a frame; never waits for a missing one (see module docstring)."""

    def __init__(self, codec: str, clock_rate: int) -> None:
        self.codec = codec
        self.clock_rate = clock_rate
        self.keyframe_wanted = False
        self.frames_lost = 0
        self.packets_late = 0
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._last: int | None = None

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, data: bytes, now: float
    ) -> list[EncodedFrame]:
        ext = self._seq.unwrap(seq)
        if self._last is not None:
            if ext <= self._last:
                self.packets_late += 1
                return []
            self.frames_lost += ext - self._last - 1
        self._last = ext
        if not data:
            return []
        ts = self._ts.unwrap(timestamp)
        return [EncodedFrame("audio", self.codec, data, ts, self.clock_rate, True, now)]

    def timeline(self, rtp_timestamp: int) -> int | None:
        """``rtp_timestamp`` on the frames' timeline (:attr:`EncodedFrame.timestamp`); None before a frame."""
        return self._ts.peek(rtp_timestamp)


@dataclass(slots=True)
class _Pkt:
    timestamp: int
    marker: bool
    start: bool
    data: bytes


class VideoAssembler:
    """Frames from contiguous packets; bounded wait on holes; keyframe gate after a loss."""

    def __init__(self, codec: str, clock_rate: int, loss_wait: float, capacity: int = 2048) -> None:
        self.codec = codec
        self.clock_rate = clock_rate
        self.loss_wait = loss_wait
        self.capacity = capacity
        #: set when the stream needs a keyframe (start, loss); the owner clears it after requesting
        self.keyframe_wanted = False
        self.need_keyframe = True
        self.frames_lost = 0
        self.frames_skipped = 0
        self.packets_late = 0
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._packets: dict[int, _Pkt] = {}
        self._next: int | None = None
        self._gap_since: float | None = None

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, data: bytes, now: float
    ) -> list[EncodedFrame]:
        ext = self._seq.unwrap(seq)
        if (self._next is not None and ext < self._next) or ext in self._packets:
            self.packets_late += 1
            return []
        start = is_frame_start(self.codec, payload)
        self._packets[ext] = _Pkt(timestamp, marker, start, data)
        if self._next is None:
            if not start:
                if len(self._packets) > self.capacity:
                    self._packets.clear()
                return []
            self._next = ext
            for old in [k for k in self._packets if k < ext]:
                del self._packets[old]
        return self._drain(now)

    def _drain(self, now: float) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        packets = self._packets
        while self._next is not None:
            seq = self._next
            first_ts: int | None = None
            end: int | None = None
            while seq in packets:
                pkt = packets[seq]
                if first_ts is None:
                    first_ts = pkt.timestamp
                elif pkt.timestamp != first_ts:
                    end = seq - 1  # marker lost with nothing missing: the timestamp change ends the frame
                    break
                if pkt.marker:
                    end = seq
                    break
                seq += 1
            if end is not None and first_ts is not None:
                data = b"".join(packets.pop(k).data for k in range(self._next, end + 1))
                self._next = end + 1
                self._gap_since = None
                frame = self._frame(data, first_ts, now)
                if frame is not None:
                    out.append(frame)
                continue
            # hole at `seq`: wait for a retransmission unless later packets show it has been too long
            later = [k for k in packets if k > seq]
            if not later:
                return out
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < self.loss_wait and len(packets) < self.capacity:
                return out
            resume = min((k for k in later if packets[k].start), default=None)
            if resume is None:
                if len(packets) < self.capacity:
                    return out
                packets.clear()
                self._next = None
            else:
                for k in [k for k in packets if k < resume]:
                    del packets[k]
                self._next = resume
            self._gap_since = None
            self.frames_lost += 1
            self.need_keyframe = True
            self.keyframe_wanted = True
        return out

    def _frame(self, data: bytes, rtp_timestamp: int, now: float) -> EncodedFrame | None:
        keyframe = is_keyframe(self.codec, data)
        ts = self._ts.unwrap(rtp_timestamp)
        if self.need_keyframe and not keyframe:
            self.frames_skipped += 1
            self.keyframe_wanted = True
            return None
        self.need_keyframe = False
        return EncodedFrame("video", self.codec, data, ts, self.clock_rate, keyframe, now)

    def timeline(self, rtp_timestamp: int) -> int | None:
        """``rtp_timestamp`` on the frames' timeline (:attr:`EncodedFrame.timestamp`); None before a frame."""
        return self._ts.peek(rtp_timestamp)


# --- keyframe requests --------------------------------------------------------------------------------


class KeyframeRequester:
    """At most one PLI per ``min_interval``; a request inside the window is deferred, not lost.

    ``send`` performs the PLI; ``on_sent(reason)`` is told of each one actually sent;
    ``on_task_failed`` of a sending task that failed in a way ``send``'s guard did not expect.
    """

    def __init__(
        self,
        send: Callable[[], Awaitable[None]],
        min_interval: float,
        on_sent: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        on_task_failed: _tasks.FailureHook | None = None,
    ) -> None:
        self._send = send
        self._on_task_failed = on_task_failed
        self._min_interval = min_interval
        self._on_sent = on_sent
        self._clock = clock
        self._last_sent = -math.inf
        self._deferred: asyncio.TimerHandle | None = None
        self._deferred_reason = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.requested = 0
        self.sent = 0

    @property
    def last_sent(self) -> float:
        return self._last_sent

    def request(self, reason: str) -> None:
        """Ask the publisher for a keyframe (throttled)."""
        if self.closed:
            return
        self.requested += 1
        now = self._clock()
        wait = self._last_sent + self._min_interval - now
        if wait <= 0:
            self._fire(reason)
        elif self._deferred is None:
            self._deferred_reason = reason
            self._deferred = asyncio.get_running_loop().call_later(wait, self._fire_deferred)

    def keyframe_arrived(self) -> None:
        """A keyframe reached the sinks: every request made so far is satisfied."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def _fire_deferred(self) -> None:
        self._deferred = None
        if not self.closed:
            self._fire(self._deferred_reason)

    def _fire(self, reason: str) -> None:
        if self._deferred is not None:  # a deferred request whose timer has not run yet: this PLI answers it
            self._deferred.cancel()
            self._deferred = None
        self._last_sent = self._clock()
        self.sent += 1
        _tasks.spawn(self._tasks, self._send_safely(), name="keyframe-request", owner="keyframe requester",
                     on_failure=self._on_task_failed)
        self._on_sent(reason)

    async def _send_safely(self) -> None:
        try:
            await self._send()
        except ConnectionError:
            pass  # the publisher's transport is going away; nothing to ask
        except Exception:  # a PLI must never take the publication down
            logger.exception("keyframe request failed")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- sinks ----------------------------------------------------------------------------------------------


class SinkQueue:
    """A bounded queue of frames for one sink, with keyframe gate and timestamp rebasing.

    ``on_keyframe_needed(reason)`` is called when the sink needs a keyframe it has not asked for yet
    (overflow); ``on_overflow(dropped)`` after each overflow. Both run synchronously on ``push``.
    """

    def __init__(
        self,
        kind: str,
        maxsize: int,
        on_keyframe_needed: Callable[[str], None],
        on_overflow: Callable[[int], None],
    ) -> None:
        self.kind = kind
        self.maxsize = max(1, maxsize)
        self._on_keyframe_needed = on_keyframe_needed
        self._on_overflow = on_overflow
        self._items: collections.deque[tuple[EncodedFrame, int]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.waiting_keyframe = kind == "video"
        self.waiting_since = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.overflows = 0
        self._source: object | None = None
        self._offset = 0
        self._last_out: int | None = None
        self._last_arrival = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def switch_source(self) -> None:
        """The next frame comes from another source: drop what is queued (video) and gate on a keyframe."""
        self._source = None
        if self.kind == "video":
            self.dropped += len(self._items)
            self._items.clear()
            self._gate()

    def _gate(self) -> None:
        if not self.waiting_keyframe:
            self.waiting_keyframe = True
            self.waiting_since = time.monotonic()

    def push(self, frame: EncodedFrame, source: object) -> None:
        """Queue ``frame`` from ``source`` (any identity: a new one rebases timestamps). Never blocks."""
        if self.closed:
            return
        self.frames_in += 1
        if self.waiting_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self.waiting_keyframe = False
        if len(self._items) >= self.maxsize:
            self.overflows += 1
            if self.kind == "video":
                dropped = len(self._items)
                self._items.clear()
                if not frame.keyframe:
                    dropped += 1
                    self.dropped += dropped
                    self._gate()
                    self._on_overflow(dropped)
                    self._on_keyframe_needed("overflow")
                    return
                self.dropped += dropped
            else:
                self._items.popleft()
                dropped = 1
                self.dropped += 1
            self._on_overflow(dropped)
        self._items.append((frame, self._rebase(frame, source)))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _rebase(self, frame: EncodedFrame, source: object) -> int:
        if source is not self._source:
            self._source = source
            if self._last_out is None:
                self._offset = -frame.timestamp
            else:
                elapsed = max(1, int((frame.arrival - self._last_arrival) * frame.clock_rate))
                self._offset = self._last_out + elapsed - frame.timestamp
        out = frame.timestamp + self._offset
        if self._last_out is not None and out <= self._last_out:
            # the source's clock went backwards (publisher restarted): keep ours monotonic
            out = self._last_out + 1
            self._offset = out - frame.timestamp
        self._last_out = out
        self._last_arrival = frame.arrival
        return out

    async def get(self) -> tuple[EncodedFrame, int] | None:
        """The next (frame, rebased timestamp); ``None`` once closed."""
        while not self._items:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.frames_out += 1
        return self._items.popleft()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._items.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class ForwardedTrack(MediaStreamTrack):
    """The track an aiortc ``RTCRtpSender`` reads for one subscriber slot.

    ``recv`` returns ``av.Packet``, so the sender re-packetizes with ``encoder.pack()`` and never encodes.
    """

    def __init__(self, kind: str, queue: SinkQueue, meter: RateMeter | None = None,
                 delays: DelaySampler | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._queue = queue
        self._meter = meter
        self._delays = delays

    async def recv(self) -> av.Packet[Any]:
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        frame, pts = item
        if self._meter is not None or self._delays is not None:
            now = time.monotonic()
            if self._meter is not None:
                self._meter.add(now, len(frame.data))
            if self._delays is not None:
                self._delays.add(now - frame.arrival)
        return frame.to_packet(pts)
