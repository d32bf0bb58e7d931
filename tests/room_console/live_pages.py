"""What the live-page browser tests share: the venues and their colours, polling, reading a tile's picture,
and opening a person's page in the live room (:class:`Seat`, :func:`open_seat`).

Used by ``test_live_browser.py`` (the pages and moderation) and ``test_live_media_browser.py`` (layers,
active speaker, loss, reconnect).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tests.harness import LiveServer, TestUser
from tests.room_console.media_sources import colour_distance

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

__all__ = ["MAIN", "VENUE_A", "VENUE_B", "RED", "GREEN", "COLOUR_TOLERANCE", "WAIT_S", "CENTRE_JS",
           "wait_until", "Seat", "open_seat"]

MAIN = ("main", "Trụ sở Tiếp công dân tỉnh")
VENUE_A = ("tien-du", "Xã Tiên Du")
VENUE_B = ("que-vo", "Xã Quế Võ")
RED = (198, 40, 40)
GREEN = (46, 125, 50)
COLOUR_TOLERANCE = 40
WAIT_S = 20.0
S = TypeVar("S", bound="Seat")

#: The centre pixel (RGB) of the ``<video>`` matched by a selector, drawn on a canvas; null before a frame.
CENTRE_JS = """(selector) => {
  const video = document.querySelector(selector);
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(video, 0, 0);
  return Array.from(context.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data.slice(0, 3));
}"""


def wait_until(predicate: Callable[[], Any], *, timeout: float = WAIT_S, interval: float = 0.25,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Seat:
    """One person's page in the live room."""

    venue: str
    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def tile(self, venue: str) -> str:
        return f'article[data-venue="{venue}"]'

    def counters(self) -> dict[str, int]:
        result: dict[str, int] = self.page.evaluate("() => ({...window.tiepdanLive.counters})")
        return result

    def centre(self, selector: str) -> list[int] | None:
        result: list[int] | None = self.page.evaluate(CENTRE_JS, selector)
        return result

    def wait_floor_colour(self, venue: str, colour: tuple[int, int, int]) -> list[int]:
        """Wait until the large (floor) tile of ``venue`` shows ``colour``; its centre pixel."""
        # what a person sees: not a slot still waiting for its new source's first frame
        selector = f'{self.tile(venue)}[data-role="floor"] video:not([data-switching="true"])'

        def shown() -> list[int] | None:
            centre = self.centre(selector)
            return centre if centre is not None and colour_distance(centre, colour) <= COLOUR_TOLERANCE else None

        found: list[int] = wait_until(shown, what=f"{venue}'s colour in the floor tile of {self.venue}'s page")
        return found


def open_seat(seat_type: type[S], server: LiveServer, browser: Browser, who: str | TestUser, room: str,
                       venue: str, *, viewport: tuple[int, int] = (1280, 900), init_script: str | None = None,
                       before_join: Callable[[Page], None] | None = None) -> S:
    """Sign ``who`` in, open the room's page, let ``before_join`` act on it, join, wait until admitted."""
    context = browser.new_context(locale="vi-VN", viewport={"width": viewport[0], "height": viewport[1]})
    if init_script is not None:
        context.add_init_script(script=init_script)
    page = context.new_page()
    seat = seat_type(venue, page, context)
    page.on("pageerror", lambda exc: seat.errors.append(str(exc)))
    try:
        server.login(page, who)
        page.goto(server.url(f"/phien/{room}"))
        page.locator(f'{seat.tile(venue)} video[data-own="true"]').wait_for(state="attached", timeout=10_000)
        if before_join is not None:
            before_join(page)
        page.click("[data-testid=join]")
        page.locator('[data-testid=conn-state][data-state="admitted"]').wait_for(timeout=10_000)
    except BaseException:
        context.close()
        raise
    return seat
