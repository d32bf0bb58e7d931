"""Forwarding between aiortc bots over loopback; the SFU's own decoders are booby-trapped."""

from __future__ import annotations

import asyncio
import time

import pytest

from sfu import AudioLevel, KeyframeRequested, Options, SourceChanged, SpeakingChanged, TrackUnpublished, Worker, hooks
from sfu.negotiation import fmtp_of
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, nearest_colour, vp8_clip
from tests.sfu.conftest import DecoderGuard, Events, make_options
from tests.sfu.helpers import landed, publish, subscribe, until

pytestmark = pytest.mark.media


@pytest.fixture(params=[False, True], ids=["frames", "rtp"])
def options(request: pytest.FixtureRequest) -> Options:
    """Every test runs with frame-level forwarding and with RTP-level forwarding (``Options.rtp_forwarding``)."""
    return make_options(rtp_forwarding=request.param)


def venue(colour: str, tone: float = 440.0) -> PublisherBot:
    return PublisherBot([ClipTrack(vp8_clip(colour=colour), colour), ToneTrack(tone)])


def requests_since(events: Events, mark: int) -> list[tuple[str, str]]:
    """(publication, reason) of each keyframe request the SFU sent after ``events[mark]``."""
    return [(e.publication_id, e.reason) for e in events[mark:] if isinstance(e, KeyframeRequested)]


async def test_forwarded_vp8_and_opus_decode_without_errors(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors, events: Events
) -> None:
    room = worker.create_room("r1")
    pub_bot = venue("red")
    sub_bot = SubscriberBot()
    try:
        publisher = room.join("venue-a")
        answer = await publisher.publish_offer(await pub_bot.offer(), names={"0": "camera", "1": "mic"})
        assert fmtp_of(answer, "opus")["useinbandfec"] == "1"
        assert fmtp_of(answer, "VP8")["x-google-start-bitrate"] == "1500"
        await pub_bot.accept(answer)
        await publisher.wait_connected("publisher")
        subscriber = await subscribe(room, "venue-b", sub_bot)
        subscriber.video_slots[0].set_source(publisher.publication("camera"))
        subscriber.audio_slots[0].set_source(publisher.publication("mic"))
        video, audio = sub_bot.video(0), sub_bot.audio(0)
        await until(lambda: video.frames >= 30 and audio.frames >= 100, what="media")
        assert video.colour() == "red"
        assert video.sizes == {(320, 180)}
        assert decode_errors.count == 0
        assert decoder_guard.bot_decoders >= 2  # the bots did decode, with the real decoders
        assert decoder_guard.violations == []
        # the tone is loud: RFC 6464 levels read on ingest, without decoding
        levels = [e for e in events.of(AudioLevel) if e.publication_id == "venue-a/mic"]
        assert levels and levels[-1].level < 30 and levels[-1].speaking
        assert [e.speaking for e in events.of(SpeakingChanged)][:1] == [True]
        assert publisher.publication("mic").speaking
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_late_joiner_gets_a_picture_through_a_keyframe_request(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors, events: Events
) -> None:
    room = worker.create_room("r1")
    # a 20 s clip: its next natural keyframe is far away, so a picture needs the relayed PLI
    camera = ClipTrack(vp8_clip(colour="green", seconds=20.0))
    pub_bot = PublisherBot([camera, ToneTrack()])
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        await until(lambda: camera.sent >= 20, what="the camera past its first keyframe")
        requests_before = camera.keyframe_requests
        subscriber = await subscribe(room, "venue-b", sub_bot)
        attached, mark = time.monotonic(), len(events)
        subscriber.video_slots[0].set_source(publisher.publications[0])
        video = sub_bot.video(0)
        await until(lambda: video.frames >= 1, what="first picture")
        # the keyframe asked for when the slot was attached, at once: no retry (2 s later) was needed
        assert requests_since(events, mark) == [(publisher.publications[0].id, "sink")]
        assert camera.keyframe_requests == requests_before + 1
        assert video.first_at is not None and video.first_at >= attached
        await until(lambda: video.frames >= 10, what="frames after the keyframe")
        assert video.colour() == "green"
        assert decode_errors.count == 0
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_source_switch_shows_new_source_without_renegotiation(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors, events: Events
) -> None:
    room = worker.create_room("r1")
    red = venue("red", 440.0)
    # a 20 s clip: only the keyframe requested at the switch can show it within the test
    blue_camera = ClipTrack(vp8_clip(colour="blue", seconds=20.0), "blue")
    blue = PublisherBot([blue_camera, ToneTrack(660.0)])
    sub_bot = SubscriberBot()
    try:
        a = await publish(room, "venue-a", red)
        b = await publish(room, "venue-b", blue)
        viewer = await subscribe(room, "venue-c", sub_bot)
        slot = viewer.video_slots[0]
        slot.set_source(a.publications[0])
        video = sub_bot.video(0)
        await until(lambda: video.colour() == "red" and video.frames >= 10, what="red")
        signalling_state = sub_bot.pc.signalingState
        blue_requests, mark, shown = blue_camera.keyframe_requests, len(events), len(video.colours)
        slot.set_source(room.publication("venue-b/video-0"))
        await until(lambda: video.colour() == "blue", what="blue after switch")
        # at once, through the keyframe asked for at the switch (no retry, 2 s later, was needed)
        assert requests_since(events, mark) == [("venue-b/video-0", "sink")]
        assert blue_camera.keyframe_requests == blue_requests + 1
        colours = [nearest_colour(c) for c in video.colours[shown:]]
        first_blue = shown + colours.index("blue")
        await until(lambda: len(video.colours) >= first_blue + 10, what="frames after switch")
        # the switch is clean: after the first blue frame, nothing else
        assert {nearest_colour(c) for c in video.colours[first_blue:]} == {"blue"}
        assert sub_bot.pc.signalingState == signalling_state == "stable"
        # rebased timestamps: the subscriber sees one monotonic stream across both sources
        assert all(later > earlier for earlier, later in zip(video.pts, video.pts[1:], strict=False))
        assert decode_errors.count == 0
        assert [e.publication_id for e in events.of(SourceChanged) if e.subscription_id == slot.id] == [
            "venue-a/video-0",
            "venue-b/video-0",
        ]
        # the audio slot follows too
        viewer.audio_slots[0].set_source(b.publications[1])
        await until(lambda: sub_bot.audio(0).frames >= 20, what="audio of b")
    finally:
        await sub_bot.close()
        await red.close()
        await blue.close()


async def test_closing_a_publisher_ends_its_subscriptions(
    worker: Worker, decoder_guard: DecoderGuard, events: Events
) -> None:
    room = worker.create_room("r1")
    pub_bot = venue("red")
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        camera, mic = publisher.publications
        viewer.video_slots[0].set_source(camera)
        viewer.audio_slots[0].set_source(mic)
        video = sub_bot.video(0)
        await until(lambda: video.frames >= 5, what="video")
        await publisher.close()
        assert publisher.closed and camera.closed and mic.closed
        assert viewer.video_slots[0].source is None and viewer.audio_slots[0].source is None
        assert not viewer.video_slots[0].forwarding
        assert {e.publication_id for e in events.of(TrackUnpublished)} == {camera.id, mic.id}
        assert [e for e in events.of(SourceChanged) if e.publication_id is None]
        slot = viewer.video_slots[0]
        arrived, sent = await landed(slot, video), (await slot.stats()).packets
        await asyncio.sleep(0.5)  # no media to measure it by: the slot has no source left
        assert (len(video.rtp), (await slot.stats()).packets) == (arrived, sent)
        assert room.publications == ()
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_restricted_publication_reaches_only_the_allow_list(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    from sfu import SourceRestricted

    room = worker.create_room("r1")
    pub_bot = venue("magenta")
    bot_b, bot_c = SubscriberBot(), SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        b = await subscribe(room, "venue-b", bot_b)
        c = await subscribe(room, "venue-c", bot_c)
        camera = publisher.publications[0]
        b.video_slots[0].set_source(camera)
        c.video_slots[0].set_source(camera)
        await until(lambda: bot_b.video(0).frames >= 5 and bot_c.video(0).frames >= 5, what="both receive")
        camera.restrict({"venue-b"})
        assert not c.video_slots[0].forwarding and b.video_slots[0].forwarding
        # while venue b decodes 10 more frames of the camera, venue c gets no packet of it
        c_packets = await landed(c.video_slots[0], bot_c.video(0))
        b_frames = bot_b.video(0).frames
        await until(lambda: bot_b.video(0).frames >= b_frames + 10, what="venue b goes on")
        assert len(bot_c.video(0).rtp) == c_packets
        with pytest.raises(SourceRestricted):
            c.video_slots[1].set_source(camera)
        c_frames = bot_c.video(0).frames
        camera.restrict(None)
        await until(lambda: bot_c.video(0).frames >= c_frames + 5, what="c resumes after lift")
    finally:
        await bot_b.close()
        await bot_c.close()
        await pub_bot.close()


async def test_subscriber_plis_are_relayed_at_most_one_per_500_ms(
    worker: Worker, decoder_guard: DecoderGuard, events: Events
) -> None:
    room = worker.create_room("r1")
    camera = ClipTrack(vp8_clip(colour="cyan", seconds=20.0))
    pub_bot = PublisherBot([camera])
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        slot = viewer.video_slots[0]
        slot.set_source(publisher.publications[0])
        await until(lambda: sub_bot.video(0).frames >= 5, what="video")
        receiver = sub_bot.pc.getTransceivers()[0].receiver
        ssrc = receiver.getSynchronizationSources()[0].source
        relayed, heard, mark = slot.keyframe_requests, camera.keyframe_requests, len(events)
        start = time.monotonic()
        for _ in range(24):  # a PLI storm from the subscriber: one every 50 ms (or slower on a busy machine)
            await hooks.send_pli(receiver, ssrc)
            await asyncio.sleep(0.05)
        storm = time.monotonic() - start
        await until(lambda: slot.keyframe_requests == relayed + 24, what="every PLI at the SFU")
        # a request deferred by the throttle fires at most 0.5 s after the last one sent (on this loop)
        await asyncio.sleep(0.6)
        sent = [t for t, _ in events.timed(KeyframeRequested)]  # taken as the SFU sent each PLI
        storm_sent = len(events.timed(KeyframeRequested, since=mark))
        # what was counted spans the storm and the waits after it (long on a busy machine, when a sink's
        # retry or a loss may ask too): the throttle's bound is over that whole span
        counted_over = time.monotonic() - start
        await until(lambda: camera.keyframe_requests == heard + storm_sent, what="the publisher hears each")
        # the throttle, on the SFU's own clock: never two PLIs within 500 ms, one per window of the storm
        assert all(later - earlier >= 0.5 - 1e-3 for earlier, later in zip(sent, sent[1:], strict=False)), sent
        assert 2 <= storm_sent <= 2 + counted_over / 0.5, (storm_sent, storm, counted_over)
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_recorder_tap_gets_encoded_frames_from_a_keyframe(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    import av

    room = worker.create_room("r1")
    camera = ClipTrack(vp8_clip(colour="yellow", seconds=20.0))
    pub_bot = PublisherBot([camera, ToneTrack()])
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        await until(lambda: camera.sent >= 15, what="the camera past its first keyframe")
        requests = camera.keyframe_requests
        video_tap = publisher.publications[0].attach_tap()
        audio_tap = publisher.publications[1].attach_tap()
        frames = [await asyncio.wait_for(video_tap.recv(), 10) for _ in range(10)]
        assert frames[0].keyframe and camera.keyframe_requests > requests
        assert all(b.timestamp > a.timestamp for a, b in zip(frames, frames[1:], strict=False))
        decoder = av.CodecContext.create("vp8", "r")  # the recorder's concern, not the SFU's
        decoded = [f for frame in frames for f in decoder.decode(frame.to_packet())]
        assert len(decoded) == 10 and decoded[0].width == 320
        sound = await asyncio.wait_for(audio_tap.recv(), 10)
        assert sound.kind == "audio" and sound.clock_rate == 48000
        await video_tap.close()
        assert video_tap.closed
        await publisher.close()
        assert [f async for f in audio_tap] == [] or audio_tap.closed
    finally:
        await pub_bot.close()


async def test_h264_room_forwards_h264(worker: Worker, decoder_guard: DecoderGuard, decode_errors) -> None:
    from tests.fakes.media import h264_clip

    room = worker.create_room("r264", video_codec="H264")
    pub_bot = PublisherBot([ClipTrack(h264_clip(colour="blue")), ToneTrack()])
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        assert publisher.publications[0].codec == "H264"
        viewer.video_slots[0].set_source(publisher.publications[0])
        video = sub_bot.video(0)
        await until(lambda: video.frames >= 15, what="h264 frames")
        assert video.colour() == "blue"
        assert decode_errors.count == 0
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_worker_close_cascades_to_everything(
    options, events: Events, no_leaks: None, decoder_guard: DecoderGuard
) -> None:
    from sfu import ParticipantClosed, RoomClosed, WorkerClosed

    worker = Worker(options, listener=events.append)
    await worker.start()
    room = worker.create_room("r1")
    pub_bot, sub_bot = venue("red"), SubscriberBot()
    publisher = await publish(room, "venue-a", pub_bot)
    viewer = await subscribe(room, "venue-b", sub_bot)
    viewer.video_slots[0].set_source(publisher.publications[0])
    tap = publisher.publications[1].attach_tap()
    await until(lambda: sub_bot.video(0).frames >= 3, what="video")
    await worker.close()
    await worker.close()  # idempotent
    assert room.closed and publisher.closed and viewer.closed
    assert all(p.closed for p in publisher._publications.values())
    assert all(s.closed for s in viewer.slots) and tap.closed
    assert publisher.link_state("publisher") == "closed" and viewer.link_state("subscriber") == "closed"
    with pytest.raises(WorkerClosed):
        worker.create_room("r2")
    with pytest.raises(RoomClosed):
        room.join("venue-x")
    with pytest.raises(ParticipantClosed):
        await viewer.subscriber_offer()
    await sub_bot.close()
    await pub_bot.close()


async def test_every_slot_forwards_and_a_venue_can_publish_high_and_low_video(
    worker: Worker, decoder_guard: DecoderGuard, decode_errors
) -> None:
    room = worker.create_room("r1")
    # venue a publishes a high and a low camera track plus its microphone; venue b camera + mic
    a_bot = PublisherBot(
        [
            ClipTrack(vp8_clip(colour="red")),
            ClipTrack(vp8_clip(colour="yellow", width=160, height=90)),
            ToneTrack(),
        ]
    )
    b_bot = venue("blue", 660.0)
    sub_bot = SubscriberBot()
    try:
        a = await publish(room, "venue-a", a_bot, names={"0": "high", "1": "low", "2": "mic"})
        b = await publish(room, "venue-b", b_bot)
        viewer = await subscribe(room, "venue-c", sub_bot)
        viewer.video_slots[0].set_source(a.publication("low"))
        viewer.video_slots[1].set_source(b.publication("video-0"))
        viewer.audio_slots[0].set_source(a.publication("mic"))
        viewer.audio_slots[1].set_source(b.publication("audio-0"))
        await until(
            lambda: all(r.frames >= 10 for r in sub_bot.received.values()) and len(sub_bot.received) == 4,
            what="all four slots",
        )
        assert sub_bot.video(0).colour() == "yellow" and sub_bot.video(0).sizes == {(160, 90)}
        # one REMB source per publisher link: the low camera's receiver neither sends REMB nor estimates it
        from sfu import hooks

        assert hooks.estimates_bitrate(a.publication("high")._receiver)
        assert not hooks.estimates_bitrate(a.publication("low")._receiver)
        assert sub_bot.video(1).colour() == "blue"
        viewer.video_slots[0].set_source(a.publication("high"))
        await until(lambda: sub_bot.video(0).colour() == "red", what="high after low")
        assert sub_bot.video(0).sizes == {(160, 90), (320, 180)}
        assert decode_errors.count == 0
    finally:
        await sub_bot.close()
        await a_bot.close()
        await b_bot.close()


async def test_links_lost_and_restored_by_negotiating_again(
    worker: Worker, decoder_guard: DecoderGuard, events: Events
) -> None:
    from sfu import LinkLost, LinkUp, TransportFailed

    room = worker.create_room("r1")
    first_pub, second_pub = venue("red"), venue("green")
    first_sub, second_sub = SubscriberBot(), SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", first_pub, names={"0": "camera", "1": "mic"})
        viewer = await subscribe(room, "venue-b", first_sub)
        viewer.video_slots[0].set_source(publisher.publication("camera"))
        await until(lambda: first_sub.video(0).frames >= 5, what="video")
        # the publishing venue drops out (its browser closes the connection)
        await first_pub.close()
        await until(lambda: bool(events.of(LinkLost)), what="publisher link lost")
        [lost] = events.of(LinkLost)
        assert lost.role == "publisher" and isinstance(lost.error, TransportFailed)
        await until(lambda: viewer.video_slots[0].source is None, what="slot emptied")
        # ... and comes back: a new offer restores it; the room server re-points the slot
        answer = await publisher.publish_offer(await second_pub.offer(), names={"0": "camera", "1": "mic"})
        await second_pub.accept(answer)
        await publisher.wait_connected("publisher")
        assert [e.restored for e in events.of(LinkUp) if e.role == "publisher"] == [False, True]
        viewer.video_slots[0].set_source(publisher.publication("camera"))
        await until(lambda: first_sub.video(0).colour() == "green", what="restored publisher")
        # the subscriber drops out and comes back: its slots keep their sources
        await first_sub.close()
        await until(lambda: viewer.link_state("subscriber") == "closed", what="subscriber lost")
        offer = await viewer.subscriber_offer()
        await viewer.apply_answer(await second_sub.answer(offer))
        await viewer.wait_connected("subscriber")
        assert viewer.video_slots[0].source is publisher.publication("camera")
        await until(lambda: second_sub.video(0).frames >= 5, what="restored subscriber")
        assert second_sub.video(0).colour() == "green"
        assert [e.restored for e in events.of(LinkUp) if e.role == "subscriber"] == [False, True]
    finally:
        for bot in (first_sub, second_sub):
            await bot.close()
        for pub_bot in (first_pub, second_pub):
            await pub_bot.close()
