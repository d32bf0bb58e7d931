"""The chair's «Điểm cầu đã kết nối lại» on the live page (Chromium): a venue the scheduler holds for a lost link
is listed on the queue panel with the button; one click puts it back, the panel says so, the audit log names
the chair."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.harness import LiveServer, _settings, run_coroutine
from tests.room_console.live_pages import MAIN, VENUE_A, VENUE_B, Seat, open_seat

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOM = "phien-ket-noi-lai"


async def _lose(env: dict[str, str], venue: str) -> str:
    """The room server's ``room.venue_link_lost`` as the link watch applies it (its service, on the server's
    database); the outcome."""
    from schedules.link_loss import LinkChange, LinkState
    from schedules.link_watch import LINK_WATCH_ACTOR, record_venue_link
    from signaling.grants import Grant
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.begin() as conn:
            result = await record_venue_link(conn, ROOM, LinkChange(venue=venue, state=LinkState.LOST,
                                                                    at=datetime.now(UTC)),
                                             actor=LINK_WATCH_ACTOR, grants={Grant.CALL_QUEUE},
                                             clock=lambda: datetime.now(UTC))
        return result.outcome.value
    finally:
        await engine.dispose()


async def _venue_link_rows(env: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    from sqlalchemy import select

    from complaints.tables import audit_events
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(audit_events.c.actor, audit_events.c.detail)
                                       .where(audit_events.c.action == "queue.venue_link")
                                       .order_by(audit_events.c.id))).all()
        return [(r[0], dict(r[1])) for r in rows]
    finally:
        await engine.dispose()


@pytest.mark.browser
def test_the_chair_puts_a_venue_back_from_the_queue_panel(live_server: LiveServer, browser: Browser) -> None:
    live_server.open_session(ROOM, [MAIN, VENUE_A, VENUE_B])
    chair = open_seat(Seat, live_server, browser, "chair", ROOM, MAIN[0], viewport=(1440, 1000))
    try:
        assert run_coroutine(_lose(live_server.env, VENUE_A[0])) == "unavailable"
        page = chair.page
        page.evaluate("() => document.getElementById('live').dispatchEvent(new CustomEvent('tiepdan:queue'))")
        row = page.locator(f'[data-testid=queue-unavailable] li[data-venue="{VENUE_A[0]}"]')
        button = row.locator("[data-testid=queue-venue-back]")
        button.wait_for(timeout=10_000)
        assert "Xã Tiên Du: mất kết nối" in row.inner_text()
        assert button.inner_text() == "Điểm cầu đã kết nối lại"
        assert "Xã Tiên Du" in (button.get_attribute("title") or "")
        button.click()
        page.locator("[data-testid=queue-message]",
                     has_text="Đã xác nhận điểm cầu Xã Tiên Du đã kết nối lại.").wait_for(timeout=10_000)
        page.locator("[data-testid=queue-unavailable]").wait_for(state="hidden", timeout=10_000)
        actor, detail = run_coroutine(_venue_link_rows(live_server.env))[-1]
        assert actor.startswith("user:") and (detail["venue"], detail["by"]) == (VENUE_A[0], "chair")
        assert chair.errors == []
    finally:
        chair.context.close()
        live_server.close_session(ROOM)
