"""The API's OpenAPI schema: for a signed-in administrator, never public, absent in production. There is
no HTML docs page (Swagger UI and ReDoc load scripts from a CDN, which the CSP forbids)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from room_console.accounts import add_user
from tests.room_console._helpers import PASSWORD, sign_in
from tiepdan.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        ctx = application.state.console
        for username, role in (("quantri", "admin"), ("chutri", "chair")):
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=[role],
                           password=PASSWORD, options=ctx.options, now=ctx.clock())
        yield application


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_openapi_schema_is_served_to_a_signed_in_administrator_only(app: FastAPI) -> None:
    async with _client(app) as anonymous:
        refused = await anonymous.get("/api/openapi.json")
        pages = [(await anonymous.get(path)).status_code for path in ("/api/docs", "/docs", "/redoc")]
    async with _client(app) as chair:
        await sign_in(chair, "chutri")
        forbidden = await chair.get("/api/openapi.json")
    async with _client(app) as admin:
        await sign_in(admin, "quantri")
        schema = await admin.get("/api/openapi.json")
        admin_pages = [(await admin.get(path)).status_code for path in ("/api/docs", "/docs")]
    assert refused.status_code == 401 and refused.json()["error"] == "not_signed_in"
    assert forbidden.status_code == 403
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    assert "/api/intake" in schema.json()["paths"] and "/login" not in schema.json()["paths"]
    assert schema.headers["cache-control"] == "no-store"
    assert pages == [404, 404, 404] and admin_pages == [404, 404]


def test_production_app_has_no_schema_route_and_no_docs_page(make_settings) -> None:  # type: ignore[no-untyped-def]
    paths = {context.path for context in iter_route_contexts(create_app(make_settings(mode="production")).routes)}
    assert "/api/intake" in paths
    assert paths.isdisjoint({"/api/openapi.json", "/api/docs", "/docs", "/redoc", "/docs/oauth2-redirect"})
