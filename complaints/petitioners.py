"""Petitioners (công dân): registration, the sealed path for denouncers, and the duplicate check at
intake (exact on the personal ID, fuzzy on name, address, respondent and content).

Open petitioners are stored in clear with their blocking keys (``petitioner_keys``) so the duplicate
check prefilters in the database and ranks a few hundred rows at most in Python
(:func:`complaints.duplicates.rank`). A sealed petitioner (a denouncer) has no clear identity and
no blocking keys: only the HMAC blind index of the ID number finds it, and the candidate shows the
pseudonymous handle, never a name.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.grants import Grant

from .duplicates import Candidate, IntakeRecord, blocking_keys, fold_text, rank
from .enums import PetitionerType
from .identity import normalize_id_number
from .tables import cases, petition_parties, petitioner_keys, petitioners, petitions, respondents
from .vault import Identity, blind_index, new_handle, seal_identity

__all__ = ["NewPetitioner", "register_petitioner", "DuplicateCandidate", "find_duplicates"]

_PREFILTER_LIMIT = 400


@dataclass(frozen=True)
class NewPetitioner:
    kind: PetitionerType
    full_name: str
    id_number: str | None = None
    id_kind: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    phone: str | None = None
    address_detail: str | None = None
    province_code: str | None = None
    commune_code: str | None = None
    old_province_code: str | None = None
    old_district_code: str | None = None
    old_commune_code: str | None = None
    organisation_name: str | None = None
    sealed: bool = False  # a denouncer: identity goes to the vault


async def register_petitioner(
    conn: AsyncConnection,
    keyring: Keyring,
    data: NewPetitioner,
    *,
    actor: str,
    grants: Collection[Grant],
    now: datetime,
) -> str:
    """Insert a petitioner (sealed or open) with its duplicate keys; returns its id."""
    pid = str(uuid.uuid4())
    number = normalize_id_number(data.id_number) if data.id_number else None
    if data.sealed:
        await conn.execute(petitioners.insert().values(
            id=pid, kind=data.kind.value, handle=new_handle(), sealed=True, sex=data.sex, created_at=now,
            province_code=data.province_code,
        ))
        await seal_identity(conn, keyring, pid, Identity(
            full_name=data.full_name, id_number=number, id_kind=data.id_kind,
            birth_date=data.birth_date.isoformat() if data.birth_date else None,
            address_detail=data.address_detail, commune_code=data.commune_code, phone=data.phone,
        ), actor=actor, grants=grants, now=now)
        return pid
    await conn.execute(petitioners.insert().values(
        id=pid, kind=data.kind.value, handle=new_handle(), sealed=False, full_name=data.full_name,
        name_norm=fold_text(data.full_name), sex=data.sex, birth_date=data.birth_date, id_kind=data.id_kind,
        id_number=number, id_blind_index=blind_index(keyring, number) if number else None, phone=data.phone,
        address_detail=data.address_detail, address_norm=fold_text(data.address_detail or ""),
        province_code=data.province_code, commune_code=data.commune_code,
        old_province_code=data.old_province_code, old_district_code=data.old_district_code,
        old_commune_code=data.old_commune_code, organisation_name=data.organisation_name, created_at=now,
    ))
    keys = blocking_keys(IntakeRecord(pid, full_name=data.full_name, id_number=number or ""))
    if keys:
        await conn.execute(petitioner_keys.insert(), [{"petitioner_id": pid, "key": k} for k in sorted(keys)])
    return pid


@dataclass(frozen=True)
class DuplicateCandidate:
    """A ranked candidate with what staff need to decide: attach to the case, or confirm it is new."""

    candidate: Candidate
    petitioner_id: str
    display_name: str          # the name, or the pseudonymous handle of a sealed petitioner
    sealed: bool
    case_id: str | None
    tracking_code: str | None


async def find_duplicates(
    conn: AsyncConnection, keyring: Keyring, query: IntakeRecord, *, limit: int = 5
) -> list[DuplicateCandidate]:
    """The best ``limit`` existing petitioners (with their latest case) that may be ``query``."""
    keys = sorted(blocking_keys(query))
    ids: set[str] = set()
    if keys:
        rows = await conn.execute(
            select(petitioner_keys.c.petitioner_id).where(petitioner_keys.c.key.in_(keys)).distinct()
            .limit(_PREFILTER_LIMIT)
        )
        ids |= {r[0] for r in rows}
    number = normalize_id_number(query.id_number) if query.id_number else ""
    if number:
        rows = await conn.execute(
            select(petitioners.c.id).where(petitioners.c.id_blind_index == blind_index(keyring, number))
        )
        ids |= {r[0] for r in rows}
    if not ids:
        return []
    people = (await conn.execute(select(petitioners).where(petitioners.c.id.in_(ids)))).mappings().all()
    latest = await _latest_cases(conn, ids)
    records: list[IntakeRecord] = []
    for p in people:
        case = latest.get(p["id"])
        if p["sealed"]:
            # Only the blind index brought it here: it shares the query's ID number, nothing else shows.
            records.append(IntakeRecord(p["id"], id_number=number))
        else:
            records.append(IntakeRecord(p["id"], full_name=p["full_name"] or "", id_number=p["id_number"] or "",
                                        address=p["address_detail"] or "",
                                        respondent=case.respondents if case else "",
                                        content=case.summary if case else ""))
    by_id = {p["id"]: p for p in people}
    result = []
    for cand in rank(query, records, limit=limit):
        p = by_id[cand.record_id]
        case = latest.get(p["id"])
        result.append(DuplicateCandidate(
            candidate=cand, petitioner_id=p["id"], display_name=p["handle"] if p["sealed"] else p["full_name"],
            sealed=p["sealed"], case_id=case.id if case else None, tracking_code=case.tracking_code if case else None,
        ))
    return result


@dataclass(frozen=True)
class _LatestCase:
    id: str
    tracking_code: str
    summary: str
    respondents: str


async def _latest_cases(conn: AsyncConnection, petitioner_ids: set[str]) -> dict[str, _LatestCase]:
    """petitioner id → its latest case (with its respondents' names joined), in two queries."""
    rows = (await conn.execute(
        select(petition_parties.c.petitioner_id, cases.c.id, cases.c.tracking_code, cases.c.summary)
        .join(petitions, petitions.c.id == petition_parties.c.petition_id)
        .join(cases, cases.c.id == petitions.c.case_id)
        .where(petition_parties.c.petitioner_id.in_(petitioner_ids))
        .order_by(cases.c.created_at)
    )).all()
    latest = {pid: (case_id, code, summary) for pid, case_id, code, summary in rows}  # the last one wins
    names: dict[str, list[str]] = {}
    case_ids = {c for c, _, _ in latest.values()}
    if case_ids:
        for case_id, name in await conn.execute(
            select(respondents.c.case_id, respondents.c.name).where(respondents.c.case_id.in_(case_ids))
        ):
            names.setdefault(case_id, []).append(name)
    return {pid: _LatestCase(c, code, summary, "; ".join(names.get(c, [])))
            for pid, (c, code, summary) in latest.items()}
