"""The recording segments of the reception sessions, as the case store keeps them (``recording_segments``).

The room server's recorder writes the media and a signed manifest per case segment and says so on the bus
(``room.segment_opened``, ``room.segment_closed``); this module keeps one row per segment and links it to
its case:

* :func:`record_segment_opened` / :func:`record_segment_closed` are the service functions (in the caller's
  transaction). Both are idempotent by the segment id: an event delivered again changes nothing; a
  ``segment_closed`` arriving before its ``segment_opened`` (two consumers, a replay) writes the whole row
  and the late ``segment_opened`` only fills what is still missing; a second ``segment_closed`` of a closed
  segment changes nothing. Confidentiality only ever goes from false to true. When the case is on file the
  row is linked to it (``case_id``) once, with one audit row (``recording.segment_linked``). When a row of a
  case becomes complete (closed, with its manifest's SHA-256), the case record's reference to it is written
  if the case has a reception entry of that session (:func:`complaints.service.reference_segments`: a
  segment closing after the minutes recorded the case joins its record then).
* :func:`recordings_handler` is the thin bus consumer (each event once, :func:`signaling.consumers.idempotent`
  by ``event.key``); :func:`watch_recordings` consumes the group :data:`RECORDINGS_GROUP` until the bus
  closes (a supervised loop of the processes where the case store runs: embedded and control; with Redis
  the control processes share the group).
* :func:`segments_of_session`, :func:`segments_of_case` and :func:`get_segment` are the queries of the
  auditor's pages.
* :func:`cross_check_recordings` compares the rows with what the recordings volume holds (listed by
  ``recorder.verify.recordings_on_disk``; this module never reads the volume): a signed head of a session's
  chain put back to an older one, with the newest manifests deleted, passes on the disk alone, but the rows
  recorded each closed case segment's manifest path and SHA-256 (``tiepdan verify``, the replay pages).

Every path is checked before it is stored: the manifest's path (relative to the recordings root) and the
files' paths (relative to the session's directory) are relative POSIX paths without ``..``; an event that
breaks a rule is refused with :class:`~complaints.errors.InvalidInput` and nothing is written.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.bus import Bus, Handler
from signaling.consumers import idempotent
from signaling.errors import BusError
from signaling.events import AnyEvent, SegmentClosed, SegmentOpened

from .audit import append_audit
from .errors import InvalidInput
from .service.caller import SEGMENT_GRANTS, Caller
from .service.segments import reference_segments
from .tables import cases, recording_segments

__all__ = [
    "RECORDINGS_ACTOR", "RECORDINGS_CONSUMER", "RECORDINGS_GROUP", "RecordingOutcome", "SegmentRecord",
    "get_segment", "record_segment_closed", "record_segment_opened", "recordings_handler", "segments_of_case",
    "segments_of_session", "watch_recordings",
]

log = logging.getLogger("complaints.recordings")

#: The bus consumer group of the case store's recordings (the control processes share it).
RECORDINGS_GROUP = "complaints-recordings"
#: The idempotency name under which handled segment events are remembered (``processed_events``).
RECORDINGS_CONSUMER = "complaints.recordings"
#: Who the audit log names for a segment linked to its case.
RECORDINGS_ACTOR = "service:complaints-recordings"
_LINK_ACTION = "recording.segment_linked"
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_SESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RecordingOutcome(StrEnum):
    """What a segment event did to the row."""

    CREATED = "created"          # a new row
    UPDATED = "updated"          # the row gained what it lacked (the closed details, a late opening)
    UNCHANGED = "unchanged"      # the event told nothing new (a replay, a second close)


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One row of ``recording_segments`` (``files``, ``speakers``, ``gaps``: the lists of the manifest)."""

    segment: str
    session: str
    case_id: str | None
    call_seq: int | None
    confidential: bool
    manifest_path: str | None
    manifest_sha256: str | None
    media_t0: float | None
    duration_s: float | None
    files: tuple[dict[str, Any], ...]
    speakers: tuple[dict[str, Any], ...]
    gaps: tuple[dict[str, Any], ...]
    opened_at: datetime | None
    closed_at: datetime | None
    recorded_at: datetime | None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


# -- validation ------------------------------------------------------------------------------------


def _bad(message_vi: str, field: str) -> InvalidInput:
    return InvalidInput(message_vi, code="invalid_segment", field=field)


def _check_ids(segment: str, session: str) -> None:
    if not _SEGMENT.match(segment):
        raise _bad("Mã đoạn ghi hình không hợp lệ.", "segment")
    if not _SESSION.match(session):
        raise _bad("Mã phiên tiếp công dân không hợp lệ.", "session")


def _check_path(path: str, field: str) -> str:
    """A relative POSIX path inside its directory (no ``..``, not absolute, no backslash or NUL)."""
    if not path or len(path) > 400 or "\\" in path or "\x00" in path:
        raise _bad("Đường dẫn tệp ghi hình không hợp lệ.", field)
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", "") for part in path.split("/")) or str(pure) != path:
        raise _bad("Đường dẫn tệp ghi hình không hợp lệ.", field)
    return path


def _closed_values(event: SegmentClosed) -> dict[str, Any]:
    if event.sha256 and not _SHA256.match(event.sha256):
        raise _bad("Mã băm của biên bản ghi hình không hợp lệ.", "sha256")
    manifest_path = _check_path(event.manifest_path, "manifest_path") if event.manifest_path else None
    if event.tracks:
        files: list[dict[str, Any]] = [t.model_dump(mode="json") for t in event.tracks]
    else:  # an older emitter: the paths only
        files = [{"path": p} for p in event.files]
    for item in files:
        _check_path(str(item["path"]), "files")
    return {
        "manifest_path": manifest_path,
        "manifest_sha256": event.sha256 or None,
        "media_t0": event.media_t0,
        "duration_s": event.duration_s,
        "files_json": json.dumps(files, ensure_ascii=False),
        "speakers_json": json.dumps([s.model_dump(mode="json") for s in event.speakers], ensure_ascii=False),
        "gaps_json": json.dumps([g.model_dump(mode="json") for g in event.gaps], ensure_ascii=False),
        "closed_at": event.occurred_at.astimezone(UTC),
    }


# -- service functions -----------------------------------------------------------------------------


async def _case_on_file(conn: AsyncConnection, case: str) -> str | None:
    if not case or len(case) > 36:
        return None
    found = await conn.scalar(select(cases.c.id).where(cases.c.id == case))
    return None if found is None else str(found)


async def _row(conn: AsyncConnection, segment: str, *, lock: bool = False) -> RowMapping | None:
    stmt = select(recording_segments).where(recording_segments.c.segment == segment)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).mappings().one_or_none()


async def _insert(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert the row unless one exists (a concurrent consumer wrote it first): True when inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(recording_segments).values(**values).on_conflict_do_nothing(
            index_elements=["segment"])
        return bool((await conn.execute(pg)).rowcount == 1)
    from sqlalchemy.dialects import sqlite

    lite = sqlite.insert(recording_segments).values(**values).on_conflict_do_nothing(index_elements=["segment"])
    return bool((await conn.execute(lite)).rowcount == 1)


async def _link(conn: AsyncConnection, row_case: str | None, segment: str, session: str, case: str,
                actor: str) -> str | None:
    """The case id to store when the row is not linked yet and the case is on file (audited once)."""
    if row_case is not None:
        return None
    case_id = await _case_on_file(conn, case)
    if case_id is None:
        return None
    await append_audit(conn, actor=actor, action=_LINK_ACTION, target_kind="case", target_id=case_id,
                       detail={"segment": segment, "session": session})
    return case_id


async def _insert_linked(conn: AsyncConnection, values: dict[str, Any], *, actor: str) -> bool:
    """Insert a segment's first row, auditing its link to a case when it has one; False when another
    transaction inserted the row first (the caller then reads it and merges)."""
    if not await _insert(conn, values):
        return False
    if values["case_id"] is not None:
        await append_audit(conn, actor=actor, action=_LINK_ACTION, target_kind="case", target_id=values["case_id"],
                           detail={"segment": values["segment"], "session": values["session"]})
    return True


async def record_segment_opened(conn: AsyncConnection, event: SegmentOpened, *,
                                actor: str = RECORDINGS_ACTOR) -> RecordingOutcome:
    """Keep a segment the recorder opened (see the module docstring for the idempotency rules)."""
    _check_ids(event.segment, event.room)
    opened_at = event.occurred_at.astimezone(UTC)
    row = await _row(conn, event.segment, lock=True)
    if row is None:
        case_id = await _case_on_file(conn, event.case)
        if await _insert_linked(conn, {
                "segment": event.segment, "session": event.room, "case_id": case_id, "call_seq": event.call_seq,
                "confidential": event.confidential, "opened_at": opened_at, "files_json": "[]",
                "speakers_json": "[]", "gaps_json": "[]"}, actor=actor):
            return RecordingOutcome.CREATED
        row = await _row(conn, event.segment, lock=True)
        if row is None:  # pragma: no cover - inserted by another transaction and deleted since
            return RecordingOutcome.UNCHANGED
    _same_session(row, event.room)
    changes: dict[str, Any] = {}
    if row["opened_at"] is None:
        changes["opened_at"] = opened_at
    if row["call_seq"] is None and event.call_seq is not None:
        changes["call_seq"] = event.call_seq
    if event.confidential and not row["confidential"]:
        changes["confidential"] = True
    case_id = await _link(conn, row["case_id"], event.segment, event.room, event.case, actor)
    if case_id is not None:
        changes["case_id"] = case_id
    if not changes:
        return RecordingOutcome.UNCHANGED
    await conn.execute(update(recording_segments).where(recording_segments.c.segment == event.segment)
                       .values(**changes))
    await _reference_if_complete(conn, event.segment, actor)
    return RecordingOutcome.UPDATED


async def record_segment_closed(conn: AsyncConnection, event: SegmentClosed, *,
                                actor: str = RECORDINGS_ACTOR) -> RecordingOutcome:
    """Keep a closed segment: its manifest, files, speakers and gaps (see the module docstring)."""
    _check_ids(event.segment, event.room)
    values = _closed_values(event)
    row = await _row(conn, event.segment, lock=True)
    if row is None:
        case_id = await _case_on_file(conn, event.case)
        opened_at = event.opened_at.astimezone(UTC) if event.opened_at is not None else None
        if await _insert_linked(conn, {"segment": event.segment, "session": event.room, "case_id": case_id,
                                       "call_seq": event.call_seq, "confidential": event.confidential,
                                       "opened_at": opened_at, **values}, actor=actor):
            await _reference_if_complete(conn, event.segment, actor)
            return RecordingOutcome.CREATED
        row = await _row(conn, event.segment, lock=True)
        if row is None:  # pragma: no cover - inserted by another transaction and deleted since
            return RecordingOutcome.UNCHANGED
    _same_session(row, event.room)
    if row["closed_at"] is not None:
        return RecordingOutcome.UNCHANGED  # closed already: the first close is the record
    changes = dict(values)
    if row["call_seq"] is None and event.call_seq is not None:
        changes["call_seq"] = event.call_seq
    if row["opened_at"] is None and event.opened_at is not None:
        changes["opened_at"] = event.opened_at.astimezone(UTC)
    if event.confidential and not row["confidential"]:
        changes["confidential"] = True
    case_id = await _link(conn, row["case_id"], event.segment, event.room, event.case, actor)
    if case_id is not None:
        changes["case_id"] = case_id
    await conn.execute(update(recording_segments).where(recording_segments.c.segment == event.segment)
                       .values(**changes))
    await _reference_if_complete(conn, event.segment, actor)
    return RecordingOutcome.UPDATED


async def _reference_if_complete(conn: AsyncConnection, segment: str, actor: str) -> None:
    """A complete row of a case: its reference in the case record, when the case was received in the
    session (:mod:`complaints.service.segments`; idempotent)."""
    row = await _row(conn, segment)
    if row is None or row["case_id"] is None or row["closed_at"] is None or not row["manifest_sha256"]:
        return
    caller = Caller(label=actor, name="Hệ thống ghi hình", grants=SEGMENT_GRANTS)
    await reference_segments(conn, caller, row["case_id"], row["session"], now=datetime.now(UTC))


def _same_session(row: RowMapping, session: str) -> None:
    if row["session"] != session:
        raise _bad("Đoạn ghi hình thuộc một phiên tiếp công dân khác.", "session")


# -- queries ---------------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back: they were written in UTC


def _list(text: str | None) -> tuple[dict[str, Any], ...]:
    data = json.loads(text or "[]")
    return tuple(dict(item) for item in data) if isinstance(data, list) else ()


def _record(row: RowMapping) -> SegmentRecord:
    return SegmentRecord(
        segment=row["segment"], session=row["session"], case_id=row["case_id"], call_seq=row["call_seq"],
        confidential=bool(row["confidential"]), manifest_path=row["manifest_path"],
        manifest_sha256=row["manifest_sha256"], media_t0=row["media_t0"], duration_s=row["duration_s"],
        files=_list(row["files_json"]), speakers=_list(row["speakers_json"]), gaps=_list(row["gaps_json"]),
        opened_at=_aware(row["opened_at"]), closed_at=_aware(row["closed_at"]),
        recorded_at=_aware(row["recorded_at"]))


_ORDER = (recording_segments.c.opened_at, recording_segments.c.call_seq, recording_segments.c.segment)


async def segments_of_session(conn: AsyncConnection, session: str) -> list[SegmentRecord]:
    """The segments of a reception session, in call order (open ones included: ``closed`` False)."""
    rows = (await conn.execute(select(recording_segments).where(recording_segments.c.session == session)
                               .order_by(*_ORDER))).mappings().all()
    return [_record(r) for r in rows]


async def segments_of_case(conn: AsyncConnection, case_id: str) -> list[SegmentRecord]:
    """The segments linked to a case (every session it was heard in), oldest first."""
    rows = (await conn.execute(select(recording_segments).where(recording_segments.c.case_id == case_id)
                               .order_by(*_ORDER))).mappings().all()
    return [_record(r) for r in rows]


async def get_segment(conn: AsyncConnection, segment: str) -> SegmentRecord | None:
    """One segment, or None."""
    row = await _row(conn, segment)
    return None if row is None else _record(row)


async def sessions_with_segments(conn: AsyncConnection) -> Sequence[tuple[str, int]]:
    """The sessions that have recorded segments, with how many, newest first."""
    from sqlalchemy import func

    newest = func.max(recording_segments.c.opened_at)
    rows = (await conn.execute(select(recording_segments.c.session, func.count())
                               .group_by(recording_segments.c.session)
                               .order_by(newest.desc(), recording_segments.c.session))).all()
    return [(str(s), int(n)) for s, n in rows]


__all__ += ["sessions_with_segments"]


# -- the cross-check with the recordings volume ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedManifest:
    """What a row says of a segment's manifest (``manifest_path`` relative to the recordings root)."""

    segment: str
    session: str
    manifest_path: str | None
    manifest_sha256: str | None
    closed: bool


MismatchKind = Literal["db_only", "disk_only", "manifest_altered", "db_pending"]


@dataclass(frozen=True, slots=True)
class RecordingMismatch:
    """One difference between the case store and the volume, shaped like a finding of ``tiepdan verify``
    (``path`` relative to the recordings root; ``detail`` in English, ids only)."""

    kind: MismatchKind
    path: str
    detail: str

    @property
    def informational(self) -> bool:
        return self.kind == "db_pending"


async def recorded_manifests(conn: AsyncConnection, *, session: str | None = None) -> list[RecordedManifest]:
    """Every segment row (of ``session`` only, when given) with its manifest, in a stable order."""
    stmt = select(recording_segments.c.segment, recording_segments.c.session, recording_segments.c.manifest_path,
                  recording_segments.c.manifest_sha256, recording_segments.c.closed_at)
    if session is not None:
        stmt = stmt.where(recording_segments.c.session == session)
    rows = (await conn.execute(stmt.order_by(recording_segments.c.session, recording_segments.c.segment))).all()
    return [RecordedManifest(segment=str(r.segment), session=str(r.session), manifest_path=r.manifest_path,
                             manifest_sha256=r.manifest_sha256, closed=r.closed_at is not None) for r in rows]


def compare_recordings(rows: Sequence[RecordedManifest], *, sessions: Mapping[str, bool],
                       manifests: Mapping[str, str], segments: Mapping[str, str],
                       case_segments: Mapping[str, str]) -> list[RecordingMismatch]:
    """The differences between ``rows`` and the volume: ``sessions`` (session directory → its chain is closed),
    ``manifests`` (every manifest file → SHA-256 of its bytes), ``segments`` (signed segment manifests →
    segment id) and ``case_segments`` (those of them that are a case's: the case store must know them).
    Pure: the caller chose which rows and which part of the volume to compare.

    * a closed row whose manifest is missing: ``db_only`` (by the row's manifest path); present with other
      bytes: ``manifest_altered``; a closed row without a manifest path (an older emitter) is looked up by
      its segment id;
    * an open row: its segment's manifest on disk is a close not recorded yet (``db_pending``); none while the
      session's chain is closed, or no session directory at all, is ``db_only``;
    * a signed case-segment manifest that no row names: ``disk_only``.
    """
    found: list[RecordingMismatch] = []
    by_segment = {(path.split("/", 1)[0], segment): path for path, segment in segments.items()}
    named: set[str] = set()
    for row in rows:
        on_disk = by_segment.get((row.session, row.segment))
        unnamed = f"{row.session}/manifests/*-{row.segment}.json"
        if row.closed and row.manifest_path:
            named.add(row.manifest_path)
            sha = manifests.get(row.manifest_path)
            if sha is None:
                found.append(RecordingMismatch("db_only", row.manifest_path, (
                    f"segment {row.segment} closed with this manifest in the case store; it is not on disk")))
            elif row.manifest_sha256 and sha != row.manifest_sha256:
                found.append(RecordingMismatch("manifest_altered", row.manifest_path, (
                    f"its bytes differ from what the case store recorded when segment {row.segment} closed")))
        elif on_disk is not None:
            named.add(on_disk)
            if not row.closed:
                found.append(RecordingMismatch("db_pending", on_disk, (
                    f"the case store has not recorded the close of segment {row.segment} yet")))
        elif row.closed:
            found.append(RecordingMismatch("db_only", unnamed, (
                f"segment {row.segment} closed in the case store; no manifest of it on disk")))
        elif row.session not in sessions:
            found.append(RecordingMismatch("db_only", unnamed, (
                f"segment {row.segment} opened in the case store; its session has no directory on disk")))
        elif sessions[row.session]:
            found.append(RecordingMismatch("db_only", unnamed, (
                f"segment {row.segment} opened in the case store; the session's closed chain has no manifest of it")))
    rows_by_segment = {row.segment: row for row in rows}
    for path, segment in sorted(case_segments.items()):
        if path in named:
            continue
        known = rows_by_segment.get(segment)
        if known is None or known.session != path.split("/", 1)[0]:
            detail = f"the case store has no record of segment {segment}"
        else:
            detail = f"the case store records segment {segment} with another manifest ({known.manifest_path})"
        found.append(RecordingMismatch("disk_only", path, detail))
    return found


async def cross_check_recordings(conn: AsyncConnection, *, scope: str | None, sessions: Mapping[str, bool],
                                 manifests: Mapping[str, str], segments: Mapping[str, str],
                                 case_segments: Mapping[str, str], only: str | None = None) -> list[RecordingMismatch]:
    """:func:`compare_recordings` of the rows of session ``scope`` (None: every row, the whole root) with the
    volume as ``recorder.verify.recordings_on_disk`` listed it; ``only``: keep what concerns that manifest."""
    rows = await recorded_manifests(conn, session=scope)
    if only is not None:
        segment = segments.get(only)
        rows = [r for r in rows if r.manifest_path == only or (segment is not None and r.segment == segment)]
        segments = {only: segment} if segment is not None else {}
        case_segments = {k: v for k, v in case_segments.items() if k == only}
    found = compare_recordings(rows, sessions=sessions, manifests=manifests, segments=segments,
                               case_segments=case_segments)
    return [m for m in found if only is None or m.path == only]


__all__ += ["MismatchKind", "RecordedManifest", "RecordingMismatch", "compare_recordings", "cross_check_recordings",
            "recorded_manifests"]


# -- the bus consumer ------------------------------------------------------------------------------


def recordings_handler(engine: AsyncEngine, *, consumer: str = RECORDINGS_CONSUMER) -> Handler:
    """The bus handler: ``room.segment_opened`` / ``room.segment_closed`` kept once each; others passed over.
    An event that breaks a rule is logged and dropped (delivering it again would not help)."""

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        if not isinstance(event, SegmentOpened | SegmentClosed):
            return
        ctx: dict[str, object] = {"session": event.room, "segment": event.segment[:80], "event": event.event_id}
        try:
            if isinstance(event, SegmentOpened):
                outcome = await record_segment_opened(conn, event)
            else:
                outcome = await record_segment_closed(conn, event)
        except InvalidInput as exc:
            log.warning("segment event refused", extra={"ctx": {**ctx, "code": exc.code}})
            return
        log.info("segment kept", extra={"ctx": {**ctx, "code": outcome.value}})

    once = idempotent(engine, consumer, apply)

    async def handle(event: AnyEvent) -> None:
        if isinstance(event, SegmentOpened | SegmentClosed):
            await once(event)

    return handle


async def watch_recordings(bus: Bus, handler: Handler, *, consumer: str) -> None:
    """Consume :data:`RECORDINGS_GROUP` as ``consumer`` (this process's name) until the bus closes; anything
    else that ends it is a crash for the supervisor (what was held is delivered again)."""
    try:
        await bus.consume(RECORDINGS_GROUP, consumer, handler)
    except BusError:
        if bus.closed:
            return
        raise
