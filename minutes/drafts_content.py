"""What the live minutes of one case hold (biên bản tiếp công dân, while it is written), and how a draft is
prefilled from the case file. Pure: no I/O, no clock.

:class:`MinutesContent` is the secretary's form as data: the attendees per venue, the citizen's request,
what was handled before, the local report, the discussion, the chair's conclusion, the answer (on the spot
or directed to units: LTCD Điều 18 k4), the reception outcome and the handling direction (the legal
enumerations of :mod:`complaints.enums`), the directives (unit, content, deadline in working days) and the
documents the citizen handed over with the receipt (TT 04/2021 Mẫu số 02). Every text is kept as typed
(HTML is text: whoever shows it escapes it); each has a length cap, so a paste of a whole file is refused
with a Vietnamese message instead of being cut.

A denouncer's identity is never part of it: :class:`DenouncerIdentity` travels beside it and is sealed in
complaints' identity vault (:mod:`minutes.drafts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from complaints.directives import MAX_DEADLINE_WORKING_DAYS, MAX_DIRECTIVE_CHARS
from complaints.dossier import HistoryItem, HistoryKind
from complaints.enums import HandlingDirection, ReceptionOutcome

__all__ = ["MAX_TEXT_CHARS", "MAX_ATTENDEE_CHARS", "MAX_VENUES", "MAX_DIRECTIVES", "MAX_DOCUMENTS",
           "VenueAttendees", "DirectiveDraft", "HandedDocument", "MinutesContent", "DenouncerIdentity",
           "TEXT_FIELDS", "FIELD_LABELS_VI", "prefill", "history_lines"]

MAX_TEXT_CHARS = 10_000      # one of the long texts (request, report, discussion, conclusion…)
MAX_ATTENDEE_CHARS = 2_000   # the people present at one venue
MAX_VENUES = 100             # venues are data: up to ~100 communes
MAX_DIRECTIVES = 50
MAX_DOCUMENTS = 100
MAX_SHORT_CHARS = 500

_Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
_Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
_Short = Annotated[str, StringConstraints(max_length=MAX_SHORT_CHARS)]

# The long texts of the form, in the order of the page; the Vietnamese labels name them in messages.
TEXT_FIELDS: tuple[str, ...] = ("citizen_request", "prior_handling", "local_report", "discussion", "conclusion")
FIELD_LABELS_VI: dict[str, str] = {
    "attendees": "Thành phần tham dự",
    "citizen_request": "Nội dung công dân trình bày, đề nghị",
    "prior_handling": "Quá trình giải quyết trước đây",
    "local_report": "Báo cáo của địa phương, đơn vị",
    "discussion": "Ý kiến trao đổi",
    "conclusion": "Kết luận của chủ trì",
    "answer": "Trả lời công dân",
    "outcome": "Kết quả tiếp",
    "handling_direction": "Hướng xử lý",
    "directives": "Ý kiến chỉ đạo",
    "documents": "Tài liệu, bằng chứng công dân cung cấp",
    "receipt_issued": "Giấy biên nhận",
    "identity": "Thông tin người tố cáo",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class VenueAttendees(_Model):
    """Who attended at one venue (officials with their positions, the citizen or the group's representatives
    as the law asks: never a denouncer's name, which belongs to :class:`DenouncerIdentity`)."""

    venue: _Code
    people: Annotated[str, StringConstraints(max_length=MAX_ATTENDEE_CHARS)] = ""


class DirectiveDraft(_Model):
    """A directive as the secretary writes it: the unit (``""`` while not chosen), the content, and the
    deadline in working days; ``deadline`` is computed by the server from the working-day calendar."""

    unit: Annotated[str, StringConstraints(max_length=64)] = ""
    content: Annotated[str, StringConstraints(max_length=MAX_DIRECTIVE_CHARS)] = ""
    working_days: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_WORKING_DAYS)
    deadline: date | None = None


class HandedDocument(_Model):
    """One line of the receipt (TT 04/2021 Mẫu số 02): the document, its pages, original or copy, a note."""

    title: _Short = ""
    pages: int | None = Field(default=None, ge=0, le=100_000)
    original: bool = False
    note: _Short = ""


class MinutesContent(_Model):
    attendees: list[VenueAttendees] = Field(default_factory=list, max_length=MAX_VENUES)
    citizen_request: _Text = ""
    prior_handling: _Text = ""
    local_report: _Text = ""
    discussion: _Text = ""
    conclusion: _Text = ""
    answer: Literal["on_the_spot", "directed"] | None = None
    outcome: ReceptionOutcome | None = None
    handling_direction: HandlingDirection | None = None
    directives: list[DirectiveDraft] = Field(default_factory=list, max_length=MAX_DIRECTIVES)
    documents: list[HandedDocument] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    receipt_issued: bool = False


class DenouncerIdentity(_Model):
    """A denouncer's identity typed into the minutes: sealed at once, never kept in the draft. A draft
    needs no complete or valid ID number (it is checked when the case is written)."""

    full_name: Annotated[str, StringConstraints(max_length=200)] = ""
    id_number: Annotated[str, StringConstraints(max_length=32)] = ""
    address: _Short = ""
    phone: Annotated[str, StringConstraints(max_length=32)] = ""

    @property
    def empty(self) -> bool:
        return not (self.full_name.strip() or self.id_number.strip() or self.address.strip() or self.phone.strip())


def history_lines(history: Iterable[HistoryItem]) -> str:
    """The case's history as lines of text (dates, legal terms, units: never a person's name)."""
    lines = []
    for item in history:
        text = f"{item.on:%d/%m/%Y}: {item.label}"
        if item.kind is HistoryKind.RECEPTION and item.nth is not None:
            text += f" (lần tiếp thứ {item.nth})"
        if item.detail:
            text += f" — {item.detail}"
        if item.due is not None:
            text += f", thời hạn {item.due:%d/%m/%Y}"
        lines.append(text)
    return "\n".join(lines)


def prefill(*, venue: str | None, requests: Sequence[str], summary: str, history: Iterable[HistoryItem],
            reception_number: int) -> MinutesContent:
    """The draft as it opens: the called venue among the attendees, the citizen's request from the
    registration (the petitions' requests, else the case summary), and the case's history."""
    asked = "\n\n".join(r.strip() for r in requests if r.strip()) or summary.strip()
    lines = history_lines(history)
    header = f"Lần tiếp thứ {reception_number}." if reception_number > 1 else "Tiếp lần đầu."
    return MinutesContent(
        attendees=[VenueAttendees(venue=venue)] if venue else [],
        citizen_request=asked[:MAX_TEXT_CHARS],
        prior_handling=(header + ("\n" + lines if lines else ""))[:MAX_TEXT_CHARS],
    )
