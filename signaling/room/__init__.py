"""The room server (imported by the composition root only): rooms, moderation, the ``/ws`` endpoint."""

from .errors import AdmissionRefused, RoomClosed, RoomError, StoreError
from .media import MediaOptions, MediaPlane
from .moderation import Room, RoomRecord
from .options import RoomOptions
from .server import RoomServer
from .store import MemoryRoomStore, RedisRoomStore, RoomStore

__all__ = [
    "AdmissionRefused",
    "MediaOptions",
    "MediaPlane",
    "MemoryRoomStore",
    "RedisRoomStore",
    "Room",
    "RoomClosed",
    "RoomError",
    "RoomOptions",
    "RoomRecord",
    "RoomServer",
    "RoomStore",
    "StoreError",
]
