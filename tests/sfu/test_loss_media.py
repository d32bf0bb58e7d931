"""Loss on a publisher's uplink: audio keeps flowing, video recovers through a keyframe."""

from __future__ import annotations

import asyncio
import time

import pytest

from sfu import KeyframeRequested, Worker
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, random_rtp_loss, vp8_clip
from tests.sfu.conftest import DecoderGuard, Events
from tests.sfu.helpers import publish, subscribe, until

pytestmark = pytest.mark.media


async def test_opus_survives_5_percent_random_loss_without_stalls(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors
) -> None:
    room = worker.create_room("r1")
    tone = ToneTrack()
    camera = ClipTrack(vp8_clip(colour="white", seconds=20.0))
    pub_bot = PublisherBot([camera, tone], drop=random_rtp_loss(0.05))
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        viewer.video_slots[0].set_source(publisher.publications[0])
        viewer.audio_slots[0].set_source(publisher.publications[1])
        audio, video = sub_bot.audio(0), sub_bot.video(0)
        await until(lambda: audio.frames >= 10 and video.frames >= 3, what="media")
        start_rtp, start_audio, start_video = len(audio.rtp), audio.frames, video.frames
        await asyncio.sleep(5.0)
        # the forwarded stream as it arrives at the subscriber (before the bot's own jitter buffer)
        arrivals = audio.rtp[start_rtp:]
        assert len(arrivals) > 200
        stalls = []
        for (t0, ts0), (t1, ts1) in zip(arrivals, arrivals[1:], strict=False):
            gap = t1 - t0
            media_gap = ((ts1 - ts0) % 2**32) / 48000  # 20 ms, plus 20 ms per lost packet
            if gap > 0.060 + (media_gap - 0.020):
                stalls.append((round(gap, 3), round(media_gap, 3)))
        assert stalls == [], f"audio stalled beyond the lost packets: {stalls}"
        sent = ((arrivals[-1][1] - arrivals[0][1]) % 2**32) / 960 + 1
        decoded = audio.frames - start_audio
        assert decoded / sent >= 0.94, (decoded, sent)
        assert pub_bot.dropped > 0
        # video under the same loss: NACK/RTX or keyframes keep it going, never a corrupt frame
        assert video.frames - start_video >= 0.8 * 15 * 5.0
        assert decode_errors.count == 0
        # the reported loss is the link's, on the media SSRC (not the RTX stream's, which aiortc's
        # getStats() would report: both SSRCs share one stats id there)
        for pub in publisher.publications:
            stats = await pub.stats()
            assert 0.035 <= stats.packets_lost / stats.packets <= 0.065, (pub.kind, stats.packets_lost, stats.packets)
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_video_recovers_from_unrecoverable_loss_through_a_keyframe(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors, events: Events
) -> None:
    room = worker.create_room("r1")
    camera = ClipTrack(vp8_clip(colour="red", seconds=20.0))
    window = [0.0, 0.0]
    media_ssrc: set[int] = set()
    rtx_ssrc: set[int] = set()

    def blackout(data: bytes) -> bool:
        # media lost for the window; retransmissions lost for a second more, so NACK cannot repair it
        if len(data) < 12 or 192 <= data[1] <= 223:
            return False
        ssrc, now = int.from_bytes(data[8:12], "big"), time.monotonic()
        if ssrc in media_ssrc:
            return window[0] <= now < window[1]
        return ssrc in rtx_ssrc and window[0] <= now < window[1] + 1.0

    pub_bot = PublisherBot([camera, ToneTrack()], drop=blackout)
    sender = pub_bot.pc.getTransceivers()[0].sender
    media_ssrc.add(sender._ssrc)
    rtx_ssrc.add(sender._rtx_ssrc)
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        pub = publisher.publications[0]
        viewer.video_slots[0].set_source(pub)
        video = sub_bot.video(0)
        await until(lambda: video.frames >= 10, what="video")
        requests = camera.keyframe_requests
        now = time.monotonic()
        window[:] = [now, now + 0.5]  # every video packet and retransmission lost for 0.5 s
        await asyncio.sleep(0.5)
        frames_at_end = video.frames
        took = await until(lambda: video.frames >= frames_at_end + 10, timeout=3, what="video after loss")
        assert took < 2.0
        stats = await pub.stats()
        assert stats.frames_lost >= 1
        assert camera.keyframe_requests > requests
        assert "loss" in {e.reason for e in events.of(KeyframeRequested)}
        assert decode_errors.count == 0
        assert video.colour() == "red"
    finally:
        await sub_bot.close()
        await pub_bot.close()
