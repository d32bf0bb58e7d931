"""The in-process event bus of the embedded mode, with the semantics of the Redis one.

Events are kept serialised (as on Redis) in a bounded log; each consumer group has a cursor into
the log and a heap of events given back by consumers that stopped while holding them. Nothing
outlives the process (``durable`` is False): the outbox relay replays recent rows into a fresh
``MemoryBus`` when the process starts again (see ``signaling.outbox``).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from dataclasses import dataclass, field

from ._delivery import StopCheck, deliver, parse_entry, run_owned, stop_task
from .bus import BusOptions, DeadLetter, Handler, Listener
from .errors import BusError
from .events import AnyEvent, dump_event

__all__ = ["MemoryBus"]


@dataclass
class _Group:
    cursor: int
    returned: list[int] = field(default_factory=list)  # a heap of sequence numbers to hand out again


class MemoryBus:
    """An in-process :class:`~signaling.bus.Bus` (see the contract there)."""

    def __init__(self, options: BusOptions | None = None) -> None:
        self._options = options or BusOptions()
        self._log: deque[tuple[int, str]] = deque()
        self._next_seq = 1
        self._groups: dict[str, _Group] = {}
        self._listeners: set[Listener] = set()
        self._dead: deque[DeadLetter] = deque(maxlen=self._options.dead_maxlen)
        self._changed = asyncio.Event()
        self._loops: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def durable(self) -> bool:
        return False

    # -- publishing --------------------------------------------------------------------------------

    async def publish(self, event: AnyEvent) -> None:
        self._append(dump_event(event))

    async def publish_serialized(self, data: str) -> None:
        """Append an entry exactly as given (a redrive of a dead letter, a bridge from elsewhere).

        It is parsed on delivery like every entry, so a malformed one ends as a dead letter.
        """
        self._append(data)

    def _append(self, data: str) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        seq = self._next_seq
        self._next_seq += 1
        self._log.append((seq, data))
        while len(self._log) > self._options.maxlen:
            self._log.popleft()
        self._wake()
        if self._listeners:
            event = parse_entry(data, entry_id=str(seq), group="(listen)")
            if event is not None:
                for listener in list(self._listeners):
                    if not listener._offer(event):
                        self._listeners.discard(listener)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- groups ------------------------------------------------------------------------------------

    async def create_group(self, group: str, *, from_start: bool = True) -> None:
        self._check_open()
        if group not in self._groups:
            self._groups[group] = _Group(cursor=self._first_seq() if from_start else self._next_seq)

    def _first_seq(self) -> int:
        return self._log[0][0] if self._log else self._next_seq

    def _entry(self, seq: int) -> str | None:
        index = seq - self._first_seq()
        if index < 0 or index >= len(self._log):
            return None
        return self._log[index][1]

    def _take(self, state: _Group) -> tuple[int, str] | None:
        while state.returned:
            seq = heapq.heappop(state.returned)
            data = self._entry(seq)
            if data is not None:
                return seq, data
        state.cursor = max(state.cursor, self._first_seq())
        if state.cursor < self._next_seq:
            seq = state.cursor
            state.cursor += 1
            data = self._entry(seq)
            assert data is not None
            return seq, data
        return None

    async def consume(self, group: str, consumer: str, handler: Handler, *, from_start: bool = True) -> None:
        self._check_open()
        await self.create_group(group, from_start=from_start)
        await run_owned(lambda stop: self._run(group, handler, stop), name=f"bus:{group}:{consumer}", loops=self._loops,
                        closed=lambda: self._closed)

    async def _run(self, group: str, handler: Handler, should_stop: StopCheck) -> None:
        state = self._groups[group]
        while not should_stop():
            changed = self._changed
            taken = self._take(state)
            if taken is None:
                await changed.wait()
                continue
            seq, data = taken
            try:
                event = parse_entry(data, entry_id=str(seq), group=group)
                if event is None:
                    self._dead.append(DeadLetter(str(seq), group, "malformed", data))
                    continue
                outcome = await deliver(handler, event, group=group, options=self._options)
                if outcome.dead_reason is not None:
                    self._dead.append(DeadLetter(str(seq), group, outcome.dead_reason, data))
            except BaseException:
                # Stopped while holding the event: the group hands it out again (at least once).
                heapq.heappush(state.returned, seq)
                self._wake()
                raise

    # -- live fan-out, dead letters, lifecycle -------------------------------------------------------

    def listen(self) -> Listener:
        return Listener(self._register, self._listeners.discard, self._options.listen_queue)

    async def _register(self, listener: Listener) -> None:
        self._check_open()
        self._listeners.add(listener)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead)[-limit:] if limit > 0 else []

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the bus is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for loop in list(self._loops):
            await stop_task(loop)
        for listener in list(self._listeners):
            listener._seal()
        self._listeners.clear()
        self._wake()
