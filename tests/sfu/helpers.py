"""Glue between the SFU API and the bots (what the room server will do over signalling)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sfu import Participant, Room
from tests.fakes.media import PublisherBot, SubscriberBot


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


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Wait until ``predicate()``; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start
