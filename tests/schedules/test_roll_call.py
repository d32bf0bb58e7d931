"""The roll call of a session's venues and attendees: the pure rules, and the service on SQLite and
PostgreSQL (recorded, amended without losing the first, the first call refused before it, a venue absent
at the roll call held in the queue, one event per roll call)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import audit_events
from schedules import (
    ClockWentBackwards,
    ConcurrentChange,
    InvalidArgument,
    NobodyWaiting,
    NotPermitted,
    Official,
    RollCall,
    RollCallMissing,
    SessionNotInProgress,
    UnknownVenue,
    VenueAttendance,
    VenueChoice,
    VenueNotInSession,
    calls,
    issue_ticket,
    latest_roll_call,
    publish_session,
    record_roll_call,
    roll_calls_of,
    start_session,
)
from schedules import queue as pure
from schedules import sessions as service
from schedules.call_order import Ticket
from schedules.errors import NotRecallable
from schedules.queue import QueueState
from schedules.roll_call import MAX_OFFICIALS, check_may_call, checked_attendance
from schedules.tables import roll_calls
from signaling.events import CaseCalled, SessionRollCallRecorded

from ._roll_call import record_all_present
from .conftest import (
    ACTOR,
    ADMIN,
    CALENDAR,
    CHAIR,
    DESK,
    VENUE_OPERATOR,
    FakeClock,
    add_venues,
    make_cases,
    outbox_events,
    plan,
)

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)
CHAIR_ID = "user:chu-tri"
SESSION_VENUES = ("tru-so-tinh", "xa-tien-du", "phuong-que-vo")
CHAIRED = VenueAttendance("tru-so-tinh", True, (Official("Nguyễn Văn An", "Bí thư Tỉnh ủy"),))
AT = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)


def roll_call(*entries: VenueAttendance, at: datetime = AT) -> RollCall:
    return RollCall(session_id=ROOM, roll_call_no=1, venues=entries, recorded_by="user:thu-ky", recorded_at=at)


# -- pure rules ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_attendance_is_put_in_session_order_with_names_tidied() -> None:
    checked = checked_attendance([
        VenueAttendance("phuong-que-vo", False),
        VenueAttendance("xa-tien-du", True, (Official("  Trần   Thị Bình ", "Chủ tịch\tUBND xã"),), 12),
        CHAIRED,
    ], SESSION_VENUES)
    assert [v.venue for v in checked] == list(SESSION_VENUES)
    assert checked[1].officials == (Official("Trần Thị Bình", "Chủ tịch UBND xã"),) and checked[1].citizens == 12


@pytest.mark.unit
@pytest.mark.parametrize(("entries", "error", "code"), [
    ([CHAIRED, VenueAttendance("xa-gia-binh", True), VenueAttendance("xa-tien-du", True),
      VenueAttendance("phuong-que-vo", True)], VenueNotInSession, "venue_not_in_session"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True), VenueAttendance("xa-tien-du", False),
      VenueAttendance("phuong-que-vo", True)], InvalidArgument, "duplicate_venue"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True)], InvalidArgument, "roll_call_incomplete"),
    ([CHAIRED, VenueAttendance("xa-tien-du", False, (), 3), VenueAttendance("phuong-que-vo", True)],
     InvalidArgument, "absent_with_attendees"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True, (Official(" ", "Chủ tịch"),)),
      VenueAttendance("phuong-que-vo", True)], InvalidArgument, "bad_official"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True, (Official("A" * 101, "Chủ tịch"),)),
      VenueAttendance("phuong-que-vo", True)], InvalidArgument, "bad_official"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True, tuple(Official(f"Cán bộ {i}", "Chuyên viên")
                                                        for i in range(MAX_OFFICIALS + 1))),
      VenueAttendance("phuong-que-vo", True)], InvalidArgument, "too_many_officials"),
    ([CHAIRED, VenueAttendance("xa-tien-du", True, (), -1), VenueAttendance("phuong-que-vo", True)],
     InvalidArgument, "bad_citizens"),
])
def test_a_bad_roll_call_is_refused_with_its_reason(entries: list[VenueAttendance], error: type[Exception],
                                                    code: str) -> None:
    with pytest.raises(error) as caught:
        checked_attendance(entries, SESSION_VENUES)
    assert getattr(caught.value, "code", None) == code
    assert "Nguyễn" not in str(caught.value)  # an official's name never reaches a message


@pytest.mark.unit
def test_the_first_call_needs_a_roll_call_since_the_opening_with_the_main_venue_present() -> None:
    everyone = roll_call(CHAIRED, VenueAttendance("xa-tien-du", True), VenueAttendance("phuong-que-vo", False))
    check_may_call(everyone, opened_at=AT - timedelta(minutes=5), main_venue="tru-so-tinh")  # a venue absent: fine
    with pytest.raises(RollCallMissing, match="Chưa điểm danh"):
        check_may_call(None, opened_at=AT, main_venue="tru-so-tinh")
    with pytest.raises(RollCallMissing, match="Chưa điểm danh"):  # taken before a postponement and reopening
        check_may_call(everyone, opened_at=AT + timedelta(days=7), main_venue="tru-so-tinh")
    chair_away = roll_call(VenueAttendance("tru-so-tinh", False), VenueAttendance("xa-tien-du", True))
    with pytest.raises(RollCallMissing) as caught:
        check_may_call(chair_away, opened_at=AT, main_venue="tru-so-tinh")
    assert caught.value.code == "main_venue_absent"


@pytest.mark.unit
def test_a_venue_absent_at_the_roll_call_is_held_in_the_pure_queue_until_present() -> None:
    tickets = (Ticket("t1", 1, "xa-tien-du", "c1"), Ticket("t2", 2, "phuong-que-vo", "c2", no_shows=1,
                                                           last_call_seq=1))
    state = QueueState(ROOM, tickets, call_seq=1, absent_venues=frozenset({"xa-tien-du", "phuong-que-vo"}))
    with pytest.raises(NobodyWaiting, match="2 số đang được giữ chỗ"):
        pure.call_next(state, actor=CHAIR_ID, now=AT)
    with pytest.raises(NotRecallable, match="vắng mặt khi điểm danh"):  # a no-show of that venue: not recalled
        pure.recall(state, actor=CHAIR_ID, now=AT, ticket_no=2)
    step = pure.call_next(replace(state, absent_venues=frozenset({"phuong-que-vo"})), actor=CHAIR_ID, now=AT)
    assert step.state.current == 1


# -- the service -----------------------------------------------------------------------------------------------


async def opened(engine: AsyncEngine, clock: FakeClock, venues: tuple[str, ...], *, start: bool = True) -> None:
    """A published session with one ticket per entry of ``venues``, opened on its day and (``start``) started,
    without a roll call."""
    await add_venues(engine, clock)
    cases = await make_cases(engine, len(venues))
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice(v) for v in SESSION_VENUES])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    for case, venue in zip(cases, venues, strict=True):
        clock.advance(minutes=1)
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue=venue, case=case, actor=ACTOR, grants=DESK, clock=clock)
    clock.set_local(DAY, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        if start:
            await start_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    clock.advance(minutes=1)


@pytest.mark.integration
async def test_call_next_is_refused_before_the_roll_call_and_allowed_after_it(engine: AsyncEngine,
                                                                            clock: FakeClock) -> None:
    await opened(engine, clock, ("xa-tien-du",))
    with pytest.raises(RollCallMissing, match="hãy điểm danh trước khi gọi công dân đầu tiên"):
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert not [e for e in await outbox_events(engine) if isinstance(e, CaseCalled)]
    async with engine.connect() as conn:
        assert await latest_roll_call(conn, ROOM) is None
    async with engine.begin() as conn:
        await record_all_present(conn, ROOM, clock=clock)
    clock.advance(minutes=1)
    async with engine.begin() as conn:
        outcome = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert [(e.ticket_no, e.venue) for e in outcome.events if isinstance(e, CaseCalled)] == [(1, "xa-tien-du")]


@pytest.mark.integration
async def test_an_amended_roll_call_keeps_the_first_and_releases_the_venue_it_found_absent(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await opened(engine, clock, ("xa-tien-du", "phuong-que-vo"), start=False)
    async with engine.begin() as conn:  # taken while the room is open, before receiving starts
        first = await record_all_present(conn, ROOM, clock=clock, absent={"xa-tien-du"})
        await start_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert (first.roll_call_no, first.absent, first.citizens) == (1, ("xa-tien-du",), 1)
    async with engine.begin() as conn:  # ticket 1's venue is absent: ticket 2 is called first
        outcome = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        assert outcome.state.current == 2 and [t.ticket_no for t in outcome.state.order().held] == [1]
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    with pytest.raises(NobodyWaiting, match="1 số đang được giữ chỗ"):
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)

    clock.advance(minutes=10)  # the commune's people arrive: the secretary amends the roll call
    async with engine.begin() as conn:
        amended = await record_all_present(conn, ROOM, clock=clock)
        outcome = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert amended.roll_call_no == 2 and amended.absent == () and outcome.state.current == 1
    async with engine.connect() as conn:
        history = await roll_calls_of(conn, ROOM)
        assert await latest_roll_call(conn, ROOM) == amended
    assert history == (first, amended)  # the first is kept as it was
    assert history[0].venues[1] == VenueAttendance("xa-tien-du", False)
    assert history[1].venues[0].officials == (Official("Nguyễn Văn An", "Bí thư Tỉnh ủy"),)

    recorded = [e for e in await outbox_events(engine) if isinstance(e, SessionRollCallRecorded)]
    assert [(e.roll_call_no, e.absent, e.by) for e in recorded] == [(1, ("xa-tien-du",), "user:thu-ky"),
                                                                  (2, (), "user:thu-ky")]
    assert len({e.key for e in recorded}) == 2 and recorded[0].key == f"{ROOM}:session.roll_call_recorded:1"
    async with engine.connect() as conn:
        details = (await conn.execute(select(audit_events.c.detail).where(
            audit_events.c.action == "session.roll_call_recorded"))).scalars().all()
    assert len(details) == 2 and "Nguyễn" not in str(details)  # counts and ids, never an official's name
    assert details[0]["absent"] == ["xa-tien-du"] and details[1]["officials"] == 3


@pytest.mark.integration
async def test_a_roll_call_with_the_main_venue_absent_does_not_let_the_chair_call(engine: AsyncEngine,
                                                                                 clock: FakeClock) -> None:
    await opened(engine, clock, ("xa-tien-du",))
    async with engine.begin() as conn:
        await record_all_present(conn, ROOM, clock=clock, absent={"tru-so-tinh"})
    with pytest.raises(RollCallMissing) as caught:
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert caught.value.code == "main_venue_absent"


@pytest.mark.integration
async def test_roll_call_refusals_write_nothing(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice(v) for v in SESSION_VENUES])
    everyone = [CHAIRED, VenueAttendance("xa-tien-du", True), VenueAttendance("phuong-que-vo", True)]
    with pytest.raises(SessionNotInProgress, match="Chỉ điểm danh khi phiên đã mở"):  # planned, not open
        async with engine.begin() as conn:
            await record_roll_call(conn, ROOM, attendance=everyone, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    clock.set_local(DAY, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    refusals: list[tuple[dict[str, object], type[Exception]]] = [
        ({"grants": VENUE_OPERATOR}, NotPermitted),
        ({"attendance": [*everyone, VenueAttendance("xa-khong-co", True)]}, UnknownVenue),
        ({"attendance": [*everyone, VenueAttendance("xa-gia-binh", True)]}, VenueNotInSession),
        ({"expected_roll_call_no": 1}, ConcurrentChange),  # the page showed a roll call that does not exist
        ({"clock": lambda: clock.now - timedelta(hours=1)}, ClockWentBackwards),
    ]
    for changes, error in refusals:
        args: dict[str, object] = {"attendance": everyone, "actor": CHAIR_ID, "grants": CHAIR, "clock": clock,
                                   **changes}
        with pytest.raises(error):
            async with engine.begin() as conn:
                await record_roll_call(conn, ROOM, **args)  # type: ignore[arg-type]
    async with engine.connect() as conn:
        assert (await conn.execute(select(roll_calls))).all() == []
    assert not [e for e in await outbox_events(engine) if isinstance(e, SessionRollCallRecorded)]
    async with engine.begin() as conn:
        recorded = await record_roll_call(conn, ROOM, attendance=everyone, expected_roll_call_no=0, actor=CHAIR_ID,
                                          grants=CHAIR, clock=clock)
    assert recorded.roll_call_no == 1 and recorded.recorded_by == CHAIR_ID
