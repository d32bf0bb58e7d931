"""Single-use connect tickets for ``/ws``: a signed-in page trades its session for a short opaque
connect ticket that it puts in ``/ws?connect=…`` (a full JWT never travels in a URL).

Not to be confused with a *ticket* (a citizen's queue number, ``schedules``): a connect ticket only
opens one WebSocket. It maps to the access token it stands for; :meth:`redeem` returns that token
once and forgets the connect ticket. ``MemoryConnectTicketStore`` serves one process;
``RedisConnectTicketStore`` lets the console and a media node in different processes share them
(``GETDEL`` makes redemption atomic).
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["ConnectTicketStore", "MemoryConnectTicketStore", "RedisConnectTicketStore"]


class ConnectTicketStore(Protocol):
    async def issue(self, token: str, ttl_s: int) -> str: ...

    async def redeem(self, connect_ticket: str) -> str | None:
        """The token behind ``connect_ticket``, once; None when unknown, used or expired."""
        ...


def _new_connect_ticket() -> str:
    return secrets.token_urlsafe(24)


def _plausible(connect_ticket: str) -> bool:
    return 16 <= len(connect_ticket) <= 64 and all(c.isalnum() or c in "-_" for c in connect_ticket)


class MemoryConnectTicketStore:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float]] = {}
        self._now = time.monotonic

    async def issue(self, token: str, ttl_s: int) -> str:
        self._sweep()
        connect_ticket = _new_connect_ticket()
        self._entries[connect_ticket] = (token, self._now() + ttl_s)
        return connect_ticket

    async def redeem(self, connect_ticket: str) -> str | None:
        if not _plausible(connect_ticket):
            return None
        entry = self._entries.pop(connect_ticket, None)
        if entry is None or entry[1] < self._now():
            return None
        return entry[0]

    def _sweep(self) -> None:
        now = self._now()
        for key in [k for k, (_, exp) in self._entries.items() if exp < now]:
            del self._entries[key]


class RedisConnectTicketStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, connect_ticket: str) -> str:
        return f"{self._prefix}connect-ticket:{connect_ticket}"

    async def issue(self, token: str, ttl_s: int) -> str:
        connect_ticket = _new_connect_ticket()
        await self._redis.set(self._key(connect_ticket), token, ex=ttl_s)
        return connect_ticket

    async def redeem(self, connect_ticket: str) -> str | None:
        if not _plausible(connect_ticket):
            return None
        value = await self._redis.getdel(self._key(connect_ticket))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
