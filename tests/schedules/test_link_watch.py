"""The link watch on a stored session (SQLite and PostgreSQL), fed by the memory bus and by Redis: a lost link
of the called venue pauses its case once; any lost venue is held out of the call order until it is back;
a restore never resumes; foreign, repeated, late and out-of-order events change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import NotPermitted, calls, close_session
from schedules.errors import InvalidArgument
from schedules.link_loss import LinkChange, LinkOutcome, LinkState
from schedules.link_watch import (
    LINK_WATCH_ACTOR,
    LINK_WATCH_GROUP,
    link_watch_handler,
    record_venue_link,
    watch_venue_links,
)
from signaling.bus import Bus, Handler
from signaling.events import AnyEvent, CasePaused, CaseResumed, HandRaised, VenueLinkLost, VenueLinkRestored
from signaling.memory_bus import MemoryBus
from signaling.redis_bus import RedisBus
from tiepdan.db import make_engine

from ..signaling._bus_helpers import FAST
from .conftest import CHAIR, DESK, FakeClock, audit_actions, outbox_events
from .test_calls import CHAIR_ID, ROOM, started

pytestmark = pytest.mark.integration


class Tally:
    """Events handled, by any of the consumers that share it; a test waits for a count."""

    def __init__(self) -> None:
        self.handled = 0
        self._changed = asyncio.Event()

    def add(self) -> None:
        self.handled += 1
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.handled < count:
                self._changed.clear()
                await self._changed.wait()


class Watch:
    """A link-watch consumer on ``bus`` as one process would run it; counts the events it was given."""

    def __init__(self, bus: Bus, engine: AsyncEngine, clock: FakeClock, name: str, tally: Tally | None = None) -> None:
        self.bus, self.notified = bus, 0
        self.tally = tally or Tally()
        handler = link_watch_handler(engine, clock=clock, notify=self._notify)

        async def counted(event: AnyEvent) -> None:
            await handler(event)
            self.tally.add()

        self.handler: Handler = counted
        self.task = asyncio.create_task(watch_venue_links(bus, counted, consumer=name))

    def _notify(self) -> None:
        self.notified += 1

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def memory_watch(engine: AsyncEngine, clock: FakeClock) -> AsyncIterator[Watch]:
    bus = MemoryBus(FAST)
    watch = Watch(bus, engine, clock, "node-a")
    await bus.create_group(LINK_WATCH_GROUP)
    yield watch
    await watch.stop()
    await bus.close()


def lost(venue: str, at: datetime, room: str = ROOM) -> VenueLinkLost:
    return VenueLinkLost(room=room, venue=venue, occurred_at=at)


def restored(venue: str, at: datetime, room: str = ROOM) -> VenueLinkRestored:
    return VenueLinkRestored(room=room, venue=venue, occurred_at=at)


async def publish_all(watch: Watch, events: Sequence[AnyEvent]) -> None:
    before = watch.tally.handled
    for event in events:
        await watch.bus.publish(event)
    await watch.tally.wait_for(before + len(events))


async def pauses(engine: AsyncEngine) -> list[CasePaused]:
    return [e for e in await outbox_events(engine) if isinstance(e, CasePaused)]


async def queue_now(engine: AsyncEngine) -> tuple[bool, frozenset[str], int | None]:
    async with engine.connect() as conn:
        state, _ = await calls.load_queue(conn, ROOM)
    return state.paused, state.unavailable_venues, state.current


async def test_the_called_venue_lost_pauses_its_case_once_and_only_the_chair_resumes_it(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch, caplog: pytest.LogCaptureFixture,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    clock.advance(minutes=3)
    down = lost("xa-tien-du", clock.now)
    with caplog.at_level(logging.INFO, logger="schedules.link_watch"):
        # delivered twice (at least once), then a second loss of the same venue without a restore between
        await publish_all(memory_watch, [down, down, lost("xa-tien-du", clock.now + timedelta(seconds=1))])
    (paused,) = await pauses(engine)
    assert (paused.ticket_no, paused.venue, paused.reason, paused.pause_no, paused.call_seq) == (
        1, "xa-tien-du", "link_lost", 1, 1)
    assert paused.by == LINK_WATCH_ACTOR and paused.occurred_at == clock.now
    assert await queue_now(engine) == (True, frozenset({"xa-tien-du"}), 1)
    logged = [r for r in caplog.records if r.getMessage() == "case paused: venue link lost"]
    assert [r.ctx for r in logged] == [{"session": ROOM, "venue": "xa-tien-du", "event": down.event_id,  # type: ignore[attr-defined]
                                        "code": "paused", "ticket_no": 1}]
    assert memory_watch.notified == 3

    clock.advance(seconds=20)
    await publish_all(memory_watch, [restored("xa-tien-du", clock.now)])
    assert await queue_now(engine) == (True, frozenset(), 1)  # back, and still paused until the chair says
    assert len(await pauses(engine)) == 1
    clock.advance(seconds=10)
    async with engine.begin() as conn:
        resumed = await calls.resume(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    (event,) = resumed.events
    assert isinstance(event, CaseResumed) and (event.pause_no, event.ticket_no) == (1, 1)
    audited = [a for a, _, _ in await audit_actions(engine) if a in ("queue.venue_link", "case.paused",
                                                                       "case.resumed")]
    assert audited == ["queue.venue_link", "case.paused", "queue.venue_link", "queue.venue_link", "case.resumed"]


async def test_another_venue_lost_is_held_out_of_the_call_order_until_it_is_back(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ()), ("xa-tien-du", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)  # 1, at Tiên Du
    clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("phuong-que-vo", clock.now)])
    assert await pauses(engine) == []
    assert await queue_now(engine) == (False, frozenset({"phuong-que-vo"}), 1)
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        second = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert [e.ticket_no for e in second.events] == [3]  # type: ignore[attr-defined]  # 2 is held: Quế Võ is down
    clock.advance(minutes=1)
    await publish_all(memory_watch, [restored("phuong-que-vo", clock.now)])
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        third = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert [e.ticket_no for e in third.events] == [2]  # type: ignore[attr-defined]
    assert await pauses(engine) == []


async def test_foreign_late_and_out_of_order_link_events_change_nothing(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        called = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    t = clock.advance(minutes=1)
    await publish_all(memory_watch, [
        restored("xa-tien-du", t + timedelta(seconds=6)),  # handled first: the restore overtook its loss
        lost("xa-tien-du", t),
        lost("xa-tien-du", t - timedelta(hours=3)),  # before the session opened (a replay)
        lost("xa-tien-du", t, room="phien-khong-co"),  # a room that is no session
        lost("xa-tien-du", t, room="Phòng thử"),  # not even a session id
        lost("xa-gia-binh", t),  # a venue not in this session
        HandRaised(room=ROOM, participant="p-1"),  # not a link event: passed over
    ])
    assert await pauses(engine) == []
    assert await queue_now(engine) == (False, frozenset(), 1)
    async with engine.connect() as conn:
        _, version = await calls.load_queue(conn, ROOM)
    assert version == called.version  # nothing written to the queue
    audited = [a for a, _, _ in await audit_actions(engine) if a == "queue.venue_link"]
    assert audited == ["queue.venue_link"]  # the restore, kept as the venue's last link event

    # the session closes; a loss reported afterwards changes nothing and raises nothing
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        await close_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    await publish_all(memory_watch, [lost("phuong-que-vo", clock.now)])
    assert await queue_now(engine) == (False, frozenset(), None)
    assert await memory_watch.bus.dead_letters() == []


async def test_a_loss_during_the_roll_call_holds_the_venue_without_a_pause(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch,
) -> None:
    await started(engine, clock, [("xa-tien-du", ())], start=False)
    clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("xa-tien-du", clock.now)])
    assert await queue_now(engine) == (False, frozenset({"xa-tien-du"}), None)
    assert await pauses(engine) == []


async def test_bad_link_changes_are_refused_with_a_reason_and_the_consumer_drops_them(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch,
) -> None:
    await started(engine, clock, [("xa-tien-du", ())])
    naive = LinkChange(venue="xa-tien-du", state=LinkState.LOST, at=datetime(2026, 12, 10, 9))
    with pytest.raises(InvalidArgument, match="múi giờ"):
        async with engine.begin() as conn:
            await record_venue_link(conn, ROOM, naive, actor=LINK_WATCH_ACTOR, grants=CHAIR, clock=clock)
    spaced = LinkChange(venue="Xã Tiên Du", state=LinkState.LOST, at=clock.now)
    with pytest.raises(InvalidArgument, match="Mã điểm cầu") as refused:
        async with engine.begin() as conn:
            await record_venue_link(conn, ROOM, spaced, actor=LINK_WATCH_ACTOR, grants=CHAIR, clock=clock)
    assert refused.value.code == "bad_venue"
    good = LinkChange(venue="xa-tien-du", state=LinkState.LOST, at=clock.now)
    with pytest.raises(NotPermitted):
        async with engine.begin() as conn:
            await record_venue_link(conn, ROOM, good, actor=LINK_WATCH_ACTOR, grants=DESK, clock=clock)
    await publish_all(memory_watch, [lost("Xã Tiên Du", clock.now)])  # logged and dropped, not retried
    assert await memory_watch.bus.dead_letters() == []
    assert await queue_now(engine) == (False, frozenset(), None)
    async with engine.begin() as conn:
        outcome = await record_venue_link(conn, ROOM, good, actor=LINK_WATCH_ACTOR, grants=CHAIR, clock=clock)
    assert outcome.outcome is LinkOutcome.UNAVAILABLE


async def test_two_control_processes_on_redis_pause_the_case_once(
    engine: AsyncEngine, database_url: str, clock: FakeClock, redis_base_url: str, redis_prefix: str,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    clock.advance(minutes=1)
    media = await RedisBus.connect(redis_base_url, prefix=redis_prefix, options=FAST)  # the media process
    buses = [await RedisBus.connect(redis_base_url, prefix=redis_prefix, options=FAST) for _ in range(2)]
    other = make_engine(database_url)  # the second control process has its own connections
    tally = Tally()
    watches = [Watch(buses[0], engine, clock, "control-a", tally), Watch(buses[1], other, clock, "control-b", tally)]
    try:
        await media.create_group(LINK_WATCH_GROUP)
        down = lost("xa-tien-du", clock.now)
        events: list[AnyEvent] = [down, down, lost("phuong-que-vo", clock.now + timedelta(seconds=1)),
                                  restored("phuong-que-vo", clock.now + timedelta(seconds=9))]
        for event in events:
            await media.publish(event)
        await tally.wait_for(len(events), timeout=15)
        (paused,) = await pauses(engine)
        assert (paused.ticket_no, paused.venue, paused.reason) == (1, "xa-tien-du", "link_lost")
        assert await queue_now(engine) == (True, frozenset({"xa-tien-du"}), 1)
    finally:
        for watch in watches:
            await watch.stop()
        for bus in (*buses, media):
            await bus.close()
        await other.dispose()
