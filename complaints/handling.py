"""Handling decisions (xử lý đơn, TT 05/2021): the direction chosen for a case or one of its petitions."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .enums import HandlingDirection
from .errors import InvalidInput, NotFound
from .tables import cases, handling_decisions, petitions
from .workdays import local_date

__all__ = ["record_handling_decision"]


async def record_handling_decision(
    conn: AsyncConnection,
    case_id: str,
    *,
    direction: HandlingDirection,
    decided_on: date,
    decided_by: str,
    now: datetime,
    petition_id: str | None = None,
    forwarded_to: str | None = None,
    notes: str = "",
) -> str:
    """Record a decision; a forward names the body it goes to. Returns the decision id."""
    if decided_on > local_date(now):
        raise InvalidInput("Ngày xử lý không được sau ngày hiện tại.", code="future_date", field="decided_on")
    if direction is HandlingDirection.FORWARD and not (forwarded_to or "").strip():
        raise InvalidInput("Chuyển đơn phải ghi cơ quan nhận đơn.", field="forwarded_to")
    if (await conn.execute(select(cases.c.id).where(cases.c.id == case_id))).first() is None:
        raise NotFound("Không tìm thấy vụ việc.")
    if petition_id is not None:
        owner = (await conn.execute(select(petitions.c.case_id).where(petitions.c.id == petition_id))).scalar()
        if owner != case_id:
            raise NotFound("Không tìm thấy đơn trong vụ việc này.")
    decision_id = str(uuid.uuid4())
    await conn.execute(handling_decisions.insert().values(
        id=decision_id, case_id=case_id, petition_id=petition_id, direction=direction.value, decided_on=decided_on,
        decided_by=decided_by, forwarded_to=forwarded_to, notes=notes,
    ))
    return decision_id
