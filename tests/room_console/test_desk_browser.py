"""Chromium: the desk page shows what a scanned chip ID card says, registers the citizen and prints the
slip with the number and the tracking code's QR (no inline script: the page's CSP holds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.harness import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ID_NUMBER, NAME = "027050123456", "Nguyễn Văn Thọ"
QR = f"{ID_NUMBER}||{NAME}|15031950|Nam|Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh|15082021"


def test_desk_scans_a_chip_card_registers_and_prints_the_slip(live_server: LiveServer, page: Page) -> None:
    done = live_server.cli("session", "open", "phien-ban-tiep-nhan", "--venue=tru-so-tinh=Trụ sở tỉnh",
                           "--venue=xa-tien-du=Xã Tiên Du")
    assert done.returncode == 0, done.stderr
    clerk = live_server.add_user("bantiepnhan-browser", name="Vũ Thị Nhận", roles=["reception"])
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    live_server.login(page, clerk)
    page.goto(live_server.url("/ban-tiep-nhan"))
    page.select_option("#venue", "xa-tien-du")
    page.click("#chip_qr")
    page.keyboard.type("rác")
    assert page.locator("#chip_error").is_visible()
    page.fill("#chip_qr", "")
    page.keyboard.type(QR)
    page.keyboard.press("Enter")  # the scanner's line ending does not submit the form
    preview = page.locator("[data-testid=chip-preview]")
    preview.wait_for(state="visible", timeout=5000)
    assert NAME in preview.inner_text() and "15/03/1950" in preview.inner_text()
    assert ID_NUMBER not in preview.inner_text()
    assert page.url.endswith("/ban-tiep-nhan")
    page.fill("#content", "Khiếu nại việc thu hồi đất nông nghiệp")
    page.click("[data-testid=desk-save]")
    page.wait_for_url("**/ban-tiep-nhan/phieu/*", timeout=10000)
    assert page.locator("[data-testid=slip-number]").inner_text() == "1"
    assert page.locator("[data-testid=slip-qr] svg").count() == 1
    assert "Người cao tuổi" in page.content()
    assert NAME not in page.content() and ID_NUMBER not in page.content()
    page.emulate_media(media="print")
    assert not page.locator(".slip__actions").is_visible()
    assert not [e for e in errors if "Content Security Policy" in e], errors
