"""The case file (hồ sơ vụ việc): everything a case page shows, read in one connection, for one reader.

What the reader sees of people follows :mod:`complaints.confidentiality`: sealed petitioners appear by
their pseudonymous handle only (the identity stays in the vault); in a confidential case, whoever
lacks ``identity_read`` sees every party by handle and the attachments by number, not by the name
the client gave them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.grants import Grant

from .attachments import AttachmentRecord, list_attachments
from .cases import CaseRecord, get_case
from .confidentiality import attachment_shown_name, is_confidential, may_see_identity, party_shown
from .directives import DirectiveView, follow_up
from .enums import (
    HandlingDirection,
    PetitionerRole,
    PetitionKind,
    PetitionSource,
    ReceptionForm,
    ReceptionOutcome,
    ReceptionType,
)
from .tables import handling_decisions, petition_parties, petitioners, petitions, reception_entries, respondents
from .workdays import WorkCalendar

__all__ = ["CaseFile", "PartyView", "PetitionView", "ReceptionView", "RespondentView", "DecisionView",
           "load_case_file"]


@dataclass(frozen=True)
class PartyView:
    petitioner_id: str
    display_name: str  # the name, or the handle (confidentiality.party_shown)
    sealed: bool       # shown by its handle
    role: PetitionerRole


@dataclass(frozen=True)
class PetitionView:
    id: str
    kind: PetitionKind
    source: PetitionSource
    received_on: date
    written_on: date | None
    content: str
    request: str
    parties: list[PartyView]
    attachments: list[AttachmentRecord]


@dataclass(frozen=True)
class ReceptionView:
    id: str
    nth: int
    received_on: date
    reception_type: ReceptionType
    form: ReceptionForm
    outcome: ReceptionOutcome | None
    venue: str | None
    officer: str | None
    petitioner: str | None  # display name or handle


@dataclass(frozen=True)
class RespondentView:
    id: str
    kind: str
    name: str
    position: str | None
    workplace: str | None


@dataclass(frozen=True)
class DecisionView:
    id: str
    direction: HandlingDirection
    decided_on: date
    decided_by: str
    forwarded_to: str | None
    notes: str


@dataclass(frozen=True)
class CaseFile:
    case: CaseRecord
    petitions: list[PetitionView]
    receptions: list[ReceptionView]
    respondents: list[RespondentView]
    decisions: list[DecisionView]
    directives: list[DirectiveView]
    confidential: bool = False       # by the rule (complaints.confidentiality), not only the stored flag
    may_download: bool = True        # the reader may download the attachments

    @property
    def reception_count(self) -> int:
        return len(self.receptions)


async def load_case_file(conn: AsyncConnection, case_id: str, *, today: date, calendar: WorkCalendar,
                         grants: Collection[Grant]) -> CaseFile:
    """The case file as a reader holding ``grants`` may see it."""
    case = await get_case(conn, case_id)
    confidential = await is_confidential(conn, case_id)
    people: dict[str, tuple[str, bool]] = {}
    for pid, handle, name, sealed in await conn.execute(
        select(petitioners.c.id, petitioners.c.handle, petitioners.c.full_name, petitioners.c.sealed)
        .where(petitioners.c.id.in_(
            select(petition_parties.c.petitioner_id).join(petitions, petitions.c.id == petition_parties.c.petition_id)
            .where(petitions.c.case_id == case_id)
            .union(select(reception_entries.c.petitioner_id).where(reception_entries.c.case_id == case_id)))),
    ):
        people[pid] = party_shown(name=name, handle=handle, sealed=bool(sealed), confidential=confidential,
                                  grants=grants)
    parties: dict[str, list[PartyView]] = {}
    for petition_id, pid, role in await conn.execute(
        select(petition_parties.c.petition_id, petition_parties.c.petitioner_id, petition_parties.c.role)
        .join(petitions, petitions.c.id == petition_parties.c.petition_id).where(petitions.c.case_id == case_id)
    ):
        shown, sealed = people.get(pid, ("", False))
        parties.setdefault(petition_id, []).append(PartyView(pid, shown, sealed, PetitionerRole.parse(role)))
    files: dict[str, list[AttachmentRecord]] = {}
    for position, record in enumerate(await list_attachments(conn, case_id), start=1):
        shown = attachment_shown_name(record.display_name, position, confidential=confidential, grants=grants)
        files.setdefault(record.petition_id, []).append(replace(record, display_name=shown))
    petition_rows = (await conn.execute(select(petitions).where(petitions.c.case_id == case_id)
                                        .order_by(petitions.c.received_on, petitions.c.created_at))).mappings().all()
    petition_views = [PetitionView(
        id=r["id"], kind=PetitionKind.parse(r["kind"]), source=PetitionSource.parse(r["source"]),
        received_on=r["received_on"], written_on=r["written_on"], content=r["content"], request=r["request"],
        parties=parties.get(r["id"], []), attachments=files.get(r["id"], []),
    ) for r in petition_rows]
    reception_rows = (await conn.execute(select(reception_entries).where(reception_entries.c.case_id == case_id)
                                         .order_by(reception_entries.c.nth))).mappings().all()
    receptions = [ReceptionView(
        id=r["id"], nth=r["nth"], received_on=r["received_on"],
        reception_type=ReceptionType.parse(r["reception_type"]), form=ReceptionForm.parse(r["form"]),
        outcome=ReceptionOutcome.parse(r["outcome"]) if r["outcome"] else None, venue=r["venue"],
        officer=r["officer"], petitioner=people.get(r["petitioner_id"], (None, False))[0] if r["petitioner_id"]
        else None,
    ) for r in reception_rows]
    respondent_rows = (await conn.execute(select(respondents).where(respondents.c.case_id == case_id)
                                          .order_by(respondents.c.name))).mappings().all()
    decision_rows = (await conn.execute(select(handling_decisions).where(handling_decisions.c.case_id == case_id)
                                        .order_by(handling_decisions.c.decided_on))).mappings().all()
    return CaseFile(
        case=case,
        petitions=petition_views,
        receptions=receptions,
        respondents=[RespondentView(r["id"], r["kind"], r["name"], r["position"], r["workplace"])
                     for r in respondent_rows],
        decisions=[DecisionView(r["id"], HandlingDirection.parse(r["direction"]), r["decided_on"], r["decided_by"],
                                r["forwarded_to"], r["notes"]) for r in decision_rows],
        directives=await follow_up(conn, today=today, calendar=calendar, case_id=case_id),
        confidential=confidential,
        may_download=not confidential or may_see_identity(grants),
    )
