"""Session transitions over HTTP (ASGI, real lifespan): publish, open, start, close, postpone, cancel with
``expected_version``; every refusal a JSON problem in Vietnamese (403 grant, 404 unknown, 409 stale or not
allowed from the state, 422 bad body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from complaints.enums import ReceptionForm, ReceptionType
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from schedules import VIETNAM_TZ, VenueChoice, plan_session
from signaling.events import SessionOpened, SessionPublished
from tiepdan.app import create_app

from ..schedules.conftest import ACTOR, ADMIN, FakeClock, add_venues, outbox_events
from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DAY = datetime(2026, 12, 10).date()
USERS = {"quantri": (("admin",), None), "chutri": (("chair",), "tru-so-tinh"), "diemcau": (("venue",), "xa-tien-du")}
LATE = "Lịch công tác của Bí thư thay đổi, công bố bổ sung"


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def post(self, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(url, json=body, headers={"x-csrf-token": self.csrf})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 10, 7, 0, tzinfo=VIETNAM_TZ))  # the session day, early


@pytest.fixture
async def app(make_settings, sqlite_url: str, clock: FakeClock) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=sqlite_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: clock.now.timestamp()
        for username, (roles, venue) in USERS.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, venue=venue, options=ctx.options, now=clock.now.timestamp())
        await add_venues(ctx.engine, clock)
        async with ctx.engine.begin() as conn:  # hours the timekeeper leaves alone during the test
            await plan_session(conn, session_id=ROOM, day=DAY, form=ReceptionForm.ONLINE, kind=ReceptionType.AD_HOC,
                               venues_chosen=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")],
                               opens_at=time(13, 30), closes_at=time(16, 30), actor=ACTOR, grants=ADMIN,
                               clock=clock)
        yield application


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[dict[str, Client]]:
    made: dict[str, Client] = {}
    for username in USERS:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        await sign_in(http, username)
        made[username] = Client(http, page_token((await http.get("/")).text))
    yield made
    for client in made.values():
        await client.http.aclose()


async def test_a_session_goes_from_planned_to_closed_through_the_api(app: FastAPI, clients: dict[str, Client],
                                                                     clock: FakeClock) -> None:
    admin, chair = clients["quantri"], clients["chutri"]
    shown = (await admin.get(f"/api/sessions/{ROOM}")).json()
    assert shown["state"] == {"value": "planned", "label": "Đã lập lịch"} and shown["version"] == 1
    assert (shown["opens_at"], shown["closes_at"]) == ("13:30", "16:30")
    assert shown["actions"] == {"publish": True, "open": False, "start": False, "close": False, "postpone": True,
                                "cancel": True}

    late = await admin.post(f"/api/sessions/{ROOM}/publish", {"expected_version": 1})
    assert late.status_code == 409 and late.json()["error"] == "publish_too_late"
    assert late.json()["working_days_left"] == 0 and late.json()["last_day"] == "2026-12-03"
    assert "Điều 24" in late.json()["message"]
    published = await admin.post(f"/api/sessions/{ROOM}/publish", {"expected_version": 1, "override_reason": LATE})
    assert published.status_code == 200, published.text
    assert published.json()["events"] == ["session.published"] and published.json()["version"] == 2

    clock.set_local(DAY, 7, 40)  # the chair opens early for the roll call
    stale = await chair.post(f"/api/sessions/{ROOM}/open", {"expected_version": 1})
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    assert stale.json()["current_version"] == 2 and "tải lại" in stale.json()["message"]
    opened = await chair.post(f"/api/sessions/{ROOM}/open", {"expected_version": 2})
    assert opened.status_code == 200 and opened.json()["state"]["value"] == "open"
    for action, version, state in (("start", 3, "in_progress"), ("close", 4, "closed")):
        clock.advance(minutes=20)
        answer = await chair.post(f"/api/sessions/{ROOM}/{action}", {"expected_version": version})
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"]["value"] == state
    assert answer.json()["events"] == ["session.closed"]
    final = (await chair.get(f"/api/sessions/{ROOM}")).json()
    assert final["state"]["value"] == "closed" and not any(final["actions"].values()) and final["closed_at"]
    events = await outbox_events(app.state.console.engine)
    publisher = next(e.by for e in events if isinstance(e, SessionPublished))
    opener = next(e.by for e in events if isinstance(e, SessionOpened))
    assert str(publisher).startswith("user:") and str(opener).startswith("user:") and publisher != opener


async def test_refusals_are_json_problems_in_vietnamese(app: FastAPI, clients: dict[str, Client],
                                                        clock: FakeClock) -> None:
    admin, chair, venue_op = clients["quantri"], clients["chutri"], clients["diemcau"]
    assert (await venue_op.post(f"/api/sessions/{ROOM}/open", {"expected_version": 1})).status_code == 403
    assert (await venue_op.get(f"/api/sessions/{ROOM}")).status_code == 403
    assert (await chair.post(f"/api/sessions/{ROOM}/publish", {"expected_version": 1})).status_code == 403
    assert (await admin.post(f"/api/sessions/{ROOM}/start", {"expected_version": 1})).status_code == 403

    unknown = await chair.post("/api/sessions/khong-co-phien/open", {"expected_version": 1})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_session"
    assert "Không có phiên" in unknown.json()["message"]
    assert (await chair.get("/api/sessions/KHONG_HOP_LE")).status_code == 404

    illegal = await chair.post(f"/api/sessions/{ROOM}/start", {"expected_version": 1})
    assert illegal.status_code == 409 and illegal.json()["error"] == "illegal_transition"
    assert (illegal.json()["from_state"], illegal.json()["to_state"]) == ("planned", "in_progress")
    assert "Không thể chuyển phiên" in illegal.json()["message"]

    assert (await chair.post(f"/api/sessions/{ROOM}/open", {})).status_code == 422  # no expected_version
    assert (await chair.post(f"/api/sessions/{ROOM}/open", {"expected_version": 1, "x": 1})).status_code == 422
    bad_reason = await admin.post(f"/api/sessions/{ROOM}/postpone", {"expected_version": 1, "reason": "bận"})
    assert bad_reason.status_code == 422 and bad_reason.json()["error"] == "unknown_reason"
    no_note = await admin.post(f"/api/sessions/{ROOM}/postpone", {"expected_version": 1, "reason": "other"})
    assert no_note.status_code == 422 and no_note.json()["error"] == "missing_reason"

    postponed = await admin.post(f"/api/sessions/{ROOM}/postpone",
                                 {"expected_version": 1, "reason": "chair_unavailable"})
    assert postponed.status_code == 200 and postponed.json()["events"] == ["session.postponed"]
    assert postponed.json()["reason"] == "chair_unavailable"
    cancelled = await admin.post(f"/api/sessions/{ROOM}/cancel", {"expected_version": 2, "reason": "merged"})
    assert cancelled.status_code == 200 and cancelled.json()["state"]["value"] == "cancelled"
    again = await admin.post(f"/api/sessions/{ROOM}/cancel", {"expected_version": 3, "reason": "merged"})
    assert again.status_code == 409 and "trạng thái cuối" in again.json()["message"]
