"""The roll call and the venues' readiness checks over HTTP (ASGI, real lifespan): who may record what,
"call next" refused until the roll call, amendments kept, bad figures and bodies refused in Vietnamese."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from room_console.context import ConsoleContext
from signaling.events import SessionRollCallRecorded, VenueReadinessChecked
from signaling.grants import Role

from ..schedules.conftest import FakeClock, outbox_events
from .test_queue_api import ROOM, app, clock, prepare, signed  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

EVERYONE: list[dict[str, Any]] = [
    {"venue": "tru-so-tinh", "present": True, "officials": [{"name": "Nguyễn Văn An", "position": "Bí thư Tỉnh ủy"}]},
    {"venue": "xa-tien-du", "present": True, "citizens": 3,
     "officials": [{"name": "Trần Thị Bình", "position": "Bí thư Đảng ủy xã"}]},
    {"venue": "phuong-que-vo", "present": False},
]
READY = {"venue": "xa-tien-du", "rtt_ms": 35.2, "rtt_source": "media", "outgoing_kbps": 2100, "turn": "reachable",
         "camera": True, "microphone": True, "browser": "Chromium 156"}


async def test_the_secretary_takes_the_roll_call_before_the_first_call_and_amends_it(app: FastAPI,  # noqa: F811
                                                                                      clock: FakeClock) -> None:  # noqa: F811
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo"], roll_call=False)
    chair, secretary, venue_op = (await signed(app, "chutri"), await signed(app, "thuky"),
                                  await signed(app, "diemcau"))
    refused = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert refused.status_code == 409 and refused.json()["error"] == "roll_call_missing"
    assert "hãy điểm danh trước khi gọi công dân đầu tiên" in refused.json()["message"]
    shown = (await secretary.get(f"/api/sessions/{ROOM}/roll-call")).json()
    assert shown["required"] and shown["roll_call_no"] == 0 and shown["live"]
    assert [(v["venue"], v["present"]) for v in shown["venues"]] == [
        ("tru-so-tinh", None), ("xa-tien-du", None), ("phuong-que-vo", None)]

    assert (await venue_op.post(f"/api/sessions/{ROOM}/roll-call", {"venues": EVERYONE})).status_code == 403
    assert (await venue_op.get(f"/api/sessions/{ROOM}/roll-call")).status_code == 403
    recorded = await secretary.post(f"/api/sessions/{ROOM}/roll-call", {"expected_roll_call_no": 0,
                                                                       "venues": EVERYONE})
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert body["roll_call_no"] == 1 and not body["required"]
    assert body["venues"][1]["officials"] == [{"name": "Trần Thị Bình", "position": "Bí thư Đảng ủy xã"}]
    assert body["venues"][1]["citizens"] == 3 and body["venues"][2]["present"] is False

    queue = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()  # Quế Võ is absent: its ticket is held
    assert [t["ticket_no"] for t in queue["waiting"]] == [1] and [t["ticket_no"] for t in queue["held"]] == [2]
    called = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert called.status_code == 200 and called.json()["current"]["ticket_no"] == 1

    stale = await secretary.post(f"/api/sessions/{ROOM}/roll-call", {"expected_roll_call_no": 0, "venues": EVERYONE})
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    clock.advance(minutes=5)
    arrived = [*EVERYONE[:2], {"venue": "phuong-que-vo", "present": True, "citizens": 1}]
    amended = await chair.post(f"/api/sessions/{ROOM}/roll-call", {"expected_roll_call_no": 1, "venues": arrived})
    assert amended.status_code == 201
    history = amended.json()["history"]
    assert [(h["roll_call_no"], h["absent"]) for h in history] == [(1, ["phuong-que-vo"]), (2, [])]
    assert [e.roll_call_no for e in await outbox_events(ctx.engine) if isinstance(e, SessionRollCallRecorded)] == [1, 2]


async def test_bad_roll_calls_are_refused_with_the_reason(app: FastAPI, clock: FakeClock) -> None:  # noqa: F811
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du"], roll_call=False)
    secretary = await signed(app, "thuky")
    url = f"/api/sessions/{ROOM}/roll-call"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"venues": EVERYONE[:2]}, 422, "roll_call_incomplete"),
        ({"venues": [*EVERYONE, {"venue": "xa-gia-binh", "present": True}]}, 409, "venue_not_in_session"),
        ({"venues": [*EVERYONE, {"venue": "xa-khong-co", "present": True}]}, 404, "unknown_venue"),
        ({"venues": [*EVERYONE[:2], {"venue": "phuong-que-vo", "present": False, "citizens": 2}]}, 422,
         "absent_with_attendees"),
        ({"venues": [{**EVERYONE[0], "officials": [{"name": "", "position": "Bí thư"}]}, *EVERYONE[1:]]}, 422,
         "bad_official"),
        ({"venues": EVERYONE, "note": "x"}, 422, "invalid_input"),
        ({"venues": []}, 422, "invalid_input"),
    ]
    for body, status, code in cases:
        answer = await secretary.post(url, body)
        assert (answer.status_code, answer.json()["error"]) == (status, code), body
        assert answer.json()["message"]
    assert (await secretary.post("/api/sessions/khong-co/roll-call", {"venues": EVERYONE})).status_code == 404
    huge = await secretary.http.post(url, content=b'{"venues": [' + b" " * 300_000 + b"]}",
                                     headers={"x-csrf-token": secretary.csrf, "content-type": "application/json"})
    assert huge.status_code == 413
    assert not [e for e in await outbox_events(ctx.engine) if isinstance(e, SessionRollCallRecorded)]


async def test_a_venue_reports_its_own_readiness_and_the_chair_sees_the_table(app: FastAPI,  # noqa: F811
                                                                              clock: FakeClock) -> None:  # noqa: F811
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du"], start=False, roll_call=False)
    chair, venue_op = await signed(app, "chutri"), await signed(app, "diemcau")
    url = f"/api/sessions/{ROOM}/readiness"
    answer = await venue_op.post(url, READY)
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "ready" and answer.json()["rtt_ms"] == 35.2
    slow = await chair.post(url, {**READY, "venue": "tru-so-tinh", "rtt_ms": 900, "turn": "not_configured",
                                  "outgoing_kbps": None})
    assert slow.status_code == 201 and [p["value"] for p in slow.json()["problems"]] == ["rtt_high"]

    table = await chair.get(url)
    assert table.status_code == 200
    rows = {r["venue"]: r for r in table.json()["venues"]}
    assert [rows[v]["status"] for v in ("tru-so-tinh", "xa-tien-du", "phuong-que-vo")] == [
        "not_ready", "ready", "not_checked"]
    assert rows["xa-tien-du"]["outgoing_kbps"] == 2100 and rows["xa-tien-du"]["checked_at"]
    assert rows["tru-so-tinh"]["problems"][0]["label"] == "Độ trễ khứ hồi quá cao"
    assert (await venue_op.get(url)).status_code == 403  # the table is the chair's and the secretary's

    other = await venue_op.post(url, {**READY, "venue": "phuong-que-vo"})
    assert other.status_code == 403 and "chỉ báo cáo kiểm tra của chính mình" in other.json()["message"]
    token = ctx.issuer.issue("svc-venue", roles=[Role.VENUE], venue="phuong-que-vo", ttl_s=600, audience="api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        by_token = await http.post(url, json=READY, headers={"authorization": f"Bearer {token}"})
        own = await http.post(url, json={**READY, "venue": "phuong-que-vo"},
                              headers={"authorization": f"Bearer {token}"})
    assert by_token.status_code == 403 and own.status_code == 201  # a venue token: its own venue only
    secretary = await signed(app, "thuky")
    assert (await secretary.post(url, READY)).status_code == 403  # no publish grant, no venue
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"rtt_ms": -4}, 422, "bad_rtt"),
        ({"rtt_ms": 1e9}, 422, "bad_rtt"),
        ({"outgoing_kbps": 10**13}, 422, "bad_bitrate"),
        ({"outgoing_kbps": -1}, 422, "bad_bitrate"),
        ({"rtt_source": None}, 422, "bad_rtt_source"),
        ({"turn": "maybe"}, 422, "invalid_input"),
        ({"venue": "xa-khong-co"}, 404, "unknown_venue"),
        ({"venue": "xa-gia-binh"}, 409, "venue_not_in_session"),
    ]
    for changes, status, code in bad:
        refused = await venue_op.post(url, {**READY, **changes})
        assert (refused.status_code, refused.json()["error"]) == (status, code), changes
    huge = await venue_op.http.post(url, content=b'{"venue": "' + b"x" * 40_000 + b'"}',
                                    headers={"x-csrf-token": venue_op.csrf, "content-type": "application/json"})
    assert huge.status_code == 413
    checked = [e for e in await outbox_events(ctx.engine) if isinstance(e, VenueReadinessChecked)]
    assert [(e.venue, e.ready) for e in checked] == [("xa-tien-du", True), ("tru-so-tinh", False),
                                                     ("phuong-que-vo", True)]
