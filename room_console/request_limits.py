"""The HTTP edge: how large a body each route accepts, and who may send one at all.

Theory of operation
-------------------
:data:`ROUTE_LIMITS` is the one table of the app's HTTP routes (the console's pages and JSON, the
complaint API, and the few routes the composition root adds): for each (methods, path template) the
largest body the route accepts and who may send one (:class:`Access`). A test walks the app's routes,
so a new route without a row fails the build. :class:`RequestLimitMiddleware` applies the table to
every HTTP request before anything reads its body:

1. The row is found by method and path. A request no row matches (an unknown path or method) is
   allowed no body: the router answers 404/405 without reading it.
2. A request that carries a body (``Content-Length`` above 0, or ``Transfer-Encoding``) to a row
   that needs a caller is authenticated first: nobody signed in → 401 (a page: the login form)
   before one byte of the body is read or parsed.
3. A declared ``Content-Length`` above the row's cap → 413 before reading.
4. Otherwise the body is counted as the app reads it; the chunk that passes the cap is not handed
   on: the middleware answers 413 at once and stops reading. The app's own answer to that (it sees
   an error where its body should be) goes nowhere.

Every response sent while the request body is not fully read (each refusal above, or an app that
answered early) closes the connection (``Connection: close``), so the server does not go on reading a
body nobody wants: a client that announced 2 GB gets its 413 and loses the connection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from complaints.attachments import MAX_ATTACHMENT_BYTES

from .actor import current_actor
from .errors import BodyTooLarge, ConsoleError, NotSignedIn

__all__ = ["Access", "RouteLimit", "RouteLimits", "ROUTE_LIMITS", "RequestLimitMiddleware", "authenticate_caller",
           "NO_BODY", "SMALL_FORM", "TOKEN_REQUEST", "JSON_BODY", "TEXT_FORM", "DOCUMENT_JSON", "UPLOAD"]

log = logging.getLogger("room_console.edge")

KIB = 1024
NO_BODY = 0
TOKEN_REQUEST = 4 * KIB  # {"room": "…"}
SMALL_FORM = 16 * KIB  # login, invitation, account administration, sign-out
JSON_BODY = 256 * KIB  # the complaint API's ordinary writes, and page forms with a few texts
TEXT_FORM = 512 * KIB  # the intake page: a petition text of 20,000 characters, url-encoded (9 bytes each)
DOCUMENT_JSON = 1024 * KIB  # API bodies carrying petition texts (2 × 20,000 characters) and up to 200 parties
UPLOAD = MAX_ATTACHMENT_BYTES  # one attachment, the raw body


class Access(Enum):
    PUBLIC = "public"  # anyone (login, invitation, public pages, health)
    SIGNED_IN = "signed_in"  # an official with a console session (pages, page scripts)
    ACTOR = "actor"  # a console session or a service's bearer token (the complaint API)


@dataclass(frozen=True)
class RouteLimit:
    """One row: ``methods`` (GET covers HEAD) of the route ``path`` (as declared, ``{param}`` and all)
    accept a body of at most ``max_body`` bytes, from callers allowed by ``access``."""

    methods: frozenset[str]
    path: str
    max_body: int
    access: Access
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", compile_path(self.path)[0])

    def matches(self, method: str, path: str) -> bool:
        wanted = "GET" if method == "HEAD" else method
        return wanted in self.methods and self._regex.match(path) is not None


def _row(methods: str, path: str, max_body: int, access: Access) -> RouteLimit:
    return RouteLimit(frozenset(methods.split()), path, max_body, access)


class RouteLimits:
    """The rows, searched in order (templates are anchored, so at most one row fits a request)."""

    def __init__(self, rows: Iterable[RouteLimit]) -> None:
        self.rows = tuple(rows)

    def find(self, method: str, path: str) -> RouteLimit | None:
        return next((row for row in self.rows if row.matches(method, path)), None)


PUBLIC, SIGNED_IN, ACTOR = Access.PUBLIC, Access.SIGNED_IN, Access.ACTOR

ROUTE_LIMITS = RouteLimits([
    # -- public --------------------------------------------------------------------------------------
    _row("GET", "/login", NO_BODY, PUBLIC),
    _row("POST", "/login", SMALL_FORM, PUBLIC),
    _row("POST", "/logout", SMALL_FORM, PUBLIC),  # ends the cookie's session if there is one
    _row("GET", "/invite/{token}", NO_BODY, PUBLIC),
    _row("POST", "/invite/{token}", SMALL_FORM, PUBLIC),
    _row("GET", "/tra-cuu", NO_BODY, PUBLIC),
    _row("GET", "/xac-minh", NO_BODY, PUBLIC),  # verification of signed documents (views.document_verify)
    _row("POST", "/xac-minh", UPLOAD, PUBLIC),  # a PDF to hash (not kept)
    _row("GET", "/xac-minh/{document_id}", NO_BODY, PUBLIC),
    _row("GET", "/lich/ics/{kind}/{key}/{token}.ics", NO_BODY, PUBLIC),  # signed feed links (feed_links)
    _row("GET", "/static/{path:path}", NO_BODY, PUBLIC),
    _row("GET", "/healthz", NO_BODY, PUBLIC),
    _row("GET", "/metrics", NO_BODY, PUBLIC),
    # -- console pages and their scripts (a session) ---------------------------------------------------
    _row("GET", "/", NO_BODY, SIGNED_IN),
    _row("GET", "/admin/users", NO_BODY, SIGNED_IN),
    _row("POST", "/admin/users", SMALL_FORM, SIGNED_IN),
    _row("POST", "/admin/users/{user_id}/disable", SMALL_FORM, SIGNED_IN),
    _row("POST", "/admin/invitations", SMALL_FORM, SIGNED_IN),
    _row("GET", "/admin/venues", NO_BODY, SIGNED_IN),  # venues (room_console.views.venues_admin)
    _row("POST", "/admin/venues", SMALL_FORM, SIGNED_IN),
    _row("POST", "/admin/venues/{venue_id}", SMALL_FORM, SIGNED_IN),
    _row("POST", "/admin/venues/{venue_id}/deactivate", SMALL_FORM, SIGNED_IN),
    _row("GET", "/lich", NO_BODY, SIGNED_IN),  # the session calendar and planning (room_console.views.planning)
    _row("POST", "/lich/phien", SMALL_FORM, SIGNED_IN),
    _row("POST", "/lich/dinh-ky", SMALL_FORM, SIGNED_IN),
    _row("GET", "/lich/phien/{session_id}", NO_BODY, SIGNED_IN),
    _row("POST", "/lich/phien/{session_id}/{action}", SMALL_FORM, SIGNED_IN),
    _row("GET", "/api/me", NO_BODY, SIGNED_IN),
    _row("POST", "/api/live/connect-ticket", TOKEN_REQUEST, SIGNED_IN),
    _row("POST", "/api/live/token", TOKEN_REQUEST, SIGNED_IN),
    _row("GET", "/cases", NO_BODY, SIGNED_IN),
    _row("GET", "/cases/{case_id}", NO_BODY, SIGNED_IN),
    _row("GET", "/cases/{case_id}/attachments/{attachment_id}", NO_BODY, SIGNED_IN),
    _row("GET", "/cases/{case_id}/brief", NO_BODY, SIGNED_IN),  # the printable brief (room_console.views.dossier)
    _row("GET", "/cases/{case_id}/edit", NO_BODY, SIGNED_IN),
    _row("POST", "/cases/{case_id}/edit", JSON_BODY, SIGNED_IN),
    _row("GET", "/cases/{case_id}/decisions/new", NO_BODY, SIGNED_IN),
    _row("POST", "/cases/{case_id}/decisions", JSON_BODY, SIGNED_IN),
    _row("GET", "/cases/{case_id}/directives/new", NO_BODY, SIGNED_IN),
    _row("POST", "/cases/{case_id}/directives", JSON_BODY, SIGNED_IN),
    _row("POST", "/cases/{case_id}/identity/{petitioner_id}", SMALL_FORM, SIGNED_IN),
    _row("GET", "/intake", NO_BODY, SIGNED_IN),
    _row("POST", "/intake", TEXT_FORM, SIGNED_IN),
    _row("GET", "/ban-tiep-nhan", NO_BODY, SIGNED_IN),  # the registration desk (schedules.desk)
    _row("POST", "/ban-tiep-nhan", TEXT_FORM, SIGNED_IN),
    _row("GET", "/ban-tiep-nhan/phieu/{ticket_id}", NO_BODY, SIGNED_IN),
    _row("GET", "/api/desk/sessions", NO_BODY, SIGNED_IN),
    _row("POST", "/api/desk/duplicates", DOCUMENT_JSON, SIGNED_IN),
    _row("POST", "/api/desk/registrations", DOCUMENT_JSON, SIGNED_IN),
    _row("POST", "/api/desk/sessions/{session_id}/tickets/{ticket_no}/triage", TOKEN_REQUEST, SIGNED_IN),
    _row("GET", "/follow-up", NO_BODY, SIGNED_IN),
    _row("GET", "/phien", NO_BODY, SIGNED_IN),
    _row("GET", "/phien/{room}", NO_BODY, SIGNED_IN),
    _row("GET", "/bang-so", NO_BODY, SIGNED_IN),  # the queue boards (room_console.views.board)
    _row("GET", "/xem-lai", NO_BODY, SIGNED_IN),  # replay of recordings (room_console.views.replay)
    _row("GET", "/xem-lai/{segment_id}", NO_BODY, SIGNED_IN),
    _row("GET", "/xem-lai/{segment_id}/tep/{name}", NO_BODY, SIGNED_IN),
    _row("GET", "/xem-lai/{segment_id}/ban-dung", NO_BODY, SIGNED_IN),
    _row("POST", "/xem-lai/{segment_id}/dung-lai", SMALL_FORM, SIGNED_IN),  # compose again (a form)
    _row("GET", "/bang-so/{session_id}/{venue}", NO_BODY, SIGNED_IN),
    _row("GET", "/bien-ban", NO_BODY, SIGNED_IN),  # the live minutes (room_console.views.minutes)
    _row("GET", "/bien-ban/{session_id}/{case_id}", NO_BODY, SIGNED_IN),
    _row("GET", "/van-ban", NO_BODY, SIGNED_IN),  # the signed documents (room_console.views.documents)
    _row("GET", "/van-ban/{session_id}", NO_BODY, SIGNED_IN),
    _row("POST", "/van-ban/{session_id}/bien-ban/{case_id}", SMALL_FORM, SIGNED_IN),  # issue a case's minutes
    _row("POST", "/van-ban/{session_id}/thong-bao", SMALL_FORM, SIGNED_IN),  # issue the conclusion notice
    _row("POST", "/van-ban/tai-lieu/{document_id}/ky-lai", SMALL_FORM, SIGNED_IN),  # sign a kept draft again
    _row("GET", "/van-ban/tai-lieu/{document_id}/ban-goc", NO_BODY, SIGNED_IN),  # the signed original
    _row("GET", "/van-ban/tai-lieu/{document_id}/ban-cong-khai", NO_BODY, SIGNED_IN),  # the public twin
    # -- the complaint API (a session or a service token) ---------------------------------------------
    _row("GET", "/api/openapi.json", NO_BODY, ACTOR),  # administrators only, and not in production
    _row("GET", "/api/cases", NO_BODY, ACTOR),
    _row("GET", "/api/cases/{case_id}", NO_BODY, ACTOR),
    _row("GET", "/api/cases/{case_id}/dossier", NO_BODY, ACTOR),  # the chair's case dossier
    _row("GET", "/api/sessions/{session_id}/dossier", NO_BODY, ACTOR),
    _row("PATCH", "/api/cases/{case_id}", JSON_BODY, ACTOR),
    _row("POST", "/api/intake/duplicates", DOCUMENT_JSON, ACTOR),
    _row("POST", "/api/intake", DOCUMENT_JSON, ACTOR),
    _row("POST", "/api/petitioners", JSON_BODY, ACTOR),
    _row("POST", "/api/cases/{case_id}/petitions", DOCUMENT_JSON, ACTOR),
    _row("POST", "/api/cases/{case_id}/receptions", JSON_BODY, ACTOR),
    _row("POST", "/api/cases/{case_id}/handling-decisions", JSON_BODY, ACTOR),
    _row("POST", "/api/cases/{case_id}/delegations", JSON_BODY, ACTOR),
    _row("POST", "/api/cases/{case_id}/directives", JSON_BODY, ACTOR),
    _row("GET", "/api/directives", NO_BODY, ACTOR),
    _row("POST", "/api/directives/{directive_id}/reports", JSON_BODY, ACTOR),
    _row("POST", "/api/petitioners/{petitioner_id}/identity", SMALL_FORM, ACTOR),
    _row("POST", "/api/petitions/{petition_id}/attachments", UPLOAD, ACTOR),
    _row("GET", "/api/attachments/{attachment_id}", NO_BODY, ACTOR),
    _row("GET", "/api/sessions/{session_id}", NO_BODY, ACTOR),  # room_console.api.sessions: transitions
    _row("POST", "/api/sessions/{session_id}/publish", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/open", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/start", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/close", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/postpone", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/cancel", SMALL_FORM, ACTOR),
    _row("GET", "/api/sessions/{session_id}/queue", NO_BODY, ACTOR),
    _row("POST", "/api/sessions/{session_id}/queue/{action}", SMALL_FORM, ACTOR),
    _row("POST", "/api/sessions/{session_id}/queue/venues/{venue}/back", SMALL_FORM, ACTOR),  # api.venue_link
    _row("GET", "/api/sessions/{session_id}/roll-call", NO_BODY, ACTOR),
    _row("POST", "/api/sessions/{session_id}/roll-call", JSON_BODY, ACTOR),  # 64 venues × 30 officials
    _row("GET", "/api/sessions/{session_id}/readiness", NO_BODY, ACTOR),
    _row("POST", "/api/sessions/{session_id}/readiness", SMALL_FORM, ACTOR),
    _row("GET", "/api/announcements/{name}", NO_BODY, ACTOR),
    _row("GET", "/api/sessions/{session_id}/board/{venue}", NO_BODY, ACTOR),
    _row("GET", "/api/sessions/{session_id}/board/{venue}/events", NO_BODY, ACTOR),
    _row("GET", "/api/replays/{segment_id}", NO_BODY, ACTOR),  # room_console.views.replay
    _row("POST", "/api/replays/{segment_id}/compose", SMALL_FORM, ACTOR),
    _row("GET", "/api/replays/{segment_id}/verification", NO_BODY, ACTOR),
    _row("GET", "/api/minutes/{session_id}/{case_id}", NO_BODY, ACTOR),  # room_console.api.minutes
    # the whole form: five texts of 10,000 characters, the attendees, directives and documents (~600 kB at most)
    _row("PUT", "/api/minutes/{session_id}/{case_id}", DOCUMENT_JSON, ACTOR),
    _row("GET", "/api/minutes/{session_id}/{case_id}/versions", NO_BODY, ACTOR),
    _row("GET", "/api/minutes/{session_id}/{case_id}/versions/{version}", NO_BODY, ACTOR),
    # read-back, confirmation and approval (room_console.api.minutes_approval); a signature: one PNG of 256 KB
    _row("GET", "/api/minutes-approval/{session_id}", NO_BODY, ACTOR),
    _row("GET", "/api/minutes-approval/{session_id}/{case_id}", NO_BODY, ACTOR),
    _row("POST", "/api/minutes-approval/{session_id}/{case_id}/readback", SMALL_FORM, ACTOR),
    _row("POST", "/api/minutes-approval/{session_id}/{case_id}/signature", JSON_BODY, ACTOR),
    _row("POST", "/api/minutes-approval/{session_id}/{case_id}/verbal", SMALL_FORM, ACTOR),
    _row("POST", "/api/minutes-approval/{session_id}/{case_id}/approve", SMALL_FORM, ACTOR),
])

Authenticate = Callable[[Request, Access], Awaitable[None]]
Reject = Callable[[Request, ConsoleError], Awaitable[Response]]


async def authenticate_caller(request: Request, access: Access) -> None:
    """Raise :class:`NotSignedIn` unless the request comes from a caller ``access`` allows (a console
    session for ``SIGNED_IN``; a session or a valid service token for ``ACTOR``)."""
    actor = await current_actor(request)
    if access is Access.SIGNED_IN and actor.session_id is None:
        raise NotSignedIn("a console session is required")


class _BodyLimitExceeded(Exception):
    """Raised into the app where it reads past the cap (the 413 has gone out already)."""


class RequestLimitMiddleware:
    """Applies ``limits`` to every HTTP request (see the module docstring). ``authenticate`` raises a
    :class:`ConsoleError` for a caller who may not send a body; ``reject`` renders a ConsoleError (JSON
    for ``/api/``, a page or the login redirect otherwise)."""

    def __init__(self, app: ASGIApp, *, limits: RouteLimits = ROUTE_LIMITS,
                 authenticate: Authenticate = authenticate_caller, reject: Reject) -> None:
        self.app = app
        self._limits = limits
        self._authenticate = authenticate
        self._reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        row = self._limits.find(method, _route_path(scope))
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        has_body = (declared or 0) > 0 or "transfer-encoding" in headers
        cap = NO_BODY if row is None else row.max_body
        if has_body and row is not None:
            request = Request(scope)
            if row.access is not Access.PUBLIC:
                try:
                    await self._authenticate(request, row.access)
                except ConsoleError as exc:
                    await _refuse(self._reject, request, exc, send)
                    return
            if declared is not None and declared > cap:
                await _refuse(self._reject, request, BodyTooLarge("declared body too large", limit=cap), send)
                return
        exchange = _Exchange(scope, receive, send, cap=cap, has_body=has_body, reject=self._reject)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.answered:
                raise
            # The app stopped where its body should have been (our exception, or what it made of it);
            # the client has its 413.


class _Exchange:
    """One request on its way through: counts the body the app reads, answers 413 past the cap."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, cap: int, has_body: bool,
                 reject: Reject) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._cap = cap
        self._reject = reject
        self.body_done = not has_body
        self.response_started = False
        self.over_cap = False
        self.answered = False  # our 413 went out: whatever the app sends after it goes nowhere
        self.size = 0

    async def receive(self) -> Message:
        if self.over_cap:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.body_done = True
            if self.size > self._cap:
                self.over_cap = True
                if not self.response_started:  # (an app already answering is stopped by the exception alone)
                    self.response_started = self.answered = True
                    await _refuse(self._reject, Request(self._scope),
                                  BodyTooLarge("body too large", limit=self._cap), self._send)
                raise _BodyLimitExceeded
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
            if not self.body_done:
                message = _closing(message)
        await self._send(message)


async def _refuse(reject: Reject, request: Request, error: ConsoleError, send: Send) -> None:
    response = await reject(request, error)
    log.info("request refused before its body", extra={"ctx": {
        "method": request.method, "path": request.url.path, "status": response.status_code,
        "code": type(error).__name__}})

    async def closing_send(message: Message) -> None:
        await send(_closing(message) if message["type"] == "http.response.start" else message)

    await response(request.scope, _no_body, closing_send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _closing(start: Message) -> Message:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"connection"]
    return {**start, "headers": [*headers, (b"connection", b"close")]}


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _route_path(scope: Scope) -> str:
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path
