"""The HTTP server ``tiepdan serve`` runs: uvicorn's, ending the console's long-lived responses first.

When uvicorn begins to shut down it stops accepting connections and then waits for every open response to
finish before it runs the lifespan's exit; a queue board's event stream never finishes by itself, so the
server would wait for ever (or until a second signal). :class:`Server` closes the process's board hub
(:class:`room_console.board_stream.BoardHub`: every stream gets ``reconnect`` and ends) before that wait.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

__all__ = ["Server"]


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        console = getattr(self._app.state, "console", None)
        boards = getattr(console, "boards", None)
        if boards is not None:
            await boards.close()
        await super().shutdown(sockets=sockets)
