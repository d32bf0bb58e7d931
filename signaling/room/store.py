"""Room-state persistence: one snapshot (:class:`RoomRecord`) per room, rewritten on every change.

Both stores keep the same contract (``tests/signaling/test_room_store.py`` runs it on both):
``save`` replaces the room's record, ``load_all`` returns every saved record, ``delete`` forgets a
room, ``close`` releases resources and is idempotent; any call after ``close`` raises
:class:`StoreError`. ``RedisRoomStore`` keeps each record under ``{prefix}room:{room}`` and the
index of rooms in the set ``{prefix}rooms``, so that a media node killed with SIGKILL finds its
rooms (presence, floor, lobby, hands, lock, closed segment) when it starts again. With each record it
writes the room's published summary (:func:`summary_of`, under ``{prefix}room-summary:{room}``) that
the console reads (:mod:`signaling.room_state`); ``MemoryRoomStore`` answers the same reads itself.

Besides the rooms, the store keeps the room servers' denylists, shared by every media node on one
Redis: disabled accounts (``{prefix}disabled-accounts``) and ended console login sessions
(``{prefix}ended-login-sessions``, by the tokens' ``sid`` claim), each a sorted set scored by the
epoch second until which it is remembered; ``load_*`` forgets what is past.

The store also keeps the venues whose link the room server reported lost (:class:`LinkMarks`, under
``{prefix}link-lost:{room}`` in Redis), so that a venue's first media after a re-publish or after the media
process restarted is announced as ``room.venue_link_restored``; ``delete`` forgets a room's marks too.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..room_state import RoomSummary, summary_key
from .errors import StoreError
from .moderation import RoomRecord

__all__ = ["LinkMarks", "RoomStore", "MemoryRoomStore", "RedisRoomStore", "summary_of"]


def summary_of(record: RoomRecord) -> RoomSummary:
    """What other processes may read of a room (:mod:`signaling.room_state`): the venues with an admitted
    participant, the ticket being received."""
    present = {m.venue for m in record.members if m.status == "admitted" and m.venue is not None}
    return RoomSummary(room=record.room, connected_venues=tuple(v.venue for v in record.venues if v.venue in present),
                       calling_ticket_no=record.calling.ticket_no if record.calling is not None else None,
                       version=record.version)


class LinkMarks(Protocol):
    """The venues of each room whose link was reported lost and not yet back (the media plane's memory of
    ``room.venue_link_lost`` across re-publishes and restarts). Errors raise :class:`StoreError`."""

    async def mark_link_lost(self, room: str, venue: str) -> None:
        """Remember that ``venue``'s link in ``room`` was reported lost (idempotent)."""

    async def clear_link_lost(self, room: str, venue: str) -> bool:
        """Forget the mark; True when there was one (so exactly one caller announces the venue back)."""

    async def links_lost(self, room: str) -> frozenset[str]:
        """The venues of ``room`` marked lost."""


class RoomStore(LinkMarks, Protocol):
    async def save(self, record: RoomRecord) -> None: ...

    async def load_all(self) -> list[RoomRecord]: ...

    async def delete(self, room: str) -> None: ...

    async def remember_disabled(self, sub: str, until: float) -> None:
        """Keep that the account ``sub`` is disabled until ``until`` (epoch seconds): after a restart, a
        token it still holds must not let it in."""

    async def load_disabled(self, now: float) -> dict[str, float]:
        """Accounts disabled and still remembered at ``now`` → until when."""

    async def remember_ended_session(self, sid: str, until: float) -> None:
        """Keep that the console login session ``sid`` (the tokens' claim) ended, until ``until`` (epoch
        seconds): its tokens must not let anyone in, on this node or another, before or after a restart."""

    async def load_ended_sessions(self, now: float) -> dict[str, float]:
        """Login sessions ended and still remembered at ``now`` → until when."""

    async def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


class MemoryRoomStore:
    """Keeps records in this process (the embedded default: a restart starts empty)."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._disabled: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._links_lost: dict[str, set[str]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreError("room store is closed")

    async def save(self, record: RoomRecord) -> None:
        self._check()
        self._records[record.room] = record.model_dump_json()

    async def load_all(self) -> list[RoomRecord]:
        self._check()
        return [RoomRecord.model_validate_json(v) for v in self._records.values()]

    async def delete(self, room: str) -> None:
        self._check()
        self._records.pop(room, None)
        self._links_lost.pop(room, None)

    async def mark_link_lost(self, room: str, venue: str) -> None:
        self._check()
        self._links_lost.setdefault(room, set()).add(venue)

    async def clear_link_lost(self, room: str, venue: str) -> bool:
        self._check()
        marked = self._links_lost.get(room, set())
        if venue not in marked:
            return False
        marked.discard(venue)
        if not marked:
            del self._links_lost[room]
        return True

    async def links_lost(self, room: str) -> frozenset[str]:
        self._check()
        return frozenset(self._links_lost.get(room, ()))

    async def room_summary(self, room: str) -> RoomSummary | None:
        """The :class:`~signaling.room_state.RoomStateReader` of the embedded mode (the console's)."""
        stored = self._records.get(room)
        return summary_of(RoomRecord.model_validate_json(stored)) if stored is not None else None

    async def remember_disabled(self, sub: str, until: float) -> None:
        self._check()
        self._disabled[sub] = max(until, self._disabled.get(sub, until))

    async def load_disabled(self, now: float) -> dict[str, float]:
        self._check()
        self._disabled = {sub: until for sub, until in self._disabled.items() if until > now}
        return dict(self._disabled)

    async def remember_ended_session(self, sid: str, until: float) -> None:
        self._check()
        self._ended[sid] = max(until, self._ended.get(sid, until))

    async def load_ended_sessions(self, now: float) -> dict[str, float]:
        self._check()
        self._ended = {sid: until for sid, until in self._ended.items() if until > now}
        return dict(self._ended)

    async def close(self) -> None:
        self._closed = True


class RedisRoomStore:
    """Keeps records in Redis so that they survive the process."""

    def __init__(self, redis: Redis, prefix: str, *, owns_client: bool = False) -> None:
        self._redis = redis
        self._prefix = prefix
        self._owns_client = owns_client
        self._closed = False

    @classmethod
    def connect(cls, url: str, prefix: str) -> RedisRoomStore:
        """A store with its own client (closed with the store); connects lazily."""
        return cls(Redis.from_url(url), prefix, owns_client=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _key(self, room: str) -> str:
        return f"{self._prefix}room:{room}"

    def _links_key(self, room: str) -> str:
        return f"{self._prefix}link-lost:{room}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}rooms"

    @property
    def _disabled_key(self) -> str:
        return f"{self._prefix}disabled-accounts"

    @property
    def _ended_key(self) -> str:
        return f"{self._prefix}ended-login-sessions"

    def _check(self) -> None:
        if self._closed:
            raise StoreError("room store is closed")

    async def save(self, record: RoomRecord) -> None:
        self._check()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key(record.room), record.model_dump_json())
                pipe.set(summary_key(self._prefix, record.room), summary_of(record).model_dump_json())
                pipe.sadd(self._index, record.room)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"cannot save room {record.room}") from exc

    async def load_all(self) -> list[RoomRecord]:
        self._check()
        try:
            rooms = sorted(r.decode() if isinstance(r, bytes) else str(r)
                           for r in await self._redis.smembers(self._index))  # type: ignore[misc]
            if not rooms:
                return []
            values = await self._redis.mget([self._key(r) for r in rooms])
        except RedisError as exc:
            raise StoreError("cannot load rooms") from exc
        records: list[RoomRecord] = []
        for value in values:
            if value is None:
                continue
            try:
                records.append(RoomRecord.model_validate_json(value))
            except ValidationError as exc:
                raise StoreError("a stored room record is malformed") from exc
        return records

    async def delete(self, room: str) -> None:
        self._check()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(room), summary_key(self._prefix, room), self._links_key(room))
                pipe.srem(self._index, room)
                await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"cannot delete room {room}") from exc

    async def mark_link_lost(self, room: str, venue: str) -> None:
        self._check()
        try:
            await self._redis.sadd(self._links_key(room), venue)  # type: ignore[misc]
        except RedisError as exc:
            raise StoreError(f"cannot mark a lost link in room {room}") from exc

    async def clear_link_lost(self, room: str, venue: str) -> bool:
        self._check()
        try:  # SREM answers how many it removed: one caller gets True, however many race
            removed = await self._redis.srem(self._links_key(room), venue)  # type: ignore[misc]
        except RedisError as exc:
            raise StoreError(f"cannot clear a lost link in room {room}") from exc
        return int(removed) > 0

    async def links_lost(self, room: str) -> frozenset[str]:
        self._check()
        try:
            members = await self._redis.smembers(self._links_key(room))  # type: ignore[misc]
        except RedisError as exc:
            raise StoreError(f"cannot read the lost links of room {room}") from exc
        return frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def remember_disabled(self, sub: str, until: float) -> None:
        await self._remember(self._disabled_key, sub, until, "cannot remember a disabled account")

    async def load_disabled(self, now: float) -> dict[str, float]:
        return await self._load(self._disabled_key, now, "cannot load disabled accounts")

    async def remember_ended_session(self, sid: str, until: float) -> None:
        await self._remember(self._ended_key, sid, until, "cannot remember an ended login session")

    async def load_ended_sessions(self, now: float) -> dict[str, float]:
        return await self._load(self._ended_key, now, "cannot load ended login sessions")

    async def _remember(self, key: str, member: str, until: float, failure: str) -> None:
        self._check()
        try:  # a sorted set scored by expiry: GT keeps the later expiry when told twice
            await self._redis.zadd(key, {member: until}, gt=True)
        except RedisError as exc:
            raise StoreError(failure) from exc

    async def _load(self, key: str, now: float, failure: str) -> dict[str, float]:
        self._check()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf", withscores=True)
                _, rows = await pipe.execute()
        except RedisError as exc:
            raise StoreError(failure) from exc
        return {(m.decode() if isinstance(m, bytes) else str(m)): float(score) for m, score in rows}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._redis.aclose()
