"""Directives (ý kiến chỉ đạo): issuing one to a unit with a deadline, and a unit's report on it.

* :func:`issue_directive` — for a caller who may issue directives (``DIRECTIVE_GRANTS`` and not a
  unit's officer: a unit reports, it does not direct). The deadline is a date, a number of working
  days after the day of the directive, or a legal period (:func:`complaints.directives.resolve_deadline`),
  then checked (a working day, not before the directive, within a year). The day of the directive may
  not lie ahead. Announced with ``DirectiveIssued``; the issuer recorded is the caller's name.
* :func:`report_on_directive` — ``directives`` grant; a unit's officer reports on the unit's own
  directives only (another unit's is "not found", as for cases). Optimistic locking on the
  directive's version; ``completed`` closes it. Announced with ``DirectiveReported``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.events import DirectiveIssued, DirectiveReported

from .. import directives as _directives
from ..deadlines import DeadlineKind
from ..errors import NotAuthorized, NotFound
from ..workdays import WorkCalendar, local_date
from ._record import announce, audit, not_after
from .caller import DIRECTIVE_GRANTS, Caller, require

__all__ = ["issue_directive", "report_on_directive"]


async def issue_directive(
    conn: AsyncConnection, caller: Caller, case_id: str, *, unit_id: str, content: str, issued_on: date,
    calendar: WorkCalendar, now: datetime, deadline: date | None = None, working_days: int | None = None,
    legal: DeadlineKind | None = None,
) -> tuple[str, date]:
    """Issue a directive (exactly one of ``deadline``, ``working_days``, ``legal``); returns its id and
    its deadline."""
    require(caller, DIRECTIVE_GRANTS)
    if not caller.may_issue_directives:
        raise NotAuthorized("Đơn vị được giao báo cáo kết quả, không giao ý kiến chỉ đạo.")
    not_after(issued_on, local_date(now), "issued_on", "Ngày chỉ đạo")
    due = _directives.resolve_deadline(issued_on, calendar, on=deadline, working_days=working_days, legal=legal)
    directive_id = await _directives.issue_directive(conn, case_id, unit_id=unit_id, content=content,
                                                     issued_on=issued_on, deadline=due, issued_by=caller.name,
                                                     calendar=calendar)
    await audit(conn, caller, "case.directive", case_id, now=now,
                detail={"directive": directive_id, "unit": unit_id, "deadline": due.isoformat()})
    await announce(conn, DirectiveIssued(case=case_id, by=caller.label, directive=directive_id, unit=unit_id,
                                         issued_on=issued_on, deadline=due, occurred_at=now))
    return directive_id, due


async def report_on_directive(
    conn: AsyncConnection, caller: Caller, directive_id: str, *, expected_version: int, reported_on: date,
    content: str, completed: bool, now: datetime,
) -> int:
    """A unit's report on its directive; returns the directive's new version."""
    require(caller, DIRECTIVE_GRANTS)
    not_after(reported_on, local_date(now), "reported_on", "Ngày báo cáo")
    ref = await _directives.get_directive(conn, directive_id)
    if caller.unit_scope is not None and ref.unit_id != caller.unit_scope:
        raise NotFound("Không tìm thấy ý kiến chỉ đạo.")
    version = await _directives.report_on_directive(conn, directive_id, expected_version=expected_version,
                                                    reported_on=reported_on, content=content,
                                                    reported_by=caller.name, completed=completed, now=now)
    await audit(conn, caller, "case.directive_report", ref.case_id, now=now,
                detail={"directive": directive_id, "version": version, "completed": completed})
    await announce(conn, DirectiveReported(
        case=ref.case_id, by=caller.label, directive=directive_id, unit=ref.unit_id, directive_version=version,
        reported_on=reported_on, completed=completed, occurred_at=now))
    return version
