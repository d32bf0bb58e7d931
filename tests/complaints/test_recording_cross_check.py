"""The case store's cross-check of the recordings volume (complaints.recordings.cross_check_recordings over
recorder.verify.recordings_on_disk) on SQLite and PostgreSQL: real signed manifests, rows written by the
case store's own service from ``room.segment_closed`` events built by the room server's function. An older
signed session head put back after the newest segment manifest was deleted passes the disk's verification
and is named here; so are rows the disk lacks, manifests the case store lacks, a manifest whose bytes differ
from the row, closes not recorded yet and segments opened in a closed or missing session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.recordings import (
    RecordingMismatch,
    cross_check_recordings,
    record_segment_closed,
    record_segment_opened,
)
from complaints.tables import recording_segments
from evidence import Keyring
from recorder.manifest import SESSION_HEAD_NAME, write_session_manifest
from recorder.model import ManifestRef, SegmentReport
from recorder.verify import recordings_on_disk, verify_path
from signaling.events import SegmentOpened
from signaling.room.recording import closed_event
from tests.recorder.test_manifest import EPOCH, add_segment, sample_media
from tiepdan.db import make_engine, prepare_database

pytestmark = pytest.mark.integration

S = "phien-1"
C1 = f"{S}/manifests/00001-c1-case-1.json"
C2 = f"{S}/manifests/00003-c2-case-2.json"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.generate(dev=False, path=tmp_path / "keys" / "keyring.json")


async def _closed(engine: AsyncEngine, report: SegmentReport, ref: ManifestRef | None, call_seq: int) -> None:
    assert ref is not None
    async with engine.begin() as conn:
        await record_segment_closed(conn, closed_event(report, ref, call_seq=call_seq,
                                                       at=datetime.fromtimestamp(report.closed_at, UTC)))


async def _opened(engine: AsyncEngine, segment: str, session: str = S) -> None:
    async with engine.begin() as conn:
        await record_segment_opened(conn, SegmentOpened(room=session, segment=segment, case="case-x", call_seq=9,
                                                        occurred_at=datetime.fromtimestamp(EPOCH, UTC)))


async def _check(engine: AsyncEngine, target: Path, ring: Keyring) -> list[RecordingMismatch]:
    disk = recordings_on_disk(target, ring)
    async with engine.connect() as conn:
        return await cross_check_recordings(conn, scope=disk.scope, sessions=disk.sessions, manifests=disk.manifests,
                                            segments=disk.segments, case_segments=disk.case_segments, only=disk.only)


def _kinds(found: list[RecordingMismatch]) -> set[tuple[str, str]]:
    return {(m.kind, m.path) for m in found}


@pytest.fixture
async def recording(tmp_path: Path, ring: Keyring, engine: AsyncEngine) -> tuple[Path, bytes]:
    """An open session (c1-case-1, b1, c2-case-2) whose two case segments the case store recorded; also the
    session's head as it was before c2 closed."""
    session_dir = tmp_path / "rec" / S
    session_dir.mkdir(parents=True)
    media = sample_media()
    first, first_ref = add_segment(session_dir, ring, media, "c1-case-1", index=0)
    add_segment(session_dir, ring, media, "b1", index=1, case=None)
    head_before_c2 = (session_dir / SESSION_HEAD_NAME).read_bytes()
    second, second_ref = add_segment(session_dir, ring, media, "c2-case-2", index=2, case="case-2")
    await _closed(engine, first, first_ref, 1)
    await _closed(engine, second, second_ref, 2)
    return session_dir, head_before_c2


async def test_an_older_head_put_back_over_a_deleted_newest_manifest_is_named_by_the_case_store(
        recording: tuple[Path, bytes], engine: AsyncEngine, ring: Keyring) -> None:
    session_dir, head_before_c2 = recording
    assert await _check(engine, session_dir.parent, ring) == []
    assert await _check(engine, session_dir, ring) == []
    (session_dir / "manifests" / "00003-c2-case-2.json").unlink()
    (session_dir / SESSION_HEAD_NAME).write_bytes(head_before_c2)
    assert verify_path(session_dir.parent, ring).ok  # the disk alone is consistent again
    for target in (session_dir.parent, session_dir):
        found = await _check(engine, target, ring)
        assert _kinds(found) == {("db_only", C2)}, found
        assert "c2-case-2" in found[0].detail and not found[0].informational
    assert await _check(engine, session_dir / "manifests" / "00001-c1-case-1.json", ring) == []


async def test_rows_and_manifests_that_do_not_match_are_named_both_ways(
        recording: tuple[Path, bytes], engine: AsyncEngine, ring: Keyring) -> None:
    session_dir, _ = recording
    async with engine.begin() as conn:
        await conn.execute(delete(recording_segments).where(recording_segments.c.segment == "c1-case-1"))
        await conn.execute(update(recording_segments).where(recording_segments.c.segment == "c2-case-2")
                           .values(manifest_sha256="0" * 64))
    found = await _check(engine, session_dir.parent, ring)
    assert _kinds(found) == {("disk_only", C1), ("manifest_altered", C2)}, found
    assert "no record of segment c1-case-1" in next(m.detail for m in found if m.kind == "disk_only")
    # one manifest at a time: only what concerns it
    assert _kinds(await _check(engine, session_dir / "manifests" / "00001-c1-case-1.json", ring)) == {
        ("disk_only", C1)}
    assert await _check(engine, session_dir / "manifests" / "00002-b1.json", ring) == []  # between cases


async def test_opened_segments_are_pending_while_recording_and_missing_once_the_session_closed(
        recording: tuple[Path, bytes], engine: AsyncEngine, ring: Keyring) -> None:
    session_dir, _ = recording
    await _opened(engine, "c3-case-3")  # being recorded: no manifest yet
    assert await _check(engine, session_dir, ring) == []
    add_segment(session_dir, ring, sample_media(), "c3-case-3", index=3, case="case-3")  # closed on disk ...
    found = await _check(engine, session_dir, ring)
    assert [(m.kind, m.informational) for m in found] == [("db_pending", True)]  # ... not yet in the case store
    await _opened(engine, "c4-case-4")
    write_session_manifest(session_dir, ring, session=S, closed_at=EPOCH + 60)  # closed without a c4 manifest
    assert ("db_only", f"{S}/manifests/*-c4-case-4.json") in _kinds(await _check(engine, session_dir, ring))
    await _opened(engine, "c1-case-9", session="phien-gone")  # a session with no directory at all
    root_found = _kinds(await _check(engine, session_dir.parent, ring))
    assert ("db_only", "phien-gone/manifests/*-c1-case-9.json") in root_found
    assert ("db_only", "phien-gone/manifests/*-c1-case-9.json") not in _kinds(await _check(engine, session_dir, ring))
