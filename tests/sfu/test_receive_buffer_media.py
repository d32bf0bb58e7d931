"""``Options.receive_buffer_bytes``: every media socket of the SFU gets the receive buffer asked for."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from sfu import Options, Worker, hooks
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, vp8_clip
from tests.sfu.conftest import DecoderGuard, make_options
from tests.sfu.helpers import publish, subscribe, until
from tiepdan.room_wiring import media_options
from tiepdan.settings import Settings

pytestmark = pytest.mark.media

ASKED = 1024 * 1024


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


@pytest.fixture
def options() -> Options:
    return make_options(receive_buffer_bytes=ASKED)


async def test_publisher_and_subscriber_sockets_get_the_buffer_and_media_flows(
    worker: Worker, decoder_guard: DecoderGuard
) -> None:
    room = worker.create_room("r1")
    pub_bot = PublisherBot([ClipTrack(vp8_clip(colour="blue"), "blue"), ToneTrack()])
    sub_bot = SubscriberBot()
    try:
        publisher = await publish(room, "venue-a", pub_bot)
        viewer = await subscribe(room, "venue-b", sub_bot)
        viewer.video_slots[0].set_source(publisher.publications[0])
        await until(lambda: sub_bot.video(0).frames >= 3, what="video")
        expected = min(ASKED, rmem_max())
        for participant in (publisher, viewer):
            for transport in (participant._publisher, participant._subscriber):
                if transport is None:
                    continue
                sizes = hooks.receive_buffers(transport.pc)
                assert sizes and all(size >= expected for size in sizes), (participant.id, sizes, expected)
        # the bots (aiortc, never touched by the option) keep what aioice sets
        assert all(size < expected for size in hooks.receive_buffers(pub_bot.pc))
    finally:
        await sub_bot.close()
        await pub_bot.close()


async def test_a_kernel_cap_below_the_request_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    too_much = rmem_max() * 4
    caplog.set_level(logging.WARNING, logger="sfu.transport")
    async with Worker(make_options(receive_buffer_bytes=too_much)) as worker:
        room = worker.create_room("r1")
        bots = [PublisherBot([ToneTrack()]) for _ in range(2)]
        try:
            for index, bot in enumerate(bots):
                await publish(room, f"venue-{index}", bot)
        finally:
            for bot in bots:
                await bot.close()
    warnings = [r for r in caplog.records if "net.core.rmem_max" in r.getMessage()]
    assert len(warnings) == 1 and str(too_much) in warnings[0].getMessage()


def test_the_setting_reaches_the_sfu_and_zero_means_the_kernels_default() -> None:
    assert media_options(Settings()).sfu.receive_buffer_bytes is None
    assert media_options(Settings(media_receive_buffer_bytes=ASKED)).sfu.receive_buffer_bytes == ASKED
    with pytest.raises(ValidationError):
        Settings(media_receive_buffer_bytes=-1)
