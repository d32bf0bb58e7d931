"""Helpers shared by the bus and outbox tests: a collecting handler and fast bus options."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.bus import BusOptions
from signaling.events import AnyEvent, HandRaised

FAST = BusOptions(block_s=0.1, claim_idle_s=0.4, retry_backoff_s=0.01, retry_backoff_max_s=0.05,
                  max_attempts=3, batch=5, listen_queue=50)


class Collector:
    """A handler that records what it got and lets a test wait for a count."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.events: list[AnyEvent] = []
        self._delay_s = delay_s
        self._changed = asyncio.Event()

    async def __call__(self, event: AnyEvent) -> None:
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[AnyEvent]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    @property
    def ids(self) -> list[str]:
        return [e.event_id for e in self.events]


def hands(room: str, count: int, start: int = 0) -> list[HandRaised]:
    return [HandRaised(room=room, participant=f"p{i}") for i in range(start, start + count)]


def ids(events: Sequence[AnyEvent]) -> list[str]:
    return [e.event_id for e in events]


async def make_schema(url: str) -> AsyncEngine:
    """An engine on ``url`` with the signaling tables (the project's engine settings)."""
    from signaling.outbox import metadata
    from tiepdan.db import make_engine

    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine
