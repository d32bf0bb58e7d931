"""What the media benchmarks share: the pre-encoded clips (cached on disk between runs) and the JSON-lines
control channel between a benchmark's driver or bots and its server process (loopback TCP, one request and
one answer per line; an answer ``{"error": …}`` is raised as ``RuntimeError`` on the calling side)."""

from __future__ import annotations

import asyncio
import json
import pickle
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["CLIP_CACHE", "LineClient", "clips", "rpc_sync", "serve_lines"]

CLIP_CACHE = Path("/tmp/tiepdan-bench-clips.pickle")


def clips() -> dict[str, Any]:
    """720p30 textured VP8 (``high``), 320x180 15 fps (``low``) and Opus (``mic``), 2 s each; the 720p texture
    takes a few seconds to encode, so they are cached in :data:`CLIP_CACHE`."""
    if CLIP_CACHE.exists():
        try:
            data: dict[str, Any] = pickle.loads(CLIP_CACHE.read_bytes())  # noqa: S301 - our own cache file
            return data
        except Exception:  # noqa: S110 - a stale cache is rebuilt
            pass
    from tiepdan.bots.media import opus_clip, textured_vp8_clip

    data = {
        "high": textured_vp8_clip(1280, 720, 30, 2.0, 30, 0.07),
        "low": textured_vp8_clip(320, 180, 15, 2.0, 30, 0.2),
        "mic": opus_clip(2.0),
    }
    CLIP_CACHE.write_bytes(pickle.dumps(data))
    return data


class LineClient:
    """The calling side: ``await client(op=…, …)`` sends one request and returns its answer (calls are
    serialised on one connection, opened on first use)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __call__(self, **req: Any) -> dict[str, Any]:
        async with self._lock:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self._reader is not None
            self._writer.write((json.dumps(req) + "\n").encode())
            resp: dict[str, Any] = json.loads(await self._reader.readline())
        if "error" in resp:
            raise RuntimeError(resp["error"])
        return resp

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def rpc_sync(port: int, **req: Any) -> dict[str, Any]:
    """One request from a process without an event loop (the driver), on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    result: dict[str, Any] = json.loads(buf)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


async def serve_lines(op: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> asyncio.Server:
    """The server side on a free loopback port (``server.sockets[0].getsockname()[1]``): each request line is
    answered with ``op``'s result, or ``{"error": …}`` when it raises."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    resp = await op(json.loads(line))
                except Exception as exc:  # reported to the caller
                    resp = {"error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(resp) + "\n").encode())
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)
