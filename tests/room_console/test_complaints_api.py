"""The complaint API over HTTP (ASGI, real lifespan): grants, optimistic locking, search on SQLite and
PostgreSQL, sealed identities, attachments, and every bad input of issue 5."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from complaints.directives import add_unit
from complaints.tables import attachments, audit_events, cases, delegations, directives, petitioners
from evidence import Keyring
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from signaling.events import parse_event
from signaling.outbox import outbox
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

# 2026-11-20 09:00 in Viet Nam, a Friday.
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC).timestamp()
ROLES = {"tiepnhan": ("reception",), "thuky": ("secretary",), "chutri": ("chair",), "donvi": ("unit",),
         "quantri": ("admin",)}


@pytest.fixture
async def app(make_settings, database_url: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in ROLES.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, unit="so-xd" if username == "donvi" else None,
                           options=ctx.options, now=NOW)
        async with ctx.engine.begin() as conn:
            await add_unit(conn, "so-xd", "Sở Xây dựng", track="state")
            await add_unit(conn, "so-nv", "Sở Nội vụ", track="state")
        yield application


class Client:
    """A signed-in client that sends the CSRF header with every unsafe request."""

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


def intake_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "petitioner": {"full_name": "Nguyễn Văn Hùng", "id_number": "027085012345", "birth_date": "1985-03-02",
                       "address_detail": "Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh"},
        "petition": {"kind": "complaint", "source": "in_person", "received_on": "2026-11-19",
                     "content": "Khiếu nại quyết định thu hồi đất nông nghiệp, mức bồi thường thấp"},
        "respondent": {"kind": "organisation", "name": "UBND xã Tiên Du"},
        "reception": {"reception_type": "routine", "form": "in_person"},
        "venue": "tien-du",
    }
    body.update(over)
    return body


async def count(app: FastAPI, table: Any) -> int:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# -- intake, case file, locking ----------------------------------------------------------------------


async def test_intake_creates_a_case_with_lan_tiep_thu_n_and_a_second_visit_attaches(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    first = await staff.send("POST", "/api/intake", json=intake_body())
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["new_case"] and created["reception_nth"] == 1
    again = await staff.send("POST", "/api/intake", json=intake_body(
        petitioner=None, petitioner_id=created["petitioner_id"], case_id=created["case_id"]))
    assert again.status_code == 201 and again.json()["reception_nth"] == 2 and not again.json()["new_case"]
    detail = await staff.get(f"/api/cases/{created['case_id']}")
    assert detail.status_code == 200 and detail.headers["etag"] == '"3"'
    body = detail.json()
    assert [r["label"] for r in body["receptions"]] == ["Lần tiếp thứ 1", "Lần tiếp thứ 2"]
    assert body["respondents"][0]["name"] == "UBND xã Tiên Du" and len(body["petitions"]) == 2


async def test_concurrent_edit_of_a_case_gets_409_in_vietnamese_and_loses_nothing(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    version = int((await staff.get(f"/api/cases/{case_id}")).headers["etag"].strip('"'))
    first = await staff.send("PATCH", f"/api/cases/{case_id}", json={"status": "in_handling"},
                             headers={"if-match": f'"{version}"'})
    assert first.status_code == 200 and first.json()["version"] == version + 1
    stale = await staff.send("PATCH", f"/api/cases/{case_id}", json={"summary": "ghi đè", "version": version})
    assert stale.status_code == 409 and "người khác cập nhật" in stale.json()["message"]
    missing = await staff.send("PATCH", f"/api/cases/{case_id}", json={"summary": "không phiên bản"})
    assert missing.status_code == 428
    after = (await staff.get(f"/api/cases/{case_id}")).json()
    assert after["status"]["value"] == "in_handling" and after["summary"] != "ghi đè"


async def test_a_wrong_role_gets_403_and_nothing_changes(app: FastAPI) -> None:
    admin = await signed(app, "quantri")  # reports only: may read cases, may not take in petitions
    before = await count(app, cases)
    refused = await admin.send("POST", "/api/intake", json=intake_body())
    assert refused.status_code == 403 and refused.json()["message"]
    assert await count(app, cases) == before
    unit = await signed(app, "donvi")
    assert (await unit.send("POST", "/api/intake", json=intake_body())).status_code == 403
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    assert (await anonymous.get("/api/cases")).status_code == 401


async def test_a_service_token_is_accepted_and_grants_still_apply(app: FastAPI) -> None:
    ctx: ConsoleContext = app.state.console
    staff = await signed(app, "tiepnhan")
    await staff.send("POST", "/api/intake", json=intake_body())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        token = ctx.issuer.issue("svc-report", roles=["follow_up"], ttl_s=600, audience="api")
        found = await http.get("/api/cases", params={"q": "thu hoi"}, headers={"authorization": f"Bearer {token}"})
        assert found.status_code == 200 and found.json()["total"] == 1
        refused = await http.post("/api/intake", json=intake_body(), headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 403
        bad = await http.get("/api/cases", headers={"authorization": "Bearer nonsense"})
        assert bad.status_code == 401


# -- search ------------------------------------------------------------------------------------------


async def test_search_is_diacritic_insensitive_filters_pages_and_treats_sql_as_text(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    for i, (name, content) in enumerate([
        ("Trần Thị Mai", "Tố cáo cán bộ địa chính nhận tiền"),
        ("Lê Văn Đạt", "Kiến nghị giải quyết tranh chấp ranh giới đất ở 100% diện tích"),
        ("Phạm Quang Sơn", "Khiếu nại việc cưỡng chế tháo dỡ công trình"),
    ]):
        kind = ["denunciation", "proposal_feedback", "complaint"][i]
        body = intake_body(petitioner={"full_name": name}, petition={
            "kind": kind, "received_on": f"2026-11-1{i}", "content": content})
        assert (await staff.send("POST", "/api/intake", json=body)).status_code == 201

    async def hits(**params: Any) -> list[str]:
        response = await staff.get("/api/cases", params=params)
        assert response.status_code == 200, response.text
        return sorted(item["summary"] for item in response.json()["items"])

    assert await hits(q="DIA CHINH") == ["Tố cáo cán bộ địa chính nhận tiền"]
    assert await hits(q="tranh chấp đất") == [
        "Kiến nghị giải quyết tranh chấp ranh giới đất ở 100% diện tích"]
    assert await hits(q="dat") != []
    assert await hits(q="le van dat") != []  # an open petitioner's name
    assert await hits(q="tran thi mai") == []  # a denouncer's name is sealed, never searchable
    assert await hits(q="ubnd tien du", kind="complaint") == ["Khiếu nại việc cưỡng chế tháo dỡ công trình"]
    assert await hits(received_from="2026-11-11", received_to="2026-11-11") == [
        "Kiến nghị giải quyết tranh chấp ranh giới đất ở 100% diện tích"]
    page = (await staff.get("/api/cases", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    for hostile in ["' OR 1=1 --", "%", "_", "\\", "%' OR '1'='1", "100%", "a_b%"]:
        response = await staff.get("/api/cases", params={"q": hostile})
        assert response.status_code == 200
        assert response.json()["total"] <= 1, hostile
    assert (await staff.get("/api/cases", params={"q": "%"})).json()["total"] == 0
    assert (await staff.get("/api/cases", params={"q": "' OR 1=1 --"})).json()["total"] == 0
    assert await count(app, cases) == 3  # the tables are intact


async def test_search_has_gin_indexes_on_postgresql(app: FastAPI, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        names = {r[0] for r in await conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gin%'"))}
    assert "ix_cases_search_fts" in names


# -- bad input ---------------------------------------------------------------------------------------


async def test_invalid_personal_id_formats_are_refused_in_vietnamese(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    for number, words in [("12345", "12 chữ số"), ("999085012345", "mã tỉnh"), ("02708501234X", "chữ số"),
                          ("027095012345", "không khớp")]:
        body = intake_body()
        body["petitioner"]["id_number"] = number
        response = await staff.send("POST", "/api/intake", json=body)
        assert response.status_code == 422, number
        assert words in response.json()["message"], (number, response.json())
    assert await count(app, cases) == 0


async def test_future_dates_are_refused(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    body = intake_body()
    body["petition"]["received_on"] = "2026-12-01"
    response = await staff.send("POST", "/api/intake", json=body)
    assert response.status_code == 422 and "không được sau ngày hiện tại" in response.json()["message"]
    assert response.json()["errors"][0]["field"] == "received_on"
    body = intake_body()
    body["petitioner"]["birth_date"] = "2030-01-01"
    assert (await staff.send("POST", "/api/intake", json=body)).status_code == 422
    assert await count(app, cases) == 0


async def test_unknown_enumeration_values_and_malformed_fields_get_vietnamese_errors(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    body = intake_body()
    body["petition"]["kind"] = "lawsuit"
    response = await staff.send("POST", "/api/intake", json=body)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "petition.kind" and "không hợp lệ cho «Loại đơn»" in error["message"]
    body = intake_body()
    body["petition"]["received_on"] = "hôm qua"
    response = await staff.send("POST", "/api/intake", json=body)
    assert response.status_code == 422 and "YYYY-MM-DD" in response.json()["errors"][0]["message"]
    search = await staff.get("/api/cases", params={"status": "gone"})
    assert search.status_code == 422 and "Trạng thái vụ việc" in search.json()["message"]
    assert await count(app, cases) == 0


async def test_a_delegation_with_too_many_representatives_is_refused(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    members = []
    for i in range(7):
        created = await staff.send("POST", "/api/petitioners", json={"full_name": f"Thành viên {i}"})
        members.append(created.json()["id"])
    response = await staff.send("POST", f"/api/cases/{case_id}/delegations",
                                json={"member_ids": members, "representative_ids": members[:3]})
    assert response.status_code == 422 and "01 hoặc 02" in response.json()["message"]
    assert await count(app, delegations) == 0
    ok = await staff.send("POST", f"/api/cases/{case_id}/delegations",
                          json={"member_ids": members, "representative_ids": members[:2]})
    assert ok.status_code == 201


async def test_a_directive_deadline_on_a_holiday_is_refused_with_the_next_working_day(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    chair = await signed(app, "chutri")
    holiday = await chair.send("POST", f"/api/cases/{case_id}/directives", json={
        "unit_id": "so-xd", "content": "Kiểm tra, báo cáo", "issued_on": "2026-11-20", "deadline": "2027-01-01"})
    assert holiday.status_code == 422
    assert "Tết Dương lịch" in holiday.json()["message"] and "04/01/2027" in holiday.json()["message"]
    assert await count(app, directives) == 0
    ok = await chair.send("POST", f"/api/cases/{case_id}/directives", json={
        "unit_id": "so-xd", "content": "Kiểm tra, báo cáo", "issued_on": "2026-11-20", "deadline": "2026-11-26"})
    assert ok.status_code == 201, ok.text
    other = await chair.send("POST", f"/api/cases/{case_id}/directives", json={
        "unit_id": "so-nv", "content": "Phối hợp", "issued_on": "2026-11-20", "deadline": "2026-11-19"})
    assert other.status_code == 422  # before the directive itself


async def test_a_unit_sees_only_its_own_directives_and_cases(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    mine = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    theirs = (await staff.send("POST", "/api/intake", json=intake_body(
        petitioner={"full_name": "Bùi Thị Hoa"}))).json()["case_id"]
    chair = await signed(app, "chutri")
    for case_id, unit, deadline in [(mine, "so-xd", "2026-11-18"), (theirs, "so-nv", "2026-12-15")]:
        response = await chair.send("POST", f"/api/cases/{case_id}/directives", json={
            "unit_id": unit, "content": "Giải quyết", "issued_on": "2026-11-10", "deadline": deadline})
        assert response.status_code == 201, response.text
    everyone = (await chair.get("/api/directives")).json()["items"]
    assert {d["status"]["value"] for d in everyone} == {"overdue", "on_track"}
    unit = await signed(app, "donvi")
    own = (await unit.get("/api/directives", params={"unit": "so-nv"})).json()["items"]
    assert [d["case_id"] for d in own] == [mine]
    assert (await unit.get(f"/api/cases/{theirs}")).status_code == 404
    assert (await unit.get(f"/api/cases/{mine}")).status_code == 200
    assert [i["id"] for i in (await unit.get("/api/cases")).json()["items"]] == [mine]
    report = await unit.send("POST", f"/api/directives/{own[0]['id']}/reports",
                             json={"version": 1, "reported_on": "2026-11-20", "content": "Đã xong", "completed": True})
    assert report.status_code == 201


async def test_a_secretary_reading_a_denouncers_identity_gets_403_and_the_refusal_is_audited(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    body = intake_body(petitioner={"full_name": "Đỗ Thị Kín", "id_number": "027190012345"},
                       petition={"kind": "denunciation", "received_on": "2026-11-19",
                                 "content": "Tố cáo cán bộ địa chính nhận tiền"})
    created = (await staff.send("POST", "/api/intake", json=body)).json()
    detail = (await staff.get(f"/api/cases/{created['case_id']}")).json()
    party = detail["petitions"][0]["parties"][0]
    assert party["sealed"] and party["display_name"].startswith("NTC-") and "Kín" not in str(detail)
    secretary = await signed(app, "thuky")
    audits = await count(app, audit_events)
    refused = await secretary.send("POST", f"/api/petitioners/{created['petitioner_id']}/identity",
                                   json={"purpose": "Ghi biên bản"})
    assert refused.status_code == 403 and "không có quyền xem" in refused.json()["message"]
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        last = (await conn.execute(select(audit_events).order_by(audit_events.c.id.desc()).limit(1))).mappings().one()
    assert await count(app, audit_events) == audits + 1
    assert last["action"] == "identity.view_refused" and last["target_id"] == created["petitioner_id"]
    chair = await signed(app, "chutri")
    shown = await chair.send("POST", f"/api/petitioners/{created['petitioner_id']}/identity",
                             json={"purpose": "Xác minh nội dung tố cáo"})
    assert shown.status_code == 200 and shown.json()["full_name"] == "Đỗ Thị Kín"
    assert shown.headers["cache-control"] == "no-store"
    assert await count(app, audit_events) == audits + 2


async def test_a_wrong_encryption_key_gives_a_clear_error(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        for username in ("tiepnhan", "chutri"):
            await add_user(ctx.engine, username=username, display_name=username, roles=ROLES[username],
                           password=PASSWORD, options=ctx.options, now=ctx.clock())
        staff = await signed(application, "tiepnhan")
        created = (await staff.send("POST", "/api/intake", json=intake_body(
            petitioner={"full_name": "Đỗ Thị Kín"}, petition={"kind": "denunciation", "received_on": "2026-11-19",
                                                               "content": "Tố cáo"}))).json()
    Keyring.generate(dev=True, path=settings.resolved_keyring_path)  # the old key is gone
    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        chair = await signed(restarted, "chutri")
        response = await chair.send("POST", f"/api/petitioners/{created['petitioner_id']}/identity",
                                    json={"purpose": "Xác minh"})
    assert response.status_code == 500
    assert response.json()["error"] == "identity_key" and "khóa không đúng" in response.json()["message"]


async def test_attachments_are_streamed_hashed_and_capped_at_10_mb(app: FastAPI, make_settings) -> None:  # type: ignore[no-untyped-def]
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    petition_id = (await staff.get(f"/api/cases/{case_id}")).json()["petitions"][0]["id"]
    data = b"%PDF-1.4 noi dung don" * 1000
    ok = await staff.send("POST", f"/api/petitions/{petition_id}/attachments",
                          params={"name": "../../etc/passwd\x00.pdf"}, content=data,
                          headers={"content-type": "application/pdf"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["sha256"] == hashlib.sha256(data).hexdigest() and ok.json()["name"] == "passwd.pdf"
    folder = make_settings().data_dir / "attachments"
    stored = list(folder.iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == data and stored[0].name != "passwd.pdf"
    declared = await staff.send("POST", f"/api/petitions/{petition_id}/attachments",
                                headers={"content-length": str(50 * 1024 * 1024)}, content=b"")
    assert declared.status_code == 413 and "10 MB" in declared.json()["message"]

    sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"x" * (1024 * 1024)
        for _ in range(50):
            sent += len(chunk)
            yield chunk

    streamed = await staff.send("POST", f"/api/petitions/{petition_id}/attachments", content=fifty_megabytes())
    assert streamed.status_code == 413
    assert sent <= 12 * 1024 * 1024  # the server stopped reading just past the cap
    assert len(list(folder.iterdir())) == 1 and await count(app, attachments) == 1


async def test_directive_follow_up_needs_the_directives_grant(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    assert (await staff.get("/api/directives")).status_code == 403
    assert await count(app, petitioners) == 0


# -- events, audit of reads, downloads, directive deadlines -------------------------------------------


async def outbox_rows(app: FastAPI) -> list[Any]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return list((await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().all())


async def test_each_case_change_puts_its_event_in_the_outbox_without_the_denouncer(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    body = intake_body(petitioner={"full_name": "Đỗ Thị Kín", "id_number": "027190012345",
                                   "address_detail": "Xóm Mới, xã Tiên Du"},
                       petition={"kind": "denunciation", "received_on": "2026-11-19",
                                 "content": "Tố cáo cán bộ địa chính nhận tiền"})
    created = await staff.send("POST", "/api/intake", json=body)
    assert created.status_code == 201, created.text
    case_id = created.json()["case_id"]
    version = int((await staff.get(f"/api/cases/{case_id}")).headers["etag"].strip('"'))
    edited = await staff.send("PATCH", f"/api/cases/{case_id}", json={"status": "in_handling", "version": version})
    assert edited.status_code == 200
    stale = await staff.send("PATCH", f"/api/cases/{case_id}", json={"status": "closed", "version": version})
    assert stale.status_code == 409
    same = await staff.send("PATCH", f"/api/cases/{case_id}", json={"status": "in_handling", "version": version + 1})
    assert same.status_code == 200 and same.json()["version"] == version + 1  # nothing changed, nothing announced
    decided = await staff.send("POST", f"/api/cases/{case_id}/handling-decisions", json={
        "direction": "propose_acceptance", "decided_on": "2026-11-20", "notes": "Đủ điều kiện thụ lý"})
    assert decided.status_code == 201
    chair = await signed(app, "chutri")
    issued = await chair.send("POST", f"/api/cases/{case_id}/directives", json={
        "unit_id": "so-xd", "content": "Xác minh nội dung tố cáo", "issued_on": "2026-11-20", "working_days": 10})
    assert issued.status_code == 201 and issued.json()["deadline"] == "2026-12-07"
    unit = await signed(app, "donvi")
    reported = await unit.send("POST", f"/api/directives/{issued.json()['id']}/reports", json={
        "version": 1, "reported_on": "2026-11-20", "content": "Đã xác minh", "completed": True})
    assert reported.status_code == 201

    found = await outbox_rows(app)
    events = [parse_event(row["payload"]) for row in found]
    assert [e.type for e in events] == ["case.created", "case.updated", "case.handling_decision_recorded",
                                        "case.directive_issued", "case.directive_reported"]
    assert {row["aggregate"] for row in found} == {f"case:{case_id}"}
    assert len({e.key for e in events}) == 5
    created_event, updated, decision, directive, report = events
    assert created_event.confidential and created_event.kind == "denunciation"  # type: ignore[union-attr]
    assert updated.changed == ("status",) and updated.previous_status == "received"  # type: ignore[union-attr]
    assert decision.direction == "propose_acceptance"  # type: ignore[union-attr]
    assert directive.unit == "so-xd" and str(directive.deadline) == "2026-12-07"  # type: ignore[union-attr]
    assert report.completed and report.directive_version == 2  # type: ignore[union-attr]
    assert all(e.by.startswith("user:") for e in events)  # type: ignore[union-attr]
    text = " ".join(row["payload"] for row in found)
    for secret in ("Kín", "Kin", "027190012345", "Xóm Mới", "Tố cáo cán bộ", "nhận tiền", "Xác minh", "Đủ điều kiện"):
        assert secret not in text, secret


async def test_reading_a_case_file_is_audited_and_searching_is_not(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    before = await count(app, audit_events)
    assert (await staff.get("/api/cases", params={"q": "thu hoi"})).json()["total"] == 1
    assert await count(app, audit_events) == before
    assert (await staff.get(f"/api/cases/{case_id}")).status_code == 200
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        last = (await conn.execute(select(audit_events).order_by(audit_events.c.id.desc()).limit(1))).mappings().one()
    assert await count(app, audit_events) == before + 1
    assert (last["action"], last["target_kind"], last["target_id"], last["detail"]) == (
        "case.view", "case", case_id, {"via": "api"})
    assert (await staff.get("/api/cases/no-such-case")).status_code == 404
    assert await count(app, audit_events) == before + 1


async def test_a_confidential_cases_attachment_needs_identity_read_and_every_download_is_audited(
        app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    created = (await staff.send("POST", "/api/intake", json=intake_body(
        petitioner={"full_name": "Đỗ Thị Kín"}, petition={"kind": "denunciation", "received_on": "2026-11-19",
                                                           "content": "Tố cáo"}))).json()
    petition_id = (await staff.get(f"/api/cases/{created['case_id']}")).json()["petitions"][0]["id"]
    data = b"<html><script>alert(1)</script></html>"
    up = await staff.send("POST", f"/api/petitions/{petition_id}/attachments", params={"name": "Đơn tố cáo.html"},
                          content=data, headers={"content-type": "text/html"})
    assert up.status_code == 201
    attachment_id = up.json()["id"]
    secretary = await signed(app, "thuky")
    refused = await secretary.get(f"/api/attachments/{attachment_id}")
    assert refused.status_code == 403 and "danh tính người tố cáo" in refused.json()["message"]
    chair = await signed(app, "chutri")
    got = await chair.get(f"/api/attachments/{attachment_id}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-disposition"].startswith('attachment; filename="Don to cao.html"; ')
    assert got.headers["content-disposition"].endswith("filename*=UTF-8''%C4%90%C6%A1n%20t%E1%BB%91%20c%C3%A1o.html")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"].startswith("default-src 'none'; sandbox")
    assert got.headers["cache-control"] == "no-store"
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        actions = [r[0] for r in await conn.execute(select(audit_events.c.action).where(
            audit_events.c.target_id == attachment_id).order_by(audit_events.c.id))]
    assert actions == ["attachment.download_refused", "attachment.download"]
    assert (await chair.get("/api/attachments/no-such-file")).status_code == 404
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    assert (await anonymous.get(f"/api/attachments/{attachment_id}")).status_code == 401


async def test_directive_deadline_options_and_bad_directives_over_the_api(app: FastAPI) -> None:
    staff = await signed(app, "tiepnhan")
    case_id = (await staff.send("POST", "/api/intake", json=intake_body())).json()["case_id"]
    chair = await signed(app, "chutri")
    base = {"unit_id": "so-xd", "content": "Giải quyết", "issued_on": "2026-11-20"}
    legal = await chair.send("POST", f"/api/cases/{case_id}/directives",
                             json={**base, "legal_deadline": "resolve_first_complaint"})
    assert legal.status_code == 201 and legal.json()["deadline"] == "2026-12-21"
    for body, status, words in [
        ({**base, "deadline": "2026-12-01", "working_days": 5}, 422, "đúng một cách"),
        (base, 422, "đúng một cách"),
        ({**base, "legal_deadline": "soon"}, 422, "Loại thời hạn"),
        ({**base, "working_days": 251}, 422, "Phải nhỏ hơn hoặc bằng 250."),
        ({**base, "deadline": "2062-11-20"}, 422, "kiểm tra lại năm"),
        ({**base, "unit_id": "so-khong-co", "deadline": "2026-12-01"}, 404, "đơn vị được giao"),
        ({**base, "content": "x" * 5001, "deadline": "2026-12-01"}, 422, "tối đa 5000"),
        ({**base, "case": "x", "deadline": "2026-12-01"}, 422, "không được chấp nhận"),
    ]:
        response = await chair.send("POST", f"/api/cases/{case_id}/directives", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.text, (body, response.text)
    assert await count(app, directives) == 1
    assert [r["type"] for r in await outbox_rows(app)].count("case.directive_issued") == 1
