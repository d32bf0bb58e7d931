"""The replay worker's loop keeps a wake that comes while it claims a job.

A job queued, or the app stopping, while the loop is inside a claim used to be forgotten: the loop cleared
its wake after the claim and then waited a whole poll. A queued replay then waited for the next poll, and
every stop of a process running the worker waited out its 2-second grace about one time in four.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import metadata
from tiepdan.db import make_engine
from tiepdan.replay_worker import ReplayWorker, ReplayWorkerOptions

pytestmark = pytest.mark.integration

#: far longer than any test may wait: a loop that waits a poll fails by timeout, not by luck
POLL_S = 600.0


class Woken(ReplayWorker):
    """A worker whose first claim is interrupted by ``during_first_claim`` (a job queued, a stop)."""

    def __init__(self, engine: AsyncEngine, root: Path, during_first_claim: str) -> None:
        super().__init__(engine, ReplayWorkerOptions(root=root, keyring_path=root / "keyring.json", poll_s=POLL_S))
        self.during_first_claim = during_first_claim
        self.claims = 0
        self.second_claim = asyncio.Event()

    async def run_once(self) -> bool:
        self.claims += 1
        found = await super().run_once()  # the real claim, on an empty queue
        if self.claims == 1:
            if self.during_first_claim == "stop":
                self.closed = True
            self.wake()
        else:
            self.second_claim.set()
        return found


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    async with made.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield made
    await made.dispose()


async def test_a_job_queued_while_the_loop_claims_is_looked_for_at_once(engine: AsyncEngine, tmp_path: Path) -> None:
    worker = Woken(engine, tmp_path, "job")
    loop = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.second_claim.wait(), timeout=30)
        assert worker.claims >= 2
    finally:
        await worker.close()
        await asyncio.wait_for(loop, timeout=30)  # close() wakes an idle loop: it ends without a cancel


async def test_a_stop_while_the_loop_claims_ends_it_at_once(engine: AsyncEngine, tmp_path: Path) -> None:
    worker = Woken(engine, tmp_path, "stop")
    await asyncio.wait_for(worker.run(), timeout=30)
    assert worker.claims == 1


async def test_closing_an_idle_loop_ends_it_without_waiting_for_the_poll(engine: AsyncEngine, tmp_path: Path) -> None:
    worker = Woken(engine, tmp_path, "nothing")
    loop = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.second_claim.wait(), timeout=30)  # the wake of the first claim: a 2nd one
    await asyncio.sleep(0)  # now idle, waiting up to POLL_S
    await worker.close()
    await asyncio.wait_for(loop, timeout=30)
