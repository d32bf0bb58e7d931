"""Read-back, confirmation and approval: on SQLite and PostgreSQL (the service), and over HTTP with the real
lifespan (a call and a ``case.closed`` on the bus): the venue's page gets the read-back, the citizen's drawn
signature is kept with its hash, bad signatures and times are refused in Vietnamese, a draft changed after the
read-back or the confirmation cannot be confirmed or approved, only the chair approves, and the approved
minutes land in the complaint database once however often ``case.closed`` comes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import reception_entries
from evidence import Keyring
from minutes.approval import (
    ReadbackStale,
    approve,
    check_signature_png,
    confirm_by_signature,
    confirm_verbally,
    parse_media_time,
    request_readback,
)
from minutes.drafts import DraftForbidden, DraftInvalid
from minutes.tables import minutes_case_records, minutes_signatures
from signaling.events import CaseClosed
from signaling.outbox import outbox
from tiepdan.app import Services

from ..room_console._live_sessions import open_live_session
from ._approvals import CAL, CHAIR, COMPLETE, SECRETARY, VENUE_OP, opened, save, signature_png
from ._console import MODULE_LOOP, called_case, signed
from ._drafts import NOW, SESSION, VENUE

pytestmark = pytest.mark.integration
OTHER_SESSION = "phien-2026-12-11"


def test_a_signature_must_be_a_drawn_png_within_the_cap() -> None:
    assert check_signature_png(signature_png()) == (600, 200)
    refusals = {
        "Chưa có chữ ký.": b"",
        "Chữ ký phải là ảnh PNG.": b"GIF89a" + b"\0" * 50,
        "Ảnh chữ ký trống: công dân chưa ký.": signature_png(blank=True),
        "Ảnh chữ ký bị hỏng hoặc không phải ảnh PNG.": signature_png()[:200],
        "Ảnh chữ ký quá lớn (tối đa 256 KB).": b"\x89PNG\r\n\x1a\n" + b"\0" * (256 * 1024),
        "Kích thước ảnh chữ ký không hợp lệ.": signature_png(size=(5000, 10)),
    }
    for message, data in refusals.items():
        with pytest.raises(DraftInvalid) as refused:
            check_signature_png(data)
        assert refused.value.errors == [{"field": "signature", "message": message}]
    assert parse_media_time("12:05") == 725 and parse_media_time("1:02:03") == 3723
    assert parse_media_time("75:00") == 4500
    for bad in ("", "12", "12:60", "1:60:00", "ab:cd", "25:00:00", "<script>"):
        with pytest.raises(DraftInvalid):
            parse_media_time(bad)


async def test_signature_binds_to_the_readback_and_approval_to_the_confirmation(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    case_id = await opened(engine, keyring)
    await save(engine, keyring, case_id, 1, COMPLETE)
    at = NOW + timedelta(minutes=10)
    png = signature_png()
    async with engine.begin() as conn:
        with pytest.raises(DraftForbidden):  # a venue operator does not read back
            await request_readback(conn, session_id=SESSION, case_id=case_id, version=2, author=VENUE_OP, now=at)
        with pytest.raises(ReadbackStale):  # not the current version
            await request_readback(conn, session_id=SESSION, case_id=case_id, version=1, author=SECRETARY, now=at)
        with pytest.raises(ReadbackStale):  # nothing read back yet
            await confirm_by_signature(conn, session_id=SESSION, case_id=case_id, readback_sha256="0" * 64, png=png,
                                       author=VENUE_OP, venue=VENUE, now=at)
        state = await request_readback(conn, session_id=SESSION, case_id=case_id, version=2, author=SECRETARY, now=at)
    digest = state.readback_sha256
    assert digest is not None and state.state == "readback"
    async with engine.begin() as conn:
        with pytest.raises(DraftForbidden):  # another venue's operator
            await confirm_by_signature(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest, png=png,
                                       author=VENUE_OP, venue="xa-khac", now=at)
        with pytest.raises(DraftForbidden):  # the venue operator cannot note a verbal confirmation
            await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest,
                                   media_time="01:00", author=VENUE_OP, now=at)
    # the secretary corrects a word after the read-back: the citizen cannot confirm the old text
    await save(engine, keyring, case_id, 2, {**COMPLETE, "discussion": "Sửa sau khi đọc lại"}, minutes=11)
    async with engine.begin() as conn:
        with pytest.raises(ReadbackStale):
            await confirm_by_signature(conn, session_id=SESSION, case_id=case_id, readback_sha256=digest, png=png,
                                       author=VENUE_OP, venue=VENUE, now=at)
        again = await request_readback(conn, session_id=SESSION, case_id=case_id, version=3, author=SECRETARY,
                                       now=at)
        assert again.readback_sha256 is not None
        signed_state = await confirm_by_signature(conn, session_id=SESSION, case_id=case_id,
                                                  readback_sha256=again.readback_sha256, png=png, author=VENUE_OP,
                                                  venue=VENUE, now=at)
        stored = (await conn.execute(select(minutes_signatures))).mappings().one()
        with pytest.raises(DraftForbidden):  # the secretary is no chair
            await approve(conn, session_id=SESSION, case_id=case_id, confirmed_sha256=again.readback_sha256,
                          author=SECRETARY, name="x", keyring=keyring, calendar=CAL, now=at)
        with pytest.raises(ReadbackStale):  # not what was confirmed
            await approve(conn, session_id=SESSION, case_id=case_id, confirmed_sha256=digest, author=CHAIR,
                          name="x", keyring=keyring, calendar=CAL, now=at)
    assert signed_state.state == "confirmed" and signed_state.confirmation == "signature"
    assert stored["png"] == png and stored["sha256"] == hashlib.sha256(png).hexdigest() == signed_state.signature_sha256
    assert stored["readback_sha256"] == again.readback_sha256 and stored["submitted_by"] == VENUE_OP.label


# -- over HTTP, the real lifespan ------------------------------------------------------------------------


async def _post(client: Any, url: str, body: dict[str, Any] | None = None, *, png: bytes | None = None,
                params: dict[str, str] | None = None) -> httpx.Response:
    if png is not None:
        headers = {"x-csrf-token": client.csrf, "content-type": "image/png"}
        response: httpx.Response = await client.http.post(url, content=png, headers=headers, params=params)
        return response
    response = await client.http.post(url, json=body or {}, headers={"x-csrf-token": client.csrf})
    return response


async def _wait_recorded(app: FastAPI, case_id: str) -> None:
    services: Services = app.state.services
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with services.engine.connect() as conn:
            if (await conn.execute(select(minutes_case_records.c.draft_id)
                                   .where(minutes_case_records.c.case_id == case_id))).first():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("case.closed wrote nothing")


@MODULE_LOOP
async def test_read_back_on_the_venue_page_signature_approval_and_closing_over_http(app: FastAPI) -> None:
    case_id = await called_case(app)
    secretary, chair, venue_op = (await signed(app, "thuky"), await signed(app, "chutri"),
                                  await signed(app, "diemcau"))
    markup = '<img src=x onerror=alert(1)>'
    saved = await secretary.put(f"/api/minutes/{SESSION}/{case_id}", {
        "base_version": 1, "client": "tab-a", "content": {**COMPLETE, "local_report": markup}})
    assert saved.status_code == 200, saved.text
    base = f"/api/minutes-approval/{SESSION}/{case_id}"
    assert (await venue_op.get(f"/api/minutes-approval/{SESSION}")).json()["readback"] is None
    assert (await _post(venue_op, base + "/readback", {"version": 2})).status_code == 403
    stale = await _post(secretary, base + "/readback", {"version": 1})
    assert stale.status_code == 409 and stale.json()["error"] == "readback_stale"
    readback = await _post(secretary, base + "/readback", {"version": 2})
    assert readback.status_code == 200, readback.text
    digest = readback.json()["readback_sha256"]

    services: Services = app.state.services
    await open_live_session(services.engine, SESSION, [("main", "Trụ sở Tiếp công dân tỉnh"), (VENUE, "Xã Tiên Du")])
    venue_page, chair_page = (await venue_op.get(f"/phien/{SESSION}")).text, (await chair.get(f"/phien/{SESSION}")).text
    for page in (venue_page, chair_page):
        assert f'data-session-api="/api/minutes-approval/{SESSION}"' in page and "/static/readback.js" in page
    assert 'data-testid="readback-canvas"' in venue_page and 'data-approve="true"' in chair_page
    shown = (await venue_op.get(f"/api/minutes-approval/{SESSION}")).json()["readback"]
    assert shown["case"] == case_id and shown["readback_sha256"] == digest
    assert shown["content"]["local_report"] == markup  # text: the page's script sets textContent

    blank = await _post(venue_op, base + "/signature", png=signature_png(blank=True), params={"readback": digest})
    assert blank.status_code == 422 and blank.json()["errors"][0]["message"] == "Ảnh chữ ký trống: công dân chưa ký."
    not_png = await venue_op.http.post(base + "/signature", content=b"<svg/>", params={"readback": digest},
                                       headers={"x-csrf-token": venue_op.csrf, "content-type": "image/svg+xml"})
    assert not_png.status_code == 422
    huge = await _post(venue_op, base + "/signature", png=b"\x89PNG" + b"\0" * (300 * 1024),
                       params={"readback": digest})
    assert huge.status_code == 413
    png = signature_png()
    confirmed = await _post(venue_op, base + "/signature", png=png, params={"readback": digest})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["signature_sha256"] == hashlib.sha256(png).hexdigest()
    assert confirmed.json()["state"] == "confirmed"

    bad_time = await _post(secretary, base + "/verbal", {"readback_sha256": digest, "media_time": "ba phút"})
    assert bad_time.status_code == 422 and "phút:giây" in bad_time.json()["message"]
    assert (await _post(secretary, base + "/approve", {"confirmed_sha256": digest})).status_code == 403
    assert (await _post(venue_op, base + "/approve", {"confirmed_sha256": digest})).status_code == 403
    approved = await _post(chair, base + "/approve", {"confirmed_sha256": digest})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved" and approved.json()["approved_by_name"] == "Cán bộ chutri"

    closed = CaseClosed(session=SESSION, case=case_id, ticket_no=1, venue=VENUE, call_seq=1, by="user:chutri")
    await services.bus.publish(closed)
    await services.bus.publish(closed.model_copy(update={"event_id": "again"}))  # the same case.closed twice
    await _wait_recorded(app, case_id)
    await services.bus.publish(closed.model_copy(update={"event_id": "third"}))
    state = (await chair.get(base)).json()
    assert state["state"] == "recorded" and state["record"]["content_sha256"] == digest
    again = await _post(chair, base + "/approve", {"confirmed_sha256": digest})
    assert again.status_code == 409 and again.json()["error"] == "draft_closed"
    async with services.engine.connect() as conn:
        receptions = (await conn.execute(select(func.count()).select_from(reception_entries)
                                         .where(reception_entries.c.case_id == case_id))).scalar_one()
        recorded = (await conn.execute(select(func.count()).select_from(outbox)
                                       .where(outbox.c.type == "case.recorded"))).scalar_one()
    assert receptions == 1 and recorded == 1
    assert (await secretary.put(f"/api/minutes/{SESSION}/{case_id}", {
        "base_version": 2, "content": COMPLETE})).status_code == 409  # closed: no more edits


@MODULE_LOOP
async def test_an_incomplete_draft_is_not_approved_and_the_chair_sees_why(app: FastAPI) -> None:
    # a session of its own: its read-back, left pending, is not the other test's session's (``readback`` None)
    case_id = await called_case(app, session=OTHER_SESSION)
    secretary, chair = await signed(app, "thuky"), await signed(app, "chutri")
    base = f"/api/minutes-approval/{OTHER_SESSION}/{case_id}"
    digest = (await _post(secretary, base + "/readback", {"version": 1})).json()["readback_sha256"]
    verbal = await _post(secretary, base + "/verbal", {"readback_sha256": digest, "media_time": "03:15"})
    assert verbal.status_code == 200 and verbal.json()["verbal_time"] == "03:15"
    refused = await _post(chair, base + "/approve", {"confirmed_sha256": digest})
    assert refused.status_code == 422 and refused.json()["error"] == "minutes_incomplete"
    assert [e["field"] for e in refused.json()["errors"]] == ["conclusion", "handling_direction", "outcome"]
    state = (await secretary.get(base)).json()
    assert state["state"] == "confirmed" and [p["field"] for p in state["problems"]] == [
        "conclusion", "handling_direction", "outcome"]
    assert (await secretary.get(f"/api/minutes/{OTHER_SESSION}/{case_id}")).json()["state"] == "open"
    page = (await chair.get(f"/bien-ban/{OTHER_SESSION}/{case_id}")).text  # the panel the script fills
    assert f'data-case-api="/api/minutes-approval/{OTHER_SESSION}/{case_id}"' in page and "/static/readback.js" in page
    assert 'data-approve="true"' in page and "Phê duyệt biên bản" in page
