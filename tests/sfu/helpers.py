"""Glue between the SFU API and the bots (what the room server will do over signalling)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sfu import Participant, Room, Subscription
from tests.fakes.media import PublisherBot, Received, SubscriberBot


async def publish(
    room: Room, participant_id: str, bot: PublisherBot, names: dict[str, str] | None = None
) -> Participant:
    participant = room.join(participant_id)
    answer = await participant.publish_offer(await bot.offer(), names=names)
    await bot.accept(answer)
    await participant.wait_connected("publisher")
    return participant


async def subscribe(room: Room, participant_id: str, bot: SubscriberBot, *, join: bool = True) -> Participant:
    participant = room.join(participant_id) if join else room.participant(participant_id)
    offer = await participant.subscriber_offer()
    await participant.apply_answer(await bot.answer(offer))
    await participant.wait_connected("subscriber")
    return participant


async def watched(room: Room, pub_bot: PublisherBot, sub_bot: SubscriberBot, *, frames: int = 30,
                  packets: int = 50) -> tuple[Participant, Participant]:
    """``venue-a`` publishes through ``pub_bot`` (camera, then microphone), ``viewer`` subscribes through
    ``sub_bot`` with its first video and audio slots on them; returns (publisher, viewer) once the viewer has
    ``frames`` video frames and ``packets`` audio frames."""
    publisher = await publish(room, "venue-a", pub_bot)
    viewer = await subscribe(room, "viewer", sub_bot)
    viewer.video_slots[0].set_source(publisher.publications[0])
    viewer.audio_slots[0].set_source(publisher.publications[1])
    await until(lambda: sub_bot.video(0).frames >= frames and sub_bot.audio(0).frames >= packets, what="media")
    return publisher, viewer


async def until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> float:
    """Wait until ``predicate()``; returns the seconds it took. Fails the test on timeout.

    The timeout is a safety net for a busy machine, not a measurement: judge media by their timestamps,
    frame counts and keyframe requests, never by how long this took.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def landed(slot: Subscription, received: Received, timeout: float = 15.0) -> int:
    """Wait until every RTP packet the SFU has sent on ``slot`` reached the bot's ``received``; their count.

    From then on a packet can only arrive if the SFU sends a new one, however busy the machine is. (Loopback
    loses nothing and the bots ask for no retransmission, so packets sent and packets arrived pair up.)
    """
    async with asyncio.timeout(timeout):
        while len(received.rtp) < (await slot.stats()).packets:
            await asyncio.sleep(0.02)
    return len(received.rtp)
