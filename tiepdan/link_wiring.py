"""Wiring of the scheduler's link watch (:mod:`schedules.link_watch`) into the app: for the roles where the
scheduler runs (``all``, ``control``), a supervised loop (``schedules-link-watch``) consumes the bus group
``schedules-link-watch`` — the room server's ``room.venue_link_lost`` / ``room.venue_link_restored``, from this
process (embedded) or from a media process through Redis — and applies each link event once: the case of a
venue lost pauses, a venue lost is held out of the call order until it is back. Control processes share the
group, so one of them handles each event. The consumer is named after this process (host and pid).

:func:`wire_link_marks`, for the roles that run the room server (``all``, ``media``), gives its media plane
the venues marked lost: the room store's marks (Redis when configured, so they survive the media process;
in memory otherwise) plus the venues the scheduler holds unavailable in the live sessions (in the embedded
default the memory marks die with the process, the database does not). A venue's first media after a
restart, a re-publish or a new connection is then announced as ``room.venue_link_restored``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI

from schedules.link_watch import LINK_WATCH_GROUP, held_for_link_loss, link_watch_handler, watch_venue_links
from signaling.room import MemoryRoomStore, RedisRoomStore, RoomServer, RoomStore, StoreError

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_link_marks", "wire_link_watch"]

log = logging.getLogger("tiepdan.link_wiring")


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


async def wire_link_marks(app: FastAPI, services: Services, stack: AsyncExitStack) -> bool:
    """Give the room server's media plane (``app.state.room_server``) its marks of venues lost, seeded from
    the scheduler (see the module docstring); closed by ``stack`` after the room server. False when this
    process serves no live media."""
    server: RoomServer | None = getattr(app.state, "room_server", None)
    media = server.media if server is not None else None
    if server is None or media is None:
        return False
    settings = services.settings
    marks: RoomStore = (RedisRoomStore.connect(settings.redis_url, settings.redis_prefix) if settings.redis_url
                        else MemoryRoomStore())

    async def close() -> None:
        await server.close()  # idempotent: the media plane stops using the marks before they close
        await marks.close()

    stack.push_async_callback(close)
    async with services.engine.connect() as conn:
        held = await held_for_link_loss(conn)
    try:
        for room, venues in held.items():
            for venue in sorted(venues):
                await marks.mark_link_lost(room, venue)
    except StoreError:  # the chair's «venue is back» remains for a venue whose first media is not announced
        log.warning("venues held for a lost link not marked", extra={"ctx": {"code": "store_error"}})
    media.link_marks = marks
    if held:
        log.info("venues marked lost at start", extra={"ctx": {"count": sum(len(v) for v in held.values())}})
    return True
