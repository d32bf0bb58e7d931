"""The roll call a test session needs before its first call (not a test module): every venue present,
through :func:`schedules.record_roll_call` as the chair's page does; and :func:`open_queue`, a session with
its tickets opened for calls."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schedules import (
    Official,
    RollCall,
    VenueAttendance,
    VenueChoice,
    get_session,
    issue_ticket,
    publish_session,
    record_roll_call,
    start_session,
)
from schedules import sessions as service
from signaling.grants import ROLE_GRANTS, Grant, Role

from .conftest import ACTOR, ADMIN, CALENDAR, CHAIR, DESK, FakeClock, add_venues, make_cases, plan

__all__ = ["record_all_present", "open_queue"]

_SECRETARY = frozenset(ROLE_GRANTS[Role.SECRETARY])


async def record_all_present(conn: AsyncConnection, session_id: str, *, clock: Callable[[], datetime],
                             actor: str = "user:thu-ky", grants: Collection[Grant] = _SECRETARY,
                             absent: Collection[str] = ()) -> RollCall:
    """Record a roll call of ``session_id`` with every venue present (but those in ``absent``): the main
    venue with its chair, the others with their commune leader and one citizen."""
    record = await get_session(conn, session_id)
    attendance = [
        VenueAttendance(v.venue, False) if v.venue in absent else VenueAttendance(
            v.venue, True, (Official("Nguyễn Văn An", "Bí thư Tỉnh ủy" if v.main else "Chủ tịch UBND xã"),),
            0 if v.main else 1)
        for v in record.venues]
    return await record_roll_call(conn, session_id, attendance=attendance, actor=actor, grants=grants, clock=clock)


async def open_queue(engine: AsyncEngine, clock: FakeClock, room: str, day: date, venues: Sequence[str], *,
                     start: bool = True, roll_call: bool = True) -> None:
    """Session ``room`` on ``day`` (the main venue, Tiên Du and Quế Võ) published, one ticket per entry of
    ``venues`` (the desk's order, a minute apart), opened at 08:00, its roll call taken (``roll_call``: every
    venue present) and (``start``) started."""
    await add_venues(engine, clock)
    cases = await make_cases(engine, len(venues))
    async with engine.begin() as conn:
        await plan(conn, clock, room, day, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du"),
                                                   VenueChoice("phuong-que-vo")])
        await publish_session(conn, room, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    for case, venue in zip(cases, venues, strict=True):
        clock.advance(minutes=1)
        async with engine.begin() as conn:
            await issue_ticket(conn, room, venue=venue, case=case, actor=ACTOR, grants=DESK, clock=clock)
    clock.set_local(day, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, room, actor="user:chu-tri", grants=CHAIR, clock=clock)
        if roll_call:
            await record_all_present(conn, room, clock=clock)
        if start:
            await start_session(conn, room, actor="user:chu-tri", grants=CHAIR, clock=clock)
    clock.advance(minutes=1)
