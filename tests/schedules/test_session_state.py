"""The session state machine: publication 5 working days ahead, transitions, reasons, clock jumps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from complaints.enums import ReceptionForm, ReceptionType
from complaints.workdays import default_calendar
from schedules import VIETNAM_TZ
from schedules import session_state as ss
from schedules.errors import (
    ClockWentBackwards,
    IllegalTransition,
    InvalidArgument,
    MissingReason,
    PublishTooLate,
    SessionDatePassed,
    SessionNotToday,
)
from schedules.session_state import (
    TRANSITIONS,
    ReceptionSession,
    SessionAction,
    SessionReason,
    SessionState,
)

pytestmark = pytest.mark.unit
CAL = default_calendar()
CHAIR = "user:bi-thu"
BOARD = "user:ban-tiep-cong-dan"


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=VIETNAM_TZ)


def planned(day: date = date(2027, 3, 10), *, now: datetime | None = None) -> ReceptionSession:
    return ReceptionSession.plan(
        "phien-2027-q1",
        day,
        form=ReceptionForm.ONLINE,
        kind=ReceptionType.PERIODIC,
        now=now or at(date(2027, 2, 15)),
    )


def test_publishing_exactly_five_working_days_ahead_is_accepted() -> None:
    # Session Wednesday 10/3/2027; from Wednesday 3/3 the working days 4, 5, 8, 9, 10/3 remain: five.
    step = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 3), 16), calendar=CAL)
    assert step.session.state is SessionState.PUBLISHED
    assert step.event.action is SessionAction.PUBLISH
    assert (step.event.from_state, step.event.to_state) == (SessionState.PLANNED, SessionState.PUBLISHED)
    assert step.event.working_days_left == 5 and step.event.override_reason == ""
    assert (step.event.actor, step.event.at) == (BOARD, at(date(2027, 3, 3), 16))


def test_publishing_later_is_refused_with_the_last_day_unless_a_written_reason_is_given() -> None:
    with pytest.raises(PublishTooLate) as refused:
        ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 4)), calendar=CAL)
    assert refused.value.code == "publish_too_late"
    assert (refused.value.working_days_left, refused.value.required) == (4, 5)
    assert refused.value.last_day == date(2027, 3, 3)
    assert "Điều 24" in refused.value.message_vi and "03/03/2027" in refused.value.message_vi

    with pytest.raises(MissingReason):
        ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 4)), calendar=CAL, override_reason="gấp")
    reason = "Bí thư Tỉnh ủy quyết định tiếp theo  đề nghị của Ban Nội chính."
    step = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 4)), calendar=CAL, override_reason=reason)
    assert step.session.publish_override == "Bí thư Tỉnh ủy quyết định tiếp theo đề nghị của Ban Nội chính."
    assert step.event.override_reason == step.session.publish_override
    assert step.event.working_days_left == 4


def test_the_five_working_days_skip_holidays() -> None:
    # Session Tuesday 4/5/2027, after 30/4 (Fri), 1/5 (Sat), 2/5 (Sun) and the make-up Monday 3/5:
    # counting back five working days gives Friday 23/4/2027 (26, 27, 28, 29/4 and 4/5 remain from there).
    session = planned(date(2027, 5, 4))
    assert ss.last_publication_day(date(2027, 5, 4), CAL) == date(2027, 4, 23)
    assert ss.publish(session, actor=BOARD, now=at(date(2027, 4, 23)), calendar=CAL).event.working_days_left == 5
    with pytest.raises(PublishTooLate) as refused:
        ss.publish(session, actor=BOARD, now=at(date(2027, 4, 26)), calendar=CAL)
    assert refused.value.working_days_left == 4


def test_a_session_whose_date_passed_cannot_be_published_even_with_a_reason() -> None:
    with pytest.raises(SessionDatePassed):
        ss.publish(
            planned(), actor=BOARD, now=at(date(2027, 3, 11)), calendar=CAL, override_reason="Công bố bù cho đủ hồ sơ"
        )


def test_a_whole_session_runs_and_each_step_emits_its_event() -> None:
    day = date(2027, 3, 10)
    published = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 1)), calendar=CAL)
    opened = ss.open_session(published.session, actor=CHAIR, now=at(day, 7, 30))
    started = ss.start(opened.session, actor=CHAIR, now=at(day, 8))
    closed = ss.close(started.session, actor=CHAIR, now=at(day, 11, 45))
    events = [s.event for s in (published, opened, started, closed)]
    assert [e.action for e in events] == [
        SessionAction.PUBLISH, SessionAction.OPEN, SessionAction.START, SessionAction.CLOSE
    ]
    assert [e.to_state for e in events] == [
        SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS, SessionState.CLOSED
    ]
    assert all(e.session_id == "phien-2027-q1" and e.day == day for e in events)
    assert closed.session.changed_at == at(day, 11, 45)


def test_opening_is_only_on_the_session_day_in_vietnam() -> None:
    published = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 1)), calendar=CAL).session
    with pytest.raises(SessionNotToday):
        ss.open_session(published, actor=CHAIR, now=at(date(2027, 3, 9), 16))
    # 17:30 UTC on 9/3 is 00:30 on 10/3 in Vietnam: the session day.
    step = ss.open_session(published, actor=CHAIR, now=datetime(2027, 3, 9, 17, 30, tzinfo=UTC))
    assert step.session.state is SessionState.OPEN


ACTIONS: dict[SessionAction, Callable[[ReceptionSession, datetime], ss.SessionStep]] = {
    SessionAction.PUBLISH: lambda s, now: ss.publish(
        s, actor=BOARD, now=now, calendar=CAL, override_reason="Lý do công bố muộn đã ghi rõ"
    ),
    SessionAction.OPEN: lambda s, now: ss.open_session(s, actor=CHAIR, now=now),
    SessionAction.START: lambda s, now: ss.start(s, actor=CHAIR, now=now),
    SessionAction.CLOSE: lambda s, now: ss.close(s, actor=CHAIR, now=now),
    SessionAction.POSTPONE: lambda s, now: ss.postpone(s, reason=SessionReason.CHAIR_UNAVAILABLE, actor=CHAIR, now=now),
    SessionAction.CANCEL: lambda s, now: ss.cancel(s, reason=SessionReason.DISASTER_EPIDEMIC, actor=CHAIR, now=now),
    SessionAction.RESCHEDULE: lambda s, now: ss.reschedule(s, day=date(2027, 3, 10), actor=BOARD, now=now),
}


@pytest.mark.parametrize("state", list(SessionState))
@pytest.mark.parametrize("action", list(SessionAction))
def test_every_state_and_action_pair_follows_the_table(state: SessionState, action: SessionAction) -> None:
    session = ReceptionSession(
        "phien-x", date(2027, 3, 10), ReceptionForm.ONLINE, ReceptionType.PERIODIC, state=state
    )
    now = at(date(2027, 3, 10), 8)
    target = TRANSITIONS.get((state, action))
    if target is None:
        with pytest.raises(IllegalTransition) as illegal:
            ACTIONS[action](session, now)
        error = illegal.value
        assert (error.code, error.from_state, error.action) == ("illegal_transition", state.value, action.value)
        assert error.to_state == ss.ACTION_TARGETS[action].value
        assert f"«{state.label_vi}»" in error.message_vi
        assert f"«{ss.ACTION_TARGETS[action].label_vi}»" in error.message_vi
    else:
        step = ACTIONS[action](session, now)
        assert step.session.state is target and step.event.to_state is target


def test_closed_and_cancelled_are_final() -> None:
    final = {s for s in SessionState if not any(state is s for state, _ in TRANSITIONS)}
    assert final == {SessionState.CLOSED, SessionState.CANCELLED}
    closed = ReceptionSession(
        "p", date(2027, 3, 10), ReceptionForm.IN_PERSON, ReceptionType.AD_HOC, state=SessionState.CLOSED
    )
    with pytest.raises(IllegalTransition, match="trạng thái cuối"):
        ss.postpone(closed, reason=SessionReason.SECURITY, actor=CHAIR, now=at(date(2027, 3, 10)))


def test_postpone_records_the_reason_and_reschedule_plans_it_again() -> None:
    published = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 1)), calendar=CAL).session
    with pytest.raises(MissingReason):
        ss.postpone(published, reason=SessionReason.OTHER, actor=CHAIR, now=at(date(2027, 3, 2)))
    note = "Trùng lịch họp Ban Chấp hành"
    step = ss.postpone(published, reason=SessionReason.OTHER, note=note, actor=CHAIR, now=at(date(2027, 3, 2)))
    assert step.session.state is SessionState.POSTPONED
    assert (step.event.reason, step.event.note) == (SessionReason.OTHER, "Trùng lịch họp Ban Chấp hành")
    assert SessionReason.parse("Thiên tai, dịch bệnh") is SessionReason.DISASTER_EPIDEMIC

    with pytest.raises(SessionDatePassed):
        ss.reschedule(step.session, day=date(2027, 3, 1), actor=BOARD, now=at(date(2027, 3, 2)))
    again = ss.reschedule(step.session, day=date(2027, 3, 24), actor=BOARD, now=at(date(2027, 3, 3)))
    assert again.session.state is SessionState.PLANNED
    assert (again.session.day, again.event.previous_day) == (date(2027, 3, 24), date(2027, 3, 10))
    assert again.session.reason is None and again.session.publish_override == ""
    # It must be published again under the same rule: 17/3 leaves 18, 19, 22, 23, 24/3.
    assert ss.publish(again.session, actor=BOARD, now=at(date(2027, 3, 17)), calendar=CAL).event.working_days_left == 5


def test_a_time_earlier_than_the_last_transition_is_refused_and_changes_nothing() -> None:
    published = ss.publish(planned(), actor=BOARD, now=at(date(2027, 3, 1), 10), calendar=CAL).session
    with pytest.raises(ClockWentBackwards) as jumped:
        ss.postpone(published, reason=SessionReason.SECURITY, actor=CHAIR, now=at(date(2027, 3, 1), 9, 59))
    assert jumped.value.code == "clock_went_backwards"
    assert (jumped.value.last, jumped.value.now) == (at(date(2027, 3, 1), 10), at(date(2027, 3, 1), 9, 59))
    assert published.state is SessionState.PUBLISHED
    # The same instant is not a jump.
    assert ss.postpone(
        published, reason=SessionReason.SECURITY, actor=CHAIR, now=at(date(2027, 3, 1), 10)
    ).session.state is SessionState.POSTPONED


def test_naive_times_empty_actors_and_past_dates_are_refused() -> None:
    session = planned()
    with pytest.raises(InvalidArgument) as naive:
        ss.publish(session, actor=BOARD, now=datetime(2027, 3, 1, 9), calendar=CAL)
    assert naive.value.code == "naive_time"
    with pytest.raises(InvalidArgument) as nobody:
        ss.publish(session, actor="  ", now=at(date(2027, 3, 1)), calendar=CAL)
    assert nobody.value.code == "invalid_actor"
    with pytest.raises(SessionDatePassed):
        planned(date(2027, 3, 10), now=at(date(2027, 3, 10)) + timedelta(days=1))
    assert planned(date(2027, 3, 10), now=at(date(2027, 3, 10), 7)).day == date(2027, 3, 10)
