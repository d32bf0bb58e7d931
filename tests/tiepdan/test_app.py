from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tiepdan.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        yield application


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_healthz_reports_database_and_bus(app: FastAPI) -> None:
    async with await _client(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}


async def test_metrics_are_prometheus_text_and_count_requests(app: FastAPI) -> None:
    async with await _client(app) as client:
        await client.get("/healthz")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'tiepdan_http_requests_total{method="GET",status="200"}' in response.text


async def test_healthz_is_503_when_the_database_is_gone(app: FastAPI) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    services = app.state.services
    original = services.engine
    services.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        async with await _client(app) as client:
            response = await client.get("/healthz")
    finally:
        await services.engine.dispose()
        services.engine = original
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("error")


async def test_development_keyring_is_generated_on_first_start(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        pass
    assert settings.resolved_keyring_path.exists()


async def test_production_start_refuses_development_keys(make_settings) -> None:  # type: ignore[no-untyped-def]
    from evidence import DevKeyRefused

    create_app(make_settings())  # nothing happens before the lifespan
    dev = make_settings()
    application = create_app(dev)
    async with application.router.lifespan_context(application):
        pass
    prod = make_settings(mode="production")
    application = create_app(prod)
    with pytest.raises(DevKeyRefused):
        async with application.router.lifespan_context(application):
            pass
