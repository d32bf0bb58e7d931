"""What only the Redis bus has: its key layout under the prefix and Redis failures as BusError."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from signaling.errors import BusError
from signaling.redis_bus import RedisBus

from ._bus_helpers import FAST, Collector, hands

pytestmark = pytest.mark.integration


async def test_every_key_lives_under_the_prefix(redis_base_url: str, redis_prefix: str) -> None:
    bus = await RedisBus.connect(redis_base_url, prefix=redis_prefix, options=FAST)
    await bus.create_group("g")
    await bus.publish(hands("r1", 1)[0])
    await bus.publish_serialized("broken")
    got = Collector()
    task = asyncio.create_task(bus.consume("g", "c1", got))
    await got.wait_for(1)
    async with asyncio.timeout(5):
        while not await bus.dead_letters():
            await asyncio.sleep(0.02)
    await bus.close()
    await task
    client = Redis.from_url(redis_base_url, decode_responses=True)
    keys = sorted([k async for k in client.scan_iter(match=f"{redis_prefix}*")])
    await client.aclose()
    assert keys == [f"{redis_prefix}bus:dead", f"{redis_prefix}bus:events"]


async def test_unreachable_redis_is_a_bus_error_at_connect_and_publish() -> None:
    with pytest.raises(BusError):
        await RedisBus.connect("redis://127.0.0.1:1/0", prefix="x:")
    bus = RedisBus(Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True), prefix="x:", options=FAST)
    with pytest.raises(BusError):
        await bus.publish(hands("r1", 1)[0])
    with pytest.raises(BusError):
        await bus.create_group("g")
    with pytest.raises(BusError):
        await bus.dead_letters()
    await bus.close()


async def test_consumer_rides_out_a_killed_connection(redis_base_url: str, redis_prefix: str) -> None:
    bus = await RedisBus.connect(redis_base_url, prefix=redis_prefix, options=FAST)
    got = Collector()
    await bus.create_group("g")
    task = asyncio.create_task(bus.consume("g", "c1", got))
    first, second = hands("r1", 2)
    await bus.publish(first)
    await got.wait_for(1)
    admin = Redis.from_url(redis_base_url, decode_responses=True)
    clients = await admin.client_list()
    blocked = [c["id"] for c in clients if c.get("cmd") == "xreadgroup"]
    assert blocked
    for client_id in blocked:
        await admin.client_kill_filter(_id=client_id)
    await admin.aclose()
    await bus.publish(second)
    await got.wait_for(2)
    assert got.ids == [first.event_id, second.event_id]
    await bus.close()
    await task


class _ReaderBreaks(Redis):
    """A real client whose first live read fails with an error the reader does not expect (a bug)."""

    broken = True

    async def xread(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.broken:
            self.broken = False
            raise RuntimeError("unexpected")
        return await super().xread(*args, **kwargs)


async def test_listeners_end_with_bus_error_when_the_reader_fails_and_can_listen_again(
        redis_base_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    bus = RedisBus(_ReaderBreaks.from_url(redis_base_url, decode_responses=True), prefix=redis_prefix, options=FAST)
    with caplog.at_level(logging.ERROR, logger="signaling.bus"):
        async with bus.listen() as listener:
            with pytest.raises(BusError):  # not a silent hang
                async with asyncio.timeout(5):
                    async for _ in listener:
                        pass
    assert any("listener reader failed (RuntimeError)" in r.getMessage() for r in caplog.records)
    event = hands("r1", 1)[0]
    async with bus.listen() as listener:  # a new reader
        await bus.publish(event)
        async with asyncio.timeout(5):
            received = await anext(listener)
    assert received.event_id == event.event_id
    await bus.close()
