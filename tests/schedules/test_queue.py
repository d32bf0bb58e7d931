"""The queue state machine: call next, recall, skip, absent, end, defer, pause/resume, and their events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules import VIETNAM_TZ
from schedules import queue as q
from schedules.call_order import PriorityGround, ReorderReason, Ticket, TicketStatus
from schedules.errors import (
    CaseInProgress,
    ClockWentBackwards,
    DuplicateTicket,
    InvalidArgument,
    NobodyWaiting,
    NoCaseInProgress,
    NotRecallable,
    QueueClosed,
    QueueError,
    QueueNotPaused,
    QueuePaused,
    TicketNotWaiting,
    UnknownTicket,
)
from schedules.queue import (
    CaseAbsent,
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseRecalled,
    CaseResumed,
    CaseSkipped,
    PauseReason,
    QueueEvent,
    QueueState,
    QueueStep,
    SkipReason,
)

pytestmark = pytest.mark.unit
T0 = datetime(2027, 3, 10, 8, 0, tzinfo=VIETNAM_TZ)
CHAIR = "user:bi-thu"


class Clock:
    """A fake clock: every reading is one second after the previous one."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def queue(*tickets: Ticket) -> QueueState:
    state = QueueState("phien-2027-q1")
    for t in tickets:
        state = q.add_ticket(state, t, actor="desk", now=T0).state
    return state


def ticket(no: int, venue: str = "xa-tien-du", priorities: frozenset[PriorityGround] = frozenset()) -> Ticket:
    return Ticket(ticket_id=f"t{no}", ticket_no=no, venue=venue, case=f"case-{no}", priorities=priorities)


class Run:
    """Applies actions with a fake clock and keeps every event."""

    def __init__(self, state: QueueState) -> None:
        self.state = state
        self.clock = Clock()
        self.events: list[QueueEvent] = []

    def __call__(self, action: Callable[..., QueueStep], *args: object, **kwargs: object) -> QueueEvent | None:
        step = action(self.state, *args, actor=CHAIR, now=self.clock(), **kwargs)
        self.state = step.state
        self.events.extend(step.events)
        return step.events[-1] if step.events else None


def test_a_session_queue_from_first_call_to_nobody_waiting() -> None:
    run = Run(queue(ticket(1), ticket(2), ticket(3, priorities=frozenset({PriorityGround.ELDERLY})), ticket(4)))
    called = run(q.call_next)
    assert isinstance(called, CaseCalled)
    assert (called.ticket_no, called.call_seq, called.reorder) == (3, 1, ReorderReason.ELDERLY)
    assert (called.session_id, called.case, called.venue) == ("phien-2027-q1", "case-3", "xa-tien-du")
    assert called.actor == CHAIR
    assert run.state.current == 3 and run.state.ticket(3).status is TicketStatus.CALLED
    closed = run(q.end_case)
    assert isinstance(closed, CaseClosed) and (closed.ticket_no, closed.call_seq) == (3, 1)

    assert run(q.call_next) == CaseCalled(
        session_id="phien-2027-q1", ticket_id="t1", case="case-1", ticket_no=1, venue="xa-tien-du",
        call_seq=2, actor=CHAIR, at=run.clock.now, reorder=None,
    )  # fmt: skip
    skipped = run(q.skip)
    assert isinstance(skipped, CaseSkipped) and skipped.reason is SkipReason.NO_SHOW and skipped.call_seq == 2
    assert [t.ticket_no for t in run.state.order().order] == [2, 4, 1]
    assert run.state.order().reason_for(1) is ReorderReason.NO_SHOW

    for expected in (2, 4):
        call = run(q.call_next)
        assert call is not None and call.ticket_no == expected
        run(q.end_case)
    again = run(q.call_next)
    assert isinstance(again, CaseCalled) and (again.ticket_no, again.call_seq) == (1, 5)
    absent = run(q.skip)  # the second no-show: absent, not to the end again
    assert isinstance(absent, CaseAbsent) and (absent.ticket_no, absent.call_seq) == (1, 5)
    assert run.state.ticket(1).status is TicketStatus.ABSENT
    with pytest.raises(NobodyWaiting):
        run(q.call_next)
    assert [e.TYPE for e in run.events] == [
        "case.called", "case.closed", "case.called", "case.skipped", "case.called", "case.closed",
        "case.called", "case.closed", "case.called", "case.absent",
    ]  # fmt: skip


def test_call_next_is_refused_on_a_closed_queue_during_a_case_and_with_nobody_waiting() -> None:
    run = Run(queue(ticket(1)))
    run(q.call_next)
    with pytest.raises(CaseInProgress, match="số 1"):
        run(q.call_next)
    with pytest.raises(CaseInProgress):
        run(q.close)
    run(q.end_case)
    with pytest.raises(NobodyWaiting) as nobody:
        run(q.call_next)
    assert nobody.value.code == "nobody_waiting"
    run(q.close)
    with pytest.raises(QueueClosed) as closed:
        run(q.call_next)
    assert closed.value.code == "queue_closed"
    with pytest.raises(QueueClosed):
        q.add_ticket(run.state, ticket(2), actor="desk", now=run.clock())


def test_recall_announces_again_with_a_new_call_seq_or_calls_back_a_passed_over_ticket() -> None:
    run = Run(queue(ticket(1), ticket(2), ticket(3)))
    run(q.call_next)
    recalled = run(q.recall)
    assert isinstance(recalled, CaseRecalled) and (recalled.ticket_no, recalled.call_seq) == (1, 2)
    run(q.skip)  # #1 to the end
    run(q.call_next)  # #2
    with pytest.raises(CaseInProgress):
        run(q.recall, ticket_no=1)
    run(q.end_case)
    with pytest.raises(NotRecallable, match="chỉ gọi lại số đã bị bỏ qua"):
        run(q.recall, ticket_no=3)  # never called: use call next
    with pytest.raises(UnknownTicket):
        run(q.recall, ticket_no=99)
    back = run(q.recall, ticket_no=1)  # out of order, before #3
    assert isinstance(back, CaseRecalled) and (back.ticket_no, back.call_seq) == (1, 4)


def test_a_deferred_case_keeps_its_number_and_returns_at_its_place() -> None:
    run = Run(queue(ticket(1), ticket(2), ticket(3), ticket(4)))
    run(q.call_next)  # #1
    paused = run(q.pause, reason=PauseReason.LINK_LOST)
    assert isinstance(paused, CasePaused) and (paused.pause_no, paused.call_seq) == (1, 1)
    deferred = run(q.defer)  # the link does not come back: defer, also while paused
    assert isinstance(deferred, CaseSkipped) and deferred.reason is SkipReason.DEFERRED
    assert not run.state.paused and run.state.ticket(1).status is TicketStatus.DEFERRED
    assert run(q.call_next).ticket_no == 2  # type: ignore[union-attr]
    run(q.end_case)
    assert run(q.release, 1) is None
    assert [t.ticket_no for t in run.state.order().order] == [1, 3, 4]  # its place, not the end
    with pytest.raises(TicketNotWaiting):
        run(q.release, 3)


def test_tickets_of_a_venue_without_link_are_held_until_it_returns() -> None:
    run = Run(queue(ticket(1, "xa-a"), ticket(2, "xa-b"), ticket(3, "xa-a")))
    run(q.set_venue_available, "xa-a", False)
    assert run(q.call_next).ticket_no == 2  # type: ignore[union-attr]
    run(q.end_case)
    with pytest.raises(NobodyWaiting, match="2 số đang được giữ chỗ"):
        run(q.call_next)
    run(q.set_venue_available, "xa-a", True)
    assert run(q.call_next).ticket_no == 1  # type: ignore[union-attr]


def test_pause_and_resume_number_each_pause_and_block_other_actions() -> None:
    run = Run(queue(ticket(1), ticket(2)))
    with pytest.raises(NoCaseInProgress):
        run(q.pause, reason=PauseReason.CHAIR)
    run(q.call_next)
    run(q.pause, reason=PauseReason.LINK_LOST)
    for action in (q.call_next, q.skip, q.end_case, q.recall, q.mark_absent):
        with pytest.raises(QueuePaused):
            run(action)
    with pytest.raises(QueuePaused):
        run(q.pause, reason=PauseReason.CHAIR)
    resumed = run(q.resume)
    assert isinstance(resumed, CaseResumed) and (resumed.pause_no, resumed.call_seq) == (1, 1)
    with pytest.raises(QueueNotPaused):
        run(q.resume)
    second = run(q.pause, reason=PauseReason.CHAIR)
    assert isinstance(second, CasePaused) and second.pause_no == 2 and second.reason is PauseReason.CHAIR
    run(q.resume)
    assert isinstance(run(q.end_case), CaseClosed)


def test_a_link_lost_more_than_five_seconds_pauses() -> None:
    lost = T0
    assert not q.link_loss_needs_pause(lost, lost + timedelta(seconds=5))
    assert q.link_loss_needs_pause(lost, lost + timedelta(seconds=5, milliseconds=1))


def test_mark_absent_applies_to_the_current_case_or_a_ticket_already_passed_over() -> None:
    run = Run(queue(ticket(1), ticket(2), ticket(3)))
    with pytest.raises(NotRecallable):
        run(q.mark_absent, ticket_no=2)  # never called
    run(q.call_next)
    run(q.skip)  # #1 to the end
    run(q.call_next)  # #2
    gone = run(q.mark_absent, ticket_no=1)  # #1 left the venue: absent without being called again
    assert isinstance(gone, CaseAbsent) and (gone.ticket_no, gone.call_seq) == (1, 1)
    assert run.state.current == 2
    now_absent = run(q.mark_absent)
    assert isinstance(now_absent, CaseAbsent) and now_absent.ticket_no == 2 and run.state.current is None


def test_priorities_can_change_while_waiting_and_tickets_are_unique() -> None:
    run = Run(queue(ticket(1), ticket(2)))
    run(q.set_priorities, 2, [PriorityGround.CHAIR_SELECTED])
    called = run(q.call_next)
    assert isinstance(called, CaseCalled) and (called.ticket_no, called.reorder) == (2, ReorderReason.CHAIR_SELECTED)
    with pytest.raises(TicketNotWaiting):
        run(q.set_priorities, 2, [])
    with pytest.raises(DuplicateTicket):
        q.add_ticket(run.state, ticket(1), actor="desk", now=run.clock())
    with pytest.raises(DuplicateTicket):
        q.add_ticket(run.state, Ticket("t1", 9, "xa-b", "case-9"), actor="desk", now=run.clock())
    with pytest.raises(InvalidArgument):
        already_closed = Ticket("t9", 9, "xa-b", "case-9", status=TicketStatus.CLOSED)
        q.add_ticket(run.state, already_closed, actor="desk", now=run.clock())


def test_a_time_before_the_last_change_is_refused() -> None:
    run = Run(queue(ticket(1)))
    run(q.call_next)
    with pytest.raises(ClockWentBackwards):
        q.end_case(run.state, actor=CHAIR, now=run.clock.now - timedelta(milliseconds=1))
    assert run.state.current == 1


# -- property: random sequences of actions --------------------------------------------------------------------

ACTIONS: dict[str, Callable[[QueueState, datetime, int], QueueStep]] = {
    "call_next": lambda s, now, n: q.call_next(s, actor=CHAIR, now=now),
    "recall": lambda s, now, n: q.recall(s, actor=CHAIR, now=now),
    "recall_no": lambda s, now, n: q.recall(s, actor=CHAIR, now=now, ticket_no=n),
    "skip": lambda s, now, n: q.skip(s, actor=CHAIR, now=now),
    "absent": lambda s, now, n: q.mark_absent(s, actor=CHAIR, now=now),
    "absent_no": lambda s, now, n: q.mark_absent(s, actor=CHAIR, now=now, ticket_no=n),
    "end": lambda s, now, n: q.end_case(s, actor=CHAIR, now=now),
    "defer": lambda s, now, n: q.defer(s, actor=CHAIR, now=now),
    "release": lambda s, now, n: q.release(s, n, actor=CHAIR, now=now),
    "pause": lambda s, now, n: q.pause(s, reason=PauseReason.LINK_LOST, actor=CHAIR, now=now),
    "resume": lambda s, now, n: q.resume(s, actor=CHAIR, now=now),
    "venue_down": lambda s, now, n: q.set_venue_available(s, f"xa-{n % 2}", False, actor=CHAIR, now=now),
    "venue_up": lambda s, now, n: q.set_venue_available(s, f"xa-{n % 2}", True, actor=CHAIR, now=now),
    "priority": lambda s, now, n: q.set_priorities(s, n, [PriorityGround.ELDERLY], actor=CHAIR, now=now),
    "close": lambda s, now, n: q.close(s, actor=CHAIR, now=now),
}


# Calling and ending are the common actions of a session: weighted so most sequences get far.
WEIGHTED = ["call_next"] * 6 + ["end"] * 3 + ["skip"] * 2 + sorted(ACTIONS)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.tuples(st.sampled_from(WEIGHTED), st.integers(1, 9)), min_size=10, max_size=80),
)
def test_random_action_sequences_keep_the_queue_consistent(count: int, actions: list[tuple[str, int]]) -> None:
    state = queue(*(ticket(no, venue=f"xa-{no % 2}") for no in range(1, count + 1)))
    clock = Clock()
    events: list[QueueEvent] = []
    returned_to_queue: dict[int, int] = {}
    for name, number in actions:
        try:
            step = ACTIONS[name](state, clock(), number)
        except QueueError:
            continue  # a refused action is a typed error and changes nothing
        state = step.state
        events.extend(step.events)
        for event in step.events:
            if isinstance(event, CaseSkipped):
                returned_to_queue[event.ticket_no] = returned_to_queue.get(event.ticket_no, 0) + 1
        # At most one ticket is being received, and it is the current one.
        being_received = [t.ticket_no for t in state.tickets if t.status is TicketStatus.CALLED]
        assert being_received == ([] if state.current is None else [state.current])
        assert not state.paused or state.current is not None

    calls = [e for e in events if isinstance(e, (CaseCalled, CaseRecalled))]
    # Every call has its own call_seq, rising by one: each call_seq names exactly one ticket.
    assert [e.call_seq for e in calls] == list(range(1, len(calls) + 1))
    seq_ticket = {e.call_seq: e.ticket_no for e in calls}
    finished: set[int] = set()
    for event in events:
        if isinstance(event, (CaseCalled, CaseRecalled)):
            assert event.ticket_no not in finished, "a closed or absent ticket was called again"
        else:
            # Ending or pausing events carry the call_seq of the call that last called that ticket.
            assert seq_ticket[event.call_seq] == event.ticket_no
        if isinstance(event, (CaseClosed, CaseAbsent)):
            finished.add(event.ticket_no)
    # call_next calls a ticket once, plus once per time it went back (no-show to the end, deferral).
    for no in {e.ticket_no for e in calls}:
        next_calls = sum(1 for e in calls if isinstance(e, CaseCalled) and e.ticket_no == no)
        assert next_calls <= 1 + returned_to_queue.get(no, 0)
