"""``complaints.service.reference_segments`` on SQLite and PostgreSQL: only complete segments of a case received in
the session are referenced; a segment named for the case while unlinked is linked; refusals (grants, an unknown
case, a segment of another case or session) write nothing; on PostgreSQL a segment completing while the closing
is uncommitted waits for the case row and is referenced once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import ColumnElement, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints import service
from complaints.audit import verify_audit_log
from complaints.cases import create_case
from complaints.enums import PetitionKind, ReceptionForm, ReceptionType
from complaints.errors import InvalidInput, NotAuthorized, NotFound
from complaints.recordings import get_segment, record_segment_closed
from complaints.tables import audit_events, recording_segments, segment_refs
from evidence import Keyring
from signaling.events import SegmentClosed
from signaling.grants import Grant
from signaling.outbox import outbox
from tiepdan.db import make_engine, prepare_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)
SESSION = "phien-2026-12-10"
WRITER = service.Caller(label="service:minutes", name="Thư ký", grants=frozenset({Grant.MINUTES}))
DESK = service.Caller(label="user:desk", name="Cán bộ", grants=frozenset({Grant.INTAKE}))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


async def _case(conn: AsyncConnection, keyring: Keyring, *, received: bool = True) -> str:
    case_id = (await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất đai", now=NOW)).id
    if received:
        await service.add_reception(conn, keyring, WRITER, case_id, received_on=date(2026, 12, 10),
                                    reception_type=ReceptionType.PERIODIC, form=ReceptionForm.ONLINE, now=NOW,
                                    session_id=SESSION)
    return case_id


async def _segment(conn: AsyncConnection, segment: str, case_id: str | None, *, complete: bool = True,
                   session: str = SESSION) -> None:
    await conn.execute(recording_segments.insert().values(
        segment=segment, session=session, case_id=case_id, call_seq=1, confidential=False,
        manifest_path=f"{session}/manifests/{segment}.json" if complete else None,
        manifest_sha256="ef" * 32 if complete else None, files_json='[{"path": "media/a.webm"}]',
        speakers_json="[]", gaps_json="[]", opened_at=NOW, closed_at=NOW if complete else None))


async def _count(conn: AsyncConnection, table: Table, *where: ColumnElement[bool]) -> int:
    return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_only_complete_segments_of_a_case_received_in_the_session_are_referenced(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        case_id = await _case(conn, keyring)
        unreceived = await _case(conn, keyring, received=False)
        await _segment(conn, "c1-a", case_id)
        await _segment(conn, "c1-open", case_id, complete=False)
        await _segment(conn, "c1-named", None)      # not linked yet: the minutes name it for the case
        await _segment(conn, "c2-b", unreceived)
        assert await service.reference_segments(conn, WRITER, unreceived, SESSION, now=NOW) == ()
        assert await service.reference_segments(conn, WRITER, case_id, SESSION, now=NOW,
                                                segments=["c1-a", "c1-open", "c1-named"]) == ("c1-a", "c1-named")
        assert await service.reference_segments(conn, WRITER, case_id, SESSION, now=NOW,
                                                segments=["c1-named"]) == ()  # again: nothing twice
    async with engine.connect() as conn:
        refs = (await conn.execute(select(segment_refs.c.segment_id, segment_refs.c.case_id, segment_refs.c.files)
                                   .order_by(segment_refs.c.segment_id))).all()
        assert [(r[0], r[1], r[2]) for r in refs] == [("c1-a", case_id, [{"path": "media/a.webm"}]),
                                                      ("c1-named", case_id, [{"path": "media/a.webm"}])]
        linked = await get_segment(conn, "c1-named")
        assert linked is not None and linked.case_id == case_id
        assert await _count(conn, outbox, outbox.c.type == "case.segment_referenced") == 2
        actions = (await conn.execute(select(audit_events.c.action).where(audit_events.c.target_id == case_id)
                                      .order_by(audit_events.c.id))).scalars().all()
        assert actions.count("case.segment_ref") == 2 and actions.count("recording.segment_linked") == 1
        assert await verify_audit_log(conn) is None


async def test_refusals_write_nothing(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        case_id = await _case(conn, keyring)
        other = await _case(conn, keyring)
        await _segment(conn, "c1-mine", case_id)
        await _segment(conn, "c2-theirs", other)
        await _segment(conn, "c1-elsewhere", None, session="phien-2026-12-11")
        audits = await _count(conn, audit_events)
    async with engine.begin() as conn:
        with pytest.raises(NotAuthorized):
            await service.reference_segments(conn, DESK, case_id, SESSION, now=NOW)
        with pytest.raises(NotFound):
            await service.reference_segments(conn, WRITER, "khong-co", SESSION, now=NOW)
        for named in ("c2-theirs", "c1-elsewhere"):
            with pytest.raises(InvalidInput) as refused:
                await service.reference_segments(conn, WRITER, case_id, SESSION, now=NOW,
                                                 segments=["c1-mine", named])
            assert refused.value.field == "segments" and "vụ việc hoặc phiên" in refused.value.message_vi
        assert await _count(conn, segment_refs) == 0 and await _count(conn, audit_events) == audits


async def test_a_segment_completing_while_the_closing_is_uncommitted_is_referenced_once(module_pg_url: str) -> None:
    """PostgreSQL, the race the case row's lock settles: the closing has written the reception and found the
    segment open, not committed yet; the segment's close arrives meanwhile and waits for the case row, then sees
    the reception and writes the reference."""
    engine = make_engine(module_pg_url)
    await prepare_database(engine)
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        case_id = await _case(conn, keyring, received=False)
        await conn.execute(recording_segments.insert().values(
            segment=f"c1-{case_id}", session=SESSION, case_id=case_id, call_seq=1, confidential=False,
            files_json="[]", speakers_json="[]", gaps_json="[]", opened_at=NOW))
    closed = SegmentClosed(room=SESSION, occurred_at=NOW, segment=f"c1-{case_id}", case=case_id,
                           files=("media/a.webm",), sha256="ef" * 32, media_t0=0.0, call_seq=1,
                           manifest_path=f"{SESSION}/manifests/00001-c1-{case_id}.json")
    try:
        closing = await engine.connect()
        await closing.begin()
        await service.add_reception(closing, keyring, WRITER, case_id, received_on=date(2026, 12, 10),
                                    reception_type=ReceptionType.PERIODIC, form=ReceptionForm.ONLINE, now=NOW,
                                    session_id=SESSION)
        assert await service.reference_segments(closing, WRITER, case_id, SESSION, now=NOW) == ()  # still open

        async def recordings_side() -> None:
            async with engine.begin() as conn:
                await record_segment_closed(conn, closed)

        racing = asyncio.create_task(recordings_side())
        async with engine.connect() as watcher:  # wait until the close waits for a lock (the case row)
            while not racing.done():
                waiting = await watcher.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND usename = current_user"))
                await watcher.rollback()
                if waiting:
                    break
                await asyncio.sleep(0.02)
        assert not racing.done()
        await closing.commit()
        await closing.close()
        await racing
        async with engine.connect() as conn:
            assert (await conn.execute(select(segment_refs.c.segment_id, segment_refs.c.case_id))).all() == [
                (f"c1-{case_id}", case_id)]
            assert await _count(conn, outbox, outbox.c.type == "case.segment_referenced") == 1
    finally:
        await engine.dispose()
