"""RTP-level forwarding (``Options.rtp_forwarding``) between aiortc bots over loopback.

``test_forwarding_media.py`` runs every forwarding scenario in both modes; this module checks what only
the RTP path does: packets go out through the slot's rewriter (never through aiortc's send loop), the
outgoing stream is continuous across a source switch and starts at a keyframe, a subscriber's NACK is
answered from the slot's history over RTX, and the sender reports carry the forwarded stream's clock.
Judged by RTP sequence numbers, timestamps and counters, never by wall-clock gaps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiortc.rtp import RtpPacket

from sfu import Options, Worker, hooks
from sfu.rtp_forward import ntp_timestamp, vp8_keyframe_start
from tests.fakes.media import ClipTrack, DecodeErrors, PublisherBot, SubscriberBot, ToneTrack, vp8_clip
from tests.sfu.conftest import DecoderGuard, make_options
from tests.sfu.helpers import publish, subscribe, until

pytestmark = pytest.mark.media

WRAP = 2**32


@pytest.fixture
def options() -> Options:
    return make_options(rtp_forwarding=True)


def venue(colour: str, tone: float = 440.0, seconds: float = 3.0) -> PublisherBot:
    return PublisherBot([ClipTrack(vp8_clip(colour=colour, seconds=seconds), colour), ToneTrack(tone)])


def packets_of(sub_bot: SubscriberBot, kind: str, index: int = 0) -> list[RtpPacket]:
    """Every RTP packet (RTX included, still wrapped) the bot's ``kind`` m-line number ``index`` receives."""
    transceivers = [t for t in sub_bot.pc.getTransceivers() if t.kind == kind]
    got: list[RtpPacket] = []
    hooks.on_rtp_received(transceivers[index].receiver, got.append)
    return got


async def test_slots_forward_every_venue_through_the_rewriter_with_continuous_numbers(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors: DecodeErrors
) -> None:
    room = worker.create_room("r1")
    bots = [venue("red", 440.0), venue("green", 550.0)]
    sub_bot = SubscriberBot()
    try:
        venues = [await publish(room, f"venue-{i}", bot) for i, bot in enumerate(bots)]
        viewer = await subscribe(room, "viewer", sub_bot)
        for i, venue_ in enumerate(venues):
            viewer.video_slots[i].set_source(venue_.publications[0])
            viewer.audio_slots[i].set_source(venue_.publications[1])
        video = [sub_bot.video(i) for i in range(2)]
        audio = [sub_bot.audio(i) for i in range(2)]
        await until(lambda: all(v.frames >= 20 for v in video) and all(a.frames >= 50 for a in audio),
                    what="every venue")
        assert [v.colour() for v in video] == ["red", "green"]
        assert decode_errors.count == 0 and decoder_guard.violations == []
        for slot, received in zip(viewer.slots, video + audio, strict=True):
            rewriter = slot.rewriter
            assert rewriter is not None and rewriter.packets_sent > 0
            assert len(slot.queue) == 0  # aiortc's send loop never got a frame
            stats = await slot.stats()
            assert stats.packets == rewriter.packets_sent and stats.frames > 0 and stats.delay_p99_ms is not None
            arrivals = [a for a in received.rtp if a.ssrc == rewriter.ssrc]
            assert {a.ssrc for a in received.rtp} == {rewriter.ssrc}  # no loss on loopback: no RTX either
            seqs = sorted({a.sequence_number for a in arrivals})
            assert seqs[-1] - seqs[0] + 1 == len(seqs)  # continuous (the bots' streams start below 2^15)
            timestamps = [a.timestamp for a in sorted(arrivals, key=lambda a: a.sequence_number)]
            steps = zip(timestamps, timestamps[1:], strict=False)
            assert all((later - earlier) % WRAP < WRAP // 2 for earlier, later in steps)
        # the decoded timestamps advance at the source's pace: 30 fps video, 20 ms audio
        pts = video[0].pts
        assert all(0 < later - earlier <= 3 * 3000 for earlier, later in zip(pts, pts[1:], strict=False))
    finally:
        await sub_bot.close()
        for bot in bots:
            await bot.close()


async def test_a_switch_continues_the_stream_and_starts_at_a_keyframe(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors: DecodeErrors
) -> None:
    room = worker.create_room("r1")
    red = venue("red")
    blue_camera = ClipTrack(vp8_clip(colour="blue", seconds=20.0), "blue")
    blue = PublisherBot([blue_camera, ToneTrack(660.0)])
    sub_bot = SubscriberBot()
    try:
        a = await publish(room, "venue-a", red)
        b = await publish(room, "venue-b", blue)
        viewer = await subscribe(room, "viewer", sub_bot)
        got = packets_of(sub_bot, "video")
        slot = viewer.video_slots[0]
        slot.set_source(a.publications[0])
        video = sub_bot.video(0)
        await until(lambda: video.colour() == "red" and video.frames >= 10, what="red")
        assert got and vp8_keyframe_start(got[0].payload)  # the first packet the subscriber saw
        rewriter = slot.rewriter
        assert rewriter is not None
        red_packets = rewriter.packets_sent
        slot.set_source(b.publications[0])
        await until(lambda: video.colour() == "blue" and len(got) > red_packets + 20, what="blue after the switch")
        assert rewriter.anchors == 2
        # numbers continue: blue's first packet follows red's last one, and it starts a keyframe
        by_seq = {p.sequence_number: p for p in got}
        first_blue = by_seq[(got[0].sequence_number + red_packets) % 65536]
        last_red = by_seq[(got[0].sequence_number + red_packets - 1) % 65536]
        assert vp8_keyframe_start(first_blue.payload)
        assert 0 < (first_blue.timestamp - last_red.timestamp) % WRAP < WRAP // 2
        assert {p.ssrc for p in got} == {rewriter.ssrc}
        assert decode_errors.count == 0
    finally:
        await sub_bot.close()
        await red.close()
        await blue.close()


async def test_a_subscribers_nack_is_answered_from_the_history_over_rtx(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors: DecodeErrors
) -> None:
    room = worker.create_room("r1")
    pub_bot = venue("red", seconds=10.0)
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        # one video m-line: an aiortc receiver routes RTX by its payload type only (it does not register
        # the RTX SSRC of the offer), so the payload type must be unique on the bundle
        viewer = room.join("viewer")
        await viewer.apply_answer(await sub_bot.answer(await viewer.subscriber_offer(video_slots=1, audio_slots=1)))
        await viewer.wait_connected("subscriber")
        got = packets_of(sub_bot, "video")
        slot = viewer.video_slots[0]
        slot.set_source(publisher.publications[0])
        video = sub_bot.video(0)
        await until(lambda: video.frames >= 10, what="video")
        rewriter, history = slot.rewriter, slot.history
        assert rewriter is not None and history is not None and history.rtx_payload_type is not None
        dropped: list[int] = []

        async def drop_one(data: bytes, send: Callable[[bytes], Awaitable[None]]) -> None:
            # the first media packet of the slot after this point never leaves the SFU
            is_rtp = len(data) >= 12 and not 192 <= data[1] <= 223
            if is_rtp and not dropped and int.from_bytes(data[8:12], "big") == rewriter.ssrc:
                dropped.append(int.from_bytes(data[2:4], "big"))
                return
            await send(data)

        sfu_transport = viewer._subscriber.pc.getTransceivers()[0].sender.transport  # type: ignore[union-attr]
        hooks.intercept_rtp_send(sfu_transport, drop_one)
        await until(lambda: bool(dropped), what="a dropped packet")
        await until(lambda: history.retransmitted >= 1, what="the NACK answered")
        await until(lambda: bool([p for p in got if p.ssrc == history.rtx_ssrc]), what="the RTX packet")
        resent = [p for p in got if p.ssrc == history.rtx_ssrc]
        assert resent[0].payload_type == history.rtx_payload_type
        assert int.from_bytes(resent[0].payload[:2], "big") == dropped[0]  # RFC 4588: the original number
        frames = video.frames
        await until(lambda: video.frames >= frames + 15, what="video after the loss")
        assert decode_errors.count == 0
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_sender_reports_carry_the_forwarded_clock_and_rtt_works(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    room = worker.create_room("r1")
    pub_bot = venue("red", seconds=10.0)
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "viewer", sub_bot)
        # (ssrc, ntp, rtp, time of arrival, the newest RTP packet of the m-line then)
        reports: list[tuple[int, int, int, float, RtpPacket | None]] = []
        got: dict[str, list[RtpPacket]] = {}
        for kind in ("video", "audio"):
            packets = got[kind] = packets_of(sub_bot, kind)
            receiver = next(t.receiver for t in sub_bot.pc.getTransceivers() if t.kind == kind)

            def on_report(ssrc: int, ntp: int, rtp: int, packets: list[RtpPacket] = packets) -> None:
                reports.append((ssrc, ntp, rtp, time.time(), packets[-1] if packets else None))

            hooks.on_sender_report(receiver, on_report)
        viewer.video_slots[0].set_source(publisher.publications[0])
        viewer.audio_slots[0].set_source(publisher.publications[1])
        slots = {"video": viewer.video_slots[0], "audio": viewer.audio_slots[0]}
        await until(lambda: sub_bot.video(0).frames >= 5, what="video")
        mark = len(reports)
        ssrcs = {kind: slot.rewriter.ssrc for kind, slot in slots.items() if slot.rewriter is not None}
        await until(lambda: set(ssrcs.values()) <= {r[0] for r in reports[mark:]}, timeout=20, what="sender reports")
        for kind, ssrc in ssrcs.items():
            _, ntp, rtp_ts, arrived, newest = next(r for r in reports[mark:] if r[0] == ssrc)
            # the NTP time is the SFU's wall clock when it sent the report (same host)
            assert abs(ntp - ntp_timestamp(arrived)) < 2**32 // 2  # within half a second
            # the RTP timestamp is the forwarded stream's: near the newest timestamp received before it
            assert newest is not None and newest.ssrc == ssrc
            clock = 90000 if kind == "video" else 48000
            assert abs(((rtp_ts - newest.timestamp + WRAP // 2) % WRAP) - WRAP // 2) < clock // 2, kind
        # the subscriber's receiver reports answer those sender reports: the round trip is known
        await until(lambda: all(s.rewriter is not None for s in slots.values()), what="rewriters")
        rtts: dict[str, float | None] = {}

        async def measured() -> bool:
            for kind, slot in slots.items():
                rtts[kind] = await slot.rtt()
            return all(r is not None for r in rtts.values())

        for _ in range(400):  # receiver reports come every 0.5-1.5 s
            if await measured():
                break
            await asyncio.sleep(0.05)
        assert all(r is not None and 0 <= r < 1.0 for r in rtts.values()), rtts
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_a_mute_stops_the_rtp_path_and_a_restriction_detaches_it(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    room = worker.create_room("r1")
    pub_bot = venue("red", seconds=10.0)
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "viewer", sub_bot)
        camera, mic = publisher.publications
        viewer.video_slots[0].set_source(camera)
        viewer.audio_slots[0].set_source(mic)
        audio, video = viewer.audio_slots[0], viewer.video_slots[0]
        await until(lambda: sub_bot.audio(0).frames >= 20 and sub_bot.video(0).frames >= 5, what="media")
        assert audio.rewriter is not None and video.rewriter is not None
        mic.mute(True)
        muted_at = mic.packets_muted
        sent = audio.rewriter.packets_sent
        await until(lambda: mic.packets_muted >= muted_at + 25, what="muted packets")
        assert audio.rewriter.packets_sent == sent  # nothing of a muted microphone leaves the SFU
        mic.mute(False)
        await until(lambda: audio.rewriter is not None and audio.rewriter.packets_sent >= sent + 25, what="unmuted")
        # a closed segment: the viewer is not on the allow-list
        camera.restrict({"someone-else"})
        assert not video.forwarding and camera.sink_count == 0
        sent = video.rewriter.packets_sent
        frames = camera.frames_received
        await until(lambda: camera.frames_received >= frames + 15, what="camera frames while restricted")
        assert video.rewriter.packets_sent == sent
        camera.restrict(None)
        await until(lambda: video.rewriter is not None and video.rewriter.packets_sent > sent + 20, what="lifted")
    finally:
        await sub_bot.close()
        await pub_bot.close()
