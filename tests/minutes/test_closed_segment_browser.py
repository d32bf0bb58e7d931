"""A closed segment asked from the minutes, in Chromium against the real server: the secretary's button sends the
live page's request (``closed_segment.request`` on ``/ws``), the chair sees it requested and confirms it as
always; the reschedule-in-person outcome is offered for a denunciation only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from websockets.sync.client import ClientConnection, connect

from complaints.enums import PetitionKind
from signaling.events import CaseCalled

from ..harness import TEST_USERS, LiveServer, run_coroutine
from ..room_console.live_pages import MAIN, VENUE_A
from ._drafts import register_case

pytestmark = pytest.mark.browser

ROOM = "phien-bien-ban-kin"
STATUS = '[data-testid="minutes-cs-status"]'


async def _register(data_dir: Path, kind: PetitionKind) -> str:
    from tiepdan.app import load_keyring
    from tiepdan.db import make_engine
    from tiepdan.settings import Settings

    settings = Settings(data_dir=data_dir, mode="dev")
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            return await register_case(conn, load_keyring(settings), kind=kind)
    finally:
        await engine.dispose()


def _called(server: LiveServer, kind: PetitionKind, call_seq: int) -> str:
    case_id = run_coroutine(_register(server.data_dir, kind))
    server.publish(CaseCalled(session=ROOM, case=case_id, ticket_no=call_seq, venue=VENUE_A[0], call_seq=call_seq,
                              announcement_text=f"Mời công dân có số thứ tự {call_seq}"))
    with server.http_client(TEST_USERS["secretary"]) as (client, _csrf):
        for _ in range(300):
            if client.get(f"/api/minutes/{ROOM}/{case_id}").status_code == 200:
                return case_id
            time.sleep(0.05)
    raise AssertionError("the call opened no draft")


def _until(ws: ClientConnection, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=15))
        if message.get("type") == wanted:
            return dict(message)
    raise AssertionError(f"no {wanted}")


def test_the_secretary_asks_a_closed_segment_from_the_minutes_and_the_chair_confirms(live_server: LiveServer,
                                                                                      browser: Browser) -> None:
    live_server.open_session(ROOM, [MAIN, VENUE_A])
    context = browser.new_context(locale="vi-VN")
    try:
        complaint = _called(live_server, PetitionKind.COMPLAINT, 1)
        denunciation = _called(live_server, PetitionKind.DENUNCIATION, 2)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        live_server.login(page, "secretary")

        page.goto(live_server.url(f"/bien-ban/{ROOM}/{complaint}"))
        offered = page.locator('[data-testid="field-outcome"] option').evaluate_all("os => os.map(o => o.value)")
        assert "reschedule_in_person" not in offered  # a complaint is not rescheduled for a denouncer's sake

        page.goto(live_server.url(f"/bien-ban/{ROOM}/{denunciation}"))
        offered = page.locator('[data-testid="field-outcome"] option').evaluate_all("os => os.map(o => o.value)")
        assert "reschedule_in_person" in offered
        page.select_option('[data-testid="field-outcome"]', "reschedule_in_person")
        assert page.locator('[data-testid="field-outcome"] option:checked').inner_text() == "Hẹn tiếp trực tiếp"
        assert page.input_value('[data-testid="minutes-cs-venue"]') == VENUE_A[0]  # the called venue first

        chair_token = live_server.cli("token", "--role", "chair", "--room", ROOM, "--venue", MAIN[0], "--ttl", "120")
        assert chair_token.returncode == 0, chair_token.stderr
        with connect(live_server.ws_url(ROOM), open_timeout=5,
                     additional_headers={"Authorization": f"Bearer {chair_token.stdout.strip()}"}) as chair:
            chair.send(json.dumps({"type": "join", "protocol": 1, "venue": MAIN[0]}))
            assert _until(chair, "welcome")["room"]["closed_segment"] is None
            page.click('[data-testid="minutes-cs-request"]')
            changed = _until(chair, "closed_segment.changed")
            assert changed["closed_segment"]["state"] == "requested"
            assert changed["closed_segment"]["venue"] == VENUE_A[0]
            page.locator(f'{STATUS}[data-state="requested"]').wait_for(timeout=15_000)
            assert page.inner_text(STATUS) == "Đã gửi đề nghị phiên kín; chờ chủ trì xác nhận."
            chair.send(json.dumps({"type": "closed_segment.start"}))  # the chair confirms, as on the live page
            assert _until(chair, "closed_segment.changed")["closed_segment"]["state"] == "active"
            page.click('[data-testid="minutes-cs-request"]')  # asked again: the page says it is running
            page.locator(f'{STATUS}[data-state="active"]').wait_for(timeout=15_000)
            chair.send(json.dumps({"type": "closed_segment.end"}))
            assert _until(chair, "closed_segment.changed")["closed_segment"] is None
            chair.send(json.dumps({"type": "leave"}))
        assert errors == []
    finally:
        context.close()
        live_server.close_session(ROOM)
