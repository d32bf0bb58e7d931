"""The complaint database over HTTP (``/api``): petitions, receptions, cases, handling decisions,
directives, search, sealed identities and attachments. See docs/complaints-api.md.

Each handler: parse (pydantic models of :mod:`complaints.schemas`), authorise by grant, call one
domain function in one transaction, shape the response. Errors of the domain are mapped by
:mod:`room_console.api.problems`.
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
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.attachments import (
    MAX_ATTACHMENT_BYTES,
    add_attachment,
    clean_display_name,
    clean_media_type,
    new_stored_name,
    petition_exists,
)
from complaints.case_file import CaseFile, load_case_file
from complaints.cases import CaseRecord, add_reception_entry, get_case, update_case
from complaints.deadlines import DueStatus
from complaints.directives import DirectiveView, follow_up, issue_directive, report_on_directive
from complaints.duplicates import IntakeRecord
from complaints.enums import CaseStatus, PetitionKind
from complaints.errors import IdentityAccessDenied, InvalidInput, NotFound
from complaints.groups import record_delegation
from complaints.handling import record_handling_decision
from complaints.intake import record_intake
from complaints.petitioners import find_duplicates, register_petitioner
from complaints.petitions import add_petition
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
from evidence import Keyring
from signaling.grants import Grant

from ..actor import CASE_EDIT_GRANTS, Actor, CurrentActor, require_any
from ..context import ConsoleContext
from ..errors import Forbidden

__all__ = ["create_complaints_api_router", "case_json", "case_file_json", "directive_json", "local_now",
           "ensure_case_visible", "keyring_of", "VN_TIME"]

log = logging.getLogger("room_console.api")
VN_TIME = timezone(timedelta(hours=7))
_CHUNK = 64 * 1024


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
            await ensure_case_visible(conn, actor, case_id)
            file = await load_case_file(conn, case_id, today=local_now(console).date(), calendar=console.calendar)
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
            case = await update_case(conn, case_id, expected_version=expected, changes=changes,
                                     now=local_now(console))
        log.info("case updated", extra={"ctx": {"case_id": case_id, "version": case.version}})
        return JSONResponse(case_json(case), headers=_etag(case.version))

    # -- intake, petitioners, petitions, receptions ------------------------------------------------

    @router.post("/intake/duplicates")
    async def duplicates(console: Console, actor: CurrentActor, body: DuplicateCheckIn) -> dict[str, Any]:
        """Ranked existing petitioners that may be the person being registered, with the reasons."""
        require_any(actor, {Grant.INTAKE})
        query = IntakeRecord("new", full_name=body.full_name, id_number=body.id_number, address=body.address,
                             respondent=body.respondent, content=body.content)
        async with console.engine.connect() as conn:
            found = await find_duplicates(conn, keyring_of(console), query)
        return {"candidates": [{
            "petitioner_id": c.petitioner_id, "display_name": c.display_name, "sealed": c.sealed,
            "case_id": c.case_id, "tracking_code": c.tracking_code, "score": c.candidate.score,
            "reasons": [{"field": r.field.value, "how": r.how.value, "similarity": r.similarity,
                         "label_vi": r.label_vi} for r in c.candidate.reasons],
        } for c in found]}

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
                result = await record_intake(conn, keyring_of(console), data, actor=actor.label, grants=actor.grants,
                                             now=now)
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
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        petition = body.petition.to_domain(now.date())
        async with console.engine.begin() as conn:
            pid = await add_petition(conn, case_id, petition, [(p.petitioner_id, p.role) for p in body.parties],
                                     now=now)
        return {"id": pid}

    @router.post("/cases/{case_id}/receptions", status_code=201)
    async def reception_add(console: Console, actor: CurrentActor, case_id: str, body: ReceptionIn) -> dict[str, Any]:
        """Record a reception entry (lượt tiếp); answers its number n ("lần tiếp thứ n")."""
        require_any(actor, {Grant.INTAKE, Grant.MINUTES})
        now = local_now(console)
        not_in_future(body.received_on, now.date(), "received_on", "Ngày tiếp")
        async with console.engine.begin() as conn:
            await get_case(conn, case_id)
            entry_id, nth = await add_reception_entry(
                conn, case_id, received_on=body.received_on, reception_type=body.reception_type, form=body.form,
                with_petition=body.with_petition, now=now, petitioner_id=body.petitioner_id,
                session_id=body.session_id, host=body.host, venue=body.venue, officer=actor.name,
                outcome=body.outcome, notes=body.notes,
            )
        return {"id": entry_id, "nth": nth, "label": f"Lần tiếp thứ {nth}"}

    @router.post("/cases/{case_id}/handling-decisions", status_code=201)
    async def decision_add(console: Console, actor: CurrentActor, case_id: str,
                           body: HandlingDecisionIn) -> dict[str, Any]:
        """Record a handling decision (hướng xử lý đơn)."""
        require_any(actor, {Grant.INTAKE, Grant.APPROVE})
        now = local_now(console)
        async with console.engine.begin() as conn:
            did = await record_handling_decision(
                conn, case_id, direction=body.direction, decided_on=body.decided_on, decided_by=actor.name, now=now,
                petition_id=body.petition_id, forwarded_to=body.forwarded_to, notes=body.notes)
        return {"id": did}

    @router.post("/cases/{case_id}/delegations", status_code=201)
    async def delegation_add(console: Console, actor: CurrentActor, case_id: str, body: DelegationIn) -> dict[str, Any]:
        """Record a group (đoàn đông người) and its representatives (LTCD Điều 29)."""
        require_any(actor, {Grant.INTAKE})
        async with console.engine.begin() as conn:
            did = await record_delegation(conn, case_id, member_ids=body.member_ids,
                                          representative_ids=body.representative_ids,
                                          appointment_document=body.appointment_document)
        return {"id": did}

    # -- directives ---------------------------------------------------------------------------------

    @router.post("/cases/{case_id}/directives", status_code=201)
    async def directive_add(console: Console, actor: CurrentActor, case_id: str, body: DirectiveIn) -> dict[str, Any]:
        """Record the chair's directive to a unit with a deadline (a working day)."""
        require_any(actor, {Grant.DIRECTIVES})
        if actor.unit_scope is not None:
            raise Forbidden("a unit reports on directives, it does not issue them")
        not_in_future(body.issued_on, local_now(console).date(), "issued_on", "Ngày chỉ đạo")
        async with console.engine.begin() as conn:
            did = await issue_directive(conn, case_id, unit_id=body.unit_id, content=body.content,
                                        issued_on=body.issued_on, deadline=body.deadline, issued_by=actor.name,
                                        calendar=console.calendar)
        return {"id": did}

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
            unit = (await conn.execute(select(directives.c.unit_id).where(directives.c.id == directive_id))).scalar()
            if unit is None or (actor.unit_scope is not None and unit != actor.unit_scope):
                raise NotFound("Không tìm thấy ý kiến chỉ đạo.")
            version = await report_on_directive(conn, directive_id, expected_version=expected,
                                                reported_on=body.reported_on, content=body.content,
                                                reported_by=actor.name, completed=body.completed, now=now)
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
        declared length is refused before reading, a larger stream as soon as it passes the cap (413)."""
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
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
        log.info("attachment stored", extra={"ctx": {"attachment_id": record.id, "size": size}})
        return {"id": record.id, "name": record.display_name, "size": size, "sha256": digest,
                "media_type": record.media_type}

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
