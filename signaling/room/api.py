"""The ``/ws`` endpoint: authenticate before accept, then hand the connection to a :class:`Peer`.

Authentication (ARCHITECTURE §6): a JWT in ``Authorization: Bearer …`` (services, bots), or a
single-use connect ticket in ``?connect=…`` redeemed through ``app.state.connect_tickets`` (pages; a
full JWT never travels in a URL). ``?room=`` names the room (the reception-session id). A refused
connection gets an HTTP denial response (401/403/404/410) with ``{"code", "message"}`` and is
never accepted.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from ..connect_tickets import ConnectTicketStore
from ..protocol import ErrorCode
from .errors import AdmissionRefused, denial_text
from .server import RoomServer

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()


async def _token(websocket: WebSocket) -> str:
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    connect_ticket = websocket.query_params.get("connect")
    if connect_ticket:
        store: ConnectTicketStore | None = getattr(websocket.app.state, "connect_tickets", None)
        token = await store.redeem(connect_ticket) if store is not None else None
        if token is None:
            raise AdmissionRefused("token_connect")
        return token
    raise AdmissionRefused("token_missing")


async def _deny(websocket: WebSocket, code: str) -> None:
    response = JSONResponse({"code": code, "message": denial_text(code)}, status_code=AdmissionRefused(code).status)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        # A server without the denial-response extension: refuse the handshake (HTTP 403).
        await websocket.close(1008)


@router.websocket("/ws")
async def ws_endpoint(websocket: WebSocket) -> None:
    server: RoomServer | None = getattr(websocket.app.state, "room_server", None)
    room = websocket.query_params.get("room", "")
    try:
        if server is None or server.closed:
            raise AdmissionRefused(ErrorCode.INTERNAL)
        if not room or len(room) > 64:
            raise AdmissionRefused(ErrorCode.ROOM_UNKNOWN)
        claims = server.authenticate(await _token(websocket), room)
        peer = server.new_peer(websocket, claims, room)  # type: ignore[arg-type]
    except AdmissionRefused as exc:
        log.info("websocket refused", extra={"ctx": {"room": room[:64], "code": exc.code}})
        await _deny(websocket, exc.code)
        return
    await websocket.accept()
    await peer.run()
