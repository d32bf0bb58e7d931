"""Working-day calendar: Vietnamese lunar holidays, official notices, overrides, counting."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from complaints.errors import CalendarError
from complaints.workdays import (
    DayOverride,
    WorkCalendar,
    YearNotice,
    default_calendar,
    load_official_notices,
    parse_official_notices,
)

pytestmark = pytest.mark.unit
CAL = default_calendar()
RULE_ONLY = WorkCalendar()


@pytest.mark.parametrize("tet", [date(2007, 2, 17), date(2030, 2, 2)])
def test_tet_follows_the_vietnamese_lunar_calendar_not_the_chinese_one(tet: date) -> None:
    names = RULE_ONLY.rule_holidays(tet.year)
    assert names[tet] == "Tết Nguyên Đán"
    # In China the new year falls one day later (2007-02-18, 2030-02-03): there it is only "mùng hai".
    assert names[tet + timedelta(days=1)] != "Tết Nguyên Đán"


def test_fixed_holidays_and_weekends_are_days_off() -> None:
    for day in (date(2025, 1, 1), date(2025, 4, 30), date(2025, 5, 1), date(2025, 9, 2), date(2025, 4, 7)):
        assert not CAL.is_working_day(day), day
    assert not CAL.is_working_day(date(2025, 3, 8))  # Saturday
    assert CAL.is_working_day(date(2025, 3, 10))
    assert CAL.day_off_reason_vi(date(2025, 3, 9)) == "Chủ nhật"
    assert CAL.day_off_reason_vi(date(2025, 3, 10)) is None


def test_official_notice_swaps_a_saturday_into_a_working_day() -> None:
    assert CAL.is_working_day(date(2025, 4, 26))  # Saturday, làm bù
    assert not CAL.is_working_day(date(2025, 5, 2))  # Friday, nghỉ hoán đổi
    assert CAL.is_working_day(date(2024, 5, 4))
    assert "hoán đổi" in (CAL.day_off_reason_vi(date(2024, 4, 29)) or "")


def test_shipped_notices_cover_2024_to_2026_and_name_their_sources() -> None:
    notices = {n.year: n for n in load_official_notices()}
    assert set(notices) >= {2024, 2025, 2026}
    for notice in notices.values():
        assert notice.source and all(day.source for day in notice.days)


def test_years_without_a_notice_and_unverified_notices_give_warnings() -> None:
    assert CAL.warnings(date(2025, 3, 1), date(2025, 6, 1)) == ()
    codes = {(w.year, w.code) for w in CAL.warnings(date(2026, 12, 1), date(2027, 2, 1))}
    assert codes == {(2026, "unverified_notice"), (2027, "no_notice")}
    assert "2027" in CAL.warnings(date(2027, 1, 1))[0].message_vi


def test_admin_override_wins_and_can_be_removed() -> None:
    day = date(2025, 6, 10)
    closed = CAL.with_override(DayOverride(day, working=False, reason_vi="Nghỉ theo quyết định của tỉnh"))
    assert not closed.is_working_day(day) and CAL.is_working_day(day)
    assert closed.day_off_reason_vi(day) == "Nghỉ theo quyết định của tỉnh"
    assert closed.without_override(day).is_working_day(day)
    opened = CAL.with_override(DayOverride(date(2025, 5, 2), working=True, reason_vi="Trực"))
    assert opened.is_working_day(date(2025, 5, 2))


def test_counting_working_days_skips_holidays_and_weekends() -> None:
    # Friday 25/4/2025 + 3: Sat 26 (làm bù), Mon 28, Tue 29.
    assert CAL.add_working_days(date(2025, 4, 25), 3) == date(2025, 4, 29)
    # Tue 29/4 + 1 jumps the 30/4–4/5 break to Monday 5/5.
    assert CAL.add_working_days(date(2025, 4, 29), 1) == date(2025, 5, 5)
    assert CAL.add_working_days(date(2025, 5, 5), -1) == date(2025, 4, 29)
    assert CAL.add_working_days(date(2025, 5, 3), 0) == date(2025, 5, 3)
    assert CAL.working_days_between(date(2025, 4, 29), date(2025, 5, 5)) == 1
    assert CAL.working_days_between(date(2025, 5, 5), date(2025, 4, 29)) == -1
    assert CAL.next_working_day(date(2025, 4, 30)) == date(2025, 5, 5)


def test_bad_notice_data_is_rejected() -> None:
    with pytest.raises(CalendarError):
        parse_official_notices({"notices": [{"year": 2025}]})
    with pytest.raises(CalendarError):
        YearNotice(2025, "x", (DayOverride(date(2024, 1, 2), False, "x"),))
    with pytest.raises(CalendarError):
        WorkCalendar.build([YearNotice(2025, "a"), YearNotice(2025, "b")])


days = st.dates(min_value=date(2023, 1, 1), max_value=date(2027, 12, 31))


@given(days, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_add_working_days_is_monotonic_and_inverted_by_counting(start: date, n: int, m: int) -> None:
    low, high = sorted((n, m))
    assert CAL.add_working_days(start, low) <= CAL.add_working_days(start, high)
    end = CAL.add_working_days(start, n)
    assert CAL.working_days_between(start, end) == n
    if n:
        assert CAL.is_working_day(end)
        assert CAL.add_working_days(end, -n) <= start
