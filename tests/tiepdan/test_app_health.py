"""/healthz and /metrics of the whole app while a background loop is down: the room server's bus
consumer on Redis crashes for real (the stream key replaced by a plain key), the process's supervisor
restarts it with backoff, health names it until it runs again, and it consumes again afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from signaling.events import SessionOpened, VenueInfo
from tiepdan.app import create_app

pytestmark = pytest.mark.integration

TASK = "room-server-consumer"
_TASK_SAMPLES = ("tiepdan_task_crashes_total", "tiepdan_task_restarts_total", "tiepdan_task_up")


async def _health_until(client: httpx.AsyncClient, done: Callable[[httpx.Response], bool],
                        timeout: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get("/healthz")
            if done(response):
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.01)


async def _task_metrics(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in _TASK_SAMPLES and sample.labels == {"task": TASK}}


async def test_crashed_consumer_turns_healthz_degraded_until_it_runs_again_and_metrics_count_it(
        make_settings, redis_base_url: str, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(redis_url=redis_base_url, redis_prefix=redis_prefix,
                             task_restart_initial_s=0.2, task_restart_max_s=0.4)
    app = create_app(settings)
    admin = Redis.from_url(redis_base_url, decode_responses=True)
    async with app.router.lifespan_context(app):
        bus = app.state.services.bus
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert await _task_metrics(client) == {"tiepdan_task_crashes_total": 0.0,
                                                   "tiepdan_task_restarts_total": 0.0, "tiepdan_task_up": 1.0}

            # an operator's slip: the bus stream replaced by a plain key; every read of the group fails
            await admin.delete(bus.stream_key)
            await admin.set(bus.stream_key, "not a stream")
            down = await _health_until(client, lambda r: r.status_code == 503)
            assert down["status"] == "degraded"
            assert down["checks"][f"task:{TASK}"].startswith("down: BusError, restarting in ")
            assert (await _task_metrics(client))["tiepdan_task_crashes_total"] >= 1.0

            await admin.delete(bus.stream_key)
            await bus.publish(SessionOpened(session="s-health", venues=(VenueInfo(venue="tinh", name="Tỉnh",
                                                                                   main=True),)))
            async with asyncio.timeout(15):  # restarted, it consumes again
                while app.state.room_server.room("s-health") is None:
                    await asyncio.sleep(0.01)
            up = await _health_until(client, lambda r: r.status_code == 200)
            assert up == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}
            counts = await _task_metrics(client)
            assert counts["tiepdan_task_restarts_total"] >= 1.0 and counts["tiepdan_task_up"] == 1.0
    await admin.aclose()
