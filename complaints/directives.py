"""Directives (ý kiến chỉ đạo): the chair's instruction on a case to a unit with a deadline, the
unit's reports, and the follow-up view (theo dõi, đôn đốc: overdue, due soon, on track).

A deadline must be a working day of the calendar; one that falls on a day off is refused with the
next working day suggested, so nobody is handed an impossible date. It may not lie before the day of
the directive nor more than :data:`MAX_DEADLINE_DAYS` after it (a typo such as 2062 for 2026).
:func:`resolve_deadline` turns what an official asks for — a date, a number of working days, or a
legal period of :mod:`complaints.deadlines` — into that date.

The functions write no events: the caller puts ``DirectiveIssued`` / ``DirectiveReported`` into the
outbox in its transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .deadlines import DEADLINE_RULES, DeadlineKind, DueStatus, classify_due, compute_deadline
from .errors import DeadlineError, InvalidInput, NotFound, StaleVersion
from .tables import cases, directive_reports, directives, units
from .workdays import WorkCalendar, local_date

__all__ = ["add_unit", "active_units", "known_active_units",
           "issue_directive", "report_on_directive", "DirectiveView", "DirectiveRef", "follow_up",
           "get_directive", "resolve_deadline", "check_deadline", "directive_deadline_kinds", "MAX_DEADLINE_DAYS",
           "MAX_DEADLINE_WORKING_DAYS", "MAX_DIRECTIVE_CHARS"]

MAX_DEADLINE_DAYS = 366            # a directive's deadline lies within a year of the directive
MAX_DEADLINE_WORKING_DAYS = 250    # about a working year
MAX_DIRECTIVE_CHARS = 5000


def directive_deadline_kinds() -> list[DeadlineKind]:
    """The legal periods a directive's deadline may follow: those counted forwards from an event
    (a period that ends before its event, such as publishing the schedule, cannot)."""
    return [kind for kind, rule in DEADLINE_RULES.items() if not rule.before_event]


def resolve_deadline(
    issued_on: date,
    calendar: WorkCalendar,
    *,
    on: date | None = None,
    working_days: int | None = None,
    legal: DeadlineKind | None = None,
) -> date:
    """The deadline of a directive issued on ``issued_on``: the date ``on``, or ``working_days``
    working days later, or the due day of the legal period ``legal`` counted from ``issued_on``.
    Exactly one must be given. Raises :class:`DeadlineError` (Vietnamese) for anything else; the
    result still goes through the checks of :func:`issue_directive`."""
    given = [value for value in (on, working_days, legal) if value is not None]
    if len(given) != 1:
        raise DeadlineError("Hãy chọn đúng một cách đặt thời hạn: một ngày cụ thể, số ngày làm việc hoặc "
                            "thời hạn theo quy định.", code="deadline_choice")
    if on is not None:
        return on
    if working_days is not None:
        if not 1 <= working_days <= MAX_DEADLINE_WORKING_DAYS:
            raise DeadlineError(f"Số ngày làm việc phải từ 1 đến {MAX_DEADLINE_WORKING_DAYS}.",
                                code="deadline_working_days")
        return calendar.add_working_days(issued_on, working_days)
    assert legal is not None
    if DEADLINE_RULES[legal].before_event:
        raise DeadlineError(f"«{legal.label_vi}» là thời hạn tính ngược trước một sự kiện, không dùng làm thời "
                            "hạn chỉ đạo.", code="deadline_rule")
    return compute_deadline(legal, issued_on, calendar).due


async def add_unit(conn: AsyncConnection, unit_id: str, name: str, *, track: str, parent_id: str | None = None) -> None:
    if track not in ("party", "state"):
        raise ValueError("a unit is on the party or the state track")
    await conn.execute(units.insert().values(id=unit_id, name=name, track=track, parent_id=parent_id, active=True))


async def active_units(conn: AsyncConnection) -> list[tuple[str, str]]:
    """The units a directive may go to: (id, name) of every active unit, by name."""
    rows = await conn.execute(select(units.c.id, units.c.name).where(units.c.active).order_by(units.c.name))
    return [(row.id, row.name) for row in rows]


async def known_active_units(conn: AsyncConnection, unit_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``unit_ids`` that are active units (an unknown or retired unit is left out)."""
    chosen = set(unit_ids)
    if not chosen:
        return frozenset()
    return frozenset((await conn.execute(select(units.c.id).where(units.c.id.in_(chosen), units.c.active))).scalars())


def check_deadline(issued_on: date, deadline: date, calendar: WorkCalendar) -> None:
    """Refuse (:class:`DeadlineError`, Vietnamese) a deadline before the directive, more than
    :data:`MAX_DEADLINE_DAYS` after it, or on a day off (naming the next working day)."""
    if deadline < issued_on:
        raise DeadlineError("Thời hạn không được trước ngày chỉ đạo.", code="deadline_before_issue")
    if (deadline - issued_on).days > MAX_DEADLINE_DAYS:
        raise DeadlineError(f"Thời hạn {deadline:%d/%m/%Y} cách ngày chỉ đạo hơn {MAX_DEADLINE_DAYS} ngày; "
                            "hãy kiểm tra lại năm.", code="deadline_too_far")
    if not calendar.is_working_day(deadline):
        suggestion = calendar.next_working_day(deadline)
        reason = calendar.day_off_reason_vi(deadline) or "ngày nghỉ"
        raise DeadlineError(
            f"Thời hạn {deadline:%d/%m/%Y} rơi vào ngày không làm việc ({reason}); "
            f"ngày làm việc kế tiếp là {suggestion:%d/%m/%Y}.",
            code="deadline_on_day_off",
        )


async def issue_directive(
    conn: AsyncConnection,
    case_id: str,
    *,
    unit_id: str,
    content: str,
    issued_on: date,
    deadline: date,
    issued_by: str,
    calendar: WorkCalendar,
) -> str:
    """Record a directive; returns its id. Unknown case or unit (or an inactive unit): :class:`NotFound`."""
    content = content.strip()
    if not content:
        raise InvalidInput("Ý kiến chỉ đạo phải có nội dung.", field="content")
    if len(content) > MAX_DIRECTIVE_CHARS:
        raise InvalidInput(f"Nội dung chỉ đạo quá dài (tối đa {MAX_DIRECTIVE_CHARS} ký tự).", field="content")
    check_deadline(issued_on, deadline, calendar)
    if (await conn.execute(select(cases.c.id).where(cases.c.id == case_id))).first() is None:
        raise NotFound("Không tìm thấy vụ việc.")
    if not await known_active_units(conn, [unit_id]):
        raise NotFound("Không tìm thấy đơn vị được giao.")
    directive_id = str(uuid.uuid4())
    await conn.execute(directives.insert().values(
        id=directive_id, case_id=case_id, unit_id=unit_id, content=content, issued_on=issued_on,
        deadline=deadline, status="open", issued_by=issued_by, version=1,
    ))
    return directive_id


async def report_on_directive(
    conn: AsyncConnection,
    directive_id: str,
    *,
    expected_version: int,
    reported_on: date,
    content: str,
    reported_by: str,
    completed: bool,
    now: datetime,
) -> int:
    """A unit's report (báo cáo kết quả); ``completed`` closes the directive. Returns the new version."""
    if reported_on > local_date(now):
        raise InvalidInput("Ngày báo cáo không được sau ngày hiện tại.", code="future_date", field="reported_on")
    content = content.strip()
    if not content or len(content) > MAX_DIRECTIVE_CHARS:
        raise InvalidInput(f"Báo cáo kết quả phải có nội dung (tối đa {MAX_DIRECTIVE_CHARS} ký tự).", field="content")
    result = await conn.execute(
        update(directives).where(directives.c.id == directive_id, directives.c.version == expected_version)
        .values(version=directives.c.version + 1, status="done" if completed else "reported")
    )
    if result.rowcount != 1:
        exists = (await conn.execute(select(directives.c.id).where(directives.c.id == directive_id))).first()
        if exists is None:
            raise NotFound("Không tìm thấy ý kiến chỉ đạo.")
        raise StaleVersion("Ý kiến chỉ đạo đã được cập nhật bởi người khác. Hãy tải lại trước khi lưu.")
    await conn.execute(directive_reports.insert().values(
        id=str(uuid.uuid4()), directive_id=directive_id, reported_on=reported_on, content=content,
        reported_by=reported_by, completed=completed,
    ))
    return expected_version + 1


@dataclass(frozen=True)
class DirectiveRef:
    """Who a directive belongs to (for the grant check and the event of a report)."""

    id: str
    case_id: str
    unit_id: str
    version: int


async def get_directive(conn: AsyncConnection, directive_id: str) -> DirectiveRef:
    row = (await conn.execute(select(directives.c.id, directives.c.case_id, directives.c.unit_id,
                                     directives.c.version).where(directives.c.id == directive_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy ý kiến chỉ đạo.")
    return DirectiveRef(row.id, row.case_id, row.unit_id, row.version)


@dataclass(frozen=True)
class DirectiveView:
    id: str
    case_id: str
    tracking_code: str
    unit_id: str
    unit_name: str
    content: str
    deadline: date
    completed_on: date | None
    status: DueStatus
    version: int


async def follow_up(
    conn: AsyncConnection,
    *,
    today: date,
    calendar: WorkCalendar,
    unit_id: str | None = None,
    only: frozenset[DueStatus] | None = None,
    case_id: str | None = None,
) -> list[DirectiveView]:
    """Directives with their follow-up status as of ``today``, soonest deadline first."""
    query = (
        select(directives, cases.c.tracking_code, units.c.name.label("unit_name"))
        .join(cases, cases.c.id == directives.c.case_id)
        .join(units, units.c.id == directives.c.unit_id)
        .order_by(directives.c.deadline, directives.c.id)
    )
    if unit_id is not None:
        query = query.where(directives.c.unit_id == unit_id)
    if case_id is not None:
        query = query.where(directives.c.case_id == case_id)
    rows = (await conn.execute(query)).mappings().all()
    done_on: dict[str, date] = {}
    if rows:
        for did, day in await conn.execute(
            select(directive_reports.c.directive_id, directive_reports.c.reported_on)
            .where(directive_reports.c.completed, directive_reports.c.directive_id.in_([r["id"] for r in rows]))
        ):
            done_on[did] = min(day, done_on.get(did, day))
    views = []
    for r in rows:
        status = classify_due(r["deadline"], today, calendar, completed_on=done_on.get(r["id"]))
        if only is not None and status not in only:
            continue
        views.append(DirectiveView(
            id=r["id"], case_id=r["case_id"], tracking_code=r["tracking_code"], unit_id=r["unit_id"],
            unit_name=r["unit_name"], content=r["content"], deadline=r["deadline"], completed_on=done_on.get(r["id"]),
            status=status, version=r["version"],
        ))
    return views
