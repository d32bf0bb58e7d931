"""Chromium: the intake form shows a duplicate candidate, with its reasons, before anything is saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.harness import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_intake_form_shows_a_duplicate_candidate_before_saving(live_server: LiveServer, page: Page) -> None:
    clerk = live_server.add_user("tiepnhan-browser", name="Vũ Thị Nhận", roles=["reception"])
    with live_server.http_client(clerk) as (client, csrf):
        seeded = client.post("/api/intake", headers={"x-csrf-token": csrf}, json={
            "petitioner": {"full_name": "Đặng Thị Hồng", "address_detail": "Thôn Nội Duệ, xã Tiên Du"},
            "petition": {"kind": "complaint", "received_on": "2026-01-05",
                         "content": "Khiếu nại việc cấp giấy chứng nhận quyền sử dụng đất chồng lấn"},
            "respondent": {"kind": "organisation", "name": "Văn phòng đăng ký đất đai"},
        })
        assert seeded.status_code == 201, seeded.text
        code = seeded.json()["tracking_code"]
        before = client.get("/api/cases").json()["total"]
    live_server.login(page, clerk)
    page.goto(live_server.url("/intake"))
    page.fill("#full_name", "Dang Thi Hong")
    page.fill("#address", "thôn Nội Duệ, xã Tiên Du")
    page.fill("#content", "Khiếu nại cấp giấy chứng nhận quyền sử dụng đất bị chồng lấn")
    page.fill("#respondent_name", "Văn phòng đăng ký đất đai")
    page.click("[data-testid=check-duplicates]")
    candidate = page.locator("[data-testid=candidate]").first
    candidate.wait_for(timeout=5000)
    assert "Đặng Thị Hồng" in candidate.inner_text() and code in candidate.inner_text()
    reasons = page.locator("[data-testid=reason]").all_inner_texts()
    assert any(r.startswith("Họ tên:") for r in reasons)
    assert page.locator("[data-testid=attach]").count() >= 1
    with live_server.http_client(clerk) as (client, _csrf):
        assert client.get("/api/cases").json()["total"] == before  # nothing saved by the check
