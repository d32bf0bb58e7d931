"""Owned tasks of the SFU's objects: a failure is logged and reported, never dropped.

Each owner (room, transport, keyframe requester) keeps its tasks in a set, cancels and awaits them in
``close()``; :func:`spawn` adds the done-callback that removes a task from the set and, when the task
ended with an exception, logs it (task kind, owner id, exception type) and tells ``on_failure`` (the
room turns it into a :class:`~sfu.events.TaskFailed` event for its owner to count).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("sfu.tasks")

FailureHook = Callable[[str, BaseException], None]
"""Told ``(task kind, exception)`` when an owned task fails; must not block."""


def spawn(tasks: set[asyncio.Task[Any]], coro: Coroutine[Any, Any, Any], *, name: str, owner: str,
          on_failure: FailureHook | None = None) -> asyncio.Task[Any]:
    """Run ``coro`` as a task of ``tasks``' owner; ``name`` is the task's kind (a label, not an id)."""
    task = asyncio.get_running_loop().create_task(coro, name=f"sfu:{name}")
    tasks.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        tasks.discard(finished)
        if finished.cancelled():
            return
        exc = finished.exception()
        if exc is None:
            return
        logger.error("sfu task %s of %s failed (%s)", name, owner, type(exc).__name__, exc_info=exc)
        if on_failure is not None:
            try:
                on_failure(name, exc)
            except Exception:  # a reporting bug must not hide the first failure
                logger.exception("failure hook of %s failed", owner)

    task.add_done_callback(done)
    return task
