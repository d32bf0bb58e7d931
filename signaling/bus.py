"""The event bus: publish typed events, consume them in consumer groups, at least once.

The contract (``MemoryBus`` and ``RedisBus`` both pass ``tests/signaling/test_bus_contract.py``):

* ``publish(event)`` appends the event to the bus; it returns when the bus holds it. Publishing on
  a closed bus raises :class:`~signaling.errors.BusError`.
* ``create_group(group, from_start=...)`` makes a consumer group if it does not exist yet (an
  existing group keeps its position). A new group with ``from_start=True`` starts at the oldest
  event the bus still holds; with ``from_start=False`` it starts after the newest one, so it gets
  only events published after it was created. Create groups before the publishers start when a
  group must not miss anything; ``consume`` creates its group too.
* ``consume(group, consumer, handler)`` runs until the bus closes (then it returns) or the caller
  cancels it. Each event of the group goes to exactly one of its consumers, in publication order;
  the event is acknowledged when ``handler`` returns. A handler that raises gets the same event
  again, before any later one, after a growing pause, up to ``BusOptions.max_attempts`` times;
  then the event is dead-lettered (kept for inspection, see ``dead_letters``) and acknowledged, so
  one poisonous event cannot stop a group. An entry that does not parse as an event is logged
  (ids only, never the payload) and dead-lettered; it never stops the consumer. An event held by a
  consumer that stopped without acknowledging it (cancelled, crashed, process killed) is delivered
  again to a consumer of the group: at least once. Consumers therefore deduplicate on
  ``event.key`` (see :mod:`signaling.consumers`). Order per aggregate is strict for a group with
  one consumer; with several consumers events are handed out in order but handled concurrently,
  and a redelivered event arrives after later ones.
* ``listen()`` is a live fan-out without groups or acknowledgements (server-sent events, the room
  server's view): an async context manager whose iterator yields every event published after the
  ``async with`` was entered, until the bus closes. A listener that falls ``BusOptions.listen_queue``
  events behind gets :class:`~signaling.errors.BusError` (it should reload its state and listen
  again) and never slows the publishers.
* ``close()`` stops every consumer loop and listener the bus runs and releases its connections;
  idempotent.
* ``durable`` says whether events outlive the process (Redis) or not (memory). The outbox relay
  replays recently relayed rows into a bus that is not durable when it starts, so a restart of the
  embedded process delivers again what had not been handled (idempotent consumers skip the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from .errors import BusError
from .events import AnyEvent

__all__ = ["Bus", "BusOptions", "DeadLetter", "Handler", "Listener"]

Handler = Callable[[AnyEvent], Awaitable[None]]


@dataclass(frozen=True)
class BusOptions:
    """Tuning shared by both buses (times in seconds)."""

    maxlen: int = 100_000
    """Events the bus keeps (Redis: ``MAXLEN ~``; memory: exact). Older ones are trimmed."""
    dead_maxlen: int = 10_000
    """Dead letters kept."""
    batch: int = 100
    """Entries read at once by a consumer."""
    block_s: float = 2.0
    """Longest wait of one blocking read (Redis); bounds how late a reclaim runs."""
    claim_idle_s: float = 30.0
    """An entry pending this long with a silent consumer is taken over by another consumer (Redis)."""
    max_attempts: int = 5
    """Handler calls for one event before it is dead-lettered."""
    retry_backoff_s: float = 0.1
    """First pause after a handler failure; doubles on each attempt, at most ``retry_backoff_max_s``."""
    retry_backoff_max_s: float = 5.0
    listen_queue: int = 1000
    """Events a live listener may fall behind before it is dropped with ``BusError``."""

    def backoff(self, attempt: int) -> float:
        return float(min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class DeadLetter:
    """An entry a group gave up on: ``reason`` is ``malformed`` or ``handler_failed`` (+ the error
    type); ``data`` is the entry as it was stored (for a redrive after a fix)."""

    entry_id: str
    group: str
    reason: str
    data: str


class Listener:
    """A live subscription (see ``Bus.listen``): ``async with bus.listen() as events: async for …``.

    Registered when the ``async with`` is entered; unregistered when it exits. The bus feeds it
    through :meth:`_offer` from its own task, without ever waiting on it.
    """

    _END = object()

    def __init__(self, register: Callable[[Listener], Awaitable[None]],
                 unregister: Callable[[Listener], None], maxsize: int) -> None:
        self._register = register
        self._unregister = unregister
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self._failure: str | None = None
        self._sealed = False
        self._ended = False

    async def __aenter__(self) -> Listener:
        await self._register(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._unregister(self)

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> AnyEvent:
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is Listener._END:
            self._ended = True
            if self._failure is not None:
                raise BusError(self._failure)
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    def _offer(self, event: AnyEvent) -> bool:
        """Queue ``event``; False (and the listener ends with ``BusError``) when it is too far behind."""
        if self._sealed:
            return False
        if self._queue.qsize() >= self._maxsize:
            self._seal(failure=f"listener fell more than {self._maxsize} events behind")
            return False
        self._queue.put_nowait(event)
        return True

    def _seal(self, *, failure: str | None = None) -> None:
        """End the iteration after what is queued (the queue keeps one place for the end mark); with
        ``failure`` the iteration ends with ``BusError(failure)`` instead (the listener should reload
        its state and listen again)."""
        if not self._sealed:
            self._sealed = True
            self._failure = failure
            self._queue.put_nowait(Listener._END)


class Bus(Protocol):
    async def publish(self, event: AnyEvent) -> None:
        """Append ``event``; raises ``BusError`` when the bus is closed or unreachable."""
        ...

    async def create_group(self, group: str, *, from_start: bool = True) -> None:
        """Make ``group`` if missing (an existing group keeps its position)."""
        ...

    async def consume(self, group: str, consumer: str, handler: Handler, *, from_start: bool = True) -> None:
        """Run until cancelled or the bus closes, delivering events to ``handler``."""
        ...

    def listen(self) -> Listener:
        """A live fan-out of the events published from now on (``async with``)."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, oldest first."""
        ...

    async def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def durable(self) -> bool: ...
