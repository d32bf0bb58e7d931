"""RTP-level forwarding: rewrite the headers of received packets per subscriber slot, keep a NACK history.

Theory of operation
-------------------
Frame-level forwarding (``sfu.forwarding``) re-assembles frames and lets aiortc's ``RTCRtpSender``
re-packetize them for every subscriber: about 15 µs of Python per outgoing packet. This module forwards
the publisher's packets as they are and only rewrites what identifies the stream to the subscriber, so an
outgoing packet costs one ``struct`` call and one copy of the payload (about 1 µs; ``bench/rtp_forward.py``
compares the two paths). It is sans-I/O: the
driver passes packets and the wall clock in, and sends the bytes that come out (after SRTP).

:class:`SlotRewriter` (one per subscriber slot) owns the outgoing stream of that slot:

- **Source.** :meth:`SlotRewriter.set_source` names the current source (any identity: a publication).
  Packets of any other source are dropped, so late packets of the previous source never leak after a
  switch. A change of the incoming SSRC within one source is treated like a switch.
- **Anchor.** The first packet forwarded from a source is the *anchor*: it gets the last outgoing
  sequence number + 1 and the last outgoing timestamp + the wall-clock gap since that timestamp was
  sent (at least one ``frame_interval``), so the subscriber sees one continuous, monotonic stream across
  sources. Every later packet of the source is mapped by the fixed offsets chosen then (on extended,
  wrap-free numbers): a reordered or retransmitted packet maps to the same outgoing number every time,
  and a packet older than the anchor is dropped (it would collide with what was sent before).
- **States (video).** ``waiting`` (no anchor: every packet is dropped until the first packet of a
  keyframe, which becomes the anchor) → ``forwarding``. ``set_source`` to another source, an SSRC change,
  a sequence jump confirmed by a second packet (RFC 3550 A.1 probation) and :meth:`request_keyframe`
  (e.g. after the slot overflowed) go back to ``waiting``; the driver asks the publisher for a keyframe
  (``waiting_keyframe``). Audio has no ``waiting`` state: its first packet anchors.
- **Gap-free numbering (audio).** Audio packets are numbered 1, 2, 3... in the order they are sent, so
  a packet lost on the publisher's uplink is a jump of the timestamp only: the subscriber's decoder
  conceals the missing 20 ms from the timestamps, and no receiver's jitter buffer waits for a packet
  the SFU never had (what frame-level forwarding gives too). A late or repeated packet is dropped.
  Video keeps the publisher's numbering (mapped by the offsets above), so a subscriber's NACK names a
  packet the send history may hold and its reference finder sees the loss.
- **VP8.** Picture ids and TL0PICIDX (RFC 7741 §4.2) are mapped like sequence numbers, so they too
  continue across a switch (a receiver's reference finder follows picture ids).
- **Header.** V=2, no padding, no CSRC; the marker and payload bytes of the input; the slot's SSRC and
  payload type; a one-byte header-extension block (RFC 8285 §4.2) with the slot's ids: mid,
  abs-send-time (from the wall clock, as aiortc writes it) and, for audio, the publisher's
  ssrc-audio-level when the incoming packet carried one.
- **Counters** for the slot's RTCP sender report: packets and payload octets sent, the highest RTP
  timestamp sent and the wall-clock time its first packet was built; :meth:`SlotRewriter.sender_report`
  extrapolates the (NTP, RTP) pair to "now" with the clock rate.

:class:`SendHistory` (one per video slot) keeps the last ``size`` outgoing packets by sequence number and
answers a subscriber's NACK with the bytes to resend: the packet itself, or (RFC 4588) an RTX packet on
the slot's RTX SSRC and payload type, with its own sequence counter and the original sequence number in
front of the payload. A NACK for a packet that fell out of the ring (or was never sent) gets ``None``.

Parsers of untrusted payloads (:func:`vp8_descriptor_length`, :func:`vp8_keyframe_start`,
:func:`h264_keyframe_start`) never raise ``IndexError``: a truncated descriptor raises
:class:`MalformedPayload`, a keyframe test says ``False``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sfu.errors import SfuError

__all__ = [
    "MalformedPayload",
    "RtpLike",
    "SendHistory",
    "SlotRewriter",
    "h264_keyframe_start",
    "ntp_timestamp",
    "vp8_descriptor_length",
    "vp8_keyframe_start",
]

#: seconds from the NTP era (1900-01-01) to the Unix epoch
NTP_UNIX = 2_208_988_800
#: RFC 3550 A.1: a jump larger than these (forward / backward) is a restart unless it is a stray packet
MAX_DROPOUT = 3000
MAX_MISORDER = 1000

_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")


class MalformedPayload(SfuError, ValueError):
    """An RTP payload is too short for the descriptor it announces (truncated or not the codec's)."""


class RtpLike(Protocol):
    """What the rewriter reads of an incoming packet (``aiortc.rtp.RtpPacket`` as parsed by the receiver)."""

    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int
    ssrc: int
    payload: bytes

    @property
    def extensions(self) -> _ExtensionsLike: ...


class _ExtensionsLike(Protocol):
    @property
    def audio_level(self) -> tuple[bool, int] | None: ...


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    return int((unix_seconds + NTP_UNIX) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def _abs_send_time(unix_seconds: float) -> int:
    # 6.18 fixed-point NTP seconds, 24 bits: what aiortc writes ((current_ntp_time() >> 14) & 0xFFFFFF)
    return int((unix_seconds + NTP_UNIX) * 262144.0) & 0xFFFFFF


# --- VP8 (RFC 7741) ----------------------------------------------------------------------------------------


def _vp8_fields(payload: bytes) -> tuple[int, int, int, int]:
    """(descriptor length, picture id offset or -1, picture id width in bits (0, 7, 15), TL0PICIDX offset or -1)."""
    size = len(payload)
    if size < 1:
        raise MalformedPayload("empty VP8 payload")
    if not payload[0] & 0x80:
        return 1, -1, 0, -1
    if size < 2:
        raise MalformedPayload("VP8 descriptor truncated in its extension bits")
    ext = payload[1]
    pos = 2
    pid_at, pid_bits, tl0_at = -1, 0, -1
    if ext & 0x80:  # I: picture id, 7 or 15 bits (M bit)
        if size < pos + 1:
            raise MalformedPayload("VP8 descriptor truncated in its picture id")
        pid_at = pos
        if payload[pos] & 0x80:
            if size < pos + 2:
                raise MalformedPayload("VP8 descriptor truncated in its long picture id")
            pid_bits = 15
            pos += 2
        else:
            pid_bits = 7
            pos += 1
    if ext & 0x40:  # L: TL0PICIDX
        if size < pos + 1:
            raise MalformedPayload("VP8 descriptor truncated in its TL0PICIDX")
        tl0_at = pos
        pos += 1
    if ext & 0x30:  # T or K: one byte TID|Y|KEYIDX
        if size < pos + 1:
            raise MalformedPayload("VP8 descriptor truncated in its TID/KEYIDX")
        pos += 1
    return pos, pid_at, pid_bits, tl0_at


def vp8_descriptor_length(payload: bytes) -> int:
    """Length of the VP8 payload descriptor at the start of an RTP ``payload`` (RFC 7741 §4.2).

    Raises :class:`MalformedPayload` when the payload ends inside the descriptor it announces.
    """
    return _vp8_fields(payload)[0]


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP ``payload`` is the first packet of a VP8 keyframe.

    The descriptor must have S=1 and partition index 0, and the VP8 payload header that follows must be
    a keyframe's (P bit clear, RFC 7741 §4.3) with the keyframe start code (RFC 6386 §9.1). ``False``
    for anything truncated or malformed.
    """
    if not payload or payload[0] & 0x17 != 0x10:  # S=1, PID=0
        return False
    try:
        start = _vp8_fields(payload)[0]
    except MalformedPayload:
        return False
    return (
        len(payload) >= start + 6
        and payload[start] & 0x01 == 0
        and payload[start + 3] == 0x9D
        and payload[start + 4] == 0x01
        and payload[start + 5] == 0x2A
    )


def h264_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP ``payload`` (RFC 6184) starts an H.264 keyframe: an SPS, or the start of an IDR slice,
    alone, first in a STAP-A, or in the first fragment of an FU-A. ``False`` for anything malformed."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A: 16-bit size, NAL unit, ...
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            inner = payload[pos + 2] & 0x1F
            if inner == 7 or (inner == 5 and size > 1 and pos + 3 < len(payload) and payload[pos + 3] & 0x80):
                return True
            pos += 2 + size
        return False
    if nal == 28:  # FU-A: start bit, then the inner type; an IDR slice must start at macroblock 0
        if len(payload) < 2 or not payload[1] & 0x80:
            return False
        inner = payload[1] & 0x1F
        return inner == 7 or (inner == 5 and len(payload) > 2 and payload[2] & 0x80 != 0)
    return nal == 7 or (nal == 5 and len(payload) > 1 and payload[1] & 0x80 != 0)


_KEYFRAME_START: dict[str, Callable[[bytes], bool]] = {"VP8": vp8_keyframe_start, "H264": h264_keyframe_start}


# --- the per-slot rewriter ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one kind of outgoing header is built: ``pack(first byte, marker|pt, seq, ts, ssrc[, 0xBEDE, words
    [, abs-send-time element]], tail)`` where ``tail`` holds the other elements and the padding;
    ``pack_vp8`` also takes the 4 bytes of a VP8 descriptor that follow the header."""

    first: int
    mode: int  # 0: no extension block, 1: block without abs-send-time, 2: block starting with abs-send-time
    words: int
    tail: bytes
    pack: Callable[..., bytes]
    pack_vp8: Callable[..., bytes]


_MODE_FORMATS = ("!BBHII", "!BBHIIHH", "!BBHIIHHI")


def _make_layout(first: int, mode: int, words: int, tail: bytes) -> _Layout:
    fmt = f"{_MODE_FORMATS[mode]}{len(tail)}s"
    return _Layout(first, mode, words, tail, struct.Struct(fmt).pack, struct.Struct(fmt + "4B").pack)


def _layout(mid: str | None, mid_id: int | None, abs_send_time_id: int | None, level: tuple[int, int] | None
            ) -> _Layout:
    """The layout of a header with the given one-byte extensions (``level``: (id, value byte) or None)."""
    for ext_id in (abs_send_time_id, mid_id, None if level is None else level[0]):
        if ext_id is not None and not 1 <= ext_id <= 14:
            raise ValueError(f"one-byte header extension ids are 1..14, not {ext_id}")
    elements = b""
    if level is not None:
        elements += bytes([level[0] << 4, level[1]])
    if mid_id is not None and mid is not None:
        value = mid.encode("utf8")
        if not 1 <= len(value) <= 16:
            raise ValueError("a mid in a one-byte header extension has 1..16 bytes")
        elements += bytes([(mid_id << 4) | (len(value) - 1)]) + value
    size = len(elements) + (4 if abs_send_time_id is not None else 0)
    if size == 0:
        return _make_layout(0x80, 0, 0, b"")
    padding = -size % 4
    return _make_layout(0x90, 2 if abs_send_time_id is not None else 1, (size + padding) // 4,
                        elements + bytes(padding))


class SlotRewriter:
    """The outgoing RTP stream of one subscriber slot, built from the packets of its current source.

    ``ssrc``, ``payload_type``, ``clock_rate`` and the header-extension ids (``mid_id`` with the ``mid``
    value, ``abs_send_time_id``, ``audio_level_id``; ``None`` = not negotiated) are the subscriber side's,
    as negotiated for the slot's m-line. ``codec`` ("VP8", "H264", "opus", ...) decides the keyframe gate
    (VP8 and H.264; none for audio) and VP8 picture-id mapping. ``frame_interval`` (clock units) is the
    least timestamp step at a source switch (default: 1/30 s for video, 20 ms for audio).
    ``initial_sequence_number`` and ``initial_timestamp`` default to random values (RFC 3550 §5.1).
    """

    __slots__ = (
        "ssrc", "payload_type", "clock_rate", "codec", "frame_interval",
        "packets_sent", "octets_sent", "last_timestamp_at",
        "dropped_other_source", "dropped_waiting", "dropped_stale", "dropped_jump", "anchors",
        "_keyframe_start", "_vp8", "_plain", "_levelled", "_abs_prefix", "_mid_element", "_extension_ids",
        "_source", "_anchored", "_in_ssrc", "_probe",
        "_high_seq16", "_high_seq", "_high_ts32", "_high_ts", "_anchor_seq", "_anchor_ts",
        "_seq_offset", "_ts_offset", "_ts_origin", "_out_seq", "_out_ts",
        "_pid_offset", "_tl0_offset", "_newest_payload", "_mapped", "_gap_free",
    )

    def __init__(
        self,
        *,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        codec: str,
        mid: str | None = None,
        mid_id: int | None = None,
        abs_send_time_id: int | None = None,
        audio_level_id: int | None = None,
        frame_interval: int | None = None,
        initial_sequence_number: int | None = None,
        initial_timestamp: int | None = None,
        gap_free: bool | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} is not 0..127")
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.codec = codec
        video = codec in _KEYFRAME_START
        self.frame_interval = frame_interval or (clock_rate // 30 if video else clock_rate // 50)
        self._keyframe_start = _KEYFRAME_START.get(codec)
        #: number the packets sent 1, 2, 3... (audio by default; see the module docstring)
        self._gap_free = not video if gap_free is None else gap_free
        self._vp8 = codec == "VP8"
        self._plain = _layout(mid, mid_id, abs_send_time_id, None)
        #: the layout for each audio-level byte (V bit | level), when the slot writes audio levels
        self._levelled: tuple[_Layout, ...] | None = None
        if audio_level_id is not None:
            self._levelled = tuple(_layout(mid, mid_id, abs_send_time_id, (audio_level_id, byte))
                                   for byte in range(256))
        self._abs_prefix = 0 if abs_send_time_id is None else ((abs_send_time_id << 4) | 2) << 24
        #: what resolved() hands the C rewriter: (abs-send-time id, audio-level id) and the mid's one-byte
        #: extension element (validated by _layout above)
        self._extension_ids = (abs_send_time_id, audio_level_id)
        self._mid_element = b""
        if mid_id is not None and mid is not None:
            value = mid.encode("utf8")
            self._mid_element = bytes([(mid_id << 4) | (len(value) - 1)]) + value
        #: counters (see module docstring); ``last_timestamp_at``: wall clock when ``last_timestamp`` was first sent
        self.packets_sent = 0
        self.octets_sent = 0
        self.last_timestamp_at = 0.0
        self.dropped_other_source = 0
        self.dropped_waiting = 0
        self.dropped_stale = 0
        self.dropped_jump = 0
        self.anchors = 0
        self._source: object | None = None
        self._anchored = False
        self._in_ssrc = -1
        self._probe = -1
        self._high_seq16 = self._high_seq = self._high_ts32 = self._high_ts = 0
        self._anchor_seq = self._anchor_ts = 0
        self._seq_offset = self._ts_offset = 0
        # the highest outgoing extended sequence number (one before the first, until something is sent)
        first_seq = random.getrandbits(16) if initial_sequence_number is None else initial_sequence_number & 0xFFFF
        self._out_seq = first_seq - 1
        self._ts_origin = random.getrandbits(32) if initial_timestamp is None else initial_timestamp & 0xFFFFFFFF
        #: the highest outgoing timestamp, unwrapped (None until something is sent)
        self._out_ts: int | None = None
        # VP8: offsets of picture id (mod 2**15) and TL0PICIDX (mod 2**8), whether either is not 0, and the
        # incoming payload of the newest packet sent (its mapped ids are what the next source continues)
        self._pid_offset = self._tl0_offset = 0
        self._mapped = False
        self._newest_payload = b""

    def resolved(self) -> dict[str, Any]:
        """The constructor's values as resolved (defaults, random starts, header-extension layout): what
        ``sfu.native.make_rewriter`` builds the C rewriter from, before anything was rewritten."""
        return {
            "ssrc": self.ssrc, "payload_type": self.payload_type, "clock_rate": self.clock_rate, "codec": self.codec,
            "frame_interval": self.frame_interval, "gap_free": self._gap_free,
            "keyframe": {"VP8": 1, "H264": 2}.get(self.codec, 0),  # the codecs of _KEYFRAME_START
            "first_sequence_number": (self._out_seq + 1) & 0xFFFF, "timestamp_origin": self._ts_origin,
            "abs_send_time_id": -1 if self._extension_ids[0] is None else self._extension_ids[0],
            "audio_level_id": -1 if self._extension_ids[1] is None else self._extension_ids[1],
            "mid_element": self._mid_element,
        }

    def __repr__(self) -> str:
        state = "forwarding" if self._anchored else ("waiting" if self._source is not None else "idle")
        return f"<SlotRewriter ssrc={self.ssrc} {self.codec} {state}>"

    # --- control ---------------------------------------------------------------------------------------

    @property
    def source(self) -> object | None:
        return self._source

    @property
    def last_timestamp(self) -> int | None:
        """The highest RTP timestamp sent (None before the first packet)."""
        return None if self._out_ts is None else self._out_ts & 0xFFFFFFFF

    @property
    def waiting_keyframe(self) -> bool:
        """Whether video of the current source is dropped until its next keyframe (the driver asks for one)."""
        return self._source is not None and not self._anchored and self._keyframe_start is not None

    def set_source(self, source: object | None) -> None:
        """Forward ``source`` from now on (``None``: nothing); packets of any other source are dropped.

        Video waits for a keyframe of the new source; its first forwarded packet continues the stream.
        """
        if source is self._source or (source is not None and source == self._source):
            return
        self._source = source
        self._anchored = False

    def request_keyframe(self) -> None:
        """Drop video until the current source's next keyframe (after a loss or an overflow downstream).

        The stream continues from the last packet sent (no sequence gap). No effect on audio.
        """
        if self._keyframe_start is not None:
            self._anchored = False

    # --- hot path ----------------------------------------------------------------------------------------

    def rewrite(self, packet: RtpLike, source: object, now: float) -> bytes | None:
        """The outgoing RTP packet (before SRTP) for ``packet`` of ``source``, or ``None`` to drop it.

        ``now`` is the wall clock (``time.time()``): it feeds abs-send-time and the sender-report pair.
        """
        current = self._source
        if current is None or (source is not current and source != current):
            self.dropped_other_source += 1
            return None
        seq = packet.sequence_number
        payload = packet.payload
        if not self._anchored or packet.ssrc != self._in_ssrc:
            if not self._anchor(packet, now):
                return None
            ext_seq = self._high_seq
            ext_ts = self._high_ts
        else:
            delta = (seq - self._high_seq16) & 0xFFFF
            if delta >= 0x8000:
                delta -= 0x10000
            if delta > MAX_DROPOUT or delta < -MAX_MISORDER:
                if seq != self._probe:
                    self._probe = (seq + 1) & 0xFFFF
                    self.dropped_jump += 1
                    return None
                # two sequential packets after the jump: the source restarted its numbering
                self._anchored = False
                if not self._anchor(packet, now):
                    return None
                ext_seq = self._high_seq
                ext_ts = self._high_ts
            else:
                ext_seq = self._high_seq + delta
                if ext_seq < self._anchor_seq:
                    self.dropped_stale += 1
                    return None
                dts = (packet.timestamp - self._high_ts32) & 0xFFFFFFFF
                if dts >= 0x80000000:
                    dts -= 0x100000000
                ext_ts = self._high_ts + dts
                if ext_ts < self._anchor_ts:
                    self.dropped_stale += 1
                    return None
                if delta > 0:
                    self._high_seq16 = seq
                    self._high_seq = ext_seq
                elif self._gap_free:  # late or repeated: its place in the renumbered stream is gone
                    self.dropped_stale += 1
                    return None
                if dts > 0:
                    self._high_ts32 = packet.timestamp
                    self._high_ts = ext_ts
        out_seq = self._out_seq + 1 if self._gap_free else ext_seq + self._seq_offset
        ext_out_ts = ext_ts + self._ts_offset
        layout = self._plain
        if self._levelled is not None:
            level = packet.extensions.audio_level
            if level is not None:
                layout = self._levelled[(0x80 if level[0] else 0) | (level[1] & 0x7F)]
        marker_pt = (0x80 if packet.marker else 0) | self.payload_type
        out_seq16 = out_seq & 0xFFFF
        out_ts = ext_out_ts & 0xFFFFFFFF
        mode = layout.mode
        mapped = self._mapped and len(payload) > 0 and payload[0] & 0x80 != 0
        if mode == 2:
            abs_send_time = self._abs_prefix | (int((now + NTP_UNIX) * 262144.0) & 0xFFFFFF)
            if (mapped and len(payload) >= 4 and payload[1] & 0xC0 == 0x80 and payload[2] & 0x80
                    and (len(payload) >= 5 or not payload[1] & 0x30)):
                # the usual VP8 descriptor (libwebrtc, aiortc): a 15-bit picture id, no TL0PICIDX, whole
                pid = ((((payload[2] & 0x7F) << 8) | payload[3]) + self._pid_offset) & 0x7FFF
                header = layout.pack_vp8(layout.first, marker_pt, out_seq16, out_ts, self.ssrc, 0xBEDE, layout.words,
                                         abs_send_time, layout.tail, payload[0], payload[1], 0x80 | (pid >> 8),
                                         pid & 0xFF)
                payload = payload[4:]
                mapped = False
            else:
                header = layout.pack(layout.first, marker_pt, out_seq16, out_ts, self.ssrc, 0xBEDE, layout.words,
                                     abs_send_time, layout.tail)
        elif mode == 1:
            header = layout.pack(layout.first, marker_pt, out_seq16, out_ts, self.ssrc, 0xBEDE, layout.words,
                                 layout.tail)
        else:
            header = layout.pack(layout.first, marker_pt, out_seq16, out_ts, self.ssrc, layout.tail)
        data = self._with_mapped_vp8(header, payload) if mapped else header + payload
        payload = packet.payload
        if out_seq > self._out_seq:
            self._out_seq = out_seq
            self._newest_payload = payload
        if self._out_ts is None or ext_out_ts > self._out_ts:
            self._out_ts = ext_out_ts
            self.last_timestamp_at = now
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data

    def _anchor(self, packet: RtpLike, now: float) -> bool:
        """Make ``packet`` the first of the current source (see module docstring); False if it is dropped."""
        keyframe_start = self._keyframe_start
        if keyframe_start is not None and not keyframe_start(packet.payload):
            self.dropped_waiting += 1
            self._anchored = False
            return False
        seq, ts = packet.sequence_number, packet.timestamp
        self._anchored = True
        self._in_ssrc = packet.ssrc
        self._probe = -1
        self._high_seq16 = seq
        self._high_ts32 = ts
        # extended numbers of the source start at its anchor, so the offsets below are the whole mapping
        self._high_seq = self._anchor_seq = seq
        self._high_ts = self._anchor_ts = ts
        self._seq_offset = self._out_seq + 1 - seq
        if self._out_ts is None:
            self._ts_offset = self._ts_origin - ts
        else:
            gap = round((now - self.last_timestamp_at) * self.clock_rate)
            self._ts_offset = self._out_ts + max(gap, self.frame_interval) - ts
        if self._vp8:
            self._anchor_vp8(packet.payload)
        self.anchors += 1
        return True

    def _anchor_vp8(self, payload: bytes) -> None:
        """Offsets that make the anchor's picture id and TL0PICIDX follow the newest ones sent."""
        new_pid, new_tl0 = _vp8_ids(payload)
        old_pid, old_tl0 = _vp8_ids(self._newest_payload)
        if new_pid is not None and old_pid is not None:
            self._pid_offset = ((old_pid + self._pid_offset) & 0x7FFF) + 1 - new_pid
        if new_tl0 is not None and old_tl0 is not None:
            self._tl0_offset = ((old_tl0 + self._tl0_offset) & 0xFF) + 1 - new_tl0
        self._pid_offset &= 0x7FFF
        self._tl0_offset &= 0xFF
        self._mapped = bool(self._pid_offset or self._tl0_offset)

    def _with_mapped_vp8(self, header: bytes, payload: bytes) -> bytes:
        """``header`` + ``payload`` with the picture id and TL0PICIDX of its VP8 descriptor mapped."""
        try:
            size, pid_at, pid_bits, tl0_at = _vp8_fields(payload)
        except MalformedPayload:
            return header + payload  # forwarded as it is: the subscriber's depacketizer judges it
        descriptor = bytearray(payload[:size])
        if pid_at >= 0:
            if pid_bits == 15:
                pid = ((((payload[pid_at] & 0x7F) << 8) | payload[pid_at + 1]) + self._pid_offset) & 0x7FFF
                descriptor[pid_at] = 0x80 | (pid >> 8)
                descriptor[pid_at + 1] = pid & 0xFF
            else:
                descriptor[pid_at] = (payload[pid_at] + self._pid_offset) & 0x7F
        if tl0_at >= 0:
            descriptor[tl0_at] = (payload[tl0_at] + self._tl0_offset) & 0xFF
        return b"".join((header, descriptor, memoryview(payload)[size:]))

    # --- RTCP ----------------------------------------------------------------------------------------------

    def sender_report(self, now: float) -> tuple[int, int] | None:
        """The (64-bit NTP timestamp, RTP timestamp) pair of an RTCP SR sent at wall-clock ``now``:
        the last timestamp sent, extrapolated by the clock rate. ``None`` before anything was sent."""
        if self._out_ts is None:
            return None
        elapsed = round((now - self.last_timestamp_at) * self.clock_rate)
        return ntp_timestamp(now), (self._out_ts + elapsed) & 0xFFFFFFFF


def _vp8_ids(payload: bytes) -> tuple[int | None, int | None]:
    """(picture id as 15 bits or None, TL0PICIDX or None) of a VP8 payload; (None, None) if malformed."""
    if not payload or not payload[0] & 0x80:
        return None, None
    try:
        _, pid_at, pid_bits, tl0_at = _vp8_fields(payload)
    except MalformedPayload:
        return None, None
    pid: int | None = None
    if pid_bits == 15:
        pid = ((payload[pid_at] & 0x7F) << 8) | payload[pid_at + 1]
    elif pid_bits == 7:
        pid = payload[pid_at]
    return pid, None if tl0_at < 0 else payload[tl0_at]


# --- NACK history ------------------------------------------------------------------------------------------


def _header_length(packet: bytes) -> int:
    if len(packet) < 12:
        raise MalformedPayload("RTP packet shorter than its fixed header")
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < length + 4:
            raise MalformedPayload("RTP header extension truncated")
        length += 4 + 4 * _U16.unpack_from(packet, length + 2)[0]
    if len(packet) < length:
        raise MalformedPayload("RTP header extension truncated")
    return length


def _set_abs_send_time(buf: bytearray, header_length: int, ext_id: int, now: float) -> None:
    """Overwrite the abs-send-time element of a one-byte extension block, if present."""
    start = 12 + 4 * (buf[0] & 0x0F)
    if not buf[0] & 0x10 or buf[start] != 0xBE or buf[start + 1] != 0xDE:
        return
    pos = start + 4
    while pos < header_length:
        byte = buf[pos]
        if byte == 0:
            pos += 1
            continue
        size = (byte & 0x0F) + 1
        if byte >> 4 == ext_id and size == 3 and pos + 4 <= header_length:
            value = _abs_send_time(now)
            buf[pos + 1] = value >> 16
            buf[pos + 2] = (value >> 8) & 0xFF
            buf[pos + 3] = value & 0xFF
            return
        pos += 1 + size


class SendHistory:
    """The last ``size`` packets a slot sent, by sequence number, to answer its subscriber's NACKs.

    ``size`` is rounded up to a power of two (the ring stays in order across the 16-bit wrap). With
    ``rtx_payload_type`` and ``rtx_ssrc`` (both, or neither) a retransmission is RTX-wrapped (RFC 4588 §4);
    ``abs_send_time_id`` lets a retransmission carry its own send time.
    """

    __slots__ = ("size", "rtx_payload_type", "rtx_ssrc", "abs_send_time_id", "retransmitted", "missed",
                 "_mask", "_seqs", "_packets", "_rtx_seq")

    def __init__(
        self,
        size: int = 512,
        *,
        rtx_payload_type: int | None = None,
        rtx_ssrc: int | None = None,
        abs_send_time_id: int | None = None,
        initial_rtx_sequence_number: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a send history holds at least one packet")
        if (rtx_payload_type is None) != (rtx_ssrc is None):
            raise ValueError("RTX needs both a payload type and an SSRC")
        if rtx_payload_type is not None and not 0 <= rtx_payload_type <= 127:
            raise ValueError(f"payload type {rtx_payload_type} is not 0..127")
        self.size = 1 << (size - 1).bit_length()
        self.rtx_payload_type = rtx_payload_type
        self.rtx_ssrc = None if rtx_ssrc is None else rtx_ssrc & 0xFFFFFFFF
        self.abs_send_time_id = abs_send_time_id
        self.retransmitted = 0
        self.missed = 0
        self._mask = self.size - 1
        self._seqs: list[int] = [-1] * self.size
        self._packets: list[bytes] = [b""] * self.size
        self._rtx_seq = (random.getrandbits(16) if initial_rtx_sequence_number is None
                         else initial_rtx_sequence_number & 0xFFFF)

    def add(self, packet: bytes) -> None:
        """Remember an outgoing RTP packet (before SRTP), replacing the oldest one in its place."""
        seq = (packet[2] << 8) | packet[3]
        slot = seq & self._mask
        self._seqs[slot] = seq
        self._packets[slot] = packet

    def rings(self) -> tuple[list[int], list[bytes]]:
        """The two rings behind :meth:`add`, by place ``sequence number & (size - 1)``: sequence numbers (-1:
        empty) and packets. ``sfu.native.forward`` writes into them as :meth:`add` does."""
        return self._seqs, self._packets

    def __contains__(self, sequence_number: object) -> bool:
        return isinstance(sequence_number, int) and self.get(sequence_number) is not None

    def get(self, sequence_number: int) -> bytes | None:
        """The packet sent with ``sequence_number``, if still held."""
        slot = sequence_number & self._mask
        return self._packets[slot] if self._seqs[slot] == sequence_number & 0xFFFF else None

    def retransmission(self, sequence_number: int, now: float | None = None) -> bytes | None:
        """The bytes that answer a NACK of ``sequence_number`` (RTX-wrapped if configured), or ``None``.

        With ``now`` (wall clock) and ``abs_send_time_id``, abs-send-time is set to the resend time.
        """
        packet = self.get(sequence_number)
        if packet is None:
            self.missed += 1
            return None
        self.retransmitted += 1
        if self.rtx_payload_type is None and (now is None or self.abs_send_time_id is None):
            return packet
        hlen = _header_length(packet)
        buf = bytearray(packet[:hlen])
        if now is not None and self.abs_send_time_id is not None:
            _set_abs_send_time(buf, hlen, self.abs_send_time_id, now)
        if self.rtx_payload_type is None or self.rtx_ssrc is None:
            return bytes(buf) + packet[hlen:]
        buf[1] = (buf[1] & 0x80) | self.rtx_payload_type
        _U16.pack_into(buf, 2, self._rtx_seq)
        _U32.pack_into(buf, 8, self.rtx_ssrc)
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return bytes(buf) + packet[2:4] + packet[hlen:]
