"""``tiepdan session open|close`` against a running server: the room opens and closes through the outbox;
refused input changes nothing."""

from __future__ import annotations

import pytest

from tests.harness import LiveServer
from tiepdan.session_cli import SessionInputError, parse_caps, parse_venues


@pytest.mark.unit
def test_parse_venues_marks_the_main_venue() -> None:
    venues = parse_venues(["tinh=Trụ sở tỉnh", "tien-du=Tiên Du"])
    assert [(v.venue, v.name, v.main) for v in venues] == [("tinh", "Trụ sở tỉnh", True),
                                                           ("tien-du", "Tiên Du", False)]
    assert [v.main for v in parse_venues(["a=A", "b=B"], main="b")] == [False, True]


@pytest.mark.unit
@pytest.mark.parametrize("items, main, words", [
    ([], None, "ít nhất một"),
    (["tinh"], None, "mã=Tên"),
    (["tinh="], None, "mã=Tên"),
    (["Tỉnh=Tỉnh"], None, "không hợp lệ"),
    (["a=A", "a=B"], None, "hai lần"),
    (["a=A"], "b", "không có trong danh sách"),
    ([f"v{i}=V" for i in range(65)], None, "tối đa 64"),
    (["a=" + "x" * 201], None, "200"),
])
def test_parse_venues_refuses_bad_input(items: list[str], main: str | None, words: str) -> None:
    with pytest.raises(SessionInputError, match=words):
        parse_venues(items, main)


@pytest.mark.unit
def test_caps_attach_to_their_venues_and_bad_caps_are_refused() -> None:
    venues = parse_venues(["tinh=Tỉnh", "que-vo=Quế Võ"], caps=parse_caps(["que-vo=600"]))
    assert [v.max_kbps for v in venues] == [None, 600]
    for bad, words in (("que-vo", "mã=kbps"), ("que-vo=nhanh", "mã=kbps"), ("que-vo=50", "từ 100"),
                       ("que-vo=-5", "mã=kbps")):
        with pytest.raises(SessionInputError, match=words):
            parse_caps([bad])
    with pytest.raises(SessionInputError, match="không có trong danh sách"):
        parse_venues(["tinh=Tỉnh"], caps={"que-vo": 600})


@pytest.mark.integration
def test_open_and_close_a_session_on_the_running_server(live_server: LiveServer) -> None:
    room = "thu-lenh-phien"
    assert live_server._room_status(room) == 404
    live_server.open_session(room, [("main", "Trụ sở tiếp công dân tỉnh"), ("tien-du", "Tiên Du")])
    live_server.close_session(room)
    refused = live_server.cli("session", "open", "Phiên 2", "--venue", "main=Tỉnh")
    assert refused.returncode == 2 and "không hợp lệ" in refused.stderr
    refused = live_server.cli("session", "open", "phien-2")
    assert refused.returncode == 2 and "ít nhất một" in refused.stderr
    assert live_server._room_status("phien-2") == 404
