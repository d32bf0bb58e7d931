"""The case dossier (hồ sơ vụ việc) the chair reads beside the video while a case is received, and the
one-page brief printed from it (domain.md §9 item 2; issue #10 item 7).

What it holds: the case (tracking code, kind, field, summary), "lần tiếp thứ n" (which reception of
the case this one is), the history of the case (earlier receptions, petitions, handling decisions and
directives, with their dates), the chair's earlier directives with their unit, deadline and progress
(done, overdue or in progress on the working-day calendar), and the refusal-condition flag of LTCD
Điều 9 — a hint to the chair, never a refusal.

The rules are pure functions (:mod:`complaints.dossier_rules`: "lần tiếp thứ n", directive progress,
the refusal flag; :func:`history_of` here); :func:`load_dossier` is the thin reader around them.

Confidentiality (:mod:`complaints.confidentiality`, applied as on the case page): the dossier shows
only this case's own records, never another case of the same person, so a sealed handle is never
linked to a case on file. A party is shown by :func:`~complaints.confidentiality.party_shown`: a
reader without ``identity_read`` sees every party of a confidential case by its handle. A *sealed* party
is shown by its handle to everyone, the chair included: the dossier sits on a screen in a room and the
brief is printed on paper, and neither may carry a denouncer's name. A holder of ``identity_read``
opens the sealed identity on the case page, with a stated purpose, audited there
(``/cases/{id}/identity/{petitioner}``); the panel links to it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.grants import Grant

from .case_file import DecisionView, PetitionView, ReceptionView, RespondentView, load_case_file
from .cases import CaseRecord
from .confidentiality import party_shown
from .directives import DirectiveView
from .dossier_rules import (
    DirectiveProgress,
    ReceptionFact,
    RefusalAssessment,
    RefusalFacts,
    assess_refusal,
    directive_progress,
    reception_number,
)
from .enums import (
    PetitionerRole,
    PriorHandling,
)
from .tables import directives, petition_parties, petitioners, petitions, reception_entries
from .workdays import WorkCalendar

__all__ = ["Dossier", "DossierDirective", "DossierParty", "HistoryItem", "HistoryKind",
           "history_of", "load_dossier"]


# -- history -----------------------------------------------------------------------------------------------


class HistoryKind(StrEnum):
    PETITION = "petition"
    RECEPTION = "reception"
    DECISION = "decision"
    DIRECTIVE = "directive"


@dataclass(frozen=True)
class HistoryItem:
    """One dated line of the case's history: what happened (its Vietnamese legal term, or the unit a
    directive went to) and a detail (the form of a reception, the body a petition went to): never a
    person's name."""

    on: date
    kind: HistoryKind
    label: str
    detail: str = ""
    nth: int | None = None   # a reception: "lần tiếp thứ n"
    due: date | None = None  # a directive: its deadline


def history_of(*, petitions: Sequence[PetitionView], receptions: Sequence[ReceptionView],
               decisions: Sequence[DecisionView], directives: Sequence[tuple[date, DirectiveView]]) -> tuple[
        HistoryItem, ...]:
    """The case's history, oldest first (same day: petition, reception, decision, directive)."""
    order = {HistoryKind.PETITION: 0, HistoryKind.RECEPTION: 1, HistoryKind.DECISION: 2, HistoryKind.DIRECTIVE: 3}
    items = [HistoryItem(p.received_on, HistoryKind.PETITION, p.kind.label_vi, p.source.label_vi) for p in petitions]
    items += [HistoryItem(r.received_on, HistoryKind.RECEPTION, r.outcome.label_vi if r.outcome else
                          r.reception_type.label_vi, r.form.label_vi, nth=r.nth) for r in receptions]
    items += [HistoryItem(d.decided_on, HistoryKind.DECISION, d.direction.label_vi, d.forwarded_to or "")
              for d in decisions]
    items += [HistoryItem(issued, HistoryKind.DIRECTIVE, v.unit_name, due=v.deadline) for issued, v in directives]
    return tuple(sorted(items, key=lambda i: (i.on, order[i.kind], i.nth or 0)))


# -- the reader --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DossierParty:
    petitioner_id: str
    shown: str            # the name, or the handle
    as_handle: bool       # shown by its handle (confidentiality)
    role: PetitionerRole | None


@dataclass(frozen=True)
class DossierDirective:
    view: DirectiveView
    issued_on: date
    progress: DirectiveProgress


@dataclass(frozen=True)
class Dossier:
    case: CaseRecord
    confidential: bool
    session_id: str | None
    reception_number: int
    parties: tuple[DossierParty, ...]
    respondents: tuple[RespondentView, ...]
    petitions: tuple[PetitionView, ...]
    receptions: tuple[ReceptionView, ...]      # the earlier ones: not of this session
    decisions: tuple[DecisionView, ...]
    directives: tuple[DossierDirective, ...]
    history: tuple[HistoryItem, ...]
    refusal: RefusalAssessment
    today: date


async def _parties(conn: AsyncConnection, case_id: str, *, confidential: bool,
                   grants: Collection[Grant]) -> tuple[DossierParty, ...]:
    refs = select(petition_parties.c.petitioner_id).join(petitions, petitions.c.id == petition_parties.c.petition_id) \
        .where(petitions.c.case_id == case_id) \
        .union(select(reception_entries.c.petitioner_id).where(reception_entries.c.case_id == case_id))
    roles: dict[str, PetitionerRole] = {}
    for pid, role in await conn.execute(
        select(petition_parties.c.petitioner_id, petition_parties.c.role)
        .join(petitions, petitions.c.id == petition_parties.c.petition_id).where(petitions.c.case_id == case_id)
        .order_by(petitions.c.received_on, petitions.c.created_at)
    ):
        roles.setdefault(pid, PetitionerRole.parse(role))
    rows = (await conn.execute(select(petitioners.c.id, petitioners.c.handle, petitioners.c.full_name,
                                      petitioners.c.organisation_name, petitioners.c.sealed)
                               .where(petitioners.c.id.in_(refs)).order_by(petitioners.c.handle))).all()
    shown: list[DossierParty] = []
    for pid, handle, full_name, organisation, sealed in rows:
        text, as_handle = party_shown(name=full_name or organisation, handle=handle, sealed=bool(sealed),
                                      confidential=confidential, grants=grants)
        shown.append(DossierParty(pid, text, as_handle, roles.get(pid)))
    return tuple(shown)


async def load_dossier(
    conn: AsyncConnection,
    case_id: str,
    *,
    today: date,
    calendar: WorkCalendar,
    grants: Collection[Grant],
    session_id: str | None = None,
) -> Dossier:
    """The dossier of ``case_id`` for a reader holding ``grants``, as of ``today``, for the reception in
    ``session_id`` (None: the next reception). Reads only; a sealed party appears by its handle whoever
    reads. Unknown case: :class:`~complaints.errors.NotFound`."""
    file = await load_case_file(conn, case_id, today=today, calendar=calendar, grants=grants)
    entry_sessions = {rid: sid for rid, sid in await conn.execute(
        select(reception_entries.c.id, reception_entries.c.session_id).where(reception_entries.c.case_id == case_id))}
    number = reception_number((ReceptionFact(r.nth, entry_sessions.get(r.id)) for r in file.receptions), session_id)
    earlier = tuple(r for r in file.receptions if r.nth < number)
    prior = tuple(PriorHandling.parse(p) for p in (await conn.execute(
        select(petitions.c.prior_handling).where(petitions.c.case_id == case_id,
                                                 petitions.c.prior_handling.is_not(None)))).scalars())
    issued = {did: day for did, day in await conn.execute(
        select(directives.c.id, directives.c.issued_on).where(directives.c.case_id == case_id))}
    own = tuple(DossierDirective(v, issued.get(v.id, v.deadline), directive_progress(v.status))
                for v in file.directives)
    refusal = assess_refusal(RefusalFacts(
        kind=file.case.kind, status=file.case.status, novelty=file.case.novelty, prior_handlings=prior,
        decisions=tuple(d.direction for d in file.decisions),
        earlier_outcomes=tuple(r.outcome for r in earlier),
        directives_done=sum(1 for d in own if d.progress is DirectiveProgress.DONE),
    ))
    parties = await _parties(conn, case_id, confidential=file.confidential, grants=grants)
    return Dossier(
        case=file.case, confidential=file.confidential, session_id=session_id, reception_number=number,
        parties=parties, respondents=tuple(file.respondents), petitions=tuple(file.petitions), receptions=earlier,
        decisions=tuple(file.decisions), directives=own,
        history=history_of(petitions=file.petitions, receptions=earlier, decisions=file.decisions,
                           directives=[(d.issued_on, d.view) for d in own]),
        refusal=refusal, today=today,
    )
