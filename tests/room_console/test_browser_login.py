"""Chromium signs in through the real login form of a real server and renders the dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.harness import LiveServer

pytestmark = pytest.mark.browser


def test_chromium_signs_in_through_the_form_and_sees_the_vietnamese_dashboard(
    live_server: LiveServer, page: Page, artifacts_dir: Path,
) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(live_server.url("/admin/users"))
    assert page.url.endswith("/login?next=/admin/users")
    assert page.locator("h1").inner_text() == "Đăng nhập"

    admin = live_server.users["admin"]
    page.fill("#username", admin.username)
    page.fill("#password", admin.password)
    with page.expect_navigation():
        page.click("button[type=submit]")

    assert page.url == live_server.url("/admin/users")
    page.click("nav >> text=Tổng quan")
    assert page.locator("h1").inner_text() == "Tổng quan"
    assert page.get_by_test_id("user-name").inner_text() == admin.name
    assert page.get_by_test_id("user-roles").inner_text() == "Quản trị hệ thống"
    assert "Quản lý tài khoản, điểm cầu và cấu hình hệ thống" in page.get_by_test_id("grant-list").inner_text()
    # The stylesheet loaded under the CSP (no inline styles or scripts were needed).
    assert page.eval_on_selector("body", "el => getComputedStyle(el).display") == "flex"
    page.screenshot(path=str(artifacts_dir / "console-home.png"), full_page=True)
    assert errors == []
