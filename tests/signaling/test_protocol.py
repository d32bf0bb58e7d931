"""The protocol's unions, and docs/protocol.md: every example parses, every message type has one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from signaling.protocol import (
    CLIENT_MESSAGE_TYPES,
    ERROR_TEXT_VI,
    SERVER_MESSAGE_TYPES,
    ErrorCode,
    FloorGive,
    Join,
    dump_message,
    parse_client_message,
    parse_server_message,
)

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _examples(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    body = text[start:end if end != -1 else None]
    return re.findall(r"```json\n(.*?)```", body, flags=re.S)


def test_every_client_example_in_the_doc_parses_and_every_client_type_has_one() -> None:
    examples = _examples("## 5. Client messages")
    types = {parse_client_message(e).type for e in examples}
    assert types == CLIENT_MESSAGE_TYPES


def test_every_server_example_in_the_doc_parses_and_every_server_type_has_one() -> None:
    examples = _examples("## 6. Server messages")
    types = {parse_server_message(e).type for e in examples}
    assert types == SERVER_MESSAGE_TYPES


def test_every_error_code_is_documented_and_has_vietnamese_text() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"`{code.value}`" in text, code
        assert ERROR_TEXT_VI[code].strip()


def test_unknown_type_and_missing_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_client_message('{"type": "floor.steal", "venue": "x"}')
    with pytest.raises(ValidationError):
        parse_client_message('{"type": "floor.give"}')
    with pytest.raises(ValidationError):
        parse_client_message('{"type": "floor.give", "venue": "x", "extra": 1}')
    with pytest.raises(ValidationError):
        parse_client_message("not json")


def test_server_message_cannot_be_sent_as_client_message() -> None:
    with pytest.raises(ValidationError):
        parse_client_message('{"type": "floor.changed", "venue": "x", "by": "y"}')


def test_messages_round_trip_through_json() -> None:
    for message in (Join(protocol=1, venue="tien-du", id="a"), FloorGive(venue="tien-du")):
        assert parse_client_message(dump_message(message)) == message
    assert json.loads(dump_message(FloorGive(venue="v")))["type"] == "floor.give"

