"""Legal deadlines of citizen reception, complaints and denunciations (domain.md §4), as data.

Each :class:`DeadlineRule` states its amount in calendar days (``ngày``) or working days
(``ngày làm việc``), its remote-area variant (vùng sâu, vùng xa, đi lại khó khăn) where the law has one,
how far each extension reaches and how many extensions the law allows, and its legal source.

Counting (Bộ luật Dân sự 2015):

* Điều 147: the day of the event (``start``) is not counted; the period starts the next day.
* Điều 148 k5: when the last day of a period in calendar days is a weekly rest day or a holiday, the
  period ends at the end of the next working day. A period in working days always ends on a working
  day, so the move only concerns calendar-day rules.
* Rules that run *before* an event (publish the schedule ≥ 5 working days before the session) count
  backwards from the event and never move forwards.

``extensions`` means the legally allowed prolongations applied to the case: for a first complaint one
extension turns 30 into 45 days (complex case; remote 45 → 60); a denunciation takes up to two
extensions of 30 days; the initial handling of a denunciation goes from 7 to 10 working days when
verification at several places is needed. Asking for more extensions than the law allows is an error.
``remote`` has no effect on a rule without a remote variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .enums import LabelledEnum
from .errors import DeadlineError
from .workdays import CalendarWarning, WorkCalendar

__all__ = [
    "DEADLINE_RULES",
    "DeadlineKind",
    "DeadlineResult",
    "DeadlineRule",
    "DueStatus",
    "DurationUnit",
    "classify_due",
    "compute_deadline",
    "deadline",
    "is_overdue",
    "working_days_left",
]


class DurationUnit(LabelledEnum):
    """How a legal period is counted."""

    CALENDAR_DAYS = ("calendar_days", "ngày")
    WORKING_DAYS = ("working_days", "ngày làm việc")


class DeadlineKind(LabelledEnum):
    """The legal periods the system tracks."""

    PUBLISH_SCHEDULE = ("publish_schedule", "Thông báo lịch tiếp công dân")
    NOTIFY_RECEPTION_OUTCOME = ("notify_reception_outcome", "Thông báo kết quả xử lý việc tiếp công dân")
    REPORT_BACK_FORWARDED = ("report_back_forwarded", "Thông báo kết quả giải quyết cho cơ quan đã chuyển")
    NOTIFY_FORWARDED_RESULT = ("notify_forwarded_result", "Thông báo cho công dân kết quả vụ việc đã chuyển")
    HANDLE_PETITION = ("handle_petition", "Xử lý đơn")
    COMPLAINT_LIMITATION = ("complaint_limitation", "Thời hiệu khiếu nại")
    ACCEPT_FIRST_COMPLAINT = ("accept_first_complaint", "Thụ lý khiếu nại lần đầu")
    RESOLVE_FIRST_COMPLAINT = ("resolve_first_complaint", "Giải quyết khiếu nại lần đầu")
    SECOND_COMPLAINT_RIGHT = ("second_complaint_right", "Khiếu nại lần hai hoặc khởi kiện")
    ACCEPT_SECOND_COMPLAINT = ("accept_second_complaint", "Thụ lý khiếu nại lần hai")
    RESOLVE_SECOND_COMPLAINT = ("resolve_second_complaint", "Giải quyết khiếu nại lần hai")
    DENUNCIATION_INITIAL_HANDLING = ("denunciation_initial_handling", "Tiếp nhận, xử lý ban đầu tố cáo")
    DENUNCIATION_FORWARD = ("denunciation_forward", "Chuyển tố cáo không thuộc thẩm quyền")
    RESOLVE_DENUNCIATION = ("resolve_denunciation", "Giải quyết tố cáo")
    PUBLISH_DENUNCIATION_CONCLUSION = ("publish_denunciation_conclusion", "Công khai kết luận nội dung tố cáo")


@dataclass(frozen=True, slots=True)
class DeadlineRule:
    """One legal period. ``before_event`` rules end ``amount`` units before ``start`` instead of after."""

    kind: DeadlineKind
    amount: int
    unit: DurationUnit
    source_vi: str
    remote_amount: int | None = None
    extension_amount: int = 0
    remote_extension_amount: int | None = None
    max_extensions: int = 0
    before_event: bool = False
    note_vi: str = ""

    def total(self, *, remote: bool, extensions: int) -> int:
        """The length of the period in ``unit`` for the given variant; raises :class:`DeadlineError`."""
        if extensions < 0:
            raise DeadlineError("Số lần gia hạn không được âm.", code="negative_extensions")
        if extensions > self.max_extensions:
            allowed = "không được gia hạn" if self.max_extensions == 0 else f"gia hạn tối đa {self.max_extensions} lần"
            raise DeadlineError(
                f"{self.kind.label_vi}: {allowed} ({self.source_vi}); đã yêu cầu {extensions} lần.",
                code="too_many_extensions",
            )
        base = self.remote_amount if remote and self.remote_amount is not None else self.amount
        step = (
            self.remote_extension_amount
            if remote and self.remote_extension_amount is not None
            else self.extension_amount
        )
        return base + step * extensions


_CAL = DurationUnit.CALENDAR_DAYS
_WORK = DurationUnit.WORKING_DAYS

DEADLINE_RULES: dict[DeadlineKind, DeadlineRule] = {
    rule.kind: rule
    for rule in (
        DeadlineRule(DeadlineKind.PUBLISH_SCHEDULE, 5, _WORK, "Luật Tiếp công dân 2013, Điều 24 khoản 4",
                     before_event=True,
                     note_vi="Chậm nhất 05 ngày làm việc trước ngày tiếp công dân."),
        DeadlineRule(DeadlineKind.NOTIFY_RECEPTION_OUTCOME, 10, _WORK,
                     "Luật Tiếp công dân 2013, Điều 28 khoản 1"),
        DeadlineRule(DeadlineKind.REPORT_BACK_FORWARDED, 7, _WORK, "Luật Tiếp công dân 2013, Điều 27 khoản 2",
                     note_vi="Tính từ ngày giải quyết xong vụ việc được chuyển đến."),
        DeadlineRule(DeadlineKind.NOTIFY_FORWARDED_RESULT, 5, _WORK, "Luật Tiếp công dân 2013, Điều 28 khoản 2"),
        DeadlineRule(DeadlineKind.HANDLE_PETITION, 10, _WORK,
                     "Thông tư 05/2021/TT-TTCP (điều khoản chưa đối chiếu)"),
        DeadlineRule(DeadlineKind.COMPLAINT_LIMITATION, 90, _CAL, "Luật Khiếu nại 2011, Điều 9",
                     note_vi="Không tính thời gian ốm đau, thiên tai, địch họa, đi công tác, học tập ở nơi xa "
                     "hoặc trở ngại khách quan khác."),
        DeadlineRule(DeadlineKind.ACCEPT_FIRST_COMPLAINT, 10, _CAL, "Luật Khiếu nại 2011, Điều 27"),
        DeadlineRule(DeadlineKind.RESOLVE_FIRST_COMPLAINT, 30, _CAL, "Luật Khiếu nại 2011, Điều 28",
                     remote_amount=45, extension_amount=15, max_extensions=1,
                     note_vi="Vụ việc phức tạp: không quá 45 ngày; vùng sâu, vùng xa: 45 ngày, phức tạp 60 ngày."),
        DeadlineRule(DeadlineKind.SECOND_COMPLAINT_RIGHT, 30, _CAL, "Luật Khiếu nại 2011, Điều 33",
                     remote_amount=45),
        DeadlineRule(DeadlineKind.ACCEPT_SECOND_COMPLAINT, 10, _CAL, "Luật Khiếu nại 2011, Điều 36"),
        DeadlineRule(DeadlineKind.RESOLVE_SECOND_COMPLAINT, 45, _CAL, "Luật Khiếu nại 2011, Điều 37",
                     remote_amount=60, extension_amount=15, remote_extension_amount=10, max_extensions=1,
                     note_vi="Vụ việc phức tạp: không quá 60 ngày; vùng sâu, vùng xa: 60 ngày, phức tạp 70 ngày."),
        DeadlineRule(DeadlineKind.DENUNCIATION_INITIAL_HANDLING, 7, _WORK, "Luật Tố cáo 2018, Điều 24 khoản 1",
                     extension_amount=3, max_extensions=1,
                     note_vi="Cần kiểm tra, xác minh tại nhiều địa điểm: không quá 10 ngày làm việc."),
        DeadlineRule(DeadlineKind.DENUNCIATION_FORWARD, 5, _WORK, "Luật Tố cáo 2018, Điều 24 khoản 2"),
        DeadlineRule(DeadlineKind.RESOLVE_DENUNCIATION, 30, _CAL, "Luật Tố cáo 2018, Điều 30",
                     extension_amount=30, max_extensions=2,
                     note_vi="Phức tạp: gia hạn một lần không quá 30 ngày; đặc biệt phức tạp: hai lần, mỗi lần "
                     "không quá 30 ngày."),
        DeadlineRule(DeadlineKind.PUBLISH_DENUNCIATION_CONCLUSION, 7, _WORK, "Luật Tố cáo 2018, Điều 40"),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeadlineResult:
    """A computed deadline with how it was obtained.

    ``nominal`` is the last day before any move; ``due`` differs from it when the nominal day was not a
    working day (Bộ luật Dân sự 2015 Điều 148 k5). ``warnings`` come from the calendar data.
    """

    kind: DeadlineKind
    start: date
    due: date
    nominal: date
    rule: DeadlineRule
    length: int
    warnings: tuple[CalendarWarning, ...]

    @property
    def moved(self) -> bool:
        """True when the deadline moved off a day off."""
        return self.due != self.nominal


def compute_deadline(
    kind: DeadlineKind | str,
    start: date,
    calendar: WorkCalendar,
    *,
    remote: bool = False,
    extensions: int = 0,
) -> DeadlineResult:
    """Compute the deadline of ``kind`` for an event on ``start`` (see the module doc for counting)."""
    rule = DEADLINE_RULES[DeadlineKind.parse(kind)]
    length = rule.total(remote=remote, extensions=extensions)
    sign = -1 if rule.before_event else 1
    if rule.unit is DurationUnit.WORKING_DAYS:
        nominal = calendar.add_working_days(start, sign * length)
        due = nominal
    else:
        nominal = start + timedelta(days=sign * length)
        due = nominal if rule.before_event else calendar.next_working_day(nominal)
    return DeadlineResult(
        kind=rule.kind,
        start=start,
        due=due,
        nominal=nominal,
        rule=rule,
        length=length,
        warnings=calendar.warnings(min(start, due), max(start, due)),
    )


def deadline(
    kind: DeadlineKind | str,
    start: date,
    calendar: WorkCalendar,
    remote: bool = False,
    extensions: int = 0,
) -> date:
    """The due date of ``kind`` for an event on ``start`` (:func:`compute_deadline` without the detail)."""
    return compute_deadline(kind, start, calendar, remote=remote, extensions=extensions).due


class DueStatus(LabelledEnum):
    """Follow-up state of an item with a deadline (theo dõi, đôn đốc)."""

    DONE_ON_TIME = ("done_on_time", "Hoàn thành đúng hạn")
    DONE_LATE = ("done_late", "Hoàn thành quá hạn")
    ON_TRACK = ("on_track", "Trong hạn")
    DUE_SOON = ("due_soon", "Sắp đến hạn")
    OVERDUE = ("overdue", "Quá hạn")


def is_overdue(due: date, today: date, completed_on: date | None = None) -> bool:
    """True when the item was not completed by the end of ``due`` (as of ``today``)."""
    if completed_on is not None:
        return completed_on > due
    return today > due


def working_days_left(due: date, today: date, calendar: WorkCalendar) -> int:
    """Working days from after ``today`` up to and including ``due`` (negative once overdue)."""
    return calendar.working_days_between(today, due)


def classify_due(
    due: date,
    today: date,
    calendar: WorkCalendar,
    *,
    completed_on: date | None = None,
    due_soon_working_days: int = 3,
) -> DueStatus:
    """Classify an item: done (on time / late), overdue, due soon, or on track.

    Due soon means ``due`` is today or at most ``due_soon_working_days`` working days after ``today``.
    """
    if due_soon_working_days < 0:
        raise DeadlineError("Số ngày cảnh báo sắp đến hạn không được âm.", code="negative_threshold")
    if completed_on is not None:
        return DueStatus.DONE_LATE if completed_on > due else DueStatus.DONE_ON_TIME
    if today > due:
        return DueStatus.OVERDUE
    if working_days_left(due, today, calendar) <= due_soon_working_days:
        return DueStatus.DUE_SOON
    return DueStatus.ON_TRACK
