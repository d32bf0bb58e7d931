"""The chair's queue controls over HTTP (ASGI, real lifespan): every action, every refusal as a JSON problem
in Vietnamese, the announcement audio in ``case.called`` served as a WAV that is not silent."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from room_console.accounts import add_user
from room_console.context import ConsoleContext
from schedules import VIETNAM_TZ
from schedules import sessions as service
from signaling.events import AnyEvent, parse_event
from signaling.grants import Role
from signaling.outbox import outbox
from tiepdan.app import create_app

from ..schedules._roll_call import open_queue
from ..schedules.conftest import CHAIR, FakeClock
from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)
USERS = {"chutri": (("chair",), "tru-so-tinh"), "thuky": (("secretary",), None),
         "diemcau": (("venue",), "xa-tien-du")}


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def post(self, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(url, json=body, headers={"x-csrf-token": self.csrf})


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


async def prepare(ctx: ConsoleContext, clock: FakeClock, venues: list[str], *, start: bool = True,
                  roll_call: bool = True) -> None:
    """A published session with one ticket per entry of ``venues``, opened, its venues' roll call taken
    (``roll_call``: every venue present) and (``start``) started."""
    await open_queue(ctx.engine, clock, ROOM, DAY, venues, start=start, roll_call=roll_call)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=VIETNAM_TZ))


@pytest.fixture
async def app(make_settings, database_url: str, clock: FakeClock) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: clock.now.timestamp()
        for username, (roles, venue) in USERS.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, venue=venue, options=ctx.options, now=clock.now.timestamp())
        yield application


async def case_events(app: FastAPI) -> list[AnyEvent]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [e for e in (parse_event(r) for r in rows) if e.type.startswith("case.")]


def _rms(wav_bytes: bytes) -> float:
    with wave.open(io.BytesIO(wav_bytes), "rb") as audio:
        assert audio.getsampwidth() == 2 and audio.getnframes() > 8000
        frames = audio.readframes(audio.getnframes())
    samples = [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames) - 1, 2)]
    return float((sum(s * s for s in samples) / len(samples)) ** 0.5)


async def test_call_next_carries_audio_and_every_action_answers_the_new_queue(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo", "xa-tien-du"])
    chair = await signed(app, "chutri")
    queue = await chair.get(f"/api/sessions/{ROOM}/queue")
    assert queue.status_code == 200, queue.text
    shown = queue.json()
    assert shown["current"] is None and shown["waiting_count"] == 3
    assert [(t["ticket_no"], t["venue"]) for t in shown["waiting"]] == [
        (1, "xa-tien-du"), (2, "phuong-que-vo"), (3, "xa-tien-du")]
    assert shown["waiting"][0]["venue_name"] == "Xã Tiên Du" and "Khiếu nại" not in queue.text  # no case content
    assert shown["actions"]["call-next"] and not shown["actions"]["end"]

    called = await chair.post(f"/api/sessions/{ROOM}/queue/call-next", {"expected_version": shown["version"]})
    assert called.status_code == 200, called.text
    body = called.json()
    assert body["current"]["ticket_no"] == 1 and body["events"] == ["case.called"] and body["waiting_count"] == 2
    (event,) = await case_events(app)
    url = event.announcement_audio_url  # type: ignore[union-attr]
    assert url is not None and url == body["announcement_audio_url"] and url.startswith("/api/announcements/")
    audio = await chair.get(url)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert _rms(audio.content) > 200  # espeak-ng said something: not silence
    venue_op = await signed(app, "diemcau")
    assert (await venue_op.get(url)).status_code == 200  # every signed-in page plays it

    steps = [("recall", None, "case.recalled"), ("pause", {"reason": "chair"}, "case.paused"),
             ("resume", None, "case.resumed"), ("skip", None, "case.skipped"), ("call-next", None, "case.called"),
             ("absent", None, "case.absent"), ("call-next", None, "case.called"), ("end", None, "case.closed")]
    for action, extra, expected in steps:
        clock.advance(minutes=1)
        answer = await chair.post(f"/api/sessions/{ROOM}/queue/{action}", extra)
        assert answer.status_code == 200, (action, answer.text)
        assert answer.json()["events"] == [expected], action
    recalled = [e for e in await case_events(app) if e.type == "case.recalled"]
    assert recalled[0].announcement_audio_url == url  # type: ignore[union-attr] # same text, same cached file
    final = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()
    # ticket 1 skipped once (to the end), 2 called and absent, 3 called and closed: 1 waits again
    assert final["current"] is None and [t["ticket_no"] for t in final["waiting"]] == [1]
    assert [(t["ticket_no"], t["status"]["value"]) for t in final["passed_over"]] == [(1, "waiting")]
    assert final["actions"] == {"call-next": True, "recall": False, "skip": False, "absent": False, "end": False,
                                "pause": False, "resume": False}


async def test_refusals_are_json_problems_in_vietnamese(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du"])
    chair = await signed(app, "chutri")
    secretary = await signed(app, "thuky")
    venue_op = await signed(app, "diemcau")

    refused = await venue_op.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert refused.status_code == 403
    assert (await venue_op.get(f"/api/sessions/{ROOM}/queue")).status_code == 403
    token = ctx.issuer.issue("svc-venue", roles=[Role.VENUE], venue="xa-tien-du", ttl_s=600, audience="api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        by_token = await http.post(f"/api/sessions/{ROOM}/queue/call-next",
                                   headers={"authorization": f"Bearer {token}"})
    assert by_token.status_code == 403

    unknown = await chair.post("/api/sessions/khong-co-phien/queue/call-next")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_session"
    assert "Không có phiên" in unknown.json()["message"]
    assert (await chair.get("/api/sessions/khong-co-phien/queue")).status_code == 404
    assert (await chair.get("/api/sessions/BAD..id/queue")).status_code == 404
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/dance")).status_code == 404

    nothing = await chair.post(f"/api/sessions/{ROOM}/queue/end")
    assert nothing.status_code == 409 and nothing.json()["error"] == "no_case_in_progress"
    no_reason = await chair.post(f"/api/sessions/{ROOM}/queue/pause")
    assert no_reason.status_code == 422 and no_reason.json()["error"] == "missing_reason"
    bad = await chair.post(f"/api/sessions/{ROOM}/queue/call-next", {"expected_version": "x", "who": 1})
    assert bad.status_code == 422

    version = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()["version"]
    first = await secretary.post(f"/api/sessions/{ROOM}/queue/call-next", {"expected_version": version})
    assert first.status_code == 200  # the secretary may drive the queue too
    stale = await chair.post(f"/api/sessions/{ROOM}/queue/call-next", {"expected_version": version})
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    assert stale.json()["current_version"] == version + 1 and "đã thay đổi" in stale.json()["message"]
    busy = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert busy.status_code == 409 and busy.json()["error"] == "case_in_progress"
    clock.advance(minutes=1)
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/end")).status_code == 200
    empty = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert empty.status_code == 409 and empty.json()["error"] == "nobody_waiting"

    clock.advance(minutes=1)
    async with ctx.engine.begin() as conn:
        await service.close_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    clock.advance(minutes=1)
    closed = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert closed.status_code == 409 and closed.json()["error"] == "session_not_in_progress"
    assert "chỉ điều hành thứ tự khi phiên" in closed.json()["message"]
    assert len(await case_events(app)) == 2  # the refusals wrote nothing


async def test_announcement_route_takes_only_a_hash_name(app: FastAPI, clock: FakeClock) -> None:
    chair = await signed(app, "chutri")
    for name in ("..%2F..%2Fetc%2Fpasswd", "a" * 64 + ".mp3", "A" * 64 + ".wav", "0" * 63 + ".wav",
                 "0" * 64 + ".wav"):
        answer = await chair.get(f"/api/announcements/{name}")
        assert answer.status_code == 404, name
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        assert (await http.get("/api/announcements/" + "0" * 64 + ".wav")).status_code == 401
