"""Reception sessions in the database (SQLite and PostgreSQL): each transition writes the row, its audit
row and its bus event in one transaction; refusals write nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import ReceptionForm, ReceptionType
from schedules import (
    ConcurrentChange,
    IllegalTransition,
    InvalidArgument,
    MissingReason,
    NotPermitted,
    PublishTooLate,
    SessionDatePassed,
    SessionExists,
    SessionNotToday,
    SessionReason,
    SessionState,
    TicketsNotIssued,
    UnknownSession,
    VenueChoice,
    cancel_session,
    close_session,
    get_session,
    issue_ticket,
    postpone_session,
    publish_session,
    reschedule_session,
    set_session_venues,
    start_session,
)
from schedules import sessions as service
from schedules.queue_store import load_queue_state
from schedules.tables import reception_sessions
from signaling.events import (
    SessionCancelled,
    SessionClosed,
    SessionOpened,
    SessionPostponed,
    SessionPublished,
    SessionRescheduled,
    SessionStarted,
    VenueInfo,
)

from .conftest import (
    ACTOR,
    ADMIN,
    ALL,
    CALENDAR,
    CHAIR,
    DESK,
    VENUE_OPERATOR,
    FakeClock,
    add_venues,
    audit_actions,
    make_cases,
    outbox_events,
    plan,
)

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 10)  # Thursday: 7 working days after Tuesday 1 December 2026
ROOM = "phien-2026-12-10"
CHOSEN = [VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du", name="Điểm cầu xã Tiên Du"),
          VenueChoice("phuong-que-vo"), VenueChoice("xa-gia-binh", max_kbps=600)]


async def test_a_session_goes_from_plan_to_close_and_each_step_is_announced_with_who_did_it(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        planned = await plan(conn, clock, ROOM, DAY, venues=CHOSEN, kind=ReceptionType.PERIODIC,
                             cohosts=["chu-tich-ubnd-tinh"])
    assert (planned.state, planned.version, planned.host, planned.cohosts) == (
        SessionState.PLANNED, 1, "bi-thu-tinh-uy", ("chu-tich-ubnd-tinh",))
    assert [v.venue for v in planned.venues if v.main] == ["tru-so-tinh"]
    async with engine.begin() as conn:
        published = await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    assert published.state is SessionState.PUBLISHED and published.published_at == clock.now
    with pytest.raises(SessionNotToday):  # the room opens on the day only
        async with engine.begin() as conn:
            await service.open_session(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)
    clock.set_local(DAY, 7, 30)
    async with engine.begin() as conn:
        opened = await service.open_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    clock.advance(minutes=30)
    async with engine.begin() as conn:
        await start_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    clock.advance(hours=3)
    async with engine.begin() as conn:
        closed = await close_session(conn, ROOM, expected_version=4, actor="user:chu-tri", grants=CHAIR, clock=clock)
    assert (closed.state, closed.version, closed.closed_at) == (SessionState.CLOSED, 5, clock.now)
    assert opened.opened_at is not None and opened.opened_at < closed.closed_at

    events = await outbox_events(engine)
    assert [type(e) for e in events] == [SessionPublished, SessionOpened, SessionStarted, SessionClosed]
    assert [e.key for e in events] == [f"{ROOM}:session.published:2", f"{ROOM}:session.opened:3",
                                       f"{ROOM}:session.started:4", f"{ROOM}:session.closed:5"]
    assert [e.by for e in events] == [ACTOR, "user:chu-tri", "user:chu-tri", "user:chu-tri"]
    assert all((e.day, e.form, e.kind, e.host) == (DAY, "online", "periodic", "bi-thu-tinh-uy") for e in events)
    opened_event = events[1]
    assert isinstance(opened_event, SessionOpened) and opened_event.aggregate == f"session:{ROOM}"
    assert opened_event.venues == (  # the session's own cap wins, then the venue's, else the server's default
        VenueInfo(venue="tru-so-tinh", name="Trụ sở Tiếp công dân tỉnh Bắc Ninh", main=True, max_kbps=None),
        VenueInfo(venue="xa-tien-du", name="Điểm cầu xã Tiên Du", main=False, max_kbps=None),
        VenueInfo(venue="phuong-que-vo", name="Phường Quế Võ", main=False, max_kbps=800),
        VenueInfo(venue="xa-gia-binh", name="Xã Gia Bình", main=False, max_kbps=600),
    )
    assert isinstance(events[0], SessionPublished) and events[0].late is False
    sessions_audit = [(a, t) for a, kind, t in await audit_actions(engine) if kind == "session"]
    assert sessions_audit == [("session.planned", ROOM), ("session.publish", ROOM), ("session.open", ROOM),
                              ("session.start", ROOM), ("session.close", ROOM)]
    async with engine.connect() as conn:
        queue, _ = await load_queue_state(conn, ROOM)
    assert queue.closed


async def test_publishing_inside_five_working_days_needs_a_written_reason_and_is_marked_late(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await add_venues(engine, clock)
    friday = date(2026, 12, 4)  # 3 working days after Tuesday 1 December
    async with engine.begin() as conn:
        await plan(conn, clock, "phien-dot-xuat", friday)
    with pytest.raises(PublishTooLate) as late:
        async with engine.begin() as conn:
            await publish_session(conn, "phien-dot-xuat", calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    assert (late.value.working_days_left, late.value.required) == (3, 5)
    with pytest.raises(MissingReason):
        async with engine.begin() as conn:
            await publish_session(conn, "phien-dot-xuat", calendar=CALENDAR, override_reason="gấp", actor=ACTOR,
                                  grants=ADMIN, clock=clock)
    async with engine.begin() as conn:
        record = await publish_session(conn, "phien-dot-xuat", calendar=CALENDAR, actor=ACTOR, grants=ADMIN,
                                       clock=clock, override_reason="Vụ việc đông người cần tiếp ngay")
    assert record.session.publish_override == "Vụ việc đông người cần tiếp ngay"
    (event,) = await outbox_events(engine)
    assert isinstance(event, SessionPublished) and event.late is True
    assert "cần tiếp ngay" not in event.model_dump_json()  # the written reason stays in the record


async def test_postponed_rescheduled_and_published_again_each_event_has_its_own_key(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    with pytest.raises(MissingReason):  # "other" needs a sentence
        async with engine.begin() as conn:
            await postpone_session(conn, ROOM, reason=SessionReason.OTHER, actor=ACTOR, grants=ADMIN, clock=clock)
    clock.advance(hours=1)
    async with engine.begin() as conn:
        await postpone_session(conn, ROOM, reason=SessionReason.CHAIR_UNAVAILABLE, actor=ACTOR, grants=ADMIN,
                               clock=clock)
        await reschedule_session(conn, ROOM, day=date(2026, 12, 17), actor=ACTOR, grants=ADMIN, clock=clock)
        again = await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    assert (again.state, again.day, again.version) == (SessionState.PUBLISHED, date(2026, 12, 17), 5)
    events = await outbox_events(engine)
    assert [type(e) for e in events] == [SessionPublished, SessionPostponed, SessionRescheduled, SessionPublished]
    assert len({e.key for e in events}) == 4
    postponed, rescheduled = events[1], events[2]
    assert isinstance(postponed, SessionPostponed) and postponed.reason == "chair_unavailable"
    assert isinstance(rescheduled, SessionRescheduled)
    assert (rescheduled.previous_day, rescheduled.day) == (DAY, date(2026, 12, 17))


async def test_a_cancelled_session_closes_its_queue_and_issues_no_ticket(engine: AsyncEngine,
                                                                         clock: FakeClock) -> None:
    await add_venues(engine, clock)
    (case,) = await make_cases(engine, 1)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
        record = await cancel_session(conn, ROOM, reason=SessionReason.NO_REGISTRATIONS, actor=ACTOR, grants=ADMIN,
                                      clock=clock)
    assert record.state is SessionState.CANCELLED and record.closed_at == clock.now
    with pytest.raises(TicketsNotIssued, match="Đã hủy"):
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue="xa-tien-du", case=case, actor=ACTOR, grants=DESK, clock=clock)
    with pytest.raises(IllegalTransition, match="trạng thái cuối"):
        async with engine.begin() as conn:
            await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    (event,) = await outbox_events(engine)
    assert isinstance(event, SessionCancelled) and event.reason == "no_registrations"


async def test_refusals_write_nothing(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    before = (await outbox_events(engine), await audit_actions(engine))
    clock.set_local(DAY)
    with pytest.raises(NotPermitted):  # a venue operator cannot open the room
        async with engine.begin() as conn:
            await service.open_session(conn, ROOM, actor="user:diem-cau", grants=VENUE_OPERATOR, clock=clock)
    with pytest.raises(NotPermitted):  # the desk does not publish or postpone
        async with engine.begin() as conn:
            await postpone_session(conn, ROOM, reason=SessionReason.SECURITY, actor=ACTOR, grants=DESK, clock=clock)
    with pytest.raises(ConcurrentChange) as stale:  # a page that showed version 1
        async with engine.begin() as conn:
            await service.open_session(conn, ROOM, expected_version=1, actor=ACTOR, grants=CHAIR, clock=clock)
    assert (stale.value.current, stale.value.expected) == (2, 1)
    with pytest.raises(IllegalTransition):  # close before starting
        async with engine.begin() as conn:
            await close_session(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)
    with pytest.raises(UnknownSession):
        async with engine.begin() as conn:
            await start_session(conn, "khong-co-phien", actor=ACTOR, grants=CHAIR, clock=clock)
    assert (await outbox_events(engine), await audit_actions(engine)) == before
    async with engine.connect() as conn:
        assert (await get_session(conn, ROOM)).version == 2


async def test_planning_refuses_a_taken_id_a_past_day_and_bad_venues(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
    with pytest.raises(SessionExists):
        async with engine.begin() as conn:
            await plan(conn, clock, ROOM, DAY)
    with pytest.raises(SessionDatePassed):
        async with engine.begin() as conn:
            await plan(conn, clock, "phien-cu", date(2026, 11, 30))
    refusals = [
        ({"venues": []}, "no_venues"),
        ({"venues": [VenueChoice("xa-tien-du"), VenueChoice("xa-tien-du")]}, "duplicate_venue"),
        ({"venues": [VenueChoice(f"xa-{i}") for i in range(65)]}, "too_many_venues"),
        ({"cohosts": ["bi-thu-tinh-uy"]}, "bad_leader"),
        ({"kind": ReceptionType.ROUTINE}, "bad_kind"),
    ]
    for changes, code in refusals:
        with pytest.raises(InvalidArgument) as refused:
            async with engine.begin() as conn:
                await plan(conn, clock, "phien-moi", DAY, **changes)  # type: ignore[arg-type]
        assert refused.value.code == code
    with pytest.raises(InvalidArgument) as bad_id:
        async with engine.begin() as conn:
            await service.plan_session(conn, session_id="Phiên mới", day=DAY, form=ReceptionForm.ONLINE,
                                       kind=ReceptionType.AD_HOC, venues_chosen=[VenueChoice("tru-so-tinh")],
                                       actor=ACTOR, grants=ADMIN, clock=clock)
    assert bad_id.value.code == "bad_session_id"
    async with engine.connect() as conn:
        ids = (await conn.execute(select(reception_sessions.c.id))).scalars().all()
    assert ids == [ROOM]


async def test_venues_change_before_the_room_opens_but_not_after(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
        changed = await set_session_venues(
            conn, ROOM, venues_chosen=[VenueChoice("xa-tien-du"), VenueChoice("tru-so-tinh")], main="tru-so-tinh",
            expected_version=1, actor=ACTOR, grants=ADMIN, clock=clock)
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    assert [(v.venue, v.main) for v in changed.venues] == [("xa-tien-du", False), ("tru-so-tinh", True)]
    clock.set_local(DAY)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    with pytest.raises(IllegalTransition, match="chưa mở"):
        async with engine.begin() as conn:
            await set_session_venues(conn, ROOM, venues_chosen=[VenueChoice("tru-so-tinh")], actor=ACTOR,
                                     grants=ADMIN, clock=clock)
