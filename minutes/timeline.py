"""The timeline of a case heard in a session: what happened and when, on the wall clock and in the recording.

Theory of operation. The consumer group :data:`TIMELINE_GROUP` keeps one row (``minutes_timeline``) per event of
:data:`TIMELINE_TYPES`: the calls of the queue (``case.called``/``recalled``/``paused``/``resumed``/``closed``,
``skipped``, ``absent``: they carry their case and ``call_seq``), the room's floor, venue links and closed
segments (``room.*``: they name the room, which is the session, but no case), and the recorder's segments
(``room.segment_opened``/``closed``: a case's segment, its wall time of opening and, once closed, its media
``t0`` on the session clock). The events of one session arrive in any order (the queue's and the room's are two
aggregates; a redelivery comes late), so nothing is decided on arrival: after each new row :func:`place` is
run over the session's rows, a pure function that decides for every row

* its **case** (a room event belongs to the call whose window holds it: from ``case.called`` to the call's
  end, or to the next call when its end is not known yet);
* its **segment** (the call's segment, else the segment whose window holds it);
* its **media time**: ``t0 + (wall - opened)`` seconds on the session clock, where ``t0`` is the segment's
  media t0 (from ``room.segment_closed``) and ``opened`` its wall time of opening (``room.segment_opened``);
  None until the segment's t0 is known, never before ``t0`` (a call is announced a moment before its
  segment opens).

Rows whose placement changed are updated. The result depends on the set of rows only, so the order of
delivery does not matter and a late event settles the rows it concerns. Handling is idempotent twice over:
:func:`signaling.consumers.idempotent` records ``event.key`` with the row, and the row's key is the event id
(``ON CONFLICT DO NOTHING``). On PostgreSQL a transaction-scoped advisory lock on the session serialises two
consumers of one session (each would otherwise miss the other's uncommitted row).

Rows name ids and enumeration values only. A closed segment's row keeps neither the venue nor who asked: the
timeline never points at a denouncer's venue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.bus import Bus, Handler
from signaling.consumers import idempotent
from signaling.errors import BusError
from signaling.events import (
    AnyEvent,
    CaseAbsent,
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseRecalled,
    CaseResumed,
    CaseSkipped,
    ClosedSegmentEnded,
    ClosedSegmentStarted,
    FloorGranted,
    FloorRevoked,
    SegmentClosed,
    SegmentOpened,
    VenueLinkLost,
    VenueLinkRestored,
)

from .tables import minutes_timeline

__all__ = [
    "TIMELINE_CONSUMER", "TIMELINE_GROUP", "TIMELINE_TYPES", "Placement", "TimelineRow", "case_timeline",
    "place", "record_event", "timeline_handler", "watch_timeline",
]

log = logging.getLogger("minutes.timeline")

TIMELINE_GROUP = "minutes-timeline"
TIMELINE_CONSUMER = "minutes.timeline"

_CALL_START = frozenset({"case.called", "case.recalled"})
_CALL_END = frozenset({"case.closed", "case.skipped", "case.absent"})
_QUEUE = _CALL_START | _CALL_END | {"case.paused", "case.resumed"}
_ROOM = frozenset({"room.floor_granted", "room.floor_revoked", "room.venue_link_lost", "room.venue_link_restored",
                   "room.closed_segment_started", "room.closed_segment_ended"})
_SEGMENT_OPENED = "room.segment_opened"
_SEGMENT_CLOSED = "room.segment_closed"
_CLOSED_SEGMENT = frozenset({"room.closed_segment_started", "room.closed_segment_ended"})

#: The event types the timeline keeps.
TIMELINE_TYPES: frozenset[str] = _QUEUE | _ROOM | {_SEGMENT_OPENED, _SEGMENT_CLOSED}

_Timeline = (CaseCalled | CaseRecalled | CasePaused | CaseResumed | CaseClosed | CaseSkipped | CaseAbsent
             | FloorGranted | FloorRevoked | VenueLinkLost | VenueLinkRestored | ClosedSegmentStarted
             | ClosedSegmentEnded | SegmentOpened | SegmentClosed)
_TIMELINE_CLASSES = (CaseCalled, CaseRecalled, CasePaused, CaseResumed, CaseClosed, CaseSkipped, CaseAbsent,
                     FloorGranted, FloorRevoked, VenueLinkLost, VenueLinkRestored, ClosedSegmentStarted,
                     ClosedSegmentEnded, SegmentOpened, SegmentClosed)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One row of ``minutes_timeline``. ``segment_t0``/``segment_opened_at``: on a ``room.segment_closed`` row,
    the segment's media t0 (session clock) and its wall time of opening; ``media_at``: seconds on the
    recording's session clock (None while the segment's t0 is not known)."""

    event_id: str
    session_id: str
    kind: str
    occurred_at: datetime
    case_id: str | None = None
    call_seq: int | None = None
    venue: str | None = None
    segment: str | None = None
    segment_t0: float | None = None
    segment_opened_at: datetime | None = None
    media_at: float | None = None

    @property
    def media_offset(self) -> float | None:
        """Seconds from the start of the row's segment (what the replay page counts), or None."""
        return None if self.media_at is None or self.segment_t0 is None else max(0.0, self.media_at - self.segment_t0)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where :func:`place` puts a row: its case and call, its segment (with the segment's t0) and media time."""

    case_id: str | None
    call_seq: int | None
    segment: str | None
    segment_t0: float | None
    media_at: float | None


# -- the pure core -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    case_id: str
    call_seq: int
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class _Segment:
    segment: str
    case_id: str | None
    call_seq: int | None
    opened_at: datetime | None
    closed_at: datetime | None
    t0: float | None


def _calls(rows: Sequence[TimelineRow]) -> list[_Call]:
    starts: dict[tuple[str, int], datetime] = {}
    ends: dict[tuple[str, int], datetime] = {}
    for row in rows:
        if row.case_id is None or row.call_seq is None:
            continue
        key = (row.case_id, row.call_seq)
        if row.kind in _CALL_START:
            starts[key] = min(starts.get(key, row.occurred_at), row.occurred_at)
        elif row.kind in _CALL_END:
            ends[key] = min(ends.get(key, row.occurred_at), row.occurred_at)
    ordered = sorted(starts.items(), key=lambda kv: (kv[1], kv[0]))
    calls: list[_Call] = []
    for index, (key, start) in enumerate(ordered):
        end = ends.get(key)
        if end is None and index + 1 < len(ordered):
            end = ordered[index + 1][1]  # a new call ends the one before, whose end has not arrived
        calls.append(_Call(key[0], key[1], start, end))
    return calls


def _segments(rows: Sequence[TimelineRow]) -> list[_Segment]:
    found: dict[str, _Segment] = {}
    for row in rows:
        if row.segment is None or row.kind not in (_SEGMENT_OPENED, _SEGMENT_CLOSED):
            continue
        seen = found.get(row.segment) or _Segment(row.segment, row.case_id, row.call_seq, None, None, None)
        if row.kind == _SEGMENT_OPENED:
            seen = replace(seen, opened_at=row.occurred_at, case_id=seen.case_id or row.case_id,
                           call_seq=seen.call_seq or row.call_seq)
        else:
            seen = replace(seen, closed_at=row.occurred_at, t0=row.segment_t0,
                           opened_at=seen.opened_at or row.segment_opened_at,
                           case_id=seen.case_id or row.case_id, call_seq=seen.call_seq or row.call_seq)
        found[row.segment] = seen
    return sorted(found.values(), key=lambda s: (s.opened_at or datetime.max.replace(tzinfo=UTC), s.segment))


def _holds(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    return start is not None and start <= at and (end is None or at <= end)


def _call_at(calls: Sequence[_Call], at: datetime) -> _Call | None:
    holding = [c for c in calls if _holds(c.start, c.end, at)]
    return holding[-1] if holding else None


def _segment_of(segments: Sequence[_Segment], case_id: str | None, call_seq: int | None,
                at: datetime) -> _Segment | None:
    if case_id is not None:
        own = [s for s in segments if s.case_id == case_id and (call_seq is None or s.call_seq in (None, call_seq))]
        if call_seq is not None:
            exact = [s for s in own if s.call_seq == call_seq]
            own = exact or own
        if len(own) == 1:
            return own[0]
        if own:
            holding = [s for s in own if _holds(s.opened_at, s.closed_at, at)]
            return holding[-1] if holding else own[-1]
    holding = [s for s in segments if _holds(s.opened_at, s.closed_at, at)]
    return holding[-1] if holding else None


def place(rows: Sequence[TimelineRow]) -> dict[str, Placement]:
    """The placement of every row of one session (by event id); depends on the set of rows, not their order."""
    calls = _calls(rows)
    segments = _segments(rows)
    placed: dict[str, Placement] = {}
    for row in rows:
        case_id, call_seq = row.case_id, row.call_seq
        if row.kind in _ROOM:
            call = _call_at(calls, row.occurred_at)
            case_id, call_seq = (call.case_id, call.call_seq) if call is not None else (None, None)
        if row.kind in (_SEGMENT_OPENED, _SEGMENT_CLOSED):
            segment = next((s for s in segments if s.segment == row.segment), None)
        else:
            segment = _segment_of(segments, case_id, call_seq, row.occurred_at)
        media_at: float | None = None
        if segment is not None and segment.t0 is not None and segment.opened_at is not None:
            elapsed = (row.occurred_at - segment.opened_at).total_seconds()
            media_at = round(segment.t0 + max(0.0, elapsed), 3)
        placed[row.event_id] = Placement(case_id, call_seq, None if segment is None else segment.segment,
                                         None if segment is None else segment.t0, media_at)
    return placed


def _row_of(event: _Timeline) -> TimelineRow:
    """The row an event becomes (before placement)."""
    at = event.occurred_at.astimezone(UTC)
    if isinstance(event, SegmentClosed):
        opened = None if event.opened_at is None else event.opened_at.astimezone(UTC)
        return TimelineRow(event.event_id, event.room, event.type, at, case_id=event.case, call_seq=event.call_seq,
                           segment=event.segment, segment_t0=event.media_t0, segment_opened_at=opened)
    if isinstance(event, SegmentOpened):
        return TimelineRow(event.event_id, event.room, event.type, at, case_id=event.case, call_seq=event.call_seq,
                           segment=event.segment)
    if isinstance(event, ClosedSegmentStarted | ClosedSegmentEnded):
        return TimelineRow(event.event_id, event.room, event.type, at)  # no venue: see the module docstring
    if isinstance(event, FloorGranted | FloorRevoked | VenueLinkLost | VenueLinkRestored):
        return TimelineRow(event.event_id, event.room, event.type, at, venue=event.venue)
    return TimelineRow(event.event_id, event.session, event.type, at, case_id=event.case, call_seq=event.call_seq,
                       venue=event.venue)


# -- the driver ------------------------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back: they were written in UTC


def _from_db(row: RowMapping) -> TimelineRow:
    occurred = _aware(row["occurred_at"])
    assert occurred is not None
    return TimelineRow(
        event_id=row["event_id"], session_id=row["session_id"], kind=row["kind"], occurred_at=occurred,
        case_id=row["case_id"], call_seq=row["call_seq"], venue=row["venue"], segment=row["segment"],
        segment_t0=row["segment_t0"], segment_opened_at=_aware(row["segment_opened_at"]), media_at=row["media_at"])


async def _session_rows(conn: AsyncConnection, session_id: str) -> list[TimelineRow]:
    rows = (await conn.execute(select(minutes_timeline).where(minutes_timeline.c.session_id == session_id)
                               .order_by(minutes_timeline.c.occurred_at, minutes_timeline.c.event_id))).mappings()
    return [_from_db(r) for r in rows]


async def _insert(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(minutes_timeline).values(**values).on_conflict_do_nothing(index_elements=["event_id"])
        return bool((await conn.execute(pg)).rowcount == 1)
    lite = sqlite.insert(minutes_timeline).values(**values).on_conflict_do_nothing(index_elements=["event_id"])
    return bool((await conn.execute(lite)).rowcount == 1)


async def record_event(conn: AsyncConnection, event: AnyEvent, *, now: datetime) -> bool:
    """Keep one event of the timeline and place the rows of its session again (in the caller's transaction).
    False when the event is not a timeline event or its row exists already (a redelivery)."""
    if not isinstance(event, _TIMELINE_CLASSES):
        return False
    row = _row_of(event)
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(7217017, hashtext(:session))"),
                           {"session": row.session_id})
    # the stored call and case of a room event are its placement's; the event's own are kept for the others
    if not await _insert(conn, {
            "event_id": row.event_id, "session_id": row.session_id, "kind": row.kind, "occurred_at": row.occurred_at,
            "case_id": row.case_id, "call_seq": row.call_seq, "venue": row.venue, "segment": row.segment,
            "segment_t0": row.segment_t0, "segment_opened_at": row.segment_opened_at, "media_at": None,
            "recorded_at": now}):
        return False
    rows = await _session_rows(conn, row.session_id)
    for existing, placement in _changes(rows, place(rows)):
        values: dict[str, Any] = {"segment": placement.segment, "media_at": placement.media_at}
        if existing.kind in _ROOM:
            values.update(case_id=placement.case_id, call_seq=placement.call_seq)
        if existing.kind != _SEGMENT_CLOSED:
            values["segment_t0"] = placement.segment_t0
        await conn.execute(update(minutes_timeline).where(minutes_timeline.c.event_id == existing.event_id)
                           .values(**values))
    return True


def _changes(rows: Iterable[TimelineRow], placed: Mapping[str, Placement]) -> list[tuple[TimelineRow, Placement]]:
    changed: list[tuple[TimelineRow, Placement]] = []
    for row in rows:
        p = placed[row.event_id]
        same_case = row.kind not in _ROOM or (row.case_id, row.call_seq) == (p.case_id, p.call_seq)
        same_t0 = row.kind == _SEGMENT_CLOSED or row.segment_t0 == p.segment_t0
        if not (same_case and same_t0 and row.segment == p.segment and row.media_at == p.media_at):
            changed.append((row, p))
    return changed


async def case_timeline(conn: AsyncConnection, *, session_id: str, case_id: str) -> list[TimelineRow]:
    """The timeline of one case in one session, in the order things happened."""
    rows = (await conn.execute(
        select(minutes_timeline).where(minutes_timeline.c.session_id == session_id,
                                       minutes_timeline.c.case_id == case_id)
        .order_by(minutes_timeline.c.occurred_at, minutes_timeline.c.event_id))).mappings()
    return [_from_db(r) for r in rows]


def _now() -> datetime:
    return datetime.now(UTC)


def timeline_handler(engine: AsyncEngine, *, clock: Callable[[], datetime] = _now,
                     consumer: str = TIMELINE_CONSUMER) -> Handler:
    """The bus handler: each timeline event is kept once (by ``event.key`` and by event id); others pass."""

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        kept = await record_event(conn, event, now=clock())
        log.debug("timeline event %s", "kept" if kept else "known", extra={"ctx": {"event": event.event_id}})

    once = idempotent(engine, consumer, apply)

    async def handle(event: AnyEvent) -> None:
        if isinstance(event, _TIMELINE_CLASSES):
            await once(event)

    return handle


async def watch_timeline(bus: Bus, handler: Handler, *, consumer: str) -> None:
    """Consume :data:`TIMELINE_GROUP` as ``consumer`` until the bus closes; anything else that ends it is a
    crash for the supervisor (what was held is delivered again)."""
    try:
        await bus.consume(TIMELINE_GROUP, consumer, handler)
    except BusError:
        if bus.closed:
            return
        raise

