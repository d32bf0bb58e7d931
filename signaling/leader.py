"""Leader locks: of several processes (or tasks) running the same background loop, one acts at a time.

Theory of operation
-------------------
A lock has a name and a time to live (``ttl_s``). A holder calls :meth:`LeaderLock.acquire` at every
turn of its loop: it takes the lock when nobody holds it, or renews it when it holds it already, and
answers whether it holds it now. It must renew well before the TTL runs out; :class:`LeaderLock`
refuses a TTL shorter than three turns of the loop that uses it (the caller checks, see
``schedules.timekeeper``).

:attr:`LeaderLock.held` is what a holder asks before each action: true only while the last successful
take or renewal is younger than :data:`VALIDITY` of the TTL, measured on the holder's own monotonic
clock from the moment the request was *sent* (so the time the answer took counts against it). A
renewal that finds another holder's token (the lock expired and was taken over), or that fails (Redis
unreachable), ends ``held`` at once; a holder that stops renewing (stalled, partitioned) stops
believing it holds the lock before the store lets anyone else take it. The lock is an optimisation, not
the guard of correctness: the actions themselves stay safe against a second actor (the scheduler's
service functions take the row and check ``expected_version``).

Two stores:

* :class:`RedisLeaderLock` (scaled topology): ``SET key token NX PX ttl`` with a random token per
  holder; renewal and release are compare-and-set scripts (Lua), so a holder never extends or deletes
  a lock another holder took after its own expired.
* :class:`MemoryLeaderLock` (embedded: one process): the same rules on a :class:`MemoryLocks` table
  shared by the holders of one process, with an injected monotonic clock.

:meth:`LeaderLock.close` releases the lock if held (idempotent); a closed lock is never held again.
"""

from __future__ import annotations

import abc
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["VALIDITY", "LeaderLock", "MemoryLeaderLock", "MemoryLocks", "RedisLeaderLock"]

log = logging.getLogger("signaling.leader")

#: A holder trusts its lock for this share of the TTL after each successful take or renewal.
VALIDITY = 2 / 3

Monotonic = Callable[[], float]

# KEYS[1] the lock, ARGV[1] the holder's token, ARGV[2] the TTL in ms: extend only one's own lock.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] the lock, ARGV[1] the holder's token: delete only one's own lock.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLock(abc.ABC):
    """One holder's handle on a named lock (see the module docstring)."""

    def __init__(self, name: str, *, ttl_s: float, clock: Monotonic = time.monotonic) -> None:
        if not name or len(name) > 200:
            raise ValueError("a lock needs a name of 1 to 200 characters")
        if not 0.05 <= ttl_s <= 3600:
            raise ValueError("a lock's ttl_s must be between 0.05 and 3600 seconds")
        self.name = name
        self.ttl_s = float(ttl_s)
        self.token = secrets.token_hex(16)
        self._clock = clock
        self._valid_until: float | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def held(self) -> bool:
        """True while this holder may act (see the module docstring)."""
        return self._valid_until is not None and self._clock() < self._valid_until

    async def acquire(self) -> bool:
        """Take the lock, or renew it if held; whether this holder holds it now. Never raises for the
        store's failures (logged; the answer is then False)."""
        if self._closed:
            return False
        sent = self._clock()
        was_held = self._valid_until is not None
        try:
            ok = await (self._renew() if was_held else self._take())
        except RedisError as exc:
            log.warning("leader lock %s unreachable (%s)", self.name, type(exc).__name__,
                        extra={"ctx": {"lock": self.name, "code": "lock_store_error"}})
            ok = False
        if ok and not self._closed:
            if not was_held:
                log.info("leader lock %s taken", self.name, extra={"ctx": {"lock": self.name, "code": "lock_taken"}})
            self._valid_until = sent + self.ttl_s * VALIDITY
            return True
        if was_held:
            log.warning("leader lock %s lost", self.name, extra={"ctx": {"lock": self.name, "code": "lock_lost"}})
        self._valid_until = None
        if ok:  # closed while the request was out: give it back
            await self._give_back()
        return False

    async def release(self) -> None:
        """Give the lock up if held (another holder may take it at once)."""
        if self._valid_until is None:
            return
        self._valid_until = None
        await self._give_back()

    async def _give_back(self) -> None:
        try:
            await self._release()
        except RedisError as exc:  # it expires by itself
            log.warning("leader lock %s not released (%s)", self.name, type(exc).__name__,
                        extra={"ctx": {"lock": self.name, "code": "lock_store_error"}})

    async def close(self) -> None:
        """Release the lock if held; afterwards :meth:`acquire` answers False. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.release()

    @abc.abstractmethod
    async def _take(self) -> bool: ...

    @abc.abstractmethod
    async def _renew(self) -> bool: ...

    @abc.abstractmethod
    async def _release(self) -> None: ...


class RedisLeaderLock(LeaderLock):
    """A lock at ``key`` in Redis (the caller puts its key prefix in ``key``)."""

    def __init__(self, redis: Redis, key: str, *, ttl_s: float, clock: Monotonic = time.monotonic) -> None:
        super().__init__(key, ttl_s=ttl_s, clock=clock)
        self._redis = redis
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    async def _take(self) -> bool:
        return bool(await self._redis.set(self.name, self.token, nx=True, px=self._ttl_ms))

    async def _renew(self) -> bool:
        return bool(await self._renew_script(keys=[self.name], args=[self.token, self._ttl_ms]))

    async def _release(self) -> None:
        await self._release_script(keys=[self.name], args=[self.token])


@dataclass
class MemoryLocks:
    """The lock table of one process: name → (token, expiry on ``clock``)."""

    clock: Monotonic = time.monotonic
    entries: dict[str, tuple[str, float]] = field(default_factory=dict)

    def holder(self, name: str) -> str | None:
        entry = self.entries.get(name)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]


class MemoryLeaderLock(LeaderLock):
    """A lock in ``table`` (one table per process; its clock is the lock's clock)."""

    def __init__(self, table: MemoryLocks, name: str, *, ttl_s: float) -> None:
        super().__init__(name, ttl_s=ttl_s, clock=table.clock)
        self._table = table

    async def _take(self) -> bool:
        if self._table.holder(self.name) is not None:
            return False
        self._table.entries[self.name] = (self.token, self._clock() + self.ttl_s)
        return True

    async def _renew(self) -> bool:
        if self._table.holder(self.name) != self.token:
            return False
        self._table.entries[self.name] = (self.token, self._clock() + self.ttl_s)
        return True

    async def _release(self) -> None:
        if self._table.holder(self.name) == self.token:
            del self._table.entries[self.name]
