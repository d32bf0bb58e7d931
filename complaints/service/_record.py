"""What every service write does besides its change: the audit row and the event, in the caller's
transaction. Private to :mod:`complaints.service`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.events import CaseUpdated, Event
from signaling.outbox import add_to_outbox

from ..audit import append_audit
from ..cases import get_case
from ..errors import InvalidInput
from .caller import Caller


async def audit(conn: AsyncConnection, caller: Caller, action: str, case_id: str, *, now: datetime,
                detail: Mapping[str, Any] | None = None, target_kind: str = "case") -> None:
    """One audit row naming ids only (never a name or free text)."""
    await append_audit(conn, actor=caller.label, action=action, target_kind=target_kind, target_id=case_id,
                       detail=detail, at=now)


async def announce(conn: AsyncConnection, event: Event) -> None:
    await add_to_outbox(conn, event)


async def announce_confidential(conn: AsyncConnection, caller: Caller, case_id: str, *, was_confidential: bool,
                                now: datetime) -> None:
    """``CaseUpdated`` naming ``confidential`` when the write made the case confidential."""
    case = await get_case(conn, case_id)
    if was_confidential or not case.confidential:
        return
    await add_to_outbox(conn, CaseUpdated(
        case=case.id, by=caller.label, case_version=case.version, changed=("confidential",), kind=case.kind.value,
        status=case.status.value, subject_area=case.subject_area, confidential=True, occurred_at=now))


def not_after(day: date | None, today: date, field: str, what_vi: str) -> None:
    """Refuse a day that lies ahead of ``today`` (Vietnamese, naming today)."""
    if day is not None and day > today:
        raise InvalidInput(f"{what_vi} không được sau ngày hiện tại ({today:%d/%m/%Y}).", code="future_date",
                           field=field)
