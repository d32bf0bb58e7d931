"""The documents people sign: the case minutes (biên bản tiếp công dân) and the session's conclusion notice
(thông báo kết luận), in the state-document layout, and their redacted public twins.

Theory of operation
-------------------
A document is a frozen dataclass (:class:`CaseMinutesDoc`, :class:`ConclusionNoticeDoc`) holding exactly
what it prints: the header (:class:`DocumentHeader`: the track, the issuing body and its parent, số/ký
hiệu, place and date), the content, the signature block and nơi nhận. :func:`render_html` fills the
Jinja2 template of its kind (``templates/documents``, autoescaped: whatever a field holds is printed as
text, never read as markup); :func:`render_pdf` lays the HTML out with WeasyPrint on A4 with the margins
of Nghị định 30/2020 in Liberation Serif (Debian's ``fonts-liberation2``, metric-compatible with Times New
Roman). Both are pure of I/O but blocking (a PDF takes a few hundred milliseconds): run them in a thread.

Two tracks differ in the header: the Party track prints "ĐẢNG CỘNG SẢN VIỆT NAM" and numbers as
"Số 15-TB/BNCTU"; the State track prints the Quốc hiệu "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM / Độc lập - Tự
do - Hạnh phúc" and numbers as "Số: 15/TB-BTCD".

:func:`redacted` gives the public twin (:attr:`Edition.PUBLIC`): no personal ID number, address, phone or
birth year of any citizen; for a case whose identity is sealed (a denunciation: LTC Điều 9, 47, 56; QĐ
774/QĐ-TTg), no name either — the petitioner is a neutral phrase — and every free text is scrubbed of
those values (diacritics, case and spacing ignored) and of any run of 9 to 12 digits (an ID or phone
number typed into a note). The conclusion notice never names a denouncer, in either edition: it goes to
the units that handle the case.

The QR code printed on a document points to its public verification page (:attr:`verification_url`).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, StrictUndefined

from complaints.enums import PetitionKind
from complaints.workdays import VIETNAM_TZ

__all__ = [
    "CaseMinutesDoc", "ConclusionNoticeDoc", "Citizen", "DirectiveLine", "Document", "DocumentHeader",
    "MAX_FIELD_CHARS", "QR_BORDER", "QR_SCALE",
    "DocumentKind", "Edition", "NoticeCase", "Official", "REDACTION_MARK", "SEALED_PETITIONER_VI",
    "SignatureBlock", "Track", "document_title", "redacted", "render_html", "render_pdf",
]

#: What replaces a redacted value in a free text.
REDACTION_MARK = "[đã ẩn]"
#: How a petitioner whose identity is sealed appears in every document a unit or the public sees.
SEALED_PETITIONER_VI = "Người tố cáo (danh tính được giữ bí mật theo quy định của Luật Tố cáo)"
#: The QR code's pixels per module and its quiet zone in modules (a lossless PNG: scanners read it sharp).
QR_SCALE, QR_BORDER = 4, 4
#: Longest text a field may hold (a 10,000-character paste fits, several times over).
MAX_FIELD_CHARS = 50_000


class Track(StrEnum):
    """Which system issues the document: a Party body (Quy định 66-QĐ/TW) or a State body (NĐ 30/2020)."""

    PARTY = "party"
    STATE = "state"


class DocumentKind(StrEnum):
    CASE_MINUTES = "case_minutes"            # biên bản tiếp công dân (one case)
    CONCLUSION_NOTICE = "conclusion_notice"  # thông báo kết luận (one session)

    @property
    def label_vi(self) -> str:
        return {"case_minutes": "Biên bản tiếp công dân",
                "conclusion_notice": "Thông báo kết luận"}[self.value]


class Edition(StrEnum):
    FULL = "full"      # the signed original (internal; a sealed identity appears only in a case's minutes)
    PUBLIC = "public"  # the redacted public twin


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    """The head of a state document: ``parent_body`` (cơ quan chủ quản, e.g. "TỈNH ỦY BẮC NINH"),
    ``issuing_body`` ("BAN NỘI CHÍNH"), số and ký hiệu (``number`` empty: not numbered yet), place and date."""

    track: Track
    parent_body: str
    issuing_body: str
    number: str
    symbol: str
    place: str
    issued_on: date

    @property
    def number_line(self) -> str:
        number = self.number or "\u00a0" * 6
        if self.track is Track.PARTY:
            return f"Số {number}-{self.symbol}"
        return f"Số: {number}/{self.symbol}"

    @property
    def date_line(self) -> str:
        d = self.issued_on
        return f"{self.place}, ngày {d.day:02d} tháng {d.month:02d} năm {d.year}"


@dataclass(frozen=True, slots=True)
class Official:
    """A person acting in office (their name and position are public in the document)."""

    name: str
    position: str = ""


@dataclass(frozen=True, slots=True)
class Citizen:
    """A petitioner as the minutes record them (LTCD Điều 7 k2: name and address, or an ID document)."""

    full_name: str
    id_number: str = ""
    address: str = ""
    phone: str = ""
    birth_year: int | None = None


@dataclass(frozen=True, slots=True)
class DirectiveLine:
    """The chair's directive: the unit, what it must do, by when (None: no deadline set)."""

    unit: str
    content: str
    deadline: date | None = None


@dataclass(frozen=True, slots=True)
class SignatureBlock:
    """Who signs: ``authority`` (thẩm quyền ký, e.g. "T/M BAN THƯỜNG VỤ", may be empty), ``position``
    ("BÍ THƯ"), ``name``."""

    authority: str
    position: str
    name: str


@dataclass(frozen=True, slots=True)
class CaseMinutesDoc:
    """Biên bản tiếp công dân of one case (TT 04/2021), signed by the secretary and the chair."""

    header: DocumentHeader
    session_id: str
    session_title: str
    held_at: datetime
    venue: str
    case_id: str
    tracking_code: str
    petition_kind: PetitionKind
    hosts: tuple[Official, ...]
    attendees: tuple[Official, ...]
    petitioners: tuple[Citizen, ...]
    identity_sealed: bool
    request: str
    local_report: str
    discussion: str
    conclusion: str
    handling_direction: str
    directives: tuple[DirectiveLine, ...]
    documents_received: tuple[str, ...]
    confirmation: str
    secretary: Official
    signature: SignatureBlock
    recipients: tuple[str, ...]
    verification_url: str = ""
    edition: Edition = Edition.FULL
    # How the read-back was confirmed (a signature drawn on screen and its hash, or aloud at a recording time)
    # and the chair's approval (who, when): sentences printed after the content; "" prints the plain
    # read-back sentence and no approval line (minutes.issuing fills both from minutes.approval).
    readback: str = ""
    approval: str = ""
    kind: DocumentKind = field(default=DocumentKind.CASE_MINUTES, init=False)


@dataclass(frozen=True, slots=True)
class NoticeCase:
    """One case of a conclusion notice, in call order."""

    order: int
    tracking_code: str
    venue: str
    petition_kind: PetitionKind
    petitioners: tuple[Citizen, ...]
    identity_sealed: bool
    content: str
    conclusion: str
    directives: tuple[DirectiveLine, ...]


@dataclass(frozen=True, slots=True)
class ConclusionNoticeDoc:
    """Thông báo kết luận of a reception session (TT 04/2021; published with redaction, R8)."""

    header: DocumentHeader
    subject: str       # the line under "THÔNG BÁO", e.g. "Kết luận của đồng chí Bí thư Tỉnh ủy tại …"
    session_id: str
    held_on: date
    host: Official
    venues: tuple[str, ...]
    attending_bodies: tuple[str, ...]
    cases: tuple[NoticeCase, ...]
    closing: str
    signature: SignatureBlock
    recipients: tuple[str, ...]
    verification_url: str = ""
    edition: Edition = Edition.FULL
    kind: DocumentKind = field(default=DocumentKind.CONCLUSION_NOTICE, init=False)


Document = CaseMinutesDoc | ConclusionNoticeDoc
_D = TypeVar("_D", CaseMinutesDoc, ConclusionNoticeDoc)


def document_title(doc: Document) -> str:
    """The PDF title: kind and số/ký hiệu (never a person)."""
    return f"{doc.kind.label_vi} {doc.header.number_line}".strip()


# -- redaction ---------------------------------------------------------------------------------------

# 9 to 12 digits, maybe grouped by spaces or dots (an ID or phone number in a note); not inside a longer
# run or a code joined by hyphens (tracking codes, dates).
_DIGIT_RUN = re.compile(r"(?<![0-9-])(?:[0-9][ .]?){8,11}[0-9](?![0-9-])")


def _fold_char(ch: str) -> str:
    """One character without diacritics, lower case; length-preserving (so folded offsets are offsets)."""
    if ch in "đĐ":
        return "d"
    base = unicodedata.normalize("NFD", ch)[0]
    return base.lower() if len(base.lower()) == 1 else ch


def _fold(text: str) -> str:
    return "".join(_fold_char(c) for c in text)


def _needle_pattern(value: str) -> re.Pattern[str] | None:
    words = _fold(unicodedata.normalize("NFC", value)).split()
    if not words or sum(len(w) for w in words) < 3:
        return None
    return re.compile(r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)")


class _Scrubber:
    """Removes the sensitive values from texts: diacritics, case and spacing ignored; whole words only."""

    def __init__(self, values: list[str]) -> None:
        patterns = [_needle_pattern(v) for v in sorted({v for v in values if v.strip()}, key=len, reverse=True)]
        self._patterns = [p for p in patterns if p is not None]

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = unicodedata.normalize("NFC", text)
        for pattern in self._patterns:
            folded = _fold(text)
            spans = [m.span() for m in pattern.finditer(folded)]
            for start, end in reversed(spans):
                text = text[:start] + REDACTION_MARK + text[end:]
        return _DIGIT_RUN.sub(REDACTION_MARK, text)


def _sensitive_values(people: list[tuple[Citizen, bool]]) -> list[str]:
    values: list[str] = []
    for person, sealed in people:
        values += [person.id_number, person.address, person.phone]
        if sealed:
            words = person.full_name.split()
            values.append(person.full_name)
            if len(words) >= 3:
                values.append(" ".join(words[-2:]))  # "Văn Hùng"
            if words and len(words[-1]) >= 3:
                values.append(words[-1])             # the given name alone: "ông Hùng"
    return values


def _public_citizen(person: Citizen, sealed: bool) -> Citizen:
    return Citizen(full_name="" if sealed else person.full_name)


def _scrub_tree(value: Any, scrub: _Scrubber) -> Any:
    if isinstance(value, str) and not isinstance(value, StrEnum):
        return scrub(value)
    if isinstance(value, tuple):
        return tuple(_scrub_tree(v, scrub) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _scrub_tree(getattr(value, f.name), scrub) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def redacted(doc: _D) -> _D:
    """The public twin of ``doc`` (see the module docstring): same kind, :attr:`Edition.PUBLIC`."""
    if isinstance(doc, CaseMinutesDoc):
        people = [(p, doc.identity_sealed) for p in doc.petitioners]
        scrub = _Scrubber(_sensitive_values(people))
        minutes = dataclasses.replace(
            doc, petitioners=tuple(_public_citizen(p, doc.identity_sealed) for p in doc.petitioners),
            edition=Edition.PUBLIC)
        result: Any = _scrub_tree(minutes, scrub)
        return dataclasses.replace(result, verification_url=doc.verification_url)  # type: ignore[no-any-return]
    people = [(p, c.identity_sealed) for c in doc.cases for p in c.petitioners]
    scrub = _Scrubber(_sensitive_values(people))
    notice = dataclasses.replace(doc, cases=tuple(
        dataclasses.replace(c, petitioners=tuple(_public_citizen(p, c.identity_sealed) for p in c.petitioners))
        for c in doc.cases), edition=Edition.PUBLIC)
    result = _scrub_tree(notice, scrub)
    return dataclasses.replace(result, verification_url=doc.verification_url)  # type: ignore[no-any-return]


def _unit_view(doc: ConclusionNoticeDoc) -> ConclusionNoticeDoc:
    """The notice as it is printed in either edition: a sealed petitioner never named (it goes to units)."""
    people = [(p, True) for c in doc.cases if c.identity_sealed for p in c.petitioners]
    if not people:
        return doc
    scrub = _Scrubber(_sensitive_values(people))
    cases = tuple(
        _scrub_tree(dataclasses.replace(c, petitioners=tuple(_public_citizen(p, True) for p in c.petitioners)),
                    scrub) if c.identity_sealed else c
        for c in doc.cases)
    return dataclasses.replace(doc, cases=cases)


# -- rendering ---------------------------------------------------------------------------------------


def _vn_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(VIETNAM_TZ).strftime("%H giờ %M, ngày %d/%m/%Y")
    return value.strftime("%d/%m/%Y")


def _qr_data_uri(url: str) -> str:
    import segno

    return str(segno.make(url, error="m", micro=False).png_data_uri(scale=QR_SCALE, border=QR_BORDER))


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("minutes", "templates/documents"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["vn_date"] = _vn_date
    env.globals["SEALED_PETITIONER_VI"] = SEALED_PETITIONER_VI
    return env


def _check_sizes(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"field {path or '?'} is longer than {MAX_FIELD_CHARS} characters")
    elif isinstance(value, tuple):
        for item in value:
            _check_sizes(item, path)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _check_sizes(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)


def render_html(doc: Document) -> str:
    """The document as one HTML page (every field escaped). Raises ``ValueError`` for a field longer than
    :data:`MAX_FIELD_CHARS` (the forms cap their fields well below it)."""
    _check_sizes(doc)
    if isinstance(doc, ConclusionNoticeDoc):
        doc = _unit_view(doc)
    template = _environment().get_template(f"{doc.kind.value}.html")
    qr = _qr_data_uri(doc.verification_url) if doc.verification_url else ""
    return template.render(doc=doc, header=doc.header, qr=qr, title=document_title(doc),
                           party=doc.header.track is Track.PARTY, public=doc.edition is Edition.PUBLIC)


def render_pdf(doc: Document) -> bytes:
    """The document as a PDF (A4, Liberation Serif, no attachments; the metadata name only the kind, the
    số/ký hiệu and the issuing body). Blocking: call it from a worker thread."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    html = render_html(doc)
    # Only data: URIs (the QR code) are fetched: a document never reaches the network or the disk.
    fetcher = URLFetcher(allowed_protocols={"data"}, allow_redirects=False)
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf(attachments=[], custom_metadata=False)
    return pdf
