"""No lost keystroke, in Chromium against the real server: the secretary types into the minutes, the page
autosaves and shows each acknowledgement; the server is killed (SIGKILL) mid-edit and started again on the
same data; the reloaded page holds every character up to the last acknowledged autosave."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from signaling.events import CaseCalled

from ..harness import TEST_USERS, LiveServer, run_coroutine, start_server
from ..room_console._live_sessions import open_live_session
from ._drafts import SESSION, VENUE, register_case

pytestmark = pytest.mark.browser

FIELD = '[data-testid="field-discussion"]'
CONTROL = ("--role", "control")
ACK = '[data-testid="minutes-ack"]'
FIRST = "Công dân trình bày: thửa đất 112 bị thu hồi, chưa được bồi thường. "
SECOND = "UBND xã Tiên Du báo cáo đã lập phương án bồi thường, đang trình huyện phê duyệt; ý kiến trao đổi thêm."


async def _register(data_dir: Path) -> str:
    from tiepdan.app import load_keyring
    from tiepdan.db import make_engine
    from tiepdan.settings import Settings

    settings = Settings(data_dir=data_dir, mode="dev")
    engine = make_engine(settings.resolved_database_url)
    try:
        # the session the call comes from, as the scheduler holds it (the minutes record its kind)
        await open_live_session(engine, SESSION, [("main", "Trụ sở Tiếp công dân tỉnh"), (VENUE, "Xã Tiên Du")])
        async with engine.begin() as conn:
            return await register_case(conn, load_keyring(settings))
    finally:
        await engine.dispose()


def _api(server: LiveServer, *paths: str) -> list[Any]:
    with server.http_client(TEST_USERS["secretary"]) as (client, _csrf):
        responses = [client.get(path) for path in paths]
    for response in responses:
        assert response.status_code == 200, response.text
    return [response.json() for response in responses]


def _wait_draft(server: LiveServer, url: str) -> None:
    with server.http_client(TEST_USERS["secretary"]) as (client, _csrf):
        for _ in range(300):
            if client.get(url).status_code == 200:
                return
            time.sleep(0.05)
    raise AssertionError("the call opened no draft")


def _acked(page: Page) -> int:
    return int(page.get_attribute(ACK, "data-version") or 0)


def _settled(page: Page, key: str) -> None:
    """Wait until the page has nothing unsent: its last save is acknowledged on screen."""
    page.wait_for_function(
        "([ack, key]) => !localStorage.getItem(key) && document.querySelector(ack).textContent.startsWith('Đã lưu')",
        arg=[ACK, key], timeout=15_000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[list[LiveServer]]:
    # the control role: console, scheduler and minutes, without the media stack this test does not use
    started = [start_server(tmp_path / "data", users=[TEST_USERS["secretary"]], args=CONTROL)]
    yield started
    for each in started:
        each.stop()


def test_sigkill_mid_edit_loses_nothing_acknowledged(server: list[LiveServer], browser: Browser) -> None:
    first = server[0]
    case_id = run_coroutine(_register(first.data_dir))
    first.publish(CaseCalled(session=SESSION, case=case_id, ticket_no=1, venue=VENUE, call_seq=1,
                             announcement_text="Mời công dân có số thứ tự 1"))
    api = f"/api/minutes/{SESSION}/{case_id}"
    _wait_draft(first, api)
    key = f"minutes-pending:{SESSION}/{case_id}"

    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    first.login(page, "secretary")
    page.goto(first.url(f"/bien-ban/{SESSION}/{case_id}"))
    assert page.get_attribute(ACK, "data-version") == "1"
    page.click(FIELD)
    page.keyboard.press("End")
    page.keyboard.type(FIRST, delay=15)
    _settled(page, key)
    settled_version = _acked(page)
    assert settled_version >= 2
    assert (page.text_content(ACK) or "").startswith(f"Đã lưu phiên bản {settled_version} lúc ")
    # Typing on without a pause: the page still saves every two seconds; the server dies in the middle.
    page.keyboard.type(SECOND, delay=40)
    acked = _acked(page)
    typed = page.input_value(FIELD)
    pending = page.evaluate("(key) => localStorage.getItem(key)", key)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    assert acked > settled_version  # an autosave landed while typing
    assert typed.endswith(FIRST + SECOND)
    if pending is not None:  # what was not acknowledged is kept on this machine
        assert json.loads(pending)["content"]["discussion"] == typed
    context.close()

    again = start_server(first.data_dir, users=[], args=CONTROL)
    server.append(again)
    again.users["secretary"] = TEST_USERS["secretary"]
    (version,) = _api(again, f"{api}/versions/{acked}")
    acked_text = version["content"]["discussion"]
    assert FIRST in acked_text and typed.startswith(acked_text)
    fresh = browser.new_context(locale="vi-VN")  # nothing local: only the server's copy
    try:
        page = fresh.new_page()
        again.login(page, "secretary")
        page.goto(again.url(f"/bien-ban/{SESSION}/{case_id}"))
        resumed = page.input_value(FIELD)
        assert resumed.startswith(acked_text), (resumed, acked_text)
        assert _acked(page) >= acked
        # and the page goes on saving on the restarted server
        page.click(FIELD)
        page.keyboard.press("End")
        page.keyboard.type(" Kết thúc.", delay=10)
        _settled(page, key)
        assert _api(again, api)[0]["content"]["discussion"] == resumed + " Kết thúc."
    finally:
        fresh.close()
    assert httpx.get(again.url("/healthz"), timeout=5).status_code == 200


def test_two_pages_on_one_case_get_a_conflict_banner_never_an_overwrite(live_server: LiveServer,
                                                                        browser: Browser) -> None:
    case_id = run_coroutine(_register(live_server.data_dir))
    live_server.publish(CaseCalled(session=SESSION, case=case_id, ticket_no=2, venue=VENUE, call_seq=1,
                                   announcement_text="Mời công dân có số thứ tự 2"))
    api = f"/api/minutes/{SESSION}/{case_id}"
    _wait_draft(live_server, api)
    key = f"minutes-pending:{SESSION}/{case_id}"
    markup = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    contexts = [browser.new_context(locale="vi-VN") for _ in range(2)]
    try:
        secretary, chair = (c.new_page() for c in contexts)
        live_server.login(secretary, "secretary")
        live_server.login(chair, "chair")
        for page in (secretary, chair):
            page.goto(live_server.url(f"/bien-ban/{SESSION}/{case_id}"))
        secretary.fill(FIELD, "Bản của thư ký " + markup)
        _settled(secretary, key)
        assert _acked(secretary) == 2
        chair.fill(FIELD, "Bản của chủ trì")  # still based on version 1
        banner = chair.locator('[data-testid="minutes-conflict"]')
        banner.wait_for(state="visible", timeout=15_000)
        assert "Lê Thị Thư đã lưu phiên bản 2" in banner.inner_text()
        chair.click('[data-testid="conflict-show"]')
        assert "Bản của thư ký " + markup in chair.inner_text('[data-testid="conflict-other"]')
        assert _api(live_server, api)[0]["content"]["discussion"] == "Bản của thư ký " + markup  # no overwrite
        chair.click('[data-testid="conflict-keep"]')  # a deliberate overwrite, after seeing the other
        chair.wait_for_function("(ack) => document.querySelector(ack).dataset.version === '3'", arg=ACK)
        secretary.fill(FIELD, "Bản của thư ký, sửa tiếp")
        secretary.locator('[data-testid="minutes-conflict"]').wait_for(state="visible", timeout=15_000)
        secretary.click('[data-testid="conflict-take"]')
        assert secretary.input_value(FIELD) == "Bản của chủ trì" and _acked(secretary) == 3
        secretary.reload()
        assert secretary.input_value(FIELD) == "Bản của chủ trì"
        assert secretary.evaluate("() => window.__pwned === undefined")
        versions = _api(live_server, f"{api}/versions")[0]["versions"]
        assert [(v["version"], v["saved_by_name"]) for v in versions] == [
            (3, "Trần Văn Chủ"), (2, "Lê Thị Thư"), (1, "service:minutes")]
        (two,) = _api(live_server, f"{api}/versions/2")
        assert two["content"]["discussion"] == "Bản của thư ký " + markup
    finally:
        for context in contexts:
            context.close()
