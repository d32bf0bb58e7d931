from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from room_console.csrf import CsrfTokens
from room_console.options import ConsoleOptions
from room_console.security import SECURITY_HEADERS, CsrfMiddleware, SecurityHeadersMiddleware, safe_next

pytestmark = pytest.mark.unit

OPTIONS = ConsoleOptions()
NOW = 1_795_000_000.0
TOKENS = CsrfTokens([b"k" * 32])
PRE = TOKENS.new_form_token(NOW)  # a pre-session token this server signed


@dataclass
class _Context:
    csrf: CsrfTokens = TOKENS
    clock: Callable[[], float] = lambda: NOW


async def _echo(request: Request) -> Response:
    form = await request.form()
    return PlainTextResponse(f"ok {form.get('field', '')}")


def _app() -> Starlette:
    app = Starlette(routes=[Route("/do", _echo, methods=["GET", "POST", "PUT", "DELETE"])])
    app.add_middleware(CsrfMiddleware, options=OPTIONS, context=lambda scope: _Context(),
                       reject=lambda request, key: PlainTextResponse(key, status_code=403))
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _client(**cookies: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://testserver",
                             cookies=cookies)


async def test_safe_methods_pass_without_a_token() -> None:
    async with _client() as client:
        assert (await client.get("/do")).status_code == 200


async def test_post_without_a_token_is_rejected() -> None:
    async with _client(tiepdan_session="s" * 43) as client:
        response = await client.post("/do", data={"field": "x"})
    assert (response.status_code, response.text) == (403, "error.csrf")


async def test_form_field_token_derived_from_the_session_is_accepted_and_the_body_still_reaches_the_app() -> None:
    session = "s" * 43
    async with _client(tiepdan_session=session) as client:
        response = await client.post("/do", data={"field": "giá trị", "csrf_token": TOKENS.session_token(session)})
    assert (response.status_code, response.text) == (200, "ok giá trị")


async def test_header_token_of_another_session_is_rejected() -> None:
    async with _client(tiepdan_session="s" * 43) as client:
        response = await client.put("/do", headers={"X-CSRF-Token": TOKENS.session_token("t" * 43)})
    assert response.status_code == 403


async def test_double_submit_token_equal_to_the_pre_session_cookie_is_accepted() -> None:
    async with _client(tiepdan_csrf=PRE) as client:
        ok = await client.post("/do", data={"csrf_token": PRE})
        bad = await client.post("/do", data={"csrf_token": "q" * 43})
    assert (ok.status_code, bad.status_code) == (200, 403)


@pytest.mark.parametrize("chosen", [
    "p" * 43,  # a value the client made up (what the old check accepted)
    PRE.rsplit(".", 1)[0] + "." + "0" * 64,  # our token with a forged signature
    CsrfTokens([b"o" * 32]).new_form_token(NOW),  # signed with another key
    TOKENS.new_form_token(NOW - TOKENS.form_ttl_s - 1),  # ours, but expired
])
async def test_pre_session_cookie_and_field_the_client_chose_are_refused(chosen: str) -> None:
    async with _client(tiepdan_csrf=chosen) as client:
        response = await client.post("/do", data={"csrf_token": chosen})
    assert (response.status_code, response.text) == (403, "error.csrf")


async def test_with_a_session_only_its_own_token_is_accepted_not_a_cookie_header_pair() -> None:
    session = "s" * 43
    async with _client(tiepdan_session=session, tiepdan_csrf=PRE) as client:
        chosen_pair = await client.put("/do", headers={"X-CSRF-Token": PRE})
        own = await client.put("/do", headers={"X-CSRF-Token": TOKENS.session_token(session)})
    assert (chosen_pair.status_code, own.status_code) == (403, 200)


def test_session_token_needs_the_server_key_and_survives_a_key_rotation() -> None:
    old = CsrfTokens([b"a" * 32])
    rotated = CsrfTokens([b"b" * 32, b"a" * 32])  # new active key first, the old one still known
    token = old.session_token("s" * 43)
    assert token != CsrfTokens([b"c" * 32]).session_token("s" * 43)
    assert rotated.session_token_valid(token, "s" * 43)
    assert not rotated.session_token_valid(token, "t" * 43)
    assert not CsrfTokens([b"c" * 32]).session_token_valid(token, "s" * 43)


def test_form_token_is_reused_only_while_fresh() -> None:
    token = TOKENS.new_form_token(NOW)
    assert TOKENS.form_token_fresh(token, NOW + TOKENS.form_ttl_s / 2 - 1)
    assert not TOKENS.form_token_fresh(token, NOW + TOKENS.form_ttl_s / 2)
    assert TOKENS.form_token_valid(token, NOW + TOKENS.form_ttl_s - 1)
    assert not TOKENS.form_token_valid(token, NOW + TOKENS.form_ttl_s)


async def test_cross_origin_post_is_rejected_even_with_a_valid_token() -> None:
    async with _client(tiepdan_csrf=PRE) as client:
        foreign = await client.post("/do", data={"csrf_token": PRE}, headers={"Origin": "http://evil.example"})
        cross_site = await client.post("/do", data={"csrf_token": PRE}, headers={"Sec-Fetch-Site": "cross-site"})
        own = await client.post("/do", data={"csrf_token": PRE}, headers={"Origin": "http://testserver"})
    assert (foreign.status_code, cross_site.status_code, own.status_code) == (403, 403, 200)


async def test_bearer_request_without_our_cookies_needs_no_csrf_token() -> None:
    async with _client() as client:
        response = await client.delete("/do", headers={"Authorization": "Bearer abc"})
    assert response.status_code == 200


async def test_oversized_form_is_rejected_before_the_app_sees_it() -> None:
    async with _client(tiepdan_csrf=PRE) as client:
        response = await client.post("/do", data={"csrf_token": PRE, "field": "x" * (1024 * 1024 + 1)})
    assert (response.status_code, response.text) == (403, "error.too_large")


async def test_every_response_carries_the_security_headers() -> None:
    async with _client() as client:
        response = await client.get("/do")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "camera=(self)" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("target", "expected"), [
    ("/admin/users", "/admin/users"), ("/?a=1", "/?a=1"), (None, "/"), ("https://evil.example/", "/"),
    ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("javascript:alert(1)", "/"),
])
def test_next_after_login_stays_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
