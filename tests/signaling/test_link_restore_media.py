"""A venue reported lost is announced back (``room.venue_link_restored``) whatever path its media takes to come
back: aiortc venue bots publishing through the SFU. A new publication on the same connection, and the first
media after the media process restarted (the mark kept in the Redis room store), each give exactly one
restore; a venue that was never lost gives none; the mark is gone once the venue is back. Beside them: the
marks' contract on both stores, the frames an SFU drains after an uplink failure (no false restore), and a
store that fails (the loss is still announced, the failure counted)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry

from signaling.events import Event, VenueLinkLost, VenueLinkRestored
from signaling.grants import Role
from signaling.protocol import ServerMessage
from signaling.room import MemoryRoomStore, RedisRoomStore, Room, StoreError
from signaling.room.health import LinkMonitor
from signaling.room.media import MediaPlane
from signaling.room.store import LinkMarks
from signaling.supervisor import Supervisor
from tests.fakes.venue_bot import until

from .room_harness import ROOM, Harness, running_server
from .test_room_media import MEDIA, Venues, decoder_guard, loopback_ice, sees, venues_factory

__all__ = ["decoder_guard", "loopback_ice", "venues_factory"]  # the fixtures of the media tests, shared

LOST, RESTORED = "room.venue_link_lost", "room.venue_link_restored"


def link_events(h: Harness, type_: str) -> list[str]:
    return [str(getattr(e, "venue", "")) for e in h.bus.published if e.type == type_]


def link_state(h: Harness, venue: str) -> str | None:
    """The media plane's view of ``venue``'s link (sampled every tick): waited on so that a test cuts media
    only once the room server has seen it flow (the SFU counts frames only while someone receives them)."""
    media = h.server.media
    mr = media._rooms.get(ROOM) if media is not None else None
    return None if mr is None else mr.links.state(venue)


async def chair_watches(v: Venues, h: Harness) -> None:
    chair = await v.join(Role.CHAIR, "tinh")
    await chair.subscribe()


@pytest.fixture
async def marks(redis_base_url: str, redis_prefix: str) -> AsyncIterator[RedisRoomStore]:
    """The media plane's marks as the composition root gives them in the scaled topology: the room store's
    Redis, the process's own client."""
    store = RedisRoomStore.connect(redis_base_url, redis_prefix)
    yield store
    await store.close()


@pytest.mark.media
async def test_a_lost_venue_that_publishes_anew_on_its_connection_is_announced_back_once(
        venues_factory: list[Venues]) -> None:
    async with running_server(media=MEDIA) as h:
        assert h.server.media is not None
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh")
        b = await v.join(Role.VENUE, "tien-du")
        for bot in (chair, b):
            await bot.publish()
        await chair.subscribe()
        start = time.monotonic()
        await until(lambda: sees(chair, "tien-du", start), what="the chair sees tien-du")
        await until(lambda: link_state(h, "tien-du") == "up", what="tien-du's media flowing")

        await b.close_media()  # the venue's camera and uplink die; its socket stays
        await until(lambda: LOST in h.bus.types(), what="VenueLinkLost")
        assert link_events(h, LOST) == ["tien-du"]
        assert await h.server.media.link_marks.links_lost(ROOM) == frozenset({"tien-du"})

        # the page gives up the old publication and publishes again: a new publication, the monitor forgets
        # the old one, so only the mark tells that the venue was lost
        await b.send({"type": "media.unpublish"})
        b.publishing = False
        await b.publish()
        back = time.monotonic()
        await until(lambda: RESTORED in h.bus.types(), what="VenueLinkRestored")
        await until(lambda: sees(chair, "tien-du", back), what="the chair sees tien-du again")
        await chair.wait_for(lambda m: m["type"] == "media.link" and m["venue"] == "tien-du"
                             and m["state"] == "restored")
        assert link_events(h, RESTORED) == ["tien-du"]
        assert link_events(h, LOST) == ["tien-du"]
        assert await h.server.media.link_marks.links_lost(ROOM) == frozenset()
        assert "tinh" not in link_events(h, RESTORED)  # the chair's first media: never lost, never "back"


@pytest.mark.media
async def test_after_a_media_restart_the_first_media_of_a_venue_lost_before_is_announced_back(
        venues_factory: list[Venues], redis_base_url: str, redis_prefix: str, marks: RedisRoomStore) -> None:
    async with running_server(store=RedisRoomStore.connect(redis_base_url, redis_prefix), media=MEDIA) as h:
        assert h.server.media is not None
        h.server.media.link_marks = marks
        v = Venues(h)
        venues_factory.append(v)
        b = await v.join(Role.VENUE, "tien-du")
        await b.publish()
        await chair_watches(v, h)
        await until(lambda: link_state(h, "tien-du") == "up", what="tien-du's media flowing")
        await b.close_media()
        await until(lambda: LOST in h.bus.types(), what="VenueLinkLost")
        assert await marks.links_lost(ROOM) == frozenset({"tien-du"})
        await v.close()
        venues_factory.remove(v)
    assert await marks.links_lost(ROOM) == frozenset({"tien-du"})  # kept in Redis beyond the process

    # a new media process: the room comes back from the store, the marks from Redis; the venue's page
    # connects again and publishes on a new connection
    async with running_server(store=RedisRoomStore.connect(redis_base_url, redis_prefix), media=MEDIA,
                              open_default_room=False) as h2:
        assert h2.server.media is not None and h2.server.room(ROOM) is not None
        h2.server.media.link_marks = marks
        v2 = Venues(h2)
        venues_factory.append(v2)
        chair = await v2.join(Role.CHAIR, "tinh")
        await chair.publish()  # never lost: its first media is no restore
        b2 = await v2.join(Role.VENUE, "tien-du")
        await b2.publish()
        await chair.subscribe()
        back = time.monotonic()
        await until(lambda: RESTORED in h2.bus.types(), what="VenueLinkRestored after the restart")
        await until(lambda: sees(chair, "tien-du", back), what="the chair sees tien-du")
        assert link_events(h2, RESTORED) == ["tien-du"]
        assert link_events(h2, LOST) == []
        assert await marks.links_lost(ROOM) == frozenset()
        (event,) = [e for e in h2.bus.published if e.type == RESTORED]
        assert isinstance(event, VenueLinkRestored) and event.room == ROOM


async def check_marks(marks: LinkMarks, room: str) -> None:
    assert await marks.links_lost(room) == frozenset()
    assert await marks.clear_link_lost(room, "a") is False  # restored without lost: nothing to announce
    await marks.mark_link_lost(room, "a")
    await marks.mark_link_lost(room, "a")  # lost twice: one mark
    await marks.mark_link_lost(room, "b")
    await marks.mark_link_lost(f"{room}-other", "a")
    assert await marks.links_lost(room) == frozenset({"a", "b"})
    assert await marks.clear_link_lost(room, "a") is True
    assert await marks.clear_link_lost(room, "a") is False  # a duplicate restore announces nothing more
    assert await marks.links_lost(room) == frozenset({"b"})
    assert await marks.links_lost(f"{room}-other") == frozenset({"a"})  # rooms apart


@pytest.mark.unit
async def test_marks_are_kept_per_room_cleared_once_and_forgotten_with_the_room_in_memory() -> None:
    store = MemoryRoomStore()
    await check_marks(store, "r1")
    await store.delete("r1")
    assert await store.links_lost("r1") == frozenset()
    await store.close()
    with pytest.raises(StoreError):
        await store.mark_link_lost("r1", "a")


@pytest.mark.integration
async def test_marks_are_kept_per_room_cleared_once_and_forgotten_with_the_room_in_redis(
        redis_base_url: str, redis_prefix: str) -> None:
    store = RedisRoomStore.connect(redis_base_url, redis_prefix)
    try:
        await check_marks(store, "r1")
        other = RedisRoomStore.connect(redis_base_url, redis_prefix)  # another process on the same Redis
        assert await other.links_lost("r1") == frozenset({"b"})
        await other.close()
        await store.delete("r1")
        assert await store.links_lost("r1") == frozenset()
    finally:
        await store.close()
    unreachable = RedisRoomStore.connect("redis://127.0.0.1:1/0", redis_prefix)
    try:
        for call in (unreachable.mark_link_lost("r1", "a"), unreachable.clear_link_lost("r1", "a"),
                     unreachable.links_lost("r1")):
            with pytest.raises(StoreError):
                await call
    finally:
        await unreachable.close()


@pytest.mark.unit
def test_frames_drained_after_an_uplink_failure_are_no_restore_but_a_new_publication_is() -> None:
    monitor = LinkMonitor(1.0)
    assert monitor.sample({"a": 10}, 0.0) == []
    assert monitor.sample({"a": 20}, 0.5) == []
    assert monitor.failed("a", 0.6) == "lost"
    assert monitor.sample({"a": 23}, 0.7) == []  # frames already on their way when the peer connection closed
    assert monitor.sample({"a": 23}, 3.0) == []  # nothing more: still lost, reported once
    assert monitor.state("a") == "lost"
    assert monitor.sample({"a": 30}, 3.1) == [("a", "restored")]  # the same publication flows again, later
    assert monitor.failed("a", 4.0) == "lost"
    assert monitor.sample({}, 4.1) == []  # the publication is gone (a new connection comes)
    assert monitor.sample({"a": 2}, 4.2) == [("a", "restored")]  # a new publication: at once


class Host:
    """The room server as the media plane sees it (:class:`signaling.room.media.MediaHost`)."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = lambda: datetime(2026, 12, 10, 9, tzinfo=UTC).timestamp()
        self.events: list[Event] = []

    def room(self, room: str) -> Room | None:
        return None

    def send_to(self, room: str, participant: str, message: ServerMessage) -> None:
        pass

    def broadcast(self, room: str, message: ServerMessage, audience: Literal["room", "moderators"]) -> None:
        pass

    async def publish_event(self, event: Event) -> None:
        self.events.append(event)


@pytest.mark.unit
async def test_a_store_that_fails_still_lets_the_loss_and_the_restore_be_announced_and_counts_it() -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry)
    host = Host()
    plane = MediaPlane(host, supervisor=supervisor)
    broken = MemoryRoomStore()
    await broken.close()
    plane.link_marks = broken
    await plane._venue_link("r1", "a", "lost")
    await plane._venue_link("r1", "a", "restored")
    assert [type(e) for e in host.events] == [VenueLinkLost, VenueLinkRestored]
    assert registry.get_sample_value("tiepdan_task_crashes_total", {"task": "media-link-marks"}) == 2.0
    await plane.close()
    await supervisor.close()
