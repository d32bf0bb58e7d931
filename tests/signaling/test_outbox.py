"""The outbox (signaling/outbox.py) on SQLite and PostgreSQL, relaying into real buses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from signaling.errors import BusError, OutboxError
from signaling.events import AnyEvent, CaseRecorded, Event, HandRaised
from signaling.memory_bus import MemoryBus
from signaling.outbox import OutboxRelay, add_to_outbox, outbox
from signaling.supervisor import Supervisor

from ._bus_helpers import FAST, Collector, hands, ids, make_schema

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await make_schema(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(FAST)
    yield bus
    await bus.close()


async def write(engine: AsyncEngine, *events: Event) -> None:
    async with engine.begin() as conn:
        for event in events:
            await add_to_outbox(conn, event)


async def published(bus: MemoryBus, count: int) -> list[AnyEvent]:
    got = Collector()
    await bus.create_group("probe")
    task = asyncio.create_task(bus.consume("probe", "c", got))
    try:
        return await got.wait_for(count, timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def unrelayed(engine: AsyncEngine) -> int:
    return await OutboxRelay(engine, MemoryBus()).pending()


async def test_committed_event_is_relayed_once_and_marked(engine: AsyncEngine, bus: MemoryBus) -> None:
    event = CaseRecorded(case="c1", session="s1")
    await write(engine, event)
    relay = OutboxRelay(engine, bus)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert ids(await published(bus, 1)) == [event.event_id]
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    assert row.relayed_at is not None and row.error is None
    assert (row.event_id, row.aggregate, row.type) == (event.event_id, "case:c1", "case.recorded")


async def test_rolled_back_transaction_leaves_nothing_to_relay(engine: AsyncEngine, bus: MemoryBus) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await add_to_outbox(conn, CaseRecorded(case="c1", session="s1"))
            raise RuntimeError("the change failed")
    assert await OutboxRelay(engine, bus).relay_once() == 0


async def test_event_added_through_a_session_commits_with_the_session(engine: AsyncEngine, bus: MemoryBus) -> None:
    event = CaseRecorded(case="c2", session="s1")
    async with AsyncSession(engine) as session:
        await add_to_outbox(session, event)
        assert await unrelayed(engine) == 0  # not committed yet
        await session.commit()
    assert await OutboxRelay(engine, bus).relay_once() == 1


async def test_relay_publishes_in_id_order_across_batches(engine: AsyncEngine, bus: MemoryBus) -> None:
    events: list[HandRaised] = []
    for a, b in zip(hands("r1", 5), hands("r2", 5), strict=True):
        events += [a, b]
    for event in events:
        await write(engine, event)
    relay = OutboxRelay(engine, bus, batch=3)
    assert [await relay.relay_once() for _ in range(5)] == [3, 3, 3, 1, 0]
    assert ids(await published(bus, 10)) == ids(events)


async def test_same_event_twice_raises_outbox_error(engine: AsyncEngine) -> None:
    event = CaseRecorded(case="c1", session="s1")
    await write(engine, event)
    with pytest.raises(OutboxError):
        await write(engine, event)
    assert await unrelayed(engine) == 1


class FailingBus(MemoryBus):
    """A real memory bus that refuses to publish one chosen event (the network went away)."""

    def __init__(self, refuse: str) -> None:
        super().__init__(FAST)
        self.refuse: str | None = refuse

    async def publish(self, event: AnyEvent) -> None:
        if event.event_id == self.refuse:
            raise BusError("Redis does not answer")
        await super().publish(event)


async def test_publish_failure_stops_the_batch_and_the_rest_follows_in_order(engine: AsyncEngine) -> None:
    events = hands("r1", 3)
    await write(engine, *events)
    bus = FailingBus(refuse=events[1].event_id)
    relay = OutboxRelay(engine, bus)
    with pytest.raises(BusError):
        await relay.relay_once()
    assert await relay.pending() == 2
    bus.refuse = None
    assert await relay.relay_once() == 2
    assert ids(await published(bus, 3)) == ids(events)
    await bus.close()


async def test_row_that_does_not_parse_is_marked_and_skipped(engine: AsyncEngine, bus: MemoryBus) -> None:
    before, after = hands("r1", 2)
    await write(engine, before)
    async with engine.begin() as conn:
        await conn.execute(insert(outbox).values(event_id="bad1", aggregate="room:r1", type="room.future_kind",
                                                 payload='{"type": "room.future_kind"}',
                                                 created_at=datetime.now(UTC)))
    await write(engine, after)
    assert await OutboxRelay(engine, bus).relay_once() == 2
    assert ids(await published(bus, 2)) == [before.event_id, after.event_id]
    async with engine.connect() as conn:
        error = await conn.scalar(select(outbox.c.error).where(outbox.c.event_id == "bad1"))
    assert error == "malformed"


async def test_running_relay_delivers_right_after_notify(engine: AsyncEngine, bus: MemoryBus) -> None:
    relay = OutboxRelay(engine, bus, poll_s=30.0)
    await relay.start()
    await asyncio.sleep(0.05)  # the loop is waiting
    event = CaseRecorded(case="c1", session="s1")
    await write(engine, event)
    relay.notify()
    async with asyncio.timeout(2):
        assert ids(await published(bus, 1)) == [event.event_id]
    await relay.close()


async def test_relay_polls_without_notify(engine: AsyncEngine, bus: MemoryBus) -> None:
    relay = OutboxRelay(engine, bus, poll_s=0.05)
    await relay.start()
    event = CaseRecorded(case="c1", session="s1")
    await write(engine, event)
    assert ids(await published(bus, 1)) == [event.event_id]
    await relay.close()


async def test_start_replays_recent_rows_into_a_fresh_memory_bus(engine: AsyncEngine) -> None:
    old, recent = CaseRecorded(case="c0", session="s1"), CaseRecorded(case="c1", session="s1")
    await write(engine, old, recent)
    first = MemoryBus()
    assert await OutboxRelay(engine, first).relay_once() == 2
    await first.close()
    async with engine.begin() as conn:  # ``old`` was relayed two hours ago
        await conn.execute(update(outbox).where(outbox.c.event_id == old.event_id)
                           .values(relayed_at=datetime.now(UTC) - timedelta(hours=2)))
    restarted = MemoryBus(FAST)
    relay = OutboxRelay(engine, restarted, replay_window_s=3600)
    await relay.start()
    assert ids(await published(restarted, 1)) == [recent.event_id]
    await relay.close()
    await restarted.close()


async def test_close_is_idempotent_and_relay_after_close_raises(engine: AsyncEngine, bus: MemoryBus) -> None:
    relay = OutboxRelay(engine, bus)
    await relay.start()
    await relay.close()
    await relay.close()
    assert relay.closed
    with pytest.raises(OutboxError):
        await relay.relay_once()
    with pytest.raises(OutboxError):
        await relay.start()


async def test_prune_deletes_only_rows_relayed_before_the_cutoff(engine: AsyncEngine, bus: MemoryBus) -> None:
    await write(engine, CaseRecorded(case="c1", session="s1"))
    relay = OutboxRelay(engine, bus)
    await relay.relay_once()
    await write(engine, CaseRecorded(case="c2", session="s1"))
    assert await relay.prune(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await relay.pending() == 1


# -- PostgreSQL: concurrent writers and relays ----------------------------------------------------------


@pytest.fixture
async def pg_engine(pg_url: str, database_url: str) -> AsyncIterator[AsyncEngine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = await make_schema(database_url)
    yield engine
    await engine.dispose()


async def test_second_writer_of_an_aggregate_waits_so_commit_order_is_id_order(
        pg_engine: AsyncEngine, bus: MemoryBus) -> None:
    first, second = hands("r1", 2)
    relay = OutboxRelay(pg_engine, bus)
    async with pg_engine.connect() as slow:
        await add_to_outbox(slow, first)  # open transaction, not committed

        async def fast_writer() -> None:
            await write(pg_engine, second)

        writer = asyncio.create_task(fast_writer())
        await asyncio.sleep(0.3)
        assert not writer.done()  # waits on the aggregate lock
        assert await relay.relay_once() == 0
        await slow.commit()
        await asyncio.wait_for(writer, 5)
    assert await relay.relay_once() == 2
    assert ids(await published(bus, 2)) == ids([first, second])


async def test_writers_of_different_aggregates_do_not_wait_for_each_other(pg_engine: AsyncEngine) -> None:
    async with pg_engine.connect() as slow:
        await add_to_outbox(slow, hands("r1", 1)[0])
        await asyncio.wait_for(write(pg_engine, hands("r2", 1)[0]), 2)
        await slow.rollback()


async def test_only_one_relay_works_at_a_time(pg_engine: AsyncEngine, bus: MemoryBus) -> None:
    await write(pg_engine, CaseRecorded(case="c1", session="s1"))
    async with pg_engine.connect() as other_relay:
        assert await other_relay.scalar(text("SELECT pg_try_advisory_xact_lock(1952710658, 1)"))
        assert await OutboxRelay(pg_engine, bus).relay_once() == 0
        await other_relay.rollback()
    assert await OutboxRelay(pg_engine, bus).relay_once() == 1


async def test_running_relay_survives_a_bus_outage_and_relays_afterwards(engine: AsyncEngine) -> None:
    event = CaseRecorded(case="c1", session="s1")
    bus = FailingBus(refuse=event.event_id)
    relay = OutboxRelay(engine, bus, poll_s=0.02)
    await relay.start()
    await write(engine, event)
    relay.notify()
    await asyncio.sleep(0.2)  # a few failed attempts
    assert await relay.pending() == 1
    bus.refuse = None
    assert ids(await published(bus, 1)) == [event.event_id]
    await relay.close()
    await bus.close()


class BrokenOnceBus(MemoryBus):
    """A real memory bus whose first publish fails with an error the relay does not expect (a bug,
    not an outage: the relay's own retry covers only ``BusError`` and ``OutboxError``)."""

    def __init__(self) -> None:
        super().__init__(FAST)
        self.failures = 1

    async def publish(self, event: AnyEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("unexpected")
        await super().publish(event)


async def test_relay_loop_that_crashes_is_restarted_by_the_supervisor_and_relays(engine: AsyncEngine) -> None:
    async def no_pause(_: float) -> None:
        await asyncio.sleep(0)

    bus = BrokenOnceBus()
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry, sleep=no_pause)
    relay = OutboxRelay(engine, bus, poll_s=0.02, supervisor=supervisor)
    await relay.start()
    event = CaseRecorded(case="c1", session="s1")
    await write(engine, event)
    relay.notify()
    assert ids(await published(bus, 1)) == [event.event_id]  # published after the restart, not lost
    assert registry.get_sample_value("tiepdan_task_crashes_total", {"task": "outbox-relay"}) == 1.0
    assert registry.get_sample_value("tiepdan_task_restarts_total", {"task": "outbox-relay"}) == 1.0
    await relay.close()
    assert supervisor.statuses() == []  # the relay stopped its loop; the process's supervisor stays open
    await supervisor.close()
    await bus.close()
