"""The complaint database over HTTP (``/api``): petitions, receptions, cases, handling decisions,
directives, search, sealed identities and attachments. See docs/complaints-api.md.

Each handler: parse (the request models of :mod:`complaints.schemas`), authorise by grant (for a
clear refusal; the service checks again), call one function of the service layer
(:mod:`complaints.service`: the change, its audit row and its event in one transaction), shape the
response (the ``…Out`` models of :mod:`complaints.schemas`, declared as ``response_model`` so
``/api/openapi.json`` describes them). Errors of the domain are mapped by
:mod:`room_console.api.problems`. The routes hold no SQL.

The pages share the helpers here: :func:`caller_of` (the service's caller for the console's actor),
:func:`ensure_case_visible`, :func:`record_case_view`, :func:`attachment_download`, :func:`local_now`.
An attachment's bytes are received by :func:`complaints.attachments.receive_file`; the route only
streams the request body into it.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints import service
from complaints.attachments import (
    check_declared_length,
    content_disposition,
    discard_file,
    petition_exists,
    receive_file,
)
from complaints.case_file import load_case_file
from complaints.deadlines import DueStatus
from complaints.directives import follow_up
from complaints.duplicates import IntakeRecord
from complaints.enums import CaseStatus, PetitionKind
from complaints.errors import IdentityAccessDenied, InvalidInput, NotFound
from complaints.petitioners import DuplicateCheck, find_duplicates
from complaints.schemas import (
    AttachmentAddedOut,
    CaseFileOut,
    CaseOut,
    CaseUpdateIn,
    DelegationIn,
    DirectiveIn,
    DirectiveIssuedOut,
    DirectiveListOut,
    DirectiveOut,
    DirectiveReportedOut,
    DirectiveReportIn,
    DuplicateCheckIn,
    DuplicatesOut,
    HandlingDecisionIn,
    IdentityOut,
    IdentityReadIn,
    IdOut,
    IntakeIn,
    IntakeOut,
    PetitionAddIn,
    PetitionerIn,
    ReceptionAddedOut,
    ReceptionIn,
    SearchOut,
    not_in_future,
)
from complaints.search import MAX_LIMIT, CaseQuery, search_cases
from complaints.service import DECISION_GRANTS, DIRECTIVE_GRANTS, Caller
from complaints.vault import read_identity
from complaints.workdays import VIETNAM_TZ
from evidence import Keyring
from signaling.grants import Grant

from ..actor import CASE_EDIT_GRANTS, Actor, CurrentActor, require_any
from ..context import ConsoleContext
from ..errors import Forbidden
from ..i18n import t

__all__ = ["create_complaints_api_router", "caller_of", "duplicates_json", "local_now", "ensure_case_visible",
           "keyring_of", "DECISION_GRANTS", "DIRECTIVE_GRANTS", "may_issue_directives",
           "record_case_view", "attachment_download"]

log = logging.getLogger("room_console.api")

# A download answers with the file only: no script, no plugin, no framing, even if it is HTML.
_DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


def local_now(console: ConsoleContext) -> datetime:
    """Now in Viet Nam (UTC+7): "today" is the Vietnamese calendar day."""
    return datetime.fromtimestamp(console.clock(), UTC).astimezone(VIETNAM_TZ)


def keyring_of(console: ConsoleContext) -> Keyring:
    if console.keyring is None:
        raise RuntimeError("the console was built without a keyring")
    return console.keyring


def caller_of(actor: Actor) -> Caller:
    """The complaint service's caller for the console's actor (same label, name, grants, unit, venue)."""
    return Caller(label=actor.label, name=actor.name, grants=actor.grants, unit=actor.unit, venue=actor.venue)


def duplicates_json(check: DuplicateCheck) -> dict[str, Any]:
    """The duplicate check as the asker may see it (:class:`complaints.schemas.DuplicatesOut`)."""
    return DuplicatesOut.of(check, sealed_notice=t("intake.sealed_match")).model_dump(mode="json")


async def ensure_case_visible(conn: AsyncConnection, actor: Actor, case_id: str) -> None:
    """403 without a case-viewing grant; a unit's officer sees only cases directed to the unit (else 404)
    (:func:`complaints.service.ensure_case_visible`)."""
    if not actor.may_view_cases:
        raise Forbidden("grant missing")
    await service.ensure_case_visible(conn, caller_of(actor), case_id)


def may_issue_directives(actor: Actor) -> bool:
    return caller_of(actor).may_issue_directives


async def record_case_view(console: ConsoleContext, actor: Actor, case_id: str, *, via: str) -> None:
    """One audit row for a read of a case file (who, which case, when, through what), committed at once."""
    async with console.engine.begin() as conn:
        await service.record_case_view(conn, caller_of(actor), case_id, via=via, now=local_now(console))


def _attachments_dir(console: ConsoleContext) -> Path:
    folder = console.attachments_dir
    if folder is None:
        raise RuntimeError("the console was built without an attachments directory")
    return folder


async def attachment_download(console: ConsoleContext, actor: Actor, attachment_id: str, *,
                              case_id: str | None = None) -> Response:
    """The file of an attachment (:func:`complaints.service.open_attachment`: the case's visibility,
    ``identity_read`` for a confidential case, every download and refusal audited and committed before
    the first byte). The answer forces a download (``attachment``, RFC 6266 name), with ``nosniff``
    and a sandboxing CSP, so an uploaded page or script never runs here."""
    folder = _attachments_dir(console)
    if not actor.may_view_cases:
        raise Forbidden("grant missing")
    denied: IdentityAccessDenied | None = None
    async with console.engine.begin() as conn:
        try:
            record, path = await service.open_attachment(conn, caller_of(actor), attachment_id[:64], folder=folder,
                                                         now=local_now(console), case_id=case_id)
        except IdentityAccessDenied as exc:
            denied = exc  # its audit row is committed with the transaction
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


def _json(model: Any, **kwargs: Any) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), **kwargs)


def create_complaints_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["complaints"])

    # -- search and cases ---------------------------------------------------------------------------

    @router.get("/cases", response_model=SearchOut)
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
    ) -> SearchOut:
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
            return SearchOut.of(await search_cases(conn, query))

    @router.get("/cases/{case_id}", response_model=CaseFileOut)
    async def case_detail(console: Console, actor: CurrentActor, case_id: str) -> Response:
        """The case file: petitions, reception entries ("lần tiếp thứ n"), respondents, handling
        decisions and directives with their deadline status. Sealed petitioners show their handle."""
        async with console.engine.connect() as conn:
            await ensure_case_visible(conn, actor, case_id[:64])
            file = await load_case_file(conn, case_id[:64], today=local_now(console).date(),
                                        calendar=console.calendar, grants=actor.grants)
        await record_case_view(console, actor, file.case.id, via="api")
        return _json(CaseFileOut.of_file(file), headers=_etag(file.case.version))

    @router.patch("/cases/{case_id}", response_model=CaseOut)
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
            change = await service.update_case(conn, keyring_of(console), caller_of(actor), case_id[:64],
                                               expected_version=expected, changes=changes, now=local_now(console))
        case = change.after
        log.info("case updated", extra={"ctx": {"case_id": case.id, "version": case.version}})
        return _json(CaseOut.of(case), headers=_etag(case.version))

    # -- intake, petitioners, petitions, receptions ------------------------------------------------

    @router.post("/intake/duplicates", response_model=DuplicatesOut)
    async def duplicates(console: Console, actor: CurrentActor, body: DuplicateCheckIn) -> DuplicatesOut:
        """Ranked existing petitioners that may be the person being registered, with the reasons. A sealed
        match is shown in full to holders of ``identity_read`` only (audited either way); to others it
        is ``sealed_match`` and ``sealed_notice`` (ask an officer with the grant), nothing more."""
        require_any(actor, {Grant.INTAKE})
        query = IntakeRecord("new", full_name=body.full_name, id_number=body.id_number, address=body.address,
                             respondent=body.respondent, content=body.content)
        async with console.engine.begin() as conn:
            found = await find_duplicates(conn, keyring_of(console), query, actor=actor.label, grants=actor.grants,
                                          now=local_now(console))
        return DuplicatesOut.of(found, sealed_notice=t("intake.sealed_match"))

    @router.post("/intake", status_code=201, response_model=IntakeOut)
    async def intake(console: Console, actor: CurrentActor, body: IntakeIn) -> IntakeOut:
        """Record a petition with its petitioner (new or chosen), respondent and reception entry, as a
        new case or attached to ``case_id``. A denouncer's identity is sealed."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        data = body.to_domain(now.date(), officer=actor.name)
        denied: IdentityAccessDenied | None = None
        async with console.engine.begin() as conn:
            try:
                result = await service.record_intake(conn, keyring_of(console), caller_of(actor), data, now=now)
            except IdentityAccessDenied as exc:
                denied = exc  # nothing but the audit row was written: commit it
        if denied is not None:
            raise denied
        log.info("intake recorded", extra={"ctx": {"case_id": result.case_id}})
        return IntakeOut.of(result)

    @router.post("/petitioners", status_code=201, response_model=IdOut)
    async def petitioner_add(console: Console, actor: CurrentActor, body: PetitionerIn) -> IdOut:
        """Register a petitioner (sealed when ``sealed``: needs identity_write)."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        data = body.to_domain(now.date())
        async with console.engine.begin() as conn:
            pid = await service.register_petitioner(conn, keyring_of(console), caller_of(actor), data, now=now)
        return IdOut(id=pid)

    @router.post("/cases/{case_id}/petitions", status_code=201, response_model=IdOut)
    async def petition_add(console: Console, actor: CurrentActor, case_id: str, body: PetitionAddIn) -> IdOut:
        """Add a petition with its parties; a denunciation makes the case confidential (its parties sealed)."""
        require_any(actor, {Grant.INTAKE})
        now = local_now(console)
        petition = body.petition.to_domain(now.date())
        async with console.engine.begin() as conn:
            pid = await service.add_petition(conn, keyring_of(console), caller_of(actor), case_id[:64], petition,
                                             [(p.petitioner_id, p.role) for p in body.parties], now=now)
        return IdOut(id=pid)

    @router.post("/cases/{case_id}/receptions", status_code=201, response_model=ReceptionAddedOut)
    async def reception_add(console: Console, actor: CurrentActor, case_id: str,
                            body: ReceptionIn) -> ReceptionAddedOut:
        """Record a reception entry (lượt tiếp); answers its number n ("lần tiếp thứ n")."""
        require_any(actor, {Grant.INTAKE, Grant.MINUTES})
        now = local_now(console)
        not_in_future(body.received_on, now.date(), "received_on", "Ngày tiếp")
        async with console.engine.begin() as conn:
            entry_id, nth = await service.add_reception(
                conn, keyring_of(console), caller_of(actor), case_id[:64], received_on=body.received_on,
                reception_type=body.reception_type, form=body.form, with_petition=body.with_petition, now=now,
                petitioner_id=body.petitioner_id, session_id=body.session_id, host=body.host, venue=body.venue,
                outcome=body.outcome, notes=body.notes)
        return ReceptionAddedOut(id=entry_id, nth=nth, label=f"Lần tiếp thứ {nth}")

    @router.post("/cases/{case_id}/handling-decisions", status_code=201, response_model=IdOut)
    async def decision_add(console: Console, actor: CurrentActor, case_id: str, body: HandlingDecisionIn) -> IdOut:
        """Record a handling decision (hướng xử lý đơn)."""
        require_any(actor, DECISION_GRANTS)
        async with console.engine.begin() as conn:
            did = await service.record_handling_decision(
                conn, caller_of(actor), case_id[:64], direction=body.direction, decided_on=body.decided_on,
                now=local_now(console), petition_id=body.petition_id, forwarded_to=body.forwarded_to,
                notes=body.notes)
        return IdOut(id=did)

    @router.post("/cases/{case_id}/delegations", status_code=201, response_model=IdOut)
    async def delegation_add(console: Console, actor: CurrentActor, case_id: str, body: DelegationIn) -> IdOut:
        """Record a group (đoàn đông người) and its representatives (LTCD Điều 29)."""
        require_any(actor, {Grant.INTAKE})
        async with console.engine.begin() as conn:
            did = await service.record_delegation(
                conn, keyring_of(console), caller_of(actor), case_id[:64], member_ids=body.member_ids,
                representative_ids=body.representative_ids, now=local_now(console),
                appointment_document=body.appointment_document)
        return IdOut(id=did)

    # -- directives ---------------------------------------------------------------------------------

    @router.post("/cases/{case_id}/directives", status_code=201, response_model=DirectiveIssuedOut)
    async def directive_add(console: Console, actor: CurrentActor, case_id: str,
                            body: DirectiveIn) -> DirectiveIssuedOut:
        """Record the chair's directive to a unit. The deadline (a working day) is ``deadline``, or
        ``working_days`` after ``issued_on``, or the legal period ``legal_deadline``."""
        require_any(actor, DIRECTIVE_GRANTS)
        if actor.unit_scope is not None:
            raise Forbidden("a unit reports on directives, it does not issue them")
        async with console.engine.begin() as conn:
            did, due = await service.issue_directive(
                conn, caller_of(actor), case_id[:64], unit_id=body.unit_id, content=body.content,
                issued_on=body.issued_on, calendar=console.calendar, now=local_now(console), deadline=body.deadline,
                working_days=body.working_days, legal=body.legal_deadline)
        return DirectiveIssuedOut(id=did, deadline=due)

    @router.get("/directives", response_model=DirectiveListOut)
    async def directive_list(
        console: Console, actor: CurrentActor,
        status: Annotated[str | None, Query(max_length=40)] = None,
        unit: Annotated[str | None, Query(max_length=64)] = None,
    ) -> DirectiveListOut:
        """Follow-up (theo dõi, đôn đốc): directives with overdue / due soon / on track; a unit's officer
        sees only the unit's own."""
        require_any(actor, {Grant.DIRECTIVES})
        scope = actor.unit_scope
        only = frozenset({DueStatus.parse(status)}) if status else None
        async with console.engine.connect() as conn:
            views = await follow_up(conn, today=local_now(console).date(), calendar=console.calendar,
                                    unit_id=scope if scope is not None else (unit or None), only=only)
        return DirectiveListOut(items=[DirectiveOut.of(v) for v in views])

    @router.post("/directives/{directive_id}/reports", status_code=201, response_model=DirectiveReportedOut)
    async def directive_report(
        console: Console, actor: CurrentActor, directive_id: str, body: DirectiveReportIn,
        if_match: Annotated[str | None, Header()] = None,
    ) -> DirectiveReportedOut:
        """A unit's report on a directive (optimistic locking as for cases)."""
        require_any(actor, {Grant.DIRECTIVES})
        expected = _expected_version(if_match, body.version)
        now = local_now(console)
        not_in_future(body.reported_on, now.date(), "reported_on", "Ngày báo cáo")
        async with console.engine.begin() as conn:
            version = await service.report_on_directive(
                conn, caller_of(actor), directive_id[:64], expected_version=expected, reported_on=body.reported_on,
                content=body.content, completed=body.completed, now=now)
        return DirectiveReportedOut(id=directive_id, version=version)

    # -- sealed identities --------------------------------------------------------------------------

    @router.post("/petitioners/{petitioner_id}/identity", response_model=IdentityOut)
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
        return _json(IdentityOut.of(petitioner_id, identity), headers={"cache-control": "no-store"})

    # -- attachments --------------------------------------------------------------------------------

    @router.post("/petitions/{petition_id}/attachments", status_code=201, response_model=AttachmentAddedOut)
    async def attachment_upload(
        request: Request, console: Console, actor: CurrentActor, petition_id: str,
        name: Annotated[str, Query(max_length=300)] = "",
    ) -> AttachmentAddedOut:
        """Upload one file as the raw request body (``?name=`` for display). At most 10 MB: a larger
        declared length is refused before reading, a larger stream as soon as it passes the cap (413).
        The answer names the file as the case file shows it to the uploader (numbered in a confidential
        case without ``identity_read``)."""
        require_any(actor, {Grant.INTAKE})
        check_declared_length(request.headers.get("content-length"))
        async with console.engine.connect() as conn:
            if not await petition_exists(conn, petition_id[:64]):
                raise NotFound("Không tìm thấy đơn.")
        folder = _attachments_dir(console)
        received = await receive_file(request.stream(), folder)
        try:
            async with console.engine.begin() as conn:
                added = await service.add_attachment(conn, caller_of(actor), petition_id[:64], received,
                                                     display_name=name,
                                                     media_type=request.headers.get("content-type"),
                                                     now=local_now(console))
        except BaseException:
            await discard_file(folder, received.stored_name)
            raise
        record = added.record
        log.info("attachment stored", extra={"ctx": {"attachment_id": record.id, "size": record.size}})
        return AttachmentAddedOut(id=record.id, name=added.shown_name, size=record.size, sha256=record.sha256,
                                  media_type=record.media_type)

    @router.get("/attachments/{attachment_id}", response_class=FileResponse,
                responses={200: {"content": {"application/octet-stream": {}},
                                 "description": "The file, as a download."}})
    async def attachment_get(console: Console, actor: CurrentActor, attachment_id: str) -> Response:
        """Download an attachment (audited; a confidential case's files need ``identity_read``)."""
        return await attachment_download(console, actor, attachment_id)

    return router
