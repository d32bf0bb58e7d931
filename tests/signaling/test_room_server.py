"""The room server with in-memory transports (the real Transport interface): a slow reader is
disconnected and never stalls the room; closing cascades; metrics count peers and rooms."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from evidence import Keyring
from signaling.events import VenueInfo
from signaling.grants import Role
from signaling.memory_bus import MemoryBus
from signaling.protocol import Join
from signaling.room import MemoryRoomStore, RoomOptions, RoomServer
from signaling.room.errors import RoomClosed
from signaling.tokens import TokenIssuer, TokenOptions, TokenVerifier

pytestmark = pytest.mark.unit

ROOM = "r1"
VENUES = (VenueInfo(venue="tinh", name="Tỉnh", main=True), VenueInfo(venue="a", name="Xã A"))


class MemoryTransport:
    """A WebSocket stand-in: frames in through ``push``, frames out in ``sent``; ``stall`` blocks sends."""

    def __init__(self, *, stall: bool = False) -> None:
        self.inbound: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed_code: int | None = None
        self.stall = stall

    def push(self, message: dict[str, object]) -> None:
        self.inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self) -> dict[str, object]:
        return await self.inbound.get()

    async def send_text(self, data: str) -> None:
        if self.stall:
            await asyncio.Event().wait()
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_code = code
        self.inbound.put_nowait({"type": "websocket.disconnect", "code": code})


async def make_server(options: RoomOptions,
                      registry: CollectorRegistry | None = None) -> tuple[RoomServer, TokenIssuer]:
    keyring = Keyring.generate(dev=True)
    issuer = TokenIssuer(keyring, TokenOptions())
    server = RoomServer(options=options, issuer=issuer, verifier=TokenVerifier(keyring, TokenOptions()),
                        bus=MemoryBus(), store=MemoryRoomStore(), metrics=registry)
    await server.start()
    await server.open_room(ROOM, VENUES)
    return server, issuer


async def attach(server: RoomServer, issuer: TokenIssuer, transport: MemoryTransport, role: Role,
                 venue: str | None) -> asyncio.Task[None]:
    claims = server.authenticate(issuer.issue(f"u:{role}:{venue}", roles=[role], room=ROOM, venue=venue), ROOM)
    peer = server.new_peer(transport, claims, ROOM)
    task = asyncio.create_task(peer.run())
    transport.push(Join(protocol=1).model_dump())
    async with asyncio.timeout(2):
        while not transport.sent and not transport.stall:
            await asyncio.sleep(0.001)
        while peer.participant is None:
            await asyncio.sleep(0.001)
    return task


async def test_slow_reader_is_disconnected_4008_and_the_room_keeps_going() -> None:
    server, issuer = await make_server(RoomOptions(outbound_queue=16, send_timeout_s=30, close_timeout_s=0.2))
    chair, fast, slow = MemoryTransport(), MemoryTransport(), MemoryTransport(stall=True)
    tasks = [await attach(server, issuer, t, r, v) for t, r, v in
             ((chair, Role.CHAIR, "tinh"), (fast, Role.VENUE, "a"), (slow, Role.VENUE, "a"))]
    for i in range(30):
        chair.push({"type": "floor.give", "venue": "a" if i % 2 == 0 else "tinh"})
    async with asyncio.timeout(3):
        while sum(1 for m in fast.sent if m["type"] == "floor.changed") < 30:
            await asyncio.sleep(0.005)
        await tasks[2]
    assert slow.closed_code == 4008
    assert server.peer_count == 2
    await server.close()
    await asyncio.gather(*tasks)
    assert chair.closed_code == fast.closed_code == 1001


async def test_metrics_count_peers_and_rooms_and_close_is_idempotent() -> None:
    registry = CollectorRegistry()
    server, issuer = await make_server(RoomOptions(), registry)
    task = await attach(server, issuer, MemoryTransport(), Role.VENUE, "a")
    assert registry.get_sample_value("tiepdan_room_peers") == 1.0
    assert registry.get_sample_value("tiepdan_rooms") == 1.0
    await server.close()
    await server.close()
    await task
    assert registry.get_sample_value("tiepdan_room_peers") == 0.0
    with pytest.raises(RoomClosed):
        await server.start()
