"""Issuing the signed documents from the live minutes, on SQLite and PostgreSQL: a case's biên bản and the
session's thông báo kết luận built from the drafts (track from the host; a denouncer's identity only in the
case's original, never in the notice); the console's pages over ASGI with the real lifespan (issue, list,
download, refusals without the grant, the "MẬT" original refused to the secretary, audit rows); the dev
signer's signatures validate against the local test CA; with no signer (production) documents stay drafts,
the page says why, and signing again later works."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import HandlingDirection, PetitionKind
from complaints.tables import audit_events
from evidence import Keyring
from minutes.documents import ConclusionNoticeDoc, Official, Track, render_html
from minutes.documents_store import DocumentNotSigned, DocumentState, DocumentStore, documents_of_session
from minutes.drafts import Author, DraftForbidden, open_draft, save_draft
from minutes.drafts_content import DenouncerIdentity
from minutes.issuing import (
    DEFAULT_BOOK,
    IssuerBook,
    IssuerBookError,
    Leader,
    NothingToIssue,
    SessionFacts,
    case_minutes_doc,
    conclusion_notice_doc,
    load_issuer_book,
)
from minutes.options import DocumentOptions
from signaling.events import VenueInfo
from signaling.grants import grants_for
from tiepdan.app import Services
from tiepdan.demo_documents import issue_session_notice, signature_problems
from tiepdan.dev_signer import DEV_SIGNER_DIR, signer_for
from tiepdan.session_cli import open_unless_known

from ._approvals import CAL, SECRETARY
from ._console import MODULE_LOOP, called_case, signed
from ._drafts import DENOUNCER, NOW, RECEPTION, REQUEST, SESSION, VENUE, register_case
from ._pdftext import fold, page_text
from .test_dev_signer import validate_against

pytestmark = pytest.mark.integration
FACTS = SessionFacts(session_id=SESSION, title="Tiếp công dân định kỳ tháng 12", day=NOW.date(),
                     host="bi-thu-tinh-uy", venues={VENUE: "Xã Tiên Du"}, track=Track.PARTY)
CONTENT: dict[str, Any] = {
    "attendees": [{"venue": VENUE, "people": "Ông Hoàng Văn Xã, Chủ tịch UBND xã"}],
    "citizen_request": REQUEST, "local_report": "Xã đã kiểm tra hồ sơ thửa 112.",
    "conclusion": "Giao Sở Nông nghiệp và Môi trường kiểm tra.", "handling_direction": "propose_acceptance",
    "directives": [{"unit": "so-tnmt", "content": "Kiểm tra hồ sơ, báo cáo.", "working_days": 10}],
    "documents": [{"title": "Đơn đề nghị", "pages": 2, "original": True}], "receipt_issued": True,
}


# -- building the documents ----------------------------------------------------------------------------------


async def _drafted(engine: AsyncEngine, keyring: Keyring, kind: PetitionKind, call_seq: int,
                   content: dict[str, Any], identity: dict[str, str] | None = None) -> str:
    async with engine.begin() as conn:
        case_id = await register_case(conn, keyring, kind=kind)
        await open_draft(conn, session_id=SESSION, case_id=case_id, call_seq=call_seq, venue=VENUE,
                         reception=RECEPTION, calendar=CAL,
                         now=NOW)
        await save_draft(conn, session_id=SESSION, case_id=case_id, base_version=1, content=content,
                         author=SECRETARY, keyring=keyring, calendar=CAL, now=NOW,
                         identity=DenouncerIdentity(**identity) if identity else None)
    return case_id


async def test_the_minutes_and_the_notice_are_built_from_the_drafts(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    name = DENOUNCER["full_name"]
    denounced = {**CONTENT, "conclusion": f"Giao Thanh tra xác minh; bà {name} đề nghị giữ bí mật.",
                 "directives": []}
    # the denunciation is called first, the complaint second: the notice follows the call order
    complaint = await _drafted(engine, keyring, PetitionKind.COMPLAINT, 2, CONTENT)
    denunciation = await _drafted(engine, keyring, PetitionKind.DENUNCIATION, 1, denounced, DENOUNCER)
    secretary = Official("Cán bộ thuky", "Thư ký buổi tiếp")
    async with engine.begin() as conn:
        doc = await case_minutes_doc(conn, keyring, session=FACTS, case_id=complaint, author=SECRETARY,
                                     secretary=secretary, today=NOW.date())
        sealed = await case_minutes_doc(conn, keyring, session=FACTS, case_id=denunciation, author=SECRETARY,
                                        secretary=secretary, today=NOW.date())
        notice = await conclusion_notice_doc(conn, keyring, session=FACTS, author=SECRETARY, today=NOW.date())
    assert doc.header.track is Track.PARTY and doc.header.symbol == "BB/BNCTU" and doc.header.number == ""
    assert doc.venue == "Xã Tiên Du" and doc.request == REQUEST and doc.petition_kind is PetitionKind.COMPLAINT
    assert [(p.full_name, p.id_number) for p in doc.petitioners] == [("Nguyễn Văn An", "001203012346")]
    assert not doc.identity_sealed and doc.attendees[0].position == "Xã Tiên Du"
    assert doc.directives[0].unit == "Sở Nông nghiệp và Môi trường" and doc.directives[0].deadline is not None
    assert doc.documents_received == ("Đơn đề nghị (2 trang, bản chính)",)
    assert doc.handling_direction == HandlingDirection.PROPOSE_ACCEPTANCE.label_vi
    assert doc.secretary == secretary and "Sở Nông nghiệp và Môi trường" in doc.recipients
    # the denunciation's original names the denouncer (it is "MẬT"); opening the seal was audited
    assert sealed.identity_sealed and name in [p.full_name for p in sealed.petitioners]
    assert DENOUNCER["id_number"] in [p.id_number for p in sealed.petitioners]
    async with engine.connect() as conn:
        views = (await conn.execute(select(audit_events.c.actor).where(audit_events.c.action == "identity.view"))
                 ).scalars().all()
    assert "user:thuky" in views
    # the notice: both cases in call order; the denouncer never printed, even in the original
    assert isinstance(notice, ConclusionNoticeDoc) and notice.header.symbol == "TB/BNCTU"
    assert [c.petition_kind for c in notice.cases] == [PetitionKind.DENUNCIATION, PetitionKind.COMPLAINT]
    assert notice.venues == ("Xã Tiên Du",) and "Sở Nông nghiệp và Môi trường" in notice.attending_bodies
    html = render_html(notice)
    assert fold(name) not in fold(html) and DENOUNCER["id_number"] not in html and "Nguyễn Văn An" in html
    assert notice.host.name == "đồng chí Bí thư Tỉnh ủy"  # no names configured: the office alone
    # a session of the State track (whoever hosts it), with the deployment's names of its leaders
    state = SessionFacts(session_id=SESSION, title="", day=NOW.date(), host="chu-tich-ubnd-tinh", venues={},
                         track=Track.STATE)
    book = IssuerBook(party=DEFAULT_BOOK.party, state=DEFAULT_BOOK.state,
                      leaders={"chu-tich-ubnd-tinh": Leader("Trần Văn Bình", "Chủ tịch UBND tỉnh")})
    async with engine.begin() as conn:
        state_doc = await conclusion_notice_doc(conn, keyring, session=state, author=SECRETARY, today=NOW.date(),
                                                book=book)
        named = await case_minutes_doc(conn, keyring, session=state, case_id=complaint, author=SECRETARY,
                                       secretary=secretary, today=NOW.date(), book=book)
        with pytest.raises(NothingToIssue):
            await case_minutes_doc(conn, keyring, session=FACTS, case_id="no-such-case", author=SECRETARY,
                                   secretary=secretary, today=NOW.date())
        with pytest.raises(NothingToIssue):
            await conclusion_notice_doc(conn, keyring, author=SECRETARY, today=NOW.date(),
                                        session=SessionFacts("phien-trong", "", NOW.date(), None, {}, Track.PARTY))
        with pytest.raises(DraftForbidden):
            await case_minutes_doc(conn, keyring, session=FACTS, case_id=complaint, secretary=secretary,
                                   author=Author("user:diemcau", grants_for(["venue"])), today=NOW.date())
    assert state_doc.header.track is Track.STATE and state_doc.header.symbol == "TB-BTCD"
    assert state_doc.host.name == "đồng chí Trần Văn Bình, Chủ tịch UBND tỉnh"
    assert "Trần Văn Bình, Chủ tịch UBND tỉnh" in state_doc.subject
    assert named.header.symbol == "BB-BTCD" and named.hosts[0].name == "Đồng chí Trần Văn Bình, Chủ tịch UBND tỉnh"


_BOOK: dict[str, Any] = {
    side: {"parent_body": f"{body} TỈNH LẠNG SƠN", "issuing_body": "BAN TIẾP CÔNG DÂN",
           "issuing_body_title": "Ban Tiếp công dân tỉnh Lạng Sơn", "minutes_symbol": f"BB/{side.upper()}",
           "notice_symbol": f"TB/{side.upper()}", "place": "Lạng Sơn", "host_position": "Bí thư Tỉnh ủy",
           "signature": {"authority": "TL. CHỦ TỊCH", "position": "TRƯỞNG BAN", "name": "Lê Văn Cường"},
           "recipients": ["Thường trực Tỉnh ủy (để b/c)", "  "]}
    for side, body in (("party", "TỈNH ỦY"), ("state", "UBND"))}


@pytest.mark.unit
def test_the_issuers_file_gives_the_bodies_and_the_leaders_names(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({**_BOOK, "leaders": {"bi-thu-tinh-uy": {"name": "Hoàng Văn Dũng",
                                                                          "position": "Bí thư Tỉnh ủy"}}}), "utf-8")
    book = load_issuer_book(path)
    assert book.issuer(Track.STATE).parent_body == "UBND TỈNH LẠNG SƠN" and book.party.minutes_symbol == "BB/PARTY"
    assert book.state.signature.name == "Lê Văn Cường" and book.party.recipients == ("Thường trực Tỉnh ủy (để b/c)",)
    assert book.host_name("bi-thu-tinh-uy", book.party) == "Hoàng Văn Dũng, Bí thư Tỉnh ủy"
    assert book.host_name("pho-bi-thu", book.party) == "Bí thư Tỉnh ủy" and load_issuer_book(None) is DEFAULT_BOOK


@pytest.mark.unit
@pytest.mark.parametrize(("content", "named"), [
    (None, "cannot be read"),
    (b"\xff\xfe not json", "not UTF-8 JSON"),
    (json.dumps({"party": _BOOK["party"]}).encode(), "state: Field required"),
    (json.dumps({**_BOOK, "extra": 1}).encode(), "extra: Extra inputs are not permitted"),
    (json.dumps({**_BOOK, "state": {**_BOOK["state"], "minutes_symbol": "X" * 41}}).encode(), "state.minutes_symbol"),
    (json.dumps({**_BOOK, "leaders": {"Bí Thư": {"name": "A", "position": "B"}}}).encode(), "is not a leader id"),
    (json.dumps({**_BOOK, "party": {**_BOOK["party"], "signature": {"name": "A"}}}).encode(),
     "party.signature.position"),
])
def test_a_bad_issuers_file_is_refused_naming_the_field(tmp_path: Path, content: bytes | None, named: str) -> None:
    path = tmp_path / "issuers.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IssuerBookError, match="TIEPDAN_ISSUERS_FILE") as caught:
        load_issuer_book(path)
    assert named in str(caught.value)


# -- the pages --------------------------------------------------------------------------------------------------

def _document_ids(html: str) -> list[str]:
    import re

    return re.findall(r'data-document="([0-9a-f]{32})"', html)


@MODULE_LOOP
async def test_the_pages_issue_list_download_and_refuse(app: FastAPI) -> None:
    services: Services = app.state.services
    async with services.engine.begin() as conn:  # the session as the demo opens it (with its venue's name)
        await open_unless_known(conn, SESSION, (VenueInfo(venue=VENUE, name="Điểm cầu xã Tiên Du", main=True),))
    complaint = await called_case(app, PetitionKind.COMPLAINT, 1)
    denunciation = await called_case(app, PetitionKind.DENUNCIATION, 2)
    secretary, chair, venue_op = await signed(app, "thuky"), await signed(app, "chutri"), await signed(app, "diemcau")
    markup = '<script>alert("x")</script>'
    saved = await secretary.http.put(
        f"/api/minutes/{SESSION}/{denunciation}", headers={"x-csrf-token": secretary.csrf},
        json={"base_version": 1, "content": {"conclusion": f"Xác minh tố cáo {markup}"}, "identity": DENOUNCER})
    assert saved.status_code == 200, saved.text

    index = await secretary.get("/van-ban")
    assert index.status_code == 200 and f'href="/van-ban/{SESSION}"' in index.text
    assert 'href="/van-ban"' in index.text  # the navigation entry
    page = await secretary.get(f"/van-ban/{SESSION}")
    assert page.status_code == 200 and 'data-testid="issue-minutes"' in page.text
    assert 'data-testid="issue-notice"' not in page.text  # the notice is the chair's
    assert (await secretary.post(f"/van-ban/{SESSION}/bien-ban/{complaint}", token=False)).status_code == 403
    for case_id in (complaint, denunciation):
        issued = await secretary.post(f"/van-ban/{SESSION}/bien-ban/{case_id}")
        assert issued.status_code == 303, issued.text
    assert (await secretary.post(f"/van-ban/{SESSION}/thong-bao")).status_code == 403
    missing = await secretary.post(f"/van-ban/{SESSION}/bien-ban/no-such-case")
    assert missing.status_code == 404 and "chưa được gọi" in missing.text
    notice = await chair.post(f"/van-ban/{SESSION}/thong-bao")
    assert notice.status_code == 303 and notice.headers["location"] == f"/van-ban/{SESSION}?ok=signed"

    listing = await chair.get(f"/van-ban/{SESSION}?ok=signed")
    assert listing.status_code == 200 and "Văn bản đã được phát hành và ký số." in listing.text
    assert listing.text.count("Đã ký số lúc") == 3 and markup not in listing.text
    async with services.engine.connect() as conn:
        records = await documents_of_session(conn, SESSION)
    assert [r.state for r in records] == [DocumentState.SIGNED] * 3
    by_case = {r.case_id: r for r in records}
    notice_id = by_case[None].id
    sealed_id, open_id = by_case[denunciation].id, by_case[complaint].id
    assert set(_document_ids(listing.text)) == {notice_id, sealed_id, open_id}

    ca_pem = (services.settings.data_dir / DEV_SIGNER_DIR / "dev-ca.pem").read_bytes()
    base = "/van-ban/tai-lieu"
    for client, document in ((chair, notice_id), (secretary, open_id)):
        original = await client.get(f"{base}/{document}/ban-goc")
        assert original.status_code == 200 and original.headers["content-type"] == "application/pdf"
        assert original.headers["cache-control"] == "no-store"
        status = await asyncio.to_thread(validate_against, original.content, ca_pem)
        assert status.intact and status.valid and status.trusted and status.bottom_line
    notice_text = fold(page_text((await chair.get(f"{base}/{notice_id}/ban-goc")).content))
    assert fold(DENOUNCER["full_name"]) not in notice_text and fold("tố cáo") in notice_text
    # the "MẬT" original: the secretary is refused, the chair (identity_read) gets it with the denouncer
    refused = await secretary.get(f"{base}/{sealed_id}/ban-goc")
    assert refused.status_code == 403 and "MẬT" in refused.text
    mat = await chair.get(f"{base}/{sealed_id}/ban-goc")
    assert mat.status_code == 200 and fold(DENOUNCER["full_name"]) in fold(page_text(mat.content))
    twin = await secretary.get(f"{base}/{sealed_id}/ban-cong-khai")
    assert twin.status_code == 200 and (await asyncio.to_thread(validate_against, twin.content, ca_pem)).bottom_line
    assert fold(DENOUNCER["full_name"]) not in fold(page_text(twin.content))
    # without a grant: no page, no file
    assert (await venue_op.get(f"/van-ban/{SESSION}")).status_code == 403
    assert (await venue_op.get(f"{base}/{open_id}/ban-cong-khai")).status_code == 404
    assert (await venue_op.post(f"/van-ban/{SESSION}/bien-ban/{complaint}")).status_code == 403
    assert (await secretary.get(f"{base}/{'0' * 32}/ban-goc")).status_code == 404

    async with services.engine.connect() as conn:
        rows = (await conn.execute(select(audit_events.c.action, audit_events.c.actor, audit_events.c.target_id)
                                   .where(audit_events.c.action.like("document.download%")))).all()
    audited = {(r.action, r.target_id) for r in rows}
    assert ("document.download_refused", sealed_id) in audited and ("document.download", sealed_id) in audited
    assert ("document.download", notice_id) in audited and ("document.download", open_id) in audited
    assert sum(1 for r in rows if r.action == "document.download") == 5

    # the demo's last step: the notice issued by the demo and checked by pyHanko against the local test CA
    check = await issue_session_notice(app, SESSION)
    assert check.problems == [] and check.record is not None and check.record.signed
    assert check.record.track is Track.PARTY  # no host named: the Party track
    bad = bytearray(await app.state.documents.read_pdf(check.record, public=True))
    bad[len(bad) // 3] ^= 0x01
    assert await asyncio.to_thread(signature_problems, bytes(bad), ca_pem)  # a changed bit is caught
    with_session = await secretary.get(f"/van-ban/{SESSION}")
    assert "Văn bản của Đảng" in with_session.text

    await _without_a_signer_the_draft_is_kept_and_signed_again_later(
        app, complaint, {notice_id, sealed_id, open_id, check.record.id})


async def _without_a_signer_the_draft_is_kept_and_signed_again_later(app: FastAPI, case_id: str,
                                                                     before: set[str]) -> None:
    services: Services = app.state.services
    settings = services.settings
    dev_store: DocumentStore = app.state.documents
    options: DocumentOptions = settings.document_options
    # production with no TIEPDAN_SIGNER: no signer at all, documents stay drafts
    app.state.documents = DocumentStore(services.engine, options, services.keyring,
                                        signer=signer_for(options, mode="production", data_dir=settings.data_dir))
    secretary = await signed(app, "thuky")
    kept = await secretary.post(f"/van-ban/{SESSION}/bien-ban/{case_id}")
    assert kept.status_code == 200 and "Chưa cấu hình chứng thư số" in kept.text
    assert "bản dự thảo chưa ký đã được lưu" in kept.text and 'data-testid="document-sign-again"' in kept.text
    listing = await secretary.get(f"/van-ban/{SESSION}")
    assert "Chưa ký được: Chưa cấu hình chứng thư số để ký văn bản." in listing.text
    (document_id,) = set(_document_ids(listing.text)) - before
    assert (await secretary.get(f"/van-ban/tai-lieu/{document_id}/ban-goc")).status_code == 409
    with pytest.raises(DocumentNotSigned):
        await app.state.documents.sign(document_id, actor="user:thuky")
    app.state.documents = dev_store  # the signer is back
    again = await secretary.post(f"/van-ban/tai-lieu/{document_id}/ky-lai")
    assert again.status_code == 303, again.text
    async with services.engine.connect() as conn:
        records = {r.id: r for r in await documents_of_session(conn, SESSION)}
        failed = (await conn.execute(select(audit_events.c.target_id)
                                     .where(audit_events.c.action == "document.sign_failed"))).scalars().all()
    assert records[document_id].signed and records[document_id].sign_error is None and document_id in failed
