"""The console as a person's browser uses it, for bots: sign in with a console account, then call the JSON
APIs with the session cookie and the page's CSRF token — the desk officer's page (``/api/desk/*``), the
chair's queue controls (``/api/sessions/{id}/queue``), roll call (``/api/sessions/{id}/roll-call``) and
approval of the minutes (``/api/minutes-approval/…/approve``); the secretary's bot is
:mod:`tiepdan.bots.secretary_bot`.

:class:`ConsoleClient` signs in like the login form (``GET /login`` for the form's token, ``POST /login``),
reads the CSRF token from the ``<meta name="csrf-token">`` of a signed-in page and sends it as
``X-CSRF-Token`` on every ``POST`` and ``PUT``. :class:`DeskBot` registers citizens (:class:`DemoCitizen`: a chip ID
card's QR string, as the desk's USB scanner types it) and :class:`ChairBot` records the roll call, reads the
queue, acts on it and approves the minutes.
A refused request raises :class:`ConsoleRefused` with the status and the problem's ``error`` code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

__all__ = ["ChairBot", "ConsoleClient", "ConsoleRefused", "DemoCitizen", "DeskBot", "QueueTicket"]

_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


class ConsoleRefused(Exception):
    """The console answered a bot's request with an error (status, problem code; never a person's data)."""

    def __init__(self, what: str, status: int, code: str) -> None:
        super().__init__(f"{what}: HTTP {status} {code}")
        self.status = status
        self.code = code


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not_json"
    return str(body.get("error", "unknown")) if isinstance(body, dict) else "unknown"


class ConsoleClient:
    """One signed-in console session over HTTP (see the module docstring). ``close`` ends it."""

    def __init__(self, base_url: str, *, timeout: float = 20.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, follow_redirects=False, transport=transport)
        self.csrf = ""

    async def sign_in(self, username: str, password: str) -> None:
        form = await self.http.get("/login")
        token = _FORM_TOKEN.search(form.text)
        if token is None:
            raise ConsoleRefused("login form", form.status_code, "no_csrf_field")
        signed = await self.http.post("/login", data={"username": username, "password": password,
                                                      "csrf_token": token.group(1), "next": "/"})
        if signed.status_code != 303:
            raise ConsoleRefused("login", signed.status_code, "login_refused")
        page = await self.http.get("/")
        meta = _META_TOKEN.search(page.text)
        if meta is None or not meta.group(1):
            raise ConsoleRefused("signed-in page", page.status_code, "no_csrf_meta")
        self.csrf = meta.group(1)

    async def get_json(self, url: str) -> dict[str, Any]:
        response = await self.http.get(url)
        if response.status_code != 200:
            raise ConsoleRefused(f"GET {url}", response.status_code, _code(response))
        body: dict[str, Any] = response.json()
        return body

    async def post_json(self, url: str, payload: dict[str, Any] | None = None, *, ok: int = 200) -> dict[str, Any]:
        response = await self.http.post(url, json=payload, headers={"x-csrf-token": self.csrf})
        if response.status_code != ok:
            raise ConsoleRefused(f"POST {url}", response.status_code, _code(response))
        body: dict[str, Any] = response.json()
        return body

    async def put_json(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.put(url, json=payload, headers={"x-csrf-token": self.csrf})
        if response.status_code != 200:
            raise ConsoleRefused(f"PUT {url}", response.status_code, _code(response))
        body: dict[str, Any] = response.json()
        return body

    async def close(self) -> None:
        await self.http.aclose()


@dataclass(frozen=True)
class DemoCitizen:
    """A made-up citizen of the demo, registered at ``venue``: the fields of a chip ID card's QR code."""

    venue: str
    id_number: str
    full_name: str
    birth_date: date
    male: bool
    address: str
    content: str
    disabled: bool = False

    @property
    def chip_qr(self) -> str:
        """The QR string (``số CCCD||Họ tên|ddmmyyyy|Nam/Nữ|nơi thường trú|ngày cấp``), as the scanner types it."""
        born = self.birth_date.strftime("%d%m%Y")
        return f"{self.id_number}||{self.full_name}|{born}|{'Nam' if self.male else 'Nữ'}|{self.address}|15082021"


@dataclass(frozen=True)
class QueueTicket:
    ticket_no: int
    venue: str


class DeskBot:
    """A desk officer (role ``reception``) registering citizens through ``/api/desk/registrations``."""

    def __init__(self, client: ConsoleClient) -> None:
        self.client = client

    async def register(self, session_id: str, citizen: DemoCitizen) -> QueueTicket:
        """Register ``citizen`` at its venue, triaged "đề xuất lãnh đạo tiếp": the ticket issued."""
        body: dict[str, Any] = {
            "session_id": session_id, "venue": citizen.venue, "chip_qr": citizen.chip_qr,
            "petition": {"kind": "complaint", "content": citizen.content},
            "respondent": {"kind": "organisation", "name": "Ủy ban nhân dân cấp xã"},
            "priorities": ["disabled"] if citizen.disabled else [], "triage": "propose_leader",
        }
        result = await self.client.post_json("/api/desk/registrations", body, ok=201)
        ticket = result.get("ticket")
        if not isinstance(ticket, dict):
            raise ConsoleRefused("desk registration", 201, "no_ticket")
        return QueueTicket(int(ticket["number"]), str(ticket["venue"]))


class ChairBot:
    """The chair's queue controls (grant ``call_queue``) through ``/api/sessions/{id}/queue``."""

    def __init__(self, client: ConsoleClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.version: int | None = None

    async def queue(self) -> dict[str, Any]:
        shown = await self.client.get_json(f"/api/sessions/{self.session_id}/queue")
        self.version = int(shown["version"])
        return shown

    async def published_order(self) -> list[QueueTicket]:
        """The waiting tickets in the call order the queue publishes (what every board shows)."""
        shown = await self.queue()
        return [QueueTicket(int(t["ticket_no"]), str(t["venue"])) for t in shown["waiting"]]

    async def roll_call(self, citizens: Mapping[str, int]) -> int:
        """Record the roll call (``/api/sessions/{id}/roll-call``): every venue of ``citizens`` present with
        that many citizens; the roll call's number."""
        shown = await self.client.get_json(f"/api/sessions/{self.session_id}/roll-call")
        body = {"expected_roll_call_no": int(shown["roll_call_no"]),
                "venues": [{"venue": venue, "present": True, "citizens": count} for venue, count in citizens.items()]}
        recorded = await self.client.post_json(f"/api/sessions/{self.session_id}/roll-call", body, ok=201)
        return int(recorded["roll_call_no"])

    async def act(self, action: str) -> dict[str, Any]:
        """``call-next``, ``end`` …, with the version last seen (a stale one is refused: 409)."""
        answer = await self.client.post_json(f"/api/sessions/{self.session_id}/queue/{action}",
                                             {"expected_version": self.version})
        self.version = int(answer["version"])
        return answer

    async def approve(self, case_id: str, confirmed_sha256: str) -> dict[str, Any]:
        """Approve the minutes of ``case_id`` the citizen confirmed (``/api/minutes-approval/…/approve``,
        grant ``approve``): the approval's state (``recorded`` once the case is written)."""
        return await self.client.post_json(f"/api/minutes-approval/{self.session_id}/{case_id}/approve",
                                           {"confirmed_sha256": confirmed_sha256})
