"""Legal deadlines: units, remote areas, extensions, moves off holidays, follow-up states."""

from __future__ import annotations

from datetime import date

import pytest

from complaints.deadlines import (
    DEADLINE_RULES,
    DeadlineKind,
    DueStatus,
    DurationUnit,
    classify_due,
    compute_deadline,
    deadline,
    is_overdue,
    working_days_left,
)
from complaints.errors import DeadlineError, UnknownEnumValue
from complaints.workdays import default_calendar

pytestmark = pytest.mark.unit
CAL = default_calendar()


def test_every_kind_has_a_rule_with_a_legal_source() -> None:
    assert set(DEADLINE_RULES) == set(DeadlineKind)
    for rule in DEADLINE_RULES.values():
        assert rule.source_vi and rule.amount > 0


def test_working_day_deadline_skips_the_april_break() -> None:
    # Received Tue 22/4/2025; 10 working days: 23, 24, 25, 26 (Sat, làm bù), 28, 29, 5/5, 6, 7, 8.
    assert deadline(DeadlineKind.NOTIFY_RECEPTION_OUTCOME, date(2025, 4, 22), CAL) == date(2025, 5, 8)


def test_calendar_deadline_on_a_holiday_moves_to_the_next_working_day() -> None:
    result = compute_deadline(DeadlineKind.ACCEPT_FIRST_COMPLAINT, date(2025, 4, 20), CAL)
    assert result.nominal == date(2025, 4, 30)  # Ngày Chiến thắng
    assert result.due == date(2025, 5, 5)  # 1/5 holiday, 2/5 swapped off, 3–4/5 weekend
    assert result.moved


def test_calendar_deadline_on_tet_moves_past_tet() -> None:
    # 30 days from 30/12/2024 is 29/1/2025, mùng 1 Tết.
    assert deadline("resolve_first_complaint", date(2024, 12, 30), CAL) == date(2025, 2, 3)


def test_calendar_deadline_on_a_working_day_does_not_move() -> None:
    result = compute_deadline(DeadlineKind.ACCEPT_FIRST_COMPLAINT, date(2025, 3, 3), CAL)
    assert result.due == result.nominal == date(2025, 3, 13) and not result.moved


def test_remote_areas_and_extensions() -> None:
    start = date(2025, 3, 3)
    kind = DeadlineKind.RESOLVE_FIRST_COMPLAINT
    assert compute_deadline(kind, start, CAL).length == 30
    assert compute_deadline(kind, start, CAL, extensions=1).length == 45
    assert compute_deadline(kind, start, CAL, remote=True).length == 45
    assert compute_deadline(kind, start, CAL, remote=True, extensions=1).length == 60
    second = DeadlineKind.RESOLVE_SECOND_COMPLAINT
    assert compute_deadline(second, start, CAL, remote=True, extensions=1).length == 70
    assert compute_deadline(DeadlineKind.RESOLVE_DENUNCIATION, start, CAL, extensions=2).length == 90
    initial = compute_deadline(DeadlineKind.DENUNCIATION_INITIAL_HANDLING, start, CAL, extensions=1)
    assert initial.length == 10 and initial.rule.unit is DurationUnit.WORKING_DAYS
    # No remote variant: remote changes nothing.
    assert deadline(DeadlineKind.ACCEPT_FIRST_COMPLAINT, start, CAL, remote=True) == deadline(
        DeadlineKind.ACCEPT_FIRST_COMPLAINT, start, CAL
    )


def test_more_extensions_than_the_law_allows_is_an_error() -> None:
    with pytest.raises(DeadlineError) as caught:
        deadline(DeadlineKind.RESOLVE_DENUNCIATION, date(2025, 3, 3), CAL, extensions=3)
    assert caught.value.code == "too_many_extensions" and "tối đa 2 lần" in str(caught.value)
    with pytest.raises(DeadlineError):
        deadline(DeadlineKind.ACCEPT_FIRST_COMPLAINT, date(2025, 3, 3), CAL, extensions=1)
    with pytest.raises(DeadlineError):
        deadline(DeadlineKind.RESOLVE_DENUNCIATION, date(2025, 3, 3), CAL, extensions=-1)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(UnknownEnumValue):
        deadline("resolve_everything", date(2025, 3, 3), CAL)


def test_schedule_publication_counts_backwards_in_working_days() -> None:
    # Session Monday 10/3/2025: 5 working days before is Monday 3/3.
    assert deadline(DeadlineKind.PUBLISH_SCHEDULE, date(2025, 3, 10), CAL) == date(2025, 3, 3)
    # Session Wednesday 7/5/2025: back over the 30/4–4/5 break (Sat 26/4 was a working day).
    # 6/5, 5/5, 29/4, 28/4, then Saturday 26/4.
    assert deadline(DeadlineKind.PUBLISH_SCHEDULE, date(2025, 5, 7), CAL) == date(2025, 4, 26)


def test_results_carry_calendar_warnings() -> None:
    assert compute_deadline(DeadlineKind.RESOLVE_DENUNCIATION, date(2027, 3, 1), CAL).warnings[0].code == "no_notice"
    assert compute_deadline(DeadlineKind.RESOLVE_DENUNCIATION, date(2025, 3, 3), CAL).warnings == ()


def test_follow_up_classification() -> None:
    due = date(2025, 5, 8)
    assert classify_due(due, date(2025, 4, 22), CAL) is DueStatus.ON_TRACK
    assert classify_due(due, date(2025, 5, 5), CAL) is DueStatus.DUE_SOON
    assert classify_due(due, date(2025, 5, 8), CAL) is DueStatus.DUE_SOON
    assert classify_due(due, date(2025, 5, 9), CAL) is DueStatus.OVERDUE
    assert classify_due(due, date(2025, 5, 20), CAL, completed_on=date(2025, 5, 8)) is DueStatus.DONE_ON_TIME
    assert classify_due(due, date(2025, 5, 20), CAL, completed_on=date(2025, 5, 9)) is DueStatus.DONE_LATE
    # Over the holiday only working days count: from 29/4 the 8/5 deadline is 4 working days away.
    assert working_days_left(due, date(2025, 4, 29), CAL) == 4
    assert classify_due(due, date(2025, 4, 29), CAL, due_soon_working_days=4) is DueStatus.DUE_SOON
    assert is_overdue(due, date(2025, 5, 9)) and not is_overdue(due, date(2025, 5, 8))
    assert is_overdue(due, date(2025, 5, 1), completed_on=date(2025, 5, 9))
    with pytest.raises(DeadlineError):
        classify_due(due, date(2025, 5, 1), CAL, due_soon_working_days=-1)
