"""Calendar rules: the Secretary's quarterly sessions of 2027–2028, monthly rules, moves past holidays."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from complaints.workdays import DayOverride, WorkCalendar, default_calendar
from schedules.calendar import (
    COMMUNE_SECRETARY_DUTY,
    PROVINCIAL_SECRETARY_DUTY,
    AdHocRule,
    DayOfMonth,
    MonthShortfall,
    NthWeekday,
    OnDayOff,
    PeriodicRule,
    duty_shortfalls,
    occurrences,
)
from schedules.errors import InvalidRule, NoWorkingDay

pytestmark = pytest.mark.unit
CAL = default_calendar()
QUARTERLY = PeriodicRule.quarterly()

# Worked by hand. 1/1/2027 is a Friday; 2027 has 365 days, so 1/1/2028 is a Saturday (2028 is a leap year).
# Weekday of day-of-year n = weekday of 1/1 advanced by (n - 1) mod 7. Neither year has an official notice
# of days off yet, so the Labour Code rule decides (Bộ luật Lao động 2019 Điều 112): fixed holidays 1/1,
# 30/4, 1/5, 2/9 (+ one adjacent day), Tết and Giỗ Tổ by the lunar calendar, and a compensatory day when a
# holiday falls on a weekend. None of these touches the 10th of March, June, September or December.
QUARTERLY_2027_2028 = [
    # 10/3/2027: day 69, 68 mod 7 = 5 → Friday + 5 = Wednesday → a working day, stays.
    (date(2027, 3, 10), date(2027, 3, 10)),
    # 10/6/2027: day 161, 160 mod 7 = 6 → Thursday → stays.
    (date(2027, 6, 10), date(2027, 6, 10)),
    # 10/9/2027: day 253, 252 mod 7 = 0 → Friday → stays (Quốc khánh is 2–3/9, a week earlier).
    (date(2027, 9, 10), date(2027, 9, 10)),
    # 10/12/2027: day 344, 343 mod 7 = 0 → Friday → stays.
    (date(2027, 12, 10), date(2027, 12, 10)),
    # 10/3/2028: day 70 (leap year), 69 mod 7 = 6 → Saturday + 6 = Friday → stays.
    (date(2028, 3, 10), date(2028, 3, 10)),
    # 10/6/2028: day 162, 161 mod 7 = 0 → Saturday; 11/6 Sunday → Monday 12/6/2028 (no holiday in June).
    (date(2028, 6, 10), date(2028, 6, 12)),
    # 10/9/2028: day 254, 253 mod 7 = 1 → Sunday → Monday 11/9/2028 (the Quốc khánh make-up day is 4/9).
    (date(2028, 9, 10), date(2028, 9, 11)),
    # 10/12/2028: day 345, 344 mod 7 = 1 → Sunday → Monday 11/12/2028.
    (date(2028, 12, 10), date(2028, 12, 11)),
]


def test_quarterly_sessions_of_2027_and_2028_fall_on_these_days() -> None:
    result = occurrences(QUARTERLY, date(2027, 1, 1), date(2028, 12, 31), CAL)
    assert [(o.nominal, o.day) for o in result.items] == QUARTERLY_2027_2028
    assert [o.shifted for o in result.items] == [False] * 5 + [True] * 3


def test_the_weekday_worked_by_hand_matches_the_calendar() -> None:
    # The hand computation above, checked against the standard library's calendar.
    names = {0: "Monday", 2: "Wednesday", 3: "Thursday", 4: "Friday", 5: "Saturday", 6: "Sunday"}
    nominal_weekdays = [names[nominal.weekday()] for nominal, _ in QUARTERLY_2027_2028]
    assert nominal_weekdays == ["Wednesday", "Thursday", "Friday", "Friday", "Friday", "Saturday", "Sunday", "Sunday"]
    assert all(day.weekday() == 0 for nominal, day in QUARTERLY_2027_2028 if nominal != day)


def test_dates_of_years_without_an_official_notice_come_with_a_warning() -> None:
    result = occurrences(QUARTERLY, date(2027, 1, 1), date(2028, 12, 31), CAL)
    assert {(w.year, w.code) for w in result.warnings} == {(2027, "no_notice"), (2028, "no_notice")}
    assert occurrences(QUARTERLY, date(2025, 1, 1), date(2025, 12, 31), CAL).warnings == ()


def test_a_moved_session_explains_why_in_vietnamese() -> None:
    (june,) = occurrences(QUARTERLY, date(2028, 6, 1), date(2028, 6, 30), CAL).items
    assert june.passed_over == ((date(2028, 6, 10), "Thứ Bảy"), (date(2028, 6, 11), "Chủ nhật"))
    assert june.explain_vi() == (
        "10/06/2028 là ngày nghỉ (Thứ Bảy); 11/06/2028 là ngày nghỉ (Chủ nhật); chuyển sang Thứ Hai 12/06/2028."
    )
    (march,) = occurrences(QUARTERLY, date(2027, 3, 1), date(2027, 3, 31), CAL).items
    assert march.explain_vi() == "Thứ Tư 10/03/2027 là ngày làm việc; giữ nguyên."


def test_a_monthly_date_moves_past_a_run_of_holidays_and_the_weekend_between_them() -> None:
    # 30/4/2027 Friday (Ngày Chiến thắng), 1/5 Saturday (Quốc tế Lao động), 2/5 Sunday, 3/5 Monday
    # (compensatory day for 1/5 falling on a Saturday) → Tuesday 4/5/2027, in the next month.
    rule = PeriodicRule.monthly(30)
    (april, may) = occurrences(rule, date(2027, 4, 1), date(2027, 5, 31), CAL).items
    assert (april.nominal, april.day) == (date(2027, 4, 30), date(2027, 5, 4))
    assert [d for d, _ in april.passed_over] == [date(2027, 4, 30) + timedelta(days=i) for i in range(4)]
    assert april.left_month
    # 30/5/2027 is a Sunday → Monday 31/5/2027.
    assert (may.nominal, may.day, may.left_month) == (date(2027, 5, 30), date(2027, 5, 31), False)


@pytest.mark.parametrize(
    ("rule", "nominal", "expected"),
    [
        # Tết 2027: 29 Tết (4/2) to mùng 5 (10/2) are days off by the rule → Thursday 11/2/2027.
        (PeriodicRule.monthly(10), date(2027, 2, 10), date(2027, 2, 11)),
        # "Day 25 each month" (Bắc Kạn's practice): 25/1/2028 is giao thừa; Tết to mùng 4 (29/1, a Saturday),
        # then Sunday 30/1 → Monday 31/1/2028.
        (PeriodicRule.monthly(25), date(2028, 1, 25), date(2028, 1, 31)),
        # First Monday of September 2028 is 4/9, the make-up day for Quốc khánh 2/9 (a Saturday) → 5/9.
        (PeriodicRule.monthly_weekday(1, 0), date(2028, 9, 4), date(2028, 9, 5)),
        # Last Friday of December 2027 is 31/12/2027, a working day.
        (PeriodicRule.monthly_weekday(-1, 4), date(2027, 12, 31), date(2027, 12, 31)),
        # Day 31 in June is the last day of June: Wednesday 30/6/2027.
        (PeriodicRule.monthly(31), date(2027, 6, 30), date(2027, 6, 30)),
    ],
)
def test_monthly_rules(rule: PeriodicRule, nominal: date, expected: date) -> None:
    month_start = nominal.replace(day=1)
    (only,) = occurrences(rule, month_start, month_start + timedelta(days=40), CAL).items[:1]
    assert (only.nominal, only.day) == (nominal, expected)


def test_a_nominal_date_before_the_range_that_moves_into_it_is_listed() -> None:
    # 31/12/2028 is a Sunday and 1/1/2029 Tết Dương lịch → Tuesday 2/1/2029.
    rule = PeriodicRule.monthly(31)
    assert occurrences(rule, date(2028, 12, 1), date(2028, 12, 31), CAL).days == ()
    january = occurrences(rule, date(2029, 1, 1), date(2029, 1, 31), CAL)
    assert january.days == (date(2029, 1, 2), date(2029, 1, 31))
    assert january.items[0].nominal == date(2028, 12, 31) and january.items[0].left_month


def test_official_notices_and_administrator_overrides_are_followed() -> None:
    # The 2025 notice made Saturday 26/4/2025 a working day (làm bù for Friday 2/5/2025).
    (saturday,) = occurrences(PeriodicRule.monthly(26), date(2025, 4, 1), date(2025, 4, 30), CAL).items
    assert saturday.day == date(2025, 4, 26) and not saturday.shifted
    # A province declares 10/3/2027 a day off: the session moves to Thursday 11/3/2027.
    closed = CAL.with_override(DayOverride(date(2027, 3, 10), False, "Nghỉ theo quyết định của tỉnh"))
    (march,) = occurrences(QUARTERLY, date(2027, 3, 1), date(2027, 3, 31), closed).items
    assert march.day == date(2027, 3, 11)
    assert march.passed_over == ((date(2027, 3, 10), "Nghỉ theo quyết định của tỉnh"),)


def test_ad_hoc_sessions_keep_their_day_and_say_when_it_is_a_day_off() -> None:
    rule = AdHocRule((date(2027, 9, 2), date(2027, 7, 15), date(2027, 9, 2)))
    result = occurrences(rule, date(2027, 1, 1), date(2027, 12, 31), CAL)
    assert result.days == (date(2027, 7, 15), date(2027, 9, 2))
    assert result.items[0].day_off_reason is None
    assert result.items[1].day_off_reason == "Quốc khánh"
    assert "ngày nghỉ (Quốc khánh)" in result.items[1].explain_vi()
    moved = occurrences(
        AdHocRule((date(2027, 9, 2),), on_day_off=OnDayOff.NEXT_WORKING_DAY), date(2027, 9, 1), date(2027, 9, 30), CAL
    )
    assert moved.days == (date(2027, 9, 6),)  # 2/9 Thu and 3/9 Fri Quốc khánh, then the weekend


def test_a_quarterly_only_schedule_does_not_meet_the_monthly_duty() -> None:
    held = occurrences(QUARTERLY, date(2027, 1, 1), date(2027, 12, 31), CAL).days
    short = duty_shortfalls(PROVINCIAL_SECRETARY_DUTY, held, date(2027, 1, 1), date(2027, 12, 1))
    assert [s.month for s in short] == [1, 2, 4, 5, 7, 8, 10, 11]
    assert short[0] == MonthShortfall(year=2027, month=1, held=0, required=1)
    assert short[0].message_vi() == "Tháng 01/2027: mới tiếp 0/1 ngày theo quy định."


def test_the_duty_counts_the_month_a_moved_session_is_held_in_and_each_day_once() -> None:
    monthly = occurrences(PeriodicRule.monthly(30), date(2027, 1, 1), date(2027, 12, 31), CAL).days
    # A month-end rule leaves its month whenever the end is a day off: 30/1/2027 (Saturday) is held on
    # 1/2, 28/2 (Sunday; February has no 30th) on 1/3, 30/4 on 4/5, 30/10 (Saturday) on 1/11. January,
    # April and October have no session; February, March, May and November have two.
    assert date(2027, 2, 1) in monthly and date(2027, 3, 1) in monthly and date(2027, 11, 1) in monthly
    short = duty_shortfalls(PROVINCIAL_SECRETARY_DUTY, monthly, date(2027, 1, 1), date(2027, 12, 1))
    assert [(s.year, s.month) for s in short] == [(2027, 1), (2027, 4), (2027, 10)]
    commune = duty_shortfalls(COMMUNE_SECRETARY_DUTY, [date(2027, 5, 4)] * 3, date(2027, 5, 1), date(2027, 5, 31))
    assert commune == (MonthShortfall(year=2027, month=5, held=1, required=2),)


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(InvalidRule) as day0:
        DayOfMonth(0)
    assert day0.value.code == "bad_day_of_month"
    with pytest.raises(InvalidRule):
        NthWeekday(5, 0)
    with pytest.raises(InvalidRule):
        NthWeekday(1, 7)
    with pytest.raises(InvalidRule):
        PeriodicRule(DayOfMonth(1), frozenset({13}))
    with pytest.raises(InvalidRule):
        PeriodicRule(DayOfMonth(1), frozenset())
    with pytest.raises(InvalidRule) as bad_range:
        occurrences(QUARTERLY, date(2027, 2, 1), date(2027, 1, 1), CAL)
    assert bad_range.value.code == "bad_range"


def test_a_calendar_with_no_working_day_ahead_is_an_error_not_a_hang() -> None:
    closed = WorkCalendar.build(
        overrides=[DayOverride(date(2027, 3, 1) + timedelta(days=i), False, "Nghỉ") for i in range(60)]
    )
    with pytest.raises(NoWorkingDay):
        occurrences(QUARTERLY, date(2027, 3, 1), date(2027, 3, 31), closed)
