"""Calling cases from the chair's page, in real Chromium browsers against the real server: "Gọi số tiếp theo"
is refused until the chair takes the roll call from the page; the venue runs its readiness check (figures
measured by Chromium) and the chair's table shows it ready; the chair presses "Gọi số tiếp theo", the called
venue's page shows the number and plays the announcement, the large video
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
    from playwright.sync_api import Browser, Page

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


_BOARD_AUDIO_JS = _AUDIO_PLAYED_JS.replace("call-audio", "board-audio")
_NO_SCROLL_JS = """() => document.documentElement.scrollHeight <= window.innerHeight
  && document.documentElement.scrollWidth <= window.innerWidth"""


@pytest.fixture
def queue_board(queue_room: tuple[Seat, Seat, int], live_server: LiveServer, browser: Browser) -> Iterator[Page]:
    """The queue board of the called venue (Tiên Du) at 1920×1080, signed in as its display account."""
    display = live_server.add_user("hienthi-tien-du", name="Màn hình xã Tiên Du", roles=["display"],
                                   venue=VENUE_A[0])
    context = browser.new_context(locale="vi-VN", viewport={"width": 1920, "height": 1080})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        live_server.login(page, display)
        page.goto(live_server.url(f"/bang-so/{ROOM}/{VENUE_A[0]}"))
        page.locator('[data-testid=board-conn][data-state="live"]').wait_for(timeout=10_000)
        page.locator("[data-testid=board-waiting]", has_text="1").wait_for(timeout=10_000)
        yield page
        assert errors == [], errors
    finally:
        context.close()


def take_roll_call(chair: Seat) -> None:
    """The chair takes the roll call from the page's panel: every venue present, the officials named."""
    roll_call = chair.page.locator("[data-testid=rollcall-panel]")
    roll_call.locator('[data-testid=rollcall-status]', has_text="Chưa điểm danh").wait_for(timeout=10_000)
    for venue_id, _ in (MAIN, VENUE_A, VENUE_B):
        fieldset = roll_call.locator(f'fieldset[data-venue="{venue_id}"]')
        fieldset.locator("[data-testid=rollcall-present]").check()
        official = "Nguyễn Văn An, Bí thư Tỉnh ủy" if venue_id == MAIN[0] else "Trần Văn Bình, Chủ tịch UBND xã"
        fieldset.locator("[data-testid=rollcall-officials]").fill(official)
    roll_call.locator(f'fieldset[data-venue="{VENUE_A[0]}"] [data-testid=rollcall-citizens]').fill("2")
    roll_call.locator("[data-testid=rollcall-save]").click()
    roll_call.locator("[data-testid=rollcall-status]", has_text="Đã điểm danh lần 1").wait_for(timeout=10_000)
    assert roll_call.get_attribute("data-state") == "recorded"


def check_readiness(venue: Seat, chair: Seat) -> None:
    """The venue runs the readiness check in Chromium; it posts plausible figures; the chair's table shows it."""
    wait_until(lambda: venue.page.evaluate(
        "() => { const pc = window.tiepdanLive.publisherPc; return !!pc && pc.connectionState === 'connected'; }"),
        what="the venue publishing")
    venue.page.click("[data-testid=readiness-run]")
    posted = wait_until(lambda: venue.page.evaluate("() => window.TiepdanRollCall.readiness.last"),
                        what="the readiness check posted")
    assert posted["rtt_source"]["value"] == "media" and 0 <= posted["rtt_ms"] < 200, posted  # loopback
    assert 100 <= posted["outgoing_kbps"] <= 100_000  # the publishing connection's estimate, kbit/s
    assert posted["turn"]["value"] == "not_configured" and posted["camera"] and posted["microphone"]
    # the estimate starts at Chromium's start bitrate and climbs: only it may hold the verdict back
    assert {p["value"] for p in posted["problems"]} <= {"bandwidth_low"}
    status = posted["status"]
    shown = "Điểm cầu sẵn sàng" if status == "ready" else "Điểm cầu chưa sẵn sàng"
    venue.page.locator("[data-testid=readiness-result]", has_text=shown).wait_for(timeout=10_000)
    probes = venue.page.evaluate("""async () => {
      const R = window.TiepdanRollCall, t0 = performance.now();
      return { ping: await R.signallingRtt(window.tiepdanLive.ws), none: await R.turnReachability([]),
               refused: await R.turnReachability([{ urls: ['turn:127.0.0.1:9?transport=tcp'], username: 'u',
                                                   credential: 'p' }]), ms: performance.now() - t0 };
    }""")
    assert 0 <= probes["ping"] < 1000, probes  # the signalling round trip, used before the venue publishes
    assert (probes["none"], probes["refused"]) == ("not_configured", "unreachable"), probes
    chair.page.click("[data-testid=readiness-reload]")
    row = chair.page.locator(f'[data-testid=readiness-table] tr[data-venue="{VENUE_A[0]}"]')
    row.and_(chair.page.locator(f'[data-status="{status}"]')).wait_for(timeout=10_000)
    assert " ms (đường truyền hình ảnh)" in row.inner_text() and f'{posted["outgoing_kbps"]} kbit/s' in row.inner_text()
    assert chair.page.locator(f'[data-testid=readiness-table] tr[data-venue="{VENUE_B[0]}"]').get_attribute(
        "data-status") == "not_checked"


@pytest.mark.browser
def test_the_chair_calls_the_next_number_and_the_venue_hears_it_then_ends_the_case(
        queue_room: tuple[Seat, Seat, int], queue_board: Page) -> None:
    chair, venue, ticket_no = queue_room
    board = queue_board
    assert board.locator("[data-testid=board-next] li").first.inner_text().startswith(f"{ticket_no}\nXã Tiên Du")
    assert board.locator("[data-testid=board-estimate]").inner_text().startswith("Chưa đủ dữ liệu")
    panel = chair.page.locator("[data-testid=queue-panel]")
    panel.locator("[data-testid=queue-waiting-count]", has_text="1").wait_for(timeout=10_000)
    first = panel.locator("[data-testid=queue-next] li").first.inner_text()
    assert first == f"Công dân số {ticket_no} — điểm cầu Xã Tiên Du"
    assert panel.locator("[data-testid=queue-end]").is_disabled()
    assert venue.page.locator("[data-testid=queue-panel]").count() == 0  # a venue has no queue controls
    assert venue.page.locator("[data-testid=dossier-panel]").count() == 0  # nor the case dossier
    assert venue.page.locator("[data-testid=rollcall-panel]").count() == 0  # nor the roll call

    chair.page.click("[data-testid=queue-call-next]")  # refused: nobody has taken the roll call yet
    panel.locator("[data-testid=queue-message]", has_text="hãy điểm danh trước khi gọi").wait_for(timeout=10_000)
    take_roll_call(chair)
    check_readiness(venue, chair)

    chair.page.click("[data-testid=queue-call-next]")
    panel.locator("[data-testid=queue-current]", has_text=f"Công dân số {ticket_no}").wait_for(timeout=10_000)
    dossier = chair.page.locator("[data-testid=dossier-panel]")  # the called case's dossier beside the video
    dossier.locator("[data-testid=dossier-nth]", has_text="Lần tiếp thứ 1").wait_for(timeout=10_000)
    assert "Khiếu nại" in dossier.inner_text() and dossier.get_attribute("data-refusal") == "none"
    for seat in (chair, venue):  # every page shows the number
        seat.page.locator("[data-testid=call-ticket]", has_text=f"Công dân số {ticket_no}").wait_for(timeout=10_000)
    played = wait_until(lambda: (lambda a: a if a and (a["time"] > 0 or a["played"] > 0) else None)(
        venue.page.evaluate(_AUDIO_PLAYED_JS)), what="the announcement playing on the venue's page")
    assert "/api/announcements/" in played["src"] and played["src"].endswith(".wav")
    assert venue.counters().get("chimes", 0) >= 1  # the chime came first
    assert chair.page.evaluate(_AUDIO_PLAYED_JS) is None  # only the called venue plays it
    chair.wait_floor_colour(VENUE_A[0], RED)  # the large video is the called venue's
    # the queue board of the called venue shows the number in large digits and plays the announcement too
    board.locator("[data-testid=board-current-number]", has_text=str(ticket_no)).wait_for(timeout=10_000)
    assert board.locator("[data-testid=board-current-venue]").inner_text() == "tại điểm cầu Xã Tiên Du"
    assert wait_until(lambda: (lambda a: a if a and (a["time"] > 0 or a["played"] > 0) else None)(
        board.evaluate(_BOARD_AUDIO_JS)), what="the announcement playing on the board")["src"] == played["src"]
    assert board.evaluate(_NO_SCROLL_JS)  # 1920×1080, nothing to scroll

    assert panel.locator("[data-testid=queue-call-next]").is_disabled()
    # as if another page acted: the version made stale and the button clicked in one task of the page, so
    # that the panel's own reload (every 5 s, or on a room event) cannot bring the version back in between
    chair.page.evaluate("() => { window.TiepdanQueue.state.queue.version -= 1;"
                        " document.querySelector('[data-testid=queue-end]').click(); }")
    panel.locator("[data-testid=queue-message]", has_text="Hàng đợi vừa được người khác thay đổi").wait_for(
        timeout=10_000)
    assert venue.page.locator("[data-testid=call-banner]").is_visible()  # nothing ended
    wait_until(lambda: not panel.locator("[data-testid=queue-end]").is_disabled(), what="the reloaded queue")
    chair.page.click("[data-testid=queue-end]")
    chair.page.locator(f'{chair.tile(MAIN[0])}[data-role="floor"]').wait_for(timeout=10_000)
    venue.page.locator(f'{venue.tile(MAIN[0])}[data-role="floor"]').wait_for(timeout=10_000)
    venue.page.locator("[data-testid=call-banner]").wait_for(state="hidden", timeout=10_000)
    panel.locator("[data-testid=queue-current]", has_text="Chưa gọi số nào").wait_for(timeout=10_000)
    dossier.locator("[data-testid=dossier-message]", has_text="Chưa có vụ việc nào").wait_for(timeout=10_000)
    assert panel.locator("[data-testid=queue-call-next]").is_disabled()  # nobody waits any more
    board.locator("[data-testid=board-estimate]", has_text="1 vụ việc đã tiếp xong").wait_for(timeout=10_000)
    assert board.locator("[data-testid=board-current-number]").inner_text() == "—"
    for seat in (chair, venue):
        assert seat.errors == [], seat.errors
