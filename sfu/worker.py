"""Worker: the media plane of one process; owns the rooms.

Lifecycle::

    worker = Worker(Options(...), listener=on_event)   # listener: Callable[[sfu.events.Event], None]
    await worker.start()          # sfu.selftest(): AiortcVersionMismatch / AiortcHookMissing if aiortc changed
    room = worker.create_room("session-42")
    ...
    await worker.close()          # closes every room, participant, peer connection and task

or ``async with Worker(options) as worker: ...``. All objects live on the event loop that called
``start``; the listener is called synchronously on it and must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from sfu import native
from sfu.errors import DuplicateRoom, NotFound, UnsupportedCodec, WorkerClosed
from sfu.events import Event
from sfu.hooks import announce_host_addresses, selftest
from sfu.negotiation import VIDEO_CODECS
from sfu.options import Options
from sfu.room import Room
from sfu.stats import WorkerStats

logger = logging.getLogger(__name__)


def _ignore(event: Event) -> None:
    del event


class Worker:
    """The SFU of one process. Owned by the application (the room server's lifespan)."""

    def __init__(
        self, options: Options | None = None, listener: Callable[[Event], None] | None = None
    ) -> None:
        self.options = options or Options()
        self.started = False
        self.closed = False
        self._listener = listener or _ignore
        self._rooms: dict[str, Room] = {}

    def __repr__(self) -> str:
        return f"<Worker rooms={len(self._rooms)}{' closed' if self.closed else ''}>"

    async def start(self) -> None:
        """Self-test the aiortc hooks and releases (unless ``Options.selftest`` is off). Idempotent."""
        if self.closed:
            raise WorkerClosed("worker closed")
        if self.started:
            return
        if self.options.selftest:
            selftest()
        if self.options.host_addresses:
            announce_host_addresses(self.options.host_addresses)
        missing = native.unavailable()
        if self.options.native_forwarding and missing is not None:
            logger.warning("forwarding runs its Python path, which costs more CPU per packet: %s (install a C "
                           "compiler and Python's headers, then reinstall the package)", missing)
        self.started = True

    def create_room(self, room_id: str, *, video_codec: str | None = None) -> Room:
        """Create a room forwarding ``video_codec`` (default ``Options.video_codec``) and Opus."""
        if self.closed or not self.started:
            raise WorkerClosed("worker closed" if self.closed else "worker not started")
        if room_id in self._rooms:
            raise DuplicateRoom(f"room {room_id} exists")
        codec = (video_codec or self.options.video_codec).upper()
        if codec not in VIDEO_CODECS:
            raise UnsupportedCodec(f"a room forwards one of {', '.join(VIDEO_CODECS)}, not {codec}")
        room = Room(
            room_id, options=self.options, video_codec=codec, emit=self._listener, on_closed=self._forget
        )
        self._rooms[room_id] = room
        return room

    def room(self, room_id: str) -> Room:
        try:
            return self._rooms[room_id]
        except KeyError:
            raise NotFound(f"no room {room_id}") from None

    @property
    def rooms(self) -> tuple[Room, ...]:
        return tuple(self._rooms.values())

    async def stats(self) -> WorkerStats:
        return WorkerStats(tuple([await room.stats() for room in list(self._rooms.values())]))

    async def close(self) -> None:
        """Close every room (and so every participant, peer connection and task). Idempotent."""
        if self.closed:
            return
        self.closed = True
        for room in list(self._rooms.values()):
            await room.close()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _forget(self, room: Room) -> None:
        if self._rooms.get(room.id) is room:
            del self._rooms[room.id]
