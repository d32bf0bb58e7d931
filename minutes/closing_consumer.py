"""The bus consumer that closes a case's minutes on ``case.closed`` (:func:`minutes.approval.note_case_closed`).

Idempotent twice over: :func:`signaling.consumers.idempotent` records ``event.key`` with the effects in one
transaction, and a case already written is never written again (:func:`minutes.closing.close_case`). A
``case.closed`` of a case without a draft (never called in that session) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.workdays import WorkCalendar
from evidence import Keyring
from signaling.bus import Bus, Handler
from signaling.consumers import idempotent
from signaling.errors import BusError
from signaling.events import AnyEvent, CaseClosed

from .approval import note_case_closed

__all__ = ["CLOSING_GROUP", "CLOSING_CONSUMER", "closing_handler", "watch_closing"]

log = logging.getLogger("minutes.closing")

CLOSING_GROUP = "minutes-closing"
CLOSING_CONSUMER = "minutes.closing"


def _now() -> datetime:
    return datetime.now(UTC)


def closing_handler(engine: AsyncEngine, keyring: Keyring, calendar: WorkCalendar, *,
                    clock: Callable[[], datetime] = _now, consumer: str = CLOSING_CONSUMER) -> Handler:
    """The bus handler: each ``case.closed`` is noted once and closes its approved minutes."""

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        assert isinstance(event, CaseClosed)
        record = await note_case_closed(conn, session_id=event.session, case_id=event.case, by=event.by or "",
                                        keyring=keyring, calendar=calendar, now=clock())
        log.info("case.closed noted", extra={"ctx": {"session": event.session, "case": event.case,
                                                     "call_seq": event.call_seq, "event": event.event_id,
                                                     "recorded": record is not None}})

    once = idempotent(engine, consumer, apply)

    async def handle(event: AnyEvent) -> None:
        if isinstance(event, CaseClosed):
            await once(event)

    return handle


async def watch_closing(bus: Bus, handler: Handler, *, consumer: str) -> None:
    """Consume :data:`CLOSING_GROUP` as ``consumer`` until the bus closes; anything else that ends it is a
    crash for the supervisor (what was held is delivered again)."""
    try:
        await bus.consume(CLOSING_GROUP, consumer, handler)
    except BusError:
        if bus.closed:
            return
        raise
