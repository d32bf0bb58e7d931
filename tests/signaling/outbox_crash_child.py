"""A process that dies at a chosen point of the outbox path (run by test_outbox_crash.py).

``python outbox_crash_child.py DB_URL MODE EVENT_ID [REDIS_URL PREFIX]`` commits one event to the
outbox, then, by MODE:

* ``before_relay``: prints ``committed`` and waits to be killed (the relay never ran);
* ``after_publish``: relays with a bus that, once the real Redis bus has the event, prints
  ``published`` and waits to be killed (the relayed mark is never written).
"""

from __future__ import annotations

import asyncio
import sys

from signaling.bus import Bus
from signaling.events import AnyEvent, CaseRecorded
from signaling.outbox import OutboxRelay, add_to_outbox
from signaling.redis_bus import RedisBus
from tiepdan.db import make_engine


class _StopAfterPublish:
    """The real bus, and then the process hangs: the crash lands between publish and mark."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.durable = True
        self.closed = False

    async def publish(self, event: AnyEvent) -> None:
        await self._bus.publish(event)
        print("published", flush=True)
        await asyncio.Event().wait()


async def main(db_url: str, mode: str, event_id: str, redis_url: str = "", prefix: str = "") -> None:
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await add_to_outbox(conn, CaseRecorded(case="c1", session="s1", event_id=event_id))
    if mode == "before_relay":
        print("committed", flush=True)
        await asyncio.Event().wait()
    bus = await RedisBus.connect(redis_url, prefix=prefix)
    relay = OutboxRelay(engine, _StopAfterPublish(bus))  # type: ignore[arg-type]
    await relay.relay_once()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
