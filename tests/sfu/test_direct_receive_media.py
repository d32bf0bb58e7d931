"""``Options.direct_receive``: the SFU handles received SRTP/SRTCP in the socket's callback.

Between aiortc bots over loopback: media and the subscribers' RTCP take the direct path once connected,
forged or damaged datagrams are refused without harm, a failing handling costs one datagram (not the
link), and with the option off aiortc's own path still carries everything.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable

import pytest

from sfu import Options, Worker, hooks
from sfu.transport import Transport
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, vp8_clip
from tests.sfu.conftest import DecoderGuard, make_options
from tests.sfu.helpers import publish, subscribe, until, watched

pytestmark = pytest.mark.media


def venue(colour: str = "red") -> PublisherBot:
    return PublisherBot([ClipTrack(vp8_clip(colour=colour, seconds=10.0), colour), ToneTrack()])


def counts(transport: Transport | None) -> hooks.DirectReceive:
    assert transport is not None
    found = transport.direct_receive_counts()
    assert len(found) == 1, found  # max-bundle: one DTLS transport per peer connection
    return found[0]


async def test_media_and_rtcp_take_the_direct_path(worker: Worker, decoder_guard: DecoderGuard) -> None:
    room = worker.create_room("r1")
    pub_bot, sub_bot = venue(), SubscriberBot()
    try:
        publisher, viewer = await watched(room, pub_bot, sub_bot)
        ingest = counts(publisher._publisher)
        # what reached the publications came through the direct path; the queue took the handshake only
        received = sum(p.packets for p in (await publisher.stats())[0])
        assert received >= 100
        assert ingest.handled >= received
        assert ingest.queued <= 20, ingest
        assert ingest.refused == ingest.failures == 0
        # the subscriber's receiver reports (and NACKs, if any) come the same way
        feedback = counts(viewer._subscriber)
        await until(lambda: feedback.handled >= 1, timeout=15, what="RTCP from the subscriber")
        assert feedback.refused == feedback.failures == 0
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def stranger_sends(direct: bool, datagrams: list[bytes],
                         dropped: Callable[[hooks.DirectReceive, int], bool]) -> hooks.DirectReceive:
    """During a session (one venue publishing, one subscribed), send ``datagrams`` from a stranger's socket
    to every media socket of the venue's publishing link; wait until ``dropped(counters, sockets)``, then
    check that the link stays connected and video goes on. Returns the link's counters."""
    async with Worker(make_options(direct_receive=direct)) as worker:
        room = worker.create_room("r1")
        pub_bot, sub_bot = venue(), SubscriberBot()
        try:
            publisher = await publish(room, "venue-a", pub_bot)
            viewer = await subscribe(room, "viewer", sub_bot)
            viewer.video_slots[0].set_source(publisher.publications[0])
            video = sub_bot.video(0)
            await until(lambda: video.frames >= 5, what="video")
            transport = publisher._publisher
            assert transport is not None
            ingest = counts(transport)
            targets = [s.getsockname()[:2] for s in hooks._media_sockets(transport.pc)
                       if s.family == socket.AF_INET]
            assert targets
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                for target in targets:
                    for data in datagrams:
                        stranger.sendto(data, target)
            await until(lambda: dropped(ingest, len(targets)), what="the stranger's datagrams dropped")
            frames = video.frames
            await until(lambda: video.frames >= frames + 15, what="video after the stranger's datagrams")
            assert ingest.failures == 0
            assert transport.state == "connected"
            return ingest
        finally:
            await sub_bot.close()
            await pub_bot.close()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "queued"])
async def test_forged_and_damaged_datagrams_are_refused_and_media_goes_on(direct: bool, decoder_guard: DecoderGuard
                                                                           ) -> None:
    forged = [
        bytes([0x80, 96]) + os.urandom(40),  # SRTP-looking, wrong key and tag
        bytes([0x80, 0xC8]) + os.urandom(40),  # SRTCP-looking (a sender report), wrong key
        bytes([0x90, 0x60]) + bytes(1400),  # an RTP header with an extension, all zeros
        bytes([0x80]),  # one byte: left to aiortc's queue, where SRTP refuses it
        b"",  # empty: would end aiortc's transport task (IndexError), so the transport drops it first
        bytes([0x16, 0xFE, 0xFD]) + os.urandom(30),  # DTLS-looking: aiortc's queue, OpenSSL refuses it
    ]
    if direct:  # the three SRTP-looking ones refused by libsrtp, and the empty one
        ingest = await stranger_sends(direct, forged, lambda c, sockets: c.refused >= 4 * sockets)
    else:  # only the empty one dropped here: aiortc's queue takes the rest
        ingest = await stranger_sends(direct, forged, lambda c, sockets: c.refused >= sockets)
        assert ingest.handled == 0


def malformed_stun() -> list[bytes]:
    """STUN binding requests and responses whose attributes are cut short (aioice's parser raises
    ``struct.error`` on them, not the ``ValueError`` its socket protocol catches)."""
    out = []
    for msg_type in (0x0001, 0x0101, 0x0111):
        for attribute in (struct.pack("!HH", 0x8029, 3) + b"\x00\x00\x00\x00",  # ICE-CONTROLLED, 3 of 8
                          struct.pack("!HH", 0x0024, 1) + b"\x00\x00\x00\x00"):  # PRIORITY, 1 of 4
            out.append(struct.pack("!HHI", msg_type, len(attribute), 0x2112A442) + os.urandom(12) + attribute)
    return out


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "queued"])
async def test_malformed_stun_is_dropped_without_a_traceback_per_datagram(
    direct: bool, decoder_guard: DecoderGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sent = malformed_stun() * 20
    await stranger_sends(direct, sent, lambda c, sockets: c.malformed >= len(sent) * sockets)
    # one warning for the lot, and nothing reached asyncio's handler (a traceback per datagram)
    warned = [r for r in caplog.records if "malformed datagram" in r.getMessage()]
    assert len(warned) == 1 and warned[0].exc_info is None
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]


async def test_a_failing_handling_costs_a_packet_not_the_link(
    worker: Worker, decoder_guard: DecoderGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="sfu.hooks")
    room = worker.create_room("r1")
    pub_bot, sub_bot = venue(), SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "viewer", sub_bot)
        audio = publisher.publications[1]
        viewer.video_slots[0].set_source(publisher.publications[0])
        viewer.audio_slots[0].set_source(audio)
        await until(lambda: sub_bot.audio(0).frames >= 10, what="audio")
        ingest = counts(publisher._publisher)
        original = audio.on_rtp
        raised: list[int] = []

        def broken(packet: object, data: bytes) -> None:  # a bug in the ingest, three times
            if len(raised) < 3:
                raised.append(1)
                raise RuntimeError("ingest bug")
            original(packet, data)  # type: ignore[arg-type]

        audio.on_rtp = broken  # type: ignore[method-assign]
        await until(lambda: len(raised) == 3, what="the failing handlings")
        frames = sub_bot.audio(0).frames, sub_bot.video(0).frames
        await until(lambda: sub_bot.audio(0).frames >= frames[0] + 25 and sub_bot.video(0).frames >= frames[1] + 10,
                    what="media after the failures")
        assert ingest.failures == 3
        logged = [r for r in caplog.records if "RTP/RTCP handling failed" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None  # once per transport, with the traceback
        assert publisher._publisher is not None and publisher._publisher.state == "connected"
    finally:
        await sub_bot.close()
        await pub_bot.close()


@pytest.fixture
def queued_options() -> Options:
    return make_options(direct_receive=False)


async def test_off_leaves_everything_to_aiortcs_path(queued_options: Options, decoder_guard: DecoderGuard) -> None:
    async with Worker(queued_options) as worker:
        room = worker.create_room("r1")
        pub_bot, sub_bot = venue(), SubscriberBot()
        try:
            publisher, viewer = await watched(room, pub_bot, sub_bot, frames=15, packets=25)
            for transport in (publisher._publisher, viewer._subscriber):
                found = counts(transport)
                assert found.handled == 0 and found.queued > 0, found
        finally:
            await sub_bot.close()
            await pub_bot.close()


def test_the_setting_reaches_the_sfu() -> None:
    from tiepdan.room_wiring import media_options
    from tiepdan.settings import Settings

    assert media_options(Settings()).sfu.direct_receive is True
    assert media_options(Settings(media_direct_receive=False)).sfu.direct_receive is False
