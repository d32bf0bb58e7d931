"""The complaint pages over HTTP: search, case file with "lần tiếp thứ n", the intake form's duplicate
check before saving, follow-up, the one-time identity view and the public tracking page (SQLite); the
edit page with optimistic locking, the handling-decision and directive forms, attachment downloads and
the audit of case views (SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from complaints.directives import add_unit
from complaints.tables import audit_events, cases, directives, handling_decisions
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from signaling.outbox import outbox
from tiepdan.app import create_app

from ._helpers import PASSWORD, form_token, page_token, sign_in

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in {"tiepnhan": ("reception",), "thuky": ("secretary",), "chutri": ("chair",)}.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, options=ctx.options, now=NOW)
        yield application


async def client(app: FastAPI, username: str | None) -> httpx.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    if username:
        await sign_in(http, username)
    return http


FORM = {"full_name": "Nguyễn Văn Hùng", "id_number": "027085012345", "birth_date": "1985-03-02", "phone": "",
        "address": "Thôn Đông, xã Tiên Du", "kind": "complaint", "source": "in_person", "received_on": "2026-11-19",
        "content": "Khiếu nại quyết định thu hồi đất", "request": "", "respondent_kind": "organisation",
        "respondent_name": "UBND xã Tiên Du"}


async def test_intake_form_shows_duplicates_before_saving_then_attaches_to_the_case(app: FastAPI) -> None:
    http = await client(app, "tiepnhan")
    form = await http.get("/intake")
    assert form.status_code == 200 and "Kiểm tra trùng" in form.text
    token = form_token(form.text)
    saved = await http.post("/intake", data={**FORM, "action": "save", "csrf_token": token})
    assert saved.status_code == 303
    case_url = saved.headers["location"].split("?")[0]
    checked = await http.post("/intake", data={**FORM, "full_name": "NGUYEN VAN HUNG", "action": "check",
                                               "csrf_token": token})
    assert checked.status_code == 200 and 'data-testid="candidate"' in checked.text
    assert "Họ tên: trùng khi bỏ dấu tiếng Việt" in checked.text or "Họ tên:" in checked.text
    assert "Số giấy tờ tùy thân: trùng khớp" in checked.text
    attach = re.search(r'name="attach" value="([^"]+)"', checked.text)
    assert attach is not None
    again = await http.post("/intake", data={**FORM, "attach": attach.group(1), "csrf_token": token})
    assert again.status_code == 303 and again.headers["location"].split("?")[0] == case_url
    page = await http.get(case_url)
    assert "Lần tiếp thứ 1" in page.text and "Lần tiếp thứ 2" in page.text
    search = await http.get("/cases", params={"q": "thu hoi dat"})
    assert "Tìm thấy 1 vụ việc." in search.text and case_url in search.text


async def test_intake_form_refuses_a_future_date_in_vietnamese_and_saves_nothing(app: FastAPI) -> None:
    http = await client(app, "tiepnhan")
    token = form_token((await http.get("/intake")).text)
    bad = await http.post("/intake", data={**FORM, "received_on": "2027-02-01", "action": "save",
                                           "csrf_token": token})
    assert bad.status_code == 422 and "không được sau ngày hiện tại" in bad.text
    assert "Không có vụ việc nào phù hợp." in (await http.get("/cases", params={"q": "thu hoi"})).text


async def test_sealed_identity_is_shown_once_to_the_chair_and_refused_to_the_secretary(app: FastAPI) -> None:
    http = await client(app, "tiepnhan")
    token = form_token((await http.get("/intake")).text)
    saved = await http.post("/intake", data={**FORM, "full_name": "Đỗ Thị Kín", "kind": "denunciation",
                                             "action": "save", "csrf_token": token})
    case_url = saved.headers["location"].split("?")[0]
    chair = await client(app, "chutri")
    page = await chair.get(case_url)
    assert "Đỗ Thị Kín" not in page.text and "Xem danh tính" in page.text
    action = re.search(r'action="(/cases/[^"]+/identity/[^"]+)"', page.text)
    assert action is not None
    shown = await chair.post(action.group(1), data={"purpose": "Xác minh", "csrf_token": page_token(page.text)})
    assert shown.status_code == 200 and "Đỗ Thị Kín" in shown.text
    secretary = await client(app, "thuky")
    spage = await secretary.get(case_url)
    assert "Xem danh tính" not in spage.text
    refused = await secretary.post(action.group(1), data={"purpose": "Tò mò", "csrf_token": page_token(spage.text)})
    assert refused.status_code == 403 and "Đỗ Thị Kín" not in refused.text


async def test_public_lookup_shows_status_only_and_is_neutral_and_rate_limited(app: FastAPI) -> None:
    http = await client(app, "tiepnhan")
    token = form_token((await http.get("/intake")).text)
    saved = await http.post("/intake", data={**FORM, "action": "save", "csrf_token": token})
    code = re.search(r'data-testid="tracking-code">([^<]+)<', (await http.get(saved.headers["location"])).text)
    assert code is not None
    public = await client(app, None)
    found = await public.get("/tra-cuu", params={"ma": code.group(1).lower()})
    assert found.status_code == 200 and "Đã tiếp nhận" in found.text and "19/11/2026" in found.text
    assert "Nguyễn Văn Hùng" not in found.text and "thu hồi" not in found.text
    malformed = await public.get("/tra-cuu", params={"ma": "TD-0000"})
    unknown = await public.get("/tra-cuu", params={"ma": "TD-2222-2222-2222-" + ("3" if code.group(1)[-1] != "3"
                                                                                   else "4")})
    for response in (malformed, unknown):
        assert response.status_code == 200
        assert re.search(r'data-testid="lookup-result">([^<]+)<', response.text).group(1) == re.search(  # type: ignore[union-attr]
            r'data-testid="lookup-result">([^<]+)<', malformed.text).group(1)  # type: ignore[union-attr]
    statuses = [(await public.get("/tra-cuu", params={"ma": "x"})).status_code for _ in range(25)]
    assert 429 in statuses


async def test_pages_need_their_grants(app: FastAPI) -> None:
    secretary = await client(app, "thuky")
    assert (await secretary.get("/intake")).status_code == 403
    assert (await secretary.get("/cases")).status_code == 200
    assert (await secretary.get("/follow-up")).status_code == 200
    anonymous = await client(app, None)
    assert (await anonymous.get("/cases")).status_code == 303


# -- edit, handling decision, directive (SQLite and PostgreSQL) ---------------------------------------

USERS = {"tiepnhan": ("reception",), "thuky": ("secretary",), "chutri": ("chair",), "quantri": ("admin",),
         "donvi": ("unit",)}


@pytest.fixture
async def db_app(make_settings, database_url: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in USERS.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, unit="so-xd" if username == "donvi" else None, options=ctx.options,
                           now=NOW)
        async with ctx.engine.begin() as conn:
            await add_unit(conn, "so-xd", "Sở Xây dựng", track="state")
            await add_unit(conn, "so-nv", "Sở Nội vụ", track="state")
        yield application


async def rows(app: FastAPI, table: Any, *where: Any) -> list[dict[str, Any]]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(table).where(*where))).mappings().all()]


async def count(app: FastAPI, table: Any) -> int:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def new_case(app: FastAPI, **petition: Any) -> str:
    """A case taken in by the reception desk (through the intake page, as an official does)."""
    http = await client(app, "tiepnhan")
    token = form_token((await http.get("/intake")).text)
    saved = await http.post("/intake", data={**FORM, **petition, "action": "save", "csrf_token": token})
    assert saved.status_code == 303, saved.text
    return str(saved.headers["location"].split("?")[0].rsplit("/", 1)[1])


def field(page: str, name: str) -> str:
    """The value of an input or the text of a textarea named ``name``."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page) or re.search(
        rf'name="{name}"[^>]*>([^<]*)</textarea>', page)
    assert found is not None, name
    return html.unescape(found.group(1))


def edit_data(page: str, **over: str) -> dict[str, str]:
    data = {"csrf_token": form_token(page), "version": field(page, "version"), "kind": "complaint",
            "status": "received", "subject_area": "", "novelty": "", "venue": "", "summary": field(page, "summary")}
    data.update(over)
    return data


async def test_edit_page_saves_classification_and_status_and_announces_the_change(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    secretary = await client(db_app, "thuky")
    page = (await secretary.get(f"/cases/{case_id}/edit")).text
    version = (await rows(db_app, cases, cases.c.id == case_id))[0]["version"]
    assert f'name="version" value="{version}"' in page and "Sửa vụ việc" in page
    saved = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(
        page, status="in_handling", subject_area="land", novelty="new", complex="1", summary="Thu hồi đất"))
    assert saved.status_code == 303 and saved.headers["location"] == f"/cases/{case_id}?saved=edit"
    detail = (await secretary.get(saved.headers["location"])).text
    assert "Đã lưu thay đổi của vụ việc." in detail and "Đang xử lý đơn" in detail and "Đất đai" in detail
    assert "Phức tạp, kéo dài" in detail and "Vụ việc mới phát sinh" in detail
    events = await rows(db_app, outbox, outbox.c.type == "case.updated")
    assert len(events) == 1 and f"case:{case_id}" == events[0]["aggregate"]
    assert '"previous_status":"received"' in events[0]["payload"] and "Thu hồi" not in events[0]["payload"]
    same = (await secretary.get(f"/cases/{case_id}/edit")).text
    unchanged = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(
        same, status="in_handling", subject_area="land", novelty="new", complex="1"))
    assert unchanged.headers["location"].endswith("saved=unchanged")
    assert len(await rows(db_app, outbox, outbox.c.type == "case.updated")) == 1


async def test_a_stale_edit_comes_back_with_what_was_typed_and_the_other_values(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    secretary, clerk = await client(db_app, "thuky"), await client(db_app, "tiepnhan")
    mine = (await secretary.get(f"/cases/{case_id}/edit")).text
    version = int(field(mine, "version"))
    theirs = (await clerk.get(f"/cases/{case_id}/edit")).text
    first = await clerk.post(f"/cases/{case_id}/edit", data=edit_data(theirs, status="accepted"))
    assert first.status_code == 303
    typed = "Khiếu nại <b>thu hồi</b> đất, bổ sung ngày 20/11"
    stale = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(
        mine, status="guided", summary=typed, subject_area="land"))
    assert stale.status_code == 409
    assert f"vừa được người khác cập nhật (nay là phiên bản {version + 1})" in stale.text
    assert field(stale.text, "summary") == typed and "&lt;b&gt;" in stale.text  # kept, escaped
    assert field(stale.text, "version") == str(version + 1)
    assert re.search(r'<option value="guided" selected>', stale.text)
    conflict = stale.text[stale.text.index('data-testid="conflict"'):]
    assert "Đã thụ lý" in conflict and "Đã hướng dẫn" in conflict
    case = (await rows(db_app, cases, cases.c.id == case_id))[0]
    assert case["status"] == "accepted" and case["version"] == version + 1 and case["summary"] != typed
    again = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(
        stale.text, status="guided", summary=typed, subject_area="land"))
    assert again.status_code == 303
    case = (await rows(db_app, cases, cases.c.id == case_id))[0]
    assert (case["status"], case["summary"], case["version"]) == ("guided", typed, version + 2)


async def test_edit_page_refuses_bad_input_and_keeps_it(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    secretary = await client(db_app, "thuky")
    page = (await secretary.get(f"/cases/{case_id}/edit")).text
    version = int(field(page, "version"))
    huge = "đ" * 1001
    too_long = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(page, summary=huge))
    assert too_long.status_code == 422 and "Nội dung vụ việc: Quá dài (tối đa 1000 ký tự)." in too_long.text
    assert field(too_long.text, "summary") == huge
    for over, words in [({"status": "gone"}, "Trạng thái vụ việc"), ({"version": ""}, "thiếu số phiên bản"),
                        ({"version": "abc"}, "Phiên bản: Phải là số nguyên."), ({"venue": "../x"}, "Điểm cầu")]:
        bad = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(page, **over))
        assert bad.status_code == 422 and words in bad.text, over
    csrf = await secretary.post(f"/cases/{case_id}/edit", data={**edit_data(page), "csrf_token": "x" * 40,
                                                                 "status": "closed"})
    assert csrf.status_code == 403
    flood = await secretary.post(f"/cases/{case_id}/edit", data=edit_data(page, summary="x" * (1024 * 1024 + 1)))
    assert flood.status_code == 413 and "quá lớn" in flood.text
    case = (await rows(db_app, cases, cases.c.id == case_id))[0]
    assert case["version"] == version and case["status"] == "received"
    assert await count(db_app, outbox) == 1  # the case.created of the intake only


async def test_case_forms_need_their_grants(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    admin, unit, clerk, secretary = [await client(db_app, u) for u in ("quantri", "donvi", "tiepnhan", "thuky")]
    assert (await admin.get(f"/cases/{case_id}")).status_code == 200  # reports: may read the case file
    page = (await admin.get(f"/cases/{case_id}")).text
    assert 'data-testid="edit-case"' not in page and 'data-testid="new-directive"' not in page
    token = page_token(page)
    for who, path in [(admin, "edit"), (unit, "edit"), (secretary, "decisions/new"), (admin, "decisions/new"),
                      (clerk, "directives/new"), (unit, "directives/new")]:
        assert (await who.get(f"/cases/{case_id}/{path}")).status_code == 403, path
    for who, path, data in [
        (admin, "edit", {"version": "2", "kind": "complaint", "status": "closed", "summary": "x"}),
        (secretary, "decisions", {"direction": "guide", "decided_on": "2026-11-20"}),
        (clerk, "directives", {"unit_id": "so-xd", "content": "x", "issued_on": "2026-11-20",
                               "deadline_mode": "working_days", "working_days": "5", "action": "save"}),
        (unit, "directives", {"unit_id": "so-xd", "content": "x", "issued_on": "2026-11-20",
                              "deadline_mode": "working_days", "working_days": "5", "action": "save"}),
    ]:
        response = await who.post(f"/cases/{case_id}/{path}", data={**data, "csrf_token": page_token(
            (await who.get("/")).text)})
        assert response.status_code == 403 and "không có quyền" in response.text, path
    assert token
    case = (await rows(db_app, cases, cases.c.id == case_id))[0]
    assert case["status"] == "received" and await count(db_app, handling_decisions) == 0
    assert await count(db_app, directives) == 0
    chair = await client(db_app, "chutri")
    detail = (await chair.get(f"/cases/{case_id}")).text
    for testid in ("edit-case", "new-decision", "new-directive"):
        assert f'data-testid="{testid}"' in detail


async def test_a_handling_decision_is_recorded_from_the_case_page(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    clerk = await client(db_app, "tiepnhan")
    form = (await clerk.get(f"/cases/{case_id}/decisions/new")).text
    assert 'value="2026-11-20"' in form and "Chuyển đơn" in form and "Đơn Khiếu nại nhận ngày 19/11/2026" in form
    token = form_token(form)
    missing = await clerk.post(f"/cases/{case_id}/decisions", data={
        "csrf_token": token, "direction": "forward", "decided_on": "2026-11-20", "notes": "Ghi chú đã nhập"})
    assert missing.status_code == 422 and "Chuyển đơn phải ghi cơ quan nhận đơn." in missing.text
    assert "Ghi chú đã nhập" in missing.text
    future = await clerk.post(f"/cases/{case_id}/decisions", data={
        "csrf_token": token, "direction": "guide", "decided_on": "2026-11-21"})
    assert future.status_code == 422 and "không được sau ngày hiện tại" in future.text
    unknown = await clerk.post(f"/cases/{case_id}/decisions", data={
        "csrf_token": token, "direction": "xoa-don", "decided_on": "2026-11-20"})
    assert unknown.status_code == 422 and "Hướng xử lý" in unknown.text
    other_petition = await clerk.post(f"/cases/{case_id}/decisions", data={
        "csrf_token": token, "direction": "guide", "decided_on": "2026-11-20", "petition_id": "not-this-case"})
    assert other_petition.status_code == 422 and "Không tìm thấy đơn trong vụ việc này." in other_petition.text
    assert await count(db_app, handling_decisions) == 0
    ok = await clerk.post(f"/cases/{case_id}/decisions", data={
        "csrf_token": token, "direction": "forward", "decided_on": "2026-11-20",
        "forwarded_to": "Sở Nông nghiệp và Môi trường, CV 12/TCD ngày 20/11/2026"})
    assert ok.status_code == 303 and ok.headers["location"].endswith("saved=decision")
    detail = (await clerk.get(ok.headers["location"])).text
    assert "Đã ghi hướng xử lý đơn." in detail and "Chuyển đơn — Sở Nông nghiệp" in detail
    events = await rows(db_app, outbox, outbox.c.type == "case.handling_decision_recorded")
    assert len(events) == 1 and '"direction":"forward"' in events[0]["payload"]
    assert "Sở Nông nghiệp" not in events[0]["payload"]


def directive_data(token: str, **over: str) -> dict[str, str]:
    data = {"csrf_token": token, "unit_id": "so-xd", "content": "Kiểm tra, trả lời công dân",
            "issued_on": "2026-11-20", "deadline_mode": "working_days", "working_days": "10", "deadline": "",
            "legal_deadline": "", "action": "save"}
    data.update(over)
    return data


async def test_a_directive_is_issued_with_a_deadline_in_working_days(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    chair = await client(db_app, "chutri")
    form = (await chair.get(f"/cases/{case_id}/directives/new")).text
    assert "Sở Xây dựng" in form and "Xử lý đơn: 10 ngày làm việc" in form
    token = form_token(form)
    preview = await chair.post(f"/cases/{case_id}/directives", data=directive_data(token, action="preview"))
    # 10 working days after Friday 20/11/2026, 24/11 (Ngày Văn hóa Việt Nam) being a day off.
    assert preview.status_code == 200 and "Thời hạn tính được: 07/12/2026." in preview.text
    assert await count(db_app, directives) == 0
    legal = await chair.post(f"/cases/{case_id}/directives", data=directive_data(
        token, action="preview", deadline_mode="legal", legal_deadline="resolve_first_complaint"))
    assert "Thời hạn tính được: 21/12/2026." in legal.text  # 30 days end on a Sunday: moved to Monday
    saved = await chair.post(f"/cases/{case_id}/directives", data=directive_data(token))
    assert saved.status_code == 303 and saved.headers["location"].endswith("saved=directive")
    detail = (await chair.get(saved.headers["location"])).text
    assert "Đã giao ý kiến chỉ đạo." in detail and "07/12/2026" in detail and "Sở Xây dựng" in detail
    (event,) = await rows(db_app, outbox, outbox.c.type == "case.directive_issued")
    assert '"deadline":"2026-12-07"' in event["payload"] and '"unit":"so-xd"' in event["payload"]
    assert "Kiểm tra" not in event["payload"]


async def test_a_directive_with_an_impossible_deadline_or_unknown_unit_is_refused(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    chair = await client(db_app, "chutri")
    token = form_token((await chair.get(f"/cases/{case_id}/directives/new")).text)
    bad: list[tuple[dict[str, str], str]] = [
        ({"deadline_mode": "date", "deadline": "2026-11-24"}, "Ngày Văn hóa Việt Nam"),
        ({"deadline_mode": "date", "deadline": "2026-11-24"}, "25/11/2026"),
        ({"deadline_mode": "date", "deadline": "2026-11-19"}, "không được trước ngày chỉ đạo"),
        ({"deadline_mode": "date", "deadline": "2062-11-20"}, "hãy kiểm tra lại năm"),
        ({"deadline_mode": "date", "deadline": ""}, "Hãy chọn đúng một cách đặt thời hạn"),
        ({"working_days": "0"}, "Số ngày làm việc: Phải lớn hơn hoặc bằng 1."),
        ({"working_days": "mười"}, "Phải là số nguyên."),
        ({"deadline_mode": "legal", "legal_deadline": "publish_schedule"}, "tính ngược"),
        ({"deadline_mode": "sometime"}, "Hãy chọn một cách đặt thời hạn."),
        ({"unit_id": "so-khong-co"}, "Không tìm thấy đơn vị được giao."),
        ({"unit_id": "so-khong-co", "action": "preview"}, "Không tìm thấy đơn vị được giao."),
        ({"unit_id": "../../etc"}, "Đơn vị được giao: Không đúng định dạng."),
        ({"content": "x" * 5001}, "Nội dung chỉ đạo: Quá dài (tối đa 5000 ký tự)."),
        ({"content": ""}, "Nội dung chỉ đạo"),
        ({"issued_on": "2026-11-23"}, "Ngày chỉ đạo không được sau ngày hiện tại"),
    ]
    for over, words in bad:
        response = await chair.post(f"/cases/{case_id}/directives", data=directive_data(token, **over))
        assert response.status_code == 422 and words in response.text, (over, words)
        if "content" in over and over["content"]:
            assert over["content"] in response.text  # what was typed comes back
    assert await count(db_app, directives) == 0
    assert await rows(db_app, outbox, outbox.c.type == "case.directive_issued") == []


async def test_opening_a_case_file_is_audited_but_searching_is_not(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    secretary = await client(db_app, "thuky")
    before = await count(db_app, audit_events)
    assert (await secretary.get("/cases", params={"q": "thu hoi"})).status_code == 200
    assert await count(db_app, audit_events) == before
    assert (await secretary.get(f"/cases/{case_id}")).status_code == 200
    views = await rows(db_app, audit_events, audit_events.c.action == "case.view")
    assert len(views) == 1 and views[0]["target_id"] == case_id and views[0]["detail"] == {"via": "page"}
    assert views[0]["actor"].startswith("user:") and views[0]["at"].startswith("2026-11-20T02:00")
    unit = await client(db_app, "donvi")
    assert (await unit.get(f"/cases/{case_id}")).status_code == 404  # not the unit's case: nothing to audit
    assert len(await rows(db_app, audit_events, audit_events.c.action == "case.view")) == 1


async def test_attachments_download_from_the_case_page_with_their_vietnamese_name(db_app: FastAPI) -> None:
    case_id = await new_case(db_app)
    clerk = await client(db_app, "tiepnhan")
    detail = (await clerk.get(f"/api/cases/{case_id}")).json()
    petition_id = detail["petitions"][0]["id"]
    data = "Nội dung tài liệu".encode()
    up = await clerk.post(f"/api/petitions/{petition_id}/attachments", params={"name": "Quyết định thu hồi đất.txt"},
                          content=data, headers={"content-type": "text/plain; charset=utf-8",
                                                 "x-csrf-token": page_token((await clerk.get("/")).text)})
    assert up.status_code == 201, up.text
    page = (await clerk.get(f"/cases/{case_id}")).text
    link = re.search(r'href="(/cases/[^"]+/attachments/[^"]+)" download>Quyết định thu hồi đất.txt<', page)
    assert link is not None
    got = await clerk.get(link.group(1))
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"Quyet dinh thu hoi dat.txt\"; "
        "filename*=UTF-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh%20thu%20h%E1%BB%93i%20%C4%91%E1%BA%A5t.txt")
    assert got.headers["x-content-type-options"] == "nosniff" and "sandbox" in got.headers["content-security-policy"]
    downloads = await rows(db_app, audit_events, audit_events.c.action == "attachment.download")
    assert len(downloads) == 1 and downloads[0]["detail"]["case_id"] == case_id
    other = await new_case(db_app, full_name="Bùi Thị Hoa")
    wrong_case = await clerk.get(link.group(1).replace(case_id, other))
    assert wrong_case.status_code == 404 and "Không tìm thấy tệp đính kèm." in wrong_case.text
    assert (await (await client(db_app, "donvi")).get(link.group(1))).status_code == 404
    assert (await (await client(db_app, None)).get(link.group(1))).status_code == 303  # to the login page
    assert len(await rows(db_app, audit_events, audit_events.c.action == "attachment.download")) == 1
