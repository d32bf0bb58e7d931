"""The case's recording segments in its record (``segment_refs``) on SQLite and PostgreSQL: the closing references
a segment already complete; a segment closing after the case was recorded is referenced by the recordings
consumer when its row completes; replays of ``case.closed`` and of the segment events write nothing twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import verify_audit_log
from complaints.recordings import get_segment, record_segment_closed, recordings_handler
from complaints.tables import audit_events, segment_refs
from evidence import Keyring
from minutes.approval import approve, confirm_verbally, request_readback
from minutes.closing_consumer import closing_handler
from minutes.tables import minutes_case_records
from signaling.events import CaseClosed, SegmentClosed, SegmentFile, SegmentOpened, parse_event
from signaling.outbox import outbox

from ._approvals import CAL, CHAIR, COMPLETE, SECRETARY, opened, save
from ._drafts import NOW, SESSION, VENUE, register_case

pytestmark = pytest.mark.integration
LATER = NOW + timedelta(minutes=30)
MANIFEST_SHA = "ab" * 32


def _opened(case: str, seq: int, *, confidential: bool = False) -> SegmentOpened:
    return SegmentOpened(room=SESSION, occurred_at=NOW, segment=f"c{seq}-{case}", case=case,
                         confidential=confidential, call_seq=seq)


def _closed(case: str, seq: int, *, confidential: bool = False, at: Any = NOW + timedelta(minutes=12),
            event_id: str | None = None) -> SegmentClosed:
    segment = f"c{seq}-{case}"
    extra = {"event_id": event_id} if event_id else {}
    return SegmentClosed(
        room=SESSION, occurred_at=at, segment=segment, case=case, files=("media/c1/tinh-1.webm",),
        sha256=MANIFEST_SHA, media_t0=31.5, confidential=confidential, call_seq=seq,
        manifest_path=f"{SESSION}/manifests/0000{seq}-{segment}.json", duration_s=720.25, opened_at=NOW,
        tracks=(SegmentFile(path="media/c1/tinh-1.webm", venue="tinh", sha256="cd" * 32, size=1234, t0=31.5,
                            duration=720.25, kinds=("video", "audio")),), **extra)


async def _heard(engine: AsyncEngine, keyring: Keyring) -> str:
    """A case called in the session with its draft complete, read back and confirmed; returns its id."""
    case_id = await opened(engine, keyring)
    await save(engine, keyring, case_id, 1, COMPLETE)
    async with engine.begin() as conn:
        state = await request_readback(conn, session_id=SESSION, case_id=case_id, version=2, author=SECRETARY,
                                       now=NOW + timedelta(minutes=10))
        assert state.readback_sha256 is not None
        await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=state.readback_sha256,
                               media_time="12:05", author=SECRETARY, now=NOW + timedelta(minutes=11))
        await approve(conn, session_id=SESSION, case_id=case_id, confirmed_sha256=state.readback_sha256,
                      author=CHAIR, name="Đồng chí Bí thư", keyring=keyring, calendar=CAL, now=LATER)
    return case_id


def _case_closed(case_id: str) -> CaseClosed:
    return CaseClosed(session=SESSION, case=case_id, ticket_no=3, venue=VENUE, call_seq=1, by="user:chutri")


async def _refs(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(segment_refs).order_by(segment_refs.c.segment_id)))
                .mappings()]


async def _announced(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.payload).where(outbox.c.type == "case.segment_referenced")
                                   .order_by(outbox.c.id))).scalars().all()
    return [parse_event(r) for r in rows]


async def _audited(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        assert await verify_audit_log(conn) is None
        rows = (await conn.execute(select(audit_events.c.detail).where(audit_events.c.action == "case.segment_ref")
                                   .order_by(audit_events.c.id))).scalars().all()
    return [dict(r) for r in rows]


async def test_the_closing_references_a_segment_already_complete_once(engine: AsyncEngine, keyring: Keyring) -> None:
    case_id = await _heard(engine, keyring)
    async with engine.begin() as conn:  # another case heard in the same session: never this case's
        other = await register_case(conn, keyring, name="Lê Văn Bình")
    recordings = recordings_handler(engine)
    for event in (_opened(case_id, 1), _closed(case_id, 1), _opened(other, 2), _closed(other, 2)):
        await recordings(event)
    assert await _refs(engine) == []  # complete, but the case has no reception entry of the session yet

    closing = closing_handler(engine, keyring, CAL, clock=lambda: LATER)
    event = _case_closed(case_id)
    await closing(event)
    await closing(event)                                              # redelivered
    await closing(event.model_copy(update={"event_id": "replayed"}))  # the outbox publishing it again
    for replay in (_closed(case_id, 1), _closed(case_id, 1, event_id="again")):
        await recordings(replay)                                      # the segment's close delivered again

    segment = f"c1-{case_id}"
    refs = await _refs(engine)
    assert [(r["segment_id"], r["case_id"], r["session_id"], r["sha256"], r["confidential"]) for r in refs] == [
        (segment, case_id, SESSION, MANIFEST_SHA, False)]
    assert refs[0]["files"] == [{"path": "media/c1/tinh-1.webm", "venue": "tinh", "sha256": "cd" * 32, "size": 1234,
                                 "t0": 31.5, "duration": 720.25, "kinds": ["video", "audio"], "encrypted": False}]
    [announced] = await _announced(engine)
    assert (announced.case, announced.segment, announced.session, announced.sha256, announced.by) == (
        case_id, segment, SESSION, MANIFEST_SHA, "service:minutes")
    assert await _audited(engine) == [{"segment": segment, "session": SESSION, "sha256": MANIFEST_SHA}]
    async with engine.connect() as conn:
        record = (await conn.execute(select(minutes_case_records))).mappings().one()
    assert record["segments"] == [segment]


async def test_a_segment_closing_after_the_case_was_recorded_joins_the_record_when_its_row_completes(
        engine: AsyncEngine, keyring: Keyring) -> None:
    case_id = await _heard(engine, keyring)
    recordings = recordings_handler(engine)
    await recordings(_opened(case_id, 1, confidential=True))      # a closed segment (phiên kín), still open
    await closing_handler(engine, keyring, CAL, clock=lambda: LATER)(_case_closed(case_id))
    segment = f"c1-{case_id}"
    async with engine.connect() as conn:
        record = (await conn.execute(select(minutes_case_records))).mappings().one()
    assert record["segments"] == [segment] and await _refs(engine) == []  # named in the minutes, not complete yet

    late = _closed(case_id, 1, confidential=True, at=LATER + timedelta(minutes=5))
    await recordings(late)
    await recordings(late)                                        # redelivered
    async with engine.begin() as conn:                            # the second consumer's copy of the close
        await record_segment_closed(conn, late.model_copy(update={"event_id": "other-consumer"}))
    refs = await _refs(engine)
    assert [(r["segment_id"], r["case_id"], r["sha256"], r["confidential"]) for r in refs] == [
        (segment, case_id, MANIFEST_SHA, True)]
    [announced] = await _announced(engine)
    assert announced.confidential and announced.by == "service:complaints-recordings"
    assert len(await _audited(engine)) == 1
    async with engine.connect() as conn:
        row = await get_segment(conn, segment)
        assert row is not None and row.case_id == case_id and row.closed
        assert int(await conn.scalar(select(func.count()).select_from(minutes_case_records)) or 0) == 1
