"""The console in a real ``tiepdan serve`` process (the shared ``live_server`` of the harness)."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.harness import LiveServer

pytestmark = pytest.mark.integration


def test_cli_disable_in_another_process_ends_the_running_servers_session(live_server: LiveServer) -> None:
    user = live_server.add_user("tam-thoi", name="Cán bộ Tạm Thời", roles=["secretary"])
    with live_server.http_client(user) as (client, _):
        assert client.get("/api/me").json()["username"] == "tam-thoi"
        result = subprocess.run([sys.executable, "-m", "tiepdan.cli", "user", "disable", "tam-thoi"],
                                env=live_server.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert client.get("/api/me").status_code == 401


def test_invitation_token_and_passwords_never_reach_the_server_log(live_server: LiveServer) -> None:
    with live_server.http_client("admin") as (admin, csrf):
        page = admin.post("/admin/invitations", data={"username": "diemcau-lim", "display_name": "Ngô Văn Lim",
                                                      "venue": "lim", "csrf_token": csrf})
    found = re.search(r'/invite/([\w-]+)" data-testid="invite-link"', page.text)
    assert found is not None
    token = found.group(1)
    with httpx.Client(base_url=live_server.base_url) as operator:
        form = operator.get(f"/invite/{token}")
        field = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert field is not None
        secret = "mat-khau-rieng-cua-lim"
        done = operator.post(f"/invite/{token}", data={"password": secret, "password_again": secret,
                                                        "csrf_token": field.group(1)})
        assert done.status_code == 303
        assert operator.get(f"/invite/{token}").status_code == 410
    log = live_server.log_text()
    assert "/invite/[redacted]" in log
    for leaked in (token, secret, live_server.users["admin"].password, "Ngô Văn Lim"):
        assert leaked not in log
