"""Leader locks: one holder at a time, takeover after expiry, a holder that lost its lock stops at once;
in process (a fake monotonic clock) and on a real Redis (compare-and-set renewal and release)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from signaling.leader import VALIDITY, MemoryLeaderLock, MemoryLocks, RedisLeaderLock


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
async def test_in_process_lock_has_one_holder_and_is_taken_over_after_expiry() -> None:
    clock = FakeMonotonic()
    table = MemoryLocks(clock=clock)
    first, second = MemoryLeaderLock(table, "timekeeper", ttl_s=30), MemoryLeaderLock(table, "timekeeper", ttl_s=30)
    assert await first.acquire() and first.held
    assert not await second.acquire() and not second.held
    clock.now += 10
    assert await first.acquire()  # renewed
    clock.now += 35  # first stalled: no renewal for longer than the TTL
    assert not first.held  # it stopped trusting the lock before the store let it go
    assert await second.acquire() and second.held  # takeover
    assert not await first.acquire() and not first.held  # the renewal finds another token
    await first.release()  # not the holder: nothing happens
    assert table.holder("timekeeper") == second.token


@pytest.mark.unit
async def test_holder_trusts_its_lock_for_two_thirds_of_the_ttl_only() -> None:
    clock = FakeMonotonic()
    lock = MemoryLeaderLock(MemoryLocks(clock=clock), "timekeeper", ttl_s=30)
    assert await lock.acquire()
    clock.now += 30 * VALIDITY - 0.01
    assert lock.held
    clock.now += 0.02
    assert not lock.held


@pytest.mark.unit
async def test_closed_lock_is_released_and_never_held_again() -> None:
    clock = FakeMonotonic()
    table = MemoryLocks(clock=clock)
    first, second = MemoryLeaderLock(table, "timekeeper", ttl_s=30), MemoryLeaderLock(table, "timekeeper", ttl_s=30)
    assert await first.acquire()
    await first.close()
    await first.close()  # idempotent
    assert first.closed and not first.held and not await first.acquire()
    assert await second.acquire()  # released at once, not after the TTL


@pytest.mark.unit
def test_lock_refuses_bad_name_and_ttl() -> None:
    table = MemoryLocks()
    with pytest.raises(ValueError, match="name"):
        MemoryLeaderLock(table, "", ttl_s=30)
    with pytest.raises(ValueError, match="ttl_s"):
        MemoryLeaderLock(table, "timekeeper", ttl_s=0)


@pytest.fixture
async def redis(redis_base_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_base_url)
    yield client
    await client.aclose()


@pytest.mark.integration
async def test_redis_lock_has_one_holder_renews_and_is_taken_over_after_expiry(redis: Redis,
                                                                               redis_prefix: str) -> None:
    key = f"{redis_prefix}leader:timekeeper"
    first, second = RedisLeaderLock(redis, key, ttl_s=30), RedisLeaderLock(redis, key, ttl_s=30)
    assert await first.acquire() and first.held
    assert not await second.acquire() and not second.held
    assert await redis.get(key) == first.token.encode()
    await redis.pexpire(key, 5_000)
    assert await first.acquire()  # renewal by compare-and-set restores the TTL
    assert await redis.pttl(key) > 25_000
    await redis.pexpire(key, 1)  # first stalls past its TTL: the key expires in Redis
    while await redis.exists(key):
        pass
    assert await second.acquire() and second.held  # takeover
    assert not await first.acquire() and not first.held  # first's renewal finds second's token: lost
    await first.release()
    await first.close()
    assert await redis.get(key) == second.token.encode()  # first's release did not delete second's lock
    await second.close()
    assert not await redis.exists(key)  # second's release did


@pytest.mark.integration
async def test_redis_lock_that_cannot_reach_redis_is_not_held_and_does_not_raise(redis_prefix: str) -> None:
    # nothing listens on port 1; no retries
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    lock = RedisLeaderLock(unreachable, f"{redis_prefix}leader:timekeeper", ttl_s=30)
    assert not await lock.acquire() and not lock.held
    await lock.close()
    await unreachable.aclose()
