"""The queue boards' server-sent events: one hub per process, one feed per session, one bounded queue per client.

Theory of operation
-------------------
:class:`BoardHub` (owned by the lifespan, closed before the bus) listens to the bus with ``bus.listen()``, the
live fan-out every process has (memory or Redis), so a board works on a ``--role control`` process exactly as on
the embedded one. It keeps a :class:`_Feed` per session that has boards watching:

* a ``case.*`` or ``ticket.*`` event of the session, or a ``session.*`` one, marks the feed stale; the feed
  reloads the board from the database (:func:`schedules.board.board_state` on the queue, the venues and the
  queue log since its last read) and sends the same encoded ``board`` message to every client of the session.
  Reloads never overlap: events arriving during a reload cause one more reload after it, so a burst of events
  (a registration rush) costs a couple of reloads, not one each;
* ``case.called`` and ``case.recalled`` also go out at once as a ``call`` message (ticket number, venue, call
  sequence, the announcement's text and audio URL), before the reload: the number reaches every screen
  without waiting for the database, and the called venue's screen plays the announcement;
* ``session.closed``, ``session.cancelled`` and ``session.postponed`` end the session's streams with an ``end``
  message (so does a reload that finds the session no longer shown).

Each client (:class:`BoardStream`) has its own queue of at most ``BoardOptions.client_queue`` messages; the hub
only ever puts without waiting. A client that falls that far behind is dropped: its queue gets a ``reconnect``
message and the stream ends, so the browser reconnects and starts again from a snapshot, and no other client
waits for it. A write that does not complete within ``write_timeout_s`` ends the stream too. Streams beyond
``max_streams`` per process are refused (:class:`TooManyStreams`, answered 503 with ``Retry-After``).

A stream starts with ``retry:`` (the browser's reconnection delay) and the latest snapshot of its session; a
reconnecting browser gets a fresh snapshot (``Last-Event-ID`` is not needed: a snapshot is the whole state).
Heartbeats are comment lines every ``heartbeat_s`` so proxies keep the connection open. :meth:`BoardHub.close`
(idempotent) ends every stream with ``reconnect`` and stops the listener; ``tiepdan serve`` calls it when the
server begins to shut down, since the server waits for open responses before running the lifespan's exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from schedules.board import BOARD_STATES, Board, QueueLogEntry, board_state, read_queue_log
from schedules.queue_store import load_queue_state
from schedules.sessions import get_session
from signaling.bus import Bus
from signaling.errors import BusError
from signaling.events import AnyEvent
from signaling.supervisor import Supervised, Supervisor

__all__ = ["BoardHub", "BoardOptions", "BoardStream", "EventStreamResponse", "TooManyStreams", "board_json",
           "sse_message"]

log = logging.getLogger("room_console.board")

_END_SESSION = frozenset({"session.closed", "session.cancelled", "session.postponed"})
_CALLS = frozenset({"case.called", "case.recalled"})


@dataclass(frozen=True)
class BoardOptions:
    max_streams: int = 1000
    """Concurrent board streams per process; more are refused with 503."""
    client_queue: int = 64
    """Messages one client may fall behind before it is dropped (told to reconnect)."""
    heartbeat_s: float = 15.0
    """Seconds between comment lines on an idle stream."""
    write_timeout_s: float = 10.0
    """A write to one client that takes longer ends its stream."""
    retry_ms: int = 2000
    """The browser's reconnection delay, sent as ``retry:``."""
    next_shown: int = 6
    """Numbers listed as next (what fits the board at 16:9 without scrolling)."""
    log_shown: int = 6


class TooManyStreams(Exception):
    """The process serves ``max_streams`` boards already."""


def sse_message(event: str, data: Mapping[str, Any], *, event_id: str | None = None) -> bytes:
    """One server-sent event (the JSON on one ``data:`` line)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _seconds(value: Any) -> int | None:
    return None if value is None else int(value.total_seconds())


def board_json(board: Board, now: datetime) -> dict[str, Any]:
    """The ``board`` message: numbers, venue ids and names, reason codes, seconds; never a name or a case."""
    current = board.current
    return {
        "session": board.session_id,
        "state": board.state.value,
        "at": now.isoformat(),
        "current": None if current is None else {
            "ticket_no": current.ticket_no, "venue": current.venue, "venue_name": current.venue_name,
            "call_seq": current.call_seq, "paused": current.paused},
        "next": [{"ticket_no": t.ticket_no, "venue": t.venue, "venue_name": t.venue_name,
                  "wait_s": _seconds(t.wait), "reorder": t.reorder} for t in board.next],
        "waiting": board.waiting,
        "held": board.held,
        "waiting_by_venue": dict(board.waiting_by_venue),
        "closed_cases": board.closed_cases,
        "mean_hearing_s": _seconds(board.mean_hearing),
        "last_wait_s": _seconds(board.last_wait),
        "log": [{"at": n.at.isoformat(), "ticket_no": n.ticket_no, "venue": n.venue, "reason": n.reason}
                for n in board.log],
    }


class BoardStream:
    """One client's stream: a bounded queue of encoded messages, ended once (``ended`` says why)."""

    def __init__(self, session_id: str, venue: str, maxsize: int) -> None:
        self.session_id = session_id
        self.venue = venue
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize + 1)  # one place for the end
        self._maxsize = maxsize
        self.ended: str | None = None

    def offer(self, chunk: bytes) -> None:
        """Queue ``chunk`` without waiting; a client already ``client_queue`` behind is dropped instead."""
        if self.ended is not None:
            return
        if self._queue.qsize() >= self._maxsize:
            self.end("slow", sse_message("reconnect", {"reason": "slow"}))
            return
        self._queue.put_nowait(chunk)

    def end(self, reason: str, last: bytes | None = None) -> None:
        """End the stream: after what is queued, or, with a final message ``last``, after ``last`` alone (what
        the client has not read yet is stale: it reconnects, or the session is over)."""
        if self.ended is not None:
            return
        self.ended = reason
        if last is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(last)
        if not self._queue.full():
            self._queue.put_nowait(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next message; ``b""`` after ``timeout`` seconds of silence; None once ended and drained."""
        if self._queue.empty() and self.ended is not None:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return b""


class _Feed:
    """The boards of one session: the latest snapshot, the queue log read so far, the clients."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.clients: set[BoardStream] = set()
        self.snapshot: bytes | None = None
        self.venue_names: dict[str, str] = {}
        self.log: list[QueueLogEntry] = []
        self.cursor = 0
        self.stale = True
        self.task: asyncio.Task[None] | None = None

    def send(self, chunk: bytes) -> None:
        for client in list(self.clients):
            client.offer(chunk)

    def end(self, reason: str) -> None:
        last = sse_message("end", {"reason": reason})
        for client in list(self.clients):
            client.end(reason, last)


class BoardHub:
    """See the module docstring. ``clock`` gives the time written into snapshots (``at``); with ``supervisor``
    the bus listener runs as its supervised task ``queue-board-listener`` (a crash is logged, counted and
    restarted; ``/healthz`` names it meanwhile)."""

    def __init__(self, engine: AsyncEngine, bus: Bus, *, clock: Callable[[], datetime],
                 options: BoardOptions | None = None, supervisor: Supervisor | None = None) -> None:
        self._engine = engine
        self._bus = bus
        self._supervisor = supervisor
        self._handle: Supervised | None = None
        self._clock = clock
        self.options = options or BoardOptions()
        self._feeds: dict[str, _Feed] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.closed = False
        self.dropped = 0  # clients dropped for being slow (a figure for /metrics and the tests)
        # Reload tasks cancelled when their feed ended: still owned, awaited by close() (a task cancelled in the
        # middle of a database call must finish before the engine goes away).
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def streams(self) -> int:
        return sum(len(feed.clients) for feed in self._feeds.values())

    async def start(self) -> None:
        """Start listening to the bus (returns once the listener is registered)."""
        if self._listener is None and self._handle is None and not self.closed:
            if self._supervisor is not None:
                self._handle = self._supervisor.run("queue-board-listener", self._listen)
            else:
                self._listener = asyncio.create_task(self._listen(), name="queue-board-listener")
            await self._listening.wait()

    async def _listen(self) -> None:
        while not self.closed and not self._bus.closed:
            try:
                async with self._bus.listen() as events:
                    self._listening.set()
                    async for event in events:
                        self._route(event)
                return  # the bus closed
            except BusError as exc:
                # Fell behind or lost the bus: whatever was missed, every feed reloads from the database.
                log.warning("board listener restarts", extra={"ctx": {"error": str(exc)[:200]}})
                for feed in list(self._feeds.values()):
                    self._refresh(feed)
                await asyncio.sleep(0.5)
            finally:
                self._listening.set()

    def _route(self, event: AnyEvent) -> None:
        session = getattr(event, "session", None)
        feed = self._feeds.get(session) if isinstance(session, str) else None
        if feed is None:
            return
        kind = event.type
        if kind in _END_SESSION:
            self._end_feed(feed, "closed")
            return
        if kind in _CALLS:
            venue = str(getattr(event, "venue", ""))
            feed.send(sse_message("call", {
                "type": kind, "ticket_no": getattr(event, "ticket_no", None), "venue": venue,
                "venue_name": feed.venue_names.get(venue, venue), "call_seq": getattr(event, "call_seq", None),
                "announcement_text": getattr(event, "announcement_text", ""),
                "announcement_audio_url": getattr(event, "announcement_audio_url", None),
                "recalled": kind == "case.recalled"}))
        if kind.startswith(("case.", "ticket.", "session.")):
            self._refresh(feed)

    def _refresh(self, feed: _Feed) -> None:
        feed.stale = True
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(self._reload(feed), name=f"queue-board-reload:{feed.session_id}")

    async def _reload(self, feed: _Feed) -> None:
        while feed.stale and feed.clients and not self.closed:
            feed.stale = False
            try:
                shown = await self._load(feed)
            except Exception as exc:  # noqa: BLE001 - logged; the next event reloads again
                log.warning("board not reloaded", extra={"ctx": {"session": feed.session_id,
                                                                 "error": type(exc).__name__}})
                return
            if not shown:
                self._end_feed(feed, "closed")
                return

    async def _load(self, feed: _Feed) -> bool:
        async with self._engine.connect() as conn:
            record = await get_session(conn, feed.session_id)
            if record.state not in BOARD_STATES:
                return False
            queue, version = await load_queue_state(conn, feed.session_id)
            new, feed.cursor = await read_queue_log(conn, feed.session_id, after=feed.cursor)
        feed.log.extend(new)
        feed.venue_names = {v.venue: v.name for v in record.venues}
        board = board_state(record.state, queue, feed.venue_names, feed.log,
                            next_shown=self.options.next_shown, log_shown=self.options.log_shown)
        feed.snapshot = sse_message("board", board_json(board, self._clock()),
                                    event_id=f"{version}.{feed.cursor}")
        feed.send(feed.snapshot)
        return True

    def _end_feed(self, feed: _Feed, reason: str) -> None:
        feed.end(reason)
        feed.clients.clear()
        if self._feeds.get(feed.session_id) is feed:
            del self._feeds[feed.session_id]
        if feed.task is not None and feed.task is not asyncio.current_task():
            self._retire(feed.task)

    def _retire(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        if not task.done():
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    def subscribe(self, session_id: str, venue: str) -> BoardStream:
        """A new client of ``session_id``'s board (its first message: the latest snapshot, or the first load)."""
        if self.closed:
            raise TooManyStreams("the board hub is closed")
        if self.streams >= self.options.max_streams:
            raise TooManyStreams(f"{self.options.max_streams} board streams already")
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = _Feed(session_id)
        stream = BoardStream(session_id, venue, self.options.client_queue)
        feed.clients.add(stream)
        if feed.snapshot is not None:
            stream.offer(feed.snapshot)
        else:
            self._refresh(feed)
        return stream

    def unsubscribe(self, stream: BoardStream) -> None:
        if stream.ended == "slow":
            self.dropped += 1
        stream.end("left")
        feed = self._feeds.get(stream.session_id)
        if feed is None:
            return
        feed.clients.discard(stream)
        if not feed.clients:
            del self._feeds[stream.session_id]
            if feed.task is not None:
                self._retire(feed.task)

    async def close(self) -> None:
        """End every stream (``reconnect``: the browsers come back to another process or after a restart) and
        stop listening; idempotent."""
        if self.closed:
            return
        self.closed = True
        last = sse_message("reconnect", {"reason": "shutdown"})
        tasks = [t for t in (self._listener, *(f.task for f in self._feeds.values()), *self._retired)
                 if t is not None]
        for feed in self._feeds.values():
            for client in list(feed.clients):
                client.end("shutdown", last)
        self._feeds.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._handle is not None and self._supervisor is not None:
            await self._supervisor.stop(self._handle)


class EventStreamResponse(Response):
    """``text/event-stream`` for one :class:`BoardStream`: ``retry:``, its messages, heartbeats; ends when the
    stream ends, the client goes away, or a write stalls past ``write_timeout_s``."""

    media_type = "text/event-stream"

    def __init__(self, hub: BoardHub, stream: BoardStream) -> None:
        # No Content-Length (Response.__init__ would set one for its empty body): the stream has no end in view.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
                            (b"x-accel-buffering", b"no")]
        self._hub = hub
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream, options = self._stream, self._hub.options

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.end("gone")

        watcher = asyncio.create_task(watch_disconnect(), name="queue-board-disconnect")
        try:
            async with asyncio.timeout(options.write_timeout_s):
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                await send({"type": "http.response.body", "body": f"retry: {options.retry_ms}\n\n".encode(),
                            "more_body": True})
            while (chunk := await stream.next(options.heartbeat_s)) is not None:
                async with asyncio.timeout(options.write_timeout_s):
                    await send({"type": "http.response.body", "body": chunk or b": ping\n\n", "more_body": True})
            async with asyncio.timeout(options.write_timeout_s):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (TimeoutError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            stream.end("stalled")
            log.info("board stream stalled", extra={"ctx": {"session": stream.session_id, "venue": stream.venue}})
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._hub.unsubscribe(stream)
