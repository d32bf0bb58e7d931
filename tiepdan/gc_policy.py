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
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_heap", "thaw"]

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
