"""Request models of the complaint API (pydantic), parsed once at the edge, and its response models
(``…Out``, built from the domain's records by their ``of`` constructors), so the OpenAPI schema
describes what the API answers. Timestamps are answered as ISO 8601 text as stored (with their
offset); days as ``YYYY-MM-DD``; an enumeration as ``{"value", "label"}`` (English value, Vietnamese
label).

Enumerations accept their English value (or exact Vietnamese label) and refuse anything else with the
Vietnamese message of :meth:`complaints.enums.LabelledEnum.parse`. Rules that need today's date (no
future dates, a personal ID whose birth year lies ahead) are applied by ``to_domain(today)``, which
raises :class:`~complaints.errors.InvalidInput` / :class:`~complaints.errors.InvalidPersonalId`.
:func:`describe_errors` turns pydantic's errors into Vietnamese, field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from .deadlines import DeadlineKind
from .directives import MAX_DEADLINE_WORKING_DAYS, resolve_deadline
from .enums import (
    Admissibility,
    CaseNovelty,
    CaseStatus,
    Competence,
    HandlingDirection,
    IdDocumentKind,
    PetitionerRole,
    PetitionerType,
    PetitionKind,
    PetitionSource,
    PriorHandling,
    ReceptionForm,
    ReceptionOutcome,
    ReceptionType,
    Sex,
    Signatories,
    SubjectArea,
)
from .errors import InvalidInput
from .identity import parse_personal_id
from .intake import Intake, IntakeReception, IntakeRespondent
from .petitioners import NewPetitioner
from .petitions import NewPetition
from .workdays import WorkCalendar

if TYPE_CHECKING:
    from .case_file import CaseFile
    from .cases import CaseRecord
    from .directives import DirectiveView
    from .intake import IntakeResult
    from .petitioners import DuplicateCheck
    from .search import SearchResult
    from .vault import Identity

__all__ = [
    "PetitionerIn", "PetitionIn", "RespondentIn", "ReceptionDetailsIn", "IntakeIn", "DuplicateCheckIn",
    "CaseUpdateIn", "ReceptionIn", "PetitionAddIn", "PartyIn", "HandlingDecisionIn", "DelegationIn",
    "DirectiveIn", "DirectiveReportIn", "IdentityReadIn", "describe_errors", "not_in_future",
    "LabelledOut", "CaseOut", "CaseFileOut", "PartyOut", "AttachmentOut", "PetitionOut", "ReceptionOut",
    "RespondentOut", "HandlingDecisionOut", "DirectiveOut", "DirectiveListOut", "CaseHitOut", "SearchOut",
    "MatchReasonOut", "DuplicateCandidateOut", "DuplicatesOut", "IntakeOut", "IdOut", "ReceptionAddedOut",
    "DirectiveIssuedOut", "DirectiveReportedOut", "AttachmentAddedOut", "IdentityOut",
]


def _enum(cls: Any) -> Any:
    return BeforeValidator(lambda value: cls.parse(value) if isinstance(value, str) else value)


Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def not_in_future(day: date | None, today: date, field: str, what_vi: str) -> None:
    if day is not None and day > today:
        raise InvalidInput(f"{what_vi} không được sau ngày hiện tại ({today:%d/%m/%Y}).", code="future_date",
                           field=field)


class PetitionerIn(_In):
    kind: Annotated[PetitionerType, _enum(PetitionerType)] = PetitionerType.INDIVIDUAL
    full_name: Name
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    id_kind: Annotated[IdDocumentKind, _enum(IdDocumentKind)] | None = None
    birth_date: date | None = None
    sex: Annotated[Sex, _enum(Sex)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    address_detail: Short | None = None
    province_code: Annotated[str, StringConstraints(pattern=r"^\d{2,3}$")] | None = None
    commune_code: Annotated[str, StringConstraints(pattern=r"^\d{3,5}$")] | None = None
    organisation_name: Short | None = None
    sealed: bool = False

    def to_domain(self, today: date) -> NewPetitioner:
        not_in_future(self.birth_date, today, "birth_date", "Ngày sinh")
        number = id_kind = None
        if self.id_number:
            parsed = parse_personal_id(self.id_number, kind=self.id_kind, birth_date=self.birth_date, sex=self.sex,
                                       today=today)
            number, id_kind = parsed.number, parsed.kind.value
        return NewPetitioner(
            kind=self.kind, full_name=self.full_name, id_number=number,
            id_kind=id_kind, birth_date=self.birth_date,
            sex=self.sex.value if self.sex else None, phone=self.phone or None,
            address_detail=self.address_detail or None,
            province_code=self.province_code, commune_code=self.commune_code,
            organisation_name=self.organisation_name or None, sealed=self.sealed,
        )


class PetitionIn(_In):
    source: Annotated[PetitionSource, _enum(PetitionSource)] = PetitionSource.IN_PERSON
    kind: Annotated[PetitionKind, _enum(PetitionKind)]
    received_on: date
    written_on: date | None = None
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    request: Text = ""
    admissibility: Annotated[Admissibility, _enum(Admissibility)] | None = None
    competence: Annotated[Competence, _enum(Competence)] | None = None
    prior_handling: Annotated[PriorHandling, _enum(PriorHandling)] | None = None
    signatories: Annotated[Signatories, _enum(Signatories)] | None = None
    anonymous: bool = False
    forwarded_by: Short | None = None

    def to_domain(self, today: date) -> NewPetition:
        not_in_future(self.received_on, today, "received_on", "Ngày nhận đơn")
        not_in_future(self.written_on, today, "written_on", "Ngày viết đơn")
        if self.written_on and self.written_on > self.received_on:
            raise InvalidInput("Ngày viết đơn không được sau ngày nhận đơn.", field="written_on")
        return NewPetition(
            source=self.source, kind=self.kind, received_on=self.received_on, content=self.content,
            request=self.request, written_on=self.written_on, admissibility=self.admissibility,
            competence=self.competence, prior_handling=self.prior_handling, signatories=self.signatories,
            anonymous=self.anonymous, forwarded_by=self.forwarded_by,
        )


class RespondentIn(_In):
    kind: Literal["person", "organisation"] = "person"
    name: Name
    position: Short | None = None
    workplace: Short | None = None

    def to_domain(self) -> IntakeRespondent:
        return IntakeRespondent(self.kind, self.name, self.position, self.workplace)


class ReceptionDetailsIn(_In):
    reception_type: Annotated[ReceptionType, _enum(ReceptionType)] = ReceptionType.ROUTINE
    form: Annotated[ReceptionForm, _enum(ReceptionForm)] = ReceptionForm.IN_PERSON
    outcome: Annotated[ReceptionOutcome, _enum(ReceptionOutcome)] | None = None
    venue: Slug | None = None
    officer: Short | None = None


class IntakeIn(_In):
    petitioner: PetitionerIn | None = None
    petitioner_id: Id | None = None
    role: Annotated[PetitionerRole, _enum(PetitionerRole)] = PetitionerRole.SIGNATORY
    petition: PetitionIn
    respondent: RespondentIn | None = None
    case_id: Id | None = None
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    subject_area: Annotated[SubjectArea, _enum(SubjectArea)] | None = None
    venue: Slug | None = None
    reception: ReceptionDetailsIn | None = None

    def to_domain(self, today: date, *, officer: str) -> Intake:
        reception = None
        if self.reception is not None:
            r = self.reception
            reception = IntakeReception(r.reception_type, r.form, r.outcome, r.venue, r.officer or officer)
        return Intake(
            petition=self.petition.to_domain(today),
            petitioner=self.petitioner.to_domain(today) if self.petitioner else None,
            petitioner_id=self.petitioner_id, role=self.role,
            respondent=self.respondent.to_domain() if self.respondent else None, case_id=self.case_id,
            summary=self.summary, subject_area=self.subject_area.value if self.subject_area else None,
            venue=self.venue, reception=reception,
        )


class DuplicateCheckIn(_In):
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = ""
    address: Short = ""
    respondent: Short = ""
    content: Text = ""


class CaseUpdateIn(_In):
    """An edit of a case. A field not sent is not changed; ``null`` clears the fields that may be
    empty (``subject_area``, ``novelty``, ``venue``) and is ignored for the others."""

    version: int | None = Field(default=None, ge=1, description="the version read; or send If-Match")
    kind: Annotated[PetitionKind, _enum(PetitionKind)] | None = None
    status: Annotated[CaseStatus, _enum(CaseStatus)] | None = None
    subject_area: Annotated[SubjectArea, _enum(SubjectArea)] | None = None
    novelty: Annotated[CaseNovelty, _enum(CaseNovelty)] | None = None
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] | None = None
    venue: Slug | None = None
    complex: bool | None = None
    crowd: bool | None = None

    def changes(self) -> dict[str, Any]:
        values = self.model_dump(exclude_unset=True, exclude={"version"})
        return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()
                if v is not None or k in _CLEARABLE}


_CLEARABLE = frozenset({"subject_area", "novelty", "venue"})


class ReceptionIn(_In):
    received_on: date
    reception_type: Annotated[ReceptionType, _enum(ReceptionType)] = ReceptionType.ROUTINE
    form: Annotated[ReceptionForm, _enum(ReceptionForm)] = ReceptionForm.IN_PERSON
    with_petition: bool = False
    petitioner_id: Id | None = None
    session_id: Slug | None = None
    host: Short | None = None
    venue: Slug | None = None
    outcome: Annotated[ReceptionOutcome, _enum(ReceptionOutcome)] | None = None
    notes: Text = ""


class PartyIn(_In):
    petitioner_id: Id
    role: Annotated[PetitionerRole, _enum(PetitionerRole)] = PetitionerRole.SIGNATORY


class PetitionAddIn(_In):
    petition: PetitionIn
    parties: list[PartyIn] = Field(default_factory=list, max_length=200)


class HandlingDecisionIn(_In):
    direction: Annotated[HandlingDirection, _enum(HandlingDirection)]
    decided_on: date
    petition_id: Id | None = None
    forwarded_to: Short | None = None
    notes: Text = ""


class DelegationIn(_In):
    member_ids: list[Id] = Field(min_length=1, max_length=1000)
    representative_ids: list[Id] = Field(default_factory=list, max_length=1000)
    appointment_document: Short | None = None


class DirectiveIn(_In):
    """A directive; its deadline is one of: ``deadline`` (a date), ``working_days`` after
    ``issued_on``, or ``legal_deadline`` (a legal period counted from ``issued_on``)."""

    unit_id: Slug
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    issued_on: date
    deadline: date | None = None
    working_days: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_WORKING_DAYS)
    legal_deadline: Annotated[DeadlineKind, _enum(DeadlineKind)] | None = None

    def resolve_deadline(self, calendar: WorkCalendar) -> date:
        """The deadline asked for (:func:`complaints.directives.resolve_deadline`)."""
        return resolve_deadline(self.issued_on, calendar, on=self.deadline, working_days=self.working_days,
                                legal=self.legal_deadline)


class DirectiveReportIn(_In):
    version: int | None = Field(default=None, ge=1)
    reported_on: date
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    completed: bool = False


class IdentityReadIn(_In):
    purpose: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]


# -- responses ----------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelledOut(_Out):
    """An enumeration member: its English ``value`` and its Vietnamese ``label``."""

    value: str
    label: str

    @classmethod
    def of(cls, member: Any) -> LabelledOut:
        return cls(value=member.value, label=member.label_vi)

    @classmethod
    def maybe(cls, member: Any | None) -> LabelledOut | None:
        return None if member is None else cls.of(member)


class CaseOut(_Out):
    """A case (vụ việc); ``version`` is what an edit must name (also the ``ETag``)."""

    id: str
    tracking_code: str
    kind: LabelledOut
    status: LabelledOut
    summary: str
    subject_area: str | None
    novelty: LabelledOut | None
    complex: bool
    crowd: bool
    confidential: bool
    venue: str | None
    version: int
    created_at: str
    updated_at: str

    @classmethod
    def fields_of(cls, case: CaseRecord) -> dict[str, Any]:
        return {"id": case.id, "tracking_code": case.tracking_code, "kind": LabelledOut.of(case.kind),
                "status": LabelledOut.of(case.status), "summary": case.summary, "subject_area": case.subject_area,
                "novelty": LabelledOut.maybe(case.novelty), "complex": case.complex, "crowd": case.crowd,
                "confidential": case.confidential, "venue": case.venue, "version": case.version,
                "created_at": case.created_at.isoformat(), "updated_at": case.updated_at.isoformat()}

    @classmethod
    def of(cls, case: CaseRecord) -> CaseOut:
        return cls(**cls.fields_of(case))


class PartyOut(_Out):
    petitioner_id: str
    display_name: str  # the name, or the handle of a sealed party
    sealed: bool
    role: LabelledOut


class AttachmentOut(_Out):
    id: str
    name: str  # as the reader may see it (numbered in a confidential case without identity_read)
    media_type: str
    size: int
    sha256: str


class PetitionOut(_Out):
    id: str
    kind: LabelledOut
    source: LabelledOut
    received_on: date
    written_on: date | None
    content: str
    request: str
    parties: list[PartyOut]
    attachments: list[AttachmentOut]


class ReceptionOut(_Out):
    id: str
    nth: int
    label: str  # "Lần tiếp thứ n"
    received_on: date
    reception_type: LabelledOut
    form: LabelledOut
    outcome: LabelledOut | None
    venue: str | None
    officer: str | None
    petitioner: str | None  # display name or handle


class RespondentOut(_Out):
    id: str
    kind: str  # person | organisation
    name: str
    position: str | None
    workplace: str | None


class HandlingDecisionOut(_Out):
    id: str
    direction: LabelledOut
    decided_on: date
    decided_by: str
    forwarded_to: str | None
    notes: str


class DirectiveOut(_Out):
    """A directive with its follow-up status (overdue, due soon, on track, done on time or late)."""

    id: str
    case_id: str
    tracking_code: str
    unit_id: str
    unit_name: str
    content: str
    deadline: date
    completed_on: date | None
    status: LabelledOut
    version: int

    @classmethod
    def of(cls, view: DirectiveView) -> DirectiveOut:
        return cls(id=view.id, case_id=view.case_id, tracking_code=view.tracking_code, unit_id=view.unit_id,
                   unit_name=view.unit_name, content=view.content, deadline=view.deadline,
                   completed_on=view.completed_on, status=LabelledOut.of(view.status), version=view.version)


class DirectiveListOut(_Out):
    items: list[DirectiveOut]


class CaseFileOut(CaseOut):
    """The case file as the reader may see it (``confidential`` by the rule of
    :mod:`complaints.confidentiality`)."""

    reception_count: int
    petitions: list[PetitionOut]
    receptions: list[ReceptionOut]
    respondents: list[RespondentOut]
    handling_decisions: list[HandlingDecisionOut]
    directives: list[DirectiveOut]

    @classmethod
    def of_file(cls, file: CaseFile) -> CaseFileOut:
        return cls(
            **{**CaseOut.fields_of(file.case), "confidential": file.confidential},
            reception_count=file.reception_count,
            petitions=[PetitionOut(
                id=p.id, kind=LabelledOut.of(p.kind), source=LabelledOut.of(p.source), received_on=p.received_on,
                written_on=p.written_on, content=p.content, request=p.request,
                parties=[PartyOut(petitioner_id=x.petitioner_id, display_name=x.display_name, sealed=x.sealed,
                                  role=LabelledOut.of(x.role)) for x in p.parties],
                attachments=[AttachmentOut(id=a.id, name=a.display_name, media_type=a.media_type, size=a.size,
                                           sha256=a.sha256) for a in p.attachments],
            ) for p in file.petitions],
            receptions=[ReceptionOut(
                id=r.id, nth=r.nth, label=f"Lần tiếp thứ {r.nth}", received_on=r.received_on,
                reception_type=LabelledOut.of(r.reception_type), form=LabelledOut.of(r.form),
                outcome=LabelledOut.maybe(r.outcome), venue=r.venue, officer=r.officer, petitioner=r.petitioner,
            ) for r in file.receptions],
            respondents=[RespondentOut(**asdict(r)) for r in file.respondents],
            handling_decisions=[HandlingDecisionOut(
                id=d.id, direction=LabelledOut.of(d.direction), decided_on=d.decided_on, decided_by=d.decided_by,
                forwarded_to=d.forwarded_to, notes=d.notes) for d in file.decisions],
            directives=[DirectiveOut.of(v) for v in file.directives],
        )


class CaseHitOut(_Out):
    id: str
    tracking_code: str
    kind: LabelledOut
    status: LabelledOut
    summary: str
    venue: str | None
    confidential: bool
    created_at: str
    first_received_on: date | None
    version: int


class SearchOut(_Out):
    """One page of search results; ``total`` counts them all, ``more`` says another page follows."""

    total: int
    more: bool
    limit: int
    offset: int
    items: list[CaseHitOut]

    @classmethod
    def of(cls, result: SearchResult) -> SearchOut:
        return cls(total=result.total, more=result.more, limit=result.limit, offset=result.offset, items=[CaseHitOut(
            id=h.id, tracking_code=h.tracking_code, kind=LabelledOut.of(h.kind), status=LabelledOut.of(h.status),
            summary=h.summary, venue=h.venue, confidential=h.confidential, created_at=h.created_at.isoformat(),
            first_received_on=h.first_received_on, version=h.version) for h in result.items])


class MatchReasonOut(_Out):
    field: str
    how: str
    similarity: float
    label_vi: str


class DuplicateCandidateOut(_Out):
    petitioner_id: str
    display_name: str
    sealed: bool
    case_id: str | None
    tracking_code: str | None
    score: float
    reasons: list[MatchReasonOut]


class DuplicatesOut(_Out):
    """The duplicate check as the asker may see it: a sealed match withheld from whoever lacks
    ``identity_read`` is ``sealed_match`` and ``sealed_notice`` (one sentence), nothing else."""

    candidates: list[DuplicateCandidateOut]
    sealed_match: bool
    sealed_notice: str | None

    @classmethod
    def of(cls, check: DuplicateCheck, *, sealed_notice: str) -> DuplicatesOut:
        return cls(candidates=[DuplicateCandidateOut(
            petitioner_id=c.petitioner_id, display_name=c.display_name, sealed=c.sealed, case_id=c.case_id,
            tracking_code=c.tracking_code, score=c.candidate.score,
            reasons=[MatchReasonOut(field=r.field.value, how=r.how.value, similarity=r.similarity,
                                    label_vi=r.label_vi) for r in c.candidate.reasons],
        ) for c in check.candidates], sealed_match=check.sealed_match,
            sealed_notice=sealed_notice if check.sealed_match else None)


class IntakeOut(_Out):
    case_id: str
    tracking_code: str
    new_case: bool
    petitioner_id: str  # the party as stored (a sealed handle in a confidential case)
    petition_id: str
    reception_nth: int | None
    confidential: bool
    became_confidential: bool

    @classmethod
    def of(cls, result: IntakeResult) -> IntakeOut:
        return cls(**asdict(result))


class IdOut(_Out):
    id: str


class ReceptionAddedOut(_Out):
    id: str
    nth: int
    label: str  # "Lần tiếp thứ n"


class DirectiveIssuedOut(_Out):
    id: str
    deadline: date


class DirectiveReportedOut(_Out):
    id: str
    version: int


class AttachmentAddedOut(_Out):
    id: str
    name: str
    size: int
    sha256: str
    media_type: str


class IdentityOut(_Out):
    """A sealed identity, opened for a holder of ``identity_read`` (audited)."""

    petitioner_id: str
    full_name: str
    id_number: str | None
    id_kind: str | None
    birth_date: str | None
    address_detail: str | None
    commune_code: str | None
    phone: str | None
    organisation_name: str | None
    old_province_code: str | None
    old_district_code: str | None
    old_commune_code: str | None
    linked_to: str | None

    @classmethod
    def of(cls, petitioner_id: str, identity: Identity) -> IdentityOut:
        return cls(petitioner_id=petitioner_id, **asdict(identity))


# -- Vietnamese validation messages -----------------------------------------------------------------

_MESSAGES: dict[str, str] = {
    "missing": "Chưa nhập trường bắt buộc.",
    "extra_forbidden": "Trường này không được chấp nhận.",
    "string_too_short": "Chưa nhập hoặc quá ngắn (tối thiểu {min_length} ký tự).",
    "string_too_long": "Quá dài (tối đa {max_length} ký tự).",
    "string_pattern_mismatch": "Không đúng định dạng.",
    "string_type": "Phải là chuỗi ký tự.",
    "date_from_datetime_parsing": "Ngày không hợp lệ (định dạng YYYY-MM-DD).",
    "date_parsing": "Ngày không hợp lệ (định dạng YYYY-MM-DD).",
    "date_type": "Ngày không hợp lệ (định dạng YYYY-MM-DD).",
    "bool_parsing": "Phải là đúng hoặc sai (true/false).",
    "bool_type": "Phải là đúng hoặc sai (true/false).",
    "int_parsing": "Phải là số nguyên.",
    "int_type": "Phải là số nguyên.",
    "greater_than_equal": "Phải lớn hơn hoặc bằng {ge}.",
    "less_than_equal": "Phải nhỏ hơn hoặc bằng {le}.",
    "literal_error": "Giá trị không hợp lệ; các giá trị hợp lệ: {expected}.",
    "too_short": "Danh sách phải có ít nhất {min_length} phần tử.",
    "too_long": "Danh sách có quá nhiều phần tử (tối đa {max_length}).",
    "list_type": "Phải là một danh sách.",
    "model_type": "Phải là một đối tượng JSON.",
    "dict_type": "Phải là một đối tượng JSON.",
    "json_invalid": "Nội dung gửi lên không phải JSON hợp lệ.",
}


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``[{"field": "petition.received_on", "message": "…"}]`` from pydantic / FastAPI errors."""
    out = []
    for error in errors:
        loc: Sequence[Any] = error.get("loc", ())
        parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
        kind = str(error.get("type", ""))
        ctx = error.get("ctx") or {}
        if kind == "value_error" and "error" in ctx:
            message = str(ctx["error"])
        elif kind in _MESSAGES:
            try:
                message = _MESSAGES[kind].format(**{k: v for k, v in ctx.items()})
            except (KeyError, IndexError):
                message = _MESSAGES[kind]
        else:
            message = "Giá trị không hợp lệ."
        out.append({"field": ".".join(parts), "message": message})
    return out
