"""The recording segments in the case record: ``segment_refs``, one row per segment of a case's reception.

A case's record names the recording of each of its receptions in an online session: the segment id, the
session, the files (path, venue, SHA-256, size… as :mod:`complaints.recordings` kept them from the
recorder's ``room.segment_closed``), the SHA-256 of the segment's signed manifest and whether it is
confidential (a closed segment, "Mật"). The manifest's SHA-256 is what ties the reference to the recording
on the volume (``tiepdan verify``), so a reference is only written from a **complete** segment row.

The rule. A segment of session *S* is referenced for case *C* once both hold, in either order:

1. the segment's row (``recording_segments``) is complete — closed, with its manifest's SHA-256 — and
   belongs to *C* (linked to it, or named for it by the caller while still unlinked: it is linked then);
2. *C* has a reception entry (lượt tiếp) of session *S*: the reception the recording documents. The
   minutes' closing (:mod:`minutes.closing`) writes that entry and, in the same transaction, calls
   :func:`reference_segments`; a registration at the session's desk writes one too.

Whichever side comes second writes the reference: the closing, for the segments already complete; the
recordings consumer (:func:`complaints.recordings.record_segment_closed` / ``record_segment_opened``) when a
row of a case becomes complete, for a segment that closes after the case was recorded. Both call
:func:`reference_segments`, which takes the case row's lock first (PostgreSQL), so of two concurrent
transactions the second sees what the first committed: neither side misses the other.

Idempotent: a segment already referenced is passed over (its first reference stands; a replayed event,
a second closing or both sides at once write nothing twice: the insert ignores a conflict on the segment
id). Each new reference has its audit row ``case.segment_ref`` (ids and the hash only) and its event
``case.segment_referenced``, in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.events import SegmentReferenced

from ..errors import InvalidInput, NotFound
from ..tables import cases, reception_entries, recording_segments, segment_refs
from ._record import announce, audit
from .caller import SEGMENT_GRANTS, Caller, require

__all__ = ["reference_segments"]

_ORDER = (recording_segments.c.opened_at, recording_segments.c.call_seq, recording_segments.c.segment)


async def _lock_case(conn: AsyncConnection, case_id: str) -> None:
    query = select(cases.c.id).where(cases.c.id == case_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    if (await conn.execute(query)).scalar_one_or_none() is None:
        raise NotFound("Không tìm thấy vụ việc.")


async def _received_in(conn: AsyncConnection, case_id: str, session_id: str) -> bool:
    found = await conn.execute(select(reception_entries.c.id).where(
        reception_entries.c.case_id == case_id, reception_entries.c.session_id == session_id).limit(1))
    return found.first() is not None


async def _insert_ref(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert unless the segment is referenced already (a concurrent writer): True when inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(segment_refs).values(**values).on_conflict_do_nothing(index_elements=["segment_id"])
        return bool((await conn.execute(pg)).rowcount == 1)
    from sqlalchemy.dialects import sqlite

    lite = sqlite.insert(segment_refs).values(**values).on_conflict_do_nothing(index_elements=["segment_id"])
    return bool((await conn.execute(lite)).rowcount == 1)


def _files(row: RowMapping) -> list[dict[str, Any]]:
    data = json.loads(row["files_json"] or "[]")
    return [dict(item) for item in data] if isinstance(data, list) else []


async def reference_segments(conn: AsyncConnection, caller: Caller, case_id: str, session_id: str, *,
                             now: datetime, segments: Sequence[str] = ()) -> tuple[str, ...]:
    """Reference in ``segment_refs`` every complete segment of ``case_id`` in ``session_id`` not referenced yet
    (see the module doc); ``segments``: ids the caller names for the case though their rows are not linked
    yet (they are linked). Returns the segments referenced by this call, in call order (empty: nothing new,
    or no reception of the case in that session yet).

    Refusals: :class:`~complaints.errors.NotAuthorized` (grants), :class:`NotFound` (no such case),
    :class:`InvalidInput` (a named segment of another case or session)."""
    require(caller, SEGMENT_GRANTS)
    await _lock_case(conn, case_id)
    named = sorted(set(segments))
    if named:
        for row in (await conn.execute(select(recording_segments.c.segment, recording_segments.c.session,
                                              recording_segments.c.case_id)
                                       .where(recording_segments.c.segment.in_(named)))).mappings():
            if row["session"] != session_id or row["case_id"] not in (None, case_id):
                raise InvalidInput("Đoạn ghi hình thuộc vụ việc hoặc phiên tiếp công dân khác.",
                                   code="invalid_segment", field="segments")
    if not await _received_in(conn, case_id, session_id):
        return ()
    mine = recording_segments.c.case_id == case_id
    belongs = or_(mine, recording_segments.c.case_id.is_(None) & recording_segments.c.segment.in_(named)) \
        if named else mine
    rows = (await conn.execute(select(recording_segments).where(
        recording_segments.c.session == session_id, belongs, recording_segments.c.closed_at.is_not(None),
        recording_segments.c.manifest_sha256.is_not(None)).order_by(*_ORDER))).mappings().all()
    if not rows:
        return ()
    known = set((await conn.execute(select(segment_refs.c.segment_id).where(
        segment_refs.c.segment_id.in_([r["segment"] for r in rows])))).scalars())
    written: list[str] = []
    for row in rows:
        segment = row["segment"]
        if segment in known:
            continue
        if row["case_id"] is None:  # named for the case by the caller: the row follows
            await conn.execute(update(recording_segments).where(recording_segments.c.segment == segment,
                                                                recording_segments.c.case_id.is_(None))
                               .values(case_id=case_id))
            await audit(conn, caller, "recording.segment_linked", case_id, now=now,
                        detail={"segment": segment, "session": session_id})
        sha = str(row["manifest_sha256"])
        confidential = bool(row["confidential"])
        if not await _insert_ref(conn, {"segment_id": segment, "case_id": case_id, "session_id": session_id,
                                        "files": _files(row), "sha256": sha, "confidential": confidential}):
            continue
        await audit(conn, caller, "case.segment_ref", case_id, now=now,
                    detail={"segment": segment, "session": session_id, "sha256": sha})
        await announce(conn, SegmentReferenced(case=case_id, by=caller.label, segment=segment, session=session_id,
                                               sha256=sha, confidential=confidential, occurred_at=now))
        written.append(segment)
    return tuple(written)
