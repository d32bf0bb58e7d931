"""Owned tasks of the SFU (sfu/_tasks.py): a task that fails is logged and reported to its owner (the
room emits ``TaskFailed``), never dropped; a cancelled task is no failure; close() awaits them all."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sfu import TaskFailed, Worker
from sfu._tasks import spawn

from .conftest import Events

pytestmark = pytest.mark.unit


async def fails() -> None:
    raise RuntimeError("boom")


async def test_room_task_that_fails_is_logged_and_reported_as_task_failed(
        worker: Worker, events: Events, caplog: pytest.LogCaptureFixture) -> None:
    room = worker.create_room("r1")
    with caplog.at_level(logging.ERROR, logger="sfu.tasks"):
        room._spawn(fails(), "publication-close")  # the owner API its participants use
        async with asyncio.timeout(5):
            while not events.of(TaskFailed):
                await asyncio.sleep(0.001)
    assert events.of(TaskFailed) == [TaskFailed("r1", "publication-close", "RuntimeError")]
    [record] = caplog.records
    assert "publication-close" in record.getMessage() and "r1" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    await room.close()


async def test_spawned_task_reports_failures_but_not_cancellations_and_leaves_the_set() -> None:
    tasks: set[asyncio.Task[Any]] = set()
    failures: list[tuple[str, str]] = []

    def hook(name: str, exc: BaseException) -> None:
        failures.append((name, type(exc).__name__))

    failed = spawn(tasks, fails(), name="transport-watchdog", owner="r1/p1 publisher", on_failure=hook)
    waiting = spawn(tasks, asyncio.Event().wait(), name="keyframe-request", owner="keyframe requester",
                    on_failure=hook)
    await asyncio.wait({failed})
    waiting.cancel()
    await asyncio.wait({waiting})
    await asyncio.sleep(0)  # done-callbacks run on the next turn of the loop
    assert failures == [("transport-watchdog", "RuntimeError")]
    assert tasks == set()


async def test_a_failing_hook_does_not_hide_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str, exc: BaseException) -> None:
        raise ValueError("hook bug")

    tasks: set[asyncio.Task[Any]] = set()
    with caplog.at_level(logging.ERROR, logger="sfu.tasks"):
        task = spawn(tasks, fails(), name="room-stats", owner="r1", on_failure=broken)
        await asyncio.wait({task})
        await asyncio.sleep(0)
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError, ValueError]
