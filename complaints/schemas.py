"""Request models of the complaint API (pydantic), parsed once at the edge.

Enumerations accept their English value (or exact Vietnamese label) and refuse anything else with the
Vietnamese message of :meth:`complaints.enums.LabelledEnum.parse`. Rules that need today's date (no
future dates, a personal ID whose birth year lies ahead) are applied by ``to_domain(today)``, which
raises :class:`~complaints.errors.InvalidInput` / :class:`~complaints.errors.InvalidPersonalId`.
:func:`describe_errors` turns pydantic's errors into Vietnamese, field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

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

__all__ = [
    "PetitionerIn", "PetitionIn", "RespondentIn", "ReceptionDetailsIn", "IntakeIn", "DuplicateCheckIn",
    "CaseUpdateIn", "ReceptionIn", "PetitionAddIn", "PartyIn", "HandlingDecisionIn", "DelegationIn",
    "DirectiveIn", "DirectiveReportIn", "IdentityReadIn", "describe_errors", "not_in_future",
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
