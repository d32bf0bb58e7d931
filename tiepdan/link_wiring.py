"""Wiring of the scheduler's link watch (:mod:`schedules.link_watch`) into the app: for the roles where the
scheduler runs (``all``, ``control``), a supervised loop (``schedules-link-watch``) consumes the bus group
``schedules-link-watch`` — the room server's ``room.venue_link_lost`` / ``room.venue_link_restored``, from this
process (embedded) or from a media process through Redis — and applies each link event once: the case of a
venue lost pauses, a venue lost is held out of the call order until it is back. Control processes share the
group, so one of them handles each event. The consumer is named after this process (host and pid).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schedules.link_watch import LINK_WATCH_GROUP, link_watch_handler, watch_venue_links

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_link_watch"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def wire_link_watch(services: Services, stack: AsyncExitStack, *, clock: Callable[[], datetime] = _utc_now,
                          consumer: str | None = None) -> bool:
    """Start the link watch under the process's supervisor when the role runs the scheduler (stopped by
    ``stack``); False for the other roles."""
    if services.settings.process_role not in ("all", "control"):
        return False
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = services.bus
    await bus.create_group(LINK_WATCH_GROUP)  # before the room server publishes: nothing is missed
    notify: Callable[[], None] = services.outbox.notify
    handler = link_watch_handler(services.engine, clock=clock, notify=notify)
    supervisor = services.supervisor
    loop = supervisor.run("schedules-link-watch", lambda: watch_venue_links(bus, handler, consumer=name))

    async def stop() -> None:
        await supervisor.stop(loop)

    stack.push_async_callback(stop)
    return True
