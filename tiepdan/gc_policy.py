"""The process's garbage-collector policy: what the start made is frozen out of the cyclic collector's reach.

Theory of operation
-------------------
CPython's cyclic collector stops the whole process while it scans a generation. A full (generation 2)
collection scans every tracked object, and the app's start alone makes about 200,000 of them (modules,
classes, aiortc's and SQLAlchemy's tables): one full collection then takes 70–100 ms on this project's
2-core machines, measured both in the media node under load (``bench/peer.py --probe``: gen 2 pauses of
81–98 ms) and at rest. In the media plane such a pause delays every frame of every venue by as much: the
tail of the frame delay, and a hiccup every listener hears.

:func:`freeze_startup_heap` runs once the app has started: one collection (nothing garbage is frozen), then
:func:`gc.freeze` moves every surviving object into the permanent generation, which no collection scans.
Objects still die by reference counting; only a reference cycle among frozen objects would never be freed,
and the start makes none that later become garbage. What sessions make (peer connections, packets, frames)
stays collectable as before. :func:`thaw` gives the frozen objects back to the collector when the app stops
(tests start many apps in one process). ``TIEPDAN_GC_FREEZE=false`` turns the policy off (for comparison).

What a session makes is the second half. The peer connections, transceivers and rooms of nine venues are
made after the start, so they stay in the collector's reach: measured in the media node (``bench/peer.py
--probe``, issue #13), a full collection of them stopped the node for 52 ms about every 15 s, the worst
loop lag and most of the frame delay's p999. Freezing them once is not enough: a venue that reconnects
leaves its old peer connection behind as a reference cycle, which a frozen heap would never free.
:class:`Refreezer` therefore freezes again each time the links *settle*: a process-wide change counter
(``sfu.link_changes``: a peer connection connected or closed) is polled every ``poll`` seconds, and once it
has not moved for ``settle`` seconds, everything frozen is given back, one full collection frees what the
closed links left (their cycles included), and what survives is frozen again: one pause of a full
collection (about 100 ms at nine venues) after the links change, instead of one every 15 s while they
do not. Between changes the collector still runs on what is new, so garbage made in a steady session is
freed as before.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Refreeze", "Refreezer", "freeze_startup_heap", "thaw"]

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then freeze every tracked object; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup heap frozen out of the cyclic collector", extra={"ctx": {"objects": frozen}})
    return frozen


def thaw() -> None:
    """Give the frozen objects back to the collector (they join the oldest generation)."""
    gc.unfreeze()


@dataclass(frozen=True, slots=True)
class Refreeze:
    """One refreeze: objects frozen after it, objects the full collection freed, and how long it took."""

    frozen: int
    collected: int
    seconds: float


class Refreezer:
    """Freeze what the live links made, each time they settle (see the module docstring).

    ``changes`` is the change counter (``sfu.link_changes``); ``clock`` a monotonic clock (injected by tests).
    :meth:`tick` does one poll; :meth:`run` polls until cancelled. ``refreezes`` lists what each did.
    """

    def __init__(self, changes: Callable[[], int], *, settle: float = 10.0, poll: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settle < 0 or poll <= 0:
            raise ValueError("settle must be >= 0 and poll > 0 seconds")
        self.settle = settle
        self.poll = poll
        self.refreezes: list[Refreeze] = []
        self._changes = changes
        self._clock = clock
        self._seen = changes()
        self._changed_at: float | None = None  # when the counter last moved, while a refreeze is due

    def tick(self) -> Refreeze | None:
        """Look at the counter; refreeze when it moved and has been still for ``settle`` seconds."""
        now = self._clock()
        count = self._changes()
        if count != self._seen:
            self._seen = count
            self._changed_at = now
        if self._changed_at is None or now - self._changed_at < self.settle:
            return None
        self._changed_at = None
        return self.refreeze()

    def refreeze(self) -> Refreeze:
        """Give back what is frozen, collect everything once, freeze what survives."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        done = Refreeze(gc.get_freeze_count(), collected, time.perf_counter() - started)
        self.refreezes.append(done)
        del self.refreezes[:-20]
        log.info("links settled: heap frozen again", extra={"ctx": {
            "objects": done.frozen, "collected": done.collected, "ms": round(done.seconds * 1000, 1)}})
        return done

    async def run(self) -> None:
        """Poll every ``poll`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.poll)
            self.tick()
