"""Done-when of the live room: a client written only from docs/protocol.md (plain JSON over the
``websockets`` library, nothing imported from signaling.protocol) joins the whole app served by
uvicorn on loopback as a venue, sees presence, gets the floor from the chair and is refused when
it oversteps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import uvicorn
import websockets

from signaling.events import SessionOpened, VenueInfo
from signaling.grants import Role
from tiepdan.app import create_app

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"


class DocClient:
    """Section 1 and 2 of docs/protocol.md: connect with a bearer token and ``?room=``, send ``join``."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def join(cls, base: str, token: str, venue: str | None = None) -> tuple[DocClient, dict[str, Any]]:
        ws = await websockets.connect(f"{base}/ws?room={ROOM}", additional_headers={"Authorization": f"Bearer {token}"})
        client = cls(ws)
        join: dict[str, Any] = {"type": "join", "protocol": 1}
        if venue:
            join["venue"] = venue
        await client.send(join)
        return client, await client.wait("welcome")

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def wait(self, type_: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == type_ and all(message.get(k) == v for k, v in match.items()):
                    return dict(message)


async def test_client_from_the_doc_joins_sees_presence_gets_the_floor_and_is_refused(make_settings: Any) -> None:
    app = create_app(make_settings())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws_ping_interval=None))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.02)
        base = f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        services = app.state.services
        await services.bus.publish(SessionOpened(session=ROOM, venues=(
            VenueInfo(venue="tinh", name="Trụ sở Tiếp công dân tỉnh", main=True),
            VenueInfo(venue="tien-du", name="Điểm cầu xã Tiên Du"))))
        async with asyncio.timeout(5):
            while app.state.room_server.room(ROOM) is None:
                await asyncio.sleep(0.01)

        chair, _ = await DocClient.join(base, services.issuer.issue("user:chair", roles=[Role.CHAIR], room=ROOM,
                                                                    venue="tinh"))
        venue, welcome = await DocClient.join(base, services.issuer.issue("user:td", roles=[Role.VENUE], room=ROOM,
                                                                          venue="tien-du"), venue="tien-du")
        me = welcome["you"]["participant"]
        assert welcome["status"] == "admitted" and welcome["room"]["floor"] == "tinh"
        assert {p["venue"] for p in welcome["room"]["participants"]} == {"tinh", "tien-du"}
        joined = await chair.wait("presence.joined")
        assert joined["participant"]["participant"] == me

        await chair.send({"type": "floor.give", "venue": "tien-du"})
        assert (await venue.wait("floor.changed"))["venue"] == "tien-du"
        assert (await venue.wait("mic.changed", participant=me))["muted"] is False

        await venue.send({"type": "floor.give", "venue": "tinh", "id": "overstep"})
        refusal = await venue.wait("error")
        assert (refusal["code"], refusal["ref"]) == ("forbidden", "overstep")
        await venue.send({"type": "ping", "id": "after"})
        assert (await venue.wait("pong"))["ref"] == "after"
        await venue.ws.close()
        await chair.ws.close()
    finally:
        server.should_exit = True
        await task
