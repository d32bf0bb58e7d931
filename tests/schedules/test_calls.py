"""The chair's queue actions on a stored session (SQLite and PostgreSQL): the pure queue applied,
persisted, and announced on the bus as docs/bus.md says; refusals write nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import (
    CaseInProgress,
    ClockWentBackwards,
    ConcurrentChange,
    NobodyWaiting,
    NotPermitted,
    PauseReason,
    PriorityGround,
    QueuePaused,
    SessionNotInProgress,
    TicketStatus,
    VenueChoice,
    calls,
    close_session,
    issue_ticket,
    publish_session,
    spoken_venue_name,
    start_session,
)
from schedules import sessions as service
from schedules.tables import queue_tickets
from signaling.events import (
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseRecalled,
    CaseResumed,
    CaseSkipped,
    SessionClosed,
)

from ._roll_call import record_all_present
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

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)
CHAIR_ID = "user:chu-tri"


async def started(engine: AsyncEngine, clock: FakeClock, tickets: Sequence[tuple[str, tuple[PriorityGround, ...]]],
                  *, start: bool = True) -> list[str]:
    """A published session with ``tickets`` (venue, priorities) issued in order, opened on its day and
    (``start``) started; returns the case ids in ticket order."""
    await add_venues(engine, clock)
    cases = await make_cases(engine, len(tickets))
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du"),
                                                   VenueChoice("phuong-que-vo")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    for case, (venue, grounds) in zip(cases, tickets, strict=True):
        clock.advance(minutes=1)
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue=venue, case=case, priorities=grounds, actor=ACTOR, grants=DESK,
                               clock=clock)
    clock.set_local(DAY, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        await record_all_present(conn, ROOM, clock=clock)
        if start:
            await start_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    return cases


async def queue_events(engine: AsyncEngine) -> list[object]:
    return [e for e in await outbox_events(engine) if e.type.startswith("case.")]


async def test_call_next_announces_number_and_venue_and_end_case_closes_it(engine: AsyncEngine,
                                                                           clock: FakeClock) -> None:
    cases = await started(engine, clock, [("phuong-que-vo", ()), ("xa-tien-du", ()),
                                          ("xa-tien-du", (PriorityGround.ELDERLY,))])
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        first = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    called_at = clock.now
    (called,) = first.events
    assert isinstance(called, CaseCalled)
    # the elderly citizen's ticket 3 is called before 1 and 2, with the reason shown to everyone
    assert (called.ticket_no, called.venue, called.case, called.call_seq, called.reorder) == (
        3, "xa-tien-du", cases[2], 1, "elderly")
    assert called.announcement_text == "Mời công dân có số thứ tự 3, tại điểm cầu xã Tiên Du, chuẩn bị trình bày."
    assert called.announcement_audio_url is None and called.by == CHAIR_ID and called.occurred_at == called_at
    assert called.key == f"{cases[2]}:1:case.called" and called.aggregate == f"session:{ROOM}"
    ended_at = clock.advance(minutes=12)
    async with engine.begin() as conn:
        ended = await calls.end_case(conn, ROOM, expected_version=first.version, actor=CHAIR_ID, grants=CHAIR,
                                     clock=clock)
        second = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    (closed,) = ended.events
    assert isinstance(closed, CaseClosed) and (closed.ticket_no, closed.call_seq) == (3, 1)
    (next_call,) = second.events
    assert isinstance(next_call, CaseCalled) and (next_call.ticket_no, next_call.reorder) == (1, None)
    assert next_call.announcement_text == ("Mời công dân có số thứ tự 1, tại điểm cầu phường Quế Võ, "
                                           "chuẩn bị trình bày.")
    async with engine.connect() as conn:  # persisted: read back as it was left
        state, version = await calls.load_queue(conn, ROOM)
        rows = {r.ticket_no: r for r in (await conn.execute(select(queue_tickets))).all()}
    assert (state.current, state.call_seq, version) == (1, 2, second.version)
    assert [t.status for t in state.tickets] == [TicketStatus.CALLED, TicketStatus.WAITING, TicketStatus.CLOSED]
    assert (rows[3].called_at, rows[3].ended_at) == (called_at, ended_at)
    assert (rows[1].called_at, rows[1].ended_at, rows[2].called_at) == (ended_at, None, None)
    audited = [(a, kind) for a, kind, _ in await audit_actions(engine) if a.startswith("case.")]
    assert audited == [("case.called", "ticket"), ("case.closed", "ticket"), ("case.called", "ticket")]


async def test_a_no_show_goes_to_the_end_once_and_is_then_absent(engine: AsyncEngine, clock: FakeClock) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    steps = [calls.call_next, calls.skip, calls.call_next, calls.end_case, calls.call_next, calls.skip]
    for step in steps:
        clock.advance(minutes=1)
        async with engine.begin() as conn:
            await step(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    with pytest.raises(NobodyWaiting):
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    events = await queue_events(engine)
    assert [(type(e).__name__, e.ticket_no, e.call_seq) for e in events] == [  # type: ignore[attr-defined]
        ("CaseCalled", 1, 1), ("CaseSkipped", 1, 1), ("CaseCalled", 2, 2), ("CaseClosed", 2, 2),
        ("CaseCalled", 1, 3), ("CaseAbsent", 1, 3)]
    skipped = events[1]
    assert isinstance(skipped, CaseSkipped) and skipped.reason == "no_show"
    async with engine.connect() as conn:
        state, _ = await calls.load_queue(conn, ROOM)
    assert [(t.status, t.no_shows) for t in state.tickets] == [(TicketStatus.ABSENT, 2), (TicketStatus.CLOSED, 0)]


async def test_a_case_paused_twice_has_two_pause_keys_and_nothing_ends_it_while_paused(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    cases = await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    for _ in range(2):
        clock.advance(seconds=20)
        async with engine.begin() as conn:
            await calls.pause(conn, ROOM, reason=PauseReason.LINK_LOST, actor="service:room", grants=CHAIR,
                              clock=clock)
        with pytest.raises(QueuePaused):
            async with engine.begin() as conn:
                await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        clock.advance(seconds=40)
        async with engine.begin() as conn:
            await calls.resume(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        recalled = await calls.recall(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        await calls.pause(conn, ROOM, reason=PauseReason.CHAIR, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        deferred = await calls.defer(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        released = await calls.release(conn, ROOM, 1, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    (again,) = recalled.events
    assert isinstance(again, CaseRecalled) and again.call_seq == 2
    assert again.announcement_text == "Mời công dân có số thứ tự 1, tại điểm cầu xã Tiên Du, chuẩn bị trình bày."
    (held,) = deferred.events
    assert isinstance(held, CaseSkipped) and held.reason == "deferred"
    assert released.events == () and released.state.tickets[0].status is TicketStatus.WAITING
    events = await queue_events(engine)
    pauses = [e for e in events if isinstance(e, CasePaused | CaseResumed)]
    assert [(type(e).__name__, e.pause_no, e.key) for e in pauses] == [
        ("CasePaused", 1, f"{cases[0]}:1:case.paused:1"), ("CaseResumed", 1, f"{cases[0]}:1:case.resumed:1"),
        ("CasePaused", 2, f"{cases[0]}:1:case.paused:2"), ("CaseResumed", 2, f"{cases[0]}:1:case.resumed:2"),
        ("CasePaused", 3, f"{cases[0]}:2:case.paused:3")]
    assert [getattr(e, "reason", None) for e in pauses if isinstance(e, CasePaused)] == ["link_lost", "link_lost",
                                                                                         "chair"]
    assert ("queue.release", "session", ROOM) in await audit_actions(engine)


async def test_queue_refusals_write_nothing(engine: AsyncEngine, clock: FakeClock) -> None:
    await started(engine, clock, [("xa-tien-du", ())], start=False)
    with pytest.raises(SessionNotInProgress, match="Đã mở phiên"):  # the roll call comes first
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        await start_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    before = (await outbox_events(engine), await audit_actions(engine))
    with pytest.raises(NotPermitted):  # a venue's operator cannot call the next case
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor="user:diem-cau", grants=VENUE_OPERATOR, clock=clock)
    with pytest.raises(ConcurrentChange):
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, expected_version=1, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    clock.advance(minutes=-10)  # a clock jump back
    with pytest.raises(ClockWentBackwards):
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert (await outbox_events(engine), await audit_actions(engine)) == before


async def test_the_session_closes_only_when_no_case_is_being_received_and_then_calls_nothing(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    with pytest.raises(CaseInProgress, match="Chưa thể kết thúc phiên"):
        async with engine.begin() as conn:
            await close_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        await close_session(conn, ROOM, actor=CHAIR_ID, grants=ALL, clock=clock)
    with pytest.raises(SessionNotInProgress, match="Đã kết thúc"):  # call next on a closed session
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    types = [type(e) for e in await outbox_events(engine)][-3:]
    assert types == [CaseCalled, CaseClosed, SessionClosed]
    async with engine.connect() as conn:
        state, _ = await calls.load_queue(conn, ROOM)
    assert state.closed and state.tickets[1].status is TicketStatus.WAITING  # kept for the record


@pytest.mark.unit
def test_the_unit_word_of_a_venue_name_is_spoken_in_lower_case() -> None:
    assert spoken_venue_name("Xã Tiên Du") == "xã Tiên Du"
    assert spoken_venue_name("Phường Quế Võ") == "phường Quế Võ"
    assert spoken_venue_name("Thị trấn Lim") == "thị trấn Lim"
    assert spoken_venue_name("Trụ sở Tiếp công dân tỉnh") == "Trụ sở Tiếp công dân tỉnh"
    assert spoken_venue_name("Xãhội") == "Xãhội"
