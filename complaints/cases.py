"""Cases (vụ việc): creation with a tracking code, reads, optimistic-locked updates, reception entries.

Async functions on a caller's ``AsyncConnection`` inside the caller's transaction (the route or the
minutes writer owns the transaction, so a case and its outbox event commit together).

Optimistic locking: every case row has ``version``; :func:`update_case` changes it only when the
caller names the version it read, and raises :class:`StaleVersion` otherwise, so two officials
editing one case never silently overwrite each other.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import RowMapping, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .duplicates import fold_text
from .enums import CaseStatus, PetitionKind, ReceptionForm, ReceptionOutcome, ReceptionType
from .errors import NotFound, StaleVersion
from .search import refresh_search_document
from .tables import cases, reception_entries
from .tracking import generate_tracking_code, parse_tracking_code

__all__ = ["CaseRecord", "create_case", "get_case", "find_case_by_tracking_code", "update_case",
           "add_reception_entry", "EDITABLE_CASE_FIELDS"]

EDITABLE_CASE_FIELDS = frozenset(
    {"kind", "status", "subject_area", "summary", "novelty", "complex", "crowd", "confidential", "venue",
     "national_id"}
)


@dataclass(frozen=True)
class CaseRecord:
    id: str
    tracking_code: str
    kind: PetitionKind
    status: CaseStatus
    summary: str
    subject_area: str | None
    confidential: bool
    venue: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> CaseRecord:
        return cls(
            id=row["id"], tracking_code=row["tracking_code"], kind=PetitionKind.parse(row["kind"]),
            status=CaseStatus.parse(row["status"]), summary=row["summary"], subject_area=row["subject_area"],
            confidential=row["confidential"], venue=row["venue"], version=row["version"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )


async def create_case(
    conn: AsyncConnection,
    *,
    kind: PetitionKind,
    summary: str,
    now: datetime,
    venue: str | None = None,
    subject_area: str | None = None,
    confidential: bool = False,
    status: CaseStatus = CaseStatus.RECEIVED,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> CaseRecord:
    """Insert a case with a fresh tracking code (retried on the astronomically rare collision)."""
    for _attempt in range(5):
        code = generate_tracking_code(randbelow)
        values = {
            "id": str(uuid.uuid4()), "tracking_code": code, "kind": kind.value, "status": status.value,
            "subject_area": subject_area, "summary": summary, "summary_norm": fold_text(summary),
            "confidential": confidential or kind is PetitionKind.DENUNCIATION, "venue": venue, "version": 1,
            "created_at": now, "updated_at": now,
        }
        try:
            async with conn.begin_nested():
                await conn.execute(cases.insert().values(**values))
        except IntegrityError:
            continue
        await refresh_search_document(conn, str(values["id"]))
        return await get_case(conn, str(values["id"]))
    raise RuntimeError("could not draw a unique tracking code in 5 attempts")


async def get_case(conn: AsyncConnection, case_id: str) -> CaseRecord:
    row = (await conn.execute(select(cases).where(cases.c.id == case_id))).mappings().first()
    if row is None:
        raise NotFound("Không tìm thấy vụ việc.")
    return CaseRecord.from_row(row)


async def find_case_by_tracking_code(conn: AsyncConnection, raw_code: str) -> CaseRecord:
    """Look a case up by the code a citizen typed (case, spaces and hyphens forgiven)."""
    code = parse_tracking_code(raw_code)
    row = (await conn.execute(select(cases).where(cases.c.tracking_code == code))).mappings().first()
    if row is None:
        raise NotFound("Không tìm thấy vụ việc với mã tra cứu này.")
    return CaseRecord.from_row(row)


async def update_case(
    conn: AsyncConnection, case_id: str, *, expected_version: int, changes: Mapping[str, Any], now: datetime
) -> CaseRecord:
    """Apply ``changes`` when the case is still at ``expected_version``; bumps the version."""
    unknown = set(changes) - EDITABLE_CASE_FIELDS
    if unknown:
        raise ValueError(f"fields that cannot be edited: {sorted(unknown)}")
    values: dict[str, Any] = dict(changes)
    if "kind" in values:
        values["kind"] = PetitionKind.parse(values["kind"]).value
    if "status" in values:
        values["status"] = CaseStatus.parse(values["status"]).value
    if "summary" in values:
        values["summary_norm"] = fold_text(values["summary"])
    result = await conn.execute(
        update(cases)
        .where(cases.c.id == case_id, cases.c.version == expected_version)
        .values(**values, version=cases.c.version + 1, updated_at=now)
    )
    if result.rowcount != 1:
        current = (await conn.execute(select(cases.c.version).where(cases.c.id == case_id))).scalar()
        if current is None:
            raise NotFound("Không tìm thấy vụ việc.")
        raise StaleVersion(
            f"Vụ việc đã được người khác cập nhật (phiên bản {current}, bạn đang sửa phiên bản "
            f"{expected_version}). Hãy tải lại trước khi lưu."
        )
    if "summary" in values:
        await refresh_search_document(conn, case_id)
    return await get_case(conn, case_id)


async def add_reception_entry(
    conn: AsyncConnection,
    case_id: str,
    *,
    received_on: date,
    reception_type: ReceptionType,
    form: ReceptionForm,
    with_petition: bool,
    now: datetime,
    petitioner_id: str | None = None,
    delegation_id: str | None = None,
    session_id: str | None = None,
    host: str | None = None,
    venue: str | None = None,
    officer: str | None = None,
    outcome: ReceptionOutcome | None = None,
    notes: str = "",
) -> tuple[str, int]:
    """Record one reception (lượt tiếp) of the case; returns (id, n) where n is "lần tiếp thứ n".

    The case row is touched first (its version is bumped), which serialises concurrent entries of
    one case, so two desks can never both write "lần thứ 3".
    """
    if received_on > now.date():
        raise ValueError("the reception date is in the future")
    bumped = await conn.execute(update(cases).where(cases.c.id == case_id)
                                .values(version=cases.c.version + 1, updated_at=now))
    if bumped.rowcount != 1:
        raise NotFound("Không tìm thấy vụ việc.")
    nth = int((await conn.execute(
        select(func.count()).select_from(reception_entries).where(reception_entries.c.case_id == case_id)
    )).scalar_one()) + 1
    entry_id = str(uuid.uuid4())
    await conn.execute(reception_entries.insert().values(
        id=entry_id, case_id=case_id, petitioner_id=petitioner_id, delegation_id=delegation_id,
        received_on=received_on, session_id=session_id, reception_type=reception_type.value, form=form.value,
        host=host, venue=venue, officer=officer, nth=nth, with_petition=with_petition,
        outcome=outcome.value if outcome else None, notes=notes, created_at=now,
    ))
    return entry_id, nth
