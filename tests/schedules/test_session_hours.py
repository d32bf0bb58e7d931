"""The hours of a session in the database (SQLite and PostgreSQL): planned with the defaults or given,
read back as written, kept or changed by a reschedule, refused with a typed error that writes nothing."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import ReceptionForm, ReceptionType
from schedules import (
    SessionReason,
    UnknownSession,
    VenueChoice,
    get_session,
    plan_session,
    postpone_session,
    reschedule_session,
)
from schedules.errors import InvalidSessionHours
from schedules.tables import reception_sessions

from .conftest import ACTOR, ADMIN, VENUES, FakeClock, add_venues, plan

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 10)


async def test_hours_are_stored_as_given_or_the_default_morning_sitting(engine: AsyncEngine,
                                                                        clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        default = await plan(conn, clock, "phien-sang", DAY)
        afternoon = await plan_session(conn, session_id="phien-chieu", day=DAY, form=ReceptionForm.IN_PERSON,
                                       kind=ReceptionType.PERIODIC, venues_chosen=[VenueChoice(VENUES[0].id)],
                                       opens_at=time(13, 30), closes_at=time(16, 45), actor=ACTOR, grants=ADMIN,
                                       clock=clock)
    assert (default.opens_at, default.closes_at) == (time(7, 30), time(11, 30))
    assert (afternoon.opens_at, afternoon.closes_at) == (time(13, 30), time(16, 45))
    async with engine.connect() as conn:
        again = await get_session(conn, "phien-chieu")
    assert (again.opens_at, again.closes_at) == (time(13, 30), time(16, 45))
    assert again.hours.closing(DAY).isoformat() == "2026-12-10T16:45:00+07:00"


async def test_hours_closing_before_opening_are_refused_and_nothing_is_written(engine: AsyncEngine,
                                                                              clock: FakeClock) -> None:
    await add_venues(engine, clock)
    with pytest.raises(InvalidSessionHours) as caught:
        async with engine.begin() as conn:
            await plan_session(conn, session_id="phien-sai-gio", day=DAY, form=ReceptionForm.ONLINE,
                               kind=ReceptionType.AD_HOC, venues_chosen=[VenueChoice(VENUES[0].id)],
                               opens_at=time(11, 0), closes_at=time(9, 0), actor=ACTOR, grants=ADMIN, clock=clock)
    assert caught.value.code == "closes_before_opens" and "phải sau giờ mở phiên" in caught.value.message_vi
    async with engine.connect() as conn:
        with pytest.raises(UnknownSession):
            await get_session(conn, "phien-sai-gio")


async def test_a_reschedule_keeps_the_hours_unless_new_ones_are_given(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, "phien-hoan", DAY)
        await postpone_session(conn, "phien-hoan", reason=SessionReason.CHAIR_UNAVAILABLE, actor=ACTOR, grants=ADMIN,
                               clock=clock)
        kept = await reschedule_session(conn, "phien-hoan", day=date(2026, 12, 17), actor=ACTOR, grants=ADMIN,
                                        clock=clock)
        assert (kept.day, kept.opens_at, kept.closes_at) == (date(2026, 12, 17), time(7, 30), time(11, 30))
        await postpone_session(conn, "phien-hoan", reason=SessionReason.SECURITY, actor=ACTOR, grants=ADMIN,
                               clock=clock)
    with pytest.raises(InvalidSessionHours):
        async with engine.begin() as conn:
            await reschedule_session(conn, "phien-hoan", day=date(2026, 12, 18), closes_at=time(7, 0), actor=ACTOR,
                                     grants=ADMIN, clock=clock)
    async with engine.begin() as conn:
        moved = await reschedule_session(conn, "phien-hoan", day=date(2026, 12, 18), opens_at=time(14, 0),
                                         closes_at=time(17, 0), actor=ACTOR, grants=ADMIN, clock=clock)
    assert (moved.day, moved.opens_at, moved.closes_at) == (date(2026, 12, 18), time(14, 0), time(17, 0))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_itself_refuses_a_session_closing_before_it_opens(engine: AsyncEngine,
                                                                          clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, "phien-sang", DAY)
    with pytest.raises(IntegrityError, match="ck_reception_sessions_hours"):
        async with engine.begin() as conn:
            await conn.execute(update(reception_sessions).values(opens_at=time(12, 0)))
