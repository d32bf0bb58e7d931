"""Issuing documents (SQLite and PostgreSQL): render → draft kept → signed (PKCS#12 and a SoftHSM2 token) →
stored with its audit rows and its outbox event; both signed PDFs validate with pyHanko; the original is
encrypted at rest and the public twin carries no personal data. An absent token or an expired certificate
keeps the unsigned draft with a Vietnamese error, and the draft is signed later. The public verification
page shows kind, number, signer, date and hashes (by id, by hash, by an uploaded file) and no personal data."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import audit_events, cases
from evidence import Keyring
from evidence.pdf_signing import Pkcs11Signer, Pkcs12Signer
from minutes.documents_store import (
    DocumentNotSigned,
    DocumentStore,
    HashMatch,
    documents_of_session,
    find_document_by_hash,
    get_document,
)
from minutes.options import DocumentOptions
from signaling.events import DocumentIssued, parse_event
from signaling.outbox import outbox
from tiepdan.app import create_app
from tiepdan.db import make_engine, prepare_database

from . import _pki
from . import _samples as S
from ._pdftext import everything, fold, page_text

pytestmark = pytest.mark.integration

PASSPHRASE = "mat-khau-p12"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


async def _add_case(engine: AsyncEngine, case_id: str = "c-0001") -> None:
    """The case the sample minutes belong to (a bare row: these tests are about documents)."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(cases.insert().values(id=case_id, tracking_code="TD-2026-0001-0001-7", kind="denunciation",
                                                 status="received", confidential=True, created_at=now,
                                                 updated_at=now))


async def _validate(pdf: bytes, ca: _pki.TestCA) -> object:
    """pyHanko's validator (it runs its own event loop: in a thread, as the store signs)."""
    return await asyncio.to_thread(_pki.validate, pdf, ca)


_KEYRING = Keyring.generate(dev=True)


def _store(engine: AsyncEngine, tmp_path: Path, signer: object) -> DocumentStore:
    options = DocumentOptions(directory=tmp_path / "documents", public_url="https://tiepdan.example.vn")
    return DocumentStore(engine, options, _KEYRING, signer=signer)  # type: ignore[arg-type]


async def test_a_notice_is_signed_stored_audited_and_announced(engine: AsyncEngine, tmp_path: Path,
                                                               ca: _pki.TestCA) -> None:
    signer = Pkcs12Signer(_pki.write_pkcs12(tmp_path / "ky.p12", ca.signer, ca, PASSPHRASE), PASSPHRASE)
    store = _store(engine, tmp_path, signer)
    record = await store.issue(S.notice(), actor="user:thuky")
    assert record.signed and record.signer_kind == "pkcs12" and record.sign_error is None
    assert record.number_symbol == "Số 15-TB/BNCTU" and record.case_id is None
    original = await store.read_pdf(record, public=False)
    public = await store.read_pdf(record, public=True)
    for pdf in (original, public):
        status = await _validate(pdf, ca)
        assert status.bottom_line and status.intact and status.trusted  # type: ignore[attr-defined]
    import hashlib

    assert hashlib.sha256(original).hexdigest() == record.sha256
    assert hashlib.sha256(public).hexdigest() == record.public_sha256
    assert f"https://tiepdan.example.vn/xac-minh/{record.id}" in "".join(page_text(public).split())
    on_disk = (tmp_path / "documents" / record.id / "signed.pdf.enc").read_bytes()
    assert not on_disk.startswith(b"%PDF") and S.COMPLAINANT.encode() not in on_disk  # encrypted at rest
    haystack = fold(everything(public))
    for secret in (S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, S.ID_NUMBER, S.ADDRESS, S.PHONE, "Bảo Ngọc"):
        assert fold(secret) not in haystack, secret
    async with engine.connect() as conn:
        actions = (await conn.execute(select(audit_events.c.action).where(
            audit_events.c.target_id == record.id).order_by(audit_events.c.id))).scalars().all()
        payloads = (await conn.execute(select(outbox.c.payload))).scalars().all()
        assert await find_document_by_hash(conn, record.public_sha256 or "") == (record, HashMatch.PUBLIC)
        assert await find_document_by_hash(conn, (record.sha256 or "").upper()) == (record, HashMatch.ORIGINAL)
        assert await find_document_by_hash(conn, "0" * 64) is None
        assert await documents_of_session(conn, "2026-12-10-bt") == [record]
    assert list(actions) == ["document.drafted", "document.signed"]
    events = [parse_event(p) for p in payloads]
    issued = [e for e in events if isinstance(e, DocumentIssued)]
    assert len(issued) == 1 and issued[0].document == record.id and issued[0].sha256 == record.sha256
    assert await store.sign(record.id, actor="user:thuky") == record  # signed once, never again


async def test_an_absent_token_keeps_the_draft_which_is_signed_when_the_token_is_back(
        engine: AsyncEngine, tmp_path: Path, ca: _pki.TestCA) -> None:
    _pki.shared_softhsm()
    await _add_case(engine)
    absent = Pkcs11Signer(_pki.SOFTHSM_MODULE, "token-chua-cam", _pki.USER_PIN, _pki.KEY_LABEL)
    store = _store(engine, tmp_path, absent)
    with pytest.raises(DocumentNotSigned) as caught:
        await store.issue(S.minutes(sealed=True), actor="user:thuky")
    draft = caught.value.record
    assert caught.value.code == "token_absent" and "Hãy cắm thiết bị" in caught.value.message_vi
    assert "Bản dự thảo chưa ký đã được lưu" in caught.value.message_vi
    async with engine.connect() as conn:
        kept = await get_document(conn, draft.id)
        assert kept is not None and not kept.signed and kept.sign_error == "token_absent"
        assert await find_document_by_hash(conn, kept.draft_sha256) is None  # a draft verifies as nothing
    unsigned = await store.read_pdf(draft, public=False)
    assert S.DENOUNCER in page_text(unsigned)  # nothing typed is lost
    present = Pkcs11Signer(_pki.SOFTHSM_MODULE, _pki.TOKEN_LABEL, _pki.USER_PIN, _pki.KEY_LABEL)
    later = _store(engine, tmp_path, present)  # the token plugged in: the same store, a signer that works
    record = await later.sign(draft.id, actor="user:thuky")
    assert record.signed and record.signer_kind == "pkcs11" and record.sign_error is None
    assert record.case_id == "c-0001"
    public = await later.read_pdf(record, public=True)
    assert (await _validate(public, ca)).bottom_line  # type: ignore[attr-defined]
    for secret in (S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, "Bảo Ngọc"):
        assert fold(secret) not in fold(everything(public))
    expired = Pkcs12Signer(_pki.write_pkcs12(tmp_path / "het-han.p12", ca.expired, ca, PASSPHRASE), PASSPHRASE)
    with pytest.raises(DocumentNotSigned) as old:
        await _store(engine, tmp_path, expired).issue(S.notice(), actor="user:thuky")
    assert old.value.code == "certificate_expired" and "hết hạn" in old.value.message_vi
    none = _store(engine, tmp_path, None)
    with pytest.raises(DocumentNotSigned) as unset:
        await none.issue(S.notice(), actor="user:thuky")
    assert unset.value.code == "no_signer"


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        yield application


async def test_the_verification_page_shows_hash_signer_and_date_and_no_personal_data(
        app: FastAPI, tmp_path: Path, ca: _pki.TestCA) -> None:
    services = app.state.services
    signer = Pkcs12Signer(_pki.write_pkcs12(tmp_path / "ky.p12", ca.signer, ca, PASSPHRASE), PASSPHRASE)
    store = DocumentStore(services.engine, DocumentOptions(directory=tmp_path / "documents"), services.keyring,
                          signer=signer)
    await _add_case(services.engine)
    doc = S.minutes(sealed=True)
    record = await store.issue(doc, actor="user:thuky")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        page = await http.get(f"/xac-minh/{record.id}")
        assert page.status_code == 200
        assert record.sha256 and record.sha256 in page.text and record.public_sha256 in page.text  # type: ignore[operator]
        assert "Nguyễn Văn Chủ Trì" in page.text and "Biên bản tiếp công dân" in page.text
        assert "Số 15-TB/BNCTU" in page.text and re.search(r"\d\d:\d\d \d\d/\d\d/20\d\d", page.text)
        for secret in (S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, S.PHONE, "Trần Văn B", "Thôn", "tố cáo ông"):
            assert secret not in page.text, secret
        unknown = await http.get("/xac-minh/" + "f" * 32)
        malformed = await http.get("/xac-minh/<script>")
        assert unknown.status_code == malformed.status_code == 404
        assert "Không tìm thấy văn bản" in unknown.text and "<script>" not in malformed.text
        by_hash = await http.get("/xac-minh", params={"ma-bam": record.public_sha256})
        assert "bản công khai đã ký số" in by_hash.text and record.sha256 in by_hash.text
        form = await http.get("/xac-minh")
        token = re.search(r'csrf_token=([^"&]+)"', form.text)
        assert token is not None
        public = await store.read_pdf(record, public=True)
        from urllib.parse import unquote

        upload = await http.post(f"/xac-minh?csrf_token={unquote(token.group(1))}",
                                 files={"tep": ("ban-cong-khai.pdf", public, "application/pdf")})
        assert upload.status_code == 200 and "Tệp khớp với bản công khai" in upload.text
        other = await http.post(f"/xac-minh?csrf_token={unquote(token.group(1))}",
                                files={"tep": ("khac.pdf", public + b"\n", "application/pdf")})
        assert "Không tìm thấy văn bản" in other.text
        no_token = await http.post("/xac-minh", files={"tep": ("x.pdf", public, "application/pdf")})
        assert no_token.status_code == 403
