"""Building the signed documents from the live minutes: a case's biên bản (:class:`CaseMinutesDoc`) from its
draft, and a session's thông báo kết luận (:class:`ConclusionNoticeDoc`) from the drafts of its cases.

Theory of operation
-------------------
The minutes do not read the session table (``schedules`` is not imported here): the caller passes what the
document prints of the session as :class:`SessionFacts` (its id, title, day, host and venue names).

* **Track and issuers.** The session says whose bodies issue its documents (:attr:`SessionFacts.track`, chosen
  when the session is planned: ``schedules.default_track`` of its host unless the planner chose). Each track
  has its issuing body (:class:`Issuer`); the deployment's :class:`IssuerBook` holds both and the names of the
  leaders who host (leader id → :class:`Leader`), read from the JSON file ``TIEPDAN_ISSUERS_FILE``
  (:func:`load_issuer_book`, the layout in ``docs/documents.md``). Without a file, :data:`DEFAULT_BOOK`: the
  bodies of the pilot province, Bắc Ninh, and no names (the documents then name the host by office alone).
* **Numbering.** The số is left blank (the clerk, văn thư, numbers the document in the register); the ký hiệu
  is the issuer's.
* **People.** The biên bản names the citizens of the case (name, ID number, address, phone, birth year): the
  registered petitioners and, for a denunciation, the identity the secretary typed into the minutes. A
  sealed identity is opened for the document by the minutes service (audited ``identity.view``, purpose
  ``biên bản``): it goes only into the original, which the store keeps encrypted and the console gives only
  to holders of ``identity_read`` ("MẬT"); the public twin scrubs it. The notice receives the sealed
  identities too, only so that the renderer can scrub them from every text: it never prints them
  (:func:`minutes.documents.render_html`).
* **Texts** are taken as the secretary typed them (the renderer escapes them); the directives name their
  units by name, with the deadline the draft computed in working days.
* **Confirmation and approval** (:mod:`minutes.approval`) are stated only for the content as it is printed:
  a confirmation or an approval of another version (the draft was saved since) counts as none. The biên bản
  says how the citizen confirmed the read-back — a signature drawn on screen (when, and the SHA-256 of the
  kept PNG) or aloud (when, and the time in the case's recording where it can be heard) — with the SHA-256 of
  the confirmed content, then who approved it as chair and when; otherwise that it is not confirmed or not
  approved yet.

Every function reads within the caller's transaction and writes only the audit rows of the identity views.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.cases import get_case
from complaints.errors import NotFound
from complaints.tables import petition_parties, petitioners, petitions, units
from complaints.vault import read_identity
from evidence import Keyring
from signaling.grants import Grant

from .approval import format_media_time
from .closing import content_sha256
from .documents import (
    CaseMinutesDoc,
    Citizen,
    ConclusionNoticeDoc,
    DirectiveLine,
    DocumentHeader,
    NoticeCase,
    Official,
    SignatureBlock,
    Track,
)
from .drafts import VIETNAM_TZ, Author, Draft, load_draft
from .drafts_content import MinutesContent
from .tables import minutes_approvals, minutes_drafts, minutes_signatures

__all__ = ["Issuer", "IssuerBook", "IssuerBookError", "Leader", "PARTY_ISSUER", "STATE_ISSUER", "DEFAULT_BOOK",
           "SessionFacts", "NothingToIssue", "case_minutes_doc", "conclusion_notice_doc", "load_issuer_book"]
_IMPLIED_READ = frozenset({Grant.IDENTITY_READ})  # the document's own use of a sealed identity (module doc)


class NothingToIssue(NotFound):
    """No minutes to build the document from (the case was not called in the session, or no case was)."""


@dataclass(frozen=True)
class Issuer:
    """The body that issues the documents of one track, and who signs them."""

    track: Track
    parent_body: str
    issuing_body: str
    issuing_body_title: str     # the body in a sentence ("Ban Nội chính Tỉnh ủy")
    minutes_symbol: str
    notice_symbol: str
    place: str
    host_position: str          # the host's office, as the notice names it
    signature: SignatureBlock
    recipients: tuple[str, ...] = field(default=())


PARTY_ISSUER = Issuer(
    track=Track.PARTY, parent_body="TỈNH ỦY BẮC NINH", issuing_body="BAN NỘI CHÍNH",
    issuing_body_title="Ban Nội chính Tỉnh ủy", minutes_symbol="BB/BNCTU", notice_symbol="TB/BNCTU",
    place="Bắc Ninh", host_position="Bí thư Tỉnh ủy",
    signature=SignatureBlock("T/L BAN THƯỜNG VỤ", "TRƯỞNG BAN NỘI CHÍNH", ""),
    recipients=("Thường trực Tỉnh ủy (để b/c)",))
STATE_ISSUER = Issuer(
    track=Track.STATE, parent_body="UBND TỈNH BẮC NINH", issuing_body="BAN TIẾP CÔNG DÂN",
    issuing_body_title="Ban Tiếp công dân tỉnh", minutes_symbol="BB-BTCD", notice_symbol="TB-BTCD",
    place="Bắc Ninh", host_position="Chủ tịch UBND tỉnh",
    signature=SignatureBlock("TL. CHỦ TỊCH", "TRƯỞNG BAN TIẾP CÔNG DÂN", ""),
    recipients=("Chủ tịch UBND tỉnh (để b/c)",))


@dataclass(frozen=True)
class Leader:
    """A leader who hosts sessions, as the documents name him or her: "Đồng chí <name>, <position>"."""

    name: str
    position: str


@dataclass(frozen=True)
class IssuerBook:
    """The deployment's issuing bodies (one per track) and the names of its leaders (by leader id)."""

    party: Issuer
    state: Issuer
    leaders: Mapping[str, Leader] = field(default_factory=dict)

    def issuer(self, track: Track) -> Issuer:
        return self.party if track is Track.PARTY else self.state

    def host_name(self, host: str | None, issuer: Issuer) -> str:
        """The host as a document names him or her (without "Đồng chí")."""
        leader = self.leaders.get(host or "")
        return f"{leader.name}, {leader.position}" if leader is not None else issuer.host_position


DEFAULT_BOOK = IssuerBook(party=PARTY_ISSUER, state=STATE_ISSUER)


class IssuerBookError(ValueError):
    """The issuers file cannot be used (the message says which field, in English for the operator's log)."""


class _SignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    authority: str = Field(default="", max_length=120)
    position: str = Field(min_length=1, max_length=120)
    name: str = Field(default="", max_length=120)


class _IssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent_body: str = Field(min_length=1, max_length=200)
    issuing_body: str = Field(min_length=1, max_length=200)
    issuing_body_title: str = Field(min_length=1, max_length=200)
    minutes_symbol: str = Field(min_length=1, max_length=40)
    notice_symbol: str = Field(min_length=1, max_length=40)
    place: str = Field(min_length=1, max_length=100)
    host_position: str = Field(min_length=1, max_length=200)
    signature: _SignatureIn
    recipients: list[str] = Field(default_factory=list, max_length=20)


class _LeaderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    position: str = Field(min_length=1, max_length=200)


class _BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    party: _IssuerIn
    state: _IssuerIn
    leaders: dict[str, _LeaderIn] = Field(default_factory=dict, max_length=500)


def _issuer(track: Track, raw: _IssuerIn) -> Issuer:
    sig = raw.signature
    return Issuer(track=track, parent_body=raw.parent_body, issuing_body=raw.issuing_body,
                  issuing_body_title=raw.issuing_body_title, minutes_symbol=raw.minutes_symbol,
                  notice_symbol=raw.notice_symbol, place=raw.place, host_position=raw.host_position,
                  signature=SignatureBlock(sig.authority, sig.position, sig.name),
                  recipients=tuple(r for r in (x.strip() for x in raw.recipients) if r))


def load_issuer_book(path: Path | None) -> IssuerBook:
    """The issuers of ``path`` (JSON; see the module docstring), or :data:`DEFAULT_BOOK` when None. Any problem
    (unreadable, not JSON, a field missing, unknown or too long) is an :class:`IssuerBookError` naming it."""
    if path is None:
        return DEFAULT_BOOK
    try:
        raw = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise IssuerBookError(f"TIEPDAN_ISSUERS_FILE {path}: cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IssuerBookError(f"TIEPDAN_ISSUERS_FILE {path}: not UTF-8 JSON ({exc})") from None
    try:
        book = _BookIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise IssuerBookError(f"TIEPDAN_ISSUERS_FILE {path}: {where}: {first['msg']} "
                              f"({exc.error_count()} problem(s))") from None
    for leader_id in book.leaders:
        if not _LEADER_ID.fullmatch(leader_id):
            raise IssuerBookError(f"TIEPDAN_ISSUERS_FILE {path}: leaders: {leader_id!r} is not a leader id "
                                  "(lower-case letters, digits and hyphens)")
    return IssuerBook(party=_issuer(Track.PARTY, book.party), state=_issuer(Track.STATE, book.state),
                      leaders={k: Leader(name=v.name, position=v.position) for k, v in book.leaders.items()})


_LEADER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class SessionFacts:
    """What the documents print of a reception session (the caller reads it from ``schedules``)."""

    session_id: str
    title: str
    day: date
    host: str | None
    venues: Mapping[str, str]   # venue id → the name the session announced, in the session's order
    track: Track                # whose bodies issue its documents


def _header(issuer: Issuer, symbol: str, today: date) -> DocumentHeader:
    return DocumentHeader(track=issuer.track, parent_body=issuer.parent_body, issuing_body=issuer.issuing_body,
                          number="", symbol=symbol, place=issuer.place, issued_on=today)


async def _unit_names(conn: AsyncConnection, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {uid: name for uid, name in await conn.execute(select(units.c.id, units.c.name).where(units.c.id.in_(ids)))}


def _directives(content: MinutesContent, names: Mapping[str, str]) -> tuple[DirectiveLine, ...]:
    return tuple(DirectiveLine(unit=names.get(d.unit, d.unit), content=d.content, deadline=d.deadline)
                 for d in content.directives if d.unit or d.content.strip())


def _handed(content: MinutesContent) -> tuple[str, ...]:
    lines = []
    for item in content.documents:
        if not item.title.strip():
            continue
        details = [f"{item.pages} trang" if item.pages is not None else "", "bản chính" if item.original else "bản sao"]
        text = f"{item.title.strip()} ({', '.join(d for d in details if d)})"
        lines.append(text + (f" — {item.note.strip()}" if item.note.strip() else ""))
    return tuple(lines)


async def _citizens(conn: AsyncConnection, keyring: Keyring, draft: Draft, *, actor: str) -> tuple[Citizen, ...]:
    """The case's petitioners as the original prints them; sealed identities opened (audited)."""
    parties = select(petition_parties.c.petitioner_id) \
        .join(petitions, petitions.c.id == petition_parties.c.petition_id).where(petitions.c.case_id == draft.case_id)
    rows = list((await conn.execute(select(petitioners).where(petitioners.c.id.in_(parties))
                                    .order_by(petitioners.c.handle))).mappings())
    sealed_own = (await conn.execute(select(minutes_drafts.c.sealed_petitioner)
                                     .where(minutes_drafts.c.id == draft.id))).scalar_one_or_none()
    if sealed_own is not None and all(r["id"] != sealed_own for r in rows):
        rows += list((await conn.execute(select(petitioners).where(petitioners.c.id == sealed_own))).mappings())
    people = []
    for row in rows:
        if row["sealed"]:
            identity = await read_identity(conn, keyring, row["id"], actor=actor, grants=_IMPLIED_READ,
                                           purpose="biên bản tiếp công dân")
            born = identity.birth_date[:4] if identity.birth_date else ""
            people.append(Citizen(full_name=identity.full_name or identity.organisation_name or "",
                                  id_number=identity.id_number or "", address=identity.address_detail or "",
                                  phone=identity.phone or "", birth_year=int(born) if born.isdigit() else None))
        else:
            birth = row["birth_date"]
            people.append(Citizen(full_name=row["full_name"] or row["organisation_name"] or "",
                                  id_number=row["id_number"] or "", address=row["address_detail"] or "",
                                  phone=row["phone"] or "", birth_year=birth.year if birth else None))
    return tuple(people)


def _at(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite: naive, written in UTC
    return aware.astimezone(VIETNAM_TZ).strftime("%H giờ %M, ngày %d/%m/%Y")


async def _confirmation(conn: AsyncConnection, draft: Draft, host: str) -> tuple[str, str]:
    """The read-back sentence and the approval sentence of the biên bản (see the module docstring)."""
    row = (await conn.execute(select(minutes_approvals).where(minutes_approvals.c.draft_id == draft.id))
           ).mappings().first()
    digest = content_sha256(draft.content)
    if row is None or row["confirmation"] is None or row["confirmed_sha256"] != digest \
            or row["confirmed_at"] is None:
        read = row is not None and row["readback_sha256"] == digest
        readback = ("Biên bản đã được đọc lại cho công dân nghe; công dân chưa xác nhận." if read
                    else "Biên bản chưa được đọc lại và chưa được công dân xác nhận.")
    else:
        when = _at(row["confirmed_at"])
        if row["confirmation"] == "signature":
            signature = (await conn.execute(select(minutes_signatures.c.sha256).where(
                minutes_signatures.c.id == row["signature_id"]))).scalar_one()
            how = (f"công dân đã ký xác nhận trên màn hình lúc {when} (chữ ký lưu kèm hồ sơ, mã SHA-256 của chữ ký: "
                   f"{signature})")
        else:
            how = (f"công dân đã xác nhận bằng lời lúc {when}, tại thời điểm "
                   f"{format_media_time(int(row['verbal_media_s']))} của bản ghi hình vụ việc")
        readback = (f"Biên bản đã được đọc lại cho công dân nghe; {how}. Nội dung được xác nhận có mã SHA-256: "
                    f"{digest}.")
    if row is None or row["approved_sha256"] != digest or row["approved_at"] is None:
        return readback, "Biên bản chưa được người chủ trì phê duyệt."
    chair = (row["approved_name"] or "").strip() or f"Đồng chí {host}"
    return readback, f"{chair}, người chủ trì, đã phê duyệt biên bản lúc {_at(row['approved_at'])}."


async def case_minutes_doc(conn: AsyncConnection, keyring: Keyring, *, session: SessionFacts, case_id: str,
                           author: Author, secretary: Official, today: date,
                           book: IssuerBook = DEFAULT_BOOK) -> CaseMinutesDoc:
    """The biên bản of ``case_id`` in ``session`` from its draft as saved last. Raises :class:`NothingToIssue`
    (no draft: the case was not called in the session) and ``DraftForbidden`` (no minutes/approve grant)."""
    try:
        draft = await load_draft(conn, session_id=session.session_id, case_id=case_id, author=author)
    except NotFound:
        raise NothingToIssue("Vụ việc chưa được gọi trong phiên này: chưa có biên bản để phát hành.") from None
    issuer = book.issuer(session.track)
    host = book.host_name(session.host, issuer)
    case = await get_case(conn, case_id)
    content = draft.content
    names = await _unit_names(conn, {d.unit for d in content.directives if d.unit})
    attendees = tuple(Official(name=a.people.strip(), position=session.venues.get(a.venue, a.venue))
                      for a in content.attendees if a.people.strip())
    venue = session.venues.get(draft.venue or "", draft.venue or "")
    discussion = "\n\n".join(t for t in (content.prior_handling.strip(), content.discussion.strip()) if t)
    direction = content.handling_direction.label_vi if content.handling_direction is not None else ""
    readback, approval = await _confirmation(conn, draft, host)
    return CaseMinutesDoc(
        header=_header(issuer, issuer.minutes_symbol, today), session_id=session.session_id,
        session_title=session.title or "phiên tiếp công dân", held_at=draft.opened_at, venue=venue,
        case_id=case_id, tracking_code=case.tracking_code, petition_kind=case.kind,
        hosts=(Official(name=f"Đồng chí {host}", position="chủ trì buổi tiếp"),),
        attendees=attendees, petitioners=await _citizens(conn, keyring, draft, actor=author.label),
        identity_sealed=draft.holds_identity, request=content.citizen_request, local_report=content.local_report,
        discussion=discussion, conclusion=content.conclusion, handling_direction=direction,
        directives=_directives(content, names), documents_received=_handed(content),
        confirmation="Đã cấp giấy biên nhận tài liệu cho công dân." if content.receipt_issued else "",
        secretary=secretary, signature=SignatureBlock("", "NGƯỜI CHỦ TRÌ", ""),
        recipients=("Công dân", *(names.get(d.unit, d.unit) for d in content.directives if d.unit),
                    "Lưu hồ sơ vụ việc"),
        readback=readback, approval=approval,
    )


async def _session_drafts(conn: AsyncConnection, session_id: str) -> Sequence[tuple[str, int | None]]:
    rows = (await conn.execute(select(minutes_drafts.c.case_id, minutes_drafts.c.call_seq)
                               .where(minutes_drafts.c.session_id == session_id)
                               .order_by(minutes_drafts.c.opened_at, minutes_drafts.c.id))).all()
    ordered = sorted(rows, key=lambda r: (r.call_seq is None, r.call_seq or 0))
    return [(r.case_id, r.call_seq) for r in ordered]


async def conclusion_notice_doc(conn: AsyncConnection, keyring: Keyring, *, session: SessionFacts, author: Author,
                                today: date, book: IssuerBook = DEFAULT_BOOK) -> ConclusionNoticeDoc:
    """The thông báo kết luận of ``session``: its cases in call order with their requests, conclusions and
    directives. Raises :class:`NothingToIssue` when no case was called in it."""
    cases_called = await _session_drafts(conn, session.session_id)
    if not cases_called:
        raise NothingToIssue("Phiên chưa có vụ việc nào được gọi: chưa có nội dung để ra thông báo kết luận.")
    issuer = book.issuer(session.track)
    host = book.host_name(session.host, issuer)
    items: list[NoticeCase] = []
    bodies: dict[str, None] = {}
    for order, (case_id, _) in enumerate(cases_called, start=1):
        draft = await load_draft(conn, session_id=session.session_id, case_id=case_id, author=author)
        case = await get_case(conn, case_id)
        names = await _unit_names(conn, {d.unit for d in draft.content.directives if d.unit})
        bodies.update(dict.fromkeys(names.values()))
        items.append(NoticeCase(
            order=order, tracking_code=case.tracking_code,
            venue=session.venues.get(draft.venue or "", draft.venue or ""), petition_kind=case.kind,
            petitioners=await _citizens(conn, keyring, draft, actor=author.label),
            identity_sealed=draft.holds_identity, content=draft.content.citizen_request,
            conclusion=draft.content.conclusion, directives=_directives(draft.content, names)))
    held = session.day
    return ConclusionNoticeDoc(
        header=_header(issuer, issuer.notice_symbol, today),
        subject=(f"Kết luận của đồng chí {host} tại {session.title or 'buổi tiếp công dân'} "
                 f"ngày {held:%d/%m/%Y}"),
        session_id=session.session_id, held_on=held, host=Official(name=f"đồng chí {host}"),
        venues=tuple(session.venues.values()), attending_bodies=tuple(bodies),
        cases=tuple(items),
        closing=f"{issuer.issuing_body_title} thông báo để các cơ quan, đơn vị, địa phương biết, thực hiện.",
        signature=issuer.signature,
        recipients=(*issuer.recipients, *bodies, "Lưu Văn phòng"),
    )


def vietnam_today(now: datetime) -> date:
    """The day in Vietnam at ``now`` (an aware datetime)."""
    return now.astimezone(VIETNAM_TZ).date()


__all__ += ["vietnam_today"]
