"""Wiring of the console into the app: settings → :class:`ConsoleOptions`, the connect-ticket
store, the :class:`ConsoleContext` on ``app.state``, and the first administrator's way in."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI

from room_console import ConsoleContext, ConsoleOptions, t
from room_console.accounts import count_users, create_setup_invitation
from room_console.board_stream import BoardHub
from room_console.csrf import CsrfTokens
from schedules.announcement import SpeechOptions
from signaling.connect_tickets import ConnectTicketStore, MemoryConnectTicketStore, RedisConnectTicketStore
from signaling.room_state import RedisRoomStateReader, RoomStateReader

from .settings import Settings

if TYPE_CHECKING:
    from .app import Services

__all__ = ["console_options", "wire_console", "announce_first_admin"]


def console_options(settings: Settings) -> ConsoleOptions:
    return ConsoleOptions(
        mode=settings.mode,
        cookie_secure=settings.cookie_secure,
        session_idle_s=settings.session_idle_s,
        login_free_failures=settings.login_free_failures,
        login_backoff_cap_s=settings.login_backoff_cap_s,
        login_ip_max_failures=settings.login_ip_max_failures,
        login_window_s=settings.login_window_s,
        connect_ticket_ttl_s=settings.connect_ticket_ttl_s,
        token_ttl_s=settings.token_ttl_s,
        public_url=settings.public_url,
    )


async def _redis_stores(settings: Settings,
                        stack: AsyncExitStack) -> tuple[ConnectTicketStore, RoomStateReader | None]:
    """The connect-ticket store and the reader of the live rooms' state: on Redis when configured (one
    client); else the tickets in memory and no reader yet (the embedded room server's store becomes it)."""
    if not settings.redis_url:
        return MemoryConnectTicketStore(), None
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url)
    stack.push_async_callback(client.aclose)
    return (RedisConnectTicketStore(client, settings.redis_prefix),
            RedisRoomStateReader(client, settings.redis_prefix))


def wall_clock(settings: Settings) -> Callable[[], float]:
    """The console's and the scheduler's clock (seconds since the epoch), shifted by
    ``TIEPDAN_CLOCK_OFFSET_S`` in rehearsals and tests (always 0 in production)."""
    offset = settings.clock_offset_s
    if not offset:
        return time.time
    return lambda: time.time() + offset


def _base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


async def announce_first_admin(settings: Settings, console: ConsoleContext) -> str | None:
    """With no account at all: in dev mode print a one-time setup link (to the console, never to
    the log) and return its URL; in production print how to create an administrator."""
    if settings.mode == "production":
        async with console.engine.connect() as conn:
            if await count_users(conn) == 0:
                print(t("setup.production"), file=sys.stderr, flush=True)
        return None
    token = await create_setup_invitation(console.engine, now=time.time(), ttl_s=console.options.setup_ttl_s)
    if token is None:
        return None
    url = f"{_base_url(settings)}/invite/{token}"
    print(t("setup.link", url=url, minutes=console.options.setup_ttl_s // 60), file=sys.stderr, flush=True)
    return url


async def wire_console(app: FastAPI, services: Services, stack: AsyncExitStack) -> ConsoleContext:
    settings = services.settings
    connect_tickets, room_states = await _redis_stores(settings, stack)
    app.state.connect_tickets = connect_tickets
    console = ConsoleContext(engine=services.engine, bus=services.bus, issuer=services.issuer,
                             connect_tickets=connect_tickets, room_states=room_states,
                             options=console_options(settings), csrf=CsrfTokens.from_keyring(services.keyring),
                             keyring=services.keyring,
                             verifier=services.verifier, attachments_dir=settings.data_dir / "attachments",
                             speech=SpeechOptions(cache_dir=settings.data_dir / "announcements"),
                             notify_outbox=services.outbox.notify, clock=wall_clock(settings))
    app.state.console = console
    if settings.process_role in ("all", "control"):
        # the queue boards' server-sent events; closed before the bus (and early by ``tiepdan serve``)
        boards = BoardHub(services.engine, services.bus, supervisor=services.supervisor,
                          clock=lambda: datetime.fromtimestamp(console.clock(), UTC))
        stack.push_async_callback(boards.close)
        await boards.start()
        console.boards = boards
        await announce_first_admin(settings, console)
    return console
