"""The live room's state as other processes may read it: a small, read-only summary per room.

The room server (``signaling.room``, media processes) writes a :class:`RoomSummary` next to each room
record it saves in its room store and forgets it with the room. The console (control processes) reads
it through a :class:`RoomStateReader` and never imports the room server: on Redis (the scaled topology)
with :class:`RedisRoomStateReader`, which reads the key ``{prefix}room-summary:{room}``; in the embedded
mode (no Redis) the room server's in-memory store is itself a reader.

Which sessions are live is the scheduler's to say (``schedules``, in the database); the summary only
tells what a page may show before its script connects to ``/ws`` (which then keeps it up to date): which
venues have someone in the room and the ticket number being received. A room a media node has not opened
yet (or any more) has no summary.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .errors import SignalingError

__all__ = ["RoomSummary", "RoomStateReader", "RedisRoomStateReader", "RoomStateError", "summary_key"]


class RoomStateError(SignalingError):
    """The room state could not be read (Redis down, a malformed summary)."""


class RoomSummary(BaseModel):
    """What a media node says of one open room."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    room: str
    #: venues (ids) with at least one admitted participant, in the room's venue order
    connected_venues: tuple[str, ...] = ()
    #: the ticket number of the case being received, if any
    calling_ticket_no: int | None = None
    #: the room record's version (grows with every change)
    version: int = 0


def summary_key(prefix: str, room: str) -> str:
    """The Redis key of ``room``'s summary under the deployment's key ``prefix``."""
    return f"{prefix}room-summary:{room}"


@runtime_checkable
class RoomStateReader(Protocol):
    async def room_summary(self, room: str) -> RoomSummary | None:
        """The summary of ``room`` while a media node has it open, else None; :class:`RoomStateError`
        when it cannot be read."""


class RedisRoomStateReader:
    """Reads the summaries the media nodes write into Redis (the client is the caller's)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def room_summary(self, room: str) -> RoomSummary | None:
        try:
            value = await self._redis.get(summary_key(self._prefix, room))
        except RedisError as exc:
            raise RoomStateError(f"cannot read the state of room {room}") from exc
        if value is None:
            return None
        try:
            return RoomSummary.model_validate_json(value)
        except ValidationError as exc:
            raise RoomStateError(f"the stored state of room {room} is malformed") from exc
