from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.sync.client import connect

from tests.harness import LiveServer
from tiepdan.logs import JsonFormatter


def _format(msg: str, ctx: dict[str, object] | None = None) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)
    if ctx is not None:
        record.ctx = ctx
    result: dict[str, object] = json.loads(JsonFormatter().format(record))
    return result


@pytest.mark.unit
def test_context_keys_outside_the_whitelist_never_reach_the_log() -> None:
    doc = _format("joined", {"room": "s1", "venue": "tien-du", "name": "Nguyễn Văn A", "id_number": "0012"})
    assert doc["room"] == "s1" and doc["venue"] == "tien-du"
    assert "name" not in doc and "id_number" not in doc
    assert "Nguyễn" not in json.dumps(doc, ensure_ascii=False)


@pytest.mark.unit
def test_tokens_and_connect_tickets_are_redacted_even_inside_messages() -> None:
    jwt_like = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    doc = _format(f"GET /ws?room=s1&connect=abcDEF123456789xyz Authorization: Bearer {jwt_like} token {jwt_like}")
    text = json.dumps(doc)
    assert "eyJ" not in text and "abcDEF123456789xyz" not in text
    assert text.count("[redacted]") >= 2


@pytest.mark.unit
def test_a_connect_ticket_in_a_context_value_is_redacted_and_a_queue_ticket_number_is_kept() -> None:
    doc = _format("websocket refused", {"path": "/ws?connect=Zk-9_qP3rT7uV1wX5yZ0aB&room=s1", "ticket_no": 15})
    assert "Zk-9_qP3rT7uV1wX5yZ0aB" not in json.dumps(doc)
    assert doc["path"] == "/ws?[redacted]&room=s1" and doc["ticket_no"] == 15


@pytest.mark.integration
def test_a_connect_ticket_never_reaches_the_log_even_at_debug_level(server_factory: Callable[..., LiveServer]) -> None:
    """A real ``tiepdan serve`` at DEBUG, where uvicorn and websockets write each handshake's request line:
    the connect ticket a page puts in ``/ws?connect=`` (redeemed once, then refused) is never written."""
    server = server_factory(env={"TIEPDAN_LOG_LEVEL": "DEBUG"})
    room = f"phien-nhat-ky-{secrets.token_hex(3)}"
    server.open_session(room, [("main", "Trụ sở Tiếp công dân tỉnh"), ("tien-du", "Điểm cầu xã Tiên Du")])
    with server.http_client("chair") as (client, csrf):
        issued = client.post("/api/live/connect-ticket", json={"room": room}, headers={"X-CSRF-Token": csrf})
    connect_ticket = issued.json()["connect_ticket"]
    with connect(server.ws_url(room, connect_ticket=connect_ticket), open_timeout=5) as ws:
        ws.send(json.dumps({"type": "join", "protocol": 1, "id": "j1"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
        ws.send(json.dumps({"type": "leave"}))
    assert server.ws_handshake(room, connect_ticket=connect_ticket) == (401, "token_connect")  # used
    marker = f"/khong-co-{secrets.token_hex(4)}"
    httpx.get(server.url(marker), timeout=10)
    deadline = time.monotonic() + 15
    while marker not in server.log_text():
        assert time.monotonic() < deadline, "the request after the handshakes never reached the log"
        time.sleep(0.1)
    log = server.log_text()
    assert f"GET /ws?room={room}&[redacted] HTTP/1.1" in log  # the request line was written, redacted
    assert connect_ticket not in log
