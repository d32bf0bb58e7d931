"""Wiring of the live minutes (:mod:`minutes.drafts`) into the app: for the roles where the minutes service
runs (``all``, ``control``), a supervised loop (``minutes-drafts``) consumes the bus group ``minutes-drafts``
and opens the draft of each called case, recording what the scheduler says of its session
(:func:`session_reception`); a second (``minutes-timeline``) consumes ``minutes-timeline`` and
keeps each case's timeline (:mod:`minutes.timeline`). Control processes share each group, so one of them
handles each event. The consumer is named after this process (host and pid).
"""

from __future__ import annotations

import os
import socket
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.workdays import default_calendar
from minutes.closing_consumer import CLOSING_GROUP, closing_handler, watch_closing
from minutes.drafts import SessionReception
from minutes.drafts_consumer import DRAFTS_GROUP, drafts_handler, watch_drafts
from minutes.timeline import TIMELINE_GROUP, timeline_handler, watch_timeline
from schedules import UnknownSession, get_session

if TYPE_CHECKING:
    from .app import Services

__all__ = ["session_reception", "wire_minutes"]


async def session_reception(conn: AsyncConnection, session_id: str) -> SessionReception | None:
    """The loại tiếp, hình thức tiếp and host of a session as the scheduler holds them (None: no such session)."""
    try:
        record = await get_session(conn, session_id)
    except UnknownSession:
        return None
    return SessionReception(reception_type=record.session.kind, form=record.session.form, host=record.host)


async def wire_minutes(services: Services, stack: AsyncExitStack, *, consumer: str | None = None) -> bool:
    """Start the consumer under the process's supervisor when the role runs the minutes (stopped by
    ``stack``); False for the other roles."""
    if services.settings.process_role not in ("all", "control"):
        return False
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = services.bus
    await bus.create_group(DRAFTS_GROUP)  # before the scheduler publishes: no call is missed
    await bus.create_group(TIMELINE_GROUP)
    await bus.create_group(CLOSING_GROUP)  # case.closed notes the close and writes the approved minutes
    handler = drafts_handler(services.engine, default_calendar(), session_reception)
    supervisor = services.supervisor
    loop = supervisor.run("minutes-drafts", lambda: watch_drafts(bus, handler, consumer=name))
    timeline = timeline_handler(services.engine)
    timeline_loop = supervisor.run("minutes-timeline", lambda: watch_timeline(bus, timeline, consumer=name))
    closing = closing_handler(services.engine, services.keyring, default_calendar())
    closing_loop = supervisor.run("minutes-closing", lambda: watch_closing(bus, closing, consumer=name))

    async def stop() -> None:
        await supervisor.stop(closing_loop)
        await supervisor.stop(timeline_loop)
        await supervisor.stop(loop)

    stack.push_async_callback(stop)
    return True
