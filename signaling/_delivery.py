"""What both buses do with one entry a consumer received: parse it, call the handler with retries,
and say whether it was handled or must be dead-lettered. Shared so the two buses cannot drift.

Logs carry the entry id, the event id and type and the error type, never the payload or the error
text (either may hold personal data).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .bus import BusOptions, Handler
from .events import AnyEvent, parse_event

log = logging.getLogger("signaling.bus")


@dataclass(frozen=True)
class Outcome:
    """``dead_reason`` is None when the handler returned; otherwise why the entry is given up."""

    dead_reason: str | None


HANDLED = Outcome(None)


def parse_entry(data: str | bytes | None, *, entry_id: str, group: str) -> AnyEvent | None:
    """The event in ``data``, or None (logged) when it is missing or malformed."""
    if data is None:
        log.warning("bus entry without data in group %s", group, extra={"ctx": {"event": entry_id,
                                                                                 "code": "malformed"}})
        return None
    try:
        return parse_event(data)
    except ValidationError:
        log.warning("bus entry is not an event, group %s", group, extra={"ctx": {"event": entry_id,
                                                                                  "code": "malformed"}})
        return None


async def deliver(handler: Handler, event: AnyEvent, *, group: str, options: BusOptions) -> Outcome:
    """Call ``handler`` until it returns, at most ``options.max_attempts`` times with a growing pause.

    Cancellation propagates at once (the entry stays unacknowledged and is delivered again).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(event)
            return HANDLED
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any handler failure means "deliver again"
            kind = type(exc).__name__
            log.warning("bus handler of group %s failed (%s), attempt %d", group, kind, attempt,
                        extra={"ctx": {"event": event.event_id, "code": "handler_failed", "count": attempt}})
            log.debug("bus handler failure", exc_info=True)
            if attempt >= options.max_attempts:
                log.error("bus gives up on event %s in group %s after %d attempts", event.type, group, attempt,
                          extra={"ctx": {"event": event.event_id, "code": "dead_lettered"}})
                return Outcome(f"handler_failed:{kind}")
            await asyncio.sleep(options.backoff(attempt))


StopCheck = Callable[[], bool]


async def run_owned(body: Callable[[StopCheck], Coroutine[Any, Any, None]], *, name: str,
                    loops: set[asyncio.Task[None]], closed: StopCheck) -> None:
    """Run a consumer loop as a task the bus owns (``close()`` stops the tasks in ``loops``).

    ``body`` gets a check that turns true when the loop must end (the bus closed or our caller was
    cancelled) and must test it between two reads. Returns when the bus closed; re-raises when the
    caller was cancelled (the loop is stopped first) or the loop failed.
    """
    stopping = False

    def should_stop() -> bool:
        return stopping or closed()

    task = asyncio.create_task(body(should_stop), name=name)
    loops.add(task)
    task.add_done_callback(loops.discard)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        stopping = True
        await stop_task(task)
        raise
    if task.cancelled():
        if closed():
            return
        raise asyncio.CancelledError
    exc = task.exception()
    if exc is not None:
        raise exc


async def stop_task(task: asyncio.Task[Any], *, every_s: float = 0.05) -> None:
    """Cancel ``task`` until it has ended.

    redis-py 8.1 loses a cancellation that lands at some points of a command (the command then
    completes normally), so one ``cancel()`` is not enough; the loops also test their stop check.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)
