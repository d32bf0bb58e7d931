"""The event bus: publish typed events, consume them in consumer groups, at least once.

The contract (both implementations pass ``tests/signaling/test_bus_contract.py``):

* ``publish(event)`` appends the event to the bus; it returns when the bus holds it.
* ``consume(group, consumer, handler)`` delivers every event published after the group was
  created (or from the start, for a new group with ``from_start=True``) to exactly one consumer of
  the group, in publication order per aggregate, and acknowledges it when ``handler`` returns;
  an event whose handler raised is delivered again (at least once). Consumers are idempotent by
  ``event.key``.
* ``close()`` stops every consumer loop and releases connections; idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from .events import AnyEvent

__all__ = ["Bus", "Handler"]

Handler = Callable[[AnyEvent], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, event: AnyEvent) -> None: ...

    async def consume(self, group: str, consumer: str, handler: Handler, *, from_start: bool = True) -> None:
        """Run until cancelled or the bus closes, delivering events to ``handler``."""
        ...

    async def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...
