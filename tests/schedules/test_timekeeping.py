"""The on-time policy: which transition is due for a session at an instant, including clock jumps; and
the hours of a session (validation)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complaints.enums import ReceptionForm, ReceptionType
from schedules import VIETNAM_TZ
from schedules import session_state as machine
from schedules.errors import InvalidArgument, InvalidSessionHours
from schedules.session_hours import DEFAULT_SESSION_HOURS, SessionHours, hours_from, parse_time_of_day
from schedules.session_state import ReceptionSession, SessionAction, SessionState
from schedules.timekeeping import Due, Verdict, due

pytestmark = pytest.mark.unit

DAY = date(2026, 12, 10)  # the Secretary's quarterly session (Thursday 10 December 2026)
HOURS = SessionHours(time(7, 30), time(11, 30))
ACTOR = "service:timekeeper"


def local(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=VIETNAM_TZ)


PUBLISHED_AT = local(DAY - timedelta(days=8), 9)


def session(state: SessionState, changed_at: datetime = PUBLISHED_AT) -> ReceptionSession:
    return ReceptionSession("phien-2026-12-10", DAY, ReceptionForm.ONLINE, ReceptionType.PERIODIC, state=state,
                            changed_at=changed_at)


@pytest.mark.parametrize(("state", "now", "case", "expected"), [
    (SessionState.PUBLISHED, local(DAY - timedelta(days=1), 8), False, Due(Verdict.WAIT)),
    (SessionState.PUBLISHED, local(DAY, 7, 29, 59), False, Due(Verdict.WAIT)),
    (SessionState.PUBLISHED, local(DAY, 7, 30), False, Due(Verdict.OPEN, SessionAction.OPEN)),
    (SessionState.PUBLISHED, local(DAY, 10, 15), False, Due(Verdict.OPEN, SessionAction.OPEN)),  # late: still
    (SessionState.PUBLISHED, local(DAY, 11, 30), False, Due(Verdict.MISSED)),
    (SessionState.PUBLISHED, local(DAY + timedelta(days=1), 8), False, Due(Verdict.MISSED)),
    (SessionState.OPEN, local(DAY, 9), False, Due(Verdict.WAIT)),
    (SessionState.OPEN, local(DAY, 11, 30), False, Due(Verdict.NOT_STARTED)),
    (SessionState.IN_PROGRESS, local(DAY, 11, 29, 59), False, Due(Verdict.WAIT)),
    (SessionState.IN_PROGRESS, local(DAY, 11, 30), False, Due(Verdict.CLOSE, SessionAction.CLOSE)),
    (SessionState.IN_PROGRESS, local(DAY, 11, 30), True, Due(Verdict.HOLD_FOR_CASE)),
    (SessionState.IN_PROGRESS, local(DAY, 12, 40), True, Due(Verdict.HOLD_FOR_CASE)),
    (SessionState.IN_PROGRESS, local(DAY + timedelta(days=2), 8), False, Due(Verdict.CLOSE, SessionAction.CLOSE)),
    (SessionState.PLANNED, local(DAY, 8), False, Due(Verdict.NOT_TIMED)),
    (SessionState.CLOSED, local(DAY, 12), False, Due(Verdict.NOT_TIMED)),
    (SessionState.POSTPONED, local(DAY, 8), False, Due(Verdict.NOT_TIMED)),
    (SessionState.CANCELLED, local(DAY, 8), False, Due(Verdict.NOT_TIMED)),
])
def test_due_transition_at_each_moment_of_the_session_day(state: SessionState, now: datetime, case: bool,
                                                          expected: Due) -> None:
    assert due(session(state), HOURS, now, case_in_progress=case) == expected


def test_a_clock_behind_the_last_transition_makes_nothing_due() -> None:
    opened = session(SessionState.IN_PROGRESS, changed_at=local(DAY, 12))
    assert due(opened, HOURS, local(DAY, 11, 45), case_in_progress=False) == Due(Verdict.CLOCK_BEHIND)
    published = session(SessionState.PUBLISHED, changed_at=local(DAY, 9))
    assert due(published, HOURS, local(DAY, 8), case_in_progress=False) == Due(Verdict.CLOCK_BEHIND)


def test_due_refuses_a_naive_instant() -> None:
    with pytest.raises(InvalidArgument):
        due(session(SessionState.PUBLISHED), HOURS, datetime(2026, 12, 10, 8), case_in_progress=False)


# -- properties over instants and clock jumps ------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=23 * 60 + 59)
hours_strategy = st.tuples(minutes, minutes).filter(lambda m: m[1] - m[0] >= 30).map(
    lambda m: SessionHours(time(m[0] // 60, m[0] % 60), time(m[1] // 60, m[1] % 60)))
#: readings of a clock around the session day, in seconds from 4 days before its midnight to 4 days after
instants = st.integers(min_value=-4 * 86400, max_value=5 * 86400).map(
    lambda s: datetime.combine(DAY, time(), tzinfo=VIETNAM_TZ) + timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(hours=hours_strategy, now=instants, state=st.sampled_from(list(SessionState)), case=st.booleans())
def test_an_action_is_due_only_within_its_hours_and_the_state_machine_accepts_it(
        hours: SessionHours, now: datetime, state: SessionState, case: bool) -> None:
    s = session(state)
    verdict = due(s, hours, now, case_in_progress=case)
    if verdict.action is SessionAction.OPEN:
        assert state is SessionState.PUBLISHED and now.astimezone(VIETNAM_TZ).date() == DAY
        assert hours.opening(DAY) <= now < hours.closing(DAY)
        assert machine.open_session(s, actor=ACTOR, now=now).session.state is SessionState.OPEN
    elif verdict.action is SessionAction.CLOSE:
        assert state is SessionState.IN_PROGRESS and not case and now >= hours.closing(DAY)
        assert machine.close(s, actor=ACTOR, now=now).session.state is SessionState.CLOSED
    else:
        assert verdict.action is None


@settings(max_examples=300, deadline=None)
@given(hours=hours_strategy, readings=st.lists(instants, min_size=1, max_size=40),
       case_ends=st.integers(min_value=0, max_value=40))
def test_a_jumping_clock_opens_once_on_the_day_and_closes_after_the_hours_never_during_a_case(
        hours: SessionHours, readings: list[datetime], case_ends: int) -> None:
    """The driver applies each due action at each reading of a clock that jumps back and forth by up to
    days; the chair starts the session as soon as it is open and a case is heard until ``case_ends``."""
    s = session(SessionState.PUBLISHED)
    opened_at: list[datetime] = []
    closed_at: list[datetime] = []
    for i, now in enumerate(readings):
        case = i < case_ends
        verdict = due(s, hours, now, case_in_progress=case)
        if verdict.action is SessionAction.OPEN:
            s = machine.open_session(s, actor=ACTOR, now=now).session
            opened_at.append(now)
            s = machine.start(s, actor="user:chair", now=now).session
        elif verdict.action is SessionAction.CLOSE:
            assert not case
            s = machine.close(s, actor=ACTOR, now=now).session
            closed_at.append(now)
    assert len(opened_at) <= 1 and len(closed_at) <= 1
    for at in opened_at:
        assert at.astimezone(VIETNAM_TZ).date() == DAY and hours.opening(DAY) <= at < hours.closing(DAY)
    for at in closed_at:
        assert at >= hours.closing(DAY) and opened_at and at >= opened_at[0]


@settings(max_examples=200, deadline=None)
@given(hours=hours_strategy, now=instants)
def test_a_session_of_another_day_is_never_opened(hours: SessionHours, now: datetime) -> None:
    other = replace(session(SessionState.PUBLISHED), day=DAY + timedelta(days=1))
    verdict = due(other, hours, now, case_in_progress=False)
    if verdict.action is SessionAction.OPEN:
        assert now.astimezone(VIETNAM_TZ).date() == other.day


# -- session hours ---------------------------------------------------------------------------------------


def test_default_hours_are_a_morning_sitting_opening_half_an_hour_before_reception() -> None:
    assert DEFAULT_SESSION_HOURS == SessionHours(time(7, 30), time(11, 30))
    assert HOURS.opening(DAY) == datetime(2026, 12, 10, 0, 30, tzinfo=UTC)
    assert HOURS.closing(DAY) == datetime(2026, 12, 10, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(("opens", "closes", "code"), [
    (time(11, 30), time(7, 30), "closes_before_opens"),
    (time(8, 0), time(8, 0), "closes_before_opens"),
    (time(8, 0), time(8, 15), "session_too_short"),
    (time(23, 45), time(23, 59), "session_too_short"),
    (time(7, 30, 15), time(11, 30), "bad_time"),
    (time(7, 30, tzinfo=UTC), time(11, 30), "bad_time"),
])
def test_unusable_hours_are_refused_with_the_reason(opens: time, closes: time, code: str) -> None:
    with pytest.raises(InvalidSessionHours) as caught:
        SessionHours(opens, closes)
    assert caught.value.code == code and caught.value.message_vi


def test_hours_that_are_not_times_are_refused() -> None:
    with pytest.raises(InvalidSessionHours, match="giờ:phút"):
        SessionHours("07:30", time(11, 30))  # type: ignore[arg-type]


@pytest.mark.parametrize(("at", "expected"), [
    (datetime(2026, 12, 10, 2, 17, 41, tzinfo=UTC), SessionHours(time(9, 17), time(23, 59))),
    (datetime(2026, 12, 10, 16, 50, tzinfo=UTC), SessionHours(time(23, 29), time(23, 59))),  # 23:50 local
    (datetime(2026, 12, 9, 17, 0, tzinfo=UTC), SessionHours(time(0, 0), time(23, 59))),  # midnight local
])
def test_an_ad_hoc_session_opened_at_once_runs_to_the_end_of_its_day(at: datetime, expected: SessionHours) -> None:
    assert hours_from(at) == expected


@pytest.mark.parametrize(("text", "expected"), [("07:30", time(7, 30)), ("7:05", time(7, 5)),
                                                (" 13:45 ", time(13, 45))])
def test_time_of_day_is_parsed_from_hh_mm(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["25:00", "7h30", "07:60", "", "07:30:00", "x" * 200])
def test_time_of_day_that_is_not_hh_mm_is_refused(text: str) -> None:
    with pytest.raises(InvalidSessionHours) as caught:
        parse_time_of_day(text)
    assert caught.value.code == "bad_time" and len(caught.value.message_vi) < 200
