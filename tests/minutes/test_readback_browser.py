"""The read-back on the called venue's live page, in Chromium against the real server: the secretary reads the
minutes back from her page, the venue's page shows them as text (markup stays text, no dialog), the citizen
signs on the canvas (mouse; a finger through touch events), an empty canvas is not sent, "Ký lại" clears it; a
signature for a read-back the secretary has changed since is refused and the page says so, a new read-back
shows the new text on a clean canvas; the stored PNG is the one the page sent, with its SHA-256, and shows the
strokes; the chair approves on his live page and every page shows it approved."""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Request
from sqlalchemy import select

from signaling.events import CaseCalled

from ..harness import TEST_USERS, LiveServer, run_coroutine
from ..room_console.live_pages import MAIN, VENUE_A
from ._drafts import register_case

pytestmark = pytest.mark.browser

ROOM = "phien-doc-lai-bien-ban"
MARKUP = "<img src=x onerror=alert(1)>"
REQUEST = "Công dân đề nghị cấp giấy chứng nhận thửa 112 " + MARKUP
REPORT = "UBND xã báo cáo hồ sơ đang chờ đo đạc <script>alert(2)</script>"
CONCLUSION = "Giao UBND xã Tiên Du kiểm tra, trả lời công dân."
ADDED = " Bổ sung: trả lời bằng văn bản."
PANEL = '[data-testid="readback-panel"]'
STATE = '[data-testid="readback-state"]'
CONTENT = '[data-testid="readback-content"]'
MESSAGE = '[data-testid="readback-message"]'
SIGN = '[data-testid="readback-sign"]'
CANVAS = '[data-testid="readback-canvas"]'
SEND = '[data-testid="readback-send"]'
CLEAR = '[data-readback-action="clear"]'
WAIT_MS = 15_000
POLL_MS = 3_000  # readback.js polls every 3 s: the tests move a page's clock on by that much
# Strokes of a signature, as fractions of the canvas: each a polyline drawn with the pen down.
STROKES = (((0.10, 0.70), (0.25, 0.20), (0.40, 0.75)),
           ((0.50, 0.30), (0.65, 0.75), (0.85, 0.25)),
           ((0.15, 0.88), (0.85, 0.88)))
#: The canvas's ink: how many pixels are not transparent, and whether each point ([x, y] fractions) has ink
#: within 2 px.
INK_JS = """([selector, points]) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const inked = (x, y) => data[(y * canvas.width + x) * 4 + 3] > 0;
  let count = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { count += 1; } }
  const near = points.map(([fx, fy]) => {
    const cx = Math.round(fx * canvas.width), cy = Math.round(fy * canvas.height);
    for (let y = cy - 2; y <= cy + 2; y++) { for (let x = cx - 2; x <= cx + 2; x++) {
      if (x >= 0 && y >= 0 && x < canvas.width && y < canvas.height && inked(x, y)) { return true; } } }
    return false;
  });
  return { count, near };
}"""

#: Keep (base64) the body of the next signature the page sends, as it hands it to ``fetch``.
KEEP_SENT_JS = """() => {
  const send = window.fetch;
  window.fetch = async function (url, options) {
    if (String(url).includes('/signature') && options && options.body instanceof Blob) {
      const bytes = new Uint8Array(await options.body.arrayBuffer());
      window.__sentSignature = btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
    }
    return send.call(this, url, options);
  };
}"""


def _settings(server: LiveServer) -> Any:
    from tiepdan.settings import Settings

    return Settings(data_dir=server.data_dir, mode="dev")


async def _prepare(server: LiveServer, unit: str) -> str:
    """A unit for the directive and a case registered at the desk; the case's id."""
    from complaints.directives import add_unit
    from tiepdan.app import load_keyring
    from tiepdan.db import make_engine

    settings = _settings(server)
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await add_unit(conn, unit, "UBND xã Tiên Du (đọc lại)", track="state")
            return await register_case(conn, load_keyring(settings))
    finally:
        await engine.dispose()


async def _signatures(server: LiveServer, case_id: str) -> list[dict[str, Any]]:
    """The signatures stored for the case's draft in ROOM."""
    from minutes.tables import minutes_drafts, minutes_signatures
    from tiepdan.db import make_engine

    engine = make_engine(_settings(server).resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(minutes_signatures).join(minutes_drafts, minutes_drafts.c.id == minutes_signatures.c.draft_id)
                .where(minutes_drafts.c.session_id == ROOM, minutes_drafts.c.case_id == case_id))).mappings().all()
        return [dict(row) for row in rows]
    finally:
        await engine.dispose()


def _called(server: LiveServer, unit: str) -> str:
    """A case called at VENUE_A in ROOM, its draft saved by the secretary as version 2 with markup in it."""
    case_id = run_coroutine(_prepare(server, unit))
    server.publish(CaseCalled(session=ROOM, case=case_id, ticket_no=1, venue=VENUE_A[0], call_seq=1,
                              announcement_text="Mời công dân có số thứ tự 1"))
    api = f"/api/minutes/{ROOM}/{case_id}"
    with server.http_client(TEST_USERS["secretary"]) as (client, csrf):
        for _ in range(300):
            draft = client.get(api)
            if draft.status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the call opened no draft")
        content = {**draft.json()["content"], "citizen_request": REQUEST, "local_report": REPORT,
                   "conclusion": CONCLUSION, "answer": "directed", "outcome": "assigned_to_unit",
                   "handling_direction": "guide",
                   "directives": [{"unit": unit, "content": "Kiểm tra " + MARKUP, "working_days": 10}]}
        saved = client.put(api, json={"base_version": 1, "client": "tab-thu-ky-api", "content": content},
                           headers={"X-CSRF-Token": csrf})
        assert saved.status_code == 200 and saved.json()["version"] == 2, saved.text
    return case_id


def _approval(client: httpx.Client, case_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/minutes-approval/{ROOM}/{case_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _canvas_points(page: Page) -> list[list[tuple[float, float]]]:
    """STROKES in the page's CSS pixels."""
    box = page.locator(CANVAS).bounding_box()
    assert box is not None
    return [[(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
            for stroke in STROKES]


def _draw_mouse(page: Page) -> None:
    for stroke in _canvas_points(page):
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()


def _draw_touch(context: BrowserContext, page: Page) -> None:
    """The strokes drawn with a finger: touch events (Chromium makes them pointer events of type touch)."""
    cdp = context.new_cdp_session(page)
    try:
        for stroke in _canvas_points(page):
            x, y = stroke[0]
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
            for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
                for step in range(1, 9):
                    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                        {"x": x0 + (x1 - x0) * step / 8, "y": y0 + (y1 - y0) * step / 8}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def _ink(page: Page) -> tuple[int, list[bool]]:
    vertices = [point for stroke in STROKES for point in stroke]
    found = page.evaluate(INK_JS, [CANVAS, vertices])
    return int(found["count"]), [bool(near) for near in found["near"]]


def _state_is(page: Page, text: str) -> None:
    page.wait_for_function("([sel, text]) => document.querySelector(sel).textContent.includes(text)",
                           arg=[STATE, text], timeout=WAIT_MS)


def _read_back(secretary: Page) -> str:
    """The secretary reads the current version back from her page; the read-back's hash."""
    with secretary.expect_response(lambda r: r.url.endswith("/readback")) as answer_info:
        secretary.click('[data-testid="readback-request"]')
    answer = answer_info.value
    assert answer.status == 200, answer.text()
    _state_is(secretary, "Đang đọc lại biên bản cho công dân")
    digest: str = answer.json()["readback_sha256"]
    return digest


def _png_ink(png: bytes) -> tuple[tuple[int, int], list[bool], bool]:
    """The PNG's size, whether each stroke vertex has dark ink within 2 px, and whether the corners are blank."""
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        rgba = image.convert("RGBA")
    width, height = rgba.size

    def dark(x: int, y: int) -> bool:
        pixel = rgba.getpixel((x, y))
        assert isinstance(pixel, tuple)
        red, green, blue, alpha = pixel
        return bool(alpha >= 128 and max(red, green, blue) < 80)

    near = []
    for fx, fy in (point for stroke in STROKES for point in stroke):
        cx, cy = round(fx * width), round(fy * height)
        near.append(any(dark(x, y) for x in range(max(cx - 2, 0), min(cx + 3, width))
                        for y in range(max(cy - 2, 0), min(cy + 3, height))))
    corner = rgba.crop((0, 0, width // 20, height // 10))
    blank = corner.getchannel("A").getextrema() == (0, 0)
    return (width, height), near, blank


def test_the_citizen_signs_the_read_back_on_the_venue_page_and_the_chair_approves(
        live_server: LiveServer, browser: Browser) -> None:
    unit = "ubnd-doc-lai-" + secrets.token_hex(3)
    live_server.open_session(ROOM, [MAIN, VENUE_A])
    contexts: list[BrowserContext] = []
    stack = ExitStack()
    dialogs: list[str] = []
    errors: list[str] = []

    def page_of(who: str, **options: Any) -> tuple[BrowserContext, Page]:
        context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900}, **options)
        contexts.append(context)
        page = context.new_page()

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(f"{who}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: errors.append(f"{who}: {exc}"))
        live_server.login(page, who)
        return context, page

    try:
        case_id = _called(live_server, unit)
        api, _csrf = stack.enter_context(live_server.http_client(TEST_USERS["secretary"]))
        secretary_context, secretary = page_of("secretary")
        secretary_context.clock.install()  # the pages poll every 3 s: the test moves their clocks on
        secretary.goto(live_server.url(f"/bien-ban/{ROOM}/{case_id}"))
        secretary.wait_for_function("(sel) => document.querySelector(sel).textContent.trim() !== ''",
                                    arg='[data-testid="readback-case"]', timeout=WAIT_MS)  # its state is loaded
        venue_context, venue = page_of("venue", has_touch=True)
        venue_context.clock.install()
        venue.goto(live_server.url(f"/phien/{ROOM}"))
        assert venue.locator(PANEL).is_hidden()  # nothing is read back yet

        # 1. The secretary reads back version 2; the venue's page shows it, markup as text.
        digest = _read_back(secretary)
        assert _approval(api, case_id)["readback_sha256"] == digest
        venue_context.clock.fast_forward(POLL_MS)
        venue.locator(SIGN).wait_for(state="visible", timeout=WAIT_MS)
        shown = venue.inner_text(CONTENT)
        for text in (REQUEST, REPORT, CONCLUSION, "Kiểm tra " + MARKUP):
            assert text in shown, (text, shown)
        assert venue.locator(f"{PANEL} img, {PANEL} script").count() == 0
        assert digest[:12] in venue.inner_text('[data-testid="readback-case"]')
        assert "Đang đọc lại biên bản cho công dân" in venue.inner_text(STATE)

        # 2. An empty canvas is not sent; "Ký lại" clears a drawing.
        sent: list[Request] = []
        venue.on("request", lambda request: sent.append(request) if "/signature" in request.url else None)
        venue.click(SEND)
        assert venue.inner_text(MESSAGE) == "Công dân chưa ký vào ô chữ ký."
        _draw_mouse(venue)
        count, near = _ink(venue)
        assert count > 500 and all(near), (count, near)
        venue.click(CLEAR)
        assert _ink(venue)[0] == 0
        venue.evaluate("(sel) => { document.querySelector(sel).textContent = ''; }", MESSAGE)
        venue.click(SEND)
        assert venue.inner_text(MESSAGE) == "Công dân chưa ký vào ô chữ ký."
        assert sent == []

        # 3. The citizen signs with a finger while the secretary saves a correction: the signature names the
        # read-back the citizen saw, and is refused; the page says the minutes changed.
        venue_context.clock.pause_at(int(time.time() * 1000) + 24 * 3600 * 1000)  # no poll until resumed
        _draw_touch(venue_context, venue)
        count, near = _ink(venue)
        assert count > 500 and all(near), (count, near)
        field = '[data-testid="field-conclusion"]'
        secretary.click(field)
        secretary.keyboard.press("End")
        secretary.keyboard.type(ADDED)
        secretary.wait_for_function("(sel) => document.querySelector(sel).dataset.version === '3'",
                                    arg='[data-testid="minutes-ack"]', timeout=WAIT_MS)
        assert venue.locator(SIGN).is_visible()  # the venue's page has not seen the change yet
        with venue.expect_response(lambda r: "/signature" in r.url) as refused_info:
            venue.click(SEND)
        refused = refused_info.value
        assert refused.status == 409 and refused.json()["error"] == "readback_stale"
        assert refused.request.url.endswith(f"/signature?readback={digest}")
        assert [request.url for request in sent] == [refused.request.url]  # the empty canvas sent nothing
        venue.wait_for_function(
            "(sel) => document.querySelector(sel).textContent.includes('Biên bản đã thay đổi sau khi đọc lại')",
            arg=MESSAGE, timeout=WAIT_MS)
        _state_is(venue, "Biên bản đã được sửa sau khi đọc lại: cần đọc lại bản mới.")
        venue.locator(SIGN).wait_for(state="hidden", timeout=WAIT_MS)
        assert run_coroutine(_signatures(live_server, case_id)) == []
        venue_context.clock.resume()

        # The secretary reads the corrected version back: the venue's page shows it, on a clean canvas.
        secretary_context.clock.fast_forward(POLL_MS)
        _state_is(secretary, "Biên bản đã được sửa sau khi đọc lại")
        new_digest = _read_back(secretary)
        assert new_digest != digest and _approval(api, case_id)["readback_sha256"] == new_digest
        assert "Biên bản đã được sửa" not in secretary.inner_text(STATE)
        venue_context.clock.fast_forward(POLL_MS)
        venue.locator(SIGN).wait_for(state="visible", timeout=WAIT_MS)
        assert CONCLUSION + ADDED in venue.inner_text(CONTENT)
        assert new_digest[:12] in venue.inner_text('[data-testid="readback-case"]')
        assert _ink(venue)[0] == 0  # the finger's strokes were for the older read-back
        assert venue.inner_text(MESSAGE) == ""

        # 4. The citizen signs with the mouse; the server keeps the PNG the page sent, with its SHA-256.
        _draw_mouse(venue)
        venue.evaluate(KEEP_SENT_JS)  # Playwright does not give a Blob body of a request: the page keeps it
        with venue.expect_response(lambda r: "/signature" in r.url) as signed_info:
            venue.click(SEND)
        signed = signed_info.value
        assert signed.status == 200, signed.text()
        assert signed.request.headers["content-type"] == "image/png"
        body = base64.b64decode(venue.evaluate("() => window.__sentSignature"))
        assert signed.request.url.endswith(f"/signature?readback={new_digest}")
        _state_is(venue, "Công dân đã xác nhận biên bản; chờ chủ trì phê duyệt. · đã ký trên màn hình")
        venue.locator(SIGN).wait_for(state="hidden", timeout=WAIT_MS)
        state = _approval(api, case_id)
        assert state["state"] == "confirmed" and state["confirmation"] == "signature"
        assert state["confirmed_sha256"] == new_digest
        assert state["signature_sha256"] == hashlib.sha256(body).hexdigest() == signed.json()["signature_sha256"]
        (stored,) = run_coroutine(_signatures(live_server, case_id))
        assert stored["png"] == body and stored["sha256"] == hashlib.sha256(stored["png"]).hexdigest()
        assert stored["readback_sha256"] == new_digest and stored["submitted_by"].startswith("user:")
        assert stored["png"][:8] == b"\x89PNG\r\n\x1a\n" and stored["png"][12:16] == b"IHDR"
        assert int.from_bytes(stored["png"][16:20], "big") == stored["width"] == 600
        assert int.from_bytes(stored["png"][20:24], "big") == stored["height"] == 200
        size, near, blank_corner = _png_ink(stored["png"])
        assert size == (600, 200) and all(near) and blank_corner, (near, blank_corner)

        # 5. The chair approves on his live page; every page shows it approved.
        _, chair = page_of("chair")
        chair.goto(live_server.url(f"/phien/{ROOM}"))
        approve = chair.locator('[data-testid="readback-approve-send"]')
        approve.wait_for(state="visible", timeout=WAIT_MS)
        assert chair.locator(CANVAS).count() == 0  # the chair's page takes no signature
        with chair.expect_response(lambda r: r.url.endswith("/approve")) as approved_info:
            approve.click()
        assert approved_info.value.status == 200, approved_info.value.text()
        approved = "Chủ trì đã phê duyệt; vụ việc được ghi vào cơ sở dữ liệu khi kết thúc tiếp."
        for context in (venue_context, secretary_context):
            context.clock.fast_forward(POLL_MS)
        for page in (chair, venue, secretary):
            _state_is(page, approved)
        state = _approval(api, case_id)
        assert state["state"] == "approved" and state["approved_sha256"] == new_digest
        assert state["approved_by_name"] == TEST_USERS["chair"].name
        assert dialogs == [], dialogs
        assert errors == [], errors
    finally:
        stack.close()
        for context in contexts:
            context.close()
        live_server.close_session(ROOM)

