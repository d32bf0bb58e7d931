"""Opening and closing a live session in the database, as ``tiepdan session open|close`` does (not a test
module): the scheduler writes the session and its ``session.*`` events (outbox); the relay brings them to the
room server. The console lists what the database says."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import ReceptionForm, ReceptionType
from complaints.workdays import default_calendar
from schedules import (
    UnknownSession,
    VenueChoice,
    VenueDraft,
    VenueLevel,
    close_session,
    ensure_venues,
    get_session,
    local_day,
    plan_session,
    publish_session,
    start_session,
)
from schedules import sessions as scheduler
from schedules.session_hours import hours_from
from signaling.grants import Grant

__all__ = ["open_live_session", "close_live_session"]

_ACTOR = "service:test"
_GRANTS = frozenset({Grant.MANAGE, Grant.CALL_QUEUE})


def _now() -> datetime:
    return datetime.now(UTC)


async def open_live_session(engine: AsyncEngine, room: str, venues: Sequence[tuple[str, str]], *,
                            start: bool = True) -> None:
    """Plan, publish, open (and with ``start`` start) the ad hoc online session ``room`` today, from now to the
    end of the day (as the command line does, so the timekeeper leaves it open), with ``venues`` (id, name),
    the first being the main venue. A session the scheduler holds already is left as it is."""
    hours = hours_from(_now())
    async with engine.begin() as conn:
        try:
            await get_session(conn, room)
            return
        except UnknownSession:
            pass
        await ensure_venues(conn, [VenueDraft(v, n, VenueLevel.MAIN if i == 0 else VenueLevel.COMMUNE)
                                   for i, (v, n) in enumerate(venues)], actor=_ACTOR, grants=_GRANTS, clock=_now)
        await plan_session(conn, session_id=room, day=local_day(_now()), form=ReceptionForm.ONLINE,
                           kind=ReceptionType.AD_HOC, venues_chosen=[VenueChoice(v) for v, _ in venues],
                           main=venues[0][0], opens_at=hours.opens_at, closes_at=hours.closes_at, actor=_ACTOR,
                           grants=_GRANTS, clock=_now)
        await publish_session(conn, room, calendar=default_calendar(), override_reason="Phiên thử nghiệm mở ngay",
                              actor=_ACTOR, grants=_GRANTS, clock=_now)
        await scheduler.open_session(conn, room, actor=_ACTOR, grants=_GRANTS, clock=_now)
        if start:
            await start_session(conn, room, actor=_ACTOR, grants=_GRANTS, clock=_now)


async def close_live_session(engine: AsyncEngine, room: str) -> None:
    async with engine.begin() as conn:
        await close_session(conn, room, actor=_ACTOR, grants=_GRANTS, clock=_now)
