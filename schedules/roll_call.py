"""The roll call (điểm danh) of a session's venues and attendees, before the first call.

An online reception is lawful only with every party present at the same time and the link continuous
(QĐ 748/QĐ-TTCP, domain.md R18 and §3 step 8), and the minutes name who attended. So, once the live
room is open and before the chair calls the first citizen, the chair or the secretary (grant
``call_queue``: the people who run the queue and write the minutes) records, for every venue of the
session:

* present or not;
* the officials attending there, by name and position (the minutes list them: "Thành phần tham dự");
* how many citizens are present there: a count only. Citizens are identified by their tickets and
  cases, never by a list of names in the roll call.

Rules (pure, :func:`checked_attendance` and :func:`check_may_call`):

* every venue of the session appears exactly once; a venue that is not the session's is refused;
* an absent venue lists nobody (no official, no citizen);
* the first call of the session needs a roll call recorded since the room was (last) opened, with the
  main venue present: the chair presides from there (Luật 136/2025: no delegation to a deputy);
* a roll call is never edited: an amendment (a late venue arriving, an official leaving) is a new roll
  call with the next number, and the earlier ones stay on record;
* a venue absent at the latest roll call has its waiting tickets held (not callable, like a venue whose
  link is down, :attr:`schedules.queue.QueueState.absent_venues`) until a later roll call marks it
  present. Holding rather than dropping keeps the citizen's number: the venue's people may arrive late.

:func:`record_roll_call` writes the roll call, its audit row (ids and counts, never a name) and the
``session.roll_call_recorded`` event (keyed by session and roll call number, so a redelivery is
harmless) in the caller's transaction, and raises the queue's version so a page showing the queue
before the roll call reloads.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.events import Event, SessionRollCallRecorded
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ._clock import check_not_before, require_actor
from ._service import Clock, audit, now_of, require_grant
from .errors import (
    ConcurrentChange,
    InvalidArgument,
    RollCallMissing,
    SessionNotInProgress,
    UnknownSession,
    UnknownVenue,
    VenueNotInSession,
)
from .queue_store import claim_queue, load_queue_state, save_queue_state
from .session_state import SessionState
from .tables import reception_sessions, roll_call_venues, roll_calls, session_venues, venues

__all__ = [
    "MAX_CITIZENS",
    "MAX_OFFICIALS",
    "Official",
    "RollCall",
    "VenueAttendance",
    "check_may_call",
    "checked_attendance",
    "latest_roll_call",
    "record_roll_call",
    "require_roll_call",
    "roll_calls_of",
]

#: Officials listed at one venue (the chair, co-hosts, the commune's leaders, the units' representatives).
MAX_OFFICIALS = 30
#: Citizens present at one venue (a group petition of many people included).
MAX_CITIZENS = 10_000
_MAX_NAME = 100
_MAX_POSITION = 150
#: The session states whose live room is open: a roll call is taken there (and amended while receiving).
_ROLL_CALL_STATES = (SessionState.OPEN, SessionState.IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class Official:
    """An official attending: full name and position ("Phó Chủ tịch UBND xã"), as the minutes write them."""

    name: str
    position: str


@dataclass(frozen=True, slots=True)
class VenueAttendance:
    """One venue at the roll call."""

    venue: str
    present: bool
    officials: tuple[Official, ...] = ()
    citizens: int = 0


@dataclass(frozen=True, slots=True)
class RollCall:
    """A recorded roll call: its number in the session (2+ amend the earlier), the venues in session order."""

    session_id: str
    roll_call_no: int
    venues: tuple[VenueAttendance, ...]
    recorded_by: str
    recorded_at: datetime
    events: tuple[Event, ...] = field(default=(), compare=False)

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(v.venue for v in self.venues if v.present)

    @property
    def absent(self) -> tuple[str, ...]:
        return tuple(v.venue for v in self.venues if not v.present)

    @property
    def officials(self) -> int:
        return sum(len(v.officials) for v in self.venues)

    @property
    def citizens(self) -> int:
        return sum(v.citizens for v in self.venues)


# -- pure rules ------------------------------------------------------------------------------------------------


def _text(value: object, limit: int, what_vi: str, code: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what_vi} phải là chữ.", code=code)
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidArgument(f"{what_vi} không được để trống.", code=code)
    if len(cleaned) > limit:
        raise InvalidArgument(f"{what_vi} dài quá {limit} ký tự.", code=code)
    if any(not ch.isprintable() for ch in cleaned):
        raise InvalidArgument(f"{what_vi} có ký tự không hợp lệ.", code=code)
    return cleaned


def _checked_venue(entry: VenueAttendance) -> VenueAttendance:
    if not isinstance(entry.present, bool):
        raise InvalidArgument(f"Điểm cầu «{entry.venue}»: có mặt phải là đúng hoặc sai.", code="bad_attendance")
    citizens = entry.citizens
    if isinstance(citizens, bool) or not isinstance(citizens, int) or not 0 <= citizens <= MAX_CITIZENS:
        raise InvalidArgument(f"Điểm cầu «{entry.venue}»: số công dân có mặt phải từ 0 đến {MAX_CITIZENS}.",
                              code="bad_citizens")
    if len(entry.officials) > MAX_OFFICIALS:
        raise InvalidArgument(f"Điểm cầu «{entry.venue}»: tối đa {MAX_OFFICIALS} cán bộ tham dự.",
                              code="too_many_officials")
    officials = tuple(
        Official(_text(o.name, _MAX_NAME, "Họ tên cán bộ", "bad_official"),
                 _text(o.position, _MAX_POSITION, "Chức vụ của cán bộ", "bad_official"))
        for o in entry.officials)
    if not entry.present and (officials or citizens):
        raise InvalidArgument(f"Điểm cầu «{entry.venue}» vắng mặt thì không ghi cán bộ hay công dân có mặt.",
                              code="absent_with_attendees")
    return VenueAttendance(entry.venue, entry.present, officials, citizens)


def checked_attendance(entries: Sequence[VenueAttendance],
                       session_venues_in_order: Sequence[str]) -> tuple[VenueAttendance, ...]:
    """The roll call's entries checked and put in the session's venue order; names and positions with
    their white space collapsed. :class:`VenueNotInSession` for a venue the session does not link,
    :class:`InvalidArgument` for a venue given twice or left out, or a bad entry (see the module)."""
    listed = set(session_venues_in_order)
    seen: dict[str, VenueAttendance] = {}
    for entry in entries:
        if entry.venue not in listed:
            raise VenueNotInSession(f"Điểm cầu «{str(entry.venue)[:64]}» không thuộc phiên này.")
        if entry.venue in seen:
            raise InvalidArgument(f"Điểm cầu «{entry.venue}» được điểm danh hai lần.", code="duplicate_venue")
        seen[entry.venue] = _checked_venue(entry)
    missing = [v for v in session_venues_in_order if v not in seen]
    if missing:
        raise InvalidArgument(f"Chưa điểm danh điểm cầu: {', '.join(missing)}.", code="roll_call_incomplete")
    return tuple(seen[v] for v in session_venues_in_order)


def check_may_call(latest: RollCall | None, *, opened_at: datetime | None, main_venue: str | None) -> None:
    """May the session's first case be called? Only after a roll call recorded since the room was opened,
    with the main venue present; else :class:`RollCallMissing`."""
    if latest is None or (opened_at is not None and latest.recorded_at < opened_at):
        raise RollCallMissing("Chưa điểm danh các điểm cầu và thành phần tham dự; hãy điểm danh trước khi gọi "
                              "công dân đầu tiên.")
    if main_venue is not None and main_venue in latest.absent:
        raise RollCallMissing("Điểm cầu chính vắng mặt khi điểm danh; chưa thể gọi công dân.",
                              code="main_venue_absent")


# -- the database ----------------------------------------------------------------------------------------------


def _official_json(official: Official) -> dict[str, str]:
    return {"name": official.name, "position": official.position}


async def roll_calls_of(conn: AsyncConnection, session_id: str) -> tuple[RollCall, ...]:
    """Every roll call of the session, the first first (amendments after it)."""
    heads = (await conn.execute(select(roll_calls).where(roll_calls.c.session_id == session_id)
                                .order_by(roll_calls.c.roll_call_no))).all()
    if not heads:
        return ()
    rows = (await conn.execute(select(roll_call_venues).where(roll_call_venues.c.roll_call_id.in_(
        [h.id for h in heads])).order_by(roll_call_venues.c.position))).all()
    by_call: dict[str, list[VenueAttendance]] = {}
    for r in rows:
        officials = tuple(Official(str(o["name"]), str(o["position"])) for o in r.officials or ())
        by_call.setdefault(r.roll_call_id, []).append(
            VenueAttendance(r.venue_id, bool(r.present), officials, int(r.citizens)))
    return tuple(RollCall(session_id=session_id, roll_call_no=h.roll_call_no, venues=tuple(by_call.get(h.id, ())),
                          recorded_by=h.recorded_by, recorded_at=h.recorded_at) for h in heads)


async def latest_roll_call(conn: AsyncConnection, session_id: str) -> RollCall | None:
    """The session's latest roll call (the one in force), or None before the first."""
    calls = await roll_calls_of(conn, session_id)
    return calls[-1] if calls else None


async def _session_venues(conn: AsyncConnection, session_id: str) -> list[tuple[str, bool]]:
    rows = await conn.execute(select(session_venues.c.venue_id, session_venues.c.main)
                              .where(session_venues.c.session_id == session_id).order_by(session_venues.c.position))
    return [(str(v), bool(m)) for v, m in rows.all()]


async def require_roll_call(conn: AsyncConnection, session_id: str) -> None:
    """Refuse (:class:`RollCallMissing`) the first call of a session without a roll call in force (see
    :func:`check_may_call`); the caller holds the queue row."""
    opened_at = await conn.scalar(select(reception_sessions.c.opened_at).where(reception_sessions.c.id == session_id))
    main = next((v for v, is_main in await _session_venues(conn, session_id) if is_main), None)
    check_may_call(await latest_roll_call(conn, session_id), opened_at=opened_at, main_venue=main)


async def record_roll_call(
    conn: AsyncConnection, session_id: str, *, attendance: Sequence[VenueAttendance],
    expected_roll_call_no: int | None = None, actor: str, grants: Collection[Grant], clock: Clock,
) -> RollCall:
    """Record a roll call of the session (open or in progress; grant ``call_queue``): the first, or an
    amendment. ``expected_roll_call_no`` is the number of the roll call the page showed (0: none), so
    that of two pages amending at once the second is refused (:class:`ConcurrentChange`)."""
    require_grant(grants, Grant.CALL_QUEUE, "điểm danh các điểm cầu")
    actor = require_actor(actor)
    # The session row, then the queue row: the order of sessions._transition, so no deadlock with it, and a
    # "call next" (which holds the queue row) sees the roll call either whole or not at all.
    claimed = await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                                 .values(version=reception_sessions.c.version))
    if claimed.rowcount != 1:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id[:64]}».")
    await claim_queue(conn, session_id)
    state_value, changed_at = (await conn.execute(select(reception_sessions.c.state, reception_sessions.c.changed_at)
                                                  .where(reception_sessions.c.id == session_id))).one()
    state = SessionState.parse(state_value)
    if state not in _ROLL_CALL_STATES:
        raise SessionNotInProgress(
            f"Chỉ điểm danh khi phiên đã mở; phiên đang ở trạng thái «{state.label_vi}».", code="session_not_open")
    chosen = [v for v, _ in await _session_venues(conn, session_id)]
    strangers = {e.venue for e in attendance if e.venue not in chosen}
    if strangers:
        known = set((await conn.execute(select(venues.c.id).where(venues.c.id.in_(
            [str(s)[:64] for s in strangers])))).scalars().all())
        unknown = sorted(str(s)[:64] for s in strangers if s not in known)
        if unknown:
            raise UnknownVenue(f"Không có điểm cầu «{unknown[0]}».")
    checked = checked_attendance(attendance, chosen)
    last_no = int(await conn.scalar(select(func.coalesce(func.max(roll_calls.c.roll_call_no), 0))
                                    .where(roll_calls.c.session_id == session_id)) or 0)
    if expected_roll_call_no is not None and expected_roll_call_no != last_no:
        raise ConcurrentChange(f"Điểm danh của phiên «{session_id}» vừa được người khác cập nhật (lần {last_no}); "
                               "hãy tải lại.", current=last_no, expected=expected_roll_call_no)
    last_at = await conn.scalar(select(func.max(roll_calls.c.recorded_at)).where(roll_calls.c.session_id == session_id))
    queue, queue_version = await load_queue_state(conn, session_id)
    now = now_of(clock)
    for before in (changed_at, last_at, queue.changed_at):
        check_not_before(before, now)
    number = last_no + 1
    roll_call_id = str(uuid.uuid4())
    await conn.execute(insert(roll_calls).values(id=roll_call_id, session_id=session_id, roll_call_no=number,
                                                 recorded_by=actor, recorded_at=now))
    await conn.execute(insert(roll_call_venues), [
        {"roll_call_id": roll_call_id, "venue_id": v.venue, "position": i, "present": v.present,
         "citizens": v.citizens, "officials": [_official_json(o) for o in v.officials]}
        for i, v in enumerate(checked)])
    # Raise the queue's version: what "call next" would do has changed (venues held or released).
    await save_queue_state(conn, queue, replace(queue, changed_at=now), version=queue_version, now=now)
    recorded = RollCall(session_id=session_id, roll_call_no=number, venues=checked, recorded_by=actor,
                        recorded_at=now)
    event = SessionRollCallRecorded(session=session_id, roll_call_no=number, by=actor, present=recorded.present,
                                    absent=recorded.absent, officials=recorded.officials,
                                    citizens=recorded.citizens, occurred_at=now)
    await add_to_outbox(conn, event)
    await audit(conn, actor=actor, action="session.roll_call_recorded", target_kind="session", target_id=session_id,
                at=now, detail={"roll_call_no": number, "present": list(recorded.present),
                                "absent": list(recorded.absent), "officials": recorded.officials,
                                "citizens": recorded.citizens})
    return replace(recorded, events=(event,))
