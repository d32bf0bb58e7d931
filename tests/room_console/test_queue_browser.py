"""Calling cases from the chair's page, in real Chromium browsers against the real server: the chair presses
"Gọi số tiếp theo", the called venue's page shows the number and plays the announcement, the large video
switches to the called venue; "Kết thúc vụ việc" gives the floor back to the main venue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from tests.harness import LiveServer, _settings, run_coroutine
from tests.room_console.live_pages import MAIN, RED, VENUE_A, VENUE_B, Seat, open_seat, wait_until
from tests.room_console.media_sources import write_capture_file

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOM = "phien-goi-so"

_AUDIO_PLAYED_JS = """() => {
  const audio = document.querySelector('[data-testid="call-audio"]');
  if (!audio || !audio.src) return null;
  return { src: audio.src, time: audio.currentTime, played: audio.played.length, paused: audio.paused };
}"""


async def _issue_ticket(env: dict[str, str], room: str, venue: str) -> int:
    """A case and its queue ticket at ``venue``, through the scheduler's service (as the desk would)."""
    from complaints.cases import create_case
    from complaints.enums import PetitionKind
    from schedules import issue_ticket
    from signaling.grants import ROLE_GRANTS, Role
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.begin() as conn:
            case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất đai",
                                     now=datetime.now(UTC))
            issued = await issue_ticket(conn, room, venue=venue, case=case.id, actor="user:ban-tiep-dan",
                                        grants=frozenset(ROLE_GRANTS[Role.RECEPTION]),
                                        clock=lambda: datetime.now(UTC))
        return issued.ticket_no
    finally:
        await engine.dispose()


@pytest.fixture
def queue_room(live_server: LiveServer, browser: Browser, launch_browser: Callable[..., Browser],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seat, Seat, int]]:
    live_server.open_session(ROOM, [MAIN, VENUE_A, VENUE_B])
    ticket_no = run_coroutine(_issue_ticket(live_server.env, ROOM, VENUE_A[0]))
    source_a = write_capture_file(tmp_path_factory.mktemp("capture-queue"), "tien-du", "Tiên Du", RED)
    browser_a = launch_browser(fake_video=source_a.path)
    seats: list[Seat] = []
    try:
        seats.append(open_seat(Seat, live_server, browser, "chair", ROOM, MAIN[0], viewport=(1440, 1000)))
        seats.append(open_seat(Seat, live_server, browser_a, "venue", ROOM, VENUE_A[0], viewport=(1440, 1000)))
        yield seats[0], seats[1], ticket_no
    finally:
        for seat in seats:
            seat.context.close()
        browser_a.close()
        live_server.close_session(ROOM)


@pytest.mark.browser
def test_the_chair_calls_the_next_number_and_the_venue_hears_it_then_ends_the_case(
        queue_room: tuple[Seat, Seat, int]) -> None:
    chair, venue, ticket_no = queue_room
    panel = chair.page.locator("[data-testid=queue-panel]")
    panel.locator("[data-testid=queue-waiting-count]", has_text="1").wait_for(timeout=10_000)
    first = panel.locator("[data-testid=queue-next] li").first.inner_text()
    assert first == f"Công dân số {ticket_no} — điểm cầu Xã Tiên Du"
    assert panel.locator("[data-testid=queue-end]").is_disabled()
    assert venue.page.locator("[data-testid=queue-panel]").count() == 0  # a venue has no queue controls

    chair.page.click("[data-testid=queue-call-next]")
    panel.locator("[data-testid=queue-current]", has_text=f"Công dân số {ticket_no}").wait_for(timeout=10_000)
    for seat in (chair, venue):  # every page shows the number
        seat.page.locator("[data-testid=call-ticket]", has_text=f"Công dân số {ticket_no}").wait_for(timeout=10_000)
    played = wait_until(lambda: (lambda a: a if a and (a["time"] > 0 or a["played"] > 0) else None)(
        venue.page.evaluate(_AUDIO_PLAYED_JS)), what="the announcement playing on the venue's page")
    assert "/api/announcements/" in played["src"] and played["src"].endswith(".wav")
    assert venue.counters().get("chimes", 0) >= 1  # the chime came first
    assert chair.page.evaluate(_AUDIO_PLAYED_JS) is None  # only the called venue plays it
    chair.wait_floor_colour(VENUE_A[0], RED)  # the large video is the called venue's

    assert panel.locator("[data-testid=queue-call-next]").is_disabled()
    chair.page.evaluate("() => { window.TiepdanQueue.state.queue.version -= 1; }")  # as if another page acted
    chair.page.click("[data-testid=queue-end]")
    panel.locator("[data-testid=queue-message]", has_text="Hàng đợi vừa được người khác thay đổi").wait_for(
        timeout=10_000)
    assert venue.page.locator("[data-testid=call-banner]").is_visible()  # nothing ended
    wait_until(lambda: not panel.locator("[data-testid=queue-end]").is_disabled(), what="the reloaded queue")
    chair.page.click("[data-testid=queue-end]")
    chair.page.locator(f'{chair.tile(MAIN[0])}[data-role="floor"]').wait_for(timeout=10_000)
    venue.page.locator(f'{venue.tile(MAIN[0])}[data-role="floor"]').wait_for(timeout=10_000)
    venue.page.locator("[data-testid=call-banner]").wait_for(state="hidden", timeout=10_000)
    panel.locator("[data-testid=queue-current]", has_text="Chưa gọi số nào").wait_for(timeout=10_000)
    assert panel.locator("[data-testid=queue-call-next]").is_disabled()  # nobody waits any more
    for seat in (chair, venue):
        assert seat.errors == [], seat.errors
