"""Chromium: from the case page an official edits the case (and is told, without losing what was typed,
when somebody else saved first), records a handling decision and issues a directive whose deadline the
server computes in working days."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import pytest

from tests.harness import LiveServer, run_coroutine

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
TIMEOUT_MS = 10_000


def _add_unit(server: LiveServer, unit_id: str, name: str) -> None:
    """Create a unit in the running server's database (units are configuration data)."""

    async def add() -> None:
        from complaints.directives import add_unit
        from tiepdan.db import make_engine
        from tiepdan.settings import Settings

        values = {k[len("TIEPDAN_"):].lower(): v for k, v in server.env.items() if k.startswith("TIEPDAN_")}
        engine = make_engine(Settings(**values).resolved_database_url)  # type: ignore[arg-type]
        try:
            async with engine.begin() as conn:
                await add_unit(conn, unit_id, name, track="state")
        finally:
            await engine.dispose()

    run_coroutine(add())


def test_edit_decision_and_directive_from_the_case_page(live_server: LiveServer, page: Page,
                                                        artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    suffix = secrets.token_hex(3)
    unit_id, unit_name = f"so-xd-{suffix}", f"Sở Xây dựng ({suffix})"
    _add_unit(live_server, unit_id, unit_name)
    clerk = live_server.add_user(f"tiepnhan-{suffix}", name="Vũ Thị Nhận", roles=["reception"])
    with live_server.http_client(clerk) as (client, csrf):
        created = client.post("/api/intake", headers={"x-csrf-token": csrf}, json={
            "petitioner": {"full_name": "Đinh Văn Lực", "address_detail": "Thôn Hạ, xã Gia Bình"},
            "petition": {"kind": "complaint", "received_on": "2026-01-05",
                         "content": "Khiếu nại việc bồi thường khi thu hồi đất làm đường"},
        })
        assert created.status_code == 201, created.text
        case_id = created.json()["case_id"]

    live_server.login(page, "chair")
    page.goto(live_server.url(f"/cases/{case_id}"))
    page.click("[data-testid=edit-case]")
    expect(page.locator("[data-testid=edit-form]")).to_be_visible(timeout=TIMEOUT_MS)
    page.select_option("#status", "in_handling")
    page.select_option("#subject_area", "land")
    typed = "Khiếu nại mức bồi thường đất nông nghiệp khi làm đường liên xã"
    page.fill("#summary", typed)

    # Meanwhile the reception desk saves another change of the same case.
    with live_server.http_client(clerk) as (client, csrf):
        version = client.get(f"/api/cases/{case_id}").headers["etag"].strip('"')
        other = client.patch(f"/api/cases/{case_id}", headers={"x-csrf-token": csrf, "if-match": f'"{version}"'},
                             json={"status": "accepted"})
        assert other.status_code == 200, other.text

    page.click("[data-testid=save-case]")
    conflict = page.locator("[data-testid=conflict]")
    expect(conflict).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=form-errors]")).to_contain_text("vừa được người khác cập nhật")
    expect(conflict).to_contain_text("Đã thụ lý")  # their value, beside ours
    expect(page.locator("#summary")).to_have_value(typed)  # nothing typed is lost
    expect(page.locator("#status")).to_have_value("in_handling")
    page.screenshot(path=str(artifacts_dir / "case-edit-conflict.png"), full_page=True)
    page.click("[data-testid=save-case]")
    expect(page.locator("[data-testid=saved]")).to_have_text("Đã lưu thay đổi của vụ việc.", timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=case-status]")).to_have_text("Đang xử lý đơn")
    expect(page.locator("[data-testid=case-subject-area]")).to_have_text("Đất đai")
    expect(page.locator("[data-testid=case-summary]")).to_have_text(typed)

    page.click("[data-testid=new-decision]")
    expect(page.locator("[data-testid=decision-form]")).to_be_visible(timeout=TIMEOUT_MS)
    page.select_option("#direction", "forward")
    page.fill("#notes", "Không thuộc thẩm quyền giải quyết của tỉnh")
    page.click("[data-testid=save-decision]")
    expect(page.locator("[data-testid=form-errors]")).to_contain_text("Chuyển đơn phải ghi cơ quan nhận đơn.",
                                                                       timeout=TIMEOUT_MS)
    expect(page.locator("#notes")).to_have_value("Không thuộc thẩm quyền giải quyết của tỉnh")
    page.fill("#forwarded_to", "Sở Nông nghiệp và Môi trường")
    page.click("[data-testid=save-decision]")
    expect(page.locator("[data-testid=saved]")).to_have_text("Đã ghi hướng xử lý đơn.", timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=decisions]")).to_contain_text("Chuyển đơn — Sở Nông nghiệp và Môi trường")

    page.click("[data-testid=new-directive]")
    expect(page.locator("[data-testid=directive-form]")).to_be_visible(timeout=TIMEOUT_MS)
    page.select_option("#unit_id", unit_id)
    page.fill("#content", "Kiểm tra, xác minh và trả lời công dân bằng văn bản")
    page.check("[data-testid=mode-working-days]")
    page.fill("#working_days", "10")
    page.click("[data-testid=preview-deadline]")
    preview = page.locator("[data-testid=deadline-preview]")
    expect(preview).to_be_visible(timeout=TIMEOUT_MS)
    found = re.search(r"\d{2}/\d{2}/\d{4}", preview.inner_text())
    assert found is not None
    deadline = found.group(0)
    page.screenshot(path=str(artifacts_dir / "case-directive-preview.png"), full_page=True)
    expect(page.locator("#content")).to_have_value("Kiểm tra, xác minh và trả lời công dân bằng văn bản")
    page.click("[data-testid=save-directive]")
    expect(page.locator("[data-testid=saved]")).to_have_text("Đã giao ý kiến chỉ đạo.", timeout=TIMEOUT_MS)
    row = page.locator("[data-testid=directives] tbody tr").first
    expect(row).to_contain_text(unit_name)
    expect(row).to_contain_text(deadline)
    page.screenshot(path=str(artifacts_dir / "case-edit-done.png"), full_page=True)
