"""Idempotent consumers: handle each event once even though the bus delivers at least once.

A consumer whose effects are database writes wraps its handler::

    async def open_minutes(conn: AsyncConnection, event: AnyEvent) -> None:
        ...  # writes through ``conn``

    await bus.consume("minutes", node_id, idempotent(engine, "minutes.open", open_minutes))

For each delivery the wrapper opens a transaction, records ``(consumer, event.key)`` in
``processed_events`` and, when that key is new, calls the handler with the same connection, then
commits: the record and the effects commit together or not at all. A duplicate delivery (a
redelivery after a crash, a replay after a restart, the outbox publishing twice) finds the key and
returns without calling the handler. When the handler raises, nothing is recorded and the bus
delivers the event again. On PostgreSQL a concurrent duplicate waits on the key's unique index
until the first transaction ends, so even two consumers racing on one event apply it once.

Handlers without database effects (pushing to a WebSocket, say) cannot join the transaction:
they must be naturally idempotent (set state, not toggle it) by ``event.key``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ._tables import processed_events
from .bus import Handler
from .errors import OutboxError
from .events import AnyEvent

__all__ = ["TxHandler", "idempotent", "claim_event", "was_processed", "prune_processed", "processed_events"]

log = logging.getLogger("signaling.consumers")

TxHandler = Callable[[AsyncConnection, AnyEvent], Awaitable[None]]
"""A handler that writes its effects through the connection it is given (one transaction)."""


def idempotent(engine: AsyncEngine, consumer: str, handler: TxHandler) -> Handler:
    """A bus handler that calls ``handler`` once per ``event.key`` for ``consumer`` (see the module)."""
    if not consumer or len(consumer) > 100:
        raise ValueError("a consumer name has 1 to 100 characters")

    async def handle(event: AnyEvent) -> None:
        async with engine.begin() as conn:
            if not await claim_event(conn, consumer, event):
                log.debug("consumer %s skips a duplicate", consumer,
                          extra={"ctx": {"event": event.event_id, "code": "duplicate"}})
                return
            await handler(conn, event)

    return handle


async def claim_event(conn: AsyncConnection, consumer: str, event: AnyEvent) -> bool:
    """Record in ``conn``'s transaction that ``consumer`` handles ``event``; False if it already did.

    For handlers that manage their own transaction: call it first, apply the effects when it
    returns True, commit both together.
    """
    values = {"consumer": consumer, "event_key": event.key, "event_id": event.event_id,
              "processed_at": datetime.now(UTC)}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(processed_events).values(**values).on_conflict_do_nothing(
            index_elements=["consumer", "event_key"])
        result = await conn.execute(pg_stmt)
    elif dialect == "sqlite":
        lite_stmt = sqlite.insert(processed_events).values(**values).on_conflict_do_nothing(
            index_elements=["consumer", "event_key"])
        result = await conn.execute(lite_stmt)
    else:
        if await was_processed(conn, consumer, event.key):
            return False
        result = await conn.execute(insert(processed_events).values(**values))
    return bool(result.rowcount == 1)


async def was_processed(conn: AsyncConnection, consumer: str, key: str) -> bool:
    found = await conn.scalar(select(processed_events.c.event_id).where(
        processed_events.c.consumer == consumer, processed_events.c.event_key == key))
    return found is not None


async def prune_processed(engine: AsyncEngine, *, older_than: datetime) -> int:
    """Forget keys processed before ``older_than``; keep them longer than any redelivery or replay
    can arrive (the outbox replay window, the Redis claim time)."""
    try:
        async with engine.begin() as conn:
            result = await conn.execute(processed_events.delete()
                                        .where(processed_events.c.processed_at < older_than))
    except SQLAlchemyError as exc:
        raise OutboxError("processed events could not be pruned") from exc
    return int(result.rowcount)
