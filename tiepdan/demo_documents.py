"""The demo's last step: issue the session's conclusion notice (thông báo kết luận) from the minutes of its
called cases, through the app's document store, and check — with pyHanko's validator, not our own code —
that the signed original and its public twin carry a signature that is intact, covers the whole file and
is trusted. In dev mode with no ``TIEPDAN_SIGNER`` the signer is the local test CA
(:mod:`tiepdan.dev_signer`) and the signature must validate against its root; with a configured signer the
demo cannot know the certification authority's root, so it checks that the signature is intact and covers
the whole file.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from complaints.errors import ComplaintsError
from minutes.documents import Track
from minutes.documents_store import DocumentNotSigned, DocumentRecord, DocumentStore
from minutes.drafts import Author
from minutes.issuing import SessionFacts, conclusion_notice_doc, vietnam_today
from schedules import UnknownSession, get_session
from signaling.grants import Grant

from .dev_signer import DevSigner, signer_for

__all__ = ["NoticeCheck", "DEMO_ISSUER", "issue_session_notice", "signature_problems"]

#: Who issues the demo's notice (a service label: never a person).
DEMO_ISSUER = Author("service:demo", frozenset({Grant.MINUTES, Grant.APPROVE}))


@dataclass
class NoticeCheck:
    record: DocumentRecord | None = None
    problems: list[str] = field(default_factory=list)


def signature_problems(pdf: bytes, ca_pem: bytes | None) -> list[str]:
    """What is wrong with the last signature of ``pdf`` by pyHanko's validator (trusting only ``ca_pem``;
    None: trust is not judged). Blocking (pyHanko runs its own event loop): call it from a worker thread."""
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    roots = []
    if ca_pem is not None:
        _, _, der = pem.unarmor(ca_pem)
        roots.append(asn1_x509.Certificate.load(der))
    signatures = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    if not signatures:
        return ["không có chữ ký số"]
    status: Any = validate_pdf_signature(signatures[-1], ValidationContext(trust_roots=roots or None))
    problems = []
    if not (status.intact and status.valid):
        problems.append("chữ ký số không toàn vẹn")
    if status.coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        problems.append("chữ ký số không bao trùm toàn bộ tệp")
    if ca_pem is not None and not status.trusted:
        problems.append("chứng thư số không được CA thử nghiệm cục bộ xác nhận")
    return problems


async def _facts(app: Any, room: str) -> SessionFacts:
    async with app.state.services.engine.connect() as conn:
        record = await get_session(conn, room)
    return SessionFacts(session_id=room, title=record.title, day=record.session.day, host=record.host,
                        venues={v.venue: v.name for v in record.venues}, track=Track(record.track.value))


async def issue_session_notice(app: Any, room: str, *, now: datetime | None = None) -> NoticeCheck:
    """Issue ``room``'s conclusion notice through ``app.state.documents`` and check both signed files."""
    services = app.state.services
    store: DocumentStore = app.state.documents
    check = NoticeCheck()
    try:
        facts = await _facts(app, room)
        async with services.engine.begin() as conn:
            doc = await conclusion_notice_doc(conn, services.keyring, session=facts, author=DEMO_ISSUER,
                                              today=vietnam_today(now or datetime.now(UTC)), book=store.issuers)
        check.record = await store.issue(doc, actor=DEMO_ISSUER.label)
    except (UnknownSession, ComplaintsError) as exc:
        check.problems.append(getattr(exc, "message_vi", str(exc)))
        return check
    except DocumentNotSigned as exc:
        check.record = exc.record
        check.problems.append(exc.message_vi)
        return check
    settings = services.settings
    signer = signer_for(settings.document_options, mode=settings.mode, data_dir=settings.data_dir)
    ca_path: Path | None = signer.ca_path if isinstance(signer, DevSigner) else None
    ca_pem = await asyncio.to_thread(ca_path.read_bytes) if ca_path is not None else None
    for public in (False, True):
        pdf = await store.read_pdf(check.record, public=public)
        label = "bản công khai" if public else "bản gốc"
        check.problems += [f"{label}: {p}" for p in await asyncio.to_thread(signature_problems, pdf, ca_pem)]
    return check
