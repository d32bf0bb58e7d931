"""Working-day calendar for state bodies in Vietnam.

Three layers decide whether a day is a working day, the first that speaks wins:

1. **Overrides** entered by an administrator (:class:`DayOverride`, fed by the admin UI later), e.g.
   a provincial decision or a notice published after this release.
2. **Official notices** of the year (:class:`YearNotice`): the Government's / ministry's notice of the
   days off, the compensatory days and the Saturdays swapped into working days for officials
   (cán bộ, công chức, viên chức). Loaded from ``data/official_notices.json`` by
   :func:`load_official_notices`; each entry carries its source and a ``verified`` flag.
3. **The rule**: Saturdays and Sundays are days off; public holidays of the Labour Code (Bộ luật Lao
   động 2019 Điều 112) come from the ``holidays`` package (Vietnam calendar: its Vietnamese lunisolar
   tables are computed for UTC+7, so Tết is 2007-02-17 and 2030-02-02 in Vietnam, not the Chinese dates).

When a year has no official notice the rule alone decides; :meth:`WorkCalendar.warnings` returns a
:class:`CalendarWarning` for such years (and for notices marked unverified) so the caller can show it.

Counting convention (Bộ luật Dân sự 2015 Điều 147): the day of the event is not counted; a period of
n working days ends on the n-th working day after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from .errors import CalendarError

__all__ = [
    "VIETNAM_TZ",
    "local_date",
    "CalendarWarning",
    "DayOverride",
    "WorkCalendar",
    "YearNotice",
    "default_calendar",
    "load_official_notices",
    "parse_official_notices",
]

#: the reception's clock: the days of the law (received, issued, reported, due) are days in Vietnam
VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local_date(moment: datetime) -> date:
    """The day in Vietnam of ``moment`` ("today" of a check is ``local_date(now)``, never ``now.date()``: between
    00:00 and 07:00 in Vietnam the UTC date is still yesterday's). A naive ``moment`` is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM_TZ).date()


_WEEKEND = frozenset({5, 6})  # Saturday, Sunday


@dataclass(frozen=True, slots=True)
class DayOverride:
    """One day declared a working day (``working=True``) or a day off (``working=False``).

    ``reason_vi`` is shown to people ("Nghỉ bù Giỗ Tổ Hùng Vương", "Làm bù cho thứ Sáu 02/5"),
    ``source`` names the document (number, date, issuer) and ``verified`` says whether its text
    was checked.
    """

    day: date
    working: bool
    reason_vi: str
    source: str = ""
    verified: bool = True


@dataclass(frozen=True, slots=True)
class YearNotice:
    """The official notice(s) on days off for one calendar year."""

    year: int
    source: str
    days: tuple[DayOverride, ...] = ()
    verified: bool = True
    note_vi: str = ""

    def __post_init__(self) -> None:
        for override in self.days:
            if override.day.year != self.year:
                raise CalendarError(
                    f"Thông báo nghỉ năm {self.year} chứa ngày {override.day:%d/%m/%Y} của năm khác.",
                    code="notice_wrong_year",
                )


@dataclass(frozen=True, slots=True)
class CalendarWarning:
    """Something the user should know about the calendar data used for a result."""

    code: str
    year: int
    message_vi: str


def parse_official_notices(document: Mapping[str, Any]) -> tuple[YearNotice, ...]:
    """Build notices from the JSON document format of ``data/official_notices.json``.

    Format: ``{"notices": [{"year", "source", "verified", "note_vi", "days": [{"date": "YYYY-MM-DD",
    "working": bool, "reason_vi", "source"?, "verified"?}]}]}``. Raises :class:`CalendarError`.
    """
    try:
        notices = []
        for entry in document["notices"]:
            notice_verified = bool(entry.get("verified", False))
            days = tuple(
                DayOverride(
                    day=date.fromisoformat(day["date"]),
                    working=bool(day["working"]),
                    reason_vi=str(day["reason_vi"]),
                    source=str(day.get("source", entry["source"])),
                    verified=bool(day.get("verified", notice_verified)),
                )
                for day in entry.get("days", ())
            )
            notices.append(
                YearNotice(
                    year=int(entry["year"]),
                    source=str(entry["source"]),
                    days=days,
                    verified=notice_verified,
                    note_vi=str(entry.get("note_vi", "")),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CalendarError):
            raise
        raise CalendarError(
            "Dữ liệu thông báo nghỉ lễ không đúng định dạng.", code="bad_notice_data"
        ) from exc
    return tuple(notices)


def load_official_notices() -> tuple[YearNotice, ...]:
    """The notices shipped with the package (``complaints/data/official_notices.json``)."""
    text = resources.files("complaints").joinpath("data/official_notices.json").read_text("utf-8")
    return parse_official_notices(json.loads(text))


@dataclass(frozen=True)
class WorkCalendar:
    """An immutable working-day calendar; edits return a new calendar.

    ``notices`` and ``overrides`` are keyed by year and by day. Holidays of the rule are computed on
    demand from the ``holidays`` package and cached per instance (deterministic, no I/O).
    """

    notices: Mapping[int, YearNotice] = field(default_factory=dict)
    overrides: Mapping[date, DayOverride] = field(default_factory=dict)
    _rule_cache: dict[int, dict[date, str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(
        cls, notices: Iterable[YearNotice] = (), overrides: Iterable[DayOverride] = ()
    ) -> WorkCalendar:
        """Build a calendar; two notices for one year or two overrides for one day are an error."""
        by_year: dict[int, YearNotice] = {}
        for notice in notices:
            if notice.year in by_year:
                raise CalendarError(f"Có hai thông báo nghỉ cho năm {notice.year}.", code="duplicate_notice")
            by_year[notice.year] = notice
        by_day: dict[date, DayOverride] = {}
        for override in overrides:
            if override.day in by_day:
                raise CalendarError(
                    f"Ngày {override.day:%d/%m/%Y} được điều chỉnh hai lần.", code="duplicate_override"
                )
            by_day[override.day] = override
        return cls(notices=by_year, overrides=by_day)

    # -- editing (the admin UI) ------------------------------------------------------------------

    def with_override(self, override: DayOverride) -> WorkCalendar:
        """A copy with ``override`` set for its day (replacing any earlier override of that day)."""
        overrides = dict(self.overrides)
        overrides[override.day] = override
        return replace(self, overrides=overrides)

    def without_override(self, day: date) -> WorkCalendar:
        """A copy without the override of ``day`` (unchanged if there is none)."""
        overrides = {d: o for d, o in self.overrides.items() if d != day}
        return replace(self, overrides=overrides)

    def with_notice(self, notice: YearNotice) -> WorkCalendar:
        """A copy with ``notice`` as the notice of its year (replacing an earlier one)."""
        notices = dict(self.notices)
        notices[notice.year] = notice
        return replace(self, notices=notices)

    # -- queries ---------------------------------------------------------------------------------

    def rule_holidays(self, year: int) -> Mapping[date, str]:
        """Public holidays of ``year`` by the rule (Vietnamese names), before notices and overrides."""
        cached = self._rule_cache.get(year)
        if cached is None:
            calendar = holidays.country_holidays("VN", years=year, language="vi")
            cached = {day: str(name) for day, name in sorted(calendar.items())}
            self._rule_cache[year] = cached
        return cached

    def _notice_override(self, day: date) -> DayOverride | None:
        notice = self.notices.get(day.year)
        if notice is None:
            return None
        for override in notice.days:
            if override.day == day:
                return override
        return None

    def is_working_day(self, day: date) -> bool:
        """True when state bodies work on ``day``."""
        override = self.overrides.get(day) or self._notice_override(day)
        if override is not None:
            return override.working
        if day.weekday() in _WEEKEND:
            return False
        return day not in self.rule_holidays(day.year)

    def day_off_reason_vi(self, day: date) -> str | None:
        """Why ``day`` is a day off (holiday name, notice reason, "Thứ Bảy"/"Chủ nhật"), or None."""
        if self.is_working_day(day):
            return None
        override = self.overrides.get(day) or self._notice_override(day)
        if override is not None:
            return override.reason_vi
        name = self.rule_holidays(day.year).get(day)
        if name is not None:
            return name
        return "Thứ Bảy" if day.weekday() == 5 else "Chủ nhật"

    def next_working_day(self, day: date) -> date:
        """``day`` itself when it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start`` (``start`` itself is not counted).

        ``count == 0`` returns ``start``; a negative ``count`` gives the ``-count``-th working day before
        ``start`` (e.g. the last day to publish a schedule 5 working days before a session).
        """
        step = 1 if count >= 0 else -1
        remaining = abs(count)
        day = start
        while remaining:
            day += timedelta(days=step)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days ``d`` with ``start < d <= end``; negative (mirrored) when ``end < start``.

        Inverse of :meth:`add_working_days`: ``working_days_between(s, add_working_days(s, n)) == n``
        for ``n >= 0``.
        """
        if end < start:
            return -self.working_days_between(end, start)
        total = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                total += 1
        return total

    def warnings(self, start: date, end: date | None = None) -> tuple[CalendarWarning, ...]:
        """Warnings for the years from ``start`` to ``end`` (inclusive): no notice, or unverified data."""
        last = end if end is not None and end >= start else start
        found: list[CalendarWarning] = []
        for year in range(min(start, last).year, max(start, last).year + 1):
            notice = self.notices.get(year)
            if notice is None:
                found.append(
                    CalendarWarning(
                        code="no_notice",
                        year=year,
                        message_vi=(
                            f"Chưa có thông báo lịch nghỉ lễ, Tết chính thức của năm {year}; ngày làm việc "
                            "được tính theo quy định chung (Bộ luật Lao động) và có thể thay đổi."
                        ),
                    )
                )
            elif not notice.verified or any(not d.verified for d in notice.days):
                found.append(
                    CalendarWarning(
                        code="unverified_notice",
                        year=year,
                        message_vi=(
                            f"Lịch nghỉ lễ, Tết năm {year} có mục chưa được đối chiếu với văn bản gốc; "
                            "cần kiểm tra lại."
                        ),
                    )
                )
        return tuple(found)


def default_calendar(overrides: Iterable[DayOverride] = ()) -> WorkCalendar:
    """The calendar with the shipped official notices and the given administrator overrides."""
    return WorkCalendar.build(load_official_notices(), overrides)
