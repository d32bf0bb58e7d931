"""Replay jobs (complaints.replays) on SQLite and PostgreSQL: idempotent requests, claiming one job at a
time (concurrent workers never share one), progress, finish, failure with a reason, retry, lost workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.errors import InvalidInput, NotFound, StaleVersion
from complaints.replays import (
    WORKER_LOST,
    claim_next,
    fail_job,
    finish_job,
    job_for_segment,
    record_replay_access,
    replay_segment,
    report_progress,
    request_replay,
    retry_replay,
)
from complaints.tables import audit_events, metadata, recording_segments
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for n in range(1, 4):
            await conn.execute(insert(recording_segments).values(
                segment=f"c{n}-case{n}", session="phien-1", confidential=n == 3, files_json="[]",
                speakers_json="[]", gaps_json="[]", opened_at=T0, closed_at=T0 + timedelta(minutes=n)))
    yield eng
    await eng.dispose()


async def _actions(engine: AsyncEngine, segment: str) -> list[str]:
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(select(audit_events.c.action).where(
            audit_events.c.target_id == segment).order_by(audit_events.c.id))]


async def test_request_is_idempotent_while_queued_running_or_done(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await request_replay(conn, "c1-case1", actor="user:a", now=T0)
        again = await request_replay(conn, "c1-case1", actor="user:b", now=T0 + timedelta(seconds=1))
    assert (first.id, first.state, again.id, again.requested_by) == (again.id, "queued", first.id, "user:a")
    async with engine.begin() as conn:
        running = await claim_next(conn, worker="w1", now=T0)
        assert running is not None and running.id == first.id
        assert (await request_replay(conn, "c1-case1", actor="user:b", now=T0)).state == "running"
        done = await finish_job(conn, first.id, output_path="replays/c1-case1.mp4", now=T0 + timedelta(seconds=9))
        assert (await request_replay(conn, "c1-case1", actor="user:b", now=T0)).id == done.id
    assert (done.state, done.progress, done.output_path) == ("done", 1.0, "replays/c1-case1.mp4")
    assert await _actions(engine, "c1-case1") == ["replay.compose_requested", "replay.compose_started",
                                                  "replay.compose_done"]


async def test_jobs_are_claimed_one_at_a_time_oldest_first(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await request_replay(conn, "c2-case2", actor="user:a", now=T0 + timedelta(seconds=5))
        await request_replay(conn, "c1-case1", actor="user:a", now=T0)
    async with engine.begin() as conn:
        first = await claim_next(conn, worker="w1", now=T0 + timedelta(seconds=10))
        second = await claim_next(conn, worker="w2", now=T0 + timedelta(seconds=10))
        third = await claim_next(conn, worker="w3", now=T0 + timedelta(seconds=10))
    assert first is not None and second is not None and third is None
    assert (first.segment, first.worker, first.attempts) == ("c1-case1", "w1", 1)
    assert (second.segment, second.worker, second.state) == ("c2-case2", "w2", "running")


async def test_concurrent_workers_never_take_the_same_job(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for n in (1, 2, 3):
            await request_replay(conn, f"c{n}-case{n}", actor="user:a", now=T0 + timedelta(seconds=n))

    async def worker(name: str) -> list[str]:
        taken = []
        while True:
            async with engine.begin() as conn:
                job = await claim_next(conn, worker=name, now=T0 + timedelta(seconds=30))
            if job is None:
                return taken
            taken.append(job.segment)

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    every = sorted(s for taken in results for s in taken)
    assert every == ["c1-case1", "c2-case2", "c3-case3"]


async def test_failure_keeps_its_reason_and_retry_queues_it_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        job = await request_replay(conn, "c1-case1", actor="user:a", now=T0)
        await claim_next(conn, worker="w1", now=T0)
        assert await report_progress(conn, job.id, 0.5, now=T0 + timedelta(seconds=1))
        failed = await fail_job(conn, job.id, "compose_crashed:\n signal SIGKILL", now=T0 + timedelta(seconds=2))
    assert (failed.state, failed.error, failed.progress) == ("failed", "compose_crashed: signal SIGKILL", 0.5)
    async with engine.begin() as conn:
        assert not await report_progress(conn, job.id, 0.6, now=T0)  # no longer running
        with pytest.raises(StaleVersion):
            await finish_job(conn, job.id, output_path="replays/c1-case1.mp4", now=T0)
        retried = await retry_replay(conn, job.id, actor="user:b", now=T0 + timedelta(seconds=3))
        with pytest.raises(InvalidInput):
            await retry_replay(conn, job.id, actor="user:b", now=T0)  # queued, not failed
        again = await claim_next(conn, worker="w2", now=T0 + timedelta(seconds=4))
    assert (retried.state, retried.error, retried.progress, retried.requested_by) == ("queued", None, 0.0, "user:b")
    assert again is not None and (again.id, again.attempts) == (job.id, 2)
    assert (await _actions(engine, "c1-case1"))[-3:] == ["replay.compose_failed", "replay.compose_retried",
                                                         "replay.compose_started"]


async def test_request_of_a_failed_job_retries_it_and_done_is_retried_only_by_force(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        job = await request_replay(conn, "c2-case2", actor="user:a", now=T0)
        await claim_next(conn, worker="w1", now=T0)
        await fail_job(conn, job.id, "recording_missing", now=T0)
        assert (await request_replay(conn, "c2-case2", actor="user:a", now=T0)).state == "queued"
        await claim_next(conn, worker="w1", now=T0)
        await finish_job(conn, job.id, output_path="replays/c2-case2.mp4", now=T0)
        with pytest.raises(InvalidInput):
            await retry_replay(conn, job.id, actor="user:a", now=T0)
        forced = await retry_replay(conn, job.id, actor="user:a", now=T0, force=True)
    assert (forced.state, forced.output_path) == ("queued", None)


async def test_a_job_whose_worker_stopped_beating_fails_as_lost_at_the_next_claim(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        job = await request_replay(conn, "c1-case1", actor="user:a", now=T0)
        await claim_next(conn, worker="dead", now=T0)
        await report_progress(conn, job.id, 0.25, now=T0 + timedelta(seconds=50))
        assert await claim_next(conn, worker="w2", now=T0 + timedelta(seconds=100), stale_after_s=60) is None
        assert (await job_for_segment(conn, "c1-case1")).state == "running"  # type: ignore[union-attr]
        assert await claim_next(conn, worker="w2", now=T0 + timedelta(seconds=111), stale_after_s=60) is None
        lost = await job_for_segment(conn, "c1-case1")
    assert lost is not None and (lost.state, lost.error) == ("failed", WORKER_LOST)


async def test_bad_input_is_refused_and_nothing_is_written(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(NotFound):
            await request_replay(conn, "no-such-segment", actor="user:a", now=T0)
    async with engine.begin() as conn:
        job = await request_replay(conn, "c1-case1", actor="user:a", now=T0)
        await claim_next(conn, worker="w1", now=T0)
        for bad in (-0.1, 1.5, float("nan")):
            with pytest.raises(InvalidInput):
                await report_progress(conn, job.id, bad, now=T0)
        for path in ("/etc/passwd", "../x.mp4", ""):
            with pytest.raises(InvalidInput):
                await finish_job(conn, job.id, output_path=path, now=T0)
        with pytest.raises(InvalidInput):
            await record_replay_access(conn, actor="user:a", action="replay.delete", segment="c1-case1", file="x",
                                       now=T0)
        with pytest.raises(NotFound):
            await retry_replay(conn, 9999, actor="user:a", now=T0)
        assert (await job_for_segment(conn, "c1-case1")).state == "running"  # type: ignore[union-attr]
    assert await job_for_segment_count(engine) == 1


async def job_for_segment_count(engine: AsyncEngine) -> int:
    from complaints.tables import replay_jobs

    async with engine.connect() as conn:
        return len((await conn.execute(select(replay_jobs.c.id))).all())


async def test_segment_read_side_marks_confidential_segments(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        plain = await replay_segment(conn, "c1-case1")
        closed = await replay_segment(conn, "c3-case3")
        missing = await replay_segment(conn, "nope")
    assert plain is not None and closed is not None and missing is None
    assert (plain.confidential, closed.confidential, plain.closed) == (False, True, True)
