"""The bus consumer that opens the minutes' draft of each called case (``case.called`` → :func:`open_draft`).

Idempotent twice over: :func:`signaling.consumers.idempotent` records ``event.key`` with the draft in one
transaction, and :func:`open_draft` returns the draft already open for (session, case) — a recall or a
replayed event opens nothing new. An event naming a case the complaint database does not hold, or a session
the scheduler does not hold (``lookup``), is logged (ids only) and dropped: delivering it again would not help.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.errors import NotFound
from complaints.workdays import WorkCalendar
from signaling.bus import Bus, Handler
from signaling.consumers import idempotent
from signaling.errors import BusError
from signaling.events import AnyEvent, CaseCalled

from .drafts import SessionLookup, open_draft

__all__ = ["DRAFTS_GROUP", "DRAFTS_CONSUMER", "drafts_handler", "watch_drafts"]

log = logging.getLogger("minutes.drafts")

DRAFTS_GROUP = "minutes-drafts"
DRAFTS_CONSUMER = "minutes.drafts.open"


def _now() -> datetime:
    return datetime.now(UTC)


def drafts_handler(engine: AsyncEngine, calendar: WorkCalendar, lookup: SessionLookup, *,
                   clock: Callable[[], datetime] = _now, consumer: str = DRAFTS_CONSUMER) -> Handler:
    """The bus handler: each ``case.called`` opens its draft once, recording what ``lookup`` says of the
    session; other events are passed over."""

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        assert isinstance(event, CaseCalled)
        ctx = {"session": event.session, "case": event.case, "call_seq": event.call_seq, "event": event.event_id}
        reception = await lookup(conn, event.session)
        if reception is None:
            log.warning("minutes draft not opened: unknown session",
                        extra={"ctx": {**ctx, "code": "unknown_session"}})
            return
        try:
            draft, opened = await open_draft(conn, session_id=event.session, case_id=event.case,
                                             call_seq=event.call_seq, venue=event.venue, reception=reception,
                                             calendar=calendar, now=clock())
        except NotFound:
            log.warning("minutes draft not opened: unknown case", extra={"ctx": {**ctx, "code": "unknown_case"}})
            return
        log.info("minutes draft %s", "opened" if opened else "already open",
                 extra={"ctx": {**ctx, "draft": draft.id}})

    once = idempotent(engine, consumer, apply)

    async def handle(event: AnyEvent) -> None:
        if isinstance(event, CaseCalled):
            await once(event)

    return handle


async def watch_drafts(bus: Bus, handler: Handler, *, consumer: str) -> None:
    """Consume :data:`DRAFTS_GROUP` as ``consumer`` until the bus closes; anything else that ends it is a
    crash for the supervisor (what was held is delivered again)."""
    try:
        await bus.consume(DRAFTS_GROUP, consumer, handler)
    except BusError:
        if bus.closed:
            return
        raise
