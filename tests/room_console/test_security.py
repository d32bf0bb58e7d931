from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from room_console.accounts import csrf_token_for
from room_console.options import ConsoleOptions
from room_console.security import SECURITY_HEADERS, CsrfMiddleware, SecurityHeadersMiddleware, safe_next

pytestmark = pytest.mark.unit

OPTIONS = ConsoleOptions()
PRE = "p" * 43


async def _echo(request: Request) -> Response:
    form = await request.form()
    return PlainTextResponse(f"ok {form.get('field', '')}")


def _app() -> Starlette:
    app = Starlette(routes=[Route("/do", _echo, methods=["GET", "POST", "PUT", "DELETE"])])
    app.add_middleware(CsrfMiddleware, options=OPTIONS,
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
        response = await client.post("/do", data={"field": "giá trị", "csrf_token": csrf_token_for(session)})
    assert (response.status_code, response.text) == (200, "ok giá trị")


async def test_header_token_of_another_session_is_rejected() -> None:
    async with _client(tiepdan_session="s" * 43) as client:
        response = await client.put("/do", headers={"X-CSRF-Token": csrf_token_for("t" * 43)})
    assert response.status_code == 403


async def test_double_submit_token_equal_to_the_pre_session_cookie_is_accepted() -> None:
    async with _client(tiepdan_csrf=PRE) as client:
        ok = await client.post("/do", data={"csrf_token": PRE})
        bad = await client.post("/do", data={"csrf_token": "q" * 43})
    assert (ok.status_code, bad.status_code) == (200, 403)


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
