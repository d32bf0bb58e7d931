"""The public verification page of signed documents, ``/xac-minh`` (no login; rate-limited per address).

``/xac-minh/{document_id}`` (where the QR code of a document points) shows what the document is — kind,
số/ký hiệu, date, state, the signer (common name and organisation of the certificate, its SHA-256
fingerprint), the signing time and the SHA-256 of the signed original and of the public twin. ``/xac-minh``
takes a SHA-256 typed in, or a PDF uploaded, and says which document (if any) it is. Never a person, a text
or the certificate's other attributes (Vietnamese certificates may carry an ID number in the subject); a
draft shows that it is not signed. A malformed and an unknown id or hash get the same answer.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from minutes.documents_store import DocumentRecord, HashMatch, find_document_by_hash, get_document

from ..request_limits import UPLOAD
from ..routes import Console, OptionalUser, render_page
from ..security import ensure_csrf_cookie, pre_session_token

__all__ = ["router"]

router = APIRouter()
_CHUNK = 64 * 1024


def _signer_names(subject: str | None) -> tuple[str, str]:
    """The certificate's common name and organisation (nothing else of the subject)."""
    if not subject:
        return "", ""
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError:
        return "", ""

    def first(oid: x509.ObjectIdentifier) -> str:
        values = name.get_attributes_for_oid(oid)
        value = values[0].value if values else ""
        return value if isinstance(value, str) else ""

    return first(x509.NameOID.COMMON_NAME), first(x509.NameOID.ORGANIZATION_NAME)


def _facts(record: DocumentRecord) -> dict[str, Any]:
    common, organisation = _signer_names(record.signer_subject)
    return {"id": record.id, "kind": record.kind.label_vi, "number": record.number_symbol,
            "issued_on": record.issued_on, "signed": record.signed, "signer": common,
            "organisation": organisation, "fingerprint": record.signer_fingerprint or "",
            "signed_at": record.signed_at.timestamp() if record.signed_at else None,
            "sha256": record.sha256 or "", "public_sha256": record.public_sha256 or ""}


def _page(request: Request, console: Console, signed: OptionalUser, *, status: int = 200,
          **context: Any) -> Response:
    base: dict[str, Any] = {"found": None, "match": None, "not_found": False, "limited": False, "digest": "",
                            "max_upload": UPLOAD}
    base.update(context)
    if signed is not None:
        return render_page(console, "document_verify/verify.html", signed, status=status, **base)
    token = pre_session_token(request, console.options, console.csrf, console.clock())
    response = console.pages.render("document_verify/verify.html",
                                    {"user": None, "csrf_token": token, "nav": [], **base}, status=status)
    ensure_csrf_cookie(request, response, console.options, token)
    return response


def _allowed(request: Request, console: Console) -> bool:
    client = request.client.host if request.client else "unknown"
    return console.lookup_limiter.hit(client, console.clock())


@router.get("/xac-minh")
async def verify_form(request: Request, console: Console, signed: OptionalUser,
                      ma_bam: Annotated[str, Query(alias="ma-bam", max_length=128)] = "") -> Response:
    digest = ma_bam.strip()
    if not digest:
        return _page(request, console, signed)
    if not _allowed(request, console):
        return _page(request, console, signed, status=429, limited=True, digest=digest[:64])
    async with console.engine.connect() as conn:
        found = await find_document_by_hash(conn, digest)
    if found is None:
        return _page(request, console, signed, not_found=True, digest=digest[:64])
    record, match = found
    return _page(request, console, signed, found=_facts(record),
                 match="public" if match is HashMatch.PUBLIC else "original", digest=digest.lower())


@router.post("/xac-minh")
async def verify_upload(request: Request, console: Console, signed: OptionalUser) -> Response:
    if not _allowed(request, console):
        return _page(request, console, signed, status=429, limited=True)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("tep")
    if not isinstance(upload, UploadFile):
        return _page(request, console, signed, status=400, not_found=True)
    hasher = hashlib.sha256()
    while chunk := await upload.read(_CHUNK):
        hasher.update(chunk)
    await upload.close()
    digest = hasher.hexdigest()
    async with console.engine.connect() as conn:
        found = await find_document_by_hash(conn, digest)
    if found is None:
        return _page(request, console, signed, not_found=True, digest=digest)
    record, match = found
    return _page(request, console, signed, found=_facts(record),
                 match="public" if match is HashMatch.PUBLIC else "original", digest=digest)


@router.get("/xac-minh/{document_id}")
async def verify_document(request: Request, console: Console, signed: OptionalUser, document_id: str) -> Response:
    if not _allowed(request, console):
        return _page(request, console, signed, status=429, limited=True)
    async with console.engine.connect() as conn:
        record = await get_document(conn, document_id[:64])
    if record is None:
        return _page(request, console, signed, status=404, not_found=True)
    return _page(request, console, signed, found=_facts(record))
