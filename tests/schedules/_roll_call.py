"""The roll call a test session needs before its first call (not a test module): every venue present,
through :func:`schedules.record_roll_call` as the chair's page does."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from schedules import Official, RollCall, VenueAttendance, get_session, record_roll_call
from signaling.grants import ROLE_GRANTS, Grant, Role

__all__ = ["record_all_present"]

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
