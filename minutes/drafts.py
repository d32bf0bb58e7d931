"""The live minutes of a case while it is heard: one draft per case and session, saved continuously, with
every version kept.

Theory of operation
-------------------
* **Opening.** ``case.called`` opens the draft of (session, case) (:func:`open_draft`, called by the bus
  consumer :mod:`minutes.drafts_consumer`), prefilled from the case file (the registration's requests, the
  case's history, "lần tiếp thứ n": :func:`minutes.drafts_content.prefill`) as version 1. Opening an open
  draft again (a replayed event, a recall) returns it unchanged. The draft keeps what the session was
  (:class:`SessionReception`: loại tiếp, hình thức tiếp, host), which the app reads from the scheduler for the
  consumer (:data:`SessionLookup`): the reception entry written at closing says it.
* **Saving.** The secretary's page saves the whole form every second or so while typing
  (:func:`save_draft`), naming the version it was based on. A save based on the current version becomes the
  next version; a save that changes nothing keeps the version. A save based on an older version is a
  :class:`DraftConflict` carrying the current version, who saved it and when — never a silent overwrite —
  unless every version after its base came from the same page (``client``): a page whose answer was lost
  (the server died after committing) must not conflict with itself. Two saves racing on one version: the
  guarded ``UPDATE … WHERE version = n`` lets one through; the other gets the conflict.
* **Versions.** ``minutes_draft_versions`` keeps every saved version (content, who, when, the page, its
  base): :func:`list_versions`, :func:`load_version`.
* **A denouncer's identity** typed into the minutes of a denunciation (or of a confidential case) is
  sealed in complaints' identity vault at once, under a sealed petitioner the draft creates (the draft
  holds only its id; the page shows its pseudonymous handle). Neither the draft's content nor any version
  ever holds it. Writing it needs the minutes grant: the vault's write grant is implied for this one
  record, which the draft itself created (it discloses nothing and corrects no record on file). Nobody
  reads it back through the minutes; a new identity typed later replaces the sealed one whole.
* **Who.** Writing needs :attr:`Grant.MINUTES` (the secretary; the chair too); reading needs the minutes or
  the approval grant. A refusal is :class:`DraftForbidden`.

Each writing function runs in the caller's transaction: the draft, its version row and the audit row
(opening; the vault writes its own) commit together. Draft saves put nothing on the bus: events never carry
minutes text, and nothing consumes a keystroke; the finished minutes announce themselves when the case is
written (``case.recorded``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.audit import append_audit
from complaints.cases import get_case
from complaints.confidentiality import is_confidential
from complaints.directives import known_active_units
from complaints.dossier import load_dossier
from complaints.enums import PetitionerType, PetitionKind, ReceptionForm, ReceptionType
from complaints.errors import ComplaintsError, InvalidInput, NotFound, StaleVersion
from complaints.identity import normalize_id_number
from complaints.petitioners import NewPetitioner, register_petitioner
from complaints.schemas import describe_errors
from complaints.tables import cases, petitioners, petitions
from complaints.vault import Identity, seal_identity
from complaints.workdays import VIETNAM_TZ, WorkCalendar
from evidence import Keyring
from signaling.grants import Grant

from .drafts_content import FIELD_LABELS_VI, DenouncerIdentity, MinutesContent, prefill
from .tables import minutes_draft_versions, minutes_drafts

__all__ = ["Author", "Draft", "DraftSaved", "DraftVersion", "DraftSummary", "DraftConflict", "DraftForbidden",
           "DraftInvalid", "DraftClosed", "open_draft", "load_draft", "save_draft", "list_versions", "load_version",
           "list_drafts", "WRITE_GRANT", "READ_GRANTS", "SERVICE_AUTHOR", "VIETNAM_TZ", "may_hold_identity",
           "SessionReception", "SessionLookup"]

WRITE_GRANT = Grant.MINUTES
READ_GRANTS = frozenset({Grant.MINUTES, Grant.APPROVE})
_MAX_CLIENT = 64


@dataclass(frozen=True)
class Author:
    """Who acts: the label written in records (``user:<id>``, ``service:<id>``, never a name) and the grants."""

    label: str
    grants: frozenset[Grant]


SERVICE_AUTHOR = Author("service:minutes", frozenset())


class DraftForbidden(ComplaintsError, PermissionError):
    code = "forbidden"


class DraftClosed(ComplaintsError):
    code = "draft_closed"


class DraftInvalid(InvalidInput):
    """A save refused field by field (``errors``: ``[{"field", "message"}]``, Vietnamese); nothing was stored."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0] if errors else {"field": "", "message": "Dữ liệu không hợp lệ."}
        label = FIELD_LABELS_VI.get(first["field"].split(".")[0], "")
        message = f"Biên bản chưa được lưu: {label + ': ' if label else ''}{first['message']}"
        super().__init__(message, code="invalid_input", field=first["field"] or None)
        self.errors = errors


@dataclass(frozen=True)
class DraftVersion:
    version: int
    saved_by: str
    saved_at: datetime
    client: str | None
    base_version: int | None
    content: MinutesContent | None = None  # None in listings


class DraftConflict(StaleVersion):
    """The draft moved on since the version the page was based on; ``current`` is the server's version
    (with its content), so the page can show it beside its own."""

    def __init__(self, current: DraftVersion) -> None:
        super().__init__(
            f"Biên bản đã được lưu ở phiên bản {current.version} lúc "
            f"{current.saved_at.astimezone(VIETNAM_TZ):%H:%M:%S} bởi người khác; bản của bạn chưa được lưu.",
            code="conflict")
        self.current = current


@dataclass(frozen=True)
class SessionReception:
    """What the minutes record of the session a case is heard in: its loại tiếp (periodic or ad hoc), its
    hình thức tiếp (online here) and its host (a leader id; None: not named)."""

    reception_type: ReceptionType
    form: ReceptionForm
    host: str | None = None


#: How the drafts consumer learns a session's :class:`SessionReception` (the app reads the scheduler's table;
#: None: no such session).
SessionLookup = Callable[[AsyncConnection, str], Awaitable[SessionReception | None]]


@dataclass(frozen=True)
class Draft:
    id: str
    case_id: str
    session_id: str
    call_seq: int | None
    venue: str | None
    state: str
    version: int
    content: MinutesContent
    opened_by: str
    opened_at: datetime
    updated_by: str
    updated_at: datetime
    issued_on: date                 # the day of the reception: directives' deadlines count from it
    sealed_handle: str | None       # the pseudonym of the sealed denouncer's identity, when one was typed
    holds_identity: bool            # a denunciation or confidential case: the identity section applies
    reception: SessionReception     # what the session was when the case was called


@dataclass(frozen=True)
class DraftSaved:
    draft: Draft
    created: bool                   # False: the save changed nothing (the version stays)


@dataclass(frozen=True)
class DraftSummary:
    session_id: str
    case_id: str
    tracking_code: str
    venue: str | None
    state: str
    version: int
    updated_at: datetime


def _require(author: Author, grants: frozenset[Grant], message: str) -> None:
    if author.grants.isdisjoint(grants):
        raise DraftForbidden(message)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def may_hold_identity(conn: AsyncConnection, case_id: str) -> bool:
    """A denunciation (or a confidential case): its minutes have a sealed identity section."""
    case = await get_case(conn, case_id)
    return case.kind is PetitionKind.DENUNCIATION or case.confidential or await is_confidential(conn, case_id)


async def _draft_row(conn: AsyncConnection, session_id: str, case_id: str) -> Any:
    return (await conn.execute(select(minutes_drafts).where(
        minutes_drafts.c.session_id == session_id, minutes_drafts.c.case_id == case_id))).mappings().first()


async def _to_draft(conn: AsyncConnection, row: Any) -> Draft:
    handle = None
    if row["sealed_petitioner"] is not None:
        handle = (await conn.execute(select(petitioners.c.handle)
                                     .where(petitioners.c.id == row["sealed_petitioner"]))).scalar_one_or_none()
    opened_at = _aware(row["opened_at"])
    return Draft(
        id=row["id"], case_id=row["case_id"], session_id=row["session_id"], call_seq=row["call_seq"],
        venue=row["venue"], state=row["state"], version=row["version"],
        content=MinutesContent.model_validate(row["content"]), opened_by=row["opened_by"], opened_at=opened_at,
        updated_by=row["updated_by"], updated_at=_aware(row["updated_at"]),
        issued_on=opened_at.astimezone(VIETNAM_TZ).date(), sealed_handle=handle,
        holds_identity=await may_hold_identity(conn, row["case_id"]),
        reception=SessionReception(ReceptionType.parse(row["reception_type"]),
                                   ReceptionForm.parse(row["reception_form"]), row["host"]),
    )


async def open_draft(
    conn: AsyncConnection,
    *,
    session_id: str,
    case_id: str,
    call_seq: int | None,
    venue: str | None,
    reception: SessionReception,
    calendar: WorkCalendar,
    now: datetime,
    author: Author = SERVICE_AUTHOR,
) -> tuple[Draft, bool]:
    """The draft of ``case_id`` in ``session_id``, opened (prefilled, version 1, audited as
    ``minutes.draft_opened``) when there is none; returns it and whether it was opened now. Unknown case:
    :class:`~complaints.errors.NotFound`. The bus consumer opens drafts as :data:`SERVICE_AUTHOR`; a person
    needs the minutes grant."""
    if author is not SERVICE_AUTHOR:
        _require(author, frozenset({WRITE_GRANT}), "Bạn không có quyền ghi biên bản.")
    now = now.astimezone(UTC)  # stored as UTC (SQLite keeps no offset)
    existing = await _draft_row(conn, session_id, case_id)
    if existing is not None:
        return await _to_draft(conn, existing), False
    today = now.astimezone(VIETNAM_TZ).date()
    dossier = await load_dossier(conn, case_id, today=today, calendar=calendar, grants=frozenset({Grant.MINUTES}),
                                 session_id=session_id)
    requests = [r for r in (await conn.execute(
        select(petitions.c.request).where(petitions.c.case_id == case_id)
        .order_by(petitions.c.received_on, petitions.c.created_at))).scalars()]
    content = prefill(venue=venue, requests=requests, summary=dossier.case.summary, history=dossier.history,
                      reception_number=dossier.reception_number)
    draft_id = str(uuid.uuid4())
    stored = content.model_dump(mode="json")
    await conn.execute(minutes_drafts.insert().values(
        id=draft_id, case_id=case_id, session_id=session_id, call_seq=call_seq, venue=venue,
        reception_type=ReceptionType.parse(reception.reception_type).value,
        reception_form=ReceptionForm.parse(reception.form).value, host=reception.host, state="open", version=1,
        content=stored, sealed_petitioner=None, opened_by=author.label, opened_at=now, updated_by=author.label,
        updated_at=now))
    await conn.execute(minutes_draft_versions.insert().values(
        draft_id=draft_id, version=1, content=stored, saved_by=author.label, saved_at=now, client=None,
        base_version=None))
    await append_audit(conn, actor=author.label, action="minutes.draft_opened", target_kind="case",
                       target_id=case_id, detail={"session": session_id, "draft": draft_id, "call_seq": call_seq},
                       at=now)
    row = await _draft_row(conn, session_id, case_id)
    return await _to_draft(conn, row), True


async def load_draft(conn: AsyncConnection, *, session_id: str, case_id: str, author: Author) -> Draft:
    """The draft as saved last. No draft (the case was not called in that session): :class:`NotFound`."""
    _require(author, READ_GRANTS, "Bạn không có quyền xem biên bản.")
    row = await _draft_row(conn, session_id, case_id)
    if row is None:
        raise NotFound("Chưa có biên bản của vụ việc này trong phiên: vụ việc chưa được gọi.")
    return await _to_draft(conn, row)


async def list_drafts(conn: AsyncConnection, *, author: Author, session_id: str | None = None,
                      limit: int = 200) -> list[DraftSummary]:
    """Drafts, the latest saved first (of one session when ``session_id`` is given)."""
    _require(author, READ_GRANTS, "Bạn không có quyền xem biên bản.")
    query = (select(minutes_drafts.c.session_id, minutes_drafts.c.case_id, cases.c.tracking_code,
                    minutes_drafts.c.venue, minutes_drafts.c.state, minutes_drafts.c.version,
                    minutes_drafts.c.updated_at)
             .join(cases, cases.c.id == minutes_drafts.c.case_id)
             .order_by(minutes_drafts.c.updated_at.desc(), minutes_drafts.c.id).limit(limit))
    if session_id is not None:
        query = query.where(minutes_drafts.c.session_id == session_id)
    return [DraftSummary(r.session_id, r.case_id, r.tracking_code, r.venue, r.state, r.version,
                         _aware(r.updated_at)) for r in await conn.execute(query)]


def _version_of(row: Any, *, with_content: bool) -> DraftVersion:
    return DraftVersion(version=row["version"], saved_by=row["saved_by"], saved_at=_aware(row["saved_at"]),
                        client=row["client"], base_version=row["base_version"],
                        content=MinutesContent.model_validate(row["content"]) if with_content else None)


async def list_versions(conn: AsyncConnection, *, session_id: str, case_id: str, author: Author) -> list[DraftVersion]:
    """Every version of the draft, the newest first (without their content)."""
    draft = await load_draft(conn, session_id=session_id, case_id=case_id, author=author)
    rows = (await conn.execute(select(minutes_draft_versions).where(minutes_draft_versions.c.draft_id == draft.id)
                               .order_by(minutes_draft_versions.c.version.desc()))).mappings().all()
    return [_version_of(r, with_content=False) for r in rows]


async def load_version(conn: AsyncConnection, *, session_id: str, case_id: str, version: int,
                       author: Author) -> DraftVersion:
    draft = await load_draft(conn, session_id=session_id, case_id=case_id, author=author)
    row = (await conn.execute(select(minutes_draft_versions).where(
        minutes_draft_versions.c.draft_id == draft.id, minutes_draft_versions.c.version == version))).mappings().first()
    if row is None:
        raise NotFound(f"Biên bản không có phiên bản {version}.")
    return _version_of(row, with_content=True)


def _parse(content: MinutesContent | Mapping[str, Any]) -> MinutesContent:
    if isinstance(content, MinutesContent):
        return MinutesContent.model_validate(content.model_dump())
    try:
        return MinutesContent.model_validate(dict(content))
    except ValidationError as exc:
        raise DraftInvalid(describe_errors(exc.errors())) from None


async def _checked_directives(conn: AsyncConnection, content: MinutesContent, issued_on: date,
                              calendar: WorkCalendar) -> MinutesContent:
    """Every chosen unit must be an active unit; the deadline is ``working_days`` after the reception."""
    known = await known_active_units(conn, (d.unit for d in content.directives if d.unit))
    errors = [{"field": f"directives.{i}.unit", "message": "Không tìm thấy đơn vị được giao."}
              for i, d in enumerate(content.directives) if d.unit and d.unit not in known]
    if errors:
        raise DraftInvalid(errors)
    directives = [d.model_copy(update={"deadline": calendar.add_working_days(issued_on, d.working_days)
                                       if d.working_days else None}) for d in content.directives]
    return content.model_copy(update={"directives": directives})


async def _current_version(conn: AsyncConnection, draft_id: str, version: int) -> DraftVersion:
    row = (await conn.execute(select(minutes_draft_versions).where(
        minutes_draft_versions.c.draft_id == draft_id, minutes_draft_versions.c.version == version))).mappings().one()
    return _version_of(row, with_content=True)


async def _own_lineage(conn: AsyncConnection, draft_id: str, base_version: int, client: str | None) -> bool:
    """Every version after ``base_version`` was saved by the page ``client``."""
    if client is None:
        return False
    foreign = (await conn.execute(select(func.count()).select_from(minutes_draft_versions).where(
        minutes_draft_versions.c.draft_id == draft_id, minutes_draft_versions.c.version > base_version,
        (minutes_draft_versions.c.client.is_(None)) | (minutes_draft_versions.c.client != client)))).scalar_one()
    return int(foreign) == 0


async def _seal(conn: AsyncConnection, keyring: Keyring, row: Any, identity: DenouncerIdentity, author: Author,
                now: datetime) -> str:
    """Seal ``identity`` under the draft's sealed petitioner (created on first use); returns its id."""
    number = normalize_id_number(identity.id_number) if identity.id_number.strip() else None
    implied = frozenset({Grant.IDENTITY_WRITE})  # for the draft's own record only (see the module doc)
    if row["sealed_petitioner"] is None:
        return await register_petitioner(conn, keyring, NewPetitioner(
            kind=PetitionerType.INDIVIDUAL, full_name=identity.full_name.strip(), id_number=number,
            address_detail=identity.address.strip() or None, phone=identity.phone.strip() or None, sealed=True,
        ), actor=author.label, grants=implied, now=now)
    pid: str = row["sealed_petitioner"]
    await seal_identity(conn, keyring, pid, Identity(
        full_name=identity.full_name.strip(), id_number=number, address_detail=identity.address.strip() or None,
        phone=identity.phone.strip() or None), actor=author.label, grants=implied, now=now)
    return pid


async def save_draft(
    conn: AsyncConnection,
    *,
    session_id: str,
    case_id: str,
    base_version: int,
    content: MinutesContent | Mapping[str, Any],
    author: Author,
    keyring: Keyring,
    calendar: WorkCalendar,
    now: datetime,
    client: str | None = None,
    identity: DenouncerIdentity | None = None,
) -> DraftSaved:
    """Save the whole form as the version after ``base_version`` (see the module doc for conflicts).
    Refusals: :class:`DraftForbidden`, :class:`NotFound`, :class:`DraftClosed`, :class:`DraftInvalid` (field by
    field), :class:`DraftConflict`. Nothing is stored by a refused save."""
    _require(author, frozenset({WRITE_GRANT}), "Bạn không có quyền ghi biên bản.")
    now = now.astimezone(UTC)  # stored as UTC (SQLite keeps no offset)
    if client is not None:
        client = client[:_MAX_CLIENT]
    parsed = _parse(content)
    row = await _draft_row(conn, session_id, case_id)
    if row is None:
        raise NotFound("Chưa có biên bản của vụ việc này trong phiên: vụ việc chưa được gọi.")
    if row["state"] != "open":
        raise DraftClosed("Biên bản đã khép lại, không sửa được nữa.")
    current: int = row["version"]
    if not 1 <= base_version <= current or (
            base_version != current and not await _own_lineage(conn, row["id"], base_version, client)):
        raise DraftConflict(await _current_version(conn, row["id"], current))
    sealing = identity is not None and not identity.empty
    if sealing and not await may_hold_identity(conn, case_id):
        raise DraftInvalid([{"field": "identity", "message": "Chỉ biên bản của vụ việc tố cáo mới có phần thông "
                                                             "tin người tố cáo được niêm phong."}])
    opened_at = _aware(row["opened_at"])
    checked = await _checked_directives(conn, parsed, opened_at.astimezone(VIETNAM_TZ).date(), calendar)
    stored = checked.model_dump(mode="json")
    if not sealing and base_version == current and stored == row["content"]:
        return DraftSaved(await _to_draft(conn, row), created=False)
    version = current + 1
    moved = await conn.execute(update(minutes_drafts).where(
        minutes_drafts.c.id == row["id"], minutes_drafts.c.version == current)
        .values(version=version, content=stored, updated_by=author.label, updated_at=now))
    if moved.rowcount != 1:  # another save of the same version won the race
        latest = await _draft_row(conn, session_id, case_id)
        raise DraftConflict(await _current_version(conn, row["id"], latest["version"]))
    if sealing:
        assert identity is not None
        pid = await _seal(conn, keyring, row, identity, author, now)
        if pid != row["sealed_petitioner"]:
            await conn.execute(update(minutes_drafts).where(minutes_drafts.c.id == row["id"])
                               .values(sealed_petitioner=pid))
    await conn.execute(minutes_draft_versions.insert().values(
        draft_id=row["id"], version=version, content=stored, saved_by=author.label, saved_at=now, client=client,
        base_version=base_version))
    return DraftSaved(await _to_draft(conn, await _draft_row(conn, session_id, case_id)), created=True)
