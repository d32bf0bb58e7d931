"""Issuing the signed documents: render, keep the draft, sign, store, announce; and the lookups of the public
verification page.

Theory of operation
-------------------
:meth:`DocumentStore.issue` takes a document (:mod:`minutes.documents`) and:

1. gives it an id and the address of its verification page (the QR code), renders the original and its
   redacted public twin to PDF (in a worker thread), and keeps both as a **draft**: the original encrypted
   at rest under the keyring's data key (it may name a denouncer), the twin in clear; one transaction writes
   the ``minute_documents`` row (state ``draft``) and its audit row (``document.drafted``);
2. signs both PDFs (:func:`evidence.pdf_signing.sign_pdf`, in a worker thread) and stores the signed files;
   one transaction turns the row to ``signed`` (hashes, signer's certificate, signing time), appends the
   audit row (``document.signed``) and puts :class:`~signaling.events.DocumentIssued` into the outbox.

When signing fails (no signer configured, the token absent or locked, a wrong PIN, an expired certificate)
the draft stays, the row keeps the failure's code (audit ``document.sign_failed``) and
:class:`DocumentNotSigned` carries the Vietnamese message and the draft's record; :meth:`DocumentStore.sign`
signs that draft later, when the token is back. A signed document is never signed again.

Files live under ``DocumentOptions.directory/<id>/``; the table keeps paths relative to that directory.
Every call that touches the disk, the renderer or the token runs in a worker thread; the event loop only
waits. The queries (:func:`get_document`, :func:`find_document_by_hash`, :func:`documents_of_session`) are
what the verification page and the console read: they return ids, kinds, numbers, hashes and the signer's
certificate, never a person.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.audit import append_audit
from evidence import Keyring
from evidence.pdf_signing import PdfSigningError, Signer, sign_pdf, signature_facts
from evidence.stream import EncryptingWriter, open_decrypted
from signaling.events import DocumentIssued
from signaling.outbox import add_to_outbox

from .documents import CaseMinutesDoc, Document, DocumentKind, Track, redacted, render_pdf
from .drafts import may_hold_identity
from .issuing import IssuerBook, load_issuer_book
from .options import DocumentOptions
from .tables import minute_documents

__all__ = [
    "DocumentNotSigned", "DocumentRecord", "DocumentState", "DocumentStore", "HashMatch", "documents_of_session",
    "find_document_by_hash", "get_document", "signer_from_options",
]

log = logging.getLogger("minutes.documents")

_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
SIGNATURE_FIELD = "ChuKySo"


class DocumentState(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


class HashMatch(StrEnum):
    """Which file of a document a hash names."""

    ORIGINAL = "original"  # the signed original
    PUBLIC = "public"      # the signed public twin


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One row of ``minute_documents`` (no path: files are read through the store)."""

    id: str
    kind: DocumentKind
    state: DocumentState
    session_id: str
    case_id: str | None
    track: Track
    number_symbol: str
    issued_on: date
    draft_sha256: str
    sha256: str | None
    public_sha256: str | None
    signer_kind: str | None
    signer_subject: str | None
    signer_fingerprint: str | None
    signed_at: datetime | None
    sign_error: str | None
    created_by: str
    created_at: datetime

    @property
    def signed(self) -> bool:
        return self.state is DocumentState.SIGNED


class DocumentNotSigned(Exception):
    """The document was kept as an unsigned draft (``record``) but not signed: ``message_vi`` says why (for
    the official; no secret, no personal data), ``code`` is the failure's code."""

    def __init__(self, message_vi: str, *, code: str, record: DocumentRecord) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi
        self.code = code
        self.record = record


def signer_from_options(options: DocumentOptions) -> Signer | None:
    """The configured signer (None: ``signer`` is ``none``)."""
    from evidence.pdf_signing import Pkcs11Signer, Pkcs12Signer

    if options.signer == "pkcs12" and options.pkcs12_path is not None:
        return Pkcs12Signer(options.pkcs12_path, options.secret)
    if options.signer == "pkcs11" and options.pkcs11_module and options.pkcs11_token_label \
            and options.pkcs11_key_label:
        return Pkcs11Signer(options.pkcs11_module, options.pkcs11_token_label, options.secret or "",
                            options.pkcs11_key_label)
    return None


# -- queries -------------------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back: they were written in UTC


def _record(row: RowMapping) -> DocumentRecord:
    created = _aware(row["created_at"])
    assert created is not None
    return DocumentRecord(
        id=row["id"], kind=DocumentKind(row["kind"]), state=DocumentState(row["state"]), session_id=row["session_id"],
        case_id=row["case_id"], track=Track(row["track"]), number_symbol=row["number_symbol"],
        issued_on=row["issued_on"], draft_sha256=row["draft_sha256"], sha256=row["sha256"],
        public_sha256=row["public_sha256"], signer_kind=row["signer_kind"], signer_subject=row["signer_subject"],
        signer_fingerprint=row["signer_fingerprint"], signed_at=_aware(row["signed_at"]),
        sign_error=row["sign_error"], created_by=row["created_by"], created_at=created)


async def get_document(conn: AsyncConnection, document_id: str) -> DocumentRecord | None:
    """The document ``document_id`` (None: unknown or malformed id)."""
    if not _ID.match(document_id):
        return None
    row = (await conn.execute(select(minute_documents).where(minute_documents.c.id == document_id))
           ).mappings().one_or_none()
    return None if row is None else _record(row)


async def find_document_by_hash(conn: AsyncConnection, sha256: str) -> tuple[DocumentRecord, HashMatch] | None:
    """The signed document whose original or public twin has this SHA-256 (hex; case ignored), and which."""
    digest = sha256.strip().lower()
    if not _SHA256.match(digest):
        return None
    row = (await conn.execute(select(minute_documents).where(
        minute_documents.c.state == DocumentState.SIGNED.value,
        or_(minute_documents.c.sha256 == digest, minute_documents.c.public_sha256 == digest)))).mappings().first()
    if row is None:
        return None
    return _record(row), HashMatch.ORIGINAL if row["sha256"] == digest else HashMatch.PUBLIC


async def authorize_download(conn: AsyncConnection, record: DocumentRecord, *, actor: str, public: bool,
                             may_read_confidential: bool, now: datetime) -> bool:
    """Decide one download of a signed document's PDF and audit it (``document.download``, or
    ``document.download_refused``): the original of a denunciation's biên bản ("MẬT": it names the
    denouncer) goes only to a reader who may see sealed identities; the public twin and every other original
    to any reader the page admits. Returns whether the file may be served."""
    confidential = (not public and record.kind is DocumentKind.CASE_MINUTES and record.case_id is not None
                    and await may_hold_identity(conn, record.case_id))
    refused = confidential and not may_read_confidential
    await append_audit(conn, actor=actor, action="document.download_refused" if refused else "document.download",
                       target_kind="document", target_id=record.id,
                       detail={"edition": "public" if public else "original", "kind": record.kind.value,
                               "session": record.session_id}, at=now)
    return not refused


async def documents_of_session(conn: AsyncConnection, session_id: str) -> list[DocumentRecord]:
    """The documents of a reception session, oldest first."""
    rows = (await conn.execute(select(minute_documents).where(minute_documents.c.session_id == session_id)
                               .order_by(minute_documents.c.created_at, minute_documents.c.id))).mappings().all()
    return [_record(r) for r in rows]


# -- the store -----------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class DocumentStore:
    """Issues, signs and reads the documents of the minutes service (see the module docstring).

    ``signer`` None: documents are kept as drafts (:class:`DocumentNotSigned`, code ``no_signer``).
    ``notify_outbox`` wakes the outbox relay after a commit that wrote an event."""

    def __init__(self, engine: AsyncEngine, options: DocumentOptions, keyring: Keyring, *,
                 signer: Signer | None, notify_outbox: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self._engine = engine
        self._options = options
        self._keyring = keyring
        self._signer = signer
        self._issuers = load_issuer_book(options.issuers_file)  # a bad file stops the start, naming the field
        self._notify = notify_outbox
        self._clock = clock

    @property
    def directory(self) -> Path:
        return self._options.directory

    @property
    def issuers(self) -> IssuerBook:
        """The deployment's issuing bodies and leaders' names (``TIEPDAN_ISSUERS_FILE``)."""
        return self._issuers

    def verification_url(self, document_id: str) -> str:
        return f"{self._options.public_url.rstrip('/')}/xac-minh/{document_id}"

    # -- files (blocking: called in worker threads) --

    def _write_encrypted(self, relative: str, data: bytes) -> None:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as fh, EncryptingWriter(fh, self._keyring, aad=relative.encode("utf-8")) as writer:
            writer.write(data)
        tmp.replace(path)

    def _read_encrypted(self, relative: str) -> bytes:
        with open_decrypted(self.directory / relative, self._keyring, aad=relative.encode("utf-8")) as fh:
            return fh.read()

    def _write_clear(self, relative: str, data: bytes) -> None:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def _render_drafts(self, document_id: str, doc: Document) -> tuple[bytes, bytes]:
        original = render_pdf(doc)
        twin: Document = redacted(doc) if isinstance(doc, CaseMinutesDoc) else redacted(doc)
        public = render_pdf(twin)
        self._write_encrypted(f"{document_id}/draft.pdf.enc", original)
        self._write_clear(f"{document_id}/public-draft.pdf", public)
        return original, public

    def _sign_both(self, signer: Signer, document_id: str, kind: DocumentKind, at: datetime) -> tuple[bytes, bytes]:
        original = self._read_encrypted(f"{document_id}/draft.pdf.enc")
        public = (self.directory / f"{document_id}/public-draft.pdf").read_bytes()
        reason = f"Ký số {kind.label_vi.lower()}"
        signed = sign_pdf(original, signer, reason=reason, location=self._options.location,
                          field_name=SIGNATURE_FIELD, now=at)
        signed_public = sign_pdf(public, signer, reason=f"{reason} (bản công khai)", location=self._options.location,
                                 field_name=SIGNATURE_FIELD, now=at)
        self._write_encrypted(f"{document_id}/signed.pdf.enc", signed)
        self._write_clear(f"{document_id}/public.pdf", signed_public)
        return signed, signed_public

    # -- use cases --

    async def issue(self, doc: Document, *, actor: str) -> DocumentRecord:
        """Render, keep the draft, sign and store ``doc`` (see the module docstring); the signed record.

        Raises :class:`DocumentNotSigned` (the draft kept) when it cannot be signed now, and ``ValueError``
        for a field longer than the renderer accepts (nothing kept)."""
        document_id = uuid.uuid4().hex
        doc = dataclasses.replace(doc, verification_url=self.verification_url(document_id))
        original, _ = await asyncio.to_thread(self._render_drafts, document_id, doc)
        now = self._clock()
        case_id = getattr(doc, "case_id", None)
        async with self._engine.begin() as conn:
            await conn.execute(minute_documents.insert().values(
                id=document_id, kind=doc.kind.value, state=DocumentState.DRAFT.value, session_id=doc.session_id,
                case_id=case_id, track=doc.header.track.value, number_symbol=doc.header.number_line.strip(),
                issued_on=doc.header.issued_on, draft_sha256=_sha256(original),
                draft_path=f"{document_id}/draft.pdf.enc", created_by=actor, created_at=now))
            await append_audit(conn, actor=actor, action="document.drafted", target_kind="document",
                               target_id=document_id, detail={"kind": doc.kind.value, "session": doc.session_id,
                                                              "case": case_id}, at=now)
        log.info("document drafted", extra={"ctx": {"document": document_id, "kind": doc.kind.value,
                                                     "session": doc.session_id}})
        return await self.sign(document_id, actor=actor)

    async def sign(self, document_id: str, *, actor: str) -> DocumentRecord:
        """Sign the draft ``document_id`` now; a signed document is returned as it is. Raises
        :class:`DocumentNotSigned` (nothing changed but the failure's code) or ``LookupError`` (no such id)."""
        async with self._engine.connect() as conn:
            record = await get_document(conn, document_id)
        if record is None:
            raise LookupError(document_id)
        if record.signed:
            return record
        if self._signer is None:
            await self._sign_failed(record, "no_signer", actor)
            raise DocumentNotSigned("Chưa cấu hình chứng thư số để ký văn bản; bản dự thảo chưa ký đã được lưu.",
                                    code="no_signer", record=record)
        at = self._clock()
        try:
            signed, public = await asyncio.to_thread(self._sign_both, self._signer, document_id, record.kind, at)
        except PdfSigningError as exc:
            await self._sign_failed(record, exc.code, actor)
            raise DocumentNotSigned(f"{exc.message_vi} Bản dự thảo chưa ký đã được lưu; có thể ký lại sau.",
                                    code=exc.code, record=record) from exc
        facts = signature_facts(signed)
        values = {
            "state": DocumentState.SIGNED.value, "sha256": _sha256(signed),
            "signed_path": f"{document_id}/signed.pdf.enc",
            "public_sha256": _sha256(public), "public_path": f"{document_id}/public.pdf",
            "signer_kind": self._signer.kind, "signer_subject": facts.certificate.subject,
            "signer_fingerprint": facts.certificate.fingerprint_sha256,
            "signed_at": (facts.signed_at or at).astimezone(UTC), "sign_error": None,
        }
        async with self._engine.begin() as conn:
            result = await conn.execute(update(minute_documents).where(
                minute_documents.c.id == document_id, minute_documents.c.state == DocumentState.DRAFT.value
            ).values(**values))
            if result.rowcount == 1:
                await append_audit(conn, actor=actor, action="document.signed", target_kind="document",
                                   target_id=document_id, detail={"kind": record.kind.value, "sha256": values["sha256"],
                                                                  "public_sha256": values["public_sha256"],
                                                                  "signer": values["signer_fingerprint"]}, at=at)
                await add_to_outbox(conn, DocumentIssued(
                    document=document_id, kind=record.kind.value, session=record.session_id, case=record.case_id,
                    sha256=values["sha256"], public_sha256=values["public_sha256"], by=actor))
            final = await get_document(conn, document_id)
        if self._notify is not None:
            self._notify()
        assert final is not None
        log.info("document signed", extra={"ctx": {"document": document_id, "kind": record.kind.value,
                                                    "signer": self._signer.kind}})
        return final

    async def _sign_failed(self, record: DocumentRecord, code: str, actor: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(minute_documents).where(minute_documents.c.id == record.id)
                               .values(sign_error=code[:64]))
            await append_audit(conn, actor=actor, action="document.sign_failed", target_kind="document",
                               target_id=record.id, detail={"kind": record.kind.value, "code": code})
        log.warning("document not signed", extra={"ctx": {"document": record.id, "code": code}})

    async def read_pdf(self, record: DocumentRecord, *, public: bool) -> bytes:
        """The signed original (decrypted) or the signed public twin; a draft's unsigned PDFs when not signed."""
        if public:
            name = f"{record.id}/public.pdf" if record.signed else f"{record.id}/public-draft.pdf"
            return await asyncio.to_thread((self.directory / name).read_bytes)
        name = f"{record.id}/signed.pdf.enc" if record.signed else f"{record.id}/draft.pdf.enc"
        return await asyncio.to_thread(self._read_encrypted, name)
