"""The complaint pages over HTTP (SQLite): search, case file with "lần tiếp thứ n", the intake form's
duplicate check before saving, follow-up, the one-time identity view and the public tracking page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from room_console.accounts import add_user
from room_console.context import ConsoleContext
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
