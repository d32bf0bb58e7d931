"""The console's HTTP routes: login, logout, dashboard, account administration, invitations and
connect tickets for ``/ws``. Handlers are thin: parse, authorise, call one accounts function, shape the
response. :func:`install_console` adds the router, the static files, the security middlewares and
the error pages to an app; the lifespan puts a :class:`ConsoleContext` on ``app.state.console``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from signaling.grants import ROLE_LABELS_VI, Grant, Role

from . import accounts
from .accounts import User
from .actor import request_session_user
from .context import ConsoleContext
from .errors import ConsoleError, Forbidden, InvalidCredentials, InvitationInvalid, LoginRateLimited, NotSignedIn
from .errors import http_status as error_status
from .i18n import t
from .navigation import grant_keys_for, navigation_for
from .options import ConsoleOptions
from .pages import Pages
from .request_limits import RequestLimitMiddleware
from .security import (
    CsrfContext,
    CsrfMiddleware,
    SecurityHeadersMiddleware,
    clear_session_cookie,
    ensure_csrf_cookie,
    pre_session_token,
    read_session_id,
    safe_next,
    set_session_cookie,
)

__all__ = ["create_console_router", "install_console", "SignedIn", "CurrentUser", "OptionalUser", "Console",
           "require_grant", "access_token_for"]

log = logging.getLogger("room_console")


# -- dependencies -----------------------------------------------------------------------------------


def access_token_for(console: ConsoleContext, signed: SignedIn, room: str | None) -> str:
    """A live-room access token of the signed-in user for ``room`` (what a connect ticket stands for, and what a
    page sends in ``refresh``): valid on ``/ws`` only (audience ``ws``), and only while the login session
    lasts (``sid``: the room servers refuse it once the session ended)."""
    user = signed.user
    return console.issuer.issue(user.id, roles=list(user.roles), unit=user.unit, venue=user.venue,
                                name=user.display_name, room=room, ttl_s=console.options.token_ttl_s,
                                audience="ws", sid=accounts.token_sid(signed.session_id))


def get_console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(get_console)]


@dataclass(frozen=True)
class SignedIn:
    user: User
    session_id: str
    csrf_token: str  # the session's own (room_console.csrf): what its pages send back


async def optional_user(request: Request, console: Console) -> SignedIn | None:
    signed = await request_session_user(request)
    if signed is None:
        return None
    session_id, user = signed
    return SignedIn(user, session_id, console.csrf.session_token(session_id))


OptionalUser = Annotated[SignedIn | None, Depends(optional_user)]


async def current_user(signed: OptionalUser) -> SignedIn:
    if signed is None:
        raise NotSignedIn("not signed in")
    return signed


CurrentUser = Annotated[SignedIn, Depends(current_user)]


def require_grant(grant: Grant) -> Callable[[SignedIn], Awaitable[SignedIn]]:
    """A dependency: the signed-in user, who must hold ``grant`` (else 403)."""

    async def dependency(signed: CurrentUser) -> SignedIn:
        if not signed.user.has(grant):
            raise Forbidden("grant missing")
        return signed

    return dependency


Manager = Annotated[SignedIn, Depends(require_grant(Grant.MANAGE))]


# -- rendering helpers ------------------------------------------------------------------------------


@cache
def _error_pages() -> Pages:
    return Pages()


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _page(console: ConsoleContext, name: str, signed: SignedIn | None, *, status: int = 200,
          **context: Any) -> Response:
    base: dict[str, Any] = {
        "user": None if signed is None else signed.user,
        "csrf_token": "" if signed is None else signed.csrf_token,
        "nav": [] if signed is None else navigation_for(signed.user.grants),
    }
    base.update(context)
    return console.pages.render(name, base, status=status)


render_page = _page


def _error_page(request: Request, status: int, message_key: str, **params: object) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message_key, "message": t(message_key, **params)}, status_code=status)
    title_key = f"error.{status}.title"
    context: dict[str, Any] = {"user": None, "csrf_token": "", "nav": [], "status": status,
               "title": t(title_key) if title_key in _error_pages().messages else t("error.title"),
               "message": t(message_key, **params)}
    return _error_pages().render("error.html", context, status=status)


def render_error_text(status: int, message: str) -> Response:
    """An error page with a message already in Vietnamese (e.g. from the complaint database)."""
    title_key = f"error.{status}.title"
    context: dict[str, Any] = {"user": None, "csrf_token": "", "nav": [], "status": status,
                               "title": t(title_key) if title_key in _error_pages().messages else t("error.title"),
                               "message": message}
    return _error_pages().render("error.html", context, status=status)


def _csrf_reject(request: Request, message_key: str) -> Response:
    status = 413 if message_key == "error.too_large" else 403
    log.info("request rejected by csrf check", extra={"ctx": {"path": request.url.path, "status": status}})
    return _error_page(request, status, message_key)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_form(request: Request, console: ConsoleContext, *, next_path: str, status: int = 200,
                error: str | None = None, info: str | None = None, username: str = "") -> Response:
    token = pre_session_token(request, console.options, console.csrf, console.clock())
    response = _page(console, "login.html", None, status=status, csrf_token=token, next_path=next_path,
                     error=error, info=info, username=username)
    ensure_csrf_cookie(request, response, console.options, token)
    if read_session_id(request, console.options) is not None:
        clear_session_cookie(response, console.options)  # a stale cookie of an ended session
    return response


def _admin_page(console: ConsoleContext, signed: SignedIn, users: list[User], *, status: int = 200,
                message: str | None = None, error: str | None = None, invite_link: str | None = None,
                invite_expires: float | None = None) -> Response:
    return _page(console, "admin/users.html", signed, status=status, users=users, message=message, error=error,
                 invite_link=invite_link, invite_expires=invite_expires,
                 roles=[(r.value, ROLE_LABELS_VI[r]) for r in Role],
                 min_password=console.options.min_password_length)


def _error_text(exc: ConsoleError, options: ConsoleOptions) -> str:
    return t(exc.message_key, min=options.min_password_length, **exc.params)


class ConnectTicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


# -- the router -------------------------------------------------------------------------------------


def create_console_router() -> APIRouter:
    router = APIRouter()

    @router.get("/login", include_in_schema=False)
    async def login_page(request: Request, console: Console, signed: OptionalUser, next: str = "/",
                         signed_out: int = 0) -> Response:
        if signed is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return _login_form(request, console, next_path=safe_next(next),
                           info=t("login.signed_out") if signed_out else None)

    @router.post("/login", include_in_schema=False)
    async def login_submit(
        request: Request, console: Console,
        username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        next_path = safe_next(next)
        shown_name = username[:64]
        try:
            result = await accounts.login(console.engine, username=username, password=password,
                                          client_ip=_client_ip(request), options=console.options, now=console.clock())
        except LoginRateLimited as exc:
            log.info("login rate limited", extra={"ctx": {"status": 429}})
            limited = _login_form(request, console, next_path=next_path, status=429,
                                  error=_error_text(exc, console.options), username=shown_name)
            limited.headers["retry-after"] = str(exc.retry_after)
            return limited
        except InvalidCredentials as exc:
            log.info("login failed", extra={"ctx": {"status": 401}})
            return _login_form(request, console, next_path=next_path, status=401,
                               error=_error_text(exc, console.options), username=shown_name)
        old = read_session_id(request, console.options)
        if old is not None:
            async with console.engine.begin() as conn:
                await accounts.end_session(conn, old, reason="replaced")
        log.info("login", extra={"ctx": {"user_id": result.user.id}})
        response = RedirectResponse(next_path, status_code=303)
        set_session_cookie(response, result.session_id, console.options)
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request, console: Console) -> Response:
        session_id = read_session_id(request, console.options)
        if session_id is not None:
            async with console.engine.begin() as conn:
                await accounts.end_session(conn, session_id)
        response = RedirectResponse("/login?signed_out=1", status_code=303)
        clear_session_cookie(response, console.options)
        return response

    @router.get("/", include_in_schema=False)
    async def home(console: Console, signed: CurrentUser) -> Response:
        return _page(console, "home.html", signed, grant_keys=grant_keys_for(signed.user.grants))

    @router.get("/admin/users", include_in_schema=False)
    async def admin_users(console: Console, signed: Manager) -> Response:
        async with console.engine.connect() as conn:
            users = await accounts.list_users(conn)
        return _admin_page(console, signed, users)

    @router.post("/admin/users", include_in_schema=False)
    async def admin_add_user(
        console: Console, signed: Manager,
        username: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
        roles: Annotated[list[str] | None, Form()] = None, unit: Annotated[str, Form()] = "",
        venue: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
    ) -> Response:
        message = error = None
        status = 200
        try:
            user = await accounts.add_user(console.engine, username=username, display_name=display_name,
                                           roles=roles or [], password=password, unit=unit, venue=venue,
                                           options=console.options, now=console.clock())
            log.info("user added", extra={"ctx": {"user_id": user.id}})
            message = t("admin.users.added_ok", username=user.username)
        except ConsoleError as exc:
            error, status = _error_text(exc, console.options), error_status(exc)
        async with console.engine.connect() as conn:
            users = await accounts.list_users(conn)
        return _admin_page(console, signed, users, status=status, message=message, error=error)

    @router.post("/admin/users/{user_id}/disable", include_in_schema=False)
    async def admin_disable_user(console: Console, signed: Manager, user_id: str) -> Response:
        message = error = None
        status = 200
        if user_id == signed.user.id:
            error, status = t("admin.users.error.self"), 409
        else:
            try:
                async with console.engine.begin() as conn:
                    user = await accounts.disable_user(conn, user_id[:64], now=console.clock())
                log.info("user disabled", extra={"ctx": {"user_id": user.id}})
                message = t("admin.users.disabled_ok", username=user.username)
            except ConsoleError as exc:
                error, status = _error_text(exc, console.options), error_status(exc)
        async with console.engine.connect() as conn:
            users = await accounts.list_users(conn)
        return _admin_page(console, signed, users, status=status, message=message, error=error)

    @router.post("/admin/invitations", include_in_schema=False)
    async def admin_invite(
        request: Request, console: Console, signed: Manager,
        username: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
        venue: Annotated[str, Form()] = "",
    ) -> Response:
        now = console.clock()
        link = error = None
        status = 200
        try:
            async with console.engine.begin() as conn:
                token = await accounts.create_invitation(
                    conn, username=username, display_name=display_name, role=Role.VENUE, venue=venue, unit=None,
                    created_by=signed.user.id, now=now, ttl_s=console.options.invitation_ttl_s)
            base = (console.options.public_url or str(request.base_url)).rstrip("/")
            link = f"{base}/invite/{token}"
            log.info("venue operator invited", extra={"ctx": {"user_id": signed.user.id}})
        except ConsoleError as exc:
            error, status = _error_text(exc, console.options), error_status(exc)
        async with console.engine.connect() as conn:
            users = await accounts.list_users(conn)
        return _admin_page(console, signed, users, status=status, error=error, invite_link=link,
                           invite_expires=now + console.options.invitation_ttl_s if link else None)

    @router.get("/invite/{token}", include_in_schema=False)
    async def invite_page(request: Request, console: Console, token: str) -> Response:
        async with console.engine.connect() as conn:
            invitation = await accounts.get_invitation(conn, token, now=console.clock())
        return _invite_form(request, console, invitation)

    @router.post("/invite/{token}", include_in_schema=False)
    async def invite_submit(
        request: Request, console: Console, token: str,
        password: Annotated[str, Form()] = "", password_again: Annotated[str, Form()] = "",
    ) -> Response:
        async with console.engine.connect() as conn:
            invitation = await accounts.get_invitation(conn, token, now=console.clock())
        if password != password_again:
            return _invite_form(request, console, invitation, status=422, error=t("invite.error.mismatch"))
        try:
            user = await accounts.accept_invitation(console.engine, token, password=password,
                                                    options=console.options, now=console.clock())
        except InvitationInvalid:
            raise
        except ConsoleError as exc:
            return _invite_form(request, console, invitation, status=error_status(exc),
                                error=_error_text(exc, console.options))
        async with console.engine.begin() as conn:
            session_id = await accounts.create_session(conn, user.id, now=console.clock(),
                                                       idle_s=console.options.session_idle_s)
        log.info("invitation accepted", extra={"ctx": {"user_id": user.id}})
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(response, session_id, console.options)
        return response

    @router.get("/api/me", tags=["console"])
    async def me(signed: CurrentUser) -> dict[str, object]:
        """The signed-in user as the page scripts see it (the server enforces every grant anyway)."""
        user = signed.user
        return {"id": user.id, "username": user.username, "name": user.display_name,
                "roles": [r.value for r in user.roles], "role_labels": list(user.role_labels),
                "grants": sorted(g.value for g in user.grants), "unit": user.unit, "venue": user.venue}

    @router.post("/api/live/connect-ticket", tags=["console"])
    async def connect_ticket(request: Request, console: Console, signed: CurrentUser) -> Response:
        """A single-use connect ticket for ``/ws?connect=``, standing for an access token of the signed-in
        user."""
        raw = await request.body()
        try:
            body = ConnectTicketRequest.model_validate_json(raw or b"{}")
        except ValidationError:
            return _error_page(request, 422, "live.error.request")
        issued = await console.connect_tickets.issue(access_token_for(console, signed, body.room),
                                                     console.options.connect_ticket_ttl_s)
        return JSONResponse({"connect_ticket": issued, "expires_in": console.options.connect_ticket_ttl_s,
                             "path": f"/ws?connect={issued}"}, headers={"cache-control": "no-store"})

    return router


def _invite_form(request: Request, console: ConsoleContext, invitation: accounts.Invitation, *,
                 status: int = 200, error: str | None = None) -> Response:
    session_id = read_session_id(request, console.options)
    # With a session cookie (an official opening a link while signed in) the CSRF check wants its token.
    token = (console.csrf.session_token(session_id) if session_id is not None
             else pre_session_token(request, console.options, console.csrf, console.clock()))
    response = _page(console, "invite.html", None, status=status, csrf_token=token, invitation=invitation,
                     role_label=ROLE_LABELS_VI[invitation.role], error=error,
                     min_password=console.options.min_password_length)
    if session_id is None:
        ensure_csrf_cookie(request, response, console.options, token)
    return response


# -- installing into an app -------------------------------------------------------------------------


def _csrf_context(scope: Scope) -> CsrfContext:
    console: ConsoleContext = scope["app"].state.console
    return console


async def _edge_reject(request: Request, exc: ConsoleError) -> Response:
    return await _console_error(request, exc)


async def _console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    if isinstance(exc, NotSignedIn) and not _wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_path = safe_next(target) if request.method == "GET" else "/"
        location = "/login" if next_path == "/" else f"/login?next={_quote(next_path)}"
        return RedirectResponse(location, status_code=303)
    status = error_status(exc)
    if _wants_json(request):
        code = _SNAKE.sub("_", type(exc).__name__).lower()
        return JSONResponse({"error": code, "message": t(exc.message_key, **exc.params)}, status_code=status)
    return _error_page(request, status, exc.message_key, **exc.params)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_json(request) and exc.status_code in (403, 404, 405):
        return _error_page(request, exc.status_code, f"error.{exc.status_code}")
    return await http_exception_handler(request, exc)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def install_console(app: FastAPI, options: ConsoleOptions) -> None:
    """Add the console to ``app``: routes, ``/static``, CSRF and security-header middlewares, and
    Vietnamese error pages. The lifespan must set ``app.state.console`` (a :class:`ConsoleContext`)."""
    from .api import (
        create_complaints_api_router,
        create_queue_api_router,
        create_roll_call_api_router,
        create_sessions_api_router,
        install_problem_handlers,
    )
    from .api.minutes import create_minutes_api_router
    from .api.minutes_approval import create_minutes_approval_router
    from .views import create_views_router

    app.include_router(create_console_router())
    app.include_router(create_complaints_api_router())
    app.include_router(create_queue_api_router())
    app.include_router(create_roll_call_api_router())
    app.include_router(create_sessions_api_router())
    app.include_router(create_minutes_api_router())
    app.include_router(create_minutes_approval_router())
    app.include_router(create_views_router())
    install_problem_handlers(app)
    app.mount("/static", StaticFiles(packages=[("room_console", "static")]), name="static")
    app.add_middleware(CsrfMiddleware, options=options, context=_csrf_context, reject=_csrf_reject)
    # Outside the CSRF check (which reads url-encoded forms): body caps and the caller's identity are
    # settled before anything reads a body (room_console.request_limits).
    app.add_middleware(RequestLimitMiddleware, reject=_edge_reject)
    # Added last, so outermost: even a CSRF rejection carries the headers.
    app.add_middleware(SecurityHeadersMiddleware, hsts=options.cookie_secure)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
