"""The case store's recording segments (complaints.recordings) on SQLite and PostgreSQL: idempotent by the
segment, a close before its opening, a second close, links to cases with one audit row, bad input refused
with nothing written, and the bus consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import verify_audit_log
from complaints.cases import create_case
from complaints.enums import PetitionKind
from complaints.errors import InvalidInput
from complaints.recordings import (
    RECORDINGS_GROUP,
    RecordingOutcome,
    get_segment,
    record_segment_closed,
    record_segment_opened,
    recordings_handler,
    segments_of_case,
    segments_of_session,
    sessions_with_segments,
    watch_recordings,
)
from complaints.tables import audit_events, recording_segments
from signaling.events import SegmentClosed, SegmentFile, SegmentGap, SegmentOpened, SegmentSpan
from signaling.memory_bus import MemoryBus
from tiepdan.db import make_engine, prepare_database

pytestmark = pytest.mark.integration

SESSION = "phien-2026-12-10"
T0 = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)
SHA = "ab" * 32


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


async def _case(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        return (await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất đai",
                                  now=T0 - timedelta(days=10))).id


def _opened(case: str, seq: int = 1, *, confidential: bool = False) -> SegmentOpened:
    return SegmentOpened(room=SESSION, occurred_at=T0, segment=f"c{seq}-{case}", case=case,
                         confidential=confidential, call_seq=seq)


def _closed(case: str, seq: int = 1, *, confidential: bool = False, manifest: str | None = None,
            path: str = "media/c1/tinh-1.webm") -> SegmentClosed:
    segment = f"c{seq}-{case}"
    return SegmentClosed(
        room=SESSION, occurred_at=T0 + timedelta(minutes=12), segment=segment, case=case, files=(path,),
        sha256=SHA, media_t0=31.5, confidential=confidential, call_seq=seq,
        manifest_path=manifest or f"{SESSION}/manifests/00002-{segment}.json", duration_s=720.25, opened_at=T0,
        tracks=(SegmentFile(path=path, venue="tinh", sha256="cd" * 32, size=1234, t0=31.5, duration=720.25,
                            kinds=("video", "audio")),),
        speakers=(SegmentSpan(venue="tinh", start=31.5, end=100.0), SegmentSpan(venue="tien-du", start=100.0,
                                                                                end=751.75)),
        gaps=(SegmentGap(venue="tien-du", start=200.0, end=206.5, reason="link_lost"),))


async def _links(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        assert await verify_audit_log(conn) is None
        return int(await conn.scalar(select(func.count()).select_from(audit_events)
                                     .where(audit_events.c.action == "recording.segment_linked")) or 0)


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(recording_segments)) or 0)


async def test_opened_then_closed_keeps_one_linked_row_and_replays_change_nothing(engine: AsyncEngine) -> None:
    case = await _case(engine)
    async with engine.begin() as conn:
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.CREATED
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.UNCHANGED
    async with engine.connect() as conn:
        open_row = await get_segment(conn, f"c1-{case}")
    assert open_row is not None and not open_row.closed and open_row.case_id == case and open_row.call_seq == 1
    async with engine.begin() as conn:
        assert await record_segment_closed(conn, _closed(case)) is RecordingOutcome.UPDATED
        assert await record_segment_closed(conn, _closed(case)) is RecordingOutcome.UNCHANGED
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.UNCHANGED
    async with engine.connect() as conn:
        row = await get_segment(conn, f"c1-{case}")
        by_case = await segments_of_case(conn, case)
        by_session = await segments_of_session(conn, SESSION)
        sessions = await sessions_with_segments(conn)
    assert row is not None and row.closed and row.closed_at == T0 + timedelta(minutes=12)
    assert row.opened_at == T0
    assert row.manifest_sha256 == SHA and row.manifest_path == f"{SESSION}/manifests/00002-c1-{case}.json"
    assert row.media_t0 == 31.5 and row.duration_s == 720.25 and not row.confidential
    assert [f["path"] for f in row.files] == ["media/c1/tinh-1.webm"] and row.files[0]["sha256"] == "cd" * 32
    assert [s["venue"] for s in row.speakers] == ["tinh", "tien-du"]
    assert row.gaps == ({"venue": "tien-du", "start": 200.0, "end": 206.5, "reason": "link_lost"},)
    assert row.recorded_at is not None
    assert [r.segment for r in by_case] == [f"c1-{case}"] == [r.segment for r in by_session]
    assert sessions == [(SESSION, 1)]
    assert await _rows(engine) == 1
    assert await _links(engine) == 1  # linked once, audited once


async def test_closed_before_opened_writes_the_whole_row_and_the_late_opening_adds_nothing(
        engine: AsyncEngine) -> None:
    case = await _case(engine)
    async with engine.begin() as conn:
        assert await record_segment_closed(conn, _closed(case)) is RecordingOutcome.CREATED
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.UNCHANGED
    async with engine.connect() as conn:
        row = await get_segment(conn, f"c1-{case}")
    assert row is not None and row.closed and row.case_id == case and row.opened_at == T0 and row.call_seq == 1
    assert await _rows(engine) == 1 and await _links(engine) == 1


async def test_a_case_not_on_file_keeps_the_segment_unlinked_and_confidentiality_only_rises(
        engine: AsyncEngine) -> None:
    case = "c0ffee00-0000-4000-8000-000000000000"
    async with engine.begin() as conn:
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.CREATED
        assert await record_segment_closed(conn, _closed(case, confidential=True)) is RecordingOutcome.UPDATED
        # a replayed opening that says "not confidential" never lowers it
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.UNCHANGED
    async with engine.connect() as conn:
        row = await get_segment(conn, f"c1-{case}")
        assert await segments_of_case(conn, case) == []
    assert row is not None and row.case_id is None and row.confidential
    assert await _links(engine) == 0


@pytest.mark.parametrize(("manifest", "path"), [
    ("../../etc/passwd", "media/c1/tinh-1.webm"),
    ("/abs/manifest.json", "media/c1/tinh-1.webm"),
    ("s/manifests/x.json", "media/../../secret.webm"),
    ("s/manifests/x.json", "media//tinh-1.webm"),
    ("s\\manifests\\x.json", "media/c1/tinh-1.webm"),
])
async def test_unsafe_paths_are_refused_and_nothing_is_written(engine: AsyncEngine, manifest: str,
                                                               path: str) -> None:
    case = await _case(engine)
    async with engine.begin() as conn:
        with pytest.raises(InvalidInput) as refused:
            await record_segment_closed(conn, _closed(case, manifest=manifest, path=path))
    assert refused.value.code == "invalid_segment"
    assert await _rows(engine) == 0 and await _links(engine) == 0


async def test_bad_ids_and_a_segment_of_another_session_are_refused(engine: AsyncEngine) -> None:
    case = await _case(engine)
    bad_segment = SegmentOpened(room=SESSION, occurred_at=T0, segment="c1/../x", case=case, call_seq=1)
    bad_session = SegmentOpened(room="phiên 1", occurred_at=T0, segment=f"c1-{case}", case=case, call_seq=1)
    bad_hash = _closed(case).model_copy(update={"sha256": "not-a-hash"})
    async with engine.begin() as conn:
        for event in (bad_segment, bad_session):
            with pytest.raises(InvalidInput):
                await record_segment_opened(conn, event)
        with pytest.raises(InvalidInput):
            await record_segment_closed(conn, bad_hash)
        assert await record_segment_opened(conn, _opened(case)) is RecordingOutcome.CREATED
        other = _closed(case).model_copy(update={"room": "phien-khac"})
        with pytest.raises(InvalidInput):
            await record_segment_closed(conn, other)
    async with engine.connect() as conn:
        row = await get_segment(conn, f"c1-{case}")
    assert row is not None and not row.closed and await _rows(engine) == 1


async def test_an_older_emitter_with_paths_only_is_kept(engine: AsyncEngine) -> None:
    case = await _case(engine)
    old = SegmentClosed(room=SESSION, occurred_at=T0, segment=f"c2-{case}", case=case,
                        files=("media/c2/tinh-1.webm", "media/c2/tien-du-1.webm"), sha256=SHA, media_t0=3.0)
    async with engine.begin() as conn:
        assert await record_segment_closed(conn, old) is RecordingOutcome.CREATED
    async with engine.connect() as conn:
        row = await get_segment(conn, f"c2-{case}")
        raw = await conn.scalar(select(recording_segments.c.files_json))
    assert row is not None and row.closed and row.opened_at is None and row.call_seq is None
    assert json.loads(str(raw)) == [{"path": "media/c2/tinh-1.webm"}, {"path": "media/c2/tien-du-1.webm"}]


async def test_the_bus_consumer_keeps_each_segment_once_and_drops_bad_events(engine: AsyncEngine) -> None:
    case = await _case(engine)
    bus = MemoryBus()
    await bus.create_group(RECORDINGS_GROUP)
    handler = recordings_handler(engine)
    seen: list[str] = []
    done = asyncio.Event()

    async def counting(event):  # type: ignore[no-untyped-def]
        await handler(event)
        seen.append(event.type)
        if len(seen) == 6:
            done.set()

    task = asyncio.create_task(watch_recordings(bus, counting, consumer="test-node"))
    try:
        closed = _closed(case, seq=2)
        bad = _closed(case, seq=3, manifest="../x.json")
        for event in (_opened(case, 2), closed, closed, _opened(case, 2), bad):
            await bus.publish(event)
        await bus.publish(closed.model_copy(update={"event_id": "another-delivery"}))  # same key, new id
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        await bus.close()
        await task
    async with engine.connect() as conn:
        rows = await segments_of_session(conn, SESSION)
    assert [(r.segment, r.closed, r.case_id) for r in rows] == [(f"c2-{case}", True, case)]
    assert await _links(engine) == 1
