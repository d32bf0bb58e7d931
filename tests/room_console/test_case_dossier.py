"""The case dossier beside the chair's video, the printable brief, and the recall picker's queue calls,
through the console's HTTP routes on SQLite and PostgreSQL: what the chair sees of a case ("lần tiếp
thứ n", history, earlier directives and whether they were done, the LTCD Điều 9 flag), what the
secretary does not see of a denouncer, and every refusal as a clear answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.cases import add_reception_entry, create_case
from complaints.directives import add_unit, issue_directive, report_on_directive
from complaints.enums import HandlingDirection, PetitionKind, ReceptionForm, ReceptionOutcome, ReceptionType
from complaints.handling import record_handling_decision
from complaints.tables import audit_events
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from schedules import VIETNAM_TZ, VenueChoice, issue_ticket, publish_session, start_session
from schedules import sessions as service
from signaling.grants import Role
from tiepdan.app import create_app

from ..schedules._roll_call import record_all_present
from ..schedules.conftest import ACTOR, ADMIN, CALENDAR, CHAIR, DESK, FakeClock, add_venues, plan
from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

USERS = {"chutri": (("chair",), "tru-so-tinh"), "thuky": (("secretary",), None),
         "tiepnhan": (("reception",), None), "diemcau": (("venue",), "xa-tien-du")}
HUNG = {"full_name": "Nguyễn Văn Hùng", "id_number": "027085012345", "phone": "0912345678",
        "address_detail": "Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh"}
ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def send(self, method: str, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.request(method, url, json=body, headers={"x-csrf-token": self.csrf})


async def signed(app: FastAPI, username: str) -> Client:
    """A signed-in client of ``username`` (of :data:`USERS`; the account is made at first use: hashing a
    password costs time on a busy machine)."""
    ctx: ConsoleContext = app.state.console
    made: set[str] = app.state.test_users
    if username not in made:
        roles, venue = USERS[username]
        await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                       password=PASSWORD, venue=venue, options=ctx.options, now=ctx.clock())
        made.add(username)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 9, 0, tzinfo=VIETNAM_TZ))


@pytest.fixture
async def app(make_settings, database_url: str, clock: FakeClock) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: clock.now.timestamp()
        application.state.test_users = set()
        yield application


def intake_body(kind: str = "complaint", **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "petitioner": HUNG, "subject_area": "land", "summary": "Khiếu nại quyết định thu hồi đất nông nghiệp",
        "petition": {"kind": kind, "source": "in_person", "received_on": "2026-11-19",
                     "content": f"Đơn {kind} về việc thu hồi đất", "prior_handling": "second_decision"},
        "respondent": {"kind": "organisation", "name": "UBND xã Tiên Du"},
        "reception": {"reception_type": "routine", "form": "in_person", "outcome": "return_with_guidance"},
    }
    values.update(over)
    return values


async def intake(client: Client, payload: dict[str, Any]) -> dict[str, Any]:
    response = await client.send("POST", "/api/intake", payload)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def reveals(text: str) -> list[str]:
    return [value for value in HUNG.values() if value.lower() in text.lower()]


async def audit_of(app: FastAPI, target: str) -> list[tuple[str, Any]]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(
            select(audit_events.c.action, audit_events.c.detail).where(audit_events.c.target_id == target)
            .order_by(audit_events.c.id))]


async def test_dossier_shows_nth_history_directive_progress_and_the_dieu_9_flag(app: FastAPI) -> None:
    ctx: ConsoleContext = app.state.console
    desk = await signed(app, "tiepnhan")
    case = await intake(desk, intake_body())
    secretary = await signed(app, "thuky")
    version = (await secretary.get(f"/api/cases/{case['case_id']}")).json()["version"]
    assert (await secretary.send("PATCH", f"/api/cases/{case['case_id']}",
                                 {"novelty": "existing", "version": version})).status_code == 200
    now = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    async with ctx.engine.begin() as conn:
        await add_reception_entry(conn, case["case_id"], received_on=date(2026, 9, 10),
                                  reception_type=ReceptionType.PERIODIC, form=ReceptionForm.ONLINE, with_petition=False,
                                  now=now, keyring=ctx.keyring, actor="user:test",  # type: ignore[arg-type]
                                  session_id="phien-2026-09-10", outcome=ReceptionOutcome.ANSWERED_ON_THE_SPOT)
        await record_handling_decision(conn, case["case_id"], direction=HandlingDirection.FILE_WITHOUT_ACTION,
                                       decided_on=date(2026, 11, 19), decided_by="user:test", now=now)
        await add_unit(conn, "ubnd-tien-du", "UBND xã Tiên Du", track="state")
        done = await issue_directive(conn, case["case_id"], unit_id="ubnd-tien-du", content="Kiểm tra, trả lời",
                                     issued_on=date(2026, 9, 10), deadline=date(2026, 10, 9), issued_by="chu-tri",
                                     calendar=CALENDAR)
        await report_on_directive(conn, done, expected_version=1, reported_on=date(2026, 10, 5),
                                  content="Đã trả lời bằng văn bản", reported_by="ubnd", completed=True, now=now)
        await issue_directive(conn, case["case_id"], unit_id="ubnd-tien-du", content="Rà soát hồ sơ đất",
                              issued_on=date(2026, 9, 10), deadline=date(2026, 10, 30), issued_by="chu-tri",
                              calendar=CALENDAR)
        await issue_directive(conn, case["case_id"], unit_id="ubnd-tien-du", content="Báo cáo kết quả đối thoại",
                              issued_on=date(2026, 11, 2), deadline=date(2026, 12, 31), issued_by="chu-tri",
                              calendar=CALENDAR)

    answer = await secretary.get(f"/api/cases/{case['case_id']}/dossier", params={"session": ROOM})
    assert answer.status_code == 200, answer.text
    d = answer.json()
    assert d["case"]["tracking_code"] == case["tracking_code"] and d["case"]["kind"]["label"] == "Khiếu nại"
    assert d["case"]["subject_area"]["label"] == "Đất đai" and d["case"]["summary"].startswith("Khiếu nại quyết định")
    assert (d["reception_number"], d["reception_number_text"]) == (3, "Lần tiếp thứ 3")  # two entries before
    assert d["brief_url"] == f"/cases/{case['case_id']}/brief?session={ROOM}"
    assert [(h["on"], h["kind"], h["nth"]) for h in d["history"]] == [
        ("2026-09-10", "reception", 2), ("2026-09-10", "directive", None), ("2026-09-10", "directive", None),
        ("2026-11-02", "directive", None), ("2026-11-19", "petition", None), ("2026-11-19", "reception", 1),
        ("2026-11-19", "decision", None)]
    assert d["history"][0]["label"] == "Giải quyết ngay" and d["history"][-1]["label"] == "Lưu đơn"
    assert (d["history"][1]["label"], d["history"][1]["due"]) == ("UBND xã Tiên Du", "2026-10-09")
    assert [(x["deadline"], x["progress"]["value"], x["progress"]["label"]) for x in d["directives"]] == [
        ("2026-10-09", "done", "Đã thực hiện"), ("2026-10-30", "overdue", "Quá hạn"),
        ("2026-12-31", "in_progress", "Đang thực hiện")]
    assert d["directives"][0]["unit"] == "UBND xã Tiên Du" and d["directives"][0]["issued_on"] == "2026-09-10"
    refusal = d["refusal"]
    assert refusal["flagged"] and refusal["level"]["value"] == "likely"
    assert refusal["reason"]["value"] == "already_resolved"
    assert [(c["condition"], c["finding"]["value"]) for c in refusal["checks"]] == [
        ("complaint_or_denunciation", "met"), ("settled", "met"), ("reviewed_in_writing", "met"),
        ("received_and_explained", "met"), ("no_new_facts", "met")]
    assert "không phải quyết định từ chối" in refusal["hint"]
    # read back for the earlier session: that reception was the second
    earlier = (await secretary.get(f"/api/cases/{case['case_id']}/dossier",
                                   params={"session": "phien-2026-09-10"})).json()
    assert earlier["reception_number"] == 2 and [h["nth"] for h in earlier["history"] if h["nth"]] == [1]

    brief = await secretary.get(f"/cases/{case['case_id']}/brief", params={"session": ROOM})
    assert brief.status_code == 200 and "text/html" in brief.headers["content-type"]
    assert case["tracking_code"] in brief.text and "Lần tiếp thứ 3" in brief.text
    assert "/static/case-brief.css" in brief.text and 'data-level="likely"' in brief.text
    assert "Quá hạn" in brief.text and "Lưu đơn" in brief.text
    page = await secretary.get(f"/cases/{case['case_id']}")
    assert f'href="/cases/{case["case_id"]}/brief"' in page.text
    assert [a for a, _ in await audit_of(app, case["case_id"])].count("case.view") >= 3  # every read audited


async def test_a_denouncer_linked_from_an_earlier_open_case_shows_by_handle_to_the_secretary_only(
        app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    complaint = await intake(desk, intake_body())
    denunciation = await intake(desk, intake_body("denunciation", petitioner=None,
                                                  petitioner_id=complaint["petitioner_id"],
                                                  summary="Tố cáo cán bộ địa chính"))
    assert denunciation["confidential"] and denunciation["petitioner_id"] != complaint["petitioner_id"]
    assert (await desk.get(f"/api/sessions/{ROOM}/dossier")).status_code == 403  # the desk does not call cases
    secretary = await signed(app, "thuky")
    seen = await secretary.get(f"/api/cases/{denunciation['case_id']}/dossier")
    assert seen.status_code == 200 and seen.json()["case"]["confidential"]
    (party,) = seen.json()["parties"]
    assert party["handle"] and party["shown"].startswith("NTC-")
    assert reveals(seen.text) == [] and complaint["tracking_code"] not in seen.text
    assert complaint["petitioner_id"] not in seen.text and complaint["case_id"] not in seen.text
    brief = await secretary.get(f"/cases/{denunciation['case_id']}/brief")
    assert brief.status_code == 200 and reveals(brief.text) == [] and party["shown"] in brief.text
    assert complaint["tracking_code"] not in brief.text and "Mật" in brief.text
    # the open case on file names nothing of the denunciation
    other = await secretary.get(f"/api/cases/{complaint['case_id']}/dossier")
    assert other.json()["parties"][0]["shown"] == "Nguyễn Văn Hùng"
    assert party["shown"] not in other.text and denunciation["tracking_code"] not in other.text

    chair = await signed(app, "chutri")
    shown = await chair.get(f"/api/cases/{denunciation['case_id']}/dossier")
    # the chair too sees the handle: the panel is on a screen in a room, the brief goes on paper; the name is
    # opened on the case page with a purpose
    assert shown.json()["parties"] == [{"shown": party["shown"], "handle": True,
                                        "role": {"value": "signatory", "label": "Người đứng đơn"}}]
    assert reveals(shown.text) == [] and complaint["tracking_code"] not in shown.text
    assert complaint["petitioner_id"] not in shown.text
    assert [a for a, _ in await audit_of(app, denunciation["petitioner_id"])].count("identity.view") == 0
    chair_brief = await chair.get(f"/cases/{denunciation['case_id']}/brief")
    assert reveals(chair_brief.text) == [] and party["shown"] in chair_brief.text


async def test_dossier_refusals_are_clear_answers(app: FastAPI) -> None:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.begin() as conn:
        case = {"case_id": (await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất",
                                              now=datetime(2026, 11, 20, tzinfo=UTC))).id}
    secretary = await signed(app, "thuky")
    unknown = await secretary.get("/api/cases/khong-co-vu-viec/dossier")
    assert unknown.status_code == 404 and unknown.json()["message"] == "Không tìm thấy vụ việc."
    assert (await secretary.get("/cases/khong-co-vu-viec/brief")).status_code == 404
    bad = await secretary.get(f"/api/cases/{case['case_id']}/dossier", params={"session": "../x"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_session"
    venue_op = await signed(app, "diemcau")
    assert (await venue_op.get(f"/api/cases/{case['case_id']}/dossier")).status_code == 403
    assert (await venue_op.get(f"/cases/{case['case_id']}/brief")).status_code == 403
    assert (await venue_op.get(f"/api/sessions/{ROOM}/dossier")).status_code == 403
    token = ctx.issuer.issue("svc-venue", roles=[Role.VENUE], venue="xa-tien-du", ttl_s=600, audience="api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        by_token = await http.get(f"/api/cases/{case['case_id']}/dossier", headers={"authorization": f"Bearer {token}"})
        assert by_token.status_code == 403
        assert (await http.get(f"/api/cases/{case['case_id']}/dossier")).status_code == 401
    assert (await secretary.get("/api/sessions/khong-co-phien/dossier")).status_code == 404
    assert (await secretary.get("/api/sessions/BAD..id/dossier")).status_code == 404


async def prepare(ctx: ConsoleContext, clock: FakeClock, count: int) -> list[str]:
    """A session in progress (roll call taken) with ``count`` tickets (xã Tiên Du, phường Quế Võ in turn);
    the cases' ids."""
    engine = ctx.engine
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        cases = [(await create_case(conn, kind=PetitionKind.COMPLAINT, summary=f"Khiếu nại số {i}",
                                    now=datetime(2026, 11, 20, tzinfo=UTC))).id for i in range(count)]
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du"),
                                                   VenueChoice("phuong-que-vo")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    for i, case in enumerate(cases):
        clock.advance(minutes=1)
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue=("xa-tien-du", "phuong-que-vo")[i % 2], case=case, actor=ACTOR,
                               grants=DESK, clock=clock)
    clock.set_local(DAY, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
        await record_all_present(conn, ROOM, clock=clock)
        await start_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    clock.advance(minutes=1)
    return cases


async def test_the_session_dossier_follows_the_call_and_the_picker_recalls_a_skipped_number(
        app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    cases = await prepare(ctx, clock, 2)
    chair = await signed(app, "chutri")
    url, queue = f"/api/sessions/{ROOM}/dossier", f"/api/sessions/{ROOM}/queue"
    assert (await chair.get(url)).json() == {"case": None, "session": ROOM}
    first = await chair.send("POST", f"{queue}/call-next")
    assert first.status_code == 200, first.text
    called = (await chair.get(url)).json()
    assert called["case"]["id"] == cases[0] and called["ticket"]["ticket_no"] == 1
    assert called["reception_number"] == 1 and called["brief_url"].endswith(f"?session={ROOM}")

    clock.advance(minutes=1)
    skipped = await chair.send("POST", f"{queue}/skip")
    assert skipped.status_code == 200 and skipped.json()["events"] == ["case.skipped"]
    assert (await chair.get(url)).json()["case"] is None  # cleared when the case ends
    shown = (await chair.get(queue)).json()
    assert [(t["ticket_no"], t["venue_name"]) for t in shown["passed_over"]] == [(1, "Xã Tiên Du")]
    assert "Khiếu nại" not in str(shown["passed_over"])  # numbers and venues only

    clock.advance(minutes=1)
    never = await chair.send("POST", f"{queue}/recall", {"ticket_no": 2, "expected_version": shown["version"]})
    assert never.status_code == 409 and never.json()["error"] == "not_recallable"
    assert "Số thứ tự 2 không thể gọi lại" in never.json()["message"]
    recalled = await chair.send("POST", f"{queue}/recall", {"ticket_no": 1, "expected_version": shown["version"]})
    assert recalled.status_code == 200, recalled.text
    assert recalled.json()["events"] == ["case.recalled"] and recalled.json()["current"]["ticket_no"] == 1
    assert recalled.json()["passed_over"] == []
    again = (await chair.get(url)).json()
    assert again["case"]["id"] == cases[0] and again["ticket"]["call_seq"] == 2

    secretary = await signed(app, "thuky")
    assert (await secretary.get(url)).json()["case"]["id"] == cases[0]
    clock.advance(minutes=1)
    assert (await chair.send("POST", f"{queue}/end")).status_code == 200
    assert (await chair.get(url)).json()["case"] is None
