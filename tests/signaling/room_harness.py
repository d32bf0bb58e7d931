"""A real room server on loopback for the live-room tests: uvicorn in-process on a free port, a
memory bus that records what was published, a test keyring, token helpers and a small JSON client
on the ``websockets`` library."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from evidence import Keyring
from signaling.connect_tickets import MemoryConnectTicketStore
from signaling.events import AnyEvent, SessionOpened, VenueInfo
from signaling.grants import Role
from signaling.memory_bus import MemoryBus
from signaling.room import MemoryRoomStore, RoomOptions, RoomServer, RoomStore
from signaling.room.api import router
from signaling.room.media import MediaOptions
from signaling.room.recording import RecorderFactory
from signaling.tokens import TokenIssuer, TokenOptions, TokenVerifier

ROOM = "phien-2026-12-10"
VENUES = (
    VenueInfo(venue="tinh", name="Trụ sở Tiếp công dân tỉnh", main=True),
    VenueInfo(venue="tien-du", name="Điểm cầu xã Tiên Du"),
    VenueInfo(venue="que-vo", name="Điểm cầu phường Quế Võ", max_kbps=600),  # a weak link, capped
)
FAST = RoomOptions(reconnect_grace_s=1.0, sweep_interval_s=0.05, join_timeout_s=2.0, close_timeout_s=1.0)


class RecordingBus(MemoryBus):
    """The memory bus, plus the list of everything published (to assert on events)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[AnyEvent] = []

    async def publish(self, event: AnyEvent) -> None:
        self.published.append(event)
        await super().publish(event)

    def types(self) -> list[str]:
        return [e.type for e in self.published]


@dataclass
class Harness:
    keyring: Keyring
    issuer: TokenIssuer
    verifier: TokenVerifier
    bus: RecordingBus
    server: RoomServer
    connect_tickets: MemoryConnectTicketStore
    port: int
    token_options: TokenOptions = field(default_factory=TokenOptions)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?room={ROOM}"

    def token(self, role: Role, *, venue: str | None = None, sub: str | None = None, room: str | None = ROOM,
              ttl_s: int | None = None, name: str | None = None) -> str:
        return self.issuer.issue(sub or f"user:{role.value}:{venue or 'x'}", roles=[role], room=room, venue=venue,
                                 ttl_s=ttl_s, name=name)

    async def connect(self, token: str, *, url: str | None = None, join: bool = True,
                      **join_fields: Any) -> Client:
        ws = await websockets.connect(url or self.url, additional_headers={"Authorization": f"Bearer {token}"},
                                      max_size=None, open_timeout=5)
        client = Client(ws)
        if join:
            await client.send({"type": "join", "protocol": 1, **join_fields})
            client.welcome = await client.expect("welcome")
        return client


class Client:
    """A JSON client: sends dicts, receives dicts, waits for a message type (others are kept)."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    @property
    def participant(self) -> str:
        return str(self.welcome["you"]["participant"])

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = await self.ws.recv()
        message: dict[str, Any] = json.loads(data)
        self.seen.append(message)
        return message

    async def expect(self, type_: str, timeout: float = 3.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message["type"] == type_ and all(message.get(k) == v for k, v in match.items()):
                return message

    async def closed_with(self, timeout: float = 3.0) -> int | None:
        """Read until the server closes; the close code."""
        try:
            async with asyncio.timeout(timeout):
                async for data in self.ws:
                    self.seen.append(json.loads(data))
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


async def open_room(h: Harness, room: str = ROOM, venues: tuple[VenueInfo, ...] = VENUES) -> None:
    """Open a room the real way: a ``SessionOpened`` on the bus, consumed by the room server."""
    await h.bus.publish(SessionOpened(session=room, venues=venues))
    async with asyncio.timeout(3):
        while h.server.room(room) is None:
            await asyncio.sleep(0.005)


@asynccontextmanager
async def running_server(options: RoomOptions = FAST, *, store: RoomStore | None = None,
                         keyring: Keyring | None = None, token_options: TokenOptions | None = None,
                         clock: Any = time.time, open_default_room: bool = True,
                         media: MediaOptions | None = None,
                         metrics: CollectorRegistry | None = None,
                         recorder: RecorderFactory | None = None) -> AsyncIterator[Harness]:
    keyring = keyring or Keyring.generate(dev=True)
    token_options = token_options or TokenOptions()
    issuer, verifier = TokenIssuer(keyring, token_options), TokenVerifier(keyring, token_options)
    bus = RecordingBus()
    server = RoomServer(options=options, issuer=issuer, verifier=verifier, bus=bus,
                        store=store or MemoryRoomStore(), clock=clock, media=media, metrics=metrics,
                        recorder=recorder)
    await server.start()
    app = FastAPI()
    app.include_router(router)
    app.state.room_server = server
    connect_tickets = MemoryConnectTicketStore()
    app.state.connect_tickets = connect_tickets
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off",
                            ws_max_size=options.max_frame_bytes, ws_ping_interval=None)
    userver = uvicorn.Server(config)
    task = asyncio.create_task(userver.serve())
    try:
        async with asyncio.timeout(5):
            while not userver.started:
                await asyncio.sleep(0.01)
        port = userver.servers[0].sockets[0].getsockname()[1]
        h = Harness(keyring, issuer, verifier, bus, server, connect_tickets, port, token_options)
        if open_default_room:
            await open_room(h)
        yield h
    finally:
        await server.close()
        userver.should_exit = True
        await task
        await bus.close()
