"""The registration desk (issue 10 item 3) through the console's HTTP API and page, on SQLite and
PostgreSQL: a citizen registered from the chip ID card's QR string, triaged, and (only when proposed to
the leader) given the next ticket of the session; the bad inputs a desk meets; a denunciation sealed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.enums import ReceptionForm, ReceptionType
from complaints.tables import cases, reception_entries
from complaints.workdays import default_calendar
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from schedules import VenueChoice, VenueDraft, VenueLevel, ensure_venues, plan_session, publish_session
from schedules import sessions as scheduler
from schedules.tables import queue_tickets
from signaling.grants import Grant
from tiepdan.app import create_app

from ._helpers import PASSWORD, form_token, page_token, sign_in

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 09:00 in Viet Nam
NOW = AT.timestamp()
ROOM = "phien-ban-tiep-nhan"
ALL = frozenset(Grant)
SETUP = "service:test"
ROLES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "tiepnhan": (("reception",), None), "tiepnhan2": (("reception",), None), "thuky": (("secretary",), None),
    "diemcau": (("reception",), "xa-tien-du"), "chutri": (("chair",), None), "vanhanh": (("venue",), "xa-tien-du"),
    "manhinh": (("display",), "xa-tien-du")}
VENUES = (("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh"), ("xa-tien-du", "Xã Tiên Du"), ("xa-gia-binh", "Xã Gia Bình"))
# An elderly man (born 1950) and a younger man, as the card's QR code says.
ELDER_ID, ELDER = "027050123456", "Nguyễn Văn Thọ"
ELDER_QR = f"{ELDER_ID}||{ELDER}|15031950|Nam|Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh|15082021\r\n"
HUNG_ID, HUNG = "027085012345", "Trần Văn Hùng"
HUNG_QR = f"{HUNG_ID}|012345678|{HUNG}|02031985|Nam|Xóm Mới, xã Gia Bình, tỉnh Bắc Ninh|15082021"


def _clock() -> datetime:
    return AT


async def _session(engine: Any, room: str, venues: list[str], *, closed: bool = False) -> None:
    async with engine.begin() as conn:
        await ensure_venues(conn, [VenueDraft(v, n, VenueLevel.MAIN if i == 0 else VenueLevel.COMMUNE)
                                   for i, (v, n) in enumerate(VENUES)], actor=SETUP, grants=ALL, clock=_clock)
        await plan_session(conn, session_id=room, day=AT.date(), form=ReceptionForm.ONLINE, kind=ReceptionType.PERIODIC,
                           venues_chosen=[VenueChoice(v) for v in venues], main=venues[0], actor=SETUP, grants=ALL,
                           clock=_clock)
        await publish_session(conn, room, calendar=default_calendar(), override_reason="Phiên thử nghiệm",
                              actor=SETUP, grants=ALL, clock=_clock)
        await scheduler.open_session(conn, room, actor=SETUP, grants=ALL, clock=_clock)
        if closed:
            await scheduler.start_session(conn, room, actor=SETUP, grants=ALL, clock=_clock)
            await scheduler.close_session(conn, room, actor=SETUP, grants=ALL, clock=_clock)


@pytest.fixture
async def app(make_settings, database_url: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, (roles, venue) in ROLES.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, options=ctx.options, now=NOW, venue=venue)
        await _session(ctx.engine, ROOM, ["tru-so-tinh", "xa-tien-du"])
        yield application


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def post(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        return await self.http.post(url, json=payload, headers={"x-csrf-token": self.csrf})


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


def registration(qr: str | None = HUNG_QR, triage: str = "propose_leader", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": ROOM, "venue": "xa-tien-du", "triage": triage,
                            "petition": {"kind": "complaint", "content": "Khiếu nại việc thu hồi đất nông nghiệp"},
                            "respondent": {"kind": "organisation", "name": "UBND xã Tiên Du"}}
    if qr is not None:
        body["chip_qr"] = qr
    body.update(over)
    return body


async def count(app: FastAPI, table: Any) -> int:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        return len((await conn.execute(select(table.c.id))).all())


async def test_registration_from_chip_card_issues_ticket_with_elderly_priority_and_prints_slip(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    sessions = (await desk.http.get("/api/desk/sessions")).json()
    assert [s["id"] for s in sessions["sessions"]] == [ROOM]
    assert [v["id"] for v in sessions["sessions"][0]["venues"]] == ["tru-so-tinh", "xa-tien-du"]
    response = await desk.post("/api/desk/registrations", registration(ELDER_QR, priorities=["disabled"]))
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["new_case"] is True and result["confidential"] is False
    assert result["triage"] == {"value": "propose_leader", "label": "Đề xuất lãnh đạo tiếp"}
    assert result["reception"]["nth"] == 1
    ticket = result["ticket"]
    assert ticket["number"] == 1 and ticket["venue"] == "xa-tien-du"
    assert {p["value"] for p in ticket["priorities"]} == {"elderly", "disabled"}
    assert ELDER_ID not in response.text
    slip = await desk.http.get(ticket["slip_url"])
    assert slip.status_code == 200
    assert 'data-testid="slip-number">1<' in slip.text and result["tracking_code"] in slip.text
    assert "<svg" in slip.text and "/static/desk-slip.css" in slip.text and "Xã Tiên Du" in slip.text
    assert ELDER_ID not in slip.text and ELDER not in slip.text
    css = await desk.http.get("/static/desk-slip.css")
    assert "size: A6" in css.text
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        entry = (await conn.execute(select(reception_entries.c.session_id, reception_entries.c.outcome,
                                           reception_entries.c.venue))).one()
    assert tuple(entry) == (ROOM, "meet_leader", "xa-tien-du")


async def test_every_triage_but_propose_leader_records_a_reception_without_ticket(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    refused = await desk.post("/api/desk/registrations", registration(triage="refuse"))
    assert refused.status_code == 422 and refused.json()["error"] == "missing_reason"
    forwarded = await desk.post("/api/desk/registrations", registration(triage="forward"))
    assert forwarded.status_code == 422
    assert await count(app, cases) == 0
    for triage, extra in (("guidance", {}), ("explain", {}), ("forward", {"receiving_body": "UBND tỉnh"}),
                          ("refuse", {"refusal_reason": "Người đang say rượu (Luật Tiếp công dân, Điều 9)"})):
        response = await desk.post("/api/desk/registrations", registration(triage=triage, **extra))
        assert response.status_code == 201, response.text
        assert response.json()["ticket"] is None
    assert await count(app, queue_tickets) == 0
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        outcomes = (await conn.execute(select(reception_entries.c.outcome, reception_entries.c.notes))).all()
    assert {o for o, _ in outcomes} == {"return_with_guidance", "answered_on_the_spot", "forward_to_competent_body",
                                        "refused"}
    assert any("say rượu" in n for o, n in outcomes if o == "refused")


async def test_a_string_that_is_not_a_chip_card_is_refused_with_the_reason(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    for bad, code in (("https://example.vn/abc", "field_count"),
                      ("001099012345||Nguyễn Văn An|31021999|Nam|Hà Nội|15082021", "birth_date_invalid"),
                      ("12345|||||", "field_count")):
        response = await desk.post("/api/desk/registrations", registration(bad))
        assert response.status_code == 422, response.text
        assert response.json()["error"] == code and response.json()["message"]
        assert response.json()["errors"][0]["field"].startswith("chip_qr")
    assert await count(app, cases) == 0 and await count(app, queue_tickets) == 0


async def test_a_venue_not_in_the_session_and_a_closed_session_are_refused(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    response = await desk.post("/api/desk/registrations", registration(venue="xa-gia-binh"))
    assert response.status_code == 422 and response.json()["error"] == "venue_not_in_session"
    ctx: ConsoleContext = app.state.console
    await _session(ctx.engine, "phien-da-dong", ["tru-so-tinh", "xa-tien-du"], closed=True)
    response = await desk.post("/api/desk/registrations", registration(session_id="phien-da-dong"))
    assert response.status_code == 409 and response.json()["error"] == "tickets_not_issued"
    response = await desk.post("/api/desk/registrations", registration(session_id="khong-co-phien"))
    assert response.status_code == 404
    assert [s["id"] for s in (await desk.http.get("/api/desk/sessions")).json()["sessions"]] == [ROOM]
    assert await count(app, cases) == 0 and await count(app, queue_tickets) == 0


async def test_a_venue_operator_registers_at_its_own_venue_only(app: FastAPI) -> None:
    operator = await signed(app, "diemcau")
    response = await operator.post("/api/desk/registrations", registration(venue="tru-so-tinh"))
    assert response.status_code == 403
    response = await operator.post("/api/desk/registrations", registration(venue=None))
    assert response.status_code == 201 and response.json()["venue"] == "xa-tien-du"


async def test_a_role_without_intake_is_refused(app: FastAPI) -> None:
    for username in ("thuky", "chutri"):
        client = await signed(app, username)
        assert (await client.post("/api/desk/registrations", registration())).status_code == 403
        assert (await client.post("/api/desk/duplicates", registration())).status_code == 403
        assert (await client.http.get("/api/desk/sessions")).status_code == 403
        assert (await client.http.get("/ban-tiep-nhan")).status_code == 403
    assert await count(app, cases) == 0


async def test_a_denunciation_registered_at_the_desk_is_sealed(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    body = registration(ELDER_QR, petition={"kind": "denunciation", "content": "Tố cáo cán bộ xã nhận hối lộ"})
    missing = await desk.post("/api/desk/registrations", body)  # the desk must choose how it is heard
    assert missing.status_code == 422 and missing.json()["error"] == "handling_required"
    assert missing.json()["errors"][0]["field"] == "handling" and await count(app, cases) == 0
    response = await desk.post("/api/desk/registrations", {**body, "handling": "closed_segment"})
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["confidential"] is True and result["ticket"]["number"] == 1
    assert result["ticket"]["handling"]["value"] == "closed_segment"
    assert ELDER not in response.text and ELDER_ID not in response.text
    # Nobody without identity_read reads the name: the desk officer, the secretary, the chair.
    for username in ("tiepnhan", "thuky", "chutri"):
        client = await signed(app, username)
        for url in (f"/api/cases/{result['case_id']}", f"/cases/{result['case_id']}", result["ticket"]["slip_url"],
                    f"/api/cases?q={ELDER}"):
            text = (await client.http.get(url)).text
            assert ELDER not in text and ELDER_ID not in text and "Thôn Đông" not in text, (username, url)
    # A second registration of the same person: the duplicate check reports a sealed match, no details.
    check = await desk.post("/api/desk/duplicates", registration(ELDER_QR))
    assert check.status_code == 200
    assert check.json()["sealed_match"] is True and ELDER not in check.text


async def test_two_registrations_at_once_get_consecutive_numbers(app: FastAPI) -> None:
    one, two = await signed(app, "tiepnhan"), await signed(app, "tiepnhan2")
    responses = await asyncio.gather(one.post("/api/desk/registrations", registration(ELDER_QR)),
                                     two.post("/api/desk/registrations", registration(HUNG_QR, venue="tru-so-tinh")))
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    assert sorted(r.json()["ticket"]["number"] for r in responses) == [1, 2]


async def test_desk_page_renders_checks_duplicates_and_registers(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    page = await desk.http.get("/ban-tiep-nhan")
    assert page.status_code == 200 and 'data-testid="desk-form"' in page.text and ROOM in page.text
    assert "/static/desk.js" in page.text and "<script>" not in page.text
    form = {"csrf_token": form_token(page.text), "session_id": ROOM, "venue": "xa-tien-du", "chip_qr": "rác|rác",
            "kind": "complaint", "content": "Khiếu nại việc thu hồi đất", "triage": "propose_leader",
            "action": "save"}
    bad = await desk.http.post("/ban-tiep-nhan", data=form)
    assert bad.status_code == 422 and "phải có 7 trường" in bad.text
    form["chip_qr"] = HUNG_QR
    checked = await desk.http.post("/ban-tiep-nhan", data={**form, "action": "check"})
    assert checked.status_code == 200 and 'data-testid="no-candidates"' in checked.text
    saved = await desk.http.post("/ban-tiep-nhan", data=form)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/ban-tiep-nhan/phieu/")
    slip = await desk.http.get(saved.headers["location"])
    assert 'data-testid="slip-number">1<' in slip.text and HUNG_ID not in slip.text
    refused = await desk.http.post("/ban-tiep-nhan", data={**form, "triage": "refuse", "chip_qr": ELDER_QR,
                                                          "refusal_reason": "Không thuộc thẩm quyền"})
    assert refused.status_code == 200 and 'data-testid="desk-done"' in refused.text


async def test_attaching_to_a_duplicate_candidate_keeps_the_case_and_the_elderly_priority(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    first = await desk.post("/api/desk/registrations", registration(ELDER_QR, triage="explain"))
    assert first.status_code == 201, first.text
    check = (await desk.post("/api/desk/duplicates", registration(ELDER_QR))).json()
    candidate = next(c for c in check["candidates"] if c["case_id"] == first.json()["case_id"])
    again = await desk.post("/api/desk/registrations", registration(
        ELDER_QR, case_id=candidate["case_id"], petitioner_id=candidate["petitioner_id"]))
    assert again.status_code == 201, again.text
    result = again.json()
    assert result["case_id"] == first.json()["case_id"] and result["new_case"] is False
    assert result["reception"]["nth"] == 2
    assert [p["value"] for p in result["ticket"]["priorities"]] == ["elderly"]
    both = await desk.post("/api/desk/registrations", registration(ELDER_QR, petitioner={"full_name": ELDER}))
    assert both.status_code == 422 and both.json()["error"] == "petitioner_choice"


async def test_the_handling_of_a_denunciation_reaches_the_chair_and_secretary_only(app: FastAPI) -> None:
    desk = await signed(app, "tiepnhan")
    plain = await desk.post("/api/desk/registrations", registration(HUNG_QR))
    secret = await desk.post("/api/desk/registrations", registration(
        ELDER_QR, petition={"kind": "denunciation", "content": "Tố cáo cán bộ xã nhận hối lộ"}, handling="in_person"))
    assert [plain.status_code, secret.status_code] == [201, 201], secret.text
    number = secret.json()["ticket"]["number"]
    queue_url = f"/api/sessions/{ROOM}/queue"
    for username in ("chutri", "thuky"):
        queue = (await (await signed(app, username)).http.get(queue_url)).json()
        assert [t["ticket_no"] for t in queue["waiting"]] == [1]  # in person: not in the online order
        assert [(t["ticket_no"], t["handling"]["value"]) for t in queue["in_person"]] == [(number, "in_person")]
        assert queue["waiting"][0]["handling"] is None
    # the desk turns it into a closed segment: ticket.triaged, and the chair's order takes it at its number
    version = (await (await signed(app, "chutri")).http.get(queue_url)).json()["version"]
    url = f"/api/desk/sessions/{ROOM}/tickets/{number}/triage"
    stale = await desk.post(url, {"expected_version": version - 1, "handling": "closed_segment"})
    assert stale.status_code == 409 and stale.json()["current_version"] == version
    bad = await desk.post(url, {"expected_version": version, "handling": "phiên kín"})
    assert bad.status_code == 422
    changed = await desk.post(url, {"expected_version": version, "handling": "closed_segment"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["changed"] is True and changed.json()["status"]["value"] == "waiting"
    queue = (await (await signed(app, "chutri")).http.get(queue_url)).json()
    # at its number, with its elderly priority (born 1950): called first, and the chair sees "phiên kín"
    assert [(t["ticket_no"], (t["handling"] or {}).get("value")) for t in queue["waiting"]] == [
        (number, "closed_segment"), (1, None)]
    # a venue's operator and a display never read the queue API; the board shows numbers only
    for username in ("vanhanh", "manhinh"):
        client = await signed(app, username)
        assert (await client.http.get(queue_url)).status_code == 403
        board = await client.http.get(f"/bang-so/{ROOM}/xa-tien-du")
        for text in ("closed_segment", "in_person", "Phiên kín", "trực tiếp riêng", "tố cáo", ELDER):
            assert text not in board.text, (username, text)
    # the venue's own desk may change the triage, never drop a denunciation's handling
    dropped = await (await signed(app, "diemcau")).post(url, {"expected_version": version + 1})
    assert dropped.status_code == 422 and dropped.json()["errors"][0]["field"] == "handling"
