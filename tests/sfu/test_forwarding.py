"""Pure logic of the hot path: assemblers, sink queues, keyframe throttle, bitstream checks."""

from __future__ import annotations

import asyncio

import pytest

from sfu.forwarding import (
    AudioAssembler,
    EncodedFrame,
    KeyframeRequester,
    SinkQueue,
    VideoAssembler,
    is_frame_start,
    is_keyframe,
    vp8_frame_size,
)

pytestmark = pytest.mark.unit

KEY = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xb4\x00" + b"k" * 20  # VP8 keyframe tag, 320x180
DELTA = b"\x31\x02\x00" + b"d" * 20
START = b"\x10"  # VP8 descriptor: S=1, PID=0
CONT = b"\x00"


def vp8(
    assembler: VideoAssembler, seq: int, ts: int, marker: bool, start: bool, data: bytes, now: float = 0.0
) -> list[EncodedFrame]:
    return assembler.push(seq, ts, marker, (START if start else CONT) + data, data, now)


def test_vp8_bitstream_checks() -> None:
    assert is_keyframe("VP8", KEY) and not is_keyframe("VP8", DELTA)
    assert vp8_frame_size(KEY) == (320, 180) and vp8_frame_size(DELTA) is None
    assert is_frame_start("VP8", b"\x90\x80\x01") and not is_frame_start("VP8", b"\x80\x80\x01")
    assert is_keyframe("H264", b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x68d\x00\x00\x01\x65e")
    assert not is_keyframe("H264", b"\x00\x00\x00\x01\x41abc")
    assert is_frame_start("H264", bytes([0x7C, 0x85, 0x88]))  # FU-A start of an IDR slice
    assert not is_frame_start("H264", bytes([0x7C, 0x45, 0x88]))  # FU-A continuation


def test_video_frames_emit_on_marker_without_waiting_for_the_next_frame() -> None:
    a = VideoAssembler("VP8", 90000, loss_wait=0.25)
    assert vp8(a, 100, 0, False, True, KEY[:15]) == []
    [frame] = vp8(a, 101, 0, True, False, KEY[15:])
    assert frame.keyframe and frame.data == KEY and frame.timestamp == 0
    [frame] = vp8(a, 102, 6000, True, True, DELTA)
    assert not frame.keyframe and frame.timestamp == 6000


def test_video_reordered_packets_are_reassembled() -> None:
    a = VideoAssembler("VP8", 90000, loss_wait=0.25)
    assert vp8(a, 65535, 0, True, True, KEY) != []
    assert vp8(a, 1, 3000, True, False, DELTA[10:]) == []  # wraps around 16 bits, arrives early
    [frame] = vp8(a, 0, 3000, False, True, DELTA[:10])
    assert frame.data == DELTA


def test_video_hole_waits_for_retransmission_then_gives_up_until_keyframe() -> None:
    a = VideoAssembler("VP8", 90000, loss_wait=0.25)
    vp8(a, 10, 0, True, True, KEY)
    # frame at 3000 loses its first packet (11); the next frames arrive
    assert vp8(a, 12, 3000, True, False, DELTA, now=0.0) == []
    assert vp8(a, 13, 6000, True, True, DELTA, now=0.1) == []
    assert not a.keyframe_wanted
    # retransmission of 11 arrives in time: both frames come out in order
    frames = vp8(a, 11, 3000, False, True, DELTA, now=0.2)
    assert [f.timestamp for f in frames] == [3000, 6000] and a.frames_lost == 0
    # now 14 is lost for good
    vp8(a, 15, 9000, True, False, DELTA, now=1.0)
    assert vp8(a, 16, 12000, True, True, DELTA, now=1.1) == []
    assert vp8(a, 17, 15000, True, True, DELTA, now=1.3) == []  # gave up: deltas are useless now
    assert a.frames_lost == 1 and a.keyframe_wanted and a.need_keyframe
    a.keyframe_wanted = False
    [frame] = vp8(a, 18, 18000, True, True, KEY, now=1.4)
    assert frame.keyframe and not a.need_keyframe
    assert a.frames_skipped >= 2


def test_video_late_and_duplicate_packets_are_dropped() -> None:
    a = VideoAssembler("VP8", 90000, loss_wait=0.25)
    vp8(a, 5, 0, True, True, KEY)
    assert vp8(a, 5, 0, True, True, KEY) == [] and vp8(a, 4, 0, True, True, KEY) == []
    assert a.packets_late == 2


def test_video_stream_joined_mid_frame_starts_at_the_next_keyframe() -> None:
    a = VideoAssembler("VP8", 90000, loss_wait=0.25)
    assert vp8(a, 7, 0, True, False, DELTA) == []  # tail of a frame: no start seen
    assert vp8(a, 8, 3000, True, True, DELTA) == []  # a delta frame: waits for a keyframe
    assert a.keyframe_wanted
    assert [f.keyframe for f in vp8(a, 9, 6000, True, True, KEY)] == [True]


def test_audio_never_waits_for_a_lost_packet() -> None:
    a = AudioAssembler("OPUS", 48000)
    assert len(a.push(1, 0, True, b"x", b"x", 0.0)) == 1
    [frame] = a.push(3, 1920, True, b"y", b"y", 0.04)  # 2 lost: emitted at once
    assert frame.timestamp == 1920 and a.frames_lost == 1
    assert a.push(2, 960, True, b"z", b"z", 0.05) == []  # too late: the stream moved on
    assert a.packets_late == 1


def frame(ts: int, key: bool = False, kind: str = "video", arrival: float = 0.0) -> EncodedFrame:
    return EncodedFrame(
        kind,
        "VP8" if kind == "video" else "OPUS",
        b"f",
        ts,
        90000 if kind == "video" else 48000,
        key,
        arrival,
    )


def test_sink_queue_gates_video_on_a_keyframe_and_flushes_on_overflow() -> None:
    needed: list[str] = []
    overflows: list[int] = []
    q = SinkQueue("video", 3, needed.append, overflows.append)
    q.push(frame(0), "a")
    assert len(q) == 0 and q.dropped == 1
    q.push(frame(3000, key=True), "a")
    for ts in (6000, 9000):
        q.push(frame(ts), "a")
    assert len(q) == 3
    q.push(frame(12000), "a")  # overflow on a delta frame: flush, wait for a keyframe, ask for one
    assert len(q) == 0 and q.waiting_keyframe and needed == ["overflow"] and overflows == [4]
    q.push(frame(15000, key=True), "a")
    assert len(q) == 1


def test_sink_queue_audio_overflow_drops_the_oldest() -> None:
    q = SinkQueue("audio", 2, lambda r: None, lambda n: None)
    for ts in (0, 960, 1920):
        q.push(frame(ts, kind="audio"), "a")
    assert len(q) == 2 and q.dropped == 1


async def test_sink_queue_rebases_timestamps_across_a_source_switch() -> None:
    q = SinkQueue("video", 10, lambda r: None, lambda n: None)
    q.push(frame(900_000, key=True, arrival=10.0), "a")
    q.push(frame(903_000, arrival=10.033), "a")
    pts = [item[1] for item in [await q.get(), await q.get()] if item is not None]
    q.switch_source()
    q.push(frame(50, arrival=10.1), "b")  # another publisher's clock; not a keyframe: gated
    q.push(frame(3050, key=True, arrival=10.133), "b")
    q.push(frame(6050, arrival=10.166), "b")
    pts += [item[1] for item in [await q.get(), await q.get()] if item is not None]
    assert pts[:2] == [0, 3000]
    assert abs(pts[2] - (3000 + int(0.1 * 90000))) < 10 and pts[3] == pts[2] + 3000
    q.close()
    assert await q.get() is None


async def test_keyframe_requests_are_throttled_with_one_deferred_retry() -> None:
    sent: list[str] = []
    performed = 0
    clock = [100.0]

    async def send() -> None:
        nonlocal performed
        performed += 1

    r = KeyframeRequester(send, 0.5, sent.append, clock=lambda: clock[0])
    r.request("sink")
    for _ in range(10):
        r.request("subscriber")
    assert sent == ["sink"]
    await asyncio.sleep(0.6)  # the deferred one fires once the window has passed (real loop time)
    assert sent == ["sink", "subscriber"]
    clock[0] += 0.2
    r.request("loss")  # inside the window again
    r.keyframe_arrived()  # ... but a keyframe arrived: nothing left to ask
    await asyncio.sleep(0.6)
    assert sent == ["sink", "subscriber"] and performed == 2
    await r.close()
    r.request("late")
    assert sent == ["sink", "subscriber"]


async def test_a_request_as_the_window_ends_sends_one_pli_not_two() -> None:
    """A deferred PLI whose timer is due but not yet run, and a request that finds the window over: one PLI
    (two were sent 79 us apart when the loop ran the request first; seen in CI)."""
    sent: list[str] = []
    clock = [100.0]

    async def send() -> None:
        pass

    r = KeyframeRequester(send, 0.5, sent.append, clock=lambda: clock[0])
    r.request("storm")
    clock[0] += 0.1
    r.request("storm")  # deferred: its timer is due 0.4 s from now
    clock[0] += 0.4  # the window is over on the requester's clock, before the loop has run that timer
    r.request("storm")
    assert sent == ["storm", "storm"]
    await asyncio.sleep(0.6)  # the timer's time passes: the request it stood for was sent already
    assert sent == ["storm", "storm"] and r.sent == 2
    await r.close()
