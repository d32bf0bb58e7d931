"""The calendar (``/lich``), the planning page of a session, the venues administration and the signed
iCalendar feeds, through the console's HTML forms on SQLite and PostgreSQL: the Secretary's quarterly
sessions of 2028 with their day-off moves, publishing too late refused until a written reason is
given, a stale form refused, pre-selected cases, and the bad inputs of a planning form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from icalendar import Calendar

from complaints.cases import create_case
from complaints.enums import PetitionKind
from complaints.tables import cases
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from room_console.feed_links import FeedLinks
from schedules import VenueDraft, VenueLevel, ensure_venues, get_session, issue_ticket, publish_session
from schedules import sessions as scheduler
from schedules.venues import SAMPLE_VENUES
from signaling.grants import Grant
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 09:00 in Viet Nam
NOW = AT.timestamp()
ALL = frozenset(Grant)
SETUP = "service:test"
USERS = {"quantri": ("admin",), "chutri": ("chair",), "tiepnhan": ("reception",)}
# The sample's main venue and two communes (codes as shipped: unverified), a venue out of service.
VENUES = (*SAMPLE_VENUES[:3], VenueDraft("xa-cu", "Xã Cũ", VenueLevel.COMMUNE, active=False))


def _clock() -> datetime:
    return AT


@pytest.fixture
async def app(make_settings, database_url: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in USERS.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, options=ctx.options, now=NOW)
        async with ctx.engine.begin() as conn:
            await ensure_venues(conn, VENUES, actor=SETUP, grants=ALL, clock=_clock)
        yield application


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def post(self, url: str, data: dict[str, Any]) -> httpx.Response:
        return await self.http.post(url, data={**data, "csrf_token": self.csrf})


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


def ad_hoc(session_id: str, day: str, venues: list[str] | None = None, **over: str) -> dict[str, Any]:
    data: dict[str, Any] = {"session_id": session_id, "day": day, "form": "online", "host": "bi-thu-tinh-uy",
                            "cohosts": "chu-tich-ubnd-tinh", "title": "Tiếp công dân đột xuất",
                            "venues": venues or ["tru-so-tinh", "xa-tien-du"]}
    data.update(over)
    return data


async def version_of(app: FastAPI, session_id: str) -> int:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return (await get_session(conn, session_id)).version


async def test_quarterly_sessions_of_2028_are_planned_with_their_day_off_moves_and_compliance_shows(
        app: FastAPI) -> None:
    board = await signed(app, "quantri")
    assert '<a href="/lich">Lịch tiếp công dân</a>' in (await board.http.get("/")).text
    made = await board.post("/lich/dinh-ky", {"rule": "quarterly", "day_of_month": "10", "year": "2028",
                                              "rule_key": "bi-thu-quy", "form": "online", "host": "bi-thu-tinh-uy",
                                              "venues": ["tru-so-tinh", "xa-tien-du"]})
    assert made.status_code == 200, made.text
    assert "Đã lập 4 phiên; 0 phiên đã có từ trước; 0 ngày đã qua nên không lập." in made.text
    result = made.text.split('data-testid="periodic-result"')[1].split("</div>")[0]
    assert "<li>" in result and "2028" in result  # no official notice of 2028's days off yet: said so
    again = await board.post("/lich/dinh-ky", {"rule": "quarterly", "day_of_month": "10", "year": "2028",
                                               "rule_key": "bi-thu-quy", "venues": ["tru-so-tinh"]})
    assert "Đã lập 0 phiên; 4 phiên đã có từ trước" in again.text
    june = (await board.http.get("/lich?thang=2028-06")).text
    assert 'data-session="bi-thu-quy-2028-06-12"' in june and "Thứ Hai 12/06/2028" in june
    assert "theo lịch là Thứ Bảy 10/06/2028, trùng ngày nghỉ nên chuyển" in june
    assert "07:30–11:30" in june and "Trụ sở Tiếp công dân tỉnh Bắc Ninh, Xã Tiên Du" in june
    september = (await board.http.get("/lich?tu=2028-09-01&den=2028-09-30")).text
    assert "Thứ Hai 11/09/2028" in september and "Chủ nhật 10/09/2028" in september
    # nothing held yet in 2026: every month before December 2026 falls short of the 1-day duty, and December
    # (the current month) is not over yet
    duty = (await board.http.get("/lich?lanh_dao=bi-thu-tinh-uy&nam=2026&nghia_vu=tinh")).text
    assert duty.count('data-testid="shortfall"') == 11 and "Số tháng chưa đạt định mức: 11." in duty
    assert 'data-month="12/2026"' in duty and "Đang trong tháng" in duty
    # a session held today (in person) meets December's duty
    assert (await board.post("/lich/phien", ad_hoc("hom-nay", "2026-12-01", form="in_person"))).status_code == 303
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.begin() as conn:
        await publish_session(conn, "hom-nay", calendar=ctx.calendar, override_reason="Tiếp đột xuất trong ngày",
                              actor=SETUP, grants=ALL, clock=_clock)
        for step in (scheduler.open_session, scheduler.start_session, scheduler.close_session):
            await step(conn, "hom-nay", actor=SETUP, grants=ALL, clock=_clock)
    duty = (await board.http.get("/lich?lanh_dao=bi-thu-tinh-uy&nam=2026")).text
    december = duty.split('data-month="12/2026"')[1].split("</tr>")[0]
    assert "<td>1/1</td><td>1</td><td>0</td>" in december and "Đạt" in december


async def test_ad_hoc_session_is_planned_and_its_page_edits_leaders_venues_and_caps(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    made = await board.post("/lich/phien", ad_hoc("dot-xuat-2027-01-15", "15/01/2027", opens_at="13:30",
                                                  closes_at="16:00"))
    assert made.status_code == 303 and made.headers["location"] == "/lich/phien/dot-xuat-2027-01-15?ok=planned"
    page = (await board.http.get(made.headers["location"])).text
    assert "Đã lập lịch phiên tiếp công dân." in page and "Đã lập lịch" in page and "13:30–16:00" in page
    assert "Thứ Sáu 15/01/2027" in page and "chu-tich-ubnd-tinh" in page
    assert 'data-testid="session-track">Khối Đảng<' in page  # the host is the Party Secretary
    leaders = await board.post("/lich/phien/dot-xuat-2027-01-15/leaders",
                               {"version": "1", "host": "chu-tich-ubnd-tinh", "cohosts": "bi-thu-tinh-uy",
                                "track": "state"})
    assert leaders.status_code == 303
    assert 'data-testid="session-track">Khối chính quyền<' in (
        await board.http.get("/lich/phien/dot-xuat-2027-01-15")).text
    bad = await board.post("/lich/phien/dot-xuat-2027-01-15/leaders",
                           {"version": "2", "host": "chu-tich-ubnd-tinh", "track": "<b>khoi</b>"})
    assert bad.status_code == 422 and "<b>khoi</b>" not in bad.text
    venues = await board.post("/lich/phien/dot-xuat-2027-01-15/venues",
                              {"version": "2", "venues": ["tru-so-tinh", "xa-tien-du", "xa-phat-tich"],
                               "main": "tru-so-tinh", "kbps-xa-phat-tich": "600"})
    assert venues.status_code == 303
    page = (await board.http.get("/lich/phien/dot-xuat-2027-01-15")).text
    assert "Xã Phật Tích — 600 kbps" in page and 'data-testid="session-version">3<' in page
    backwards = await board.post("/lich/phien/dot-xuat-2027-01-15/hours",
                                 {"version": "3", "opens_at": "16:00", "closes_at": "13:30"})
    assert backwards.status_code == 422 and 'value="16:00"' in backwards.text
    hours = await board.post("/lich/phien/dot-xuat-2027-01-15/hours",
                             {"version": "3", "opens_at": "14:00", "closes_at": "16:30"})
    assert hours.status_code == 303
    assert "14:00–16:30" in (await board.http.get("/lich/phien/dot-xuat-2027-01-15")).text


async def test_publishing_too_late_is_refused_in_vietnamese_until_a_written_reason_is_given(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    # Friday 4/12/2026: 3 working days after Tuesday 1/12, fewer than the 5 of LTCD Điều 24
    assert (await board.post("/lich/phien", ad_hoc("dot-xuat-2026-12-04", "2026-12-04"))).status_code == 303
    page = (await board.http.get("/lich/phien/dot-xuat-2026-12-04")).text
    assert 'data-testid="publish-late"' in page and "hạn cuối là Thứ Sáu 27/11/2026" in page
    refused = await board.post("/lich/phien/dot-xuat-2026-12-04/publish", {"version": "1", "override_reason": ""})
    assert refused.status_code == 409
    assert "phải được công bố chậm nhất 5 ngày làm việc trước ngày tiếp" in refused.text
    assert "nay chỉ còn 3 ngày" in refused.text and 'name="override_reason"' in refused.text
    assert 'class="card card--highlight" data-testid="publish"' in refused.text
    assert 'data-testid="publish-refused">Lịch tiếp công dân phải được công bố chậm nhất' in refused.text
    too_short = await board.post("/lich/phien/dot-xuat-2026-12-04/publish", {"version": "1",
                                                                             "override_reason": "Gấp"})
    assert too_short.status_code == 422 and "ít nhất 10 ký tự" in too_short.text
    published = await board.post("/lich/phien/dot-xuat-2026-12-04/publish", {
        "version": "1", "override_reason": "Công dân khiếu kiện đông người, cần tiếp ngay theo chỉ đạo"})
    assert published.status_code == 303
    page = (await board.http.get(published.headers["location"])).text
    assert "Đã công bố lịch tiếp công dân." in page and "Công dân khiếu kiện đông người" in page


async def test_a_stale_form_gets_a_conflict_message_and_preselected_cases_get_priority(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Tranh chấp đất nông nghiệp", now=AT)
        sealed = await create_case(conn, kind=PetitionKind.DENUNCIATION, summary="Tố cáo cán bộ xã nhận tiền",
                                   now=AT)
        await conn.execute(cases.update().where(cases.c.id == sealed.id).values(confidential=True))
    assert (await board.post("/lich/phien", ad_hoc("phien-2027-01-20", "2027-01-20"))).status_code == 303
    chosen = await board.post("/lich/phien/phien-2027-01-20/cases",
                              {"version": "1", "cases": f"{case.tracking_code}\n{sealed.tracking_code}"})
    assert chosen.status_code == 303
    page = (await board.http.get("/lich/phien/phien-2027-01-20")).text
    assert case.tracking_code in page and "Tranh chấp đất nông nghiệp" in page
    assert sealed.tracking_code in page and "Vụ việc mật" in page and "nhận tiền" not in page
    # a second tab still showing version 1
    stale = await board.post("/lich/phien/phien-2027-01-20/leaders", {"version": "1", "host": "chu-tich-ubnd-tinh"})
    assert stale.status_code == 409 and "đã được người khác thay đổi" in stale.text and "hãy tải lại" in stale.text
    assert await version_of(app, "phien-2027-01-20") == 2
    unknown = await board.post("/lich/phien/phien-2027-01-20/cases", {"version": "2", "cases": "TCD-KHONG-CO"})
    assert unknown.status_code == 422 and "Không tìm thấy vụ việc có mã «TCD-KHONG-CO»" in unknown.text
    async with ctx.engine.begin() as conn:
        ticket = await issue_ticket(conn, "phien-2027-01-20", venue="xa-tien-du", case=case.id, actor=SETUP,
                                    grants=ALL, clock=_clock)
    assert {g.value for g in ticket.priorities} == {"chair_selected"}


async def test_postpone_cancel_and_reschedule_need_a_reason_and_a_real_date(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    assert (await board.post("/lich/phien", ad_hoc("phien-2027-02-10", "10/02/2027"))).status_code == 303
    no_note = await board.post("/lich/phien/phien-2027-02-10/postpone", {"version": "1", "reason": "other"})
    assert no_note.status_code == 422 and "Cần ghi rõ lý do cụ thể" in no_note.text
    bad_code = await board.post("/lich/phien/phien-2027-02-10/postpone", {"version": "1", "reason": "vi-vu"})
    assert bad_code.status_code == 422
    postponed = await board.post("/lich/phien/phien-2027-02-10/postpone",
                                 {"version": "1", "reason": "chair_unavailable"})
    assert postponed.status_code == 303
    for day, message in (("31/02/2027", "không có trên lịch"), ("2027-13-01", "không có trên lịch"),
                         ("0000-03-10", "năm phải từ 2000 đến 2100"), ("mai", "không đúng dạng ngày")):
        refused = await board.post("/lich/phien/phien-2027-02-10/reschedule", {"version": "2", "day": day})
        assert refused.status_code == 422 and message in refused.text, day
    moved = await board.post("/lich/phien/phien-2027-02-10/reschedule",
                             {"version": "2", "day": "2027-02-24", "opens_at": "14:00", "closes_at": "17:00"})
    assert moved.status_code == 303
    page = (await board.http.get("/lich/phien/phien-2027-02-10")).text
    assert "Thứ Tư 24/02/2027" in page and "14:00–17:00" in page and "Đã lập lịch" in page
    cancelled = await board.post("/lich/phien/phien-2027-02-10/cancel",
                                 {"version": "3", "reason": "merged", "note": "Gộp với phiên tháng 3"})
    assert cancelled.status_code == 303
    assert "Đã hủy" in (await board.http.get("/lich/phien/phien-2027-02-10")).text
    again = await board.post("/lich/phien/phien-2027-02-10/cancel", {"version": "4", "reason": "merged"})
    assert again.status_code == 409


async def test_planning_forms_refuse_impossible_dates_too_many_or_inactive_venues(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.begin() as conn:
        await ensure_venues(conn, [VenueDraft(f"xa-so-{i}", f"Xã số {i}") for i in range(15)], actor=SETUP,
                            grants=ALL, clock=_clock)
    cases_: list[tuple[dict[str, Any], str]] = [
        (ad_hoc("phien-a", "31/02/2027"), "không có trên lịch"),
        (ad_hoc("phien-a", "2027-02-29"), "không có trên lịch"),
        (ad_hoc("phien-a", "0000-01-10"), "năm phải từ 2000 đến 2100"),
        (ad_hoc("phien-a", "2027-03-10", ["tru-so-tinh", "xa-tien-du", *[f"xa-so-{i}" for i in range(15)]]),
         "tối đa 16 điểm cầu trực tuyến; đã chọn 17"),
        (ad_hoc("phien-a", "2027-03-10", ["tru-so-tinh", "xa-cu"]), "Điểm cầu «xa-cu» đã ngừng hoạt động."),
        (ad_hoc("phien-a", "2027-03-10", opens_at="25:00"), "không hợp lệ"),
        (ad_hoc("Phiên A", "2027-03-10"), "Mã phiên «Phiên A» không hợp lệ"),
        (ad_hoc("phien-a", "2026-11-30"), "ngày đã qua"),
    ]
    for data, message in cases_:
        refused = await board.post("/lich/phien", data)
        assert refused.status_code == 422 and message in refused.text, message
    periodic = [({"day_of_month": "32", "year": "2027"}, "Ngày trong tháng phải là số nguyên từ 1 đến 31."),
                ({"day_of_month": "10", "year": "0"}, "Năm: năm phải từ 2000 đến 2100."),
                ({"day_of_month": "10", "year": "2027", "rule": "weekly"}, "hằng quý hoặc hằng tháng")]
    for over, message in periodic:
        data = {"rule": "quarterly", "rule_key": "quy", "venues": ["tru-so-tinh"], **over}
        refused = await board.post("/lich/dinh-ky", data)
        assert refused.status_code == 422 and message in refused.text, message
    assert (await board.http.get("/lich?thang=2027-13")).status_code == 422
    assert (await board.http.get("/lich?tu=2027-02-30&den=2027-03-01")).status_code == 422
    assert (await board.http.get("/lich/phien/khong-co")).status_code == 404


async def test_feeds_are_served_at_signed_links_only_with_published_sessions(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    for session_id, day in (("phien-2027-03-10", "2027-03-10"), ("phien-2027-06-10", "2027-06-10")):
        assert (await board.post("/lich/phien", ad_hoc(session_id, day))).status_code == 303
    published = await board.post("/lich/phien/phien-2027-03-10/publish", {"version": "1"})
    assert published.status_code == 303
    page = (await board.http.get("/lich")).text
    ctx: ConsoleContext = app.state.console
    assert ctx.keyring is not None
    links = FeedLinks.from_keyring(ctx.keyring)
    leader_path = links.path("lanh-dao", "bi-thu-tinh-uy")
    venue_path = links.path("diem-cau", "xa-tien-du")
    assert f"http://testserver{leader_path}" in page and f"http://testserver{venue_path}" in page
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    for path in (leader_path, venue_path, links.path("lanh-dao", "chu-tich-ubnd-tinh")):  # host, venue, co-host
        response = await anonymous.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
        events = Calendar.from_ical(response.content).walk("VEVENT")
        assert [str(e["UID"]) for e in events] == ["phien-2027-03-10@tiepdan"]  # the plan of June is not public
        assert events[0].decoded("DTSTART").isoformat() == "2027-03-10T07:30:00+07:00"
    token = leader_path.rsplit("/", 1)[1].removesuffix(".ics")
    for path in (f"/lich/ics/lanh-dao/bi-thu-tinh-uy/{'0' * 32}.ics",  # a made-up token
                 f"/lich/ics/lanh-dao/chu-tich-ubnd-tinh/{token}.ics",  # another leader's token
                 links.path("lanh-dao", "pho-bi-thu"),  # signed, but no such leader
                 links.path("diem-cau", "xa-khong-co"),  # signed, but no such venue
                 f"/lich/ics/lich-khac/bi-thu-tinh-uy/{token}.ics"):
        refused = await anonymous.get(path)
        assert refused.status_code == 404 and "bi-thu" not in refused.text.split("<main")[-1], path


async def test_venues_admin_creates_edits_and_deactivates_and_marks_unverified_sample_codes(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    page = (await board.http.get("/admin/venues")).text
    assert 'href="/admin/venues"' in page and 'data-testid="unverified"' in page
    assert "chưa đối chiếu văn bản gốc" in page
    made = await board.post("/admin/venues", {"id": "xa-que-vo", "name": "Xã Quế Võ", "level": "commune",
                                              "admin_code": "09247", "old_admin_codes": "09247, 09262",
                                              "max_kbps": "900"})
    assert made.status_code == 303
    bad = await board.post("/admin/venues", {"id": "xa-sai", "name": "Xã Sai", "admin_code": "123"})
    assert bad.status_code == 422 and "phải gồm 2 chữ số" in bad.text
    low = await board.post("/admin/venues", {"id": "xa-sai", "name": "Xã Sai", "max_kbps": "50"})
    assert low.status_code == 422 and "từ 100 đến 20000 kbps" in low.text
    taken = await board.post("/admin/venues", {"id": "xa-que-vo", "name": "Xã Khác"})
    assert taken.status_code == 409
    edit = {"version": "1", "name": "Xã Quế Võ (mới)", "level": "commune", "admin_code": "09247",
            "old_admin_codes": "09247", "max_kbps": "1200", "active": "1"}
    assert (await board.post("/admin/venues/xa-que-vo", edit)).status_code == 303
    stale = await board.post("/admin/venues/xa-que-vo", {**edit, "name": "Tên cũ"})
    assert stale.status_code == 409 and "hãy tải lại" in stale.text
    assert (await board.post("/admin/venues/xa-que-vo/deactivate", {"version": "2"})).status_code == 303
    page = (await board.http.get("/admin/venues")).text
    row = page.split('data-venue="xa-que-vo"')[1].split("</tr>")[0]
    assert "Xã Quế Võ (mới)" in row and "1200" in row and "badge--off" in row
    assert (await board.post("/admin/venues/khong-co/deactivate", {"version": "1"})).status_code == 404


async def test_planning_needs_the_manage_grant_and_refuses_a_huge_form(app: FastAPI) -> None:
    board = await signed(app, "quantri")
    assert (await board.post("/lich/phien", ad_hoc("phien-2027-03-12", "2027-03-12"))).status_code == 303
    for username in ("chutri", "tiepnhan"):
        other = await signed(app, username)
        assert "/lich" not in (await other.http.get("/")).text.split("site-nav")[1].split("</nav>")[0]
        for path in ("/lich", "/lich/phien/phien-2027-03-12", "/admin/venues"):
            assert (await other.http.get(path)).status_code == 403, path
        for path, data in (("/lich/phien/phien-2027-03-12/publish", {"version": "1"}),
                           ("/lich/phien", ad_hoc("phien-b", "2027-03-15")),
                           ("/admin/venues", {"id": "xa-b", "name": "Xã B"})):
            assert (await other.post(path, data)).status_code == 403, path
    assert await version_of(app, "phien-2027-03-12") == 1
    huge = await board.post("/lich/phien/phien-2027-03-12/cases", {"version": "1", "cases": "x" * 40_000})
    assert huge.status_code == 413
    unknown_action = await board.post("/lich/phien/phien-2027-03-12/open", {"version": "1"})
    assert unknown_action.status_code == 404
    no_version = await board.post("/lich/phien/phien-2027-03-12/leaders", {"host": "bi-thu-tinh-uy"})
    assert no_version.status_code == 422 and "thiếu phiên bản dữ liệu" in no_version.text
