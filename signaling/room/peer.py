"""One authenticated WebSocket connection: the I/O driver around the room's state machine.

A :class:`Peer` is created by the ``/ws`` route after authentication and owned by it;
:meth:`Peer.run` accepts nothing itself (the route accepted) and returns when the connection ends.
Inside, three tasks owned by ``run``: the *reader* (size limit, rate limit, parse, dispatch), the
*writer* (drains the bounded outbound queue) and the *keeper* (token expiry). The first to end
ends the others; ``run`` then closes the socket with the chosen close code and detaches the peer
from the room server.

Outbound messages are serialised once by the room server and queued with :meth:`Peer.send`,
which never blocks: a reader that lets :attr:`RoomOptions.outbound_queue` messages pile up, or
cannot take one frame within ``send_timeout_s``, is disconnected with 4008 and never stalls the
room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from ..protocol import (
    CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
    ClientMessage,
    CloseCode,
    Error,
    ErrorCode,
    Join,
    Leave,
    Ping,
    Pong,
    Refresh,
    ServerMessage,
    TokenExpiring,
    dump_message,
    error,
    parse_client_message,
)
from ..tokens import Claims
from .errors import AdmissionRefused
from .options import RoomOptions

if TYPE_CHECKING:
    from .server import RoomServer

__all__ = ["Peer", "Transport"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a peer needs of a WebSocket (Starlette's ``WebSocket`` fits)."""

    async def receive(self) -> dict[str, object]: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class _Bucket:
    """Token bucket: ``rate`` per second, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Peer:
    """One signalling connection of one participant (see the module docstring)."""

    def __init__(self, transport: Transport, claims: Claims, room: str, server: RoomServer,
                 options: RoomOptions, *, peer_id: str) -> None:
        self.transport = transport
        self.claims = claims
        self.room = room
        self.peer_id = peer_id
        self.participant: str | None = None
        self.left = False
        self._server = server
        self._options = options
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._close_code: int | None = None
        self._refreshed = asyncio.Event()
        self._bucket = _Bucket(options.rate_per_s, options.rate_burst, time.monotonic)
        self._strikes = 0
        self._closed = False
        self._gone = False  # the client closed the connection
        self._done = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sub(self) -> str:
        return self.claims.sub

    def _ctx(self) -> dict[str, object]:
        return {"room": self.room, "peer": self.peer_id, "participant": self.participant,
                "venue": self.claims.venue}

    # -- outbound ---------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Queue one serialised message; never blocks. A full queue disconnects the peer (4008)."""
        if self._closing.is_set():
            return
        if len(self._queue) >= self._options.outbound_queue:
            log.warning("slow consumer disconnected", extra={"ctx": self._ctx()})
            self.close_soon(CloseCode.SLOW_CONSUMER, flush=False)
            return
        self._queue.append(text)
        self._wake.set()

    def close_soon(self, code: int, *, flush: bool = True) -> None:
        """Ask the connection to end with ``code`` (after the queued messages when ``flush``)."""
        if self._close_code is None:
            self._close_code = int(code)
        if not flush:
            self._queue.clear()
        self._closing.set()
        self._wake.set()

    # -- run --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it ends; then close the socket and detach from the room."""
        reader = asyncio.create_task(self._reader(), name=f"peer-{self.peer_id}-reader")
        writer = asyncio.create_task(self._writer(), name=f"peer-{self.peer_id}-writer")
        keeper = asyncio.create_task(self._keeper(), name=f"peer-{self.peer_id}-keeper")
        closing = asyncio.create_task(self._closing.wait(), name=f"peer-{self.peer_id}-closing")
        tasks = {reader, writer, keeper, closing}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not closing and not task.cancelled() and task.exception() is not None:
                    log.error("peer task failed", exc_info=task.exception(), extra={"ctx": self._ctx()})
                    self.close_soon(CloseCode.INTERNAL, flush=False)
            if writer not in done:
                # Let the writer flush what was queued before the close (e.g. ``removed``), briefly.
                self.close_soon(self._close_code if self._close_code is not None else CloseCode.NORMAL,
                                flush=not self._gone)
                await asyncio.wait({writer}, timeout=self._options.close_timeout_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._closed = True
            if not self._gone:
                await self._close_transport()
            try:
                await self._server.detach(self)
            finally:
                self._done.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def _close_transport(self) -> None:
        code = self._close_code if self._close_code is not None else CloseCode.NORMAL
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._options.close_timeout_s):
                await self.transport.close(code)

    async def _writer(self) -> None:
        while True:
            while self._queue:
                text = self._queue.popleft()
                try:
                    async with asyncio.timeout(self._options.send_timeout_s):
                        await self.transport.send_text(text)
                except TimeoutError:
                    log.warning("slow consumer: send timed out", extra={"ctx": self._ctx()})
                    self.close_soon(CloseCode.SLOW_CONSUMER, flush=False)
                    return
                except Exception:  # noqa: BLE001 - the connection is gone; the reader sees it too
                    self._gone = True
                    self._queue.clear()
                    return
            if self._closing.is_set():
                return
            self._wake.clear()
            await self._wake.wait()

    async def _keeper(self) -> None:
        """Warn ahead of the token's expiry; close with 4001 when it expires unrefreshed."""
        clock = self._server.clock
        while True:
            exp = self.claims.exp
            life = max(0.0, exp - self.claims.iat)
            lead = min(self._options.refresh_lead_s, life / 2)
            warn_in = exp - lead - clock()
            if warn_in > 0 and not await self._wait_refresh(warn_in):
                continue
            if self.claims.exp != exp:
                continue
            self._send(TokenExpiring(expires_at=exp))
            if not await self._wait_refresh(max(0.0, exp - clock())):
                continue
            if self.claims.exp == exp:
                self._send(error(ErrorCode.TOKEN_EXPIRED))
                self.close_soon(CloseCode.TOKEN_EXPIRED)
                return

    async def _wait_refresh(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when a refresh came first."""
        self._refreshed.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._refreshed.wait()
        except TimeoutError:
            return True
        return False

    def _send(self, message: ServerMessage) -> None:
        self.send(dump_message(message))

    # -- inbound ----------------------------------------------------------------------------------

    async def _reader(self) -> None:
        joined = False
        try:
            async with asyncio.timeout(self._options.join_timeout_s) as deadline:
                while not joined:
                    msg = await self._next()
                    if msg is None:
                        return
                    if isinstance(msg, Join):
                        joined = await self._join(msg)
                        if not joined:
                            return
                        deadline.reschedule(None)
                    elif isinstance(msg, Ping):
                        self._send(Pong(ref=msg.id))
                    elif isinstance(msg, Leave):
                        self.close_soon(CloseCode.NORMAL)
                        return
                    else:
                        self._send(error(ErrorCode.NOT_JOINED, ref=msg.id))
        except TimeoutError:
            self._send(error(ErrorCode.NOT_JOINED, detail="join timeout"))
            self.close_soon(CloseCode.PROTOCOL)
            return
        while True:
            msg = await self._next()
            if msg is None:
                return
            match msg:
                case Ping():
                    self._send(Pong(ref=msg.id))
                case Join():
                    self._send(error(ErrorCode.ALREADY_JOINED, ref=msg.id))
                case Leave():
                    self.left = True
                    self.close_soon(CloseCode.NORMAL)
                    return
                case Refresh():
                    if await self._server.refresh(self, msg):
                        self._refreshed.set()
                case _:
                    await self._server.handle(self, msg)
            # Buffered frames are read without suspending: yield so that the writers of the peers
            # this message reached drain their queues before the next one fills them further.
            await asyncio.sleep(0)

    async def _join(self, msg: Join) -> bool:
        if msg.protocol != PROTOCOL_VERSION:
            self._send(error(ErrorCode.UNSUPPORTED_VERSION, ref=msg.id, detail=f"supported: {PROTOCOL_VERSION}"))
            self.close_soon(CloseCode.PROTOCOL)
            return False
        if msg.venue is not None and msg.venue != self.claims.venue:
            self._send(error(ErrorCode.FORBIDDEN, ref=msg.id, detail="venue differs from the token"))
            self.close_soon(CloseCode.FORBIDDEN)
            return False
        try:
            await self._server.attach(self, msg)
        except AdmissionRefused as exc:
            code = ErrorCode(exc.code) if exc.code in ErrorCode.__members__.values() else ErrorCode.FORBIDDEN
            self._send(error(code, ref=msg.id))
            self.close_soon(CloseCode.ROOM_CLOSED if code == ErrorCode.ROOM_CLOSED else CloseCode.FORBIDDEN)
            return False
        return True

    async def _next(self) -> ClientMessage | None:
        """The next valid client message; None when the connection must end. Bad input is answered."""
        while True:
            frame = await self.transport.receive()
            if frame.get("type") == "websocket.disconnect":
                self._gone = True
                self._queue.clear()
                return None
            data = frame.get("text")
            if data is None:
                data = frame.get("bytes")
            if not isinstance(data, str | bytes):
                continue
            size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
            if size > self._options.max_frame_bytes:
                self.close_soon(CloseCode.TOO_BIG, flush=False)
                return None
            if not self._bucket.take():
                self._strikes += 1
                if self._strikes == 1:  # the first drop of a run is answered, with the dropped message's id
                    self._send(error(ErrorCode.RATE_LIMITED, ref=_request_id(_decode(data))))
                if self._strikes > self._options.flood_close_after:
                    log.warning("flooding peer disconnected", extra={"ctx": self._ctx()})
                    self.close_soon(CloseCode.POLICY)
                    return None
                continue
            self._strikes = 0
            try:
                return parse_client_message(data)
            except ValidationError as exc:
                self._send(_parse_error(data, exc))


_NOT_JSON = object()


def _decode(data: str | bytes) -> object:
    """The frame's JSON value, or ``_NOT_JSON``: not JSON, not UTF-8, or nested deeper than the standard
    parser recurses (pydantic refuses such a frame first; ``json`` would raise ``RecursionError``)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _request_id(doc: object) -> str | None:
    """The ``id`` of a client message, echoed as ``ref``, when ``doc`` is an object with a valid one."""
    raw_id = doc.get("id") if isinstance(doc, dict) else None
    return raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 64 else None


def _parse_error(data: str | bytes, exc: ValidationError) -> Error:
    """``unknown_type`` when ``type`` names no client message, else ``bad_message``."""
    doc = _decode(data)
    if doc is _NOT_JSON:
        return error(ErrorCode.BAD_MESSAGE, detail="not JSON")
    if not isinstance(doc, dict):
        return error(ErrorCode.BAD_MESSAGE, detail="not a JSON object")
    ref = _request_id(doc)
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_MESSAGE_TYPES:
        return error(ErrorCode.UNKNOWN_TYPE, ref=ref, detail=None if not isinstance(kind, str) else kind[:64])
    fields = sorted({".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in exc.errors()})
    return error(ErrorCode.BAD_MESSAGE, ref=ref, detail=("invalid: " + ", ".join(fields))[:200])
