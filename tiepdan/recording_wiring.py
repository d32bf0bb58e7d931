"""Wiring of the case store's recordings (:mod:`complaints.recordings`) into the app: for the roles where
the case store runs (``all``, ``control``), a supervised loop (``complaints-recordings``) consumes the bus
group ``complaints-recordings`` — the room server's ``room.segment_opened`` / ``room.segment_closed``, from
this process (embedded) or from a media process through Redis — and keeps each segment once in
``recording_segments``, linked to its case. Control processes share the group, so one of them handles each
event. The consumer is named after this process (host and pid).
"""

from __future__ import annotations

import os
import socket
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from complaints.recordings import RECORDINGS_GROUP, recordings_handler, watch_recordings

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_recordings"]


async def wire_recordings(services: Services, stack: AsyncExitStack, *, consumer: str | None = None) -> bool:
    """Start the consumer under the process's supervisor when the role runs the case store (stopped by
    ``stack``); False for the other roles."""
    if services.settings.process_role not in ("all", "control"):
        return False
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = services.bus
    await bus.create_group(RECORDINGS_GROUP)  # before the room server publishes: nothing is missed
    handler = recordings_handler(services.engine)
    supervisor = services.supervisor
    loop = supervisor.run("complaints-recordings", lambda: watch_recordings(bus, handler, consumer=name))

    async def stop() -> None:
        await supervisor.stop(loop)

    stack.push_async_callback(stop)
    return True
