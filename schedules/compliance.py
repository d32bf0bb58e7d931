"""The monthly duty of a leader, counted from the sessions held (domain.md R1, R2).

A provincial Party Secretary or People's Committee chair receives citizens at least 1 day a month, a
commune Party Secretary at least 2 (Quy định 11-QĐi/TW as amended by Kết luận 215-KL/TW; LTCD Điều
18). Every held session counts, in person and online alike (the quarterly online session alone does
not meet the duty). Held means closed: a session planned, published, postponed or cancelled, or still
under way, does not count. A leader counts the sessions they host and those they co-host; several
sessions on one day count as one reception day.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import ReceptionForm

from .calendar import MonthlyDuty
from .errors import InvalidRule
from .session_state import SessionState
from .tables import reception_sessions, session_cohosts

__all__ = ["MonthCompliance", "monthly_compliance"]


@dataclass(frozen=True, slots=True)
class MonthCompliance:
    """One month of one leader: reception days held, sessions by form, and the duty."""

    year: int
    month: int
    held_days: int
    sessions: int
    in_person: int
    online: int
    required: int

    @property
    def met(self) -> bool:
        return self.held_days >= self.required

    def message_vi(self) -> str:
        verdict = "đạt" if self.met else "chưa đạt"
        return (f"Tháng {self.month:02d}/{self.year}: {self.held_days}/{self.required} ngày tiếp công dân "
                f"({self.in_person} phiên trực tiếp, {self.online} phiên trực tuyến) — {verdict}.")


async def monthly_compliance(conn: AsyncConnection, *, leader: str, first_month: date, last_month: date,
                             duty: MonthlyDuty) -> tuple[MonthCompliance, ...]:
    """Each month from ``first_month`` to ``last_month`` (only year and month are read) for ``leader``."""
    if (last_month.year, last_month.month) < (first_month.year, first_month.month):
        raise InvalidRule("Tháng cuối phải không sớm hơn tháng đầu.", code="bad_range")
    start = date(first_month.year, first_month.month, 1)
    end = date(last_month.year, last_month.month, _stdlib_calendar.monthrange(last_month.year, last_month.month)[1])
    cohosted = select(session_cohosts.c.session_id).where(session_cohosts.c.leader == leader)
    rows = (await conn.execute(
        select(reception_sessions.c.day, reception_sessions.c.form)
        .where(reception_sessions.c.state == SessionState.CLOSED.value,
               reception_sessions.c.day >= start, reception_sessions.c.day <= end,
               (reception_sessions.c.host == leader) | reception_sessions.c.id.in_(cohosted)))).all()
    months: list[MonthCompliance] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        held = [(day, form) for day, form in rows if (day.year, day.month) == (year, month)]
        months.append(MonthCompliance(
            year=year, month=month, held_days=len({day for day, _ in held}), sessions=len(held),
            in_person=sum(1 for _, form in held if form == ReceptionForm.IN_PERSON.value),
            online=sum(1 for _, form in held if form == ReceptionForm.ONLINE.value),
            required=duty.days_per_month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(months)
