"""What a citizen may read without signing in: the status of a case by its tracking code (mã tra cứu).

:func:`public_status` answers only the status, the day the case was first received and the latest
deadline of its open directives — never a name, the content or an identity. A malformed code and an
unknown one raise the same :class:`~complaints.errors.NotFound` (no oracle for valid codes). It reads
only and writes nothing (the page's lookup budget per address is the console's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..cases import find_case_by_tracking_code
from ..enums import CaseStatus
from ..errors import InvalidTrackingCode, NotFound
from ..tables import directives, petitions, reception_entries
from ..workdays import local_date

__all__ = ["PublicStatus", "public_status"]


@dataclass(frozen=True)
class PublicStatus:
    status: CaseStatus
    received_on: date          # the first petition or reception; the day the case was opened otherwise
    deadline: date | None      # the latest deadline of a directive not yet done


async def public_status(conn: AsyncConnection, raw_code: str) -> PublicStatus:
    """The public facts of the case whose code a citizen typed (case, spaces and hyphens forgiven)."""
    try:
        case = await find_case_by_tracking_code(conn, raw_code)
    except InvalidTrackingCode as exc:
        raise NotFound("Không tìm thấy vụ việc với mã tra cứu này.") from exc
    received: date | None = (await conn.execute(select(func.coalesce(
        select(func.min(petitions.c.received_on)).where(petitions.c.case_id == case.id).scalar_subquery(),
        select(func.min(reception_entries.c.received_on))
        .where(reception_entries.c.case_id == case.id).scalar_subquery())))).scalar()
    deadline: date | None = (await conn.execute(
        select(func.max(directives.c.deadline)).where(directives.c.case_id == case.id,
                                                      directives.c.status != "done"))).scalar()
    return PublicStatus(status=case.status, received_on=received or local_date(case.created_at), deadline=deadline)
