"""The transactional outbox: events caused by a database change are written in the same transaction
and relayed to the bus afterwards, at least once, in order per aggregate.

Writing: ``await add_to_outbox(conn_or_session, event)`` inside the transaction that makes the
change, then ``relay.notify()`` after the commit (the relay also polls every ``poll_s``).

Relaying: :class:`OutboxRelay` publishes unrelayed rows in ``id`` order and then marks them
``relayed_at``; publish comes before the mark, so a crash in between publishes the rows again on
the next run (at least once; consumers deduplicate on ``event.key``, see ``signaling.consumers``).

Order per aggregate, on PostgreSQL: ``id`` order is insertion order, not commit order, so
``add_to_outbox`` takes a transaction-scoped advisory lock on the aggregate; a second writer of
the same aggregate waits until the first commits, and within one aggregate the committed rows
appear in ``id`` order. Relays take a transaction-scoped advisory lock too, so one relay works at
a time and another takes over as soon as it dies. (``FOR UPDATE SKIP LOCKED`` alone would let two
relays publish one aggregate's rows out of order; it is kept on the row lock as a second guard.)
On SQLite the database has one writer at a time; one process relays.

Embedded mode: the memory bus does not survive a restart, so ``start()`` first publishes again
the rows relayed within ``replay_window_s`` (``Bus.durable`` is False), and a restart delivers
what consumers had not handled; idempotent consumers skip the rest. Rows whose payload does not
parse (a newer event type, a damaged row) are marked with ``error`` and skipped, never deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ._tables import metadata, outbox
from .bus import Bus
from .errors import BusError, OutboxError
from .events import Event, dump_event, parse_event
from .supervisor import Supervised, Supervisor

__all__ = ["metadata", "outbox", "add_to_outbox", "OutboxRelay"]

log = logging.getLogger("signaling.outbox")

# Advisory lock namespaces (the two-int4 form of pg_advisory_xact_lock): 'td' + 1 / + 2.
_AGGREGATE_LOCKS = 0x74640001
_RELAY_LOCK = (0x74640002, 1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def add_to_outbox(conn: AsyncConnection | AsyncSession, event: Event) -> None:
    """Write ``event`` in the caller's transaction (it is relayed once that transaction commits).

    Raises :class:`OutboxError` when an event with the same ``event_id`` is already there (the
    transaction is then unusable on PostgreSQL: roll it back).
    """
    connection = await conn.connection() if isinstance(conn, AsyncSession) else conn
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:aggregate))"),
                                 {"ns": _AGGREGATE_LOCKS, "aggregate": event.aggregate})
    event_type: str = getattr(event, "type", type(event).__name__)
    try:
        await connection.execute(insert(outbox).values(
            event_id=event.event_id, aggregate=event.aggregate, type=event_type,
            payload=dump_event(event), created_at=_utcnow(),
        ))
    except IntegrityError as exc:
        raise OutboxError(f"event {event.event_id} is already in the outbox") from exc


class OutboxRelay:
    """Publishes committed outbox rows to ``bus``; owns its run loop (``start()`` / ``close()``).

    The loop runs as the task ``outbox-relay`` of ``supervisor`` (the process's; without one the relay
    makes its own and closes it): bus and database outages are retried by the loop itself, anything
    else crashes it and the supervisor logs, counts and restarts it.
    """

    def __init__(self, engine: AsyncEngine, bus: Bus, *, batch: int = 100, poll_s: float = 0.2,
                 replay_window_s: float = 3600.0, clock: Callable[[], datetime] = _utcnow,
                 supervisor: Supervisor | None = None) -> None:
        self._engine = engine
        self._bus = bus
        self._batch = batch
        self._poll_s = poll_s
        self._replay_window = timedelta(seconds=replay_window_s)
        self._clock = clock
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._supervisor = supervisor if supervisor is not None else Supervisor()
        self._owns_supervisor = supervisor is None
        self._loop: Supervised | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def notify(self) -> None:
        """Wake the run loop now (call it after committing a transaction that wrote events)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish up to ``batch`` unrelayed rows in ``id`` order and mark them; returns how many.

        A publish failure stops the batch (order), marks what was published and raises ``BusError``;
        a database failure raises ``OutboxError``. Returns 0 when another relay holds the lock.
        """
        self._check_open()
        async with self._lock:
            try:
                return await self._relay_batch()
            except SQLAlchemyError as exc:
                raise OutboxError("the outbox could not be read or marked") from exc

    async def _relay_batch(self) -> int:
        async with self._engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                got = await conn.scalar(select(func.pg_try_advisory_xact_lock(*_RELAY_LOCK)))
                if not got:
                    await conn.rollback()
                    return 0
            query = (select(outbox.c.id, outbox.c.event_id, outbox.c.type, outbox.c.payload)
                     .where(outbox.c.relayed_at.is_(None)).order_by(outbox.c.id).limit(self._batch))
            if postgres:
                query = query.with_for_update(skip_locked=True)
            rows = (await conn.execute(query)).all()
            if not postgres:
                await conn.rollback()  # SQLite: end the read; the marks take a write transaction of their own
            published: list[int] = []
            malformed: list[int] = []
            failure: BusError | None = None
            for row in rows:
                try:
                    event = parse_event(row.payload)
                except ValidationError:
                    log.error("outbox row %d (%s) does not parse; skipped", row.id, row.type,
                              extra={"ctx": {"event": row.event_id, "code": "outbox_malformed"}})
                    malformed.append(row.id)
                    continue
                try:
                    await self._bus.publish(event)
                except BusError as exc:
                    failure = exc
                    break
                published.append(row.id)
            now = self._clock()
            if published:
                await conn.execute(update(outbox).where(outbox.c.id.in_(published)).values(relayed_at=now))
            if malformed:
                await conn.execute(update(outbox).where(outbox.c.id.in_(malformed))
                                   .values(relayed_at=now, error="malformed"))
            await conn.commit()
        if failure is not None:
            raise failure
        return len(published)

    async def replay_recent(self) -> int:
        """Publish again, in ``id`` order, the rows relayed within ``replay_window_s``; returns how many.

        For a bus that does not outlive the process (see the module docstring); rows are not changed.
        """
        self._check_open()
        cutoff = self._clock() - self._replay_window
        last_id = 0
        count = 0
        while True:
            try:
                async with self._engine.connect() as conn:
                    rows = (await conn.execute(
                        select(outbox.c.id, outbox.c.payload)
                        .where(outbox.c.relayed_at >= cutoff, outbox.c.error.is_(None), outbox.c.id > last_id)
                        .order_by(outbox.c.id).limit(self._batch))).all()
            except SQLAlchemyError as exc:
                raise OutboxError("the outbox could not be read") from exc
            if not rows:
                return count
            for row in rows:
                await self._bus.publish(parse_event(row.payload))
                count += 1
            last_id = rows[-1].id

    async def prune(self, *, older_than: datetime) -> int:
        """Delete rows relayed before ``older_than`` (kept until then for replays and audits)."""
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(outbox.delete().where(outbox.c.relayed_at < older_than))
        except SQLAlchemyError as exc:
            raise OutboxError("the outbox could not be pruned") from exc
        return int(result.rowcount)

    async def pending(self) -> int:
        """Rows not yet relayed (for health checks and metrics)."""
        try:
            async with self._engine.connect() as conn:
                value: Any = await conn.scalar(select(func.count()).select_from(outbox)
                                               .where(outbox.c.relayed_at.is_(None)))
        except SQLAlchemyError as exc:
            raise OutboxError("the outbox could not be read") from exc
        return int(value or 0)

    async def start(self) -> None:
        """Replay recent rows into a bus that is not durable, then relay in the background."""
        self._check_open()
        if self._loop is not None:
            return
        if not self._bus.durable:
            replayed = await self.replay_recent()
            if replayed:
                log.info("outbox replayed %d recent events into the memory bus", replayed,
                         extra={"ctx": {"code": "outbox_replay", "count": replayed}})
        self._loop = self._supervisor.run("outbox-relay", self._run)

    async def _run(self) -> None:
        failures = 0
        while not self._closed:
            self._wake.clear()
            try:
                relayed = await self.relay_once()
                failures = 0
            except (BusError, OutboxError) as exc:
                failures += 1
                pause = min(5.0, self._poll_s * 2 ** failures)
                if self._closed:
                    break
                log.warning("outbox relay failed (%s); retrying in %.1f s", type(exc).__name__, pause,
                            extra={"ctx": {"code": "outbox_retry", "count": failures}})
                self._wake.clear()
                try:  # a pause that close() can cut short
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            if relayed >= self._batch:
                continue
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox relay is closed")

    async def close(self, *, grace_s: float = 5.0) -> None:
        """Stop relaying. The loop is asked to finish the batch it is in (so no transaction is cut
        in the middle) and cancelled only if it has not ended within ``grace_s``."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._loop is not None:
            await self._supervisor.stop(self._loop, grace_s=grace_s)
        if self._owns_supervisor:
            await self._supervisor.close()

