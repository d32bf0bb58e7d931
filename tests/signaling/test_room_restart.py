"""Room state survives a SIGKILL of the server when Redis is configured: a real ``tiepdan serve``
subprocess is killed and started again; floor, hands, lock and lobby are back, and a participant
resumes its place with its resume token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from evidence import Keyring
from signaling.events import SessionOpened, VenueInfo
from signaling.grants import Role
from signaling.redis_bus import RedisBus
from signaling.tokens import TokenIssuer, TokenOptions

pytestmark = pytest.mark.integration

ROOM = "phien-restart"
TIEPDAN = Path(sys.executable).with_name("tiepdan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(TIEPDAN), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code in (200, 503):
                    return proc
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError("tiepdan serve exited")
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("tiepdan serve did not start")


async def join(port: int, token: str, **fields: Any) -> tuple[websockets.ClientConnection, dict[str, Any]]:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?room={ROOM}",
                                  additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(json.dumps({"type": "join", "protocol": 1, **fields}))
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "welcome":
                return ws, message


async def until(ws: websockets.ClientConnection, type_: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == type_:
                return dict(message)


async def test_floor_lobby_hands_and_lock_survive_sigkill(tmp_path: Path, redis_base_url: str,
                                                          redis_prefix: str) -> None:
    port = free_port()
    env = {**os.environ, "TIEPDAN_REDIS_URL": redis_base_url, "TIEPDAN_REDIS_PREFIX": redis_prefix,
           "TIEPDAN_DATA_DIR": str(tmp_path / "data"), "TIEPDAN_WS_RECONNECT_GRACE_S": "30"}
    proc = await start(env, port)
    try:
        issuer = TokenIssuer(Keyring.load(tmp_path / "data" / "keys" / "keyring.json"), TokenOptions())
        bus = await RedisBus.connect(redis_base_url, prefix=redis_prefix)
        try:
            await bus.publish(SessionOpened(session=ROOM, venues=(
                VenueInfo(venue="tinh", name="Tỉnh", main=True), VenueInfo(venue="a", name="Xã A"),
                VenueInfo(venue="b", name="Xã B"))))
        finally:
            await bus.close()
        chair_token = issuer.issue("user:chair", roles=[Role.CHAIR], room=ROOM, venue="tinh")
        venue_token = issuer.issue("user:a", roles=[Role.VENUE], room=ROOM, venue="a")
        for _ in range(100):  # the room opens when the server consumed SessionOpened
            try:
                chair, _ = await join(port, chair_token)
                break
            except websockets.InvalidStatus:
                await asyncio.sleep(0.05)
        venue, venue_welcome = await join(port, venue_token)
        await venue.send(json.dumps({"type": "hand.raise"}))
        await until(chair, "hands.changed")
        await chair.send(json.dumps({"type": "floor.give", "venue": "a"}))
        await until(chair, "floor.changed")
        await chair.send(json.dumps({"type": "room.lock"}))
        await until(chair, "room.lock_changed")
        late, late_welcome = await join(port, issuer.issue("user:b", roles=[Role.VENUE], room=ROOM, venue="b"))
        assert late_welcome["status"] == "lobby"
        await until(chair, "lobby.entered")

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        for ws in (chair, venue, late):
            await ws.close()
        proc = await start(env, port)

        chair, chair_welcome = await join(port, issuer.issue("user:chair", roles=[Role.CHAIR], room=ROOM,
                                                              venue="tinh"))
        room = chair_welcome["room"]
        me = venue_welcome["you"]["participant"]
        assert room["floor"] == "a"
        assert room["locked"] is True
        assert room["hands"] == [me]
        assert [p["participant"] for p in room["lobby"]] == [late_welcome["you"]["participant"]]
        assert {p["participant"]: p["connected"] for p in room["participants"]}[me] is False

        venue, again = await join(port, venue_token, resume=venue_welcome["resume_token"])
        assert again["resumed"] is True and again["you"]["participant"] == me
        assert again["room"]["floor"] == "a"
        await chair.close()
        await venue.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
