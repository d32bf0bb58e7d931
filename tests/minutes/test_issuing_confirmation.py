"""The biên bản states how its read-back was confirmed and who approved it, on SQLite and PostgreSQL: a signature
drawn on screen (when, the SHA-256 of the kept PNG), "confirmed verbally" at a recording time, the chair's
approval (name, when), each only for the content as printed (a save since counts as none); the chair's name is
escaped in the HTML and the lines reach the PDF and the public twin."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from evidence import Keyring
from minutes.approval import approve, confirm_by_signature, confirm_verbally, request_readback
from minutes.closing import content_sha256
from minutes.documents import CaseMinutesDoc, Official, Track, redacted, render_html, render_pdf
from minutes.drafts_content import MinutesContent
from minutes.issuing import SessionFacts, case_minutes_doc

from ._approvals import CAL, CHAIR, COMPLETE, SECRETARY, opened, save, signature_png
from ._drafts import NOW, SESSION, VENUE
from ._pdftext import fold, page_text

pytestmark = pytest.mark.integration
FACTS = SessionFacts(session_id=SESSION, title="Tiếp công dân định kỳ tháng 12", day=NOW.date(),
                     host="bi-thu-tinh-uy", venues={VENUE: "Xã Tiên Du"}, track=Track.PARTY)
WRITER = Official(name="Nguyễn Thị Thư Ký", position="chuyên viên")


async def _read_back(engine: AsyncEngine, keyring: Keyring) -> tuple[str, str]:
    """A case with its complete draft read back (10:10 in Vietnam); returns (case id, read-back hash)."""
    case_id = await opened(engine, keyring)
    await save(engine, keyring, case_id, 1, COMPLETE)
    async with engine.begin() as conn:
        state = await request_readback(conn, session_id=SESSION, case_id=case_id, version=2, author=SECRETARY,
                                       now=NOW + timedelta(minutes=10))
    assert state.readback_sha256 is not None
    return case_id, state.readback_sha256


async def _approve(engine: AsyncEngine, keyring: Keyring, case_id: str, digest: str, name: str) -> None:
    async with engine.begin() as conn:
        approved = await approve(conn, session_id=SESSION, case_id=case_id, confirmed_sha256=digest, author=CHAIR,
                                 name=name, keyring=keyring, calendar=CAL, now=NOW + timedelta(minutes=30))
    assert approved.state == "approved"


async def _doc(engine: AsyncEngine, keyring: Keyring, case_id: str) -> CaseMinutesDoc:
    async with engine.begin() as conn:
        return await case_minutes_doc(conn, keyring, session=FACTS, case_id=case_id, author=SECRETARY,
                                      secretary=WRITER, today=NOW.date())


async def test_a_verbal_confirmation_and_the_approval_are_stated_in_html_pdf_and_twin(
        engine: AsyncEngine, keyring: Keyring) -> None:
    case_id, digest = await _read_back(engine, keyring)
    async with engine.begin() as conn:
        await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest,
                               media_time="1:02:03", author=SECRETARY, now=NOW + timedelta(minutes=11))
    name = 'Đồng chí <b>Nguyễn</b> "Bí thư"'
    await _approve(engine, keyring, case_id, digest, name)
    doc = await _doc(engine, keyring, case_id)
    assert doc.readback == (
        "Biên bản đã được đọc lại cho công dân nghe; công dân đã xác nhận bằng lời lúc 09 giờ 11, ngày 10/12/2026, "
        f"tại thời điểm 1:02:03 của bản ghi hình vụ việc. Nội dung được xác nhận có mã SHA-256: {digest}.")
    assert doc.approval == f"{name}, người chủ trì, đã phê duyệt biên bản lúc 09 giờ 30, ngày 10/12/2026."
    html = render_html(doc)
    assert "&lt;b&gt;Nguyễn&lt;/b&gt;" in html and "<b>Nguyễn" not in html
    assert "xác nhận bằng lời lúc 09 giờ 11" in html and digest in html
    text = fold(page_text(render_pdf(doc)))
    assert fold("tại thời điểm 1:02:03 của bản ghi hình vụ việc") in text
    assert fold("người chủ trì, đã phê duyệt biên bản lúc 09 giờ 30") in text
    twin = redacted(doc)
    assert twin.readback == doc.readback and twin.approval == doc.approval  # no personal data in either line


async def test_a_signature_is_stated_with_its_hash_and_a_missing_approval_is_said(engine: AsyncEngine,
                                                                                  keyring: Keyring) -> None:
    case_id, digest = await _read_back(engine, keyring)
    png = signature_png()
    async with engine.begin() as conn:
        await confirm_by_signature(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest, png=png,
                                   author=SECRETARY, venue=None, now=NOW + timedelta(minutes=12))
    doc = await _doc(engine, keyring, case_id)
    assert doc.readback == (
        "Biên bản đã được đọc lại cho công dân nghe; công dân đã ký xác nhận trên màn hình lúc 09 giờ 12, ngày "
        f"10/12/2026 (chữ ký lưu kèm hồ sơ, mã SHA-256 của chữ ký: {hashlib.sha256(png).hexdigest()}). Nội dung "
        f"được xác nhận có mã SHA-256: {digest}.")
    assert doc.approval == "Biên bản chưa được người chủ trì phê duyệt."
    assert doc.approval in render_html(doc)


async def test_a_save_after_the_confirmation_is_neither_confirmed_nor_approved(engine: AsyncEngine,
                                                                              keyring: Keyring) -> None:
    case_id, digest = await _read_back(engine, keyring)
    async with engine.begin() as conn:
        await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest,
                               media_time="12:05", author=SECRETARY, now=NOW + timedelta(minutes=11))
    await _approve(engine, keyring, case_id, digest, "Đồng chí Bí thư")
    changed: dict[str, Any] = {**COMPLETE, "discussion": "Bổ sung sau phê duyệt"}
    await save(engine, keyring, case_id, 2, changed, minutes=40)
    doc = await _doc(engine, keyring, case_id)
    assert content_sha256(MinutesContent.model_validate(changed)) != digest
    assert doc.readback == "Biên bản chưa được đọc lại và chưa được công dân xác nhận."
    assert doc.approval == "Biên bản chưa được người chủ trì phê duyệt."
    async with engine.begin() as conn:  # read back again: read, not confirmed yet
        await request_readback(conn, session_id=SESSION, case_id=case_id, version=3, author=SECRETARY,
                               now=NOW + timedelta(minutes=41))
    assert (await _doc(engine, keyring, case_id)).readback == (
        "Biên bản đã được đọc lại cho công dân nghe; công dân chưa xác nhận.")
