"""The queue board's server-sent events against a real server (uvicorn in this process, the real lifespan) on
SQLite and PostgreSQL, with the memory bus and with Redis: a snapshot first, ``call`` soon after "call next",
the mean hearing time once a case is closed, ``end`` when the session closes, ``reconnect`` on shutdown; who may
open which board; a slow client dropped without stalling another; a stalled write ending its stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from room_console.accounts import add_user
from room_console.board_stream import BoardHub, BoardOptions, EventStreamResponse
from room_console.context import ConsoleContext
from schedules import VIETNAM_TZ
from schedules import sessions as service
from signaling.events import CaseCalled
from signaling.grants import Role
from signaling.memory_bus import MemoryBus
from tests.harness import free_port
from tiepdan.app import create_app
from tiepdan.db import make_engine, prepare_database
from tiepdan.server import Server

from ..schedules._roll_call import open_queue
from ..schedules.conftest import CHAIR, FakeClock
from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

#: A call must reach the board within this (generous on a busy 2-core machine; the bench measures it).
CALL_DEADLINE_S = 5.0
USERS = {"chutri": (("chair",), "tru-so-tinh"), "thuky": (("secretary",), None),
         "hienthi": (("display",), "xa-tien-du"), "hienthi-gb": (("display",), "xa-gia-binh"),
         "thanhtra": (("auditor",), None)}


class Events:
    """Reads server-sent events off a streaming response: ``(event, data)``, ``("comment", text)`` for a
    comment line (a heartbeat), ``("closed", None)`` at the end."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0
        self.retry: int | None = None

    async def next(self, timeout: float = 10.0) -> tuple[str, Any]:
        event, data = "message", list[str]()
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if data:
                        return event, json.loads("\n".join(data))
                    event = "message"
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    return "comment", line[1:].strip()
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
        return "closed", None

    async def until(self, wanted: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event, data = await self.next(max(0.01, deadline - time.monotonic()))
            if event == wanted:
                return data
            assert event != "closed", f"the stream ended before {wanted!r}"


ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)


async def prepare(engine: AsyncEngine, clock: FakeClock, venues: list[str]) -> None:
    """A published session with one ticket per entry of ``venues`` (the desk's order), opened, the roll
    call done, started."""
    await open_queue(engine, clock, ROOM, DAY, venues)


@asynccontextmanager
async def database_and_bus(url: str) -> AsyncIterator[tuple[AsyncEngine, MemoryBus]]:
    """A migrated database and a memory bus, for the hub alone (no app, no room server)."""
    engine = make_engine(url)
    bus = MemoryBus()
    try:
        await prepare_database(engine)
        yield engine, bus
    finally:
        await bus.close()
        await engine.dispose()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[Server, str]]:
    """``app`` served by ``tiepdan serve``'s server on a free port (its lifespan runs); stopped at the end."""
    port = free_port()
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"), app)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.02)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task


@pytest.fixture(params=["memory", "redis"])
def bus_url(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "memory":
        return {}
    base: str = request.getfixturevalue("redis_base_url")
    return {"redis_url": base, "redis_prefix": request.getfixturevalue("redis_prefix")}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=VIETNAM_TZ))


async def _accounts(ctx: ConsoleContext, clock: FakeClock, *usernames: str) -> None:
    """The console on the test's clock, and the accounts ``usernames`` (of :data:`USERS`)."""
    ctx.clock = lambda: clock.now.timestamp()
    for username in usernames:
        roles, venue = USERS[username]
        await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                       password=PASSWORD, venue=venue, options=ctx.options, now=clock.now.timestamp())


@asynccontextmanager
async def signed(base: str, username: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await sign_in(http, username)
        yield http, page_token((await http.get("/")).text)


@asynccontextmanager
async def board_stream(http: httpx.AsyncClient, venue: str, session: str = ROOM) -> AsyncIterator[Events]:
    async with http.stream("GET", f"/api/sessions/{session}/board/{venue}/events") as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


async def test_a_board_sees_the_call_at_once_then_the_mean_hearing_time_and_ends_with_the_session(
        make_settings: Callable[..., Any], database_url: str, bus_url: dict[str, str], clock: FakeClock) -> None:
    app = create_app(make_settings(database_url=database_url, **bus_url))
    async with serving(app) as (_, base):
        ctx: ConsoleContext = app.state.console
        await _accounts(ctx, clock, "hienthi", "chutri")
        await prepare(ctx.engine, clock, ["xa-tien-du", "phuong-que-vo", "xa-tien-du"])
        async with signed(base, "hienthi") as (display, _), signed(base, "chutri") as (chair, csrf), \
                board_stream(display, "xa-tien-du") as events:
            first = await events.until("board")
            assert events.retry == ctx.boards.options.retry_ms  # type: ignore[union-attr]
            assert first["current"] is None and first["waiting"] == 3 and first["mean_hearing_s"] is None
            assert [(t["ticket_no"], t["venue_name"]) for t in first["next"]] == [
                (1, "Xã Tiên Du"), (2, "Phường Quế Võ"), (3, "Xã Tiên Du")]
            assert first["waiting_by_venue"] == {"xa-tien-du": 2, "phuong-que-vo": 1} and first["log"] == []

            started = time.monotonic()
            answer = await chair.post(f"/api/sessions/{ROOM}/queue/call-next", headers={"x-csrf-token": csrf})
            assert answer.status_code == 200, answer.text
            call = await events.until("call", timeout=CALL_DEADLINE_S)
            assert time.monotonic() - started < CALL_DEADLINE_S
            assert (call["ticket_no"], call["venue"], call["venue_name"]) == (1, "xa-tien-du", "Xã Tiên Du")
            assert call["announcement_text"].startswith("Mời công dân có số thứ tự 1")
            board = await events.until("board")
            while board["current"] is None:  # a reload that began before the commit may come first
                board = await events.until("board")
            assert board["current"]["ticket_no"] == 1 and board["waiting"] == 2
            assert board["next"][0]["wait_s"] is None  # nothing closed yet: no estimate

            clock.advance(minutes=12)
            assert (await chair.post(f"/api/sessions/{ROOM}/queue/end", headers={"x-csrf-token": csrf})
                    ).status_code == 200
            board = await events.until("board")
            while board["mean_hearing_s"] is None:
                board = await events.until("board")
            assert board["mean_hearing_s"] == 12 * 60 and board["closed_cases"] == 1
            assert [t["wait_s"] for t in board["next"]] == [0, 12 * 60]
            text = json.dumps(board, ensure_ascii=False)
            assert "Khiếu nại" not in text and "Cán bộ" not in text  # no case content, no names

            clock.advance(minutes=1)
            async with ctx.engine.begin() as conn:
                await service.close_session(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
            if ctx.notify_outbox is not None:
                ctx.notify_outbox()
            assert await events.until("end") == {"reason": "closed"}
            assert await events.next() == ("closed", None)
            assert ctx.boards is not None and ctx.boards.streams == 0
            refused = await display.get(f"/api/sessions/{ROOM}/board/xa-tien-du/events")
            assert refused.status_code == 404 and refused.json()["error"] == "board_not_shown"


async def test_who_may_open_which_board(make_settings: Callable[..., Any], sqlite_url: str,
                                        clock: FakeClock) -> None:
    app = create_app(make_settings(database_url=sqlite_url))
    async with serving(app) as (_, base):
        ctx: ConsoleContext = app.state.console
        await _accounts(ctx, clock, "hienthi", "hienthi-gb", "thuky", "thanhtra")
        await prepare(ctx.engine, clock, ["xa-tien-du"])
        path = f"/api/sessions/{ROOM}/board"
        async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
            assert (await anonymous.get(f"{path}/xa-tien-du/events")).status_code == 401
            page = await anonymous.get(f"/bang-so/{ROOM}/xa-tien-du")
            assert page.status_code == 303 and page.headers["location"].startswith("/login")
            token = ctx.issuer.issue("tv-que-vo", roles=[Role.DISPLAY], venue="phuong-que-vo", ttl_s=600,
                                     audience="api")
            bearer = {"authorization": f"Bearer {token}"}
            assert (await anonymous.get(f"{path}/xa-tien-du/events", headers=bearer)).status_code == 403
            own = await anonymous.get(f"{path}/phuong-que-vo", headers=bearer)
            assert own.status_code == 200 and own.json()["waiting"] == 1
            ws_token = ctx.issuer.issue("tv-que-vo", roles=[Role.DISPLAY], venue="phuong-que-vo", ttl_s=600,
                                        audience="ws")
            assert (await anonymous.get(f"{path}/phuong-que-vo",
                                        headers={"authorization": f"Bearer {ws_token}"})).status_code == 401
        async with signed(base, "hienthi") as (display, _):
            assert (await display.get(f"{path}/phuong-que-vo/events")).status_code == 403  # another venue
            assert (await display.get(f"/bang-so/{ROOM}/phuong-que-vo")).status_code == 403
            assert (await display.get(f"{path}/xa-tien-du")).status_code == 200
            page = await display.get(f"/bang-so/{ROOM}/xa-tien-du")
            assert page.status_code == 200 and 'data-testid="board"' in page.text and "Xã Tiên Du" in page.text
            assert (await display.get("/api/sessions/khong-co/board/xa-tien-du/events")).status_code == 404
            listed = await display.get("/bang-so")
            assert f"/bang-so/{ROOM}/xa-tien-du" in listed.text and "phuong-que-vo" not in listed.text
        async with signed(base, "hienthi-gb") as (other, _):  # its venue is not in the session
            assert (await other.get(f"{path}/xa-gia-binh/events")).status_code == 403
        async with signed(base, "thuky") as (secretary, _):
            assert (await secretary.get(f"{path}/phuong-que-vo")).status_code == 200  # not bound to a venue
            assert (await secretary.get(f"{path}/xa-gia-binh/events")).status_code == 404  # not in the session
            assert (await secretary.get("/api/sessions/khong-co/board/xa-tien-du/events")).status_code == 404
            assert (await secretary.get(f"/api/sessions/{ROOM}/board/BAD..x/events")).status_code == 404
        async with signed(base, "thanhtra") as (auditor, _):
            assert (await auditor.get(f"{path}/xa-tien-du/events")).status_code == 403  # no queue_board grant


async def test_shutdown_tells_every_board_to_reconnect_and_the_server_stops(
        make_settings: Callable[..., Any], sqlite_url: str, clock: FakeClock) -> None:
    app = create_app(make_settings(database_url=sqlite_url))
    async with serving(app) as (server, base):
        ctx: ConsoleContext = app.state.console
        await _accounts(ctx, clock, "thuky")
        await prepare(ctx.engine, clock, ["xa-tien-du"])
        ctx.boards.options = replace(ctx.boards.options, heartbeat_s=0.2)  # type: ignore[union-attr]
        async with signed(base, "thuky") as (secretary, _), board_stream(secretary, "xa-tien-du") as events:
            await events.until("board")
            assert await events.until("comment") == "ping"  # heartbeats keep an idle stream open
            async with board_stream(secretary, "tru-so-tinh") as other:
                await other.until("board")
                assert ctx.boards.streams == 2  # type: ignore[union-attr]
            async with asyncio.timeout(10):  # the client went away: its stream ends on the server too
                while ctx.boards.streams != 1:  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
            ctx.boards.options = replace(ctx.boards.options, max_streams=1)  # type: ignore[union-attr]
            busy = await secretary.get(f"/api/sessions/{ROOM}/board/tru-so-tinh/events")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
            server.should_exit = True  # as on SIGTERM: the boards end first, then the server waits for nothing
            assert await events.until("reconnect") == {"reason": "shutdown"}
            assert await events.next() == ("closed", None)
    assert ctx.boards is not None and ctx.boards.closed and ctx.boards.streams == 0


async def test_a_slow_client_is_dropped_and_told_to_reconnect_while_another_keeps_up(sqlite_url: str,
                                                                                     clock: FakeClock) -> None:
    async with database_and_bus(sqlite_url) as (engine, bus):
        await prepare(engine, clock, ["xa-tien-du", "xa-tien-du"])
        hub = BoardHub(engine, bus, clock=lambda: clock.now, options=BoardOptions(client_queue=3))
        await hub.start()
        try:
            slow = hub.subscribe(ROOM, "xa-tien-du")  # never read
            quick = hub.subscribe(ROOM, "tru-so-tinh")
            for seq in range(1, 7):  # six calls, each read by the quick client: the slow one's queue overflows
                await bus.publish(CaseCalled(session=ROOM, case="c", ticket_no=seq, venue="xa-tien-du",
                                                 call_seq=seq, announcement_text="Mời công dân"))
                wanted = b"event: call\ndata: " + f'{{"type":"case.called","ticket_no":{seq},'.encode()
                while not (await quick.next(5) or b"").startswith(wanted):
                    assert quick.ended is None, quick.ended
            assert slow.ended == "slow"
            queued = [await slow.next(1) for _ in range(2)]
            assert queued[0] is not None and b"event: reconnect" in queued[0] and queued[1] is None
            hub.unsubscribe(slow)
            assert hub.dropped == 1 and quick.ended is None and hub.streams == 1
            hub.unsubscribe(quick)
        finally:
            await hub.close()
        await hub.close()  # idempotent
        assert hub.closed and hub.streams == 0


async def test_a_write_that_stalls_ends_the_stream(sqlite_url: str, clock: FakeClock) -> None:
    async with database_and_bus(sqlite_url) as (engine, bus):
        await prepare(engine, clock, ["xa-tien-du"])
        hub = BoardHub(engine, bus, clock=lambda: clock.now,
                       options=BoardOptions(write_timeout_s=0.2, heartbeat_s=0.05))
        await hub.start()
        try:
            stream = hub.subscribe(ROOM, "xa-tien-du")
            sent: list[dict[str, Any]] = []
            never = asyncio.Event()

            async def receive() -> dict[str, Any]:
                await never.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)
                if len(sent) >= 3:  # the client stops reading after the start, retry: and one message
                    await never.wait()

            async with asyncio.timeout(10):
                await EventStreamResponse(hub, stream)({"type": "http"}, receive, send)  # type: ignore[arg-type]
            assert stream.ended == "stalled" and hub.streams == 0
            assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
        finally:
            await hub.close()
