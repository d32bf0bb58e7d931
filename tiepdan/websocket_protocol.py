"""The WebSocket protocol ``tiepdan serve`` gives uvicorn: its default, with a refused handshake done.

``/ws`` refuses a connection before accepting it with an HTTP denial response (401/403/404/410 and
``{"code", "message"}``, see :mod:`signaling.room.api`), through the ASGI ``websocket.http.response``
extension. uvicorn's sans-I/O WebSocket protocol (its default since websockets 14) writes that
response and closes the connection but never marks the handshake as done, so when the app returns it
logs "ASGI callable returned without completing handshake." at ERROR for every refused handshake: any
anonymous client could flood the error alerts. The wsproto protocol marks it done; this class does the
same once the denial's last body chunk is on the wire (the cause, reported upstream as
https://github.com/Kludex/uvicorn/pull/3138). Errors of the app itself are still logged as before.
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["WebSocketProtocol"]


class WebSocketProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # The denial response has been sent and the transport closed: the handshake is over.
            self.handshake_complete = True
