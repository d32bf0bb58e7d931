"""Calendar rules of reception sessions: which days a leader receives citizens.

Theory of operation
-------------------
A *rule* produces *nominal* dates; each nominal date is then placed on the working-day calendar of
the complaint store (:class:`complaints.workdays.WorkCalendar`: weekends, the Labour Code holidays,
the official notices of each year with their swapped days, and administrator overrides).

* :class:`PeriodicRule` — an anchor in the month (:class:`DayOfMonth` "day 10", or
  :class:`NthWeekday` "the first Monday", "the last Friday") in a set of months.
  :meth:`PeriodicRule.quarterly` is the Provincial Party Secretary's online session of the brief: day 10
  of the last month of each quarter (March, June, September, December; domain.md §7.0 marks that
  practice UNVERIFIED, hence a rule and not a constant). :meth:`PeriodicRule.monthly` and
  :meth:`PeriodicRule.monthly_weekday` serve the monthly duties: the provincial Party Secretary and the
  provincial People's Committee chair receive citizens at least 1 day a month, a commune Party
  Secretary at least 2 days a month (Quy định 11-QĐi/TW as amended by Kết luận 215-KL/TW; LTCD Điều
  18 — domain.md R1, R2); provinces fix the day (e.g. "day 25 of each month").
* :class:`AdHocRule` — explicit dates of ad hoc (đột xuất) sessions.

A nominal date that is a day off moves to the next working day (:attr:`OnDayOff.NEXT_WORKING_DAY`,
the default of periodic rules; domain.md §3 step 1). Ad hoc dates default to
:attr:`OnDayOff.KEEP`: an urgent reception (LTCD Điều 18 k3) is held on the day the leader chose, and
the occurrence still says that the day is a day off. A move may leave the month (31/12/2028 is a
Sunday and 01/01/2029 a holiday: the session falls on 02/01/2029); :attr:`Occurrence.left_month`
says so, because the monthly duty counts the month the session is actually held in.

:func:`occurrences` lists the occurrences whose *actual* day lies in a date range (a nominal date
just before the range may move into it), with the calendar's warnings for those years (no official
notice yet, or unverified data): dates of a year without a notice follow the Labour Code rule and may
change when the Government publishes the year's days off. :func:`duty_shortfalls` counts the months
in which a leader held fewer reception days than the duty requires.

Everything here is pure: no clock, no I/O; the calendar is passed in.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from complaints.enums import LabelledEnum
from complaints.workdays import CalendarWarning, WorkCalendar

from .errors import InvalidRule, NoWorkingDay

__all__ = [
    "ALL_MONTHS",
    "COMMUNE_SECRETARY_DUTY",
    "PROVINCIAL_CHAIR_DUTY",
    "PROVINCIAL_SECRETARY_DUTY",
    "QUARTER_END_MONTHS",
    "AdHocRule",
    "DayOfMonth",
    "MonthShortfall",
    "MonthlyDuty",
    "NthWeekday",
    "Occurrence",
    "Occurrences",
    "OnDayOff",
    "PeriodicRule",
    "Rule",
    "WEEKDAY_NAMES_VI",
    "duty_shortfalls",
    "occurrences",
    "place_on_calendar",
]

ALL_MONTHS: frozenset[int] = frozenset(range(1, 13))
QUARTER_END_MONTHS: frozenset[int] = frozenset({3, 6, 9, 12})
WEEKDAY_NAMES_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")

#: A day off run longer than this (Tết is at most ~9 days with its weekends) means broken calendar data.
MAX_SHIFT_DAYS = 31


class OnDayOff(LabelledEnum):
    """What happens to a nominal date that is not a working day."""

    NEXT_WORKING_DAY = ("next_working_day", "Chuyển sang ngày làm việc kế tiếp")
    KEEP = ("keep", "Giữ nguyên ngày đã chọn")


@dataclass(frozen=True, slots=True)
class DayOfMonth:
    """Day ``day`` (1–31) of the month; in a shorter month, its last day (day 31 in June is 30/6)."""

    day: int

    def __post_init__(self) -> None:
        if not 1 <= self.day <= 31:
            raise InvalidRule("Ngày trong tháng phải từ 1 đến 31.", code="bad_day_of_month")

    def in_month(self, year: int, month: int) -> date:
        return date(year, month, min(self.day, _stdlib_calendar.monthrange(year, month)[1]))

    def describe_vi(self) -> str:
        return f"ngày {self.day}"


@dataclass(frozen=True, slots=True)
class NthWeekday:
    """The ``n``-th ``weekday`` of the month (``n`` 1–4, or -1 for the last); Monday is 0.

    A fifth weekday does not exist in every month, so it is not offered: a monthly duty must give a
    date every month.
    """

    n: int
    weekday: int

    def __post_init__(self) -> None:
        if self.n not in (1, 2, 3, 4, -1):
            raise InvalidRule("Thứ tự tuần phải là 1, 2, 3, 4 hoặc -1 (tuần cuối).", code="bad_week_index")
        if not 0 <= self.weekday <= 6:
            raise InvalidRule("Thứ trong tuần phải từ 0 (thứ Hai) đến 6 (Chủ nhật).", code="bad_weekday")

    def in_month(self, year: int, month: int) -> date:
        if self.n > 0:
            first = date(year, month, 1)
            offset = (self.weekday - first.weekday()) % 7
            return first + timedelta(days=offset + 7 * (self.n - 1))
        last = date(year, month, _stdlib_calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - self.weekday) % 7)

    def describe_vi(self) -> str:
        which = "cuối cùng" if self.n == -1 else f"thứ {self.n}"
        return f"{WEEKDAY_NAMES_VI[self.weekday]} {which}"


Anchor = DayOfMonth | NthWeekday


@dataclass(frozen=True, slots=True)
class PeriodicRule:
    """Sessions on ``anchor`` in each of ``months`` (1–12), moved off days off per ``on_day_off``."""

    anchor: Anchor
    months: frozenset[int] = ALL_MONTHS
    on_day_off: OnDayOff = OnDayOff.NEXT_WORKING_DAY
    label_vi: str = "Tiếp công dân định kỳ"

    def __post_init__(self) -> None:
        if not self.months or not self.months <= ALL_MONTHS:
            raise InvalidRule("Danh sách tháng phải gồm các tháng từ 1 đến 12.", code="bad_months")

    @classmethod
    def quarterly(
        cls, day: int = 10, *, label_vi: str = "Tiếp công dân định kỳ hằng quý (tháng cuối quý)"
    ) -> PeriodicRule:
        """Day ``day`` of the last month of each quarter (March, June, September, December)."""
        return cls(DayOfMonth(day), QUARTER_END_MONTHS, label_vi=label_vi)

    @classmethod
    def monthly(cls, day: int, *, label_vi: str = "Tiếp công dân định kỳ hằng tháng") -> PeriodicRule:
        """Day ``day`` of every month."""
        return cls(DayOfMonth(day), label_vi=label_vi)

    @classmethod
    def monthly_weekday(
        cls, n: int, weekday: int, *, label_vi: str = "Tiếp công dân định kỳ hằng tháng"
    ) -> PeriodicRule:
        """The ``n``-th ``weekday`` of every month (``n=-1``: the last)."""
        return cls(NthWeekday(n, weekday), label_vi=label_vi)

    def nominal_dates(self, start: date, end: date) -> Iterator[date]:
        """Nominal dates ``d`` with ``start <= d <= end``, in order."""
        year, month = start.year, start.month
        while (year, month) <= (end.year, end.month):
            if month in self.months:
                day = self.anchor.in_month(year, month)
                if start <= day <= end:
                    yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)


@dataclass(frozen=True, slots=True)
class AdHocRule:
    """Ad hoc (đột xuất) sessions on the given days."""

    days: tuple[date, ...]
    on_day_off: OnDayOff = OnDayOff.KEEP
    label_vi: str = "Tiếp công dân đột xuất"

    def nominal_dates(self, start: date, end: date) -> Iterator[date]:
        yield from sorted({d for d in self.days if start <= d <= end})


Rule = PeriodicRule | AdHocRule


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One session date of a rule: the nominal date, the day actually used, and the days passed over.

    ``passed_over`` holds each day off between ``nominal`` and ``day`` with its reason (holiday name,
    "Thứ Bảy", an official notice's wording). With :attr:`OnDayOff.KEEP`, ``day == nominal`` and
    ``day_off_reason`` says why that day is a day off, if it is one.
    """

    nominal: date
    day: date
    passed_over: tuple[tuple[date, str], ...] = ()
    day_off_reason: str | None = None

    @property
    def shifted(self) -> bool:
        return self.day != self.nominal

    @property
    def left_month(self) -> bool:
        """True when the move carried the session into another month than the nominal one."""
        return (self.day.year, self.day.month) != (self.nominal.year, self.nominal.month)

    def explain_vi(self) -> str:
        """A sentence for the schedule page, e.g. why 10/06/2028 became Thứ Hai 12/06/2028."""
        if self.day_off_reason is not None:
            return f"{_day_vi(self.day)} là ngày nghỉ ({self.day_off_reason}); giữ nguyên theo quyết định tổ chức."
        if not self.shifted:
            return f"{_day_vi(self.day)} là ngày làm việc; giữ nguyên."
        reasons = "; ".join(f"{d:%d/%m/%Y} là ngày nghỉ ({why})" for d, why in self.passed_over)
        return f"{reasons}; chuyển sang {_day_vi(self.day)}."


@dataclass(frozen=True, slots=True)
class Occurrences:
    """The occurrences of a rule in a range and the calendar warnings for the years they touch."""

    items: tuple[Occurrence, ...]
    warnings: tuple[CalendarWarning, ...] = ()

    @property
    def days(self) -> tuple[date, ...]:
        return tuple(o.day for o in self.items)


def _day_vi(day: date) -> str:
    return f"{WEEKDAY_NAMES_VI[day.weekday()]} {day:%d/%m/%Y}"


def place_on_calendar(nominal: date, calendar: WorkCalendar, on_day_off: OnDayOff) -> Occurrence:
    """Place one nominal date on ``calendar`` (see the module docstring)."""
    if on_day_off is OnDayOff.KEEP:
        return Occurrence(nominal=nominal, day=nominal, day_off_reason=calendar.day_off_reason_vi(nominal))
    passed: list[tuple[date, str]] = []
    day = nominal
    while not calendar.is_working_day(day):
        passed.append((day, calendar.day_off_reason_vi(day) or ""))
        if len(passed) > MAX_SHIFT_DAYS:
            raise NoWorkingDay(
                f"Không có ngày làm việc nào trong {MAX_SHIFT_DAYS} ngày kể từ {nominal:%d/%m/%Y}; "
                "kiểm tra lại lịch nghỉ đã khai báo.",
            )
        day += timedelta(days=1)
    return Occurrence(nominal=nominal, day=day, passed_over=tuple(passed))


def occurrences(rule: Rule, start: date, end: date, calendar: WorkCalendar) -> Occurrences:
    """The occurrences of ``rule`` whose actual day ``d`` satisfies ``start <= d <= end``, in order."""
    if end < start:
        raise InvalidRule("Ngày kết thúc khoảng thời gian phải không sớm hơn ngày bắt đầu.", code="bad_range")
    # A nominal date up to MAX_SHIFT_DAYS before ``start`` may move into the range.
    items = tuple(
        occurrence
        for nominal in rule.nominal_dates(start - timedelta(days=MAX_SHIFT_DAYS), end)
        if start <= (occurrence := place_on_calendar(nominal, calendar, rule.on_day_off)).day <= end
    )
    return Occurrences(items=items, warnings=calendar.warnings(start, end))


# -- the monthly duty (R1, R2) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthlyDuty:
    """At least ``days_per_month`` reception days each month, online and in person together."""

    days_per_month: int
    label_vi: str

    def __post_init__(self) -> None:
        if self.days_per_month < 1:
            raise InvalidRule("Số ngày tiếp công dân tối thiểu mỗi tháng phải từ 1 trở lên.", code="bad_duty")


PROVINCIAL_SECRETARY_DUTY = MonthlyDuty(
    1, "Bí thư Tỉnh ủy tiếp công dân ít nhất 1 ngày trong tháng (Quy định 11-QĐi/TW, Kết luận 215-KL/TW)"
)
PROVINCIAL_CHAIR_DUTY = MonthlyDuty(
    1, "Chủ tịch Ủy ban nhân dân tỉnh tiếp công dân ít nhất 1 ngày trong tháng (Luật Tiếp công dân, Điều 18)"
)
COMMUNE_SECRETARY_DUTY = MonthlyDuty(
    2, "Bí thư cấp ủy cấp xã tiếp công dân ít nhất 2 ngày trong tháng (Kết luận 215-KL/TW)"
)


@dataclass(frozen=True, slots=True)
class MonthShortfall:
    """A month in which fewer distinct reception days were held than the duty requires."""

    year: int
    month: int
    held: int
    required: int

    def message_vi(self) -> str:
        return f"Tháng {self.month:02d}/{self.year}: mới tiếp {self.held}/{self.required} ngày theo quy định."


def duty_shortfalls(
    duty: MonthlyDuty, held_days: Iterable[date], first_month: date, last_month: date
) -> tuple[MonthShortfall, ...]:
    """Months from ``first_month`` to ``last_month`` (inclusive; only year and month are read) with
    fewer distinct days in ``held_days`` than ``duty`` requires. Several sessions on one day count once.
    """
    if (last_month.year, last_month.month) < (first_month.year, first_month.month):
        raise InvalidRule("Tháng cuối phải không sớm hơn tháng đầu.", code="bad_range")
    per_month: dict[tuple[int, int], set[date]] = {}
    for day in held_days:
        per_month.setdefault((day.year, day.month), set()).add(day)
    found = []
    year, month = first_month.year, first_month.month
    while (year, month) <= (last_month.year, last_month.month):
        held = len(per_month.get((year, month), ()))
        if held < duty.days_per_month:
            found.append(MonthShortfall(year=year, month=month, held=held, required=duty.days_per_month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(found)
