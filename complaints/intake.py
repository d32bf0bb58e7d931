"""Intake (tiếp nhận đơn): one petition with its petitioner, respondent and reception entry, recorded
in the caller's transaction either as a new case or attached to an existing one (after staff looked at
the duplicate candidates of :func:`complaints.petitioners.find_duplicates`).

Confidentiality (:mod:`complaints.confidentiality`): a denunciation makes its case confidential —
a new one, or the open case it is attached to — and every party of a confidential case is sealed for
that case. A new person's identity typed in for a confidential case (a denouncer, or anybody joining
a denunciation case) is sealed at once and needs the ``identity_write`` grant; without it the refusal
is audited and nothing else is written, so the caller may commit the transaction to keep the audit
row. A person already on file is linked through a sealed handle of this case (no grant needed:
sealing discloses nothing); :attr:`IntakeResult.petitioner_id` is the party as stored.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.grants import Grant

from .audit import append_audit
from .cases import add_reception_entry, create_case, get_case
from .confidentiality import is_confidential
from .enums import PetitionerRole, PetitionKind, ReceptionForm, ReceptionOutcome, ReceptionType
from .errors import IdentityAccessDenied, InvalidInput, NotFound
from .petitioners import NewPetitioner, register_petitioner
from .petitions import NewPetition, add_petition, add_respondent
from .tables import petition_parties, petitioners

__all__ = ["IntakeRespondent", "IntakeReception", "Intake", "IntakeResult", "record_intake"]


@dataclass(frozen=True)
class IntakeRespondent:
    kind: str  # person | organisation
    name: str
    position: str | None = None
    workplace: str | None = None


@dataclass(frozen=True)
class IntakeReception:
    reception_type: ReceptionType = ReceptionType.ROUTINE
    form: ReceptionForm = ReceptionForm.IN_PERSON
    outcome: ReceptionOutcome | None = None
    venue: str | None = None
    officer: str | None = None


@dataclass(frozen=True)
class Intake:
    petition: NewPetition
    petitioner: NewPetitioner | None = None     # a new petitioner …
    petitioner_id: str | None = None            # … or one already registered (a duplicate candidate)
    role: PetitionerRole = PetitionerRole.SIGNATORY
    respondent: IntakeRespondent | None = None
    case_id: str | None = None                  # attach to this case; None: a new case
    summary: str = ""                           # of a new case; defaults to the start of the content
    subject_area: str | None = None
    venue: str | None = None
    reception: IntakeReception | None = None    # the petition was handed in at a reception


@dataclass(frozen=True)
class IntakeResult:
    case_id: str
    tracking_code: str
    new_case: bool
    petitioner_id: str                # the party as stored (a sealed handle in a confidential case)
    petition_id: str
    reception_nth: int | None
    confidential: bool = False        # the case, after the intake
    became_confidential: bool = False  # an existing case became confidential (announce it)


async def record_intake(
    conn: AsyncConnection,
    keyring: Keyring,
    intake: Intake,
    *,
    actor: str,
    grants: Collection[Grant],
    now: datetime,
) -> IntakeResult:
    """Record ``intake``; returns the case (new or attached) and the ids written."""
    if (intake.petitioner is None) == (intake.petitioner_id is None):
        raise InvalidInput("Hãy nhập thông tin công dân hoặc chọn một công dân đã có (chỉ một trong hai).",
                           field="petitioner")
    person = intake.petitioner
    attached_confidential = intake.case_id is not None and await is_confidential(conn, intake.case_id)
    if person is not None and not person.sealed and (
            intake.petition.kind is PetitionKind.DENUNCIATION or attached_confidential):
        person = replace(person, sealed=True)  # LTC Điều 47: the denouncer's identity is secret
    if person is not None and person.sealed and Grant.IDENTITY_WRITE not in grants:
        await append_audit(conn, actor=actor, action="identity.write_refused", target_kind="case",
                           target_id=intake.case_id or "new", at=now)
        raise IdentityAccessDenied("Bạn không có quyền ghi thông tin người tố cáo.")
    if intake.petitioner_id is not None:
        found = (await conn.execute(select(petitioners.c.id).where(petitioners.c.id == intake.petitioner_id))).first()
        if found is None:
            raise NotFound("Không tìm thấy công dân.")
    if intake.case_id is not None:
        case = await get_case(conn, intake.case_id)
        new_case = False
    else:
        summary = intake.summary.strip() or intake.petition.content.strip()[:300]
        case = await create_case(conn, kind=intake.petition.kind, summary=summary, now=now, venue=intake.venue,
                                 subject_area=intake.subject_area)
        new_case = True
    if person is not None:
        petitioner_id = await register_petitioner(conn, keyring, person, actor=actor, grants=grants, now=now)
    else:
        assert intake.petitioner_id is not None
        petitioner_id = intake.petitioner_id
    if intake.respondent is not None and intake.respondent.name.strip():
        r = intake.respondent
        await add_respondent(conn, case.id, kind=r.kind, name=r.name.strip(), position=r.position,
                             workplace=r.workplace)
    petition_id = await add_petition(conn, case.id, intake.petition, [(petitioner_id, intake.role)], now=now,
                                     keyring=keyring, actor=actor)
    # The party as stored: the confidentiality rule may have put a sealed handle in its place.
    petitioner_id = (await conn.execute(select(petition_parties.c.petitioner_id)
                                        .where(petition_parties.c.petition_id == petition_id))).scalar_one()
    nth = None
    if intake.reception is not None:
        rec = intake.reception
        _entry, nth = await add_reception_entry(
            conn, case.id, received_on=intake.petition.received_on, reception_type=rec.reception_type,
            form=rec.form, with_petition=True, now=now, keyring=keyring, actor=actor, petitioner_id=petitioner_id,
            venue=rec.venue or intake.venue, officer=rec.officer, outcome=rec.outcome,
        )
    after = await get_case(conn, case.id)
    return IntakeResult(case_id=case.id, tracking_code=case.tracking_code, new_case=new_case,
                        petitioner_id=petitioner_id, petition_id=petition_id, reception_nth=nth,
                        confidential=after.confidential,
                        became_confidential=not new_case and after.confidential and not case.confidential)
