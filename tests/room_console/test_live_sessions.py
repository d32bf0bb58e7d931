"""The live pages learn which sessions are live from ``schedules`` (the database) and the room's state from the
room store, never from a room server in the console's memory (ASGI, real lifespan, SQLite). A ``--role
control`` process, which runs no room server, serves every page; a closed session and a venue account bound
to a venue not in the session keep their refusals. The scaled topology in real processes (PostgreSQL + Redis,
control and media apart) is ``tests/tiepdan/test_scaled_console.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from room_console.accounts import add_user
from room_console.context import ConsoleContext
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in
from ._live_sessions import close_live_session, open_live_session

pytestmark = pytest.mark.integration

ROOM = "phien-song-1"
OTHER = "phien-khong-co-tien-du"
VENUES = [("main", "Trụ sở Tiếp công dân tỉnh"), ("tien-du", "Xã Tiên Du")]


@asynccontextmanager
async def running(make_settings: Callable[..., object], role: str) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(process_role=role))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        ctx: ConsoleContext = app.state.console
        for username, role_name, venue in (("chutri", "chair", "main"), ("diemcau", "venue", "tien-du"),
                                           ("diemlim", "venue", "lim")):
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=(role_name,),
                           password=PASSWORD, venue=venue, options=ctx.options, now=ctx.clock())
        yield app


@asynccontextmanager
async def signed_in(app: FastAPI, username: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        assert (await sign_in(http, username)).status_code == 303
        yield http, {"X-CSRF-Token": page_token((await http.get("/")).text)}


async def test_a_control_process_without_a_room_server_serves_the_live_pages_from_the_database(
        make_settings: Callable[..., object]) -> None:
    async with running(make_settings, "control") as app:
        assert getattr(app.state, "room_server", None) is None
        engine = app.state.console.engine
        await open_live_session(engine, ROOM, VENUES)
        await open_live_session(engine, OTHER, [("main", "Trụ sở Tiếp công dân tỉnh"), ("lim", "Thị trấn Lim")],
                                start=False)  # open for the roll call, not started: live too
        async with signed_in(app, "chutri") as (chair, csrf):
            listed = await chair.get("/phien")
            assert listed.status_code == 200
            assert f'data-room="{ROOM}"' in listed.text and f'data-room="{OTHER}"' in listed.text
            assert "Xã Tiên Du" in listed.text and "Thị trấn Lim" in listed.text
            assert 'data-testid="live-room-waiting"' in listed.text  # no room store to read here
            page = await chair.get(f"/phien/{ROOM}")
            assert page.status_code == 200 and 'data-view="chair"' in page.text
            assert 'data-venue="tien-du"' in page.text
            token = await chair.post("/api/live/token", headers=csrf, json={"room": ROOM})
            assert token.status_code == 200 and token.json()["token"]
        async with signed_in(app, "diemcau") as (venue, csrf):  # tien-du is not in OTHER
            listed = await venue.get("/phien")
            assert f'data-room="{ROOM}"' in listed.text and f'data-room="{OTHER}"' not in listed.text
            refused = await venue.get(f"/phien/{OTHER}")
            assert refused.status_code == 403
            assert "Điểm cầu của tài khoản bạn không tham gia phiên này" in refused.text
            assert (await venue.post("/api/live/token", headers=csrf, json={"room": OTHER})).status_code == 403
        await close_live_session(engine, ROOM)
        async with signed_in(app, "chutri") as (chair, csrf):
            listed = await chair.get("/phien")
            assert f'data-room="{ROOM}"' not in listed.text and f'data-room="{OTHER}"' in listed.text
            closed = await chair.get(f"/phien/{ROOM}")
            assert closed.status_code == 404
            assert "Không có phiên tiếp công dân trực tuyến nào đang mở với mã này" in closed.text
            refused = await chair.post("/api/live/token", headers=csrf, json={"room": ROOM})
            assert refused.status_code == 404 and refused.json()["error"] == "room_unknown"
            assert (await chair.get("/phien/khong-co-phien-nay")).status_code == 404


async def test_the_embedded_room_list_shows_the_room_stores_summary(make_settings: Callable[..., object]) -> None:
    async with running(make_settings, "all") as app:
        await open_live_session(app.state.console.engine, ROOM, VENUES)
        reader = app.state.console.room_states
        assert reader is not None  # the embedded room server's in-memory store
        async with asyncio.timeout(10):  # the outbox relay brings session.opened to the room server
            while await reader.room_summary(ROOM) is None:
                await asyncio.sleep(0.02)
        async with signed_in(app, "chutri") as (chair, _):
            listed = await chair.get("/phien")
            assert 'data-testid="live-room-connected" data-connected="0"' in listed.text
            assert 'data-testid="live-room-waiting"' not in listed.text
