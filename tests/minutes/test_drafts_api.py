"""The minutes' drafts over HTTP (ASGI, the real lifespan): a call on the bus opens the draft; saves answer
the new version or a 409 with the other secretary's text in Vietnamese; bad input is refused field by field
and loses nothing; the page escapes what was typed; a denouncer's identity is sealed and never answered."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.enums import PetitionKind
from minutes.drafts_content import MAX_TEXT_CHARS
from minutes.tables import minutes_draft_versions, minutes_drafts
from tiepdan.app import Services

from ._console import MODULE_LOOP, called_case, signed
from ._drafts import DENOUNCER, REQUEST, SESSION, VENUE

pytestmark = pytest.mark.integration


@MODULE_LOOP
async def test_saves_versions_conflicts_and_refusals(app: FastAPI) -> None:
    case_id = await called_case(app)
    url = f"/api/minutes/{SESSION}/{case_id}"
    first, second = await signed(app, "thuky"), await signed(app, "thuky2")
    opened = await first.get(url)
    assert opened.status_code == 200, opened.text
    assert opened.json()["version"] == 1 and opened.json()["content"]["citizen_request"] == REQUEST
    assert opened.headers["cache-control"] == "no-store"
    saved = await first.put(url, {"base_version": 1, "client": "tab-a", "content": {"discussion": "Ý kiến một"}})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["version"] == 2 and body["created"] and body["updated_by_name"] == "Cán bộ thuky"
    assert len(body["saved_time"]) == 8 and body["content"]["discussion"] == "Ý kiến một"

    lost = await second.put(url, {"base_version": 1, "client": "tab-b", "content": {"discussion": "Ý kiến hai"}})
    assert lost.status_code == 409, lost.text
    problem = lost.json()
    assert problem["error"] == "conflict" and "Cán bộ thuky" in problem["message"]
    assert f"phiên bản 2 lúc {body['saved_time']}" in problem["message"]
    assert problem["current"]["content"]["discussion"] == "Ý kiến một" and problem["current"]["version"] == 2
    assert (await first.get(url)).json()["content"]["discussion"] == "Ý kiến một"  # nothing overwritten

    too_long = await first.put(url, {"base_version": 2, "client": "tab-a",
                                     "content": {"discussion": "x" * (MAX_TEXT_CHARS + 1)}})
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "discussion"
    assert "Ý kiến trao đổi" in too_long.json()["message"]
    not_a_denunciation = await first.put(url, {"base_version": 2, "content": {}, "identity": DENOUNCER})
    assert not_a_denunciation.status_code == 422 and not_a_denunciation.json()["errors"][0]["field"] == "identity"
    bad_identity = await first.put(url, {"base_version": 2, "content": {}, "identity": {"phone": "0" * 40}})
    assert bad_identity.status_code == 422 and bad_identity.json()["errors"][0]["field"] == "identity.phone"
    assert (await first.put(url, {"content": {}})).status_code == 422  # no base version
    huge = b'{"base_version": 2, "content": {"discussion": "' + b"x" * (1100 * 1024) + b'"}}'
    assert (await first.put(url, huge)).status_code == 413

    venue_op, chair = await signed(app, "diemcau"), await signed(app, "chutri")
    assert (await venue_op.get(url)).status_code == 403
    assert (await venue_op.put(url, {"base_version": 2, "content": {}})).status_code == 403
    assert (await chair.get(url)).status_code == 200
    assert (await first.get(f"/api/minutes/{SESSION}/no-such-case")).status_code == 404

    versions = await first.get(url + "/versions")
    assert [v["version"] for v in versions.json()["versions"]] == [2, 1]
    assert versions.json()["versions"][0]["saved_by_name"] == "Cán bộ thuky"
    one = await first.get(url + "/versions/1")
    assert one.json()["content"]["citizen_request"] == REQUEST
    assert (await first.get(url + "/versions/7")).status_code == 404


@MODULE_LOOP
async def test_the_page_shows_the_draft_escaped_and_a_sealed_identity_never_comes_back(app: FastAPI) -> None:
    case_id = await called_case(app, PetitionKind.DENUNCIATION)
    url = f"/api/minutes/{SESSION}/{case_id}"
    secretary = await signed(app, "thuky")
    markup = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    content = {"conclusion": markup, "attendees": [{"venue": VENUE, "people": markup}],
               "directives": [{"unit": "so-tnmt", "content": markup, "working_days": 3}],
               "documents": [{"title": markup, "pages": 2}]}
    saved = await secretary.put(url, {"base_version": 1, "client": "tab-a", "content": content,
                                      "identity": DENOUNCER})
    assert saved.status_code == 200, saved.text
    handle = saved.json()["sealed_handle"]
    assert handle and handle.startswith("NTC-") and saved.json()["holds_identity"]

    page = await secretary.get(f"/bien-ban/{SESSION}/{case_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(") >= 4  # the conclusion, the attendees, the directive, the document
    assert 'src="/static/minutes.js"' in html and handle in html and 'data-testid="identity-section"' in html
    assert 'href="/phien/' + SESSION + '"' in html and 'href="/bien-ban"' in html  # the live view; the menu
    listing = await secretary.get("/bien-ban")
    assert listing.status_code == 200 and f"/bien-ban/{SESSION}/{case_id}" in listing.text
    answered = (await secretary.get(url)).text + (await secretary.get(url + "/versions/2")).text + html
    services: Services = app.state.services
    async with services.engine.connect() as conn:
        rows = [*(await conn.execute(select(minutes_drafts))).all(),
                *(await conn.execute(select(minutes_draft_versions))).all()]
    stored = " ".join(str(tuple(r)) for r in rows)
    assert "alert" in stored  # the rows were read
    for value in DENOUNCER.values():
        assert value not in answered and value not in stored
    venue_op = await signed(app, "diemcau")
    assert (await venue_op.get(f"/bien-ban/{SESSION}/{case_id}")).status_code == 403
    assert (await venue_op.get("/bien-ban")).status_code == 403
