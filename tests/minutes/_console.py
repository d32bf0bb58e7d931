"""Helpers of the minutes tests over HTTP (not a test module): the console's officials, a signed-in client, and
a case called on the bus as the scheduler calls it (the drafts consumer opens its draft)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.enums import PetitionKind
from minutes.tables import minutes_drafts
from signaling.events import CaseCalled
from tiepdan.app import Services

from ..room_console._helpers import page_token, sign_in
from ..room_console._live_sessions import open_live_session
from ._drafts import SESSION, VENUE, register_case

# The officials of the console app (tests/minutes/conftest.py ``app``): username → roles.
USERS = {"thuky": ("secretary",), "thuky2": ("secretary",), "chutri": ("chair",), "diemcau": ("venue",)}
# Its units: unit id → name.
UNITS = {"so-tnmt": "Sở Nông nghiệp và Môi trường", "ubnd-tien-du": "UBND xã Tiên Du"}
# The mark of a test that uses the module's ``app``: it runs in the module's event loop, the app's.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


class Client:
    """A signed-in official: ``put`` sends JSON (or raw bytes) with the page's CSRF header, ``post`` a form with
    the CSRF field (or an empty one, ``token=False``)."""

    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def put(self, url: str, body: dict[str, Any] | bytes) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf, "content-type": "application/json"}
        if isinstance(body, bytes):
            return await self.http.put(url, content=body, headers=headers)
        return await self.http.put(url, json=body, headers=headers)

    async def post(self, url: str, *, token: bool = True) -> httpx.Response:
        return await self.http.post(url, data={"csrf_token": self.csrf if token else ""})


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    await sign_in(http, username)
    return Client(http, page_token((await http.get("/")).text))


async def draft_opened(services: Services, case_id: str) -> None:
    """Until the called case's draft is open (the drafts consumer runs in the lifespan's supervisor)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with services.engine.connect() as conn:
            if (await conn.execute(select(minutes_drafts.c.id).where(minutes_drafts.c.case_id == case_id))).first():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the call opened no draft")


async def called_case(app: FastAPI, kind: PetitionKind = PetitionKind.COMPLAINT, call_seq: int = 1, *,
                      session: str = SESSION) -> str:
    """A registered case, called in ``session`` on the bus as the scheduler calls it; returns once its draft is
    open."""
    services: Services = app.state.services
    # the scheduler holds the session (its call would have come from there): the minutes record its kind
    await open_live_session(services.engine, session, [("main", "Trụ sở Tiếp công dân tỉnh"), (VENUE, "Xã Tiên Du")])
    async with services.engine.begin() as conn:
        case_id = await register_case(conn, services.keyring, kind=kind)
    await services.bus.publish(CaseCalled(session=session, case=case_id, ticket_no=call_seq, venue=VENUE,
                                          call_seq=call_seq, announcement_text=f"Mời công dân có số thứ tự {call_seq}"))
    await draft_opened(services, case_id)
    return case_id
