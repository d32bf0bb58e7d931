"""The sessions of a calendar rule created in the database (idempotent), on the real dates of the next two
years, and the monthly duty count per leader (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import ReceptionForm, ReceptionType
from schedules import (
    PROVINCIAL_SECRETARY_DUTY,
    AdHocRule,
    InvalidArgument,
    NotPermitted,
    PeriodicRule,
    SessionReason,
    SessionState,
    VenueChoice,
    cancel_session,
    close_session,
    create_periodic_sessions,
    get_session,
    monthly_compliance,
    publish_session,
    sessions_between,
    start_session,
)
from schedules import sessions as service

from .conftest import ACTOR, ADMIN, ALL, CALENDAR, DESK, FakeClock, add_venues, audit_actions, outbox_events, plan

pytestmark = pytest.mark.integration

HOST = "bi-thu-tinh-uy"
QUARTERLY = PeriodicRule.quarterly()
#: Day 10 of the last month of each quarter, moved off weekends (no official notice for 2027–2028 yet:
#: the Labour Code rule decides, and the run says so).
QUARTERLY_2027_2028 = [date(2027, 3, 10), date(2027, 6, 10), date(2027, 9, 10), date(2027, 12, 10),
                       date(2028, 3, 10), date(2028, 6, 12), date(2028, 9, 11), date(2028, 12, 11)]


async def create(engine: AsyncEngine, clock: FakeClock, start: date, end: date, *, rule: PeriodicRule | AdHocRule
                 = QUARTERLY, key: str = "bi-thu-hang-quy", grants: frozenset[object] = ADMIN):  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        return await create_periodic_sessions(
            conn, rule=rule, rule_key=key, start=start, end=end, calendar=CALENDAR, form=ReceptionForm.ONLINE,
            venues_chosen=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")], host=HOST, actor=ACTOR,
            grants=grants, clock=clock)  # type: ignore[arg-type]


async def test_the_secretarys_quarterly_sessions_of_the_next_two_years_are_created_once(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await add_venues(engine, clock)
    first = await create(engine, clock, date(2027, 1, 1), date(2028, 12, 31))
    assert first.created == tuple(f"bi-thu-hang-quy-{d:%Y-%m-%d}" for d in QUARTERLY_2027_2028)
    assert first.existing == () and first.passed == ()
    assert {(w.code, w.year) for w in first.warnings} >= {("no_notice", 2027), ("no_notice", 2028)}
    again = await create(engine, clock, date(2026, 12, 1), date(2028, 12, 31))  # overlapping, wider
    assert again.created == ("bi-thu-hang-quy-2026-12-10",)
    assert again.existing == tuple(QUARTERLY_2027_2028)
    async with engine.connect() as conn:
        listed = await sessions_between(conn, date(2026, 1, 1), date(2029, 12, 31), leader=HOST)
        moved = await get_session(conn, "bi-thu-hang-quy-2028-06-12")
    assert [s.day for s in listed] == [date(2026, 12, 10), *QUARTERLY_2027_2028]
    assert all(s.session.kind is ReceptionType.PERIODIC and s.state is SessionState.PLANNED for s in listed)
    # 10/06/2028 is a Saturday: held on Monday 12/06, the rule's date kept
    assert (moved.nominal_day, moved.rule_key, moved.title) == (date(2028, 6, 10), "bi-thu-hang-quy",
                                                                QUARTERLY.label_vi)
    assert [a for a, _, _ in await audit_actions(engine)].count("session.planned") == 9
    assert await outbox_events(engine) == []  # planning announces nothing; publishing will


async def test_days_already_past_are_skipped_and_ad_hoc_rules_make_ad_hoc_sessions(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await add_venues(engine, clock)
    clock.set_local(date(2027, 6, 15))
    plan_2027 = await create(engine, clock, date(2027, 1, 1), date(2027, 12, 31))
    assert plan_2027.passed == (date(2027, 3, 10), date(2027, 6, 10))
    assert plan_2027.created == ("bi-thu-hang-quy-2027-09-10", "bi-thu-hang-quy-2027-12-10")
    urgent = await create(engine, clock, date(2027, 6, 1), date(2027, 7, 31), key="dot-xuat-dat-dai",
                          rule=AdHocRule((date(2027, 6, 20), date(2027, 7, 2))))
    assert urgent.created == ("dot-xuat-dat-dai-2027-06-20", "dot-xuat-dat-dai-2027-07-02")
    async with engine.connect() as conn:
        sunday = await get_session(conn, "dot-xuat-dat-dai-2027-06-20")
    assert sunday.session.kind is ReceptionType.AD_HOC  # an urgent session keeps the day the leader chose


async def test_a_rule_run_needs_the_manage_grant_and_a_short_slug(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    with pytest.raises(NotPermitted):
        await create(engine, clock, date(2027, 1, 1), date(2027, 12, 31), grants=DESK)
    with pytest.raises(InvalidArgument):
        await create(engine, clock, date(2027, 1, 1), date(2027, 12, 31), key="x" * 54)


async def hold(engine: AsyncEngine, clock: FakeClock, session_id: str, hour: int = 8) -> None:
    """Open, start and close the published ``session_id`` on its day from ``hour``."""
    async with engine.connect() as conn:
        day = (await get_session(conn, session_id)).day
    clock.set_local(day, hour)
    async with engine.begin() as conn:
        await service.open_session(conn, session_id, actor=ACTOR, grants=ALL, clock=clock)
        await start_session(conn, session_id, actor=ACTOR, grants=ALL, clock=clock)
    clock.set_local(day, hour + 2)
    async with engine.begin() as conn:
        await close_session(conn, session_id, actor=ACTOR, grants=ALL, clock=clock)


async def test_the_monthly_duty_counts_reception_days_held_in_person_and_online(engine: AsyncEngine,
                                                                               clock: FakeClock) -> None:
    await add_venues(engine, clock)
    in_person = ReceptionForm.IN_PERSON
    async with engine.begin() as conn:
        await plan(conn, clock, "tiep-2026-12-03", date(2026, 12, 3), form=in_person)
        await plan(conn, clock, "truc-tuyen-2026-12-10", date(2026, 12, 10))
        await plan(conn, clock, "ubnd-2026-12-10", date(2026, 12, 10), form=in_person, host="chu-tich-ubnd-tinh",
                   cohosts=[HOST])
        await plan(conn, clock, "khac-2026-12-17", date(2026, 12, 17), host="bi-thu-xa-tien-du")
        await plan(conn, clock, "tiep-2027-01-14", date(2027, 1, 14), form=in_person)
        await plan(conn, clock, "truc-tuyen-2027-02-25", date(2027, 2, 25))
    ids = ("tiep-2026-12-03", "truc-tuyen-2026-12-10", "ubnd-2026-12-10", "khac-2026-12-17", "tiep-2027-01-14",
           "truc-tuyen-2027-02-25")
    async with engine.begin() as conn:
        for session_id in ids:
            await publish_session(conn, session_id, calendar=CALENDAR, override_reason="Phiên bổ sung theo chỉ đạo",
                                  actor=ACTOR, grants=ADMIN, clock=clock)
    await hold(engine, clock, "tiep-2026-12-03")
    await hold(engine, clock, "truc-tuyen-2026-12-10")
    await hold(engine, clock, "ubnd-2026-12-10", hour=14)
    await hold(engine, clock, "khac-2026-12-17")
    async with engine.begin() as conn:  # January's only session is cancelled: the duty is not met
        await cancel_session(conn, "tiep-2027-01-14", reason=SessionReason.CHAIR_UNAVAILABLE, actor=ACTOR,
                             grants=ADMIN, clock=clock)
    await hold(engine, clock, "truc-tuyen-2027-02-25")
    async with engine.connect() as conn:
        months = await monthly_compliance(conn, leader=HOST, first_month=date(2026, 12, 1),
                                          last_month=date(2027, 3, 1), duty=PROVINCIAL_SECRETARY_DUTY)
        commune = await monthly_compliance(conn, leader="bi-thu-xa-tien-du", first_month=date(2026, 12, 1),
                                           last_month=date(2026, 12, 1), duty=PROVINCIAL_SECRETARY_DUTY)
    assert [(m.year, m.month, m.held_days, m.sessions, m.in_person, m.online, m.met) for m in months] == [
        (2026, 12, 2, 3, 2, 1, True),   # 3 and 10 December: two sessions on the 10th count as one day
        (2027, 1, 0, 0, 0, 0, False),   # cancelled
        (2027, 2, 1, 1, 0, 1, True),
        (2027, 3, 0, 0, 0, 0, False),   # the quarterly session is not planned here
    ]
    assert months[1].message_vi() == ("Tháng 01/2027: 0/1 ngày tiếp công dân (0 phiên trực tiếp, 0 phiên trực "
                                       "tuyến) — chưa đạt.")
    assert [(m.held_days, m.online) for m in commune] == [(1, 1)]
