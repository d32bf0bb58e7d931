"""Petitioners (công dân): registration, the sealed path for denouncers, and the duplicate check at
intake (exact on the personal ID, fuzzy on name, address, respondent and content).

Open petitioners are stored in clear with their blocking keys (``petitioner_keys``) so the duplicate
check prefilters in the database (the :data:`~complaints.duplicates.PREFILTER_LIMIT` petitioners sharing
the most weighted keys, counted in SQL) and ranks only those in Python
(:func:`complaints.duplicates.rank`). A sealed petitioner (a denouncer) has no clear identity and
no blocking keys: only the HMAC blind index of the ID number finds it, and the candidate shows the
pseudonymous handle, never a name.

The answer respects the grant (:mod:`complaints.confidentiality`). Open and sealed candidates are ranked
apart, so what is said of open records never depends on sealed ones. To a holder of ``identity_read``
sealed candidates are shown in full (handle, case, tracking code, score) and each is an audit event
(``identity.match``). To anybody else a sealed match is only :attr:`DuplicateCheck.sealed_match`,
the same flag whichever sealed records matched and however many, with no case, code, score or id
(audited as ``identity.match_withheld``, so probing shows in the log); and not even that when an open
record with the same ID number is among the candidates — it already answers "this person is on
file", and the flag beside it would tell that the person also denounced. Open candidates never show
a confidential case as their latest to whoever lacks ``identity_read``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import CompoundSelect, RowMapping, Select, func, select, union
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.grants import Grant

from .audit import append_audit
from .confidentiality import confidential_clause, may_see_identity
from .duplicates import (
    PLACE_KEY_PREFIX,
    PREFILTER_LIMIT,
    AliasTable,
    Candidate,
    IntakeRecord,
    blocking_keys,
    default_aliases,
    fold_text,
    key_weight,
    rank,
)
from .enums import PetitionerType
from .identity import normalize_id_number
from .tables import cases, petition_parties, petitioner_keys, petitioners, petitions, respondents
from .vault import Identity, blind_index, new_handle, seal_identity

__all__ = ["NewPetitioner", "register_petitioner", "DuplicateCandidate", "DuplicateCheck", "find_duplicates"]


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
    keys = blocking_keys(IntakeRecord(pid, full_name=data.full_name, id_number=number or "",
                                      address=data.address_detail or ""))
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


@dataclass(frozen=True)
class DuplicateCheck:
    """The answer of :func:`find_duplicates`: the candidates the asker may see and, for whoever lacks
    ``identity_read``, whether a sealed record matched (nothing else is said about it)."""

    candidates: list[DuplicateCandidate]
    sealed_match: bool = False


async def find_duplicates(
    conn: AsyncConnection, keyring: Keyring, query: IntakeRecord, *, actor: str, grants: Collection[Grant],
    now: datetime | None = None, limit: int = 5, aliases: AliasTable | None = None,
) -> DuplicateCheck:
    """The best ``limit`` existing open petitioners (with their latest case) that may be ``query``, and
    the sealed ones as the asker's grants allow (see the module doc; audited in the caller's
    transaction, which it should commit).

    One query whatever the number of namesakes: the shortlist (:func:`_shortlist_query`) and the
    petitioners sharing the ID number's blind index, with each one's cases and their respondents."""
    number = normalize_id_number(query.id_number) if query.id_number else ""
    wanted = []
    keys = blocking_keys(query)
    if keys:
        shortlisted = _shortlist_query(keys, PREFILTER_LIMIT).subquery()
        wanted.append(select(shortlisted.c.petitioner_id))
    if number:
        wanted.append(select(petitioners.c.id).where(petitioners.c.id_blind_index == blind_index(keyring, number)))
    if not wanted:
        return DuplicateCheck([])
    full = may_see_identity(grants)
    people: dict[str, RowMapping] = {}
    latest: dict[str, _LatestCase] = {}
    for row in (await conn.execute(_candidates_query(union(*wanted) if len(wanted) > 1 else wanted[0]))).mappings():
        people[row["id"]] = row
        if row["case_id"] is None or (row["case_confidential"] and not row["sealed"] and not full):
            continue
        # ordered by creation: the last one wins
        latest[row["id"]] = _LatestCase(row["case_id"], row["case_tracking_code"], row["case_summary"],
                                        row["case_respondents"] or "")
    open_records: list[IntakeRecord] = []
    sealed_records: list[IntakeRecord] = []
    for p in people.values():
        case = latest.get(p["id"])
        if p["sealed"]:
            # Only the blind index brought it here: it shares the query's ID number, nothing else shows.
            sealed_records.append(IntakeRecord(p["id"], id_number=number))
        else:
            open_records.append(IntakeRecord(p["id"], full_name=p["full_name"] or "", id_number=p["id_number"] or "",
                                             address=p["address_detail"] or "",
                                             respondent=case.respondents if case else "",
                                             content=case.summary if case else ""))
    table = aliases if aliases is not None else default_aliases()
    open_ranked = rank(query, open_records, limit=limit, aliases=table)
    sealed_ranked = rank(query, sealed_records, aliases=table)

    def shown(cand: Candidate) -> DuplicateCandidate:
        p = people[cand.record_id]
        case = latest.get(p["id"])
        return DuplicateCandidate(
            candidate=cand, petitioner_id=p["id"], display_name=p["handle"] if p["sealed"] else p["full_name"],
            sealed=p["sealed"], case_id=case.id if case else None, tracking_code=case.tracking_code if case else None,
        )

    found = [shown(c) for c in open_ranked]
    action = "identity.match" if full else "identity.match_withheld"
    for cand in sealed_ranked:
        await append_audit(conn, actor=actor, action=action, target_kind="petitioner", target_id=cand.record_id,
                           detail={"via": "duplicates"}, at=now)
    if full:
        merged = sorted([*found, *(shown(c) for c in sealed_ranked)],
                        key=lambda c: (-c.candidate.score, c.petitioner_id))
        return DuplicateCheck(merged)
    same_number_on_file = bool(number) and any(people[c.petitioner_id]["id_number"] == number for c in found)
    return DuplicateCheck(found, sealed_match=bool(sealed_ranked) and not same_number_on_file)


@dataclass(frozen=True)
class _LatestCase:
    id: str
    tracking_code: str
    summary: str
    respondents: str


def _shortlist_query(keys: frozenset[str], limit: int) -> Select[str]:
    """The ids of the open petitioners sharing the most weighted blocking keys with the query, counted
    in SQL by the rule of :func:`complaints.duplicates.shortlist`: one pass over the covering index
    ``(key, petitioner_id)``, whatever the number of namesakes."""
    by_weight: dict[int, list[str]] = {}
    for key in sorted(keys):
        by_weight.setdefault(key_weight(key), []).append(key)
    column = petitioner_keys.c.key
    weights = [(column.in_(group), weight) for weight, group in sorted(by_weight.items(), reverse=True) if weight != 1]
    score = func.sum(sql_case(*weights, else_=1)) if weights else func.count()
    order = [score.desc(), petitioner_keys.c.petitioner_id]
    place_keys = sorted(k for k in keys if k.startswith(PLACE_KEY_PREFIX))
    if place_keys:  # sharing only place keys (another name in the same place) comes last
        order.insert(0, func.max(sql_case((column.in_(place_keys), 0), else_=1)).desc())
    return (
        select(petitioner_keys.c.petitioner_id)
        .where(column.in_(sorted(keys)))
        .group_by(petitioner_keys.c.petitioner_id)
        .order_by(*order)
        .limit(limit)
    )


async def _shortlist(conn: AsyncConnection, keys: frozenset[str], limit: int = PREFILTER_LIMIT) -> list[str]:
    """The shortlist alone, in its order (for tests and measurements)."""
    if not keys:
        return []
    return [r[0] for r in await conn.execute(_shortlist_query(keys, limit))]


def _candidates_query(ids: Select[str] | CompoundSelect[str]) -> Select[Any]:
    """The petitioners whose id ``ids`` selects, one row per petitioner and case (a petitioner without a
    case: one row with a null case), oldest case first, with the case's respondents' names joined and
    whether the case is confidential."""
    names = (
        select(func.aggregate_strings(respondents.c.name, "; "))
        .where(respondents.c.case_id == cases.c.id)
        .scalar_subquery()
    )
    return (
        select(
            petitioners.c.id, petitioners.c.sealed, petitioners.c.handle, petitioners.c.full_name,
            petitioners.c.id_number, petitioners.c.address_detail,
            cases.c.id.label("case_id"), cases.c.tracking_code.label("case_tracking_code"),
            cases.c.summary.label("case_summary"), names.label("case_respondents"),
            confidential_clause().label("case_confidential"),
        )
        .select_from(
            petitioners.outerjoin(petition_parties, petition_parties.c.petitioner_id == petitioners.c.id)
            .outerjoin(petitions, petitions.c.id == petition_parties.c.petition_id)
            .outerjoin(cases, cases.c.id == petitions.c.case_id)
        )
        .where(petitioners.c.id.in_(ids))
        .order_by(petitioners.c.id, cases.c.created_at, cases.c.id)
    )
