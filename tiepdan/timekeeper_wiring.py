"""Wiring of the timekeeper (:mod:`schedules.timekeeper`) into the app: for the roles where the scheduler
runs (``all``, ``control``), a supervised loop (``timekeeper``) that opens and closes sessions on time under
a leader lock — in Redis (``<prefix>leader:timekeeper``) when ``TIEPDAN_REDIS_URL`` is set, so that of
several control processes one acts at a time; in the process otherwise. Its clock is the console's
(``app.state.console.clock``: :func:`tiepdan.wiring.wall_clock`, or a test's fake), read at each turn, so
the pages and the timekeeper of one process always see the same time.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI

from room_console import ConsoleContext
from schedules.timekeeper import Timekeeper, TimekeeperMetrics, TimekeeperOptions
from signaling.leader import LeaderLock, MemoryLeaderLock, MemoryLocks

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_timekeeper", "TIMEKEEPER_LOCK"]

#: The lock's name (after the Redis key prefix).
TIMEKEEPER_LOCK = "leader:timekeeper"


async def _lock(services: Services, stack: AsyncExitStack) -> LeaderLock:
    settings = services.settings
    if not settings.redis_url:
        return MemoryLeaderLock(MemoryLocks(), TIMEKEEPER_LOCK, ttl_s=settings.timekeeper_lock_ttl_s)
    from redis.asyncio import Redis

    from signaling.leader import RedisLeaderLock

    client = Redis.from_url(settings.redis_url)
    stack.push_async_callback(client.aclose)  # closed after the timekeeper has released the lock
    return RedisLeaderLock(client, f"{settings.redis_prefix}{TIMEKEEPER_LOCK}", ttl_s=settings.timekeeper_lock_ttl_s)


async def wire_timekeeper(app: FastAPI, services: Services, stack: AsyncExitStack) -> Timekeeper | None:
    """Start the timekeeper under the process's supervisor when the role runs the scheduler (stopped and
    its lock released by ``stack``; ``app.state.timekeeper``); None for the other roles. Runs after
    :func:`tiepdan.wiring.wire_console` (it reads the console's clock)."""
    settings = services.settings
    if settings.process_role not in ("all", "control"):
        return None
    lock = await _lock(services, stack)
    console: ConsoleContext = app.state.console

    def clock() -> datetime:
        return datetime.fromtimestamp(console.clock(), UTC)

    timekeeper = Timekeeper(services.engine, lock, clock=clock,
                            options=TimekeeperOptions(tick_s=settings.timekeeper_tick_s),
                            metrics=TimekeeperMetrics(services.metrics), notify=services.outbox.notify)
    supervisor = services.supervisor
    loop = supervisor.run("timekeeper", timekeeper.run)

    async def stop() -> None:
        await supervisor.stop(loop)
        await timekeeper.close()

    stack.push_async_callback(stop)
    app.state.timekeeper = timekeeper
    return timekeeper
