"""Directives (ý kiến chỉ đạo): the chair's instruction on a case to a unit with a deadline, the
unit's reports, and the follow-up view (theo dõi, đôn đốc: overdue, due soon, on track).

A deadline must be a working day of the calendar; one that falls on a day off is refused with the
next working day suggested, so nobody is handed an impossible date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .deadlines import DueStatus, classify_due
from .errors import DeadlineError, NotFound, StaleVersion
from .tables import cases, directive_reports, directives, units
from .workdays import WorkCalendar

__all__ = ["add_unit", "issue_directive", "report_on_directive", "DirectiveView", "follow_up"]


async def add_unit(conn: AsyncConnection, unit_id: str, name: str, *, track: str, parent_id: str | None = None) -> None:
    if track not in ("party", "state"):
        raise ValueError("a unit is on the party or the state track")
    await conn.execute(units.insert().values(id=unit_id, name=name, track=track, parent_id=parent_id, active=True))


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
    """Record a directive; returns its id."""
    if not content.strip():
        raise ValueError("a directive needs its content")
    if deadline < issued_on:
        raise DeadlineError("Thời hạn không được trước ngày chỉ đạo.", code="deadline_before_issue")
    if not calendar.is_working_day(deadline):
        suggestion = calendar.next_working_day(deadline)
        reason = calendar.day_off_reason_vi(deadline) or "ngày nghỉ"
        raise DeadlineError(
            f"Thời hạn {deadline:%d/%m/%Y} rơi vào ngày không làm việc ({reason}); "
            f"ngày làm việc kế tiếp là {suggestion:%d/%m/%Y}.",
            code="deadline_on_day_off",
        )
    if (await conn.execute(select(cases.c.id).where(cases.c.id == case_id))).first() is None:
        raise NotFound("Không tìm thấy vụ việc.")
    if (await conn.execute(select(units.c.id).where(units.c.id == unit_id, units.c.active))).first() is None:
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
    if reported_on > now.date():
        raise ValueError("the report date is in the future")
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
