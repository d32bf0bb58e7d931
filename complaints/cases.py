"""Cases (vụ việc): creation with a tracking code, reads, optimistic-locked updates, reception entries.

Async functions on a caller's ``AsyncConnection`` inside the caller's transaction (the route or the
minutes writer owns the transaction, so a case and its outbox event commit together).

Optimistic locking: every case row has ``version``; :func:`update_case` changes it only when the
caller names the version it read, and raises :class:`StaleVersion` otherwise, so two officials
editing one case never silently overwrite each other. Values equal to the stored ones are not
changes: an edit that changes nothing keeps the version (and announces nothing).

Confidentiality (:mod:`complaints.confidentiality`): an edit that makes a case a denunciation, or
marks it confidential, seals its parties at once, and a reception entry of a petitioner goes through
the same rule; neither needs a grant for that (sealing protects, it discloses nothing).

The functions here write no events: the caller that owns the transaction puts the matching event
(``signaling.events.CaseCreated``, ``CaseUpdated``…) into the outbox in the same transaction.
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

from evidence import Keyring

from .confidentiality import enforce_confidentiality
from .duplicates import fold_text
from .enums import (
    CaseNovelty,
    CaseStatus,
    LabelledEnum,
    PetitionKind,
    ReceptionForm,
    ReceptionOutcome,
    ReceptionType,
    SubjectArea,
)
from .errors import InvalidInput, NotFound, StaleVersion
from .search import refresh_search_document
from .tables import cases, reception_entries
from .tracking import generate_tracking_code, parse_tracking_code
from .workdays import local_date

__all__ = ["CaseRecord", "CaseChange", "create_case", "get_case", "find_case_by_tracking_code", "update_case",
           "add_reception_entry", "EDITABLE_CASE_FIELDS", "MAX_SUMMARY_CHARS"]

MAX_SUMMARY_CHARS = 1000

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
    novelty: CaseNovelty | None = None
    complex: bool = False
    crowd: bool = False
    national_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> CaseRecord:
        return cls(
            id=row["id"], tracking_code=row["tracking_code"], kind=PetitionKind.parse(row["kind"]),
            status=CaseStatus.parse(row["status"]), summary=row["summary"], subject_area=row["subject_area"],
            confidential=row["confidential"], venue=row["venue"], version=row["version"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            novelty=CaseNovelty.parse(row["novelty"]) if row["novelty"] else None,
            complex=bool(row["complex"]), crowd=bool(row["crowd"]), national_id=row["national_id"],
        )

    def stored_value(self, field: str) -> Any:
        """The value of an editable field as stored (enumerations as their English value)."""
        value = getattr(self, field)
        return value.value if isinstance(value, CaseNovelty | CaseStatus | PetitionKind) else value


@dataclass(frozen=True)
class CaseChange:
    """The outcome of :func:`update_case`: the case before and after, and the fields that changed
    (sorted; empty when every value sent equals the stored one, and then ``before is after``)."""

    before: CaseRecord
    after: CaseRecord
    changed: tuple[str, ...]


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


def _normalise_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise the values of an edit (enumerations to their English values)."""
    unknown = set(changes) - EDITABLE_CASE_FIELDS
    if unknown:
        raise ValueError(f"fields that cannot be edited: {sorted(unknown)}")
    values: dict[str, Any] = dict(changes)
    enums: dict[str, type[LabelledEnum]] = {"kind": PetitionKind, "status": CaseStatus,
                                            "subject_area": SubjectArea, "novelty": CaseNovelty}
    for name, enum in enums.items():
        if name not in values:
            continue
        if values[name] is None:
            if name in ("kind", "status"):
                raise InvalidInput("Trường này không được để trống.", field=name)
            continue
        values[name] = enum.parse(values[name]).value
    for name in ("complex", "crowd", "confidential"):
        if name in values and not isinstance(values[name], bool):
            raise InvalidInput("Phải là đúng hoặc sai.", field=name)
    if "summary" in values:
        summary = str(values["summary"] or "").strip()
        if not summary:
            raise InvalidInput("Nội dung vụ việc không được để trống.", field="summary")
        if len(summary) > MAX_SUMMARY_CHARS:
            raise InvalidInput(f"Nội dung vụ việc quá dài (tối đa {MAX_SUMMARY_CHARS} ký tự).", field="summary")
        values["summary"] = summary
    for name in ("venue", "national_id"):
        if name in values and values[name] is not None:
            values[name] = str(values[name]).strip() or None
    return values


def _stale(current: int, expected: int) -> StaleVersion:
    return StaleVersion(
        f"Vụ việc đã được người khác cập nhật (phiên bản {current}, bạn đang sửa phiên bản "
        f"{expected}). Hãy tải lại trước khi lưu."
    )


async def update_case(
    conn: AsyncConnection, case_id: str, *, expected_version: int, changes: Mapping[str, Any], now: datetime,
    keyring: Keyring, actor: str,
) -> CaseChange:
    """Apply ``changes`` when the case is still at ``expected_version``; bumps the version.

    Only values that differ from the stored ones count; when none does, nothing is written and the
    version stays (still refused with :class:`StaleVersion` when ``expected_version`` is old). A case
    that becomes a denunciation, or is marked confidential, becomes confidential (LTC Điều 47) and
    stays so; its parties are sealed in the same transaction
    (:func:`complaints.confidentiality.enforce_confidentiality`, audited as ``actor``).
    """
    values = _normalise_changes(changes)
    # Take the row first (a row lock on PostgreSQL, the write lock on SQLite: a read before the
    # first write would leave SQLite with a snapshot that a concurrent commit makes unwritable).
    claimed = await conn.execute(update(cases).where(cases.c.id == case_id, cases.c.version == expected_version)
                                 .values(version=cases.c.version))
    if claimed.rowcount != 1:
        current = (await conn.execute(select(cases.c.version).where(cases.c.id == case_id))).scalar()
        if current is None:
            raise NotFound("Không tìm thấy vụ việc.")
        raise _stale(int(current), expected_version)
    before = await get_case(conn, case_id)
    effective = {name: value for name, value in values.items() if before.stored_value(name) != value}
    if not effective:
        return CaseChange(before, before, ())
    mark = effective.pop("confidential", None)
    if mark is False:
        raise InvalidInput("Vụ việc đã được giữ mật thì luôn được giữ mật, không bỏ mật được.", field="confidential")
    written = dict(effective)
    if "summary" in written:
        written["summary_norm"] = fold_text(written["summary"])
    if written:
        await conn.execute(update(cases).where(cases.c.id == case_id, cases.c.version == expected_version)
                           .values(**written, version=cases.c.version + 1, updated_at=now))
    sealing = await enforce_confidentiality(conn, keyring, case_id, actor=actor, now=now, cause="edit",
                                            mark=bool(mark), bump_version=not written)
    if "summary" in effective and not (sealing.became_confidential or sealing.sealed):
        await refresh_search_document(conn, case_id)
    changed = set(effective) | ({"confidential"} if sealing.became_confidential else set())
    return CaseChange(before, await get_case(conn, case_id), tuple(sorted(changed)))


async def add_reception_entry(
    conn: AsyncConnection,
    case_id: str,
    *,
    received_on: date,
    reception_type: ReceptionType,
    form: ReceptionForm,
    with_petition: bool,
    now: datetime,
    keyring: Keyring,
    actor: str,
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
    one case, so two desks can never both write "lần thứ 3". The petitioner goes through the
    confidentiality rule (a confidential case refers to a sealed handle, audited as ``actor``).
    """
    if received_on > local_date(now):
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
    if petitioner_id is not None:
        await enforce_confidentiality(conn, keyring, case_id, actor=actor, now=now, cause="reception",
                                      bump_version=False)
    return entry_id, nth
