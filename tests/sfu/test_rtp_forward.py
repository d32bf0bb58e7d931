"""RTP-level forwarding core: header rewrite per slot, keyframe gate, source switches, NACK history, VP8 parsing.

Every outgoing packet is parsed back with aiortc's own ``RtpPacket.parse`` and a ``HeaderExtensionsMap``
configured with the slot's ids, as the subscriber's aiortc (or browser) would.
"""

from __future__ import annotations

import datetime
import random
import struct
from fractions import Fraction

import av
import pytest
from aiortc.clock import datetime_to_ntp
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from sfu.rtp_forward import (
    MAX_DROPOUT,
    MalformedPayload,
    SendHistory,
    SlotRewriter,
    h264_keyframe_start,
    ntp_timestamp,
    vp8_descriptor_length,
    vp8_keyframe_start,
)

pytestmark = pytest.mark.unit

MID_ID, ABS_ID, LEVEL_ID = 1, 3, 5
VIDEO_PT, AUDIO_PT, RTX_PT = 97, 111, 98
OUT_SSRC, RTX_SSRC = 0x11223344, 0x55667788
T0 = 1_790_000_000.0  # a wall-clock time (Unix seconds)

#: VP8 payload header (RFC 6386 §9.1) of a keyframe: P=0, start code, 320x180; and of a delta frame (P=1)
KEY_HEADER = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xb4\x00"
DELTA_HEADER = b"\x31\x02\x00"


def ext_map(*, mid: bool = True, abs_send_time: bool = True, audio_level: bool = False) -> HeaderExtensionsMap:
    uris = []
    if mid:
        uris.append((MID_ID, "urn:ietf:params:rtp-hdrext:sdes:mid"))
    if abs_send_time:
        uris.append((ABS_ID, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"))
    if audio_level:
        uris.append((LEVEL_ID, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"))
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in uris]))
    return extensions_map


VIDEO_MAP = ext_map()


def video_slot(seq: int = 1000, ts: int = 500_000, mid: str = "1", codec: str = "VP8",
               abs_send_time: bool = True) -> SlotRewriter:
    return SlotRewriter(ssrc=OUT_SSRC, payload_type=VIDEO_PT, clock_rate=90000, codec=codec, mid=mid,
                        mid_id=MID_ID, abs_send_time_id=ABS_ID if abs_send_time else None,
                        initial_sequence_number=seq, initial_timestamp=ts)


def audio_slot(seq: int = 7, ts: int = 9000, mid: str = "2", level: bool = True) -> SlotRewriter:
    return SlotRewriter(ssrc=OUT_SSRC, payload_type=AUDIO_PT, clock_rate=48000, codec="opus", mid=mid,
                        mid_id=MID_ID, abs_send_time_id=ABS_ID, audio_level_id=LEVEL_ID if level else None,
                        initial_sequence_number=seq, initial_timestamp=ts)


def descriptor(start: bool = True, pid: int | None = None, long_pid: bool = True, tl0: int | None = None,
               partition: int = 0) -> bytes:
    if pid is None and tl0 is None:
        return bytes([(0x10 if start else 0) | partition])
    desc = bytes(VpxPayloadDescriptor(partition_start=int(start), partition_id=partition,
                                      picture_id=pid if long_pid else None, tl0picidx=tl0))
    if pid is not None and not long_pid:  # aiortc writes only 15-bit ids: build the 7-bit form by hand
        desc = bytes([desc[0] | 0x80, desc[1] | 0x80 if len(desc) > 1 else 0x80, pid & 0x7F]) + desc[2:]
    return desc


def vp8_packet(seq: int, ts: int, *, key: bool = False, start: bool = True, marker: bool = False,
               pid: int | None = None, long_pid: bool = True, tl0: int | None = None, ssrc: int = 0xA,
               body: bytes = b"v" * 40) -> RtpPacket:
    header = (KEY_HEADER if key else DELTA_HEADER) if start else b""
    payload = descriptor(start, pid, long_pid, tl0) + header + body
    return RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq & 0xFFFF,
                     timestamp=ts & 0xFFFFFFFF, ssrc=ssrc, payload=payload)


def opus_packet(seq: int, ts: int, level: tuple[bool, int] | None = None, ssrc: int = 0xB) -> RtpPacket:
    packet = RtpPacket(payload_type=111, marker=0, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF,
                       ssrc=ssrc, payload=b"\xfc" + bytes([seq & 0xFF]) * 30)
    packet.extensions.audio_level = level
    return packet


def parse(data: bytes, extensions_map: HeaderExtensionsMap = VIDEO_MAP) -> RtpPacket:
    return RtpPacket.parse(data, extensions_map)


def abs_send_time(packet: RtpPacket) -> int:
    value = packet.extensions.abs_send_time
    assert value is not None
    return value


def aiortc_abs_send_time(unix_seconds: float) -> int:
    moment = datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC)
    return int((datetime_to_ntp(moment) >> 14) & 0xFFFFFF)


# --- header bytes ---------------------------------------------------------------------------------------------


def test_video_header_is_what_aiortc_parses_field_by_field() -> None:
    slot = video_slot(mid="video-0")
    slot.set_source("a")
    packet = vp8_packet(40_000, 123_456, key=True, marker=True)
    data = slot.rewrite(packet, "a", T0)
    assert data is not None
    out = parse(data)
    assert (out.version, out.padding_size, out.csrc) == (2, 0, [])
    assert (out.marker, out.payload_type, out.ssrc) == (1, VIDEO_PT, OUT_SSRC)
    assert (out.sequence_number, out.timestamp) == (1000, 500_000)
    assert out.payload == packet.payload
    assert out.extensions.mid == "video-0"
    assert abs(abs_send_time(out) - aiortc_abs_send_time(T0)) <= 1
    assert out.extensions.audio_level is None
    # the raw block: X set, no CSRC, one-byte profile, length in words covering exactly the padded elements
    assert data[0] == 0x90
    profile, words = struct.unpack_from("!HH", data, 12)
    assert profile == 0xBEDE
    assert len(data) == 12 + 4 + 4 * words + len(packet.payload)
    # a delta packet right after: marker clear, next sequence number, same frame timestamp
    data = slot.rewrite(vp8_packet(40_001, 123_456, start=False), "a", T0 + 0.001)
    assert data is not None
    out = parse(data)
    assert (out.marker, out.sequence_number, out.timestamp) == (0, 1001, 500_000)


@pytest.mark.parametrize("mid", ["0", "ab", "abc", "abcd", "a" * 7, "a" * 16, "mặt"])
def test_mid_of_any_length_is_padded_to_whole_words(mid: str) -> None:
    for level in (None, (True, 42)):
        slot = audio_slot(mid=mid)
        slot.set_source("mic")
        data = slot.rewrite(opus_packet(5, 960, level), "mic", T0)
        assert data is not None
        out = parse(data, ext_map(audio_level=True))
        assert out.extensions.mid == mid
        assert out.extensions.audio_level == level
        words = struct.unpack_from("!H", data, 14)[0]
        block = data[16:16 + 4 * words]
        assert len(data) == 16 + 4 * words + 31
        used = 4 + (2 if level else 0) + 1 + len(mid.encode())  # abs-send-time, audio level, mid elements
        assert 0 <= len(block) - used < 4 and block[used:] == b"\x00" * (len(block) - used)


def test_audio_level_is_the_publishers_and_absent_when_it_sent_none() -> None:
    slot = audio_slot()
    slot.set_source("mic")
    audio_map = ext_map(audio_level=True)
    loud = parse(slot.rewrite(opus_packet(1, 0, (True, 10)), "mic", T0) or b"", audio_map)
    quiet = parse(slot.rewrite(opus_packet(2, 960, (False, 127)), "mic", T0) or b"", audio_map)
    none = parse(slot.rewrite(opus_packet(3, 1920, None), "mic", T0) or b"", audio_map)
    assert loud.extensions.audio_level == (True, 10)
    assert quiet.extensions.audio_level == (False, 127)
    assert none.extensions.audio_level is None and none.extensions.mid == "2"
    assert [p.sequence_number for p in (loud, quiet, none)] == [7, 8, 9]
    # a slot without the audio-level id never writes one
    plain = audio_slot(level=False)
    plain.set_source("mic")
    out = parse(plain.rewrite(opus_packet(1, 0, (True, 10)), "mic", T0) or b"", audio_map)
    assert out.extensions.audio_level is None and out.extensions.mid == "2"


def test_no_negotiated_extension_means_a_bare_twelve_byte_header() -> None:
    slot = SlotRewriter(ssrc=7, payload_type=0, clock_rate=8000, codec="PCMU", initial_sequence_number=1,
                        initial_timestamp=2)
    slot.set_source("x")
    data = slot.rewrite(opus_packet(9, 9), "x", T0)
    assert data is not None and data[0] == 0x80 and len(data) == 12 + 31
    out = parse(data)
    assert (out.ssrc, out.sequence_number, out.timestamp, out.payload_type) == (7, 1, 2, 0)


def test_invalid_slot_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        SlotRewriter(ssrc=1, payload_type=128, clock_rate=90000, codec="VP8")
    with pytest.raises(ValueError):
        SlotRewriter(ssrc=1, payload_type=96, clock_rate=90000, codec="VP8", mid="0", mid_id=15)
    with pytest.raises(ValueError):
        SlotRewriter(ssrc=1, payload_type=96, clock_rate=90000, codec="VP8", mid="x" * 17, mid_id=1)
    with pytest.raises(ValueError):
        SlotRewriter(ssrc=1, payload_type=111, clock_rate=48000, codec="opus", audio_level_id=0)


# --- mapping -----------------------------------------------------------------------------------------------------


def test_sequence_numbers_and_timestamps_wrap_on_both_sides() -> None:
    slot = video_slot(seq=65_533, ts=2**32 - 4_000)
    slot.set_source("a")
    seq, ts = 65_530, 2**32 - 7_000
    outs = []
    for i in range(12):
        packet = vp8_packet(seq + i, ts + 3000 * i, key=i == 0, marker=True)
        data = slot.rewrite(packet, "a", T0 + i / 30)
        assert data is not None
        outs.append(parse(data))
    assert [p.sequence_number for p in outs] == [(65_533 + i) & 0xFFFF for i in range(12)]
    assert [p.timestamp for p in outs] == [(2**32 - 4_000 + 3000 * i) & 0xFFFFFFFF for i in range(12)]
    assert slot.last_timestamp == (2**32 - 4_000 + 3000 * 11) & 0xFFFFFFFF
    # after both wraps, a late retransmission of a packet from before them maps as it did the first time
    for i in (1, 4, 9):
        again = parse(slot.rewrite(vp8_packet(seq + i, ts + 3000 * i, marker=True), "a", T0 + 1) or b"")
        assert (again.sequence_number, again.timestamp) == (outs[i].sequence_number, outs[i].timestamp)
    assert slot.dropped_stale == 0 and slot.last_timestamp == (2**32 - 4_000 + 3000 * 11) & 0xFFFFFFFF


def test_reordered_and_retransmitted_packets_map_to_the_same_numbers() -> None:
    slot = video_slot(seq=100, ts=0)
    slot.set_source("a")
    first: dict[int, tuple[int, int]] = {}
    order = [10, 11, 12, 14, 13, 16, 15, 17, 12, 14, 11]  # reordering, then three late retransmissions
    for n in order:
        data = slot.rewrite(vp8_packet(n, 90 * (n // 2), key=n == 10, start=n % 2 == 0), "a", T0)
        assert data is not None
        out = parse(data)
        mapped = (out.sequence_number, out.timestamp)
        assert mapped == (100 + n - 10, 90 * (n // 2) - 450)
        assert first.setdefault(n, mapped) == mapped
    assert slot.packets_sent == len(order)


def test_a_switch_continues_the_stream_after_the_last_packet_sent() -> None:
    slot = video_slot(seq=5000, ts=1_000_000)
    slot.set_source("a")
    for i in range(5):
        assert slot.rewrite(vp8_packet(200 + i, 10_000 + 3000 * i, key=i == 0, marker=True), "a", T0 + i / 30)
    last_sent_at = T0 + 4 / 30
    slot.set_source("b")
    assert slot.waiting_keyframe
    # a's late packets are dropped from now on; b's delta frames wait for its keyframe
    assert slot.rewrite(vp8_packet(205, 25_000, marker=True), "a", T0 + 0.2) is None
    assert slot.rewrite(vp8_packet(60_000, 7_777_000, pid=5), "b", T0 + 0.2) is None
    assert (slot.dropped_other_source, slot.dropped_waiting) == (1, 1)
    # b's keyframe, 0.5 s after a's last frame: the timestamp advances by that gap (45000 ticks)
    gap = 0.5
    data = slot.rewrite(vp8_packet(60_010, 7_780_000, key=True, pid=9), "b", last_sent_at + gap)
    assert data is not None and not slot.waiting_keyframe
    out = parse(data)
    assert out.sequence_number == 5005
    assert out.timestamp == 1_000_000 + 4 * 3000 + round(gap * 90000)
    # b's packets older than its keyframe (reordered or retransmitted) are dropped, later ones follow
    assert slot.rewrite(vp8_packet(60_009, 7_777_000, start=False), "b", T0 + 1) is None
    assert slot.dropped_stale == 1
    later = parse(slot.rewrite(vp8_packet(60_012, 7_783_000), "b", T0 + 1) or b"")
    assert (later.sequence_number, later.timestamp) == (5007, out.timestamp + 3000)
    # a quick switch back (gap below one frame interval) still advances by a whole frame interval
    slot.set_source("a")
    back = parse(slot.rewrite(vp8_packet(300, 50_000, key=True), "a", slot.last_timestamp_at + 0.001) or b"")
    assert (back.sequence_number, back.timestamp) == (5008, later.timestamp + 3000)
    assert slot.anchors == 3


def test_audio_is_never_gated_and_switches_without_a_keyframe() -> None:
    slot = audio_slot(seq=65_535, ts=0)
    slot.set_source("x")
    assert not slot.waiting_keyframe
    for i in range(3):
        assert slot.rewrite(opus_packet(10 + i, 960 * i), "x", T0 + 0.02 * i)
    slot.set_source("y")
    assert not slot.waiting_keyframe
    data = slot.rewrite(opus_packet(40_000, 123_456, ssrc=0xC), "y", T0 + 0.04 + 0.1)
    assert data is not None
    out = parse(data)
    assert out.sequence_number == (65_535 + 3) & 0xFFFF
    assert out.timestamp == 2 * 960 + 4800  # 100 ms after the last packet sent
    # a packet of y from before its first forwarded one would collide with x's numbers: dropped
    assert slot.rewrite(opus_packet(39_999, 123_456 - 960, ssrc=0xC), "y", T0 + 0.2) is None
    assert slot.rewrite(opus_packet(39_998, 123_456, ssrc=0xC), "y", T0 + 0.2) is None  # same time, earlier
    assert slot.dropped_stale == 2
    slot.request_keyframe()  # no effect on audio
    assert slot.rewrite(opus_packet(40_001, 123_456 + 960, ssrc=0xC), "y", T0 + 0.2) is not None


def test_request_keyframe_drops_until_the_next_keyframe_without_a_sequence_gap() -> None:
    slot = video_slot(seq=10, ts=0)
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True, marker=True), "a", T0)
    assert slot.rewrite(vp8_packet(2, 3000, marker=True), "a", T0 + 1 / 30)
    slot.request_keyframe()
    assert slot.waiting_keyframe
    for n in range(3, 8):
        assert slot.rewrite(vp8_packet(n, 3000 * n, marker=True), "a", T0 + n / 30) is None
    out = parse(slot.rewrite(vp8_packet(8, 24_000, key=True), "a", T0 + 8 / 30) or b"")
    assert out.sequence_number == 12
    assert out.timestamp == 3000 + round(7 / 30 * 90000)


def test_an_ssrc_change_inside_a_source_waits_for_a_keyframe() -> None:
    slot = video_slot(seq=0, ts=0)
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True), "a", T0)
    assert slot.rewrite(vp8_packet(500, 90_000, ssrc=0xBEEF), "a", T0 + 0.1) is None
    assert slot.waiting_keyframe
    out = parse(slot.rewrite(vp8_packet(501, 93_000, key=True, ssrc=0xBEEF), "a", T0 + 0.2) or b"")
    assert out.sequence_number == 1


def test_a_stray_far_packet_is_dropped_but_a_confirmed_jump_restarts_the_numbering() -> None:
    slot = audio_slot(seq=0, ts=0)
    slot.set_source("x")
    for i in range(3):
        assert slot.rewrite(opus_packet(100 + i, 960 * i), "x", T0 + 0.02 * i)
    far = 100 + MAX_DROPOUT + 500
    assert slot.rewrite(opus_packet(far, 5_000_000), "x", T0 + 0.06) is None
    assert slot.rewrite(opus_packet(103, 960 * 3), "x", T0 + 0.06) is not None  # the stream goes on
    assert slot.dropped_jump == 1
    assert slot.rewrite(opus_packet(far + 10, 9_000_000), "x", T0 + 0.08) is None
    out = parse(slot.rewrite(opus_packet(far + 11, 9_000_960), "x", T0 + 0.10) or b"")
    assert out.sequence_number == 4 and slot.dropped_jump == 2
    assert out.timestamp == 960 * 3 + 1920  # 40 ms after the last packet sent


def test_an_empty_slot_forwards_nothing() -> None:
    slot = video_slot()
    assert slot.rewrite(vp8_packet(1, 0, key=True), "a", T0) is None
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True), "a", T0) is not None
    slot.set_source(None)
    assert not slot.waiting_keyframe
    assert slot.rewrite(vp8_packet(2, 0), "a", T0) is None
    assert slot.rewrite(vp8_packet(2, 0), None, T0) is None
    assert slot.dropped_other_source == 3


def test_padding_only_and_malformed_packets_after_the_keyframe_do_not_break_the_stream() -> None:
    slot = video_slot(seq=0, ts=0)
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True, pid=3), "a", T0)
    empty = RtpPacket(payload_type=96, sequence_number=2, timestamp=0, ssrc=0xA, payload=b"")
    assert parse(slot.rewrite(empty, "a", T0) or b"").payload == b""
    broken = RtpPacket(payload_type=96, sequence_number=3, timestamp=3000, ssrc=0xA, payload=b"\x90\x80")
    assert parse(slot.rewrite(broken, "a", T0) or b"").payload == b"\x90\x80"
    assert slot.packets_sent == 3


# --- VP8 picture ids across switches ---------------------------------------------------------------------------


def picture_id(data: bytes) -> tuple[int | None, int | None]:
    desc, _ = VpxPayloadDescriptor.parse(parse(data, ext_map(abs_send_time=False)).payload)
    return desc.picture_id, desc.tl0picidx


@pytest.mark.parametrize("abs_send_time", [True, False])
def test_vp8_picture_ids_and_tl0picidx_continue_across_a_switch(abs_send_time: bool) -> None:
    slot = video_slot(seq=0, ts=0, abs_send_time=abs_send_time)
    slot.set_source("a")
    ids = []
    for i in range(3):
        packet = vp8_packet(10 + i, 3000 * i, key=i == 0, pid=(32_766 + i) & 0x7FFF, tl0=(254 + i) & 0xFF)
        data = slot.rewrite(packet, "a", T0)
        assert data is not None
        ids.append(picture_id(data))
    assert ids == [(32_766, 254), (32_767, 255), (0, 0)]  # unchanged from the first source, wrapping
    slot.set_source("b")
    data = slot.rewrite(vp8_packet(900, 0, key=True, pid=1234, tl0=7), "b", T0 + 0.1)
    assert data is not None and picture_id(data) == (1, 1)
    # a 7-bit picture id maps on the same offset (modulo 128)
    data = slot.rewrite(vp8_packet(901, 3000, pid=1235 & 0x7F, long_pid=False), "b", T0 + 0.13)
    assert data is not None and picture_id(data)[0] == 2
    # the usual descriptor (15-bit id, no TL0PICIDX), as libwebrtc and aiortc send it
    data = slot.rewrite(vp8_packet(902, 6000, pid=1236, body=b"tail"), "b", T0 + 0.16)
    assert data is not None and picture_id(data) == (3, None)
    assert parse(data, ext_map(abs_send_time=abs_send_time)).payload.endswith(DELTA_HEADER + b"tail")
    # retransmission of the keyframe's packet: same picture id
    data = slot.rewrite(vp8_packet(900, 0, key=True, pid=1234, tl0=7), "b", T0 + 0.2)
    assert data is not None and picture_id(data) == (1, 1)
    # the payload after the descriptor is untouched
    assert parse(data).payload[5:] == vp8_packet(900, 0, key=True, pid=1234, tl0=7).payload[5:]


# --- VP8 and H.264 parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("desc", "length"), [
    (b"\x10", 1),
    (b"\x90\x80\x05", 3),                 # I, 7-bit picture id
    (b"\x90\x80\x85\x06", 4),             # I, 15-bit picture id
    (b"\x90\xc0\x85\x06\x11", 5),         # I + L
    (b"\x90\xf0\x85\x06\x11\x40", 6),     # I + L + T + K
    (b"\x90\x10\x03", 3),                 # K alone
    (b"\x90\x20\x40", 3),                 # T alone
    (b"\x90\x00", 2),                     # X with no extension
])
def test_vp8_descriptor_length(desc: bytes, length: int) -> None:
    assert vp8_descriptor_length(desc + KEY_HEADER) == length
    assert vp8_descriptor_length(desc) == length
    if length > 1:
        with pytest.raises(MalformedPayload):
            vp8_descriptor_length(desc[:-1])
        assert not vp8_keyframe_start(desc[:-1])
    assert vp8_keyframe_start(desc + KEY_HEADER)
    assert not vp8_keyframe_start(desc + DELTA_HEADER + b"x" * 10)
    assert not vp8_keyframe_start(desc + KEY_HEADER[:5])  # cut inside the keyframe header


def test_vp8_keyframe_start_needs_the_first_packet_of_partition_zero() -> None:
    assert vp8_keyframe_start(descriptor(pid=77) + KEY_HEADER)
    assert vp8_keyframe_start(descriptor(pid=77, long_pid=False) + KEY_HEADER)
    assert not vp8_keyframe_start(descriptor(start=False) + KEY_HEADER)           # S=0
    assert not vp8_keyframe_start(descriptor(partition=1) + KEY_HEADER)            # partition 1
    assert not vp8_keyframe_start(b"\x10" + b"\x00\x02\x00\x9d\x01\x2b\x40")      # no start code
    assert not vp8_keyframe_start(b"")
    with pytest.raises(MalformedPayload):
        vp8_descriptor_length(b"")


def test_vp8_parsers_survive_garbage() -> None:
    rnd = random.Random(13)
    for _ in range(5000):
        payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 8)))
        assert isinstance(vp8_keyframe_start(payload), bool)
        assert isinstance(h264_keyframe_start(payload), bool)
        try:
            length = vp8_descriptor_length(payload)
        except MalformedPayload:
            continue
        assert 1 <= length <= min(6, len(payload))


@pytest.mark.parametrize("abs_send_time", [True, False])
def test_garbage_payloads_after_a_switch_are_forwarded_without_raising(abs_send_time: bool) -> None:
    slot = video_slot(seq=0, ts=0, abs_send_time=abs_send_time)
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True, pid=100), "a", T0)
    slot.set_source("b")
    assert slot.rewrite(vp8_packet(50, 0, key=True, pid=7000), "b", T0 + 0.1)  # picture ids now mapped
    rnd = random.Random(5)
    for i in range(2000):
        payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 9)))
        packet = RtpPacket(payload_type=96, sequence_number=51 + i, timestamp=3000 * i, ssrc=0xA, payload=payload)
        data = slot.rewrite(packet, "b", T0 + 0.1)
        assert data is not None
        out = parse(data)
        assert out.sequence_number == 2 + i and len(out.payload) == len(payload)
        try:
            size = vp8_descriptor_length(payload)
        except MalformedPayload:
            assert out.payload == payload
        else:
            assert out.payload[size:] == payload[size:] and out.payload[:1] == payload[:1]


def test_real_vp8_frames_from_aiortcs_encoder() -> None:
    encoder = Vp8Encoder()
    frames = []
    for i in range(3):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 40 + 60) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, 30)
        frames.append(encoder.encode(frame)[0])
    key, *deltas = frames
    assert vp8_keyframe_start(key[0])
    assert not any(vp8_keyframe_start(p) for p in key[1:])
    assert not any(vp8_keyframe_start(p) for frame in deltas for p in frame)
    # forwarded through a slot: gated until the keyframe, then passed byte for byte after the descriptor
    slot = video_slot(seq=0, ts=0)
    slot.set_source("enc")
    seq = 0
    for payloads in (deltas[0], key, deltas[1]):
        for payload in payloads:
            seq += 1
            packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 10, ssrc=1, payload=payload)
            data = slot.rewrite(packet, "enc", T0)
            if payloads is deltas[0]:
                assert data is None
            else:
                assert data is not None
                size = vp8_descriptor_length(payload)
                assert parse(data).payload[size:] == payload[size:]


def test_h264_keyframe_start() -> None:
    assert h264_keyframe_start(b"\x67\x42\x00\x1f")                      # SPS
    assert h264_keyframe_start(b"\x65\x88\x84")                          # IDR slice, first_mb 0
    assert not h264_keyframe_start(b"\x41\x9a\x00")                      # non-IDR slice
    assert h264_keyframe_start(b"\x7c\x85\x88")                          # FU-A start of an IDR slice
    assert not h264_keyframe_start(b"\x7c\x45\x88")                      # FU-A end fragment
    assert h264_keyframe_start(b"\x78\x00\x04\x67\x42\x00\x1f\x00\x02\x68\xce")  # STAP-A: SPS, PPS
    assert not h264_keyframe_start(b"\x78\x00\x02\x68\xce")              # STAP-A: PPS only
    slot = video_slot(codec="H264")
    slot.set_source("h")
    h264 = RtpPacket(payload_type=96, sequence_number=1, timestamp=0, ssrc=1, payload=b"\x41\x9a\x00")
    assert slot.rewrite(h264, "h", T0) is None and slot.waiting_keyframe


# --- sender report ------------------------------------------------------------------------------------------------


def test_sender_report_extrapolates_the_last_timestamp_sent() -> None:
    slot = video_slot(seq=0, ts=2**32 - 45_000)
    assert slot.sender_report(T0) is None
    slot.set_source("a")
    assert slot.rewrite(vp8_packet(1, 0, key=True), "a", T0)
    assert slot.rewrite(vp8_packet(2, 0, start=False, body=b"x" * 100), "a", T0 + 0.002)  # same frame
    report = slot.sender_report(T0 + 1.0)
    assert report is not None
    ntp, rtp = report
    assert ntp == ntp_timestamp(T0 + 1.0)
    assert abs(ntp - datetime_to_ntp(datetime.datetime.fromtimestamp(T0 + 1.0, datetime.UTC))) < 2**32 // 1000
    assert rtp == (2**32 - 45_000 + 90_000) & 0xFFFFFFFF  # the frame's first packet was sent at T0
    assert slot.packets_sent == 2
    assert slot.octets_sent == len(vp8_packet(1, 0, key=True).payload) + len(vp8_packet(2, 0, start=False,
                                                                                        body=b"x" * 100).payload)


# --- NACK history -------------------------------------------------------------------------------------------------


def sent_packets(count: int, first_seq: int, audio: bool = False) -> list[bytes]:
    slot = video_slot(seq=first_seq, ts=0)
    slot.set_source("a")
    out = []
    for i in range(count):
        data = slot.rewrite(vp8_packet(i, 3000 * (i // 3), key=i == 0, start=i % 3 == 0, marker=i % 3 == 2),
                            "a", T0 + i / 90)
        assert data is not None
        out.append(data)
    return out


def test_history_returns_the_packet_until_it_is_evicted_across_the_wrap() -> None:
    history = SendHistory(500)
    assert history.size == 512
    packets = sent_packets(600, first_seq=65_300)
    for data in packets:
        history.add(data)
    seqs = [(65_300 + i) & 0xFFFF for i in range(600)]
    for seq in seqs[:88]:
        assert seq not in history and history.retransmission(seq) is None
    for seq, data in zip(seqs[88:], packets[88:], strict=True):
        assert history.retransmission(seq) == data
    assert history.retransmission(12_345) is None  # never sent
    assert (history.retransmitted, history.missed) == (512, 89)


def test_rtx_wraps_as_rfc_4588_and_aiortc_unwraps_it() -> None:
    history = SendHistory(64, rtx_payload_type=RTX_PT, rtx_ssrc=RTX_SSRC, abs_send_time_id=ABS_ID,
                          initial_rtx_sequence_number=65_535)
    packets = sent_packets(10, first_seq=300)
    for data in packets:
        history.add(data)
    later = T0 + 3.0
    rtx_seqs = []
    for n in (303, 305, 303):
        rtx_bytes = history.retransmission(n, now=later)
        assert rtx_bytes is not None
        rtx = parse(rtx_bytes)
        assert (rtx.payload_type, rtx.ssrc) == (RTX_PT, RTX_SSRC)
        rtx_seqs.append(rtx.sequence_number)
        assert rtx.extensions.mid == "1"
        assert abs(abs_send_time(rtx) - aiortc_abs_send_time(later)) <= 1
        original = parse(packets[n - 300])
        restored = unwrap_rtx(rtx, payload_type=VIDEO_PT, ssrc=OUT_SSRC)
        assert (restored.sequence_number, restored.timestamp, restored.marker) == (
            original.sequence_number, original.timestamp, original.marker)
        assert (restored.payload, restored.payload_type, restored.ssrc) == (
            original.payload, original.payload_type, original.ssrc)
    assert rtx_seqs == [65_535, 0, 1]
    # the stored packet itself is not modified by a resend
    assert parse(packets[3]).extensions.abs_send_time == parse(history.get(303) or b"").extensions.abs_send_time


def test_plain_retransmission_refreshes_only_the_send_time() -> None:
    history = SendHistory(8, abs_send_time_id=ABS_ID)
    data = sent_packets(1, first_seq=9)[0]
    history.add(data)
    assert history.retransmission(9) == data
    again = history.retransmission(9, now=T0 + 10)
    assert again is not None and again != data
    assert again[:16] == data[:16] and parse(again).payload == parse(data).payload
    assert abs(abs_send_time(parse(again)) - aiortc_abs_send_time(T0 + 10)) <= 1


def test_history_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        SendHistory(0)
    with pytest.raises(ValueError):
        SendHistory(16, rtx_payload_type=RTX_PT)
    with pytest.raises(ValueError):
        SendHistory(16, rtx_payload_type=200, rtx_ssrc=1)
    assert SendHistory(1).size == 1 and SendHistory(3).size == 4


def test_audio_is_numbered_without_gaps_and_keeps_the_timestamps_of_what_was_lost() -> None:
    """A packet lost on the uplink is a timestamp jump only (the decoder conceals it); a late or repeated
    packet is dropped (its place in the numbering is gone), as frame-level forwarding does."""
    slot = audio_slot(seq=65_534, ts=2**32 - 960)
    slot.set_source("mic")
    sent = [0, 1, 2, 5, 6, 9, 10]  # 3, 4, 7, 8 lost on the uplink
    levels = ext_map(audio_level=True)
    outs = [parse(slot.rewrite(opus_packet(65_530 + n, 960 * n), "mic", T0 + 0.02 * n) or b"", levels) for n in sent]
    assert [p.sequence_number for p in outs] == [(65_534 + i) & 0xFFFF for i in range(len(sent))]
    assert [(p.timestamp - outs[0].timestamp) % 2**32 for p in outs] == [960 * n for n in sent]
    for late in (65_533, 65_537, 65_540):  # a reordered packet behind the newest, a repeat
        assert slot.rewrite(opus_packet(late, 960 * (late - 65_530)), "mic", T0 + 0.3) is None
    assert slot.dropped_stale == 3 and slot.packets_sent == len(sent)
    nxt = parse(slot.rewrite(opus_packet(65_541, 960 * 11), "mic", T0 + 0.22) or b"", levels)
    assert nxt.sequence_number == (65_534 + len(sent)) & 0xFFFF


def test_video_keeps_the_publishers_gaps_so_a_nack_names_the_lost_packet() -> None:
    slot = video_slot(seq=200, ts=0)
    slot.set_source("cam")
    outs = [parse(slot.rewrite(vp8_packet(n, 3000 * n, key=n == 0, marker=True), "cam", T0) or b"")
            for n in (0, 1, 4, 5)]
    assert [p.sequence_number for p in outs] == [200, 201, 204, 205]
