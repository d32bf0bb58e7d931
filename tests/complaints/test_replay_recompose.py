"""Composing a replay again (complaints.replays.recompose_replay) on SQLite and PostgreSQL: a done or failed
job is queued anew and audited ``replay.compose_forced`` with what it replaces; refused, with nothing written,
while the job is queued or running and when no composite was ever asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.errors import NotFound, StaleVersion
from complaints.replays import claim_next, fail_job, finish_job, recompose_replay, request_replay
from complaints.tables import audit_events, metadata, recording_segments
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for n in (1, 2):
            await conn.execute(insert(recording_segments).values(
                segment=f"c{n}-case{n}", session="phien-1", confidential=False, files_json="[]",
                speakers_json="[]", gaps_json="[]", opened_at=T0, closed_at=T0 + timedelta(minutes=n)))
    yield eng
    await eng.dispose()


async def _audit(engine: AsyncEngine) -> list[tuple[str, dict[str, object]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_events.c.action, audit_events.c.detail).order_by(audit_events.c.id))
        return [(r[0], r[1]) for r in rows]


async def _refused(engine: AsyncEngine, segment: str, error: type[Exception], code: str) -> None:
    before = await _audit(engine)
    with pytest.raises(error) as caught:
        async with engine.begin() as conn:
            await recompose_replay(conn, segment, actor="user:b", now=T0)
    assert getattr(caught.value, "code", None) == code and caught.value.message_vi  # type: ignore[attr-defined]
    assert await _audit(engine) == before


async def test_a_done_or_failed_composite_is_composed_again_and_audited(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await request_replay(conn, "c1-case1", actor="user:a", now=T0)
        await request_replay(conn, "c2-case2", actor="user:a", now=T0)
        first = await claim_next(conn, worker="w", now=T0)
        second = await claim_next(conn, worker="w", now=T0)
        assert first is not None and second is not None
        await finish_job(conn, first.id, output_path="replays/c1-case1.mp4.enc", now=T0)
        await fail_job(conn, second.id, "compose_failed: x", now=T0)
    later = T0 + timedelta(hours=1)
    async with engine.begin() as conn:
        again = await recompose_replay(conn, "c1-case1", actor="user:b", now=later)
        retried = await recompose_replay(conn, "c2-case2", actor="user:b", now=later)
    assert (again.id, again.state, again.output_path, again.requested_by) == (first.id, "queued", None, "user:b")
    assert (retried.state, retried.error) == ("queued", None)
    forced = [d for a, d in await _audit(engine) if a == "replay.compose_forced"]
    assert forced[0]["previous"] == "done" and forced[0]["replaced"] == "replays/c1-case1.mp4.enc"
    assert forced[1]["previous"] == "failed" and forced[1]["reason"] == "compose_failed: x"
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(audit_events)) == 8


async def test_recomposing_is_refused_while_queued_or_running_and_before_any_composite(engine: AsyncEngine) -> None:
    await _refused(engine, "c1-case1", NotFound, "replay_not_composed")
    async with engine.begin() as conn:
        await request_replay(conn, "c1-case1", actor="user:a", now=T0)
    await _refused(engine, "c1-case1", StaleVersion, "replay_busy")
    async with engine.begin() as conn:
        assert await claim_next(conn, worker="w", now=T0) is not None
    await _refused(engine, "c1-case1", StaleVersion, "replay_busy")
