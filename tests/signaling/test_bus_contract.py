"""The bus contract (signaling/bus.py), run against MemoryBus and RedisBus alike."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from signaling.bus import BusOptions
from signaling.errors import BusError
from signaling.events import AnyEvent, HandRaised, SessionOpened, VenueInfo
from signaling.memory_bus import MemoryBus
from signaling.redis_bus import RedisBus

from ._bus_helpers import FAST, Collector, hands, ids

pytestmark = pytest.mark.integration

AnyBus = MemoryBus | RedisBus
MakeBus = Callable[..., Awaitable[AnyBus]]


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """Make buses of one kind; two Redis buses made here share a stream (two processes)."""
    made: list[AnyBus] = []
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""
    url = request.getfixturevalue("redis_base_url") if request.param == "redis" else ""

    async def factory(options: BusOptions = FAST) -> AnyBus:
        bus: AnyBus
        if request.param == "memory":
            bus = MemoryBus(options)
        else:
            bus = await RedisBus.connect(url, prefix=prefix, options=options)
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.close()


@pytest.fixture
async def bus(make_bus: MakeBus) -> AnyBus:
    return await make_bus()


@contextlib.asynccontextmanager
async def consuming(bus: AnyBus, group: str, consumer: str, handler: Callable[[AnyEvent], Awaitable[None]],
                    *, from_start: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    await bus.create_group(group, from_start=from_start)
    task = asyncio.create_task(bus.consume(group, consumer, handler, from_start=from_start))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_consumer_gets_every_event_in_publication_order_per_aggregate(bus: AnyBus) -> None:
    published: list[HandRaised] = []
    for a, b in zip(hands("r1", 12), hands("r2", 12), strict=True):
        published += [a, b]
    got = Collector()
    async with consuming(bus, "g", "c1", got):
        for event in published:
            await bus.publish(event)
        await got.wait_for(len(published))
    for room in ("r1", "r2"):
        assert [e.event_id for e in got.events if e.aggregate == f"room:{room}"] == \
            [e.event_id for e in published if e.aggregate == f"room:{room}"]
    assert sorted(got.ids) == sorted(ids(published))


async def test_delivered_event_equals_the_published_one(bus: AnyBus) -> None:
    event = SessionOpened(session="s1", venues=(VenueInfo(venue="v1", name="Huyện Đông Anh", main=True),))
    got = Collector()
    async with consuming(bus, "g", "c1", got):
        await bus.publish(event)
        await got.wait_for(1)
    assert got.events == [event]


async def test_each_group_gets_every_event(bus: AnyBus) -> None:
    events = hands("r1", 8)
    first, second = Collector(), Collector()
    async with consuming(bus, "minutes", "c1", first), consuming(bus, "room", "c1", second):
        for event in events:
            await bus.publish(event)
        await first.wait_for(8)
        await second.wait_for(8)
    assert first.ids == ids(events) == second.ids


async def test_consumers_of_one_group_share_the_events_each_once(bus: AnyBus) -> None:
    events = hands("r1", 30)
    one, two = Collector(delay_s=0.005), Collector(delay_s=0.005)
    async with consuming(bus, "g", "c1", one), consuming(bus, "g", "c2", two):
        await asyncio.sleep(0.2)  # both consumers are waiting before the first event
        for event in events:
            await bus.publish(event)
        async with asyncio.timeout(5):
            while len(one.events) + len(two.events) < len(events):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # nothing more arrives
    assert sorted(one.ids + two.ids) == sorted(ids(events))
    assert one.events and two.events


async def test_failing_handler_gets_the_same_event_again_before_later_ones(bus: AnyBus) -> None:
    first, second = hands("r1", 2)
    calls: list[str] = []

    async def flaky(event: AnyEvent) -> None:
        calls.append(event.event_id)
        if event.event_id == first.event_id and calls.count(first.event_id) < 3:
            raise RuntimeError("database busy")

    async with consuming(bus, "g", "c1", flaky):
        await bus.publish(first)
        await bus.publish(second)
        async with asyncio.timeout(5):
            while second.event_id not in calls:
                await asyncio.sleep(0.01)
    assert calls == [first.event_id] * 3 + [second.event_id]
    assert await bus.dead_letters() == []


async def test_event_whose_handler_always_fails_is_dead_lettered_and_the_group_moves_on(bus: AnyBus) -> None:
    poison, good = hands("r1", 2)
    got = Collector()
    attempts = 0

    async def handler(event: AnyEvent) -> None:
        nonlocal attempts
        if event.event_id == poison.event_id:
            attempts += 1
            raise ValueError("Nguyễn Văn A")  # the text must not reach logs or dead letters
        await got(event)

    async with consuming(bus, "g", "c1", handler):
        await bus.publish(poison)
        await bus.publish(good)
        await got.wait_for(1)
    assert attempts == FAST.max_attempts
    dead = await bus.dead_letters()
    assert [(d.group, d.reason) for d in dead] == [("g", "handler_failed:ValueError")]
    assert poison.event_id in dead[0].data and "Nguyễn" not in dead[0].reason


async def test_malformed_entries_are_dead_lettered_without_logging_the_payload(
        bus: AnyBus, caplog: pytest.LogCaptureFixture) -> None:
    before, after = hands("r1", 2)
    got = Collector()
    caplog.set_level(logging.DEBUG, logger="signaling.bus")
    async with consuming(bus, "g", "c1", got):
        await bus.publish(before)
        await bus.publish_serialized("not json at all: Trần Thị B")
        await bus.publish_serialized('{"type": "room.unknown_kind", "secret": "CCCD 001"}')
        await bus.publish(after)
        await got.wait_for(2)
    assert got.ids == [before.event_id, after.event_id]
    dead = await bus.dead_letters()
    assert [d.reason for d in dead] == ["malformed", "malformed"]
    assert dead[0].data == "not json at all: Trần Thị B"
    logged = " ".join(r.getMessage() + str(getattr(r, "ctx", "")) for r in caplog.records)
    assert "malformed" in logged
    assert "Trần" not in logged and "CCCD" not in logged


async def test_new_group_from_start_gets_events_published_before_it(bus: AnyBus) -> None:
    early = hands("r1", 3)
    for event in early:
        await bus.publish(event)
    got = Collector()
    async with consuming(bus, "late", "c1", got, from_start=True):
        await got.wait_for(3)
    assert got.ids == ids(early)


async def test_new_group_not_from_start_gets_only_later_events(bus: AnyBus) -> None:
    for event in hands("r1", 3):
        await bus.publish(event)
    later = hands("r1", 2, start=3)
    got = Collector()
    async with consuming(bus, "live", "c1", got, from_start=False):
        for event in later:
            await bus.publish(event)
        await got.wait_for(2)
        await asyncio.sleep(0.2)
    assert got.ids == ids(later)


async def test_existing_group_keeps_its_position_whatever_from_start_says(bus: AnyBus) -> None:
    first, second = hands("r1", 3), hands("r1", 2, start=3)
    got = Collector()
    async with consuming(bus, "g", "c1", got):
        for event in first:
            await bus.publish(event)
        await got.wait_for(3)
    for event in second:
        await bus.publish(event)
    again = Collector()
    async with consuming(bus, "g", "c1", again, from_start=True):
        await again.wait_for(2)
        await asyncio.sleep(0.2)
    assert again.ids == ids(second)


async def test_event_held_by_a_stopped_consumer_is_delivered_to_another(make_bus: MakeBus) -> None:
    bus_a = await make_bus()
    bus_b = await make_bus() if isinstance(bus_a, RedisBus) else bus_a  # Redis: another process
    stuck_event, next_event = hands("r1", 2)
    started = asyncio.Event()

    async def stuck(event: AnyEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    got = Collector()
    async with consuming(bus_a, "g", "dead-node", stuck):
        await bus_a.publish(stuck_event)
        await bus_a.publish(next_event)
        async with asyncio.timeout(5):
            await started.wait()
    async with consuming(bus_b, "g", "standby", got):
        await got.wait_for(2)
    assert set(got.ids) == {stuck_event.event_id, next_event.event_id}


async def test_consumer_restarted_under_its_name_resumes_its_pending_events(make_bus: MakeBus) -> None:
    slow = dataclasses.replace(FAST, claim_idle_s=60.0)  # no takeover: its own backlog
    bus = await make_bus(slow)
    held = hands("r1", 1)[0]
    started = asyncio.Event()

    async def stuck(event: AnyEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    async with consuming(bus, "g", "node-1", stuck):
        await bus.publish(held)
        async with asyncio.timeout(5):
            await started.wait()
    got = Collector()
    async with consuming(bus, "g", "node-1", got):
        await got.wait_for(1, timeout=3)
    assert got.ids == [held.event_id]


async def test_close_stops_consumers_and_their_consume_call_returns(bus: AnyBus) -> None:
    await bus.create_group("g")
    task = asyncio.create_task(bus.consume("g", "c1", Collector()))
    await asyncio.sleep(0.05)
    await bus.close()
    async with asyncio.timeout(2):
        await task  # returns, no exception
    assert task.done() and not task.cancelled()
    assert bus.closed


async def test_close_is_idempotent_and_everything_after_it_raises_bus_error(bus: AnyBus) -> None:
    await bus.close()
    await bus.close()
    with pytest.raises(BusError):
        await bus.publish(hands("r1", 1)[0])
    with pytest.raises(BusError):
        await bus.publish_serialized("{}")
    with pytest.raises(BusError):
        await bus.consume("g", "c1", Collector())
    with pytest.raises(BusError):
        async with bus.listen():
            pass


async def test_listener_gets_events_published_after_it_entered_until_close(bus: AnyBus) -> None:
    await bus.publish(hands("old", 1)[0])
    events = hands("r1", 3)
    got: list[AnyEvent] = []
    async with bus.listen() as listener:
        for event in events:
            await bus.publish(event)

        async def read() -> None:
            async for event in listener:
                got.append(event)
                if len(got) == len(events):
                    await bus.close()

        async with asyncio.timeout(5):
            await read()
    assert ids(got) == ids(events)


async def test_listener_that_falls_behind_ends_with_bus_error(make_bus: MakeBus) -> None:
    bus = await make_bus(dataclasses.replace(FAST, listen_queue=3))
    got: list[AnyEvent] = []
    async with bus.listen() as listener:
        for event in hands("r1", 10):
            await bus.publish(event)
        await asyncio.sleep(0.3)  # the Redis reader has fanned everything out
        with pytest.raises(BusError):
            async with asyncio.timeout(5):
                async for received in listener:
                    got.append(received)
    assert len(got) == 3
    await bus.publish(hands("r1", 1)[0])  # publishers are not held back by the dropped listener
