"""``sfu._native.Rewriter``: ``sfu.rtp_forward.SlotRewriter`` in C, held to the Python class as reference.

Two ways: the rewriter tests of ``test_rtp_forward.py`` run again with the C rewriter in place of the Python
one, and random streams (reordering, repeats, jumps, SSRC changes, source switches, keyframe requests,
truncated and garbage VP8/H.264 payloads, audio levels, every header-extension layout) go through both,
which must write the same bytes and keep the same counters, packet after packet.
"""

from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiortc.rtp import RtpPacket

from sfu import native
from sfu.rtp_forward import SlotRewriter

pytestmark = pytest.mark.unit


def native_slot(**arguments: Any) -> native.RewriterLike:
    made = native.make_rewriter(native=True, **arguments)
    assert type(made).__name__ == "Rewriter", "sfu._native is not built"
    return made


def _reference_tests() -> ModuleType:
    """test_rtp_forward.py, loaded again as a module of its own, its SlotRewriter the C one."""
    path = Path(__file__).with_name("test_rtp_forward.py")
    spec = importlib.util.spec_from_file_location("tests.sfu._rtp_forward_through_native", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SlotRewriter = native_slot  # the tests look the name up when they run
    return module


_REFERENCE = _reference_tests()
#: tests of the Python class itself (its validation runs before the C rewriter is made: the same errors)
_NOT_REWRITER = ("test_vp8_descriptor_length", "test_vp8_keyframe_start", "test_vp8_parsers_survive_garbage",
                 "test_history", "test_send_history", "test_rtx", "test_ntp")
for _name, _test in vars(_REFERENCE).items():
    if _name.startswith("test_") and callable(_test) and not _name.startswith(_NOT_REWRITER):
        globals()[f"{_name}__native"] = _test


# --- random streams through both -----------------------------------------------------------------------------

T0 = 1_790_000_000.0
KEY_HEADER = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xb4\x00"


def vp8_payload(rng: random.Random, key: bool) -> bytes:
    """A VP8 payload with a random descriptor (any of I/L/T/K, 7 or 15-bit picture id), sometimes truncated
    or garbage."""
    roll = rng.random()
    if roll < 0.03:
        return b""
    if roll < 0.08:
        return rng.randbytes(rng.randrange(1, 6))
    start = key or rng.random() < 0.3
    flags = rng.choice((0x80, 0xC0, 0xA0, 0xE0, 0x90, 0x00, 0x40))
    first = (0x90 if flags else 0x10) if start else (0x80 if flags else 0x00)
    desc = bytearray([first])
    if first & 0x80:
        desc.append(flags)
        if flags & 0x80:
            pid = rng.randrange(0x8000)
            desc += bytes([0x80 | (pid >> 8), pid & 0xFF]) if rng.random() < 0.8 else bytes([pid & 0x7F])
        if flags & 0x40:
            desc.append(rng.randrange(256))
        if flags & 0x30:
            desc.append(rng.randrange(256))
    body = KEY_HEADER if key else b"\x31\x02\x00"
    data = bytes(desc) + body + rng.randbytes(rng.randrange(0, 40))
    if rng.random() < 0.05:
        data = data[:rng.randrange(1, len(desc) + 1)]  # truncated inside its descriptor
    return data


def h264_payload(rng: random.Random, key: bool) -> bytes:
    if key:
        return rng.choice((b"\x67\x42\x00", b"\x65\x88\x84", b"\x7c\x85\x88", b"\x18\x00\x03\x67\x42\x00"))
    return rng.choice((b"\x41\x9a", b"\x7c\x01\x9a", b"\x18\x00\x02\x41\x9a", b"", b"\x1c", b"\x18\xff"))


def packet(seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, level: tuple[bool, int] | None) -> RtpPacket:
    made = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF,
                     ssrc=ssrc, payload=payload)
    made.extensions.audio_level = level
    return made


STATE = ("ssrc", "payload_type", "clock_rate", "codec", "frame_interval", "packets_sent", "octets_sent",
         "last_timestamp_at", "dropped_other_source", "dropped_waiting", "dropped_stale", "dropped_jump", "anchors",
         "source", "last_timestamp", "waiting_keyframe")

CONFIGS = {
    "vp8": {"codec": "VP8", "clock_rate": 90000, "mid": "1", "mid_id": 1, "abs_send_time_id": 3},
    "vp8-no-abs": {"codec": "VP8", "clock_rate": 90000, "mid": "video-long-mid", "mid_id": 4},
    "vp8-bare": {"codec": "VP8", "clock_rate": 90000},
    "h264": {"codec": "H264", "clock_rate": 90000, "mid": "0", "mid_id": 9, "abs_send_time_id": 2},
    "opus": {"codec": "opus", "clock_rate": 48000, "mid": "2", "mid_id": 1, "abs_send_time_id": 3,
             "audio_level_id": 5},
    "opus-level-only": {"codec": "opus", "clock_rate": 48000, "audio_level_id": 14},
    "opus-numbered": {"codec": "opus", "clock_rate": 48000, "mid": "a", "mid_id": 2, "gap_free": False},
    "pcmu": {"codec": "PCMU", "clock_rate": 8000, "abs_send_time_id": 1},
}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_streams_write_the_same_bytes(config: str, seed: int) -> None:
    rng = random.Random(f"{config}-{seed}")
    arguments: dict[str, Any] = {"ssrc": rng.getrandbits(32), "payload_type": rng.randrange(96, 128),
                                 "initial_sequence_number": rng.choice((0, 65_530, rng.getrandbits(16))),
                                 "initial_timestamp": rng.choice((0, 0xFFFF_FF00, rng.getrandbits(32))),
                                 **CONFIGS[config]}
    python = SlotRewriter(**arguments)
    c = native_slot(**arguments)
    codec = arguments["codec"]
    video = codec in ("VP8", "H264")
    sources = ["A", "B", ("tuple", 1)]
    # per source: incoming SSRC, next sequence number and timestamp
    streams = {s: [rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)] for s in map(str, sources)}
    now = T0 + rng.random()
    sent: list[tuple[int, int, int, bytes, bool, tuple[bool, int] | None]] = []
    current: object = None
    for step in range(1500):
        now += rng.choice((0.0, 0.001, 0.02, 0.033, 0.5, 3.0)) if rng.random() < 0.3 else 0.005
        roll = rng.random()
        if roll < 0.02 or step == 0:
            current = rng.choice([*sources, None]) if step else sources[0]
            python.set_source(current)
            c.set_source(current)
        elif roll < 0.03:
            python.request_keyframe()
            c.request_keyframe()
        elif roll < 0.04:
            assert c.sender_report(now) == python.sender_report(now)
        source = current if current is not None and rng.random() < 0.9 else rng.choice(sources)
        stream = streams[str(source)]
        if rng.random() < 0.005:
            stream[0] = rng.getrandbits(32)  # the source's SSRC changes
        kind = rng.random()
        if kind < 0.08 and sent:  # a repeat or a late packet
            args = rng.choice(sent[-60:])
        else:
            if kind < 0.1:
                stream[1] += rng.choice((4000, -2000, 30_000, 1))  # a jump (or a restart, if it is confirmed)
            key = video and rng.random() < 0.08
            payload = (vp8_payload(rng, key) if codec == "VP8" else h264_payload(rng, key) if codec == "H264"
                       else rng.randbytes(rng.randrange(0, 80)))
            level = (bool(rng.getrandbits(1)), rng.randrange(256)) if rng.random() < 0.7 else None
            args = (stream[1], stream[2], stream[0], payload, rng.random() < 0.3, level)
            stream[1] += 1
            if rng.random() < 0.3:
                stream[2] += rng.choice((3000, 960, 1, 0x7FFF_FFFF))
            sent.append(args)
        seq, ts, ssrc, payload, marker, level = args
        incoming = packet(seq, ts, ssrc, payload, marker, level)
        expected = python.rewrite(incoming, source, now)
        assert c.rewrite(incoming, source, now) == expected, (step, args)
        for name in STATE:
            assert getattr(c, name) == getattr(python, name), (step, name)
    assert python.packets_sent > 100  # the streams did forward (not only drop)


def test_the_sender_report_and_counters_of_an_untouched_slot() -> None:
    python = SlotRewriter(ssrc=1, payload_type=96, clock_rate=90000, codec="VP8", initial_sequence_number=5,
                          initial_timestamp=7)
    c = native_slot(ssrc=1, payload_type=96, clock_rate=90000, codec="VP8", initial_sequence_number=5,
                    initial_timestamp=7)
    assert c.sender_report(T0) is None and c.last_timestamp is None and c.source is None
    assert not c.waiting_keyframe and "idle" in repr(c)
    c.set_source("A")
    assert c.waiting_keyframe and python.resolved()["keyframe"] == 1


def test_bad_input_is_an_error_not_a_crash() -> None:
    c = native_slot(ssrc=1, payload_type=96, clock_rate=48000, codec="opus", audio_level_id=3)
    c.set_source("A")
    with pytest.raises(AttributeError):
        c.rewrite(object(), "A", T0)  # not a packet (what the Python class raises too)
    with pytest.raises(TypeError):
        c.rewrite(packet(1, 1, 1, b"x", False, None), "A")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.rewrite(packet(1, 1, 1, b"x", False, None), "A", "now")  # type: ignore[arg-type]
    odd = packet(1, 1, 1, b"x", False, None)
    odd.extensions.audio_level = "loud"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        c.rewrite(odd, "A", T0)
    odd.payload = "text"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        c.rewrite(odd, "A", T0)
    assert c.rewrite(packet(2, 2, 1, b"y", True, (True, 9)), "A", T0) is not None  # and it goes on
    with pytest.raises(ValueError):
        native.make_rewriter(ssrc=1, payload_type=200, clock_rate=90000, codec="VP8")  # SlotRewriter's checks
    assert struct.unpack_from("!H", c.rewrite(packet(3, 3, 1, b"z", False, None), "A", T0) or b"", 2)[0] == (
        struct.unpack_from("!H", c.rewrite(packet(4, 4, 1, b"z", False, None), "A", T0) or b"", 2)[0] - 1)
