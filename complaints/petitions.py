"""Petitions (đơn) and respondents of a case, in the caller's transaction.

A petition's parties go through the confidentiality rule (:mod:`complaints.confidentiality`): a
denunciation makes its case confidential, and every party of a confidential case is a sealed handle.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring

from .confidentiality import enforce_confidentiality
from .duplicates import fold_text
from .enums import (
    Admissibility,
    Competence,
    PetitionerRole,
    PetitionKind,
    PetitionSource,
    PriorHandling,
    Signatories,
)
from .errors import NotFound
from .search import refresh_search_document
from .tables import cases, petition_parties, petitioners, petitions, respondents
from .workdays import local_date

__all__ = ["NewPetition", "add_petition", "add_respondent"]


@dataclass(frozen=True)
class NewPetition:
    source: PetitionSource
    kind: PetitionKind
    received_on: date
    content: str
    request: str = ""
    written_on: date | None = None
    admissibility: Admissibility | None = None
    competence: Competence | None = None
    prior_handling: PriorHandling | None = None
    prior_bodies: Sequence[str] = field(default_factory=tuple)
    signatories: Signatories | None = None
    anonymous: bool = False
    forwarded_by: str | None = None


async def add_petition(
    conn: AsyncConnection,
    case_id: str,
    petition: NewPetition,
    parties: Sequence[tuple[str, PetitionerRole]],
    *,
    now: datetime,
    keyring: Keyring,
    actor: str,
) -> str:
    """Attach a petition and its parties to a case; returns the petition id.

    Dates may not lie in the future, and a petition cannot be received before it was written. Then
    :func:`~complaints.confidentiality.enforce_confidentiality` (audited as ``actor``): the parties
    as stored may be sealed handles standing for the ids given.
    """
    today = local_date(now)
    if petition.received_on > today or (petition.written_on and petition.written_on > today):
        raise ValueError("a petition date is in the future")
    if petition.written_on and petition.written_on > petition.received_on:
        raise ValueError("a petition cannot be received before it was written")
    if (await conn.execute(select(cases.c.id).where(cases.c.id == case_id))).first() is None:
        raise NotFound("Không tìm thấy vụ việc.")
    known = {r[0] for r in await conn.execute(
        select(petitioners.c.id).where(petitioners.c.id.in_([pid for pid, _ in parties])))}
    missing = [pid for pid, _ in parties if pid not in known]
    if missing:
        raise NotFound("Không tìm thấy công dân đứng tên trong đơn.")
    pet_id = str(uuid.uuid4())
    await conn.execute(petitions.insert().values(
        id=pet_id, case_id=case_id, source=petition.source.value, kind=petition.kind.value,
        written_on=petition.written_on, received_on=petition.received_on, content=petition.content,
        content_norm=fold_text(petition.content),
        request=petition.request, admissibility=petition.admissibility.value if petition.admissibility else None,
        competence=petition.competence.value if petition.competence else None,
        prior_handling=petition.prior_handling.value if petition.prior_handling else None,
        prior_bodies=list(petition.prior_bodies), signatories=petition.signatories.value if petition.signatories
        else None, anonymous=petition.anonymous, forwarded_by=petition.forwarded_by, created_at=now,
    ))
    if parties:
        await conn.execute(petition_parties.insert(), [
            {"petition_id": pet_id, "petitioner_id": pid, "role": role.value} for pid, role in parties
        ])
    await refresh_search_document(conn, case_id)
    await enforce_confidentiality(conn, keyring, case_id, actor=actor, now=now, cause="petition")
    return pet_id


async def add_respondent(
    conn: AsyncConnection, case_id: str, *, kind: str, name: str, position: str | None = None,
    workplace: str | None = None,
) -> str:
    if kind not in ("person", "organisation"):
        raise ValueError("respondent kind is person or organisation")
    rid = str(uuid.uuid4())
    await conn.execute(respondents.insert().values(
        id=rid, case_id=case_id, kind=kind, name=name, name_norm=fold_text(name), position=position,
        workplace=workplace,
    ))
    await refresh_search_document(conn, case_id)
    return rid
