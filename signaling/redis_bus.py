"""The event bus on Redis streams, for more than one process (see the contract in ``signaling.bus``).

Key layout, all under the configured prefix ``P`` (CI shares Redis with earlier runs):

* ``P bus:events`` — one stream holds every event, so the stream order is the publication order
  and per-aggregate order needs nothing more (the volume of a reception session is small). Each
  entry has the fields ``data`` (the event as JSON), ``type``, ``event_id`` and ``aggregate``
  (ids only, for ``XRANGE`` inspection). ``XADD … MAXLEN ~ options.maxlen`` bounds it.
* Consumer groups live on that stream (``XGROUP CREATE … MKSTREAM``); a group's position and its
  pending entries list are Redis' own, so nothing else is stored.
* ``P bus:dead`` — dead letters (``MAXLEN ~ options.dead_maxlen``): fields ``entry`` (the id in
  ``bus:events``), ``group``, ``reason`` and ``data`` (the entry as stored).

A consumer loop first reads its own pending entries (``XREADGROUP … 0``: a restart under the same
consumer name resumes at once), then new ones (``XREADGROUP … >`` with ``BLOCK``), and every
``claim_idle_s / 2`` takes over entries another consumer left pending longer than
``claim_idle_s`` (``XAUTOCLAIM``: that consumer died). ``claim_idle_s`` must therefore exceed the
slowest handler plus its retries. Redis errors become :class:`~signaling.errors.BusError` at this
boundary; a consumer loop rides out a lost connection (logged, retried with a pause).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._delivery import StopCheck, deliver, parse_entry, run_owned, stop_task
from .bus import BusOptions, DeadLetter, Handler, Listener
from .errors import BusError
from .events import AnyEvent, dump_event

__all__ = ["RedisBus"]

log = logging.getLogger("signaling.bus")

_Entry = tuple[str, dict[str, str] | None]


class RedisBus:
    """A :class:`~signaling.bus.Bus` on one Redis stream with consumer groups."""

    def __init__(self, redis: Redis, *, prefix: str, options: BusOptions | None = None,
                 owns_client: bool = True) -> None:
        """``redis`` must decode responses (``decode_responses=True``); ``connect`` makes one."""
        self._redis = redis
        self._owns_client = owns_client
        self._options = options or BusOptions()
        self._stream = f"{prefix}bus:events"
        self._dead_stream = f"{prefix}bus:dead"
        self._loops: set[asyncio.Task[None]] = set()
        self._listeners: set[Listener] = set()
        self._reader: asyncio.Task[None] | None = None
        self._reader_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(cls, url: str, *, prefix: str, options: BusOptions | None = None) -> RedisBus:
        """Connect to ``url`` and check that Redis answers; raises ``BusError`` otherwise."""
        opts = options or BusOptions()
        client = Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                socket_timeout=max(10.0, opts.block_s + 5.0))
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise BusError("Redis does not answer") from exc
        return cls(client, prefix=prefix, options=opts)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def durable(self) -> bool:
        return True

    @property
    def stream_key(self) -> str:
        return self._stream

    @property
    def dead_letter_key(self) -> str:
        return self._dead_stream

    # -- publishing --------------------------------------------------------------------------------

    async def publish(self, event: AnyEvent) -> None:
        await self._xadd({"data": dump_event(event), "type": event.type, "event_id": event.event_id,
                          "aggregate": event.aggregate})

    async def publish_serialized(self, data: str) -> None:
        """Append an entry exactly as given (a redrive of a dead letter, a bridge from elsewhere).

        It is parsed on delivery like every entry, so a malformed one ends as a dead letter.
        """
        await self._xadd({"data": data})

    async def _xadd(self, fields: Mapping[str, str]) -> None:
        self._check_open()
        try:
            entry: dict[Any, Any] = dict(fields)
            await self._redis.xadd(self._stream, entry, maxlen=self._options.maxlen, approximate=True)
        except RedisError as exc:
            raise BusError("could not publish to the bus") from exc

    # -- groups ------------------------------------------------------------------------------------

    async def create_group(self, group: str, *, from_start: bool = True) -> None:
        self._check_open()
        try:
            await self._redis.xgroup_create(self._stream, group, id="0" if from_start else "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BusError(f"could not create the consumer group {group}") from exc
        except RedisError as exc:
            raise BusError(f"could not create the consumer group {group}") from exc

    async def consume(self, group: str, consumer: str, handler: Handler, *, from_start: bool = True) -> None:
        self._check_open()
        await self.create_group(group, from_start=from_start)
        await run_owned(lambda stop: self._run(group, consumer, handler, stop), name=f"bus:{group}:{consumer}",
                        loops=self._loops, closed=lambda: self._closed)

    async def _run(self, group: str, consumer: str, handler: Handler, should_stop: StopCheck) -> None:
        opts = self._options
        loop = asyncio.get_running_loop()
        claim_every = max(opts.claim_idle_s / 2, 0.05)
        next_claim = loop.time()
        claim_cursor = "0-0"
        own_backlog = True
        failures = 0
        while not should_stop():
            try:
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_every
                    claim_cursor, claimed = await self._autoclaim(group, consumer, claim_cursor)
                    for entry in claimed:
                        if should_stop():
                            return
                        await self._handle(group, handler, entry)
                if own_backlog:
                    entries = await self._read(group, consumer, "0", block_ms=None)
                    own_backlog = bool(entries)
                else:
                    block_ms = max(1, int(min(opts.block_s, max(0.0, next_claim - loop.time())) * 1000))
                    entries = await self._read(group, consumer, ">", block_ms=block_ms)
                for entry in entries:
                    if should_stop():
                        return  # what was read stays pending: this consumer or another gets it again
                    await self._handle(group, handler, entry)
                failures = 0
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise BusError(f"consumer group {group} failed") from exc
                # The stream was deleted under us (FLUSHDB, a cleanup): start over on a new one.
                log.warning("bus stream or group %s vanished; creating it again", group,
                            extra={"ctx": {"code": "bus_nogroup"}})
                await self.create_group(group, from_start=True)
                own_backlog = True
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                failures += 1
                pause = opts.backoff(failures)
                log.warning("bus consumer of group %s lost Redis (%s); retrying in %.1f s", group,
                            type(exc).__name__, pause, extra={"ctx": {"code": "bus_unreachable",
                                                                      "count": failures}})
                await asyncio.sleep(pause)
                own_backlog = True
            except RedisError as exc:
                raise BusError(f"consumer group {group} failed") from exc

    async def _read(self, group: str, consumer: str, start: str, *, block_ms: int | None) -> list[_Entry]:
        reply: Any = await self._redis.xreadgroup(group, consumer, {self._stream: start},
                                                  count=self._options.batch, block=block_ms)
        return _entries_of(reply)

    async def _autoclaim(self, group: str, consumer: str, cursor: str) -> tuple[str, list[_Entry]]:
        reply: Any = await self._redis.xautoclaim(self._stream, group, consumer,
                                                  int(self._options.claim_idle_s * 1000), start_id=cursor,
                                                  count=self._options.batch)
        next_cursor = str(reply[0])
        claimed: list[_Entry] = [(str(eid), fields) for eid, fields in reply[1]]
        if claimed:
            log.info("bus consumer took over %d entries in group %s", len(claimed), group,
                     extra={"ctx": {"code": "bus_reclaimed", "count": len(claimed)}})
        return next_cursor, claimed

    async def _handle(self, group: str, handler: Handler, entry: _Entry) -> None:
        entry_id, fields = entry
        if fields is None:
            # Trimmed (MAXLEN) before it was handled: nothing left to deliver.
            log.warning("bus entry trimmed before group %s handled it", group,
                        extra={"ctx": {"event": entry_id, "code": "trimmed"}})
        else:
            data = fields.get("data")
            event = parse_entry(data, entry_id=entry_id, group=group)
            if event is None:
                await self._dead_letter(entry_id, group, "malformed",
                                        data if data is not None else json.dumps(fields, ensure_ascii=False))
            else:
                outcome = await deliver(handler, event, group=group, options=self._options)
                if outcome.dead_reason is not None:
                    await self._dead_letter(entry_id, group, outcome.dead_reason, data or "")
        await self._redis.xack(self._stream, group, entry_id)

    async def _dead_letter(self, entry_id: str, group: str, reason: str, data: str) -> None:
        await self._redis.xadd(self._dead_stream, {"entry": entry_id, "group": group, "reason": reason,
                                                   "data": data},
                               maxlen=self._options.dead_maxlen, approximate=True)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        try:
            reply: Any = await self._redis.xrevrange(self._dead_stream, count=limit)
        except RedisError as exc:
            raise BusError("could not read the dead letters") from exc
        return [DeadLetter(f.get("entry", ""), f.get("group", ""), f.get("reason", ""), f.get("data", ""))
                for _, f in reversed(reply)]

    # -- live fan-out --------------------------------------------------------------------------------

    def listen(self) -> Listener:
        return Listener(self._register, self._listeners.discard, self._options.listen_queue)

    async def _register(self, listener: Listener) -> None:
        self._check_open()
        async with self._reader_lock:
            if self._reader is None:
                try:
                    newest: Any = await self._redis.xrevrange(self._stream, count=1)
                except RedisError as exc:
                    raise BusError("could not listen to the bus") from exc
                start = str(newest[0][0]) if newest else "0-0"
                self._check_open()
                self._reader = asyncio.create_task(self._read_live(start), name="bus:listen")
                self._reader.add_done_callback(self._reader_ended)
            self._listeners.add(listener)

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        """The fan-out reader ended. Unless the bus closed, it failed: logged, and its listeners end with
        ``BusError`` (they listen again, which starts a new reader) rather than wait for ever."""
        if self._reader is task:
            self._reader = None
        if self._closed:
            return
        exc = None if task.cancelled() else task.exception()
        kind = "CancelledError" if exc is None else type(exc).__name__
        log.error("bus listener reader failed (%s); its %d listeners must listen again", kind, len(self._listeners),
                  exc_info=exc, extra={"ctx": {"code": "bus_listen_failed", "count": len(self._listeners)}})
        for listener in list(self._listeners):
            listener._seal(failure=f"the bus stopped listening ({kind})")
        self._listeners.clear()

    async def _read_live(self, cursor: str) -> None:
        """One reader per bus fans the stream out to every listener (one connection, not one each)."""
        failures = 0
        block_ms = max(1, int(self._options.block_s * 1000))
        while not self._closed:
            try:
                reply: Any = await self._redis.xread({self._stream: cursor}, count=self._options.batch,
                                                     block=block_ms)
                failures = 0
            except RedisError as exc:
                failures += 1
                pause = self._options.backoff(failures)
                log.warning("bus listener lost Redis (%s); retrying in %.1f s", type(exc).__name__, pause,
                            extra={"ctx": {"code": "bus_unreachable", "count": failures}})
                await asyncio.sleep(pause)
                continue
            for entry_id, fields in _entries_of(reply):
                cursor = entry_id
                event = parse_entry(fields.get("data") if fields else None, entry_id=entry_id, group="(listen)")
                if event is None:
                    continue
                for listener in list(self._listeners):
                    if not listener._offer(event):
                        self._listeners.discard(listener)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the bus is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = list(self._loops)
        if self._reader is not None:
            tasks.append(self._reader)
        for task in tasks:
            await stop_task(task)
        for listener in list(self._listeners):
            listener._seal()
        self._listeners.clear()
        if self._owns_client:
            await self._redis.aclose()


def _entries_of(reply: Any) -> list[_Entry]:
    """The entries of an ``XREAD``/``XREADGROUP`` reply on one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply]
    out: list[_Entry] = []
    for entries in streams:
        for entry_id, fields in entries:
            out.append((str(entry_id), dict(fields) if fields is not None else None))
    return out
