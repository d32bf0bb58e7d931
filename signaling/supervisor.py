"""The supervisor: one per process, it runs the background loops and the short-lived owned tasks so
that no failure is silent (ARCHITECTURE §3).

Theory of operation. A *supervised task* is a long-running loop given by a name and a factory
(:meth:`Supervisor.run`); the factory is called to start it and again after each crash. States:

* ``running``: the coroutine runs (``tiepdan_task_up{task} 1``).
* ``restarting``: it ended with an exception, or with a cancellation nobody asked for. The crash is
  logged once, with the task name, the exception type and where it was raised (never the exception
  text: it may carry personal data; the log formatter decides about the traceback), counted
  (``tiepdan_task_crashes_total{task}``), and the task waits :meth:`Backoff.delay` for its n-th crash
  in a row before the factory is called again (``tiepdan_task_restarts_total{task}``). Meanwhile
  ``up`` is 0 and :meth:`Supervisor.down` names it (``/healthz`` turns "degraded").
* ended: the coroutine returned (its work is over, e.g. its bus closed), or its owner stopped it
  (:meth:`Supervisor.stop`), or the supervisor closed. It leaves the registry and the ``up`` gauge.

Transitions: running → restarting on a crash; restarting → running when the pause is over; any →
ended on stop or close; running → ended when the coroutine returns. The owner of a task stops it in
its own ``close()``; the lifespan closes the supervisor last, which cancels and awaits whatever is
left. A crash while the owner is stopping the task is logged and counted but not restarted.

A *one-shot* task (:meth:`Supervisor.spawn`) runs once; an exception is logged and counted under its
name in ``tiepdan_task_crashes_total`` instead of being dropped; :meth:`close` cancels and awaits it.
:meth:`Supervisor.record_failure` counts a failure that happened elsewhere (an item a loop contained,
a task of a library such as the SFU, which logs it itself).

Names are metric labels: give a kind ("room-server-consumer", "media-tick"), never an id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from ._delivery import stop_task
from .errors import SupervisorClosed

__all__ = ["Backoff", "Supervised", "Supervisor", "TaskStatus"]

log = logging.getLogger("signaling.supervisor")

Sleep = Callable[[float], Awaitable[None]]
TaskFactory = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """When a crashed task starts again (times in seconds).

    After the first crash in a row it waits ``initial_s``, after each further one ``factor`` times
    longer, never more than ``max_s``. A run that lasted ``reset_after_s`` or longer was healthy: the
    next crash counts as the first again.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    reset_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1 or self.reset_after_s <= 0:
            raise ValueError("a backoff needs 0 < initial_s <= max_s, factor >= 1 and reset_after_s > 0")

    def delay(self, streak: int) -> float:
        """The pause after the ``streak``-th crash in a row (1 for the first)."""
        if streak < 1:
            raise ValueError("streak counts crashes from 1")
        try:
            return float(min(self.max_s, self.initial_s * self.factor ** (streak - 1)))
        except OverflowError:
            return self.max_s


@dataclass(frozen=True)
class TaskStatus:
    """What health and tests see of one supervised task."""

    name: str
    state: Literal["running", "restarting"]
    crashes: int
    restarts: int
    error: str | None
    """the exception type of the last crash"""
    restart_in_s: float | None
    """while restarting: the time left before the next start"""

    def describe(self) -> str:
        if self.state == "running":
            return "ok"
        return f"down: {self.error}, restarting in {self.restart_in_s or 0.0:.1f} s"


class Supervised:
    """The handle of one supervised task (from :meth:`Supervisor.run`; give it to :meth:`Supervisor.stop`)."""

    def __init__(self, name: str, factory: TaskFactory) -> None:
        self.name = name
        self.crashes = 0
        self.restarts = 0
        self.error: str | None = None
        self._factory = factory
        self._state: Literal["running", "restarting", "ended"] = "running"
        self._restart_at = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> Literal["running", "restarting", "ended"]:
        return self._state

    def __repr__(self) -> str:
        return f"<Supervised {self.name} {self._state} crashes={self.crashes}>"


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised: ``package/module.py:line in function`` (code locations, no data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{'/'.join(PurePath(last.filename).parts[-2:])}:{last.lineno} in {last.name}"


def _cancel_requested() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Supervisor:
    """See the module docstring. ``close()`` at the end (idempotent).

    ``sleep`` waits out a restart pause and ``clock`` (monotonic seconds) measures runs and pauses:
    tests inject both. With ``registry`` the counts go to Prometheus; they are on the handles anyway.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None, backoff: Backoff | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self._supervised: dict[str, Supervised] = {}
        self._oneshots: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._close_done: asyncio.Event | None = None
        self._crashes: Counter | None = None
        self._restarts: Counter | None = None
        self._up: Gauge | None = None
        if registry is not None:
            self._crashes = Counter("tiepdan_task_crashes", "Background tasks that ended with an exception "
                                    "(supervised loops and one-shot tasks)", ["task"], registry=registry)
            self._restarts = Counter("tiepdan_task_restarts", "Supervised loops started again after a crash",
                                     ["task"], registry=registry)
            self._up = Gauge("tiepdan_task_up", "1 while a supervised loop runs, 0 while it waits to restart",
                             ["task"], registry=registry)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- supervised loops -------------------------------------------------------------------------

    def run(self, name: str, factory: TaskFactory) -> Supervised:
        """Run ``factory()`` as the supervised task ``name`` until it returns or is stopped.

        Raises:
            SupervisorClosed: after :meth:`close`.
            ValueError: a task of that name runs already.
        """
        self._check_open()
        if name in self._supervised:
            raise ValueError(f"a supervised task named {name} runs already")
        loop = asyncio.get_running_loop()
        handle = Supervised(name, factory)
        self._supervised[name] = handle
        if self._crashes is not None and self._restarts is not None:
            self._crashes.labels(name)  # the series exist (at 0) before the first crash
            self._restarts.labels(name)
        self._set_state(handle, "running")
        handle._task = loop.create_task(self._supervise(handle), name=name)
        return handle

    async def _supervise(self, handle: Supervised) -> None:
        streak = 0
        try:
            while True:
                started = self._clock()
                self._set_state(handle, "running")
                error: BaseException
                try:
                    await handle._factory()
                except asyncio.CancelledError as exc:
                    if handle._stopping or _cancel_requested():
                        raise
                    error = exc  # a cancellation nobody asked for ended the loop: a crash like any other
                except Exception as exc:  # noqa: BLE001 - every failure of a loop is reported, then restarted
                    error = exc
                else:
                    if not handle._stopping:
                        log.info("task %s ended", handle.name, extra={"ctx": {"task": handle.name,
                                                                             "code": "task_ended"}})
                    return
                if self._clock() - started >= self.backoff.reset_after_s:
                    streak = 0
                streak += 1
                delay = self.backoff.delay(streak)
                self._crashed(handle, error, streak, delay)
                if handle._stopping:
                    return
                await self._sleep(delay)
                handle.restarts += 1
                if self._restarts is not None:
                    self._restarts.labels(handle.name).inc()
                log.info("task %s restarts", handle.name, extra={"ctx": {"task": handle.name,
                                                                        "code": "task_restarted",
                                                                        "count": handle.restarts}})
        finally:
            self._forget(handle)

    def _forget(self, handle: Supervised) -> None:
        """The task ended: out of the registry and the gauge (idempotent; a task cancelled before its
        first step never runs its ``finally``)."""
        if handle._state != "ended":
            self._set_state(handle, "ended")
        if self._supervised.get(handle.name) is handle:
            del self._supervised[handle.name]

    def _crashed(self, handle: Supervised, error: BaseException, streak: int, delay: float) -> None:
        kind = type(error).__name__
        handle.crashes += 1
        handle.error = kind
        handle._restart_at = self._clock() + delay
        self._count(handle.name)
        ctx = {"task": handle.name, "code": "task_crashed", "count": streak}
        if handle._stopping:
            log.error("task %s crashed (%s at %s) while stopping", handle.name, kind, _where(error),
                      exc_info=error, extra={"ctx": ctx})
            return
        self._set_state(handle, "restarting")
        if streak == 1:
            log.error("task %s crashed (%s at %s); restarting in %.1f s", handle.name, kind, _where(error), delay,
                      exc_info=error, extra={"ctx": ctx})
        else:  # the traceback was logged with the first crash of the streak
            log.warning("task %s crashed again (%s at %s), %d in a row; restarting in %.1f s", handle.name,
                        kind, _where(error), streak, delay, extra={"ctx": ctx})

    def _set_state(self, handle: Supervised, state: Literal["running", "restarting", "ended"]) -> None:
        handle._state = state
        if self._up is None:
            return
        if state == "ended":
            self._up.remove(handle.name)
        else:
            self._up.labels(handle.name).set(1.0 if state == "running" else 0.0)

    async def stop(self, handle: Supervised, *, grace_s: float = 0.0) -> None:
        """Stop ``handle``'s task for good and wait until it has ended.

        A running loop gets ``grace_s`` to end on its own (its owner has told it to, e.g. by a closed
        flag) before it is cancelled; a loop waiting to restart is cancelled at once. Idempotent.
        """
        handle._stopping = True
        task = handle._task
        if task is not None and not task.done():
            if grace_s > 0 and handle.state == "running":
                await asyncio.wait({task}, timeout=grace_s)
            await stop_task(task)
        self._forget(handle)

    # -- one-shot tasks and failures elsewhere ----------------------------------------------------

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` once as an owned task: an exception is logged and counted under ``name``;
        :meth:`close` cancels and awaits it.

        Raises:
            SupervisorClosed: after :meth:`close` (``coro`` is closed unstarted).
        """
        if self._closed:
            coro.close()
            raise SupervisorClosed("the supervisor is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._oneshots.add(task)
        task.add_done_callback(functools.partial(self._oneshot_done, name))
        return task

    def _oneshot_done(self, name: str, task: asyncio.Task[Any]) -> None:
        self._oneshots.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self._count(name)
        log.error("task %s failed (%s at %s)", name, type(exc).__name__, _where(exc), exc_info=exc,
                  extra={"ctx": {"task": name, "code": "task_failed"}})

    def record_failure(self, name: str) -> None:
        """Count a failure under ``name`` that was contained or logged elsewhere."""
        self._count(name)

    def _count(self, name: str) -> None:
        if self._crashes is not None:
            self._crashes.labels(name).inc()

    # -- health -----------------------------------------------------------------------------------

    def statuses(self) -> list[TaskStatus]:
        """The supervised tasks alive now, in start order."""
        now = self._clock()
        return [TaskStatus(name=h.name, state="restarting" if h.state == "restarting" else "running",
                           crashes=h.crashes, restarts=h.restarts, error=h.error,
                           restart_in_s=max(0.0, h._restart_at - now) if h.state == "restarting" else None)
                for h in self._supervised.values() if h.state != "ended"]

    def down(self) -> dict[str, str]:
        """Each task waiting to restart → ``down: <exception type>, restarting in <s> s``."""
        return {s.name: s.describe() for s in self.statuses() if s.state == "restarting"}

    # -- lifecycle --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SupervisorClosed("the supervisor is closed")

    async def close(self) -> None:
        """Cancel every task left (supervised and one-shot) and wait until they have ended. Idempotent."""
        if self._close_done is not None:
            await self._close_done.wait()
            return
        self._closed = True
        self._close_done = asyncio.Event()
        try:
            handles = list(self._supervised.values())
            for handle in handles:
                handle._stopping = True
            tasks = [h._task for h in handles if h._task is not None] + list(self._oneshots)
            for task in tasks:
                task.cancel()
            for task in tasks:
                await stop_task(task)
            for handle in handles:
                self._forget(handle)
        finally:
            self._close_done.set()
