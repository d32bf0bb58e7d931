"""An auditor replays a recorded case in Chromium: a venue's own track (VP8/Opus WebM) plays in its
``<video>``, the "compose" button queues the composite, the page's progress follows the embedded worker
until the composite (H.264/AAC MP4) plays too, and the audit log gains each replay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from complaints.tables import audit_events
from evidence import Keyring
from tests.harness import LiveServer, run_coroutine
from tests.room_console.test_replay_api import insert_segment, record_segment
from tiepdan.db import make_engine

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Resolves once the <video> has played past 0.5 s, from its own events (no polling of the clock).
PLAYS = """async (selector) => {
  const video = document.querySelector(selector);
  video.muted = true;
  await new Promise((resolve, reject) => {
    const check = () => { if (video.currentTime > 0.5) resolve(); };
    video.addEventListener('timeupdate', check);
    video.addEventListener('error', () => reject(new Error('media error ' + (video.error && video.error.code))));
    video.play().catch(reject);
    check();
  });
  return video.currentTime;
}"""


async def _insert(url: str, report: object) -> None:
    engine = make_engine(url)
    try:
        await insert_segment(engine, report)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def _replays(url: str, segment: str) -> list[tuple[str, str, dict[str, object]]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(audit_events.c.action, audit_events.c.actor, audit_events.c.detail)
                                      .where(audit_events.c.target_id == segment,
                                             audit_events.c.action == "replay.segment")
                                      .order_by(audit_events.c.id))
            return [(r[0], r[1], r[2]) for r in rows]
    finally:
        await engine.dispose()


def test_auditor_plays_a_venue_track_and_the_composite_and_the_audit_log_gains_them(
        live_server: LiveServer, page: Page) -> None:
    data_dir = Path(live_server.data_dir)
    url = f"sqlite+aiosqlite:///{(data_dir / 'tiepdan.db').resolve()}"
    keyring = Keyring.load(data_dir / "keys" / "keyring.json")
    segment = f"c1-browser-{datetime.now(UTC):%H%M%S%f}"
    _, report = record_segment(data_dir / "recordings", keyring, segment,
                               venues=[("tinh", (200, 30, 30)), ("xa-b", (30, 30, 200))], seconds=3,
                               session="phien-xem-lai")
    run_coroutine(_insert(url, report))

    live_server.login(page, "auditor")
    page.goto(live_server.url(f"/xem-lai/{segment}"))
    track = '[data-testid="replay-track"][data-file="tinh-1.webm"] video'
    assert page.evaluate(PLAYS, track) > 0.5
    page.wait_for_selector('[data-testid="replay-verify-result"][data-ok="true"]')

    page.click('[data-testid="replay-compose"]')
    page.wait_for_selector('[data-testid="replay-job-state"][data-state="done"]', timeout=180_000)
    assert page.eval_on_selector('[data-testid="replay-progress"]', "p => p.value") == 1
    composite = '[data-testid="replay-composite-video"]'
    page.wait_for_selector(composite, state="visible")
    assert page.evaluate(PLAYS, composite) > 0.5

    # a link of the case timeline (#t=<seconds>) starts the page's players at that moment
    page.goto("about:blank")  # a new load, not a same-document jump to the fragment
    page.goto(live_server.url(f"/xem-lai/{segment}#t=1.5"))
    starts = page.evaluate("""async (selector) => {
      const video = document.querySelector(selector);
      if (video.readyState < 1) await new Promise((resolve) => video.addEventListener('loadedmetadata', resolve));
      await new Promise((resolve) => requestAnimationFrame(resolve));
      return video.currentTime;
    }""", track)
    assert 1.4 <= starts <= 1.6

    rows = run_coroutine(_replays(url, segment))
    kinds = [(detail["kind"], detail["file"]) for _, _, detail in rows]
    assert ("track", "tinh-1.webm") in kinds and ("composite", f"{segment}.mp4") in kinds
    assert all(actor.startswith("user:") for _, actor, _ in rows)
