"""Single-use WebSocket tickets: a signed-in page trades its session for a short opaque ticket that
it puts in ``/ws?ticket=…`` (a full JWT never travels in a URL).

A ticket maps to the access token it stands for; :meth:`redeem` returns that token once and forgets
the ticket. ``MemoryTicketStore`` serves one process; ``RedisTicketStore`` lets the console and a
media node in different processes share tickets (``GETDEL`` makes redemption atomic).
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["TicketStore", "MemoryTicketStore", "RedisTicketStore"]


class TicketStore(Protocol):
    async def issue(self, token: str, ttl_s: int) -> str: ...

    async def redeem(self, ticket: str) -> str | None:
        """The token behind ``ticket``, once; None when unknown, used or expired."""
        ...


def _new_ticket() -> str:
    return secrets.token_urlsafe(24)


def _plausible(ticket: str) -> bool:
    return 16 <= len(ticket) <= 64 and all(c.isalnum() or c in "-_" for c in ticket)


class MemoryTicketStore:
    def __init__(self) -> None:
        self._tickets: dict[str, tuple[str, float]] = {}
        self._now = time.monotonic

    async def issue(self, token: str, ttl_s: int) -> str:
        self._sweep()
        ticket = _new_ticket()
        self._tickets[ticket] = (token, self._now() + ttl_s)
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        if not _plausible(ticket):
            return None
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] < self._now():
            return None
        return entry[0]

    def _sweep(self) -> None:
        now = self._now()
        for key in [k for k, (_, exp) in self._tickets.items() if exp < now]:
            del self._tickets[key]


class RedisTicketStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, ticket: str) -> str:
        return f"{self._prefix}ws-ticket:{ticket}"

    async def issue(self, token: str, ttl_s: int) -> str:
        ticket = _new_ticket()
        await self._redis.set(self._key(ticket), token, ex=ttl_s)
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        if not _plausible(ticket):
            return None
        value = await self._redis.getdel(self._key(ticket))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
