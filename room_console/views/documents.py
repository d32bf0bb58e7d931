"""The signed documents of a session (văn bản): the case minutes (biên bản) and the conclusion notice
(thông báo kết luận), for the secretary and the chair.

* ``GET /van-ban`` (grant ``minutes`` or ``approve``): the sessions whose cases have minutes, each a link.
* ``GET /van-ban/{session}``: the session's documents with their state (draft, signed, or not signed with
  the Vietnamese reason), the called cases with a button to issue each one's biên bản (grant ``minutes``)
  and a button to issue the session's conclusion notice (grant ``approve``: the chair approves and signs it);
  a kept draft has a button to sign it again (the same grant as issuing it).
* ``POST /van-ban/{session}/bien-ban/{case}``, ``POST /van-ban/{session}/thong-bao``, ``POST
  /van-ban/tai-lieu/{document}/ky-lai``: console forms (the CSRF middleware checks the token). Issuing renders
  and signs through the app's :class:`~minutes.documents_store.DocumentStore` (``app.state.documents``);
  a document that could not be signed is kept as a draft and the page says why.
* ``GET /van-ban/tai-lieu/{document}/ban-goc`` and ``…/ban-cong-khai``: the signed original and the signed
  public twin (PDF). The original of a denunciation's (or a confidential case's) biên bản is "MẬT": only a
  holder of ``identity_read`` downloads it; anyone else gets 403. Every download and every refusal is an
  audit row (``document.download`` / ``document.download_refused``: who, which document, which edition).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from complaints.errors import ComplaintsError
from evidence import Keyring
from minutes.documents import DocumentKind, Official, Track
from minutes.documents_store import (
    DocumentNotSigned,
    DocumentRecord,
    DocumentStore,
    authorize_download,
    documents_of_session,
    get_document,
)
from minutes.drafts import VIETNAM_TZ, DraftForbidden, list_drafts
from minutes.issuing import SessionFacts, case_minutes_doc, conclusion_notice_doc
from minutes.tables import minutes_drafts
from schedules import UnknownSession, get_session
from signaling.grants import Grant

from ..actor import Actor
from ..api.minutes import author_of, display_names
from ..i18n import catalogue, t
from ..routes import Console, CurrentUser, SignedIn, render_error_text, render_page
from .common import actor_of

__all__ = ["router"]

log = logging.getLogger("room_console.documents")
router = APIRouter(include_in_schema=False)

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CASE_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_READ = frozenset({Grant.MINUTES, Grant.APPROVE})
#: Who issues (and signs again) each kind.
ISSUE_GRANT = {DocumentKind.CASE_MINUTES: Grant.MINUTES, DocumentKind.CONCLUSION_NOTICE: Grant.APPROVE}
#: Who downloads the original of a biên bản whose case holds a sealed identity ("MẬT").
CONFIDENTIAL_GRANT = Grant.IDENTITY_READ


def _store(request: Request) -> DocumentStore:
    store: DocumentStore = request.app.state.documents
    return store


def _sign_error_text(code: str | None) -> str:
    if not code:
        return ""
    key = f"documents.error.{code}"
    return t(key) if key in catalogue() else t("documents.error.other")


async def _session_facts(console: Console, session_id: str) -> SessionFacts:
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, session_id)
        except UnknownSession:
            opened = (await conn.execute(select(minutes_drafts.c.opened_at)
                                         .where(minutes_drafts.c.session_id == session_id)
                                         .order_by(minutes_drafts.c.opened_at).limit(1))).scalar_one_or_none()
            day = (opened.replace(tzinfo=opened.tzinfo or UTC) if opened else _now(console)).astimezone(VIETNAM_TZ)
            # minutes of a room the scheduler does not hold (it cannot be planned away once a case was called):
            # the Party track, the product's first use
            return SessionFacts(session_id=session_id, title="", day=day.date(), host=None, venues={},
                                track=Track.PARTY)
    return SessionFacts(session_id=session_id, title=record.title, day=record.session.day, host=record.host,
                        venues={v.venue: v.name for v in record.venues}, track=Track(record.track.value))


def _keyring(console: Console) -> Keyring:
    if console.keyring is None:  # the lifespan always sets it; a console without one issues nothing
        raise RuntimeError("the console has no keyring")
    return console.keyring


def _now(console: Console) -> datetime:
    return datetime.fromtimestamp(console.clock(), UTC)


def _row(record: DocumentRecord, tracking: dict[str, str], actor: Actor) -> dict[str, Any]:
    return {
        "id": record.id, "kind": record.kind.label_vi, "number": record.number_symbol,
        "case": tracking.get(record.case_id or "", ""), "signed": record.signed,
        "issued_on": record.issued_on.strftime("%d/%m/%Y"),
        "signed_at": record.signed_at.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M") if record.signed_at else "",
        "error": _sign_error_text(record.sign_error), "may_sign": actor.has(ISSUE_GRANT[record.kind]),
        "track": t(f"documents.track.{record.track.value}"),
    }


async def _render(console: Console, signed: SignedIn, session_id: str, *, status: int = 200, error: str = "",
                  ok: str = "") -> Response:
    actor = actor_of(signed)
    facts = await _session_facts(console, session_id)
    async with console.engine.connect() as conn:
        drafts = await list_drafts(conn, author=author_of(actor), session_id=session_id)
        records = await documents_of_session(conn, session_id)
    tracking = {d.case_id: d.tracking_code for d in drafts}
    rows = [_row(r, tracking, actor) for r in records]
    return render_page(console, "documents_console/session.html", signed, status=status, session_id=session_id,
                       facts=facts, track=t(f"documents.track.{facts.track.value}"),
                       cases=sorted(drafts, key=lambda d: d.tracking_code), documents=rows, error=error, ok=ok,
                       may_issue_minutes=actor.has(Grant.MINUTES), may_issue_notice=actor.has(Grant.APPROVE))


@router.get("/van-ban")
async def documents_index(console: Console, signed: CurrentUser) -> Response:
    actor = actor_of(signed)
    if not actor.has_any(_READ):
        return render_error_text(403, t("documents.error.forbidden"))
    async with console.engine.connect() as conn:
        drafts = await list_drafts(conn, author=author_of(actor), limit=500)
    sessions: dict[str, int] = {}
    for d in drafts:
        sessions[d.session_id] = sessions.get(d.session_id, 0) + 1
    return render_page(console, "documents_console/index.html", signed, sessions=sorted(sessions.items(),
                                                                                       reverse=True))


@router.get("/van-ban/{session_id}")
async def documents_page(request: Request, console: Console, signed: CurrentUser, session_id: str) -> Response:
    actor = actor_of(signed)
    if not actor.has_any(_READ):
        return render_error_text(403, t("documents.error.forbidden"))
    if not _SESSION_ID.match(session_id):
        return render_error_text(404, t("documents.error.unknown_session"))
    ok = t("documents.ok.signed") if request.query_params.get("ok") == "signed" else ""
    return await _render(console, signed, session_id, ok=ok)


async def _issued(console: Console, signed: SignedIn, session_id: str, store: DocumentStore, doc: Any,
                  actor: Actor) -> Response:
    try:
        record = await store.issue(doc, actor=actor.label)
    except DocumentNotSigned as exc:
        return await _render(console, signed, session_id, status=200, error=exc.message_vi)
    except ValueError:
        return await _render(console, signed, session_id, status=422, error=t("documents.error.too_long"))
    log.info("document issued", extra={"ctx": {"document": record.id, "kind": record.kind.value}})
    return Response(status_code=303, headers={"location": f"/van-ban/{session_id}?ok=signed"})


@router.post("/van-ban/{session_id}/bien-ban/{case_id}")
async def issue_case_minutes(request: Request, console: Console, signed: CurrentUser, session_id: str,
                             case_id: str) -> Response:
    actor = actor_of(signed)
    if not actor.has(Grant.MINUTES):
        return render_error_text(403, t("documents.error.forbidden"))
    if not _SESSION_ID.match(session_id) or not _CASE_ID.match(case_id):
        return render_error_text(404, t("documents.error.unknown_case"))
    facts = await _session_facts(console, session_id)
    names = await display_names(console, {actor.label})
    secretary = Official(name=names.get(actor.label, ""), position="Thư ký buổi tiếp")
    try:
        async with console.engine.begin() as conn:  # the sealed identities' views are audited in it
            doc = await case_minutes_doc(conn, _keyring(console), session=facts, case_id=case_id,
                                         author=author_of(actor), secretary=secretary,
                                         today=_now(console).astimezone(VIETNAM_TZ).date(),
                                         book=_store(request).issuers)
    except DraftForbidden as exc:
        return render_error_text(403, exc.message_vi)
    except ComplaintsError as exc:
        return await _render(console, signed, session_id, status=404, error=exc.message_vi)
    return await _issued(console, signed, session_id, _store(request), doc, actor)


@router.post("/van-ban/{session_id}/thong-bao")
async def issue_notice(request: Request, console: Console, signed: CurrentUser, session_id: str) -> Response:
    actor = actor_of(signed)
    if not actor.has(Grant.APPROVE):
        return render_error_text(403, t("documents.error.forbidden_notice"))
    if not _SESSION_ID.match(session_id):
        return render_error_text(404, t("documents.error.unknown_session"))
    facts = await _session_facts(console, session_id)
    try:
        async with console.engine.begin() as conn:
            doc = await conclusion_notice_doc(conn, _keyring(console), session=facts, author=author_of(actor),
                                              today=_now(console).astimezone(VIETNAM_TZ).date(),
                                              book=_store(request).issuers)
    except ComplaintsError as exc:
        return await _render(console, signed, session_id, status=404, error=exc.message_vi)
    return await _issued(console, signed, session_id, _store(request), doc, actor)


@router.post("/van-ban/tai-lieu/{document_id}/ky-lai")
async def sign_again(request: Request, console: Console, signed: CurrentUser, document_id: str) -> Response:
    actor = actor_of(signed)
    async with console.engine.connect() as conn:
        record = await get_document(conn, document_id[:64])
    if record is None or not actor.has_any(_READ):
        return render_error_text(404, t("documents.error.unknown_document"))
    if not actor.has(ISSUE_GRANT[record.kind]):
        return render_error_text(403, t("documents.error.forbidden"))
    try:
        await _store(request).sign(record.id, actor=actor.label)
    except DocumentNotSigned as exc:
        return await _render(console, signed, record.session_id, error=exc.message_vi)
    return Response(status_code=303, headers={"location": f"/van-ban/{record.session_id}?ok=signed"})


async def _download(request: Request, console: Console, signed: SignedIn, document_id: str, *,
                    public: bool) -> Response:
    actor = actor_of(signed)
    async with console.engine.connect() as conn:
        record = await get_document(conn, document_id[:64])
    if record is None or not actor.has_any(_READ):
        return render_error_text(404, t("documents.error.unknown_document"))
    if not record.signed:
        return render_error_text(409, t("documents.error.not_signed"))
    async with console.engine.begin() as conn:
        allowed = await authorize_download(conn, record, actor=actor.label, public=public,
                                           may_read_confidential=actor.has(CONFIDENTIAL_GRANT), now=_now(console))
    if not allowed:
        return render_error_text(403, t("documents.error.confidential"))
    data = await _store(request).read_pdf(record, public=public)
    name = f"{record.kind.value}-{record.id[:8]}{'-cong-khai' if public else ''}.pdf"
    return Response(data, media_type="application/pdf", headers={
        "content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store",
        "x-content-type-options": "nosniff"})


@router.get("/van-ban/tai-lieu/{document_id}/ban-goc")
async def download_original(request: Request, console: Console, signed: CurrentUser, document_id: str) -> Response:
    return await _download(request, console, signed, document_id, public=False)


@router.get("/van-ban/tai-lieu/{document_id}/ban-cong-khai")
async def download_public(request: Request, console: Console, signed: CurrentUser, document_id: str) -> Response:
    return await _download(request, console, signed, document_id, public=True)
