"""Session cookie, CSRF protection and security headers.

* The login session travels in an HttpOnly, SameSite=Strict cookie (``Secure`` and the ``__Host-``
  prefix when ``cookie_secure``); the server keeps only the SHA-256 of its value.
* CSRF: every unsafe request (POST, PUT, PATCH, DELETE), forms and JSON APIs alike, must
  come from our own origin (``Origin`` / ``Sec-Fetch-Site``) and carry a token, in the
  ``X-CSRF-Token`` header, the ``csrf_token`` field of a url-encoded form or, for multipart
  forms, the ``csrf_token`` query parameter. With a session cookie the token must be the one the
  server derives from that session (:meth:`room_console.csrf.CsrfTokens.session_token`); nothing
  else is accepted then, so a cookie/header pair the client chose proves nothing. Without a session
  (the login and invitation forms) the token must equal the pre-session cookie *and* carry the
  server's signature (:meth:`~room_console.csrf.CsrfTokens.new_form_token`). A request that carries
  no cookie of ours but an ``Authorization`` header (a service with a bearer token) has no ambient
  authority to abuse and only needs to pass the origin check.
* Headers: a CSP without inline scripts, no framing, no referrer to other sites (invitation links carry a
  token), no MIME sniffing, camera and microphone for our own origin only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .csrf import CsrfTokens
from .options import ConsoleOptions

__all__ = [
    "SecurityHeadersMiddleware", "CsrfMiddleware", "CsrfContext", "SECURITY_HEADERS", "CSRF_HEADER", "CSRF_FIELD",
    "read_session_id", "set_session_cookie", "clear_session_cookie", "ensure_csrf_cookie", "pre_session_token",
    "safe_next",
]

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FORM_BYTES = 1024 * 1024

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "permissions-policy": (
        "camera=(self), microphone=(self), display-capture=(self), autoplay=(self), fullscreen=(self), "
        "geolocation=(), payment=(), usb=(), interest-cohort=()"
    ),
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (and ``Cache-Control: no-store`` to
    everything but static files, since pages carry personal data and CSRF tokens)."""

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/", hsts: bool = False) -> None:
        self.app = app
        self._static_prefix = static_prefix
        self._hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = str(scope.get("path", "")).startswith(self._static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(SECURITY_HEADERS)
                if not is_static:
                    extra["cache-control"] = "no-store"
                if self._hsts:
                    extra["strict-transport-security"] = "max-age=31536000"
                for name, value in extra.items():
                    if name.encode("latin-1") not in present:
                        headers.append((name.encode("latin-1"), value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


RejectResponder = Callable[[Request, str], Response]


class CsrfContext(Protocol):
    """What the CSRF check needs at request time (the :class:`~room_console.context.ConsoleContext`)."""

    @property
    def csrf(self) -> CsrfTokens: ...

    @property
    def clock(self) -> Callable[[], float]: ...


class CsrfMiddleware:
    """Rejects unsafe requests without our origin and a valid token (see the module docstring).

    ``context(scope)`` gives the token keys and the clock (built by the lifespan, so looked up per
    request); ``reject(request, message_key)`` builds the 403 response (an HTML page or JSON)."""

    def __init__(self, app: ASGIApp, *, options: ConsoleOptions, context: Callable[[Scope], CsrfContext],
                 reject: RejectResponder) -> None:
        self.app = app
        self._options = options
        self._context = context
        self._reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not self._same_origin(request):
            await self._reject(request, "error.csrf")(scope, receive, send)
            return
        session = request.cookies.get(self._options.session_cookie)
        pre_session = request.cookies.get(self._options.csrf_cookie)
        if session is None and pre_session is None and "authorization" in request.headers:
            await self.app(scope, receive, send)
            return
        provided = request.headers.get(CSRF_HEADER)
        body: bytes | None = None
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if provided is None and content_type == "application/x-www-form-urlencoded":
            body = await _read_body(receive, MAX_FORM_BYTES)
            if body is None:
                await self._reject(request, "error.too_large")(scope, receive, send)
                return
            values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(CSRF_FIELD)
            provided = values[0] if values else None
        elif provided is None:
            provided = request.query_params.get(CSRF_FIELD)
        if not _token_valid(self._context(scope), provided, session, pre_session):
            await self._reject(request, "error.csrf")(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _same_origin(self, request: Request) -> bool:
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        allowed = {request.headers.get("host", "")}
        if self._options.public_url:
            allowed.add(urlsplit(self._options.public_url).netloc)
        return origin != "null" and urlsplit(origin).netloc in allowed


def _token_valid(context: CsrfContext, provided: str | None, session: str | None, pre_session: str | None) -> bool:
    if not provided:
        return False
    if session is not None:  # signed in (or a stale cookie): only the session's own token will do
        return context.csrf.session_token_valid(provided, session)
    return provided == pre_session and context.csrf.form_token_valid(pre_session, context.clock())


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# -- cookies ----------------------------------------------------------------------------------------


def read_session_id(request: Request, options: ConsoleOptions) -> str | None:
    return request.cookies.get(options.session_cookie)


def set_session_cookie(response: Response, session_id: str, options: ConsoleOptions) -> None:
    response.set_cookie(options.session_cookie, session_id, max_age=options.session_idle_s, path="/",
                        secure=options.cookie_secure, httponly=True, samesite="strict")


def clear_session_cookie(response: Response, options: ConsoleOptions) -> None:
    response.delete_cookie(options.session_cookie, path="/", secure=options.cookie_secure, httponly=True,
                           samesite="strict")


def ensure_csrf_cookie(request: Request, response: Response, options: ConsoleOptions, token: str) -> None:
    """Set the pre-session (double-submit) cookie unless the browser already holds ``token``."""
    if request.cookies.get(options.csrf_cookie) != token:
        response.set_cookie(options.csrf_cookie, token, path="/", secure=options.cookie_secure, httponly=True,
                            samesite="strict")


def pre_session_token(request: Request, options: ConsoleOptions, tokens: CsrfTokens, now: float) -> str:
    """The double-submit token for a form shown without a session: the browser's own cookie while it is
    a fresh token of ours, else a new signed one."""
    current = request.cookies.get(options.csrf_cookie)
    if tokens.form_token_fresh(current, now):
        assert current is not None
        return current
    return tokens.new_form_token(now)


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, ``//``, ``\\``) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
