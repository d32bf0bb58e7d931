"""Planning a session (SQLite and PostgreSQL): the cases the chair pre-selected (stored in order,
announced, a stale page refused) give their later tickets the ``chair_selected`` priority; the host and
co-hosts change before the session opens; at most 16 venues on the planning page."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import IssuingTrack, ReceptionForm, ReceptionType
from complaints.errors import UnknownEnumValue
from complaints.tables import cases as cases_table
from schedules import (
    ConcurrentChange,
    IllegalTransition,
    InvalidArgument,
    InvalidSessionHours,
    NotPermitted,
    PriorityGround,
    UnknownCase,
    VenueChoice,
    default_track,
    get_session,
    issue_ticket,
    plan_session,
    publish_session,
)
from schedules import sessions as scheduler
from schedules.planning import (
    MAX_LIVE_VENUES,
    check_live_venues,
    known_leaders,
    select_cases,
    selected_cases,
    set_session_hours,
    set_session_leaders,
)
from signaling.events import SessionCasesSelected

from .conftest import (
    ACTOR,
    ADMIN,
    ALL,
    CALENDAR,
    CHAIR,
    DESK,
    VENUES,
    FakeClock,
    add_venues,
    audit_actions,
    make_cases,
    outbox_events,
    plan,
)

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)


async def _codes(engine: AsyncEngine, ids: list[str]) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(cases_table.c.id, cases_table.c.tracking_code)
                                   .where(cases_table.c.id.in_(ids)))).all()
    return {r[0]: r[1] for r in rows}


async def test_preselected_cases_are_kept_in_order_audited_and_announced(engine: AsyncEngine,
                                                                         clock: FakeClock) -> None:
    await add_venues(engine, clock)
    ids = await make_cases(engine, 3)
    codes = await _codes(engine, ids)
    async with engine.begin() as conn:
        planned = await plan(conn, clock, ROOM, DAY)
        # by tracking code (what the board knows) and by id, in the chair's order
        record = await select_cases(conn, ROOM, cases_chosen=[codes[ids[2]], ids[0]],
                                    expected_version=planned.version, actor=ACTOR, grants=ADMIN, clock=clock)
        chosen = await selected_cases(conn, ROOM)
    assert record.version == planned.version + 1
    assert [c.case_id for c in chosen] == [ids[2], ids[0]]
    assert [c.tracking_code for c in chosen] == [codes[ids[2]], codes[ids[0]]]
    events = [e for e in await outbox_events(engine) if isinstance(e, SessionCasesSelected)]
    assert [(e.cases, e.session_version, e.by) for e in events] == [((ids[2], ids[0]), record.version, ACTOR)]
    assert ("session.cases_selected", "session", ROOM) in await audit_actions(engine)


async def test_ticket_for_a_preselected_case_carries_the_chair_selected_priority(engine: AsyncEngine,
                                                                                 clock: FakeClock) -> None:
    await add_venues(engine, clock)
    chosen, walk_in = await make_cases(engine, 2)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
        await select_cases(conn, ROOM, cases_chosen=[chosen], actor=ACTOR, grants=ADMIN, clock=clock)
        first = await issue_ticket(conn, ROOM, venue="xa-tien-du", case=walk_in, actor=ACTOR, grants=DESK,
                                   clock=clock)
        second = await issue_ticket(conn, ROOM, venue="xa-tien-du", case=chosen,
                                    priorities=[PriorityGround.ELDERLY], actor=ACTOR, grants=DESK, clock=clock)
    assert first.priorities == frozenset()
    assert second.priorities == {PriorityGround.CHAIR_SELECTED, PriorityGround.ELDERLY}
    assert second.event.priorities == ("chair_selected", "elderly")


async def test_a_stale_page_cannot_overwrite_a_newer_selection(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    ids = await make_cases(engine, 2)
    async with engine.begin() as conn:
        planned = await plan(conn, clock, ROOM, DAY)
        await select_cases(conn, ROOM, cases_chosen=[ids[0]], expected_version=planned.version, actor=ACTOR,
                           grants=ADMIN, clock=clock)
    with pytest.raises(ConcurrentChange) as refused:
        async with engine.begin() as conn:
            await select_cases(conn, ROOM, cases_chosen=[ids[1]], expected_version=planned.version, actor=ACTOR,
                               grants=ADMIN, clock=clock)
    assert refused.value.current == planned.version + 1 and "tải lại" in refused.value.message_vi
    async with engine.connect() as conn:
        assert [c.case_id for c in await selected_cases(conn, ROOM)] == [ids[0]]


async def test_bad_selections_are_refused_with_a_reason(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    (case_id,) = await make_cases(engine, 1)
    code = (await _codes(engine, [case_id]))[case_id]
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
    refusals: list[tuple[list[str], frozenset[object], type[Exception], str]] = [
        (["TCD-KHONG-CO"], ADMIN, UnknownCase, "unknown_case"),
        ([case_id, case_id], ADMIN, InvalidArgument, "duplicate_case"),
        ([case_id, code], ADMIN, InvalidArgument, "duplicate_case"),  # the id and the code of one case
        ([f"ma-{i}" for i in range(31)], ADMIN, InvalidArgument, "too_many_cases"),
        ([case_id], CHAIR, NotPermitted, "forbidden"),  # the chair's choice is entered by the board
    ]
    for chosen, grants, error, error_code in refusals:
        with pytest.raises(error) as refused:
            async with engine.begin() as conn:
                await select_cases(conn, ROOM, cases_chosen=chosen, actor=ACTOR, grants=grants,  # type: ignore[arg-type]
                                   clock=clock)
        assert getattr(refused.value, "code", None) == error_code
    async with engine.connect() as conn:
        assert await selected_cases(conn, ROOM) == ()


async def test_selection_is_closed_once_the_session_receives_citizens(engine: AsyncEngine,
                                                                       clock: FakeClock) -> None:
    await add_venues(engine, clock)
    (case_id,) = await make_cases(engine, 1)
    today = date(2026, 12, 1)
    async with engine.begin() as conn:
        await plan(conn, clock, "phien-hom-nay", today)
        await publish_session(conn, "phien-hom-nay", calendar=CALENDAR, override_reason="Phiên đột xuất khẩn cấp",
                              actor=ACTOR, grants=ALL, clock=clock)
        await scheduler.open_session(conn, "phien-hom-nay", actor=ACTOR, grants=ALL, clock=clock)
        await scheduler.start_session(conn, "phien-hom-nay", actor=ACTOR, grants=ALL, clock=clock)
    with pytest.raises(IllegalTransition, match="Đang tiếp công dân"):
        async with engine.begin() as conn:
            await select_cases(conn, "phien-hom-nay", cases_chosen=[case_id], actor=ACTOR, grants=ADMIN, clock=clock)


async def test_host_and_cohosts_change_before_the_session_opens(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        planned = await plan(conn, clock, ROOM, DAY, host="bi-thu-tinh-uy")
        record = await set_session_leaders(conn, ROOM, host="chu-tich-ubnd-tinh", cohosts=["bi-thu-tinh-uy"],
                                           expected_version=planned.version, actor=ACTOR, grants=ADMIN, clock=clock)
        leaders = await known_leaders(conn)
    assert (record.host, record.cohosts, record.version) == ("chu-tich-ubnd-tinh", ("bi-thu-tinh-uy",),
                                                             planned.version + 1)
    assert leaders == ("bi-thu-tinh-uy", "chu-tich-ubnd-tinh")
    with pytest.raises(InvalidArgument, match="Mã người chủ trì"):
        async with engine.begin() as conn:
            await set_session_leaders(conn, ROOM, host="Bí thư", actor=ACTOR, grants=ADMIN, clock=clock)
    with pytest.raises(ConcurrentChange):
        async with engine.begin() as conn:
            await set_session_leaders(conn, ROOM, host=None, expected_version=planned.version, actor=ACTOR,
                                      grants=ADMIN, clock=clock)
    assert ("session.leaders_set", "session", ROOM) in await audit_actions(engine)


async def test_the_track_follows_the_host_unless_the_planner_chooses_it(engine: AsyncEngine,
                                                                        clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        party = await plan(conn, clock, ROOM, DAY, host="bi-thu-tinh-uy")
        nobody = await plan(conn, clock, "phien-chua-co-chu-tri", DAY, host=None)
        state = await plan(conn, clock, "phien-chu-tich", DAY, host="chu-tich-ubnd-tinh")
        chosen = await plan_session(conn, session_id="phien-chon-khoi", day=DAY, form=ReceptionForm.ONLINE,
                                    kind=ReceptionType.AD_HOC, venues_chosen=[VenueChoice(v.id) for v in VENUES],
                                    host="chu-tich-ubnd-tinh", track="party", actor=ACTOR, grants=ADMIN, clock=clock)
        # a new host keeps the track unless one is given; the track can be chosen with the leaders
        kept = await set_session_leaders(conn, ROOM, host="chu-tich-ubnd-tinh", actor=ACTOR, grants=ADMIN,
                                         clock=clock)
        moved = await set_session_leaders(conn, ROOM, host="chu-tich-ubnd-tinh", track=IssuingTrack.STATE,
                                          actor=ACTOR, grants=ADMIN, clock=clock)
    assert [r.track for r in (party, nobody, state, chosen, kept, moved)] == [
        IssuingTrack.PARTY, IssuingTrack.PARTY, IssuingTrack.STATE, IssuingTrack.PARTY, IssuingTrack.PARTY,
        IssuingTrack.STATE]
    assert [default_track(h) for h in ("pho-bi-thu-tinh-uy", "truong-ban-noi-chinh", "giam-doc-so")] == [
        IssuingTrack.PARTY, IssuingTrack.PARTY, IssuingTrack.STATE]
    with pytest.raises(UnknownEnumValue):
        async with engine.begin() as conn:
            await set_session_leaders(conn, ROOM, host=None, track="dang", actor=ACTOR, grants=ADMIN, clock=clock)
    async with engine.connect() as conn:
        assert (await get_session(conn, ROOM)).track is IssuingTrack.STATE  # the refusal changed nothing


async def test_hours_change_until_the_schedule_is_published(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        planned = await plan(conn, clock, ROOM, DAY)
        record = await set_session_hours(conn, ROOM, opens_at=time(13, 30), closes_at=time(17, 0),
                                         expected_version=planned.version, actor=ACTOR, grants=ADMIN, clock=clock)
    assert (record.opens_at, record.closes_at, record.version) == (time(13, 30), time(17, 0), planned.version + 1)
    with pytest.raises(InvalidSessionHours):
        async with engine.begin() as conn:
            await set_session_hours(conn, ROOM, opens_at=time(17, 0), closes_at=time(13, 0), actor=ACTOR,
                                    grants=ADMIN, clock=clock)
    async with engine.begin() as conn:
        await publish_session(conn, ROOM, calendar=CALENDAR, override_reason="Phiên đột xuất khẩn cấp", actor=ACTOR,
                              grants=ALL, clock=clock)
    with pytest.raises(IllegalTransition, match="hoãn rồi xếp lịch lại"):
        async with engine.begin() as conn:
            await set_session_hours(conn, ROOM, opens_at=time(8, 0), closes_at=time(11, 0), actor=ACTOR,
                                    grants=ADMIN, clock=clock)
    assert ("session.hours_set", "session", ROOM) in await audit_actions(engine)


@pytest.mark.unit
def test_planning_page_refuses_more_than_sixteen_venues() -> None:
    check_live_venues([VenueChoice(f"xa-{i}") for i in range(MAX_LIVE_VENUES)])
    with pytest.raises(InvalidArgument) as refused:
        check_live_venues([VenueChoice(f"xa-{i}") for i in range(MAX_LIVE_VENUES + 1)])
    assert refused.value.code == "too_many_venues" and "16" in refused.value.message_vi
