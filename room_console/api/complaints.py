"""The complaint database over HTTP (``/api``): petitions, receptions, cases, handling decisions,
directives, search, sealed identities and attachments. See docs/complaints-api.md.

Each handler: parse (pydantic models of :mod:`complaints.schemas`), authorise by grant, call one
domain function in one transaction, shape the response. Errors of the domain are mapped by
:mod:`room_console.api.problems`.

The ``save_*`` functions are the writes the API and the pages share: each calls the domain function
and puts the matching event (``signaling.events``: ``CaseCreated``, ``CaseUpdated``,
``HandlingDecisionRecorded``, ``DirectiveIssued``, ``DirectiveReported``) into the outbox in the
caller's transaction, so the change and its announcement commit together or not at all. Reading a
case file (:func:`record_case_view`) and downloading an attachment are audit events.

Confidentiality (:mod:`complaints.confidentiality`) is the domain's: a write that makes a case
confidential (a denunciation attached, a re-classification) is announced with ``CaseUpdated``
(``changed`` names ``confidential``); the case file, the attachments and the duplicate check show a
denouncer's identity only to holders of ``identity_read``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.attachments import (
    MAX_ATTACHMENT_BYTES,
    add_attachment,
    clean_display_name,
    clean_media_type,
    content_disposition,
    get_attachment,
    is_stored_name,
    may_download,
    new_stored_name,
    petition_exists,
    shown_name,
)
from complaints.audit import append_audit
from complaints.case_file import CaseFile, load_case_file
from complaints.cases import CaseChange, CaseRecord, add_reception_entry, get_case, update_case
from complaints.deadlines import DueStatus
from complaints.directives import (
    DirectiveView,
    follow_up,
    get_directive,
    issue_directive,
    report_on_directive,
)
from complaints.duplicates import IntakeRecord
from complaints.enums import CaseStatus, PetitionerRole, PetitionKind
from complaints.errors import IdentityAccessDenied, InvalidInput, NotFound
from complaints.groups import record_delegation
from complaints.handling import record_handling_decision
from complaints.intake import Intake, IntakeResult, record_intake
from complaints.petitioners import DuplicateCheck, find_duplicates, register_petitioner
from complaints.petitions import NewPetition, add_petition
from complaints.schemas import (
    CaseUpdateIn,
    DelegationIn,
    DirectiveIn,
    DirectiveReportIn,
    DuplicateCheckIn,
    HandlingDecisionIn,
    IdentityReadIn,
    IntakeIn,
    PetitionAddIn,
    PetitionerIn,
    ReceptionIn,
    not_in_future,
)
from complaints.search import MAX_LIMIT, CaseQuery, SearchResult, search_cases
from complaints.tables import directives
from complaints.vault import read_identity
from complaints.workdays import WorkCalendar
from evidence import Keyring
from signaling.events import CaseCreated, CaseUpdated, DirectiveIssued, DirectiveReported, HandlingDecisionRecorded
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ..actor import CASE_EDIT_GRANTS, Actor, CurrentActor, require_any
from ..context import ConsoleContext
from ..errors import Forbidden
from ..i18n import t

__all__ = ["create_complaints_api_router", "case_json", "case_file_json", "directive_json", "local_now",
           "ensure_case_visible", "keyring_of", "VN_TIME", "DECISION_GRANTS", "DIRECTIVE_GRANTS",
           "may_issue_directives", "record_case_view", "save_intake", "save_case_update", "save_handling_decision",
           "save_directive", "save_directive_report", "save_petition", "save_reception", "save_delegation",
           "attachment_download", "duplicates_json"]

log = logging.getLogger("room_console.api")
VN_TIME = timezone(timedelta(hours=7))
_CHUNK = 64 * 1024

# Recording a handling decision (xử lý đơn): intake staff and the approving leader.
DECISION_GRANTS = frozenset({Grant.INTAKE, Grant.APPROVE})
# Issuing a directive: holders of ``directives`` who are not a unit's officer (a unit reports back).
DIRECTIVE_GRANTS = frozenset({Grant.DIRECTIVES})
# A download answers with the file only: no script, no plugin, no framing, even if it is HTML.
_DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


def local_now(console: ConsoleContext) -> datetime:
    """Now in Viet Nam (UTC+7): "today" is the Vietnamese calendar day."""
    return datetime.fromtimestamp(console.clock(), UTC).astimezone(VN_TIME)


def keyring_of(console: ConsoleContext) -> Keyring:
    if console.keyring is None:
        raise RuntimeError("the console was built without a keyring")
    return console.keyring


def _labelled(value: Any) -> dict[str, str] | None:
    return None if value is None else {"value": value.value, "label": value.label_vi}


def case_json(case: CaseRecord) -> dict[str, Any]:
    return {"id": case.id, "tracking_code": case.tracking_code, "kind": _labelled(case.kind),
            "status": _labelled(case.status), "summary": case.summary, "subject_area": case.subject_area,
            "novelty": _labelled(case.novelty), "complex": case.complex, "crowd": case.crowd,
            "confidential": case.confidential, "venue": case.venue, "version": case.version,
            "created_at": case.created_at.isoformat(), "updated_at": case.updated_at.isoformat()}


def directive_json(view: DirectiveView) -> dict[str, Any]:
    return {"id": view.id, "case_id": view.case_id, "tracking_code": view.tracking_code, "unit_id": view.unit_id,
            "unit_name": view.unit_name, "content": view.content, "deadline": view.deadline.isoformat(),
            "completed_on": view.completed_on.isoformat() if view.completed_on else None,
            "status": _labelled(view.status), "version": view.version}


def case_file_json(file: CaseFile) -> dict[str, Any]:
    return {
        **case_json(file.case),
        "confidential": file.confidential,  # by the rule (complaints.confidentiality)
        "reception_count": file.reception_count,
        "petitions": [{
            "id": p.id, "kind": _labelled(p.kind), "source": _labelled(p.source),
            "received_on": p.received_on.isoformat(), "written_on": p.written_on.isoformat() if p.written_on else None,
            "content": p.content, "request": p.request,
            "parties": [{"petitioner_id": x.petitioner_id, "display_name": x.display_name, "sealed": x.sealed,
                         "role": _labelled(x.role)} for x in p.parties],
            "attachments": [{"id": a.id, "name": a.display_name, "media_type": a.media_type, "size": a.size,
                             "sha256": a.sha256} for a in p.attachments],
        } for p in file.petitions],
        "receptions": [{
            "id": r.id, "nth": r.nth, "label": f"Lần tiếp thứ {r.nth}", "received_on": r.received_on.isoformat(),
            "reception_type": _labelled(r.reception_type), "form": _labelled(r.form), "outcome": _labelled(r.outcome),
            "venue": r.venue, "officer": r.officer, "petitioner": r.petitioner,
        } for r in file.receptions],
        "respondents": [asdict(r) for r in file.respondents],
        "handling_decisions": [{
            "id": d.id, "direction": _labelled(d.direction), "decided_on": d.decided_on.isoformat(),
            "decided_by": d.decided_by, "forwarded_to": d.forwarded_to, "notes": d.notes,
        } for d in file.decisions],
        "directives": [directive_json(v) for v in file.directives],
    }


def duplicates_json(check: DuplicateCheck) -> dict[str, Any]:
    """The duplicate check as the asker may see it: a sealed match withheld from whoever lacks
    ``identity_read`` is one flag and one sentence, nothing else."""
    return {
        "candidates": [{
            "petitioner_id": c.petitioner_id, "display_name": c.display_name, "sealed": c.sealed,
            "case_id": c.case_id, "tracking_code": c.tracking_code, "score": c.candidate.score,
            "reasons": [{"field": r.field.value, "how": r.how.value, "similarity": r.similarity,
                         "label_vi": r.label_vi} for r in c.candidate.reasons],
        } for c in check.candidates],
        "sealed_match": check.sealed_match,
        "sealed_notice": t("intake.sealed_match") if check.sealed_match else None,
    }


def _search_json(result: SearchResult) -> dict[str, Any]:
    return {"total": result.total, "more": result.more, "limit": result.limit, "offset": result.offset, "items": [{
        "id": h.id, "tracking_code": h.tracking_code, "kind": _labelled(h.kind), "status": _labelled(h.status),
        "summary": h.summary, "venue": h.venue, "confidential": h.confidential, "created_at": h.created_at.isoformat(),
        "first_received_on": h.first_received_on.isoformat() if h.first_received_on else None, "version": h.version,
    } for h in result.items]}


async def ensure_case_visible(conn: AsyncConnection, actor: Actor, case_id: str) -> None:
    """403 without a case-viewing grant; a unit's officer sees only cases directed to the unit (else 404)."""
    if not actor.may_view_cases:
        raise Forbidden("grant missing")
    scope = actor.unit_scope
    if scope is None:
        return
    found = (await conn.execute(select(directives.c.id).where(directives.c.case_id == case_id,
                                                               directives.c.unit_id == scope).limit(1))).first()
    if found is None:
        raise NotFound("Không tìm thấy vụ việc.")


def may_issue_directives(actor: Actor) -> bool:
    return actor.has_any(DIRECTIVE_GRANTS) and actor.unit_scope is None


def _require_directive_issuer(actor: Actor) -> None:
    require_any(actor, DIRECTIVE_GRANTS)
    if actor.unit_scope is not None:
        raise Forbidden("a unit reports on directives, it does not issue them")


async def record_case_view(console: ConsoleContext, actor: Actor, case_id: str, *, via: str) -> None:
    """One audit row for a read of a case file (who, which case, when, through what), committed at once."""
    async with console.engine.begin() as conn:
        await append_audit(conn, actor=actor.label, action="case.view", target_kind="case", target_id=case_id,
                           detail={"via": via}, at=local_now(console))


# -- writes shared by the API and the pages: the change and its event in one transaction -----------


async def save_intake(conn: AsyncConnection, keyring: Keyring, data: Intake, *, actor: Actor,
                      now: datetime) -> IntakeResult:
    """:func:`complaints.intake.record_intake`; a new case is announced with ``CaseCreated``, an
    attached case that became confidential with ``CaseUpdated``."""
    result = await record_intake(conn, keyring, data, actor=actor.label, grants=actor.grants, now=now)
    if result.new_case:
        case = await get_case(conn, result.case_id)
        await add_to_outbox(conn, CaseCreated(case=case.id, by=actor.label, kind=case.kind.value,
                                              status=case.status.value, confidential=case.confidential,
                                              venue=case.venue, occurred_at=now))
    elif result.became_confidential:
        await _announce_confidential(conn, actor, result.case_id, was_confidential=False, now=now)
    return result


async def _announce_confidential(conn: AsyncConnection, actor: Actor, case_id: str, *, was_confidential: bool,
                                 now: datetime) -> None:
    """``CaseUpdated`` naming ``confidential`` when the write made the case confidential."""
    case = await get_case(conn, case_id)
    if was_confidential or not case.confidential:
        return
    await add_to_outbox(conn, CaseUpdated(
        case=case.id, by=actor.label, case_version=case.version, changed=("confidential",), kind=case.kind.value,
        status=case.status.value, subject_area=case.subject_area, confidential=True, occurred_at=now))


async def save_case_update(conn: AsyncConnection, keyring: Keyring, actor: Actor, case_id: str, *,
                           expected_version: int, changes: dict[str, Any], now: datetime) -> CaseChange:
    """:func:`complaints.cases.update_case` (a case that becomes confidential has its parties sealed);
    a real change is announced with ``CaseUpdated``."""
    change = await update_case(conn, case_id, expected_version=expected_version, changes=changes, now=now,
                               keyring=keyring, actor=actor.label)
    if change.changed:
        after = change.after
        await add_to_outbox(conn, CaseUpdated(
            case=after.id, by=actor.label, case_version=after.version, changed=change.changed,
            kind=after.kind.value, status=after.status.value, subject_area=after.subject_area,
            previous_status=change.before.status.value if "status" in change.changed else None,
            confidential=after.confidential, occurred_at=now))
    return change


async def save_petition(conn: AsyncConnection, keyring: Keyring, actor: Actor, case_id: str, petition: NewPetition,
                        parties: list[tuple[str, PetitionerRole]], *, now: datetime) -> str:
    """:func:`complaints.petitions.add_petition`; a denunciation that makes the case confidential is
    announced with ``CaseUpdated``. Returns the petition id."""
    before = await get_case(conn, case_id)
    petition_id = await add_petition(conn, case_id, petition, parties, now=now, keyring=keyring, actor=actor.label)
    await _announce_confidential(conn, actor, case_id, was_confidential=before.confidential, now=now)
    return petition_id


async def save_reception(conn: AsyncConnection, keyring: Keyring, actor: Actor, case_id: str, body: ReceptionIn, *,
                         now: datetime) -> tuple[str, int]:
    """:func:`complaints.cases.add_reception_entry` (its petitioner under the confidentiality rule);
    returns (id, n)."""
    before = await get_case(conn, case_id)
    entry_id, nth = await add_reception_entry(
        conn, case_id, received_on=body.received_on, reception_type=body.reception_type, form=body.form,
        with_petition=body.with_petition, now=now, keyring=keyring, actor=actor.label,
        petitioner_id=body.petitioner_id, session_id=body.session_id, host=body.host, venue=body.venue,
        officer=actor.name, outcome=body.outcome, notes=body.notes,
    )
    await _announce_confidential(conn, actor, case_id, was_confidential=before.confidential, now=now)
    return entry_id, nth


async def save_delegation(conn: AsyncConnection, keyring: Keyring, actor: Actor, case_id: str, body: DelegationIn, *,
                          now: datetime) -> str:
    """:func:`complaints.groups.record_delegation` (its members under the confidentiality rule)."""
    before = await get_case(conn, case_id)
    delegation_id = await record_delegation(conn, case_id, member_ids=body.member_ids,
                                            representative_ids=body.representative_ids, keyring=keyring,
                                            actor=actor.label, now=now,
                                            appointment_document=body.appointment_document)
    await _announce_confidential(conn, actor, case_id, was_confidential=before.confidential, now=now)
    return delegation_id


async def save_handling_decision(conn: AsyncConnection, actor: Actor, case_id: str, body: HandlingDecisionIn, *,
                                 now: datetime) -> str:
    """Record a handling decision and announce it (``HandlingDecisionRecorded``); returns its id."""
    decision_id = await record_handling_decision(
        conn, case_id, direction=body.direction, decided_on=body.decided_on, decided_by=actor.name, now=now,
        petition_id=body.petition_id, forwarded_to=body.forwarded_to, notes=body.notes)
    await add_to_outbox(conn, HandlingDecisionRecorded(
        case=case_id, by=actor.label, decision=decision_id, direction=body.direction.value,
        decided_on=body.decided_on, petition=body.petition_id, occurred_at=now))
    return decision_id


async def save_directive(conn: AsyncConnection, actor: Actor, case_id: str, body: DirectiveIn, *,
                         calendar: WorkCalendar, now: datetime) -> tuple[str, date]:
    """Issue a directive with the deadline ``body`` asks for and announce it (``DirectiveIssued``);
    returns its id and deadline."""
    not_in_future(body.issued_on, now.date(), "issued_on", "Ngày chỉ đạo")
    due = body.resolve_deadline(calendar)
    directive_id = await issue_directive(conn, case_id, unit_id=body.unit_id, content=body.content,
                                         issued_on=body.issued_on, deadline=due, issued_by=actor.name,
                                         calendar=calendar)
    await add_to_outbox(conn, DirectiveIssued(case=case_id, by=actor.label, directive=directive_id,
                                              unit=body.unit_id, issued_on=body.issued_on, deadline=due,
                                              occurred_at=now))
    return directive_id, due


async def save_directive_report(conn: AsyncConnection, actor: Actor, directive_id: str, body: DirectiveReportIn, *,
                                expected_version: int, now: datetime) -> int:
    """A unit's report on its directive, announced with ``DirectiveReported``; returns the new version.
    Another unit's directive is not found (404), as for cases."""
    ref = await get_directive(conn, directive_id)
    if actor.unit_scope is not None and ref.unit_id != actor.unit_scope:
        raise NotFound("Không tìm thấy ý kiến chỉ đạo.")
    version = await report_on_directive(conn, directive_id, expected_version=expected_version,
                                        reported_on=body.reported_on, content=body.content,
                                        reported_by=actor.name, completed=body.completed, now=now)
    await add_to_outbox(conn, DirectiveReported(
        case=ref.case_id, by=actor.label, directive=directive_id, unit=ref.unit_id, directive_version=version,
        reported_on=body.reported_on, completed=body.completed, occurred_at=now))
    return version


async def attachment_download(console: ConsoleContext, actor: Actor, attachment_id: str, *,
                              case_id: str | None = None) -> Response:
    """The file of an attachment, for an actor who may see its case (a unit only its own cases).

    A confidential case's files may show the denouncer (the letter itself, the handwriting: LTC Điều
    56), so they need ``identity_read`` too; a refusal is audited. Every download is an audit event,
    committed before the first byte is sent. The answer forces a download (``attachment``, RFC 6266
    name), with ``nosniff`` and a sandboxing CSP, so an uploaded page or script never runs here."""
    folder = console.attachments_dir
    if folder is None:
        raise RuntimeError("the console was built without an attachments directory")
    denied: IdentityAccessDenied | None = None
    async with console.engine.begin() as conn:
        record = await get_attachment(conn, attachment_id[:64])
        if case_id is not None and record.case_id != case_id:
            raise NotFound("Không tìm thấy tệp đính kèm.")
        await ensure_case_visible(conn, actor, record.case_id)
        if not await may_download(conn, record, actor.grants):
            await append_audit(conn, actor=actor.label, action="attachment.download_refused",
                               target_kind="attachment", target_id=record.id, detail={"case_id": record.case_id},
                               at=local_now(console))
            denied = IdentityAccessDenied("Tài liệu của vụ việc mật chỉ người có quyền xem danh tính người tố cáo "
                                          "mới được tải về.")
        else:
            path = folder / record.stored_name
            if not is_stored_name(record.stored_name) or not await asyncio.to_thread(path.is_file):
                log.error("attachment file missing", extra={"ctx": {"attachment_id": record.id}})
                raise NotFound("Tệp đính kèm không còn trong kho lưu trữ; hãy báo quản trị hệ thống.")
            await append_audit(conn, actor=actor.label, action="attachment.download", target_kind="attachment",
                               target_id=record.id, detail={"case_id": record.case_id, "sha256": record.sha256},
                               at=local_now(console))
    if denied is not None:
        raise denied
    return FileResponse(path, media_type=record.media_type, headers={
        "content-disposition": content_disposition(record.display_name),
        "x-content-type-options": "nosniff",
        "content-security-policy": _DOWNLOAD_CSP,
        "cache-control": "no-store",
        "x-sha256": record.sha256,
    })


def _expected_version(if_match: str | None, body_version: int | None) -> int:
    if body_version is not None:
        return body_version
    if if_match:
        raw = if_match.strip().removeprefix("W/").strip('"')
        if raw.isdigit():
            return int(raw)
        raise InvalidInput("Tiêu đề If-Match phải là số phiên bản của vụ việc, ví dụ \"3\".", field="If-Match")
    raise InvalidInput("Cần gửi phiên bản đã đọc (tiêu đề If-Match hoặc trường version) để tránh ghi đè.",
                       code="version_required", field="version")


def _etag(version: int) -> dict[str, str]:
    return {"etag": f'"{version}"'}


def create_complaints_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["complaints"])

    # -- search and cases ---------------------------------------------------------------------------

    @router.get("/cases")
    async def search(
        console: Console, actor: CurrentActor,
        q: Annotated[str, Query(max_length=200)] = "",
        kind: Annotated[str | None, Query(max_length=40)] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        venue: Annotated[str | None, Query(max_length=64)] = None,
        unit: Annotated[str | None, Query(max_length=64)] = None,
        received_from: date | None = None, received_to: date | None = None,
        created_from: date | None = None, created_to: date | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        """Search cases: diacritic-insensitive words over summary, petition content, respondents and open
        petitioners' names; filters; paging with the total."""
        if not actor.may_view_cases:
            raise Forbidden("grant missing")
        query = CaseQuery(
            text=q, kind=PetitionKind.parse(kind) if kind else None,
            status=CaseStatus.parse(status) if status else None, venue=venue or None, unit=unit or None,
            received_from=received_from, received_to=received_to, created_from=created_from,
            created_to=created_to, unit_scope=actor.unit_scope, limit=limit, offset=offset,
        )
        async with console.engine.connect() as conn:
            return _search_json(await search_cases(conn, query))

    @router.get("/cases/{case_id}")
    async def case_detail(console: Console, actor: CurrentActor, case_id: str) -> Response:
        """The case file: petitions, reception entries ("lần tiếp thứ n"), respondents, handling
        decisions and directives with their deadline status. Sealed petitioners show their handle."""
        async with console.engine.connect() as conn:
            await ensure_case_visible(conn, actor, case_id[:64])
            file = await load_case_file(conn, case_id[:64], today=local_now(console).date(),
                                        calendar=console.calendar, grants=actor.grants)
        await record_case_view(console, actor, file.case.id, via="api")
        return JSONResponse(case_file_json(file), headers=_etag(file.case.version))

    @router.patch("/cases/{case_id}")
    async def case_update(
        console: Console, actor: CurrentActor, case_id: str, body: CaseUpdateIn,
        if_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Edit a case with optimistic locking: send the version read (``If-Match`` or ``version``);
        somebody else's edit in between gives 409."""
        require_any(actor, CASE_EDIT_GRANTS)
        expected = _expected_version(if_match, body.version)
        changes = body.changes()
        if not changes:
            raise InvalidInput("Không có thay đổi nào để lưu.", field="body")
        async with console.engine.begin() as conn:
            change = await save_case_update(conn, keyring_of(console), actor, case_id[:64], expected_version=expected,
                                            changes=changes, now=local_now(console))
        case = change.after
        log.info("case updated", extra={"ctx": {"case_id": case.id, "version": case.version}})
        return JSONResponse(case_json(case), headers=_etag(case.version))

    # -- intake, petitioners, petitions, receptions ------------------------------------------------

    @router.post("/intake/duplicates")
    async def duplicates(console: Console, actor: CurrentActor, body: DuplicateCheckIn) -> dict[str, Any]:
        """Ranked existing petitioners that may be the person being registered, with the reasons. A sealed
        match is shown in full to holders of ``identity_read`` only (audited either way); to others it
        is ``sealed_match`` and ``sealed_notice`` (ask an officer with the grant), nothing more."""
        require_any(actor, {Grant.INTAKE})
        query = IntakeRecord("new", full_name=body.full_name, id_number=body.id_number, address=body.address,
                             respondent=body.respondent, content=body.content)
        async with console.engine.begin() as conn:
            found = await find_duplicates(conn, keyring_of(console), query, actor=actor.label, grants=actor.grants,
                                          now=local_now(console))
        return duplicates_json(found)

    @router.post("/intake", status_code=201)
    async def intake(console: Console, actor: CurrentActor, body: IntakeIn) -> dict[str, Any]:
        """Record a petition with its petitioner (new or chosen), respondent and reception entry, as a
        new case or attached to ``case_id``. A denouncer's identity is sealed."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        data = body.to_domain(now.date(), officer=actor.name)
        denied: IdentityAccessDenied | None = None
        async with console.engine.begin() as conn:
            try:
                result = await save_intake(conn, keyring_of(console), data, actor=actor, now=now)
            except IdentityAccessDenied as exc:
                denied = exc  # nothing but the audit row was written: commit it
        if denied is not None:
            raise denied
        log.info("intake recorded", extra={"ctx": {"case_id": result.case_id}})
        return asdict(result)

    @router.post("/petitioners", status_code=201)
    async def petitioner_add(console: Console, actor: CurrentActor, body: PetitionerIn) -> dict[str, Any]:
        """Register a petitioner (sealed when ``sealed``: needs identity_write)."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        data = body.to_domain(now.date())
        async with console.engine.begin() as conn:
            pid = await register_petitioner(conn, keyring_of(console), data, actor=actor.label, grants=actor.grants,
                                            now=now)
        return {"id": pid}

    @router.post("/cases/{case_id}/petitions", status_code=201)
    async def petition_add(console: Console, actor: CurrentActor, case_id: str, body: PetitionAddIn) -> dict[str, Any]:
        """Add a petition with its parties; a denunciation makes the case confidential (its parties sealed)."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        petition = body.petition.to_domain(now.date())
        async with console.engine.begin() as conn:
            pid = await save_petition(conn, keyring_of(console), actor, case_id[:64], petition,
                                      [(p.petitioner_id, p.role) for p in body.parties], now=now)
        return {"id": pid}

    @router.post("/cases/{case_id}/receptions", status_code=201)
    async def reception_add(console: Console, actor: CurrentActor, case_id: str, body: ReceptionIn) -> dict[str, Any]:
        """Record a reception entry (lượt tiếp); answers its number n ("lần tiếp thứ n")."""
        require_any(actor, {Grant.INTAKE, Grant.MINUTES})
        now = local_now(console)
        not_in_future(body.received_on, now.date(), "received_on", "Ngày tiếp")
        async with console.engine.begin() as conn:
            entry_id, nth = await save_reception(conn, keyring_of(console), actor, case_id[:64], body, now=now)
        return {"id": entry_id, "nth": nth, "label": f"Lần tiếp thứ {nth}"}

    @router.post("/cases/{case_id}/handling-decisions", status_code=201)
    async def decision_add(console: Console, actor: CurrentActor, case_id: str,
                           body: HandlingDecisionIn) -> dict[str, Any]:
        """Record a handling decision (hướng xử lý đơn)."""
        require_any(actor, DECISION_GRANTS)
        async with console.engine.begin() as conn:
            did = await save_handling_decision(conn, actor, case_id[:64], body, now=local_now(console))
        return {"id": did}

    @router.post("/cases/{case_id}/delegations", status_code=201)
    async def delegation_add(console: Console, actor: CurrentActor, case_id: str, body: DelegationIn) -> dict[str, Any]:
        """Record a group (đoàn đông người) and its representatives (LTCD Điều 29)."""
        require_any(actor, {Grant.INTAKE})
        async with console.engine.begin() as conn:
            did = await save_delegation(conn, keyring_of(console), actor, case_id[:64], body, now=local_now(console))
        return {"id": did}

    # -- directives ---------------------------------------------------------------------------------

    @router.post("/cases/{case_id}/directives", status_code=201)
    async def directive_add(console: Console, actor: CurrentActor, case_id: str, body: DirectiveIn) -> dict[str, Any]:
        """Record the chair's directive to a unit. The deadline (a working day) is ``deadline``, or
        ``working_days`` after ``issued_on``, or the legal period ``legal_deadline``."""
        _require_directive_issuer(actor)
        async with console.engine.begin() as conn:
            did, due = await save_directive(conn, actor, case_id[:64], body, calendar=console.calendar,
                                            now=local_now(console))
        return {"id": did, "deadline": due.isoformat()}

    @router.get("/directives")
    async def directive_list(
        console: Console, actor: CurrentActor,
        status: Annotated[str | None, Query(max_length=40)] = None,
        unit: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Follow-up (theo dõi, đôn đốc): directives with overdue / due soon / on track; a unit's officer
        sees only the unit's own."""
        require_any(actor, {Grant.DIRECTIVES})
        scope = actor.unit_scope
        only = frozenset({DueStatus.parse(status)}) if status else None
        async with console.engine.connect() as conn:
            views = await follow_up(conn, today=local_now(console).date(), calendar=console.calendar,
                                    unit_id=scope if scope is not None else (unit or None), only=only)
        return {"items": [directive_json(v) for v in views]}

    @router.post("/directives/{directive_id}/reports", status_code=201)
    async def directive_report(
        console: Console, actor: CurrentActor, directive_id: str, body: DirectiveReportIn,
        if_match: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """A unit's report on a directive (optimistic locking as for cases)."""
        require_any(actor, {Grant.DIRECTIVES})
        expected = _expected_version(if_match, body.version)
        now = local_now(console)
        not_in_future(body.reported_on, now.date(), "reported_on", "Ngày báo cáo")
        async with console.engine.begin() as conn:
            version = await save_directive_report(conn, actor, directive_id[:64], body, expected_version=expected,
                                                  now=now)
        return {"id": directive_id, "version": version}

    # -- sealed identities --------------------------------------------------------------------------

    @router.post("/petitioners/{petitioner_id}/identity")
    async def identity_read(console: Console, actor: CurrentActor, petitioner_id: str,
                            body: IdentityReadIn) -> Response:
        """Open a denouncer's sealed identity (identity_read). Every view and every refusal is audited;
        a refusal answers 403 and its audit row is committed."""
        denied: IdentityAccessDenied | None = None
        async with console.engine.begin() as conn:
            try:
                identity = await read_identity(conn, keyring_of(console), petitioner_id[:64], actor=actor.label,
                                               grants=actor.grants, purpose=body.purpose, now=local_now(console))
            except IdentityAccessDenied as exc:
                denied = exc
        if denied is not None:
            log.info("identity view refused", extra={"ctx": {"status": 403}})
            raise denied
        return JSONResponse({"petitioner_id": petitioner_id, **asdict(identity)},
                            headers={"cache-control": "no-store"})

    # -- attachments --------------------------------------------------------------------------------

    @router.post("/petitions/{petition_id}/attachments", status_code=201)
    async def attachment_upload(
        request: Request, console: Console, actor: CurrentActor, petition_id: str,
        name: Annotated[str, Query(max_length=300)] = "",
    ) -> dict[str, Any]:
        """Upload one file as the raw request body (``?name=`` for display). At most 10 MB: a larger
        declared length is refused before reading, a larger stream as soon as it passes the cap (413).
        The answer names the file as the case file shows it to the uploader (numbered in a confidential
        case without ``identity_read``)."""
        require_any(actor, {Grant.INTAKE})
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_ATTACHMENT_BYTES):
            raise _too_large()
        async with console.engine.connect() as conn:
            if not await petition_exists(conn, petition_id[:64]):
                raise NotFound("Không tìm thấy đơn.")
        folder = console.attachments_dir
        if folder is None:
            raise RuntimeError("the console was built without an attachments directory")
        stored = new_stored_name()
        path = folder / stored
        size, digest = await _receive_file(request, folder, path)
        try:
            async with console.engine.begin() as conn:
                record = await add_attachment(
                    conn, petition_id[:64], stored_name=stored, display_name=clean_display_name(name),
                    media_type=clean_media_type(request.headers.get("content-type")), size=size, sha256=digest,
                    uploaded_by=actor.label, now=local_now(console))
                name = await shown_name(conn, record.id, actor.grants)
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
        log.info("attachment stored", extra={"ctx": {"attachment_id": record.id, "size": size}})
        return {"id": record.id, "name": name, "size": size, "sha256": digest, "media_type": record.media_type}

    @router.get("/attachments/{attachment_id}")
    async def attachment_get(console: Console, actor: CurrentActor, attachment_id: str) -> Response:
        """Download an attachment (audited; a confidential case's files need ``identity_read``)."""
        return await attachment_download(console, actor, attachment_id)

    return router


def _too_large() -> InvalidInput:
    return InvalidInput(f"Tệp đính kèm vượt quá giới hạn {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB.",
                        code="too_large", field="file")


def _open_new(folder: Path, path: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


async def _receive_file(request: Request, folder: Path, path: Path) -> tuple[int, str]:
    """Stream the body into ``path`` (blocking writes in a thread); removes it and raises on overflow."""
    digest = hashlib.sha256()
    size = 0
    handle = await asyncio.to_thread(_open_new, folder, path)
    try:
        pending = bytearray()
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_ATTACHMENT_BYTES:
                raise _too_large()
            digest.update(chunk)
            pending += chunk
            if len(pending) >= _CHUNK:
                await asyncio.to_thread(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(handle.write, bytes(pending))
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(path.unlink, True)
        raise
    await asyncio.to_thread(handle.close)
    if size == 0:
        await asyncio.to_thread(path.unlink, True)
        raise InvalidInput("Tệp đính kèm rỗng.", field="file")
    return size, digest.hexdigest()
