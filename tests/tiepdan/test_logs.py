from __future__ import annotations

import json
import logging

import pytest

from tiepdan.logs import JsonFormatter

pytestmark = pytest.mark.unit


def _format(msg: str, ctx: dict[str, object] | None = None) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)
    if ctx is not None:
        record.ctx = ctx
    result: dict[str, object] = json.loads(JsonFormatter().format(record))
    return result


def test_context_keys_outside_the_whitelist_never_reach_the_log() -> None:
    doc = _format("joined", {"room": "s1", "venue": "tien-du", "name": "Nguyễn Văn A", "id_number": "0012"})
    assert doc["room"] == "s1" and doc["venue"] == "tien-du"
    assert "name" not in doc and "id_number" not in doc
    assert "Nguyễn" not in json.dumps(doc, ensure_ascii=False)


def test_tokens_and_tickets_are_redacted_even_inside_messages() -> None:
    jwt_like = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    doc = _format(f"GET /ws?ticket=abcDEF123456789xyz Authorization: Bearer {jwt_like} token {jwt_like}")
    text = json.dumps(doc)
    assert "eyJ" not in text and "abcDEF123456789xyz" not in text
    assert text.count("[redacted]") >= 2
