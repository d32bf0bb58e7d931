"""Bad input gives clear typed errors and frees everything."""

from __future__ import annotations

import asyncio
import re

import pytest

from sfu import (
    AlreadyPublishing,
    DuplicateParticipant,
    IceTimeout,
    InvalidSdp,
    KindMismatch,
    LinkLost,
    NegotiationError,
    NegotiationStateError,
    Options,
    SinkLagging,
    SlowConsumer,
    TrackUnpublished,
    UnsupportedCodec,
    Worker,
    hooks,
)
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, vp8_clip
from tests.sfu.conftest import DecoderGuard, Events, make_options
from tests.sfu.helpers import publish, subscribe, until

pytestmark = pytest.mark.media


def venue(colour: str = "red") -> PublisherBot:
    return PublisherBot([ClipTrack(vp8_clip(colour=colour)), ToneTrack()])


async def test_broken_sdp_is_invalid_sdp(worker: Worker) -> None:
    room = worker.create_room("r1")
    participant = room.join("venue-a")
    for broken in (
        "",
        "hello",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\nm=video abc\r\n",
    ):
        with pytest.raises(InvalidSdp):
            await participant.publish_offer(broken)
    bot = venue()
    try:
        offer = await bot.offer()
        no_ice = re.sub(r"a=ice-(ufrag|pwd):.*\r\n", "", offer)
        with pytest.raises(InvalidSdp, match="ICE"):
            await participant.publish_offer(no_ice)
        no_candidates = re.sub(r"a=candidate:.*\r\n", "", offer)  # but still a=end-of-candidates
        with pytest.raises(InvalidSdp, match="no ICE candidate"):
            await participant.publish_offer(no_candidates)
        assert participant.link_state("publisher") == "none"
    finally:
        await bot.close()


async def test_only_unsupported_codecs_is_refused(worker: Worker) -> None:
    room = worker.create_room("r1")
    participant = room.join("venue-a")
    bot = venue()
    try:
        offer = await bot.offer()
        # a venue that only offers VP9 video
        vp9_only = offer.replace("H264/90000", "H265/90000").replace("VP8/90000", "VP9/90000")
        with pytest.raises(UnsupportedCodec, match="VP9"):
            await participant.publish_offer(vp9_only)
        # a venue that only offers PCMU audio
        pcmu_only = offer.replace("opus/48000/2", "G722/8000")
        with pytest.raises(UnsupportedCodec, match="audio"):
            await participant.publish_offer(pcmu_only)
        assert participant.publications == ()
        assert participant.link_state("publisher") == "none"
        # and a room cannot be created for a codec it cannot forward
        with pytest.raises(UnsupportedCodec):
            worker.create_room("r2", video_codec="AV1")
    finally:
        await bot.close()


async def test_track_names_are_keyed_by_the_offers_mids_and_a_key_that_is_no_mid_is_refused(worker: Worker) -> None:
    room = worker.create_room("r1")
    participant = room.join("venue-a")
    bot = venue()
    try:
        offer = await bot.offer()
        video_mid, audio_mid = re.findall(r"^a=mid:(\S+)\r$", offer, flags=re.M)
        for stray in ({"video": "camera", "audio": "mic"}, {video_mid: "camera", "7": "mic"}):
            with pytest.raises(NegotiationError, match="no mid of the offer"):
                await participant.publish_offer(offer, names=stray)
            assert participant.publications == () and participant.link_state("publisher") == "none"
        await participant.publish_offer(offer, names={video_mid: "camera", audio_mid: "mic"})
        assert {(p.mid, p.name) for p in participant.publications} == {(video_mid, "camera"), (audio_mid, "mic")}
    finally:
        await bot.close()


async def test_second_publish_of_the_same_venue_is_refused(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    room = worker.create_room("r1")
    first, second = venue("red"), venue("blue")
    try:
        participant = await publish(room, "venue-a", first)
        with pytest.raises(DuplicateParticipant):
            room.join("venue-a")
        with pytest.raises(AlreadyPublishing):
            await participant.publish_offer(await second.offer())
        assert len(participant.publications) == 2 and participant.link_state("publisher") == "connected"
    finally:
        await first.close()
        await second.close()


async def test_ice_that_never_connects_times_out_and_frees_everything(no_leaks: None, decoder_guard) -> None:
    events = Events()
    worker = Worker(make_options(connect_timeout=1.0), listener=events.append)
    await worker.start()
    bot = venue()
    try:
        room = worker.create_room("r1")
        participant = room.join("venue-a")
        offer = await bot.offer()
        # the venue trickles its candidates later... and they never arrive
        unreachable = re.sub(r"a=(candidate:.*|end-of-candidates)\r\n", "", offer)
        answer = await participant.publish_offer(unreachable)
        assert "a=candidate" in answer
        with pytest.raises(IceTimeout):
            await asyncio.wait_for(participant.wait_connected("publisher"), 15.0)  # a net: the SFU gives up after 1 s
        await until(lambda: participant.link_state("publisher") == "closed", what="transport closed")
        await until(lambda: not participant.publications, what="publications ended")
        lost = events.of(LinkLost)
        assert len(lost) == 1 and isinstance(lost[0].error, IceTimeout) and lost[0].role == "publisher"
        assert len(events.of(TrackUnpublished)) == 2
        # the venue can negotiate again (a fresh link) after the failure
        assert participant.link_state("publisher") == "closed"
    finally:
        await bot.close()
        await worker.close()


@pytest.mark.parametrize("rtp_forwarding", [False, True], ids=["frames", "rtp"])
async def test_subscriber_that_stops_reading_is_bounded_and_others_are_fine(
    no_leaks: None, decoder_guard: DecoderGuard, rtp_forwarding: bool
) -> None:
    events = Events()
    options = make_options(video_queue_frames=8, audio_queue_frames=10, rtp_forwarding=rtp_forwarding)
    worker = Worker(options, listener=events.append)
    await worker.start()
    room = worker.create_room("r1")
    pub_bot, good_bot, stuck_bot = venue("green"), SubscriberBot(), SubscriberBot()
    blocked = asyncio.Event()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        good = await subscribe(room, "venue-b", good_bot)
        stuck = await subscribe(room, "venue-c", stuck_bot)
        camera, mic = publisher.publications
        for viewer in (good, stuck):
            viewer.video_slots[0].set_source(camera)
            viewer.audio_slots[0].set_source(mic)
        await until(lambda: stuck_bot.video(0).frames >= 3, what="stuck receives at first")
        # the stuck venue's link stops taking packets: its senders block on every write
        dtls = stuck._subscriber.pc.getTransceivers()[0].sender.transport  # type: ignore[union-attr]

        async def never_sends(data: bytes, send: hooks.RtpSend) -> None:
            await blocked.wait()

        good_slots = (good.video_slots[0], good.audio_slots[0])
        good_before = [await s.stats() for s in good_slots]
        hooks.intercept_rtp_send(dtls, never_sends)
        # a recorder tap that never reads
        tap = camera.attach_tap(max_queue=5)
        frames_before = good_bot.video(0).frames
        audio_before = good_bot.audio(0).frames
        slot, sound = stuck.video_slots[0], stuck.audio_slots[0]
        await until(lambda: {e.sink_id for e in events.of(SinkLagging)} >= {slot.id, sound.id, tap.id},
                    timeout=30, what="the three stuck sinks overflowing")
        # the good venue goes on with 2 s of media, none of it dropped for it by the SFU
        await until(lambda: good_bot.video(0).frames >= frames_before + 30
                    and good_bot.audio(0).frames >= audio_before + 100, timeout=30, what="2 s at the good venue")
        assert len(slot.queue) <= 8 and len(sound.queue) <= 10 and len(tap.queue) <= 5
        assert all(isinstance(e.error, SlowConsumer) for e in events.of(SinkLagging))
        stats = await slot.stats()
        # frame-level forwarding drops queued frames; RTP-level forwarding drops the packets the stuck
        # link refuses beyond its bounded backlog of sends (hooks.RTP_SEND_BACKLOG)
        assert (stats.packets_dropped if rtp_forwarding else stats.frames_dropped) > 0 and stats.overflows > 0
        if rtp_forwarding:  # nothing queues: the slot's frame queue is not used
            assert len(slot.queue) == len(sound.queue) == 0
        for good_slot, before in zip(good_slots, good_before, strict=True):
            after = await good_slot.stats()
            assert (after.frames_dropped, after.packets_dropped, after.overflows) == (
                before.frames_dropped, before.packets_dropped, 0), good_slot.id
        await tap.close()
    finally:
        blocked.set()  # aiortc sends an RTCP BYE on close, which must not block for ever
        await good_bot.close()
        await stuck_bot.close()
        await pub_bot.close()
        await worker.close()


async def test_negotiation_order_and_slot_kinds_are_checked(worker: Worker) -> None:
    room = worker.create_room("r1")
    participant = room.join("venue-a")
    with pytest.raises(NegotiationStateError):
        await participant.apply_answer("v=0\r\n")
    with pytest.raises(NegotiationStateError):
        await participant.wait_connected("subscriber")
    bot = venue()
    try:
        await participant.publish_offer(await bot.offer())
        await participant.subscriber_offer(video_slots=1, audio_slots=1)
        with pytest.raises(NegotiationStateError):
            await participant.subscriber_offer()
        with pytest.raises(KindMismatch):
            participant.video_slots[0].set_source(participant.publication("audio-0"))
    finally:
        await bot.close()


def test_worker_needs_start(options: Options) -> None:
    from sfu import WorkerClosed

    with pytest.raises(WorkerClosed, match="not started"):
        Worker(options).create_room("r1")


async def test_stats_are_reported_periodically_when_configured(no_leaks: None, decoder_guard) -> None:
    from sfu import StatsReport

    events = Events()
    worker = Worker(make_options(stats_interval=0.3), listener=events.append)
    await worker.start()
    bot = venue()
    try:
        room = worker.create_room("r1")
        await publish(room, "venue-a", bot)
        await until(
            lambda: any(
                e.stats.publications and e.stats.publications[0].frames > 0 for e in events.of(StatsReport)
            ),
            timeout=3,
            what="a stats report with media",
        )
        report = events.of(StatsReport)[-1].stats
        assert report.room_id == "r1" and report.participants == 1
        assert {p.kind for p in report.publications} == {"audio", "video"}
    finally:
        await bot.close()
        await worker.close()
