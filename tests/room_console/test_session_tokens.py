"""Tokens the console mints are scoped and die with the login session (ASGI, real lifespan, embedded
mode: SQLite, memory bus, the room server in the same process): the live-room token is refused by the
REST API; signing out, signing in over a session, disabling the account end the session's tokens on the
API and in the live room, through the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from complaints.tables import audit_events
from room_console.accounts import User, add_user, secret_hash, set_password
from room_console.context import ConsoleContext
from room_console.options import ConsoleOptions
from signaling.events import LoginSessionEnded, parse_event
from signaling.grants import Role
from signaling.outbox import outbox
from signaling.room import AdmissionRefused, RoomServer
from signaling.tokens import Claims
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in
from ._live_sessions import open_live_session

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        server: RoomServer = application.state.room_server
        # the console learns live sessions from the scheduler (the database), the room server from the bus
        await open_live_session(application.state.console.engine, ROOM, [
            ("main", "Trụ sở Tiếp công dân tỉnh"), ("tien-du", "Điểm cầu xã Tiên Du")])
        async with asyncio.timeout(5):
            while server.room(ROOM) is None:
                await asyncio.sleep(0.01)
        yield application


def console(app: FastAPI) -> ConsoleContext:
    ctx: ConsoleContext = app.state.console
    return ctx


async def make_user(app: FastAPI, username: str, *roles: str, venue: str | None = None) -> User:
    ctx = console(app)
    return await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                          password=PASSWORD, venue=venue, options=ctx.options, now=ctx.clock())


class Official:
    """A signed-in browser: its client and its CSRF token."""

    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.post(url, headers={"X-CSRF-Token": self.csrf}, **kw)

    async def live_token(self) -> str:
        response = await self.post("/api/live/token", json={"room": ROOM})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    async def connect_ticket_token(self, app: FastAPI) -> str:
        """The token a connect ticket stands for (what ``/ws`` redeems)."""
        response = await self.post("/api/live/connect-ticket", json={"room": ROOM})
        assert response.status_code == 200, response.text
        token: str | None = await app.state.connect_tickets.redeem(response.json()["connect_ticket"])
        assert token is not None
        return token


async def signed_in(app: FastAPI, username: str) -> Official:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    assert (await sign_in(http, username)).status_code == 303
    return Official(http, page_token((await http.get("/")).text))


async def as_service(app: FastAPI, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    """A request with ``Authorization: Bearer <token>`` and no cookie (how a service calls the API)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        return await http.request(method, path, headers={"authorization": f"Bearer {token}"}, **kw)


def live_admission(app: FastAPI, token: str) -> str:
    """What the room server answers a ``/ws`` handshake with ``token``: "ok" or the refusal code."""
    server: RoomServer = app.state.room_server
    try:
        server.authenticate(token, ROOM)
    except AdmissionRefused as exc:
        return exc.code
    return "ok"


async def until_admission(app: FastAPI, token: str, expected: str, deadline: float = 5.0) -> float:
    """Seconds until the room server answers ``expected`` for ``token`` (the outbox relay polls)."""
    start = time.monotonic()
    while (seen := live_admission(app, token)) != expected:
        if time.monotonic() - start > deadline:
            raise AssertionError(f"{seen!r} instead of {expected!r} after {deadline} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def ended_sessions(app: FastAPI) -> list[LoginSessionEnded]:
    async with console(app).engine.connect() as conn:
        payloads = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [e for e in (parse_event(p) for p in payloads) if isinstance(e, LoginSessionEnded)]


def claims_of(app: FastAPI, token: str) -> Claims:
    claims: Claims = app.state.services.verifier.verify(token)
    return claims


async def test_the_live_room_tokens_open_the_room_and_the_rest_api_refuses_them(app: FastAPI) -> None:
    await make_user(app, "chutri", "chair", venue="main")
    chair = await signed_in(app, "chutri")
    live, connected = await chair.live_token(), await chair.connect_ticket_token(app)
    async with console(app).engine.connect() as conn:
        audited = (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
    for token in (live, connected):
        assert live_admission(app, token) == "ok"
        for response in (await as_service(app, "GET", "/api/cases", token),
                         await as_service(app, "POST", "/api/petitioners/p-1/identity", token,
                                          json={"purpose": "xem hồ sơ"})):
            assert response.status_code == 401
            assert response.json()["error"] == "not_signed_in" and "đăng nhập" in response.json()["message"]
    async with console(app).engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one() == audited
    service = console(app).issuer.issue("svc-report", roles=[Role.FOLLOW_UP], audience="api")
    assert (await as_service(app, "GET", "/api/cases", service)).status_code == 200
    assert live_admission(app, service) == "token_audience"
    await chair.http.aclose()


async def test_signing_out_ends_the_sessions_tokens_in_the_live_room_and_on_the_api(app: FastAPI) -> None:
    user = await make_user(app, "diemcau", "venue", venue="tien-du")
    official, elsewhere = await signed_in(app, "diemcau"), await signed_in(app, "diemcau")
    live, other = await official.live_token(), await elsewhere.live_token()
    sid = claims_of(app, live).sid
    assert sid is not None and sid != claims_of(app, other).sid
    cookie = str(official.http.cookies.get("tiepdan_session"))
    assert sid not in (cookie, secret_hash(cookie))  # neither the cookie nor the table's key
    # a REST token naming the session (no console route mints one; a service could be given one)
    api = console(app).issuer.issue(user.id, roles=[Role.RECEPTION], audience="api", sid=sid)
    assert (await as_service(app, "GET", "/api/cases", api)).status_code == 200

    assert (await official.post("/logout", data={"csrf_token": official.csrf})).status_code == 303
    assert [(e.user, e.sid, e.reason) for e in await ended_sessions(app)] == [(user.id, sid, "logout")]
    assert await until_admission(app, live, "token_revoked") < 5
    refused = await as_service(app, "GET", "/api/cases", api)
    assert refused.status_code == 401 and refused.json()["error"] == "not_signed_in"
    assert live_admission(app, other) == "ok"  # the same account's other session goes on
    for client in (official, elsewhere):
        await client.http.aclose()


async def test_signing_in_over_a_session_and_disabling_the_account_end_the_tokens(app: FastAPI) -> None:
    await make_user(app, "quantri", "admin")
    user = await make_user(app, "thuky", "secretary", venue="main")
    official = await signed_in(app, "thuky")
    first = await official.live_token()
    # signing in again from a browser that holds the session's cookie: the old session ends
    again = await official.http.post("/login", data={"username": "thuky", "password": PASSWORD,
                                                     "csrf_token": official.csrf})
    assert again.status_code == 303
    official.csrf = page_token((await official.http.get("/")).text)
    second = await official.live_token()
    assert await until_admission(app, first, "token_revoked") < 5
    assert live_admission(app, second) == "ok"

    admin = await signed_in(app, "quantri")
    done = await admin.post(f"/admin/users/{user.id}/disable", data={"csrf_token": admin.csrf})
    assert done.status_code == 200
    assert await until_admission(app, second, "account_disabled") < 5
    # disabling refuses every token of the account (UserDisabled); only the replaced session was announced
    assert [(e.sid, e.reason) for e in await ended_sessions(app)] == [(claims_of(app, first).sid, "replaced")]
    for client in (official, admin):
        await client.http.aclose()


async def test_a_new_password_ends_every_session_of_the_account_and_their_tokens(app: FastAPI) -> None:
    user = await make_user(app, "diemcau", "venue", venue="tien-du")
    sessions = [await signed_in(app, "diemcau") for _ in range(2)]
    tokens = [await official.live_token() for official in sessions]
    await set_password(console(app).engine, user.id, PASSWORD + "-moi", options=console(app).options)
    ended = {(e.sid, e.reason) for e in await ended_sessions(app)}
    assert ended == {(claims_of(app, token).sid, "password_changed") for token in tokens}
    for token in tokens:
        assert await until_admission(app, token, "token_revoked") < 5
    for official in sessions:
        await official.http.aclose()


def test_a_session_must_outlive_the_tokens_minted_through_it() -> None:
    ConsoleOptions(session_idle_s=8 * 3600, token_ttl_s=600)
    ConsoleOptions(session_idle_s=720, token_ttl_s=600, session_touch_s=60)
    with pytest.raises(ValueError, match="session_idle_s"):
        ConsoleOptions(session_idle_s=700, token_ttl_s=600, session_touch_s=60)
