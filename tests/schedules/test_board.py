"""The queue board's pure core: hearing times (pauses excluded), the mean and the wait estimate, the reorder log,
the board of a session; and the read of the queue log from the audit rows the queue actions write (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import append_audit
from schedules import VIETNAM_TZ
from schedules import queue as pure
from schedules.board import (
    Board,
    QueueLogEntry,
    board_state,
    estimate_wait,
    hearing_times,
    mean_hearing_time,
    read_queue_log,
    reorder_log,
)
from schedules.call_order import PriorityGround, ReorderReason, Ticket, TicketStatus
from schedules.errors import InvalidArgument, SchedulesError
from schedules.queue import PauseReason, QueueState, SkipReason
from schedules.session_state import SessionState

T0 = datetime(2026, 12, 10, 8, 0, tzinfo=VIETNAM_TZ)
NAMES = {"tru-so-tinh": "Trụ sở Tiếp công dân tỉnh", "xa-tien-du": "Xã Tiên Du", "phuong-que-vo": "Phường Quế Võ"}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def entry(audit_id: int, at_min: float, action: str, ticket_no: int, **extra: object) -> QueueLogEntry:
    return QueueLogEntry(audit_id=audit_id, at=T0 + minutes(at_min), action=action, ticket_no=ticket_no,
                         venue="xa-tien-du", call_seq=extra.pop("call_seq", 1), **extra)  # type: ignore[arg-type]


@pytest.mark.unit
def test_a_hearing_runs_from_its_call_to_its_close_without_its_pauses() -> None:
    log = [entry(1, 0, "case.called", 1), entry(2, 2, "case.paused", 1, pause_no=1),
           entry(3, 5, "case.resumed", 1, pause_no=1), entry(4, 12, "case.closed", 1)]
    assert hearing_times(log) == (minutes(9),)
    assert hearing_times(reversed(log)) == (minutes(9),)  # walked by row id, whatever the order given


@pytest.mark.unit
def test_a_recall_of_the_case_being_received_goes_on_with_its_hearing_and_a_skip_ends_one_without_a_time() -> None:
    log = [entry(1, 0, "case.called", 1), entry(2, 1, "case.skipped", 1, skip_reason=SkipReason.NO_SHOW),
           entry(3, 1, "case.called", 2, call_seq=2), entry(4, 3, "case.recalled", 2, call_seq=3),
           entry(5, 8, "case.closed", 2, call_seq=3),
           entry(6, 8, "case.recalled", 1, call_seq=4), entry(7, 18, "case.closed", 1, call_seq=4)]
    assert hearing_times(log) == (minutes(7), minutes(10))
    assert mean_hearing_time(log) == timedelta(seconds=510)


@pytest.mark.unit
def test_before_any_case_is_closed_there_is_no_mean_and_no_estimate() -> None:
    log = [entry(1, 0, "case.called", 1), entry(2, 4, "case.absent", 1)]
    assert hearing_times(log) == () and mean_hearing_time(log) is None
    assert estimate_wait(None, 3) is None
    assert estimate_wait(minutes(10), 0) == timedelta(0) and estimate_wait(minutes(10), 3) == minutes(30)
    for bad in (-1, True, 1.5):
        with pytest.raises(InvalidArgument):
            estimate_wait(minutes(10), bad)  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_reorder_log_lists_every_call_out_of_order_every_skip_and_every_recall_of_a_passed_number() -> None:
    log = [entry(1, 0, "case.called", 4, reorder=ReorderReason.ELDERLY),
           entry(2, 1, "case.recalled", 4, call_seq=2),  # the case being received: not a reorder
           entry(3, 2, "case.skipped", 4, call_seq=2, skip_reason=SkipReason.NO_SHOW),
           entry(4, 2, "case.called", 1, call_seq=3), entry(5, 3, "case.skipped", 1, call_seq=3,
                                                            skip_reason=SkipReason.DEFERRED),
           entry(6, 3, "case.recalled", 4, call_seq=4), entry(7, 9, "case.closed", 4, call_seq=4)]
    assert [(n.ticket_no, n.reason) for n in reorder_log(log)] == [
        (4, "elderly"), (4, "no_show"), (1, "deferred"), (4, "recalled")]


@pytest.mark.unit
def test_a_log_entry_refuses_an_unknown_action_and_a_naive_time() -> None:
    with pytest.raises(InvalidArgument):
        entry(1, 0, "case.danced", 1)
    with pytest.raises(InvalidArgument):
        QueueLogEntry(audit_id=1, at=datetime(2026, 12, 10, 8), action="case.called", ticket_no=1, venue="v",
                      call_seq=1)


def _queue(*tickets: Ticket, current: int | None = None) -> QueueState:
    return QueueState(session_id="phien", tickets=tickets, current=current, call_seq=1 if current else 0)


@pytest.mark.unit
def test_the_board_shows_the_current_case_the_next_numbers_with_their_waits_and_how_many_wait() -> None:
    called = Ticket("t1", 1, "xa-tien-du", "c1", status=TicketStatus.CALLED, last_call_seq=1)
    queue = _queue(called, Ticket("t2", 2, "phuong-que-vo", "c2"), Ticket("t3", 3, "xa-tien-du", "c3"),
                   Ticket("t4", 4, "xa-tien-du", "c4", priorities=frozenset({PriorityGround.PREGNANT})),
                   Ticket("t5", 5, "phuong-que-vo", "c5", status=TicketStatus.DEFERRED), current=1)
    closed_before = [entry(1, -20, "case.called", 9, call_seq=1), entry(2, -10, "case.closed", 9, call_seq=1)]
    board = board_state(SessionState.IN_PROGRESS, queue, NAMES, closed_before, next_shown=2)
    assert isinstance(board, Board) and board.current is not None
    assert (board.current.ticket_no, board.current.venue_name, board.current.paused) == (1, "Xã Tiên Du", False)
    assert [(t.ticket_no, t.venue_name, t.wait, t.reorder) for t in board.next] == [
        (4, "Xã Tiên Du", minutes(10), "pregnant"), (2, "Phường Quế Võ", minutes(20), None)]
    assert (board.waiting, board.held, dict(board.waiting_by_venue)) == (4, 1, {"xa-tien-du": 2, "phuong-que-vo": 2})
    assert board.mean_hearing == minutes(10) and board.closed_cases == 1 and board.last_wait == minutes(30)

    idle = board_state(SessionState.IN_PROGRESS, _queue(Ticket("t2", 2, "xa-tien-du", "c2")), NAMES, closed_before)
    assert idle.current is None and [t.wait for t in idle.next] == [timedelta(0)] and idle.last_wait == timedelta(0)
    fresh = board_state(SessionState.OPEN, _queue(Ticket("t2", 2, "xa-tien-du", "c2")), NAMES, [])
    assert fresh.mean_hearing is None and fresh.next[0].wait is None and fresh.log == ()
    with pytest.raises(InvalidArgument):
        board_state(SessionState.OPEN, _queue(), NAMES, [], next_shown=0)


# -- the pure queue driven at random: what the board derives from its log stays consistent ------------------

_ACTIONS = ("call_next", "recall", "skip", "end_case", "pause", "resume", "defer", "mark_absent")


def _log_of(event: pure.QueueEvent, audit_id: int) -> QueueLogEntry:
    return QueueLogEntry(
        audit_id=audit_id, at=event.at, action=event.TYPE, ticket_no=event.ticket_no, venue=event.venue,
        call_seq=event.call_seq, reorder=getattr(event, "reorder", None),
        skip_reason=event.reason if isinstance(event, pure.CaseSkipped) else None,
        pause_no=getattr(event, "pause_no", None))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_ACTIONS), st.integers(min_value=0, max_value=900)), max_size=40),
       st.lists(st.booleans(), min_size=1, max_size=8))
@pytest.mark.unit
def test_hearing_times_never_exceed_the_time_spent_and_there_is_one_per_closed_case(
        steps: list[tuple[str, int]], elderly: list[bool]) -> None:
    state = QueueState(session_id="phien", tickets=tuple(
        Ticket(f"t{n}", n, "xa-tien-du" if n % 2 else "phuong-que-vo", f"c{n}",
               priorities=frozenset({PriorityGround.ELDERLY}) if old else frozenset())
        for n, old in enumerate(elderly, start=1)))
    now, paused_total = T0, timedelta(0)
    log: list[QueueLogEntry] = []
    pause_began: datetime | None = None
    for action, gap_s in steps:
        now += timedelta(seconds=gap_s)
        try:
            if action == "pause":
                step = pure.pause(state, reason=PauseReason.CHAIR, actor="user:chu-tri", now=now)
            else:
                step = getattr(pure, action)(state, actor="user:chu-tri", now=now)
        except SchedulesError:
            continue
        state = step.state
        for event in step.events:
            log.append(_log_of(event, len(log) + 1))
            if isinstance(event, pure.CasePaused):
                pause_began = event.at
            elif pause_began is not None and isinstance(event, pure.CaseResumed | pure.CaseSkipped):
                paused_total += event.at - pause_began
                pause_began = None
    times = hearing_times(log)
    assert len(times) == sum(e.action == "case.closed" for e in log)
    assert all(t >= timedelta(0) for t in times)
    assert sum(times, timedelta(0)) + paused_total <= now - T0
    board = board_state(SessionState.IN_PROGRESS, state, NAMES, log)
    order = state.order()
    assert [t.ticket_no for t in board.next] == [t.ticket_no for t in order.order[:8]]
    assert board.waiting == len(order.order) + len(order.held)
    waits = [t.wait for t in board.next]
    assert all(w is None for w in waits) if board.mean_hearing is None else waits == sorted(waits)  # type: ignore[type-var]
    assert {n.reason for n in board.log} <= {r.value for r in ReorderReason} | {"recalled"}


@pytest.mark.integration
async def test_the_queue_log_is_read_from_the_audit_rows_of_its_session_after_the_last_row_read(
        engine: AsyncEngine) -> None:
    async def write(session: str, action: str, ticket_no: int, at_min: int, **detail: object) -> None:
        async with engine.begin() as conn:
            await append_audit(conn, actor="user:chu-tri", action=action, target_kind="ticket",
                               target_id=f"{session}-{ticket_no}", at=T0 + minutes(at_min),
                               detail={"session": session, "ticket_no": ticket_no, "venue": "xa-tien-du",
                                       "call_seq": 1, "case": "c", **detail})

    await write("phien-a", "case.called", 4, 0, reorder="elderly")
    await write("phien-b", "case.called", 1, 1)
    async with engine.begin() as conn:  # not a queue action: never read
        await append_audit(conn, actor="user:x", action="ticket.issued", target_kind="ticket", target_id="t",
                           at=T0, detail={"session": "phien-a", "ticket_no": 9})
    await write("phien-a", "case.closed", 4, 9)
    async with engine.connect() as conn:
        first, cursor = await read_queue_log(conn, "phien-a")
    assert [(e.action, e.ticket_no, e.reorder) for e in first] == [
        ("case.called", 4, ReorderReason.ELDERLY), ("case.closed", 4, None)]
    assert hearing_times(first) == (minutes(9),) and first[0].at == T0
    await write("phien-a", "case.skipped", 5, 10, reason="no_show")
    async with engine.connect() as conn:
        later, last = await read_queue_log(conn, "phien-a", after=cursor)
        nothing, _ = await read_queue_log(conn, "phien-a", after=last)
    assert [(e.action, e.skip_reason) for e in later] == [("case.skipped", SkipReason.NO_SHOW)]
    assert last > cursor and nothing == []
