"""Issue 9 (part A), through the console's HTTP API on SQLite and PostgreSQL: a denouncer's identity
leaks by none of the four reproduced paths — a citizen on file who denounces, a case re-classified as
a denunciation, a denunciation attached to a complaint case, the duplicate check as an oracle."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.tables import audit_events
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from signaling.events import parse_event
from signaling.outbox import outbox
from tiepdan.app import create_app

from ._helpers import PASSWORD, form_token, page_token, sign_in

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC).timestamp()  # 09:00 in Viet Nam
ROLES = {"tiepnhan": ("reception",), "thuky": ("secretary",), "theodoi": ("follow_up",), "chutri": ("chair",),
         "lanhdao": ("reception", "chair")}
HUNG = {"full_name": "Nguyễn Văn Hùng", "id_number": "027085012345", "birth_date": "1985-03-02",
        "phone": "0912345678", "address_detail": "Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh"}
MAI = {"full_name": "Trần Thị Mai", "id_number": "027190054321", "phone": "0987654321",
       "address_detail": "Xóm Mới, xã Yên Phong"}
SEALED_NOTICE = "Có hồ sơ được bảo mật trùng khớp: đề nghị cán bộ có quyền xem danh tính kiểm tra."


@pytest.fixture
async def app(make_settings, database_url: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in ROLES.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, options=ctx.options, now=NOW)
        yield application


class Client:
    """A signed-in official: the session cookie, and the CSRF header on every unsafe request."""

    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf, **kw.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kw)


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


def body(person: dict[str, str] | None = None, kind: str = "complaint", **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "petition": {"kind": kind, "source": "in_person", "received_on": "2026-11-19",
                     "content": f"Đơn {kind} về việc thu hồi đất nông nghiệp"},
        "respondent": {"kind": "organisation", "name": "UBND xã Tiên Du"},
        "reception": {"reception_type": "routine", "form": "in_person"},
    }
    if person is not None:
        values["petitioner"] = person
    values.update(over)
    return values


async def intake(client: Client, payload: dict[str, Any]) -> dict[str, Any]:
    response = await client.send("POST", "/api/intake", json=payload)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def reveals(text: str, person: dict[str, str]) -> list[str]:
    """The parts of ``person``'s identity found in ``text``."""
    return [value for value in person.values() if len(value) > 4 and value.lower() in text.lower()]


async def found_by_name(client: Client, name: str) -> list[str]:
    response = await client.get("/api/cases", params={"q": name})
    assert response.status_code == 200
    return [item["id"] for item in response.json()["items"]]


async def case_events(app: FastAPI, case_id: str) -> list[Any]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.payload).where(outbox.c.aggregate == f"case:{case_id}")
                                   .order_by(outbox.c.id))).all()
    return [parse_event(r[0]) for r in rows]


async def audit_actions(app: FastAPI, target: str) -> list[str]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return [r[0] for r in await conn.execute(select(audit_events.c.action).where(
            audit_events.c.target_id == target).order_by(audit_events.c.id))]


async def test_repro_1_a_citizen_on_file_who_denounces_is_sealed_for_that_case_and_not_found_by_name(
        app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    complaint = await intake(desk, body(HUNG))
    denunciation = await intake(desk, body(kind="denunciation", petitioner_id=complaint["petitioner_id"]))
    assert denunciation["confidential"] and denunciation["petitioner_id"] != complaint["petitioner_id"]
    secretary = await signed(app, "thuky")
    seen = await secretary.get(f"/api/cases/{denunciation['case_id']}")
    assert seen.status_code == 200 and seen.json()["confidential"]
    party = seen.json()["petitions"][0]["parties"][0]
    assert party["sealed"] and party["display_name"].startswith("NTC-")
    assert party["petitioner_id"] == denunciation["petitioner_id"]
    assert reveals(seen.text, HUNG) == [] and complaint["petitioner_id"] not in seen.text
    assert seen.json()["receptions"][0]["petitioner"] == party["display_name"]
    page = await secretary.get(f"/cases/{denunciation['case_id']}")
    assert page.status_code == 200 and reveals(page.text, HUNG) == [] and party["display_name"] in page.text
    assert await found_by_name(secretary, "Nguyễn Văn Hùng") == [complaint["case_id"]]
    assert await found_by_name(secretary, "nguyen van hung") == [complaint["case_id"]]
    # The complaint stays as it was, and shows nothing of the denunciation.
    other = await secretary.get(f"/api/cases/{complaint['case_id']}")
    assert other.json()["petitions"][0]["parties"][0]["display_name"] == "Nguyễn Văn Hùng"
    assert party["display_name"] not in other.text and denunciation["petitioner_id"] not in other.text


async def test_repro_1_the_intake_forms_attach_button_with_a_denunciation_seals_the_case(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    complaint = await intake(desk, body(HUNG))
    form = await desk.get("/intake")
    fields = {"full_name": HUNG["full_name"], "id_number": HUNG["id_number"], "birth_date": "", "phone": "",
              "address": HUNG["address_detail"], "kind": "denunciation", "source": "in_person",
              "received_on": "2026-11-19", "content": "Tố cáo cán bộ địa chính nhận tiền", "request": "",
              "respondent_kind": "person", "respondent_name": "Ông Lê Văn Bảy", "csrf_token": form_token(form.text)}
    checked = await desk.http.post("/intake", data={**fields, "action": "check"})
    attach = re.search(r'name="attach" value="([^"]+)"', checked.text)
    assert attach is not None and attach.group(1) == f"{complaint['case_id']}|{complaint['petitioner_id']}"
    saved = await desk.http.post("/intake", data={**fields, "attach": attach.group(1)})
    assert saved.status_code == 303 and saved.headers["location"].startswith(f"/cases/{complaint['case_id']}")
    secretary = await signed(app, "thuky")
    page = await secretary.get(f"/cases/{complaint['case_id']}")
    assert reveals(page.text, HUNG) == [] and "Mật" in page.text
    assert await found_by_name(secretary, "Nguyễn Văn Hùng") == []


async def test_repro_2_reclassifying_a_case_as_a_denunciation_seals_its_citizens_at_once(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    only = await intake(desk, body(MAI))
    shared = await intake(desk, body(HUNG))
    second = await intake(desk, body(petitioner_id=shared["petitioner_id"], kind="proposal_feedback"))
    secretary = await signed(app, "thuky")  # minutes: may edit, holds no identity grant
    for case_id in (only["case_id"], second["case_id"]):
        version = (await secretary.get(f"/api/cases/{case_id}")).json()["version"]
        edited = await secretary.send("PATCH", f"/api/cases/{case_id}", json={"kind": "denunciation",
                                                                             "version": version})
        assert edited.status_code == 200 and edited.json()["confidential"] and edited.json()["version"] == version + 1
        updated = (await case_events(app, case_id))[-1]
        assert updated.type == "case.updated" and updated.changed == ("confidential", "kind")
        assert updated.confidential and updated.case_version == version + 1
        assert (await audit_actions(app, case_id))[-1] == "case.confidential"
    follow_up = await signed(app, "theodoi")
    for case_id, person in ((only["case_id"], MAI), (second["case_id"], HUNG)):
        seen = await follow_up.get(f"/api/cases/{case_id}")
        assert seen.status_code == 200 and reveals(seen.text, person) == []
        assert all(p["sealed"] for p in seen.json()["petitions"][0]["parties"])
    assert await found_by_name(follow_up, "Trần Thị Mai") == []
    # The record the two cases shared stays open for the first, and neither side names the other.
    assert await found_by_name(follow_up, "Nguyễn Văn Hùng") == [shared["case_id"]]
    first = await follow_up.get(f"/api/cases/{shared['case_id']}")
    sealed = await follow_up.get(f"/api/cases/{second['case_id']}")
    handle = sealed.json()["petitions"][0]["parties"][0]
    assert first.json()["petitions"][0]["parties"][0]["display_name"] == "Nguyễn Văn Hùng"
    assert handle["petitioner_id"] != shared["petitioner_id"] and shared["petitioner_id"] not in sealed.text
    assert handle["petitioner_id"] not in first.text and handle["display_name"] not in first.text


async def test_repro_3_a_denunciation_attached_to_a_complaint_case_makes_it_confidential(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    complaint = await intake(desk, body(HUNG))
    petition_id = (await desk.get(f"/api/cases/{complaint['case_id']}")).json()["petitions"][0]["id"]
    upload = await desk.send("POST", f"/api/petitions/{petition_id}/attachments", params={"name": "Đơn khiếu nại.pdf"},
                             content=b"%PDF-1.4 don", headers={"content-type": "application/pdf"})
    assert upload.status_code == 201
    secretary = await signed(app, "thuky")
    assert (await secretary.get(f"/api/attachments/{upload.json()['id']}")).status_code == 200
    attached = await intake(desk, body(MAI, kind="denunciation", case_id=complaint["case_id"]))
    assert not attached["new_case"] and attached["confidential"] and attached["became_confidential"]
    updated = (await case_events(app, complaint["case_id"]))[-1]
    assert updated.type == "case.updated" and updated.changed == ("confidential",) and updated.confidential
    refused = await secretary.get(f"/api/attachments/{upload.json()['id']}")
    assert refused.status_code == 403 and "danh tính người tố cáo" in refused.json()["message"]
    seen = await secretary.get(f"/api/cases/{complaint['case_id']}")
    assert seen.json()["confidential"] and reveals(seen.text, HUNG) == [] and reveals(seen.text, MAI) == []
    assert "Đơn khiếu nại" not in seen.text  # the file's own name may name the citizen: numbered instead
    assert [a["name"] for p in seen.json()["petitions"] for a in p["attachments"]] == ["Tài liệu mật số 1.pdf"]
    chair = await signed(app, "chutri")
    got = await chair.get(f"/api/attachments/{upload.json()['id']}")
    assert got.status_code == 200 and got.content == b"%PDF-1.4 don"
    assert (await audit_actions(app, upload.json()["id"])) == [
        "attachment.download", "attachment.download_refused", "attachment.download"]


async def test_repro_4_the_duplicate_check_is_no_oracle_without_the_identity_grant(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    hung = await intake(desk, body(HUNG, kind="denunciation"))
    await intake(desk, body(MAI, kind="denunciation"))

    async def check(client: Client, number: str, name: str = "Lê Văn Tám") -> httpx.Response:
        response = await client.send("POST", "/api/intake/duplicates", json={"full_name": name, "id_number": number})
        assert response.status_code == 200, response.text
        return response

    exact = await check(desk, HUNG["id_number"])
    assert exact.json() == {"candidates": [], "sealed_match": True, "sealed_notice": SEALED_NOTICE}
    assert hung["case_id"] not in exact.text and hung["tracking_code"] not in exact.text
    assert hung["petitioner_id"] not in exact.text
    assert (await check(desk, MAI["id_number"])).content == exact.content  # any sealed person: the same answer
    assert (await check(desk, MAI["id_number"], name=HUNG["full_name"])).content == exact.content
    one_off = await check(desk, HUNG["id_number"][:-1] + "6")
    assert one_off.json() == {"candidates": [], "sealed_match": False, "sealed_notice": None}
    leader = await signed(app, "lanhdao")  # intake and identity_read
    full = (await check(leader, HUNG["id_number"])).json()
    assert not full["sealed_match"] and len(full["candidates"]) == 1
    candidate = full["candidates"][0]
    assert (candidate["case_id"], candidate["tracking_code"], candidate["sealed"]) == (
        hung["case_id"], hung["tracking_code"], True)
    assert candidate["score"] > 0.5 and candidate["display_name"].startswith("NTC-")
    assert await audit_actions(app, hung["petitioner_id"]) == [
        "identity.create", "identity.match_withheld", "identity.match"]
    # The intake page says the same and offers nothing to attach to.
    form = await desk.get("/intake")
    page = await desk.http.post("/intake", data={
        "full_name": "Lê Văn Tám", "id_number": HUNG["id_number"], "kind": "complaint", "source": "in_person",
        "received_on": "2026-11-19", "content": "x", "action": "check", "csrf_token": form_token(form.text)})
    assert page.status_code == 200 and SEALED_NOTICE in page.text
    assert 'name="attach"' not in page.text and hung["tracking_code"] not in page.text
    assert 'data-testid="no-candidates"' not in page.text
