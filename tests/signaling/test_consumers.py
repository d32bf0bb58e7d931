"""Idempotent consumers (signaling/consumers.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.consumers import claim_event, idempotent, processed_events, prune_processed
from signaling.events import AnyEvent, CaseRecorded
from signaling.memory_bus import MemoryBus

from ._bus_helpers import FAST, make_schema

pytestmark = pytest.mark.integration

effects_md = MetaData()
effects = Table("effects", effects_md, Column("id", Integer, primary_key=True, autoincrement=True),
                Column("event_key", String(300), nullable=False))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await make_schema(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(effects_md.create_all)
    yield engine
    await engine.dispose()


async def record_effect(conn: AsyncConnection, event: AnyEvent) -> None:
    await conn.execute(insert(effects).values(event_key=event.key))


async def effect_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(effects)) or 0)


async def test_duplicate_deliveries_apply_the_effects_once(engine: AsyncEngine) -> None:
    handle = idempotent(engine, "complaints.export", record_effect)
    event = CaseRecorded(case="c1", session="s1")
    for _ in range(3):
        await handle(event)
    assert await effect_count(engine) == 1


async def test_failed_handler_records_nothing_so_the_redelivery_applies(engine: AsyncEngine) -> None:
    calls = 0

    async def flaky(conn: AsyncConnection, event: AnyEvent) -> None:
        nonlocal calls
        calls += 1
        await record_effect(conn, event)
        if calls == 1:
            raise RuntimeError("the mail server is down")

    handle = idempotent(engine, "notices", flaky)
    event = CaseRecorded(case="c1", session="s1")
    with pytest.raises(RuntimeError):
        await handle(event)
    assert await effect_count(engine) == 0
    await handle(event)
    await handle(event)
    assert calls == 2 and await effect_count(engine) == 1


async def test_each_consumer_name_processes_the_event_once(engine: AsyncEngine) -> None:
    event = CaseRecorded(case="c1", session="s1")
    for name in ("minutes", "complaints", "minutes"):
        await idempotent(engine, name, record_effect)(event)
    async with engine.connect() as conn:
        names = (await conn.execute(select(processed_events.c.consumer).order_by("consumer"))).scalars().all()
    assert names == ["complaints", "minutes"]
    assert await effect_count(engine) == 2


async def test_event_published_twice_on_a_bus_is_applied_once(engine: AsyncEngine) -> None:
    bus = MemoryBus(FAST)
    event = CaseRecorded(case="c1", session="s1")
    done = asyncio.Event()

    async def handler(conn: AsyncConnection, e: AnyEvent) -> None:
        await record_effect(conn, e)

    wrapped = idempotent(engine, "minutes", handler)

    async def counting(e: AnyEvent) -> None:
        await wrapped(e)
        if e.event_id == "end":
            done.set()

    task = asyncio.create_task(bus.consume("minutes", "n1", counting))
    await bus.publish(event)
    await bus.publish(event)
    await bus.publish(CaseRecorded(case="c2", session="s1", event_id="end"))
    await asyncio.wait_for(done.wait(), 5)
    await bus.close()
    await task
    assert await effect_count(engine) == 2


async def test_claim_event_in_a_transaction_of_ones_own(engine: AsyncEngine) -> None:
    event = CaseRecorded(case="c1", session="s1")
    async with engine.begin() as conn:
        assert await claim_event(conn, "x", event)
        assert not await claim_event(conn, "x", event)


async def test_prune_forgets_keys_processed_before_the_cutoff(engine: AsyncEngine) -> None:
    await idempotent(engine, "x", record_effect)(CaseRecorded(case="c1", session="s1"))
    assert await prune_processed(engine, older_than=datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await prune_processed(engine, older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1


def test_consumer_name_must_be_short_and_present() -> None:
    for bad in ("", "x" * 101):
        with pytest.raises(ValueError):
            idempotent(None, bad, record_effect)  # type: ignore[arg-type]
