"""The app factory: ``create_app(settings)`` builds the FastAPI app; the lifespan owns the keyring,
the database engine, the event bus, the outbox relay, the room server and the process's
:class:`~signaling.supervisor.Supervisor`, which runs every background loop (a loop waiting to restart
after a crash turns ``/healthz`` to 503 "degraded", naming it; ``/metrics`` counts crashes and restarts).

Roles: ``all`` (embedded: everything in one process), ``media`` (room server + SFU), ``control``
(console and services), ``worker`` (background jobs). Routes are thin; each package supplies its
router and reads its context from ``app.state`` (set here, in the lifespan).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import sfu
from evidence import Keyring
from room_console import install_console
from room_console.actor import CurrentActor, require_any
from room_console.api.venue_link import create_venue_link_api_router
from room_console.views.document_verify import router as document_verify_router
from room_console.views.documents import router as documents_router
from room_console.views.replay import router as replay_views_router
from signaling.bus import Bus
from signaling.grants import Grant
from signaling.outbox import OutboxRelay
from signaling.room.api import router as room_router
from signaling.supervisor import Backoff, Supervisor
from signaling.tokens import TokenIssuer, TokenVerifier

from .db import make_engine, prepare_database
from .documents_wiring import wire_documents
from .gc_policy import Refreezer, freeze_startup_heap, thaw
from .link_wiring import wire_link_marks, wire_link_watch
from .minutes_wiring import wire_minutes
from .recording_wiring import wire_recordings
from .replay_wiring import wire_replay
from .room_wiring import wire_room_server
from .settings import Settings
from .timekeeper_wiring import wire_timekeeper
from .wiring import console_options, wire_console

__all__ = ["create_app", "Services", "load_keyring"]

log = logging.getLogger("tiepdan.app")


@dataclass
class Services:
    """What the lifespan built; shared by the routers through ``app.state``."""

    settings: Settings
    keyring: Keyring
    issuer: TokenIssuer
    verifier: TokenVerifier
    engine: AsyncEngine
    bus: Bus
    metrics: CollectorRegistry
    outbox: OutboxRelay
    supervisor: Supervisor


def load_keyring(settings: Settings) -> Keyring:
    path = settings.resolved_keyring_path
    if settings.mode == "production":
        ring = Keyring.load(path, passphrase=settings.keyring_passphrase)
        ring.require_production_keys()
        return ring
    if path.exists():
        return Keyring.load(path, passphrase=settings.keyring_passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("generated a development keyring", extra={"ctx": {"kid": "dev"}})
    return Keyring.generate(dev=True, path=path, passphrase=settings.keyring_passphrase)


async def _make_bus(settings: Settings, stack: AsyncExitStack) -> Bus:
    if settings.redis_url:
        from signaling.redis_bus import RedisBus

        bus: Bus = await RedisBus.connect(settings.redis_url, prefix=settings.redis_prefix)
    else:
        from signaling.memory_bus import MemoryBus

        bus = MemoryBus()
    stack.push_async_callback(bus.close)
    return bus


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = CollectorRegistry()
    requests_total = Counter(
        "tiepdan_http_requests_total", "HTTP requests", ["method", "status"], registry=registry
    )
    request_seconds = Histogram("tiepdan_http_request_seconds", "HTTP request time", registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            keyring = load_keyring(settings)
            engine = make_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            await prepare_database(engine)
            bus = await _make_bus(settings, stack)
            # closed after the owners of its loops have stopped them, before the bus they consume
            supervisor = Supervisor(registry=registry, backoff=Backoff(initial_s=settings.task_restart_initial_s,
                                                                       max_s=settings.task_restart_max_s))
            stack.push_async_callback(supervisor.close)
            outbox = OutboxRelay(engine, bus, supervisor=supervisor)
            stack.push_async_callback(outbox.close)  # closed before the bus and the engine
            services = Services(
                settings=settings,
                keyring=keyring,
                issuer=TokenIssuer(keyring, settings.token_options),
                verifier=TokenVerifier(keyring, settings.token_options),
                engine=engine,
                bus=bus,
                metrics=registry,
                outbox=outbox,
                supervisor=supervisor,
            )
            app.state.services = services
            # -- wiring of the packages (each adds its context to app.state) --
            await outbox.start()  # committed outbox rows → bus (embedded: replays recent rows first)
            await wire_console(app, services, stack)  # app.state.console, app.state.connect_tickets
            await wire_link_watch(services, stack)  # roles all, control: a lost venue's case pauses
            await wire_recordings(services, stack)  # roles all, control: segments kept, linked to cases
            await wire_minutes(services, stack)  # roles all, control: a called case opens its minutes draft
            wire_documents(app, services)  # app.state.documents: issue, sign, read the minutes' documents
            await wire_timekeeper(app, services, stack)  # roles all, control: sessions open and close on time
            await wire_replay(app, services, stack)  # app.state.replay; roles all, worker: the replay worker
            await wire_room_server(app, services, stack)  # app.state.room_server (roles all, media)
            await wire_link_marks(app, services, stack)  # roles all, media: venues lost announced back
            if settings.gc_freeze:  # the start's heap out of the collector's reach (tiepdan.gc_policy)
                freeze_startup_heap()
                stack.callback(thaw)
                if settings.process_role in ("all", "media"):  # and the links' graph, each time they settle
                    refreezer = Refreezer(sfu.link_changes, settle=settings.gc_refreeze_settle_s)
                    app.state.refreezer = refreezer
                    refreezing = supervisor.run("gc-refreeze", refreezer.run)

                    async def stop_refreezing() -> None:
                        await supervisor.stop(refreezing)

                    stack.push_async_callback(stop_refreezing)
            yield

    # No HTML docs page: Swagger UI and ReDoc load their scripts from a CDN, which the CSP (script-src
    # 'self') and offline deployments rule out. The schema itself is served to administrators (grant
    # ``manage``) outside production only: /api/openapi.json below; docs/complaints-api.md is the guide.
    app = FastAPI(title="tiepdan", version="0.1.0", lifespan=lifespan, docs_url=None, openapi_url=None,
                  redoc_url=None)
    install_console(app, console_options(settings))
    app.include_router(replay_views_router)  # /xem-lai: auditors' replay pages (room_console/views/replay.py)
    app.include_router(document_verify_router)  # /xac-minh: public verification of signed documents
    app.include_router(documents_router)  # /van-ban: the secretary's and the chair's signed documents
    app.include_router(create_venue_link_api_router())  # the chair's «venue is back» (schedules.link_watch)
    if settings.mode != "production":

        @app.get("/api/openapi.json", include_in_schema=False)
        async def openapi_schema(request: Request, actor: CurrentActor) -> JSONResponse:
            """The OpenAPI schema of the HTTP API, for administrators."""
            require_any(actor, {Grant.MANAGE})
            return JSONResponse(request.app.openapi(), headers={"cache-control": "no-store"})

    app.include_router(room_router)  # /ws: the live-room protocol (docs/protocol.md)

    @app.middleware("http")
    async def _observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response: Response = await call_next(request)
        elapsed = time.perf_counter() - started
        requests_total.labels(request.method, str(response.status_code)).inc()
        request_seconds.observe(elapsed)
        log.info(
            "request",
            extra={"ctx": {"method": request.method, "path": request.url.path, "status": response.status_code,
                           "duration_ms": round(elapsed * 1000, 1)}},
        )
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        checks: dict[str, str] = {}
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            checks["database"] = f"error: {type(exc).__name__}"
        checks["bus"] = "closed" if services.bus.closed else "ok"
        for task, state in services.supervisor.down().items():
            checks[f"task:{task}"] = state  # "down: <exception type>, restarting in <s> s"
        recording = getattr(getattr(request.app.state, "room_server", None), "recording", None)
        for alarm in recording.alarms if recording is not None else ():
            checks[f"recording:{alarm.session or 'all'}"] = f"alarm: {alarm.code}"  # recording stopped
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "degraded", "checks": checks},
                            status_code=200 if healthy else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode("utf-8"), media_type=CONTENT_TYPE_LATEST)

    return app
