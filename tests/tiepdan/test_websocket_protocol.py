"""A refused ``/ws`` handshake writes one INFO line with its code, and no ERROR (an anonymous client
must not be able to flood the error alerts): a real ``tiepdan serve`` and its log."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.harness import LiveServer
from tiepdan.logs import HandshakeAccessFilter


def _refused_status(server: LiveServer, query: str, headers: dict[str, str] | None = None) -> int:
    url = server.base_url.replace("http://", "ws://") + f"/ws?{query}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers or {}, open_timeout=10)
    return refused.value.response.status_code


def _log_after(server: LiveServer, marker: str, timeout: float = 15.0) -> list[dict[str, object]]:
    """The server's JSON log lines, once the request for ``marker`` (sent after everything under test)
    has been logged: whatever the earlier requests logged is in by then."""
    httpx.get(server.url(marker), timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
        if any(line.get("path") == marker for line in lines):
            return lines
        assert time.monotonic() < deadline, f"{marker} never reached the log"
        time.sleep(0.1)


@pytest.mark.integration
def test_each_refused_handshake_logs_one_info_line_with_its_code_and_no_error(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory(users=[])
    rooms = {kind: f"phong-{kind}-{secrets.token_hex(3)}" for kind in ("missing", "connect", "bearer")}
    forged = "ve-ket-noi-gia-mao-" + secrets.token_hex(8)  # plausible: looked up, not found
    statuses = [
        _refused_status(server, f"room={rooms['missing']}"),
        _refused_status(server, f"room={rooms['connect']}&connect={forged}"),
        _refused_status(server, f"room={rooms['bearer']}", {"Authorization": "Bearer khong-phai-jwt"}),
    ]
    lines = _log_after(server, f"/khong-co-{secrets.token_hex(4)}")
    assert statuses == [401, 401, 401]
    codes = {}
    for kind, room in rooms.items():
        about = [line for line in lines if room in json.dumps(line)]
        assert len(about) == 1, f"{kind}: {about}"
        assert about[0]["level"] in ("INFO", "WARNING") and about[0]["msg"] == "websocket refused"
        codes[kind] = about[0]["code"]
    assert (codes["missing"], codes["connect"]) == ("token_missing", "token_connect")
    assert forged not in server.log_text()
    assert str(codes["bearer"]).startswith("token_")  # the verifier's reason (signaling.tokens)
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert not any("WebSocket /ws" in str(line["msg"]) for line in lines)


@pytest.mark.unit
def test_handshake_access_lines_are_dropped_but_warnings_and_errors_pass() -> None:
    keep = HandshakeAccessFilter()

    def record(level: int, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, args, None)

    assert not keep.filter(record(logging.INFO, '%s - "WebSocket %s" %d', "10.0.0.7:5000", "/ws?room=a", 401))
    assert not keep.filter(record(logging.INFO, '%s - "WebSocket %s" [accepted]', "10.0.0.7:5000", "/ws"))
    assert not keep.filter(record(logging.INFO, "connection rejected (%d %s)", 401, "Unauthorized"))
    assert keep.filter(record(logging.ERROR, "ASGI callable returned without completing handshake."))
    assert keep.filter(record(logging.WARNING, '%s - "WebSocket %s" %d', "10.0.0.7:5000", "/ws", 401))
    assert keep.filter(record(logging.INFO, "Application startup complete."))
