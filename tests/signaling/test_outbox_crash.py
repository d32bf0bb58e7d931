"""A process killed (SIGKILL) between commit and relay, or between publish and the relayed mark:
after a restart every idempotent consumer applies the event exactly once."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.consumers import idempotent, processed_events
from signaling.events import AnyEvent
from signaling.memory_bus import MemoryBus
from signaling.outbox import OutboxRelay
from signaling.redis_bus import RedisBus

from ._bus_helpers import FAST, make_schema

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("outbox_crash_child.py")

effects_md = MetaData()
effects = Table("crash_effects", effects_md, Column("id", Integer, primary_key=True, autoincrement=True),
                Column("event_key", String(300), nullable=False))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await make_schema(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(effects_md.create_all)
    yield engine
    await engine.dispose()


async def run_and_kill(marker: str, *args: str) -> None:
    """Start the child, wait for ``marker`` on its output, SIGKILL it."""
    proc = await asyncio.create_subprocess_exec(sys.executable, str(CHILD), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.decode().strip() != marker:
            stderr = await proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"child said {line!r}, stderr: {stderr.decode()[-2000:]}")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def restart_and_count(engine: AsyncEngine, bus: MemoryBus | RedisBus, deliveries: int) -> tuple[int, int]:
    """A new relay and an idempotent consumer; wait for ``deliveries``; return (effects, processed)."""
    calls = 0
    delivered = asyncio.Event()

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        await conn.execute(insert(effects).values(event_key=event.key))

    wrapped = idempotent(engine, "minutes", apply)

    async def handler(event: AnyEvent) -> None:
        nonlocal calls
        await wrapped(event)
        calls += 1
        if calls >= deliveries:
            delivered.set()

    await bus.create_group("minutes", from_start=True)
    consumer = asyncio.create_task(bus.consume("minutes", "node-2", handler))
    relay = OutboxRelay(engine, bus, poll_s=0.05)
    await relay.start()
    try:
        await asyncio.wait_for(delivered.wait(), 10)
        await asyncio.sleep(0.3)  # a third delivery would show up here
        assert await relay.pending() == 0
    finally:
        await relay.close()
        await bus.close()
        await consumer
    assert calls == deliveries
    async with engine.connect() as conn:
        applied = int(await conn.scalar(select(func.count()).select_from(effects)) or 0)
        processed = int(await conn.scalar(select(func.count()).select_from(processed_events)) or 0)
    return applied, processed


@pytest.mark.parametrize("bus_kind", ["memory", "redis"])
async def test_killed_between_commit_and_relay_the_restart_delivers_once(
        engine: AsyncEngine, database_url: str, bus_kind: str, request: pytest.FixtureRequest) -> None:
    await run_and_kill("committed", database_url, "before_relay", uuid.uuid4().hex)
    bus: MemoryBus | RedisBus
    if bus_kind == "memory":
        bus = MemoryBus(FAST)
    else:
        bus = await RedisBus.connect(request.getfixturevalue("redis_base_url"),
                                     prefix=request.getfixturevalue("redis_prefix"), options=FAST)
    assert await restart_and_count(engine, bus, deliveries=1) == (1, 1)


async def test_killed_between_publish_and_mark_the_event_comes_twice_and_applies_once(
        engine: AsyncEngine, database_url: str, redis_base_url: str, redis_prefix: str) -> None:
    await run_and_kill("published", database_url, "after_publish", uuid.uuid4().hex, redis_base_url, redis_prefix)
    bus = await RedisBus.connect(redis_base_url, prefix=redis_prefix, options=FAST)
    assert await restart_and_count(engine, bus, deliveries=2) == (1, 1)
