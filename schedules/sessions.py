"""Reception sessions in the database: plan, publish, open, start, close, postpone, cancel, reschedule.

Each transition goes through the pure state machine (:mod:`schedules.session_state`) and is written
with its audit row and its bus event (outbox) in the caller's transaction:

==============  =======================  ===========  ==================================================
function        from → to                grant        event
==============  =======================  ===========  ==================================================
plan_session    (new) → planned          manage       none (a plan is not announced; publishing is)
publish_session planned → published      manage       ``session.published`` (``late`` with a reason)
open_session    published → open         call_queue   ``session.opened`` with the venues and their caps
start_session   open → in_progress       call_queue   ``session.started``
close_session   in_progress → closed     call_queue   ``session.closed`` (the queue closes; not while a
                                                      case is being received; ``not_reached``: the
                                                      tickets still waiting, kept on record)
postpone_…      planned/published/open   manage       ``session.postponed`` (reason code)
cancel_session  … and postponed          manage       ``session.cancelled`` (reason code; queue closes)
reschedule_…    postponed → planned      manage       ``session.rescheduled`` (new and previous day)
==============  =======================  ===========  ==================================================

Concurrency: a transition first takes the session row (see :mod:`schedules._service`), so of two
processes racing one transition the second reads the first's result and gets
:class:`~schedules.errors.IllegalTransition`; ``expected_version`` (the version a page showed) turns
a stale request into :class:`~schedules.errors.ConcurrentChange`. Events carry ``session_version``
(the version after the change) so that a state reached twice (postpone, reschedule, publish again)
has two keys. ``session.opened`` names each venue's cap: the session's own, else the venue's, else
none (the room server's default).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import IssuingTrack, ReceptionForm, ReceptionType
from complaints.workdays import WorkCalendar
from signaling.events import (
    Event,
    SessionCancelled,
    SessionClosed,
    SessionOpened,
    SessionPostponed,
    SessionPublished,
    SessionRescheduled,
    SessionStarted,
    VenueInfo,
)
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from . import queue as pure_queue
from . import session_state as machine
from ._clock import check_not_before
from ._service import Clock, audit, check_slug, now_of, require_grant
from .call_order import TicketStatus
from .errors import (
    CaseInProgress,
    ConcurrentChange,
    IllegalTransition,
    InvalidArgument,
    SessionExists,
    UnknownSession,
    UnknownVenue,
    VenueInUse,
)
from .queue_store import claim_queue, load_queue_state, save_queue_state
from .session_hours import DEFAULT_CLOSES_AT, DEFAULT_OPENS_AT, SessionHours
from .session_state import ReceptionSession, SessionAction, SessionReason, SessionState, SessionStep
from .tables import queue_tickets, reception_sessions, session_cohosts, session_queues, session_venues, venues
from .venues import VenueDraft

__all__ = [
    "MAX_COHOSTS",
    "MAX_SESSION_VENUES",
    "SessionRecord",
    "SessionVenue",
    "VenueChoice",
    "cancel_session",
    "close_session",
    "get_session",
    "live_sessions",
    "open_session",
    "plan_session",
    "postpone_session",
    "publish_session",
    "reschedule_session",
    "sessions_between",
    "set_session_venues",
    "start_session",
]

#: Venues one session may carry (the room pages them; about 16 publish at once, ARCHITECTURE §1).
MAX_SESSION_VENUES = 64
MAX_COHOSTS = 8
_MAX_TITLE = 200
#: Sessions of a leader are periodic or ad hoc (ReceptionType.ROUTINE is the reception office's daily work).
_SESSION_KINDS = frozenset({ReceptionType.PERIODIC, ReceptionType.AD_HOC})


#: Leader ids (position slugs) that name a Party office: their sessions default to the Party track.
_PARTY_MARKERS = ("bi-thu", "tinh-uy", "dang-uy", "thanh-uy", "huyen-uy", "ban-noi-chinh", "ubkt")


def default_track(host: str | None) -> IssuingTrack:
    """The track a session planned for ``host`` gets unless the planner chooses: a host whose id names a Party
    office, or no host named yet, is the Party track (the product's first use: the Provincial Party
    Secretary's sessions, organised by Ban Nội chính); any other host (``chu-tich-ubnd-tinh``) the State one."""
    if host is None or any(marker in host.lower() for marker in _PARTY_MARKERS):
        return IssuingTrack.PARTY
    return IssuingTrack.STATE


@dataclass(frozen=True, slots=True)
class VenueChoice:
    """A venue picked for a session: its id, the name to announce (default: the venue's) and the
    session's cap for it (default: the venue's own)."""

    venue: str
    name: str | None = None
    max_kbps: int | None = None


@dataclass(frozen=True, slots=True)
class SessionVenue:
    venue: str
    name: str
    main: bool
    max_kbps: int | None          # the session's own cap
    venue_max_kbps: int | None    # the venue's cap

    @property
    def effective_kbps(self) -> int | None:
        return self.max_kbps if self.max_kbps is not None else self.venue_max_kbps

    def info(self) -> VenueInfo:
        return VenueInfo(venue=self.venue, name=self.name, main=self.main, max_kbps=self.effective_kbps)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as stored: the state machine's view plus what the database adds."""

    session: ReceptionSession
    version: int
    host: str | None
    title: str
    cohosts: tuple[str, ...] = ()
    track: IssuingTrack = IssuingTrack.PARTY   # the bodies that issue its documents (chosen when planned)
    venues: tuple[SessionVenue, ...] = ()
    rule_key: str | None = None
    nominal_day: date | None = None
    created_at: datetime | None = None
    published_at: datetime | None = None
    opened_at: datetime | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    opens_at: time = DEFAULT_OPENS_AT     # the room opens (local time of ``day``, schedules.session_hours)
    closes_at: time = DEFAULT_CLOSES_AT   # the planned end (a case being heard then is not cut)
    events: tuple[Event, ...] = field(default=(), compare=False)  # what the call that returned it emitted

    @property
    def id(self) -> str:
        return self.session.session_id

    @property
    def state(self) -> SessionState:
        return self.session.state

    @property
    def day(self) -> date:
        return self.session.day

    @property
    def main_venue(self) -> SessionVenue | None:
        return next((v for v in self.venues if v.main), None)

    @property
    def hours(self) -> SessionHours:
        return SessionHours(opens_at=self.opens_at, closes_at=self.closes_at)


# -- reads ----------------------------------------------------------------------------------------------------


def _record(row: RowMapping, cohosts: Sequence[str], chosen: Sequence[SessionVenue]) -> SessionRecord:
    session = ReceptionSession(
        session_id=row["id"], day=row["day"], form=ReceptionForm.parse(row["form"]),
        kind=ReceptionType.parse(row["kind"]), state=SessionState.parse(row["state"]), changed_at=row["changed_at"],
        reason=SessionReason.parse(row["reason"]) if row["reason"] else None, reason_note=row["reason_note"],
        publish_override=row["publish_override"],
    )
    return SessionRecord(
        session=session, version=row["version"], host=row["host"], title=row["title"], cohosts=tuple(cohosts),
        track=IssuingTrack.parse(row["track"]), venues=tuple(chosen), rule_key=row["rule_key"],
        nominal_day=row["nominal_day"],
        created_at=row["created_at"], published_at=row["published_at"], opened_at=row["opened_at"],
        started_at=row["started_at"], closed_at=row["closed_at"], opens_at=_time_of_day(row["opens_at"]),
        closes_at=_time_of_day(row["closes_at"]),
    )


def _time_of_day(value: time) -> time:
    """A stored time of day as written (PostgreSQL and SQLite both return ``time``; no zone, no seconds)."""
    return value.replace(second=0, microsecond=0, tzinfo=None)


def _session_venue(row: Any) -> SessionVenue:
    """(venue id, name as announced, main, session cap, venue cap)."""
    return SessionVenue(venue=row[0], name=row[1], main=bool(row[2]), max_kbps=row[3], venue_max_kbps=row[4])


async def get_session(conn: AsyncConnection, session_id: str) -> SessionRecord:
    row = (await conn.execute(select(reception_sessions).where(reception_sessions.c.id == session_id))
           ).mappings().first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    cohosts = (await conn.execute(select(session_cohosts.c.leader).where(session_cohosts.c.session_id == session_id)
                                  .order_by(session_cohosts.c.position))).scalars().all()
    chosen = (await conn.execute(
        select(session_venues.c.venue_id, session_venues.c.name, session_venues.c.main, session_venues.c.max_kbps,
               venues.c.max_kbps)
        .join(venues, venues.c.id == session_venues.c.venue_id)
        .where(session_venues.c.session_id == session_id).order_by(session_venues.c.position))).all()
    return _record(row, cohosts, [_session_venue(r) for r in chosen])


async def sessions_between(conn: AsyncConnection, start: date, end: date, *,
                           leader: str | None = None) -> tuple[SessionRecord, ...]:
    """Sessions whose day is in ``start``–``end`` (inclusive) in date order; with ``leader``, those
    that leader hosts or co-hosts."""
    query = select(reception_sessions.c.id).where(reception_sessions.c.day >= start, reception_sessions.c.day <= end)
    if leader is not None:
        cohosted = select(session_cohosts.c.session_id).where(session_cohosts.c.leader == leader)
        query = query.where((reception_sessions.c.host == leader) | reception_sessions.c.id.in_(cohosted))
    ids = (await conn.execute(query.order_by(reception_sessions.c.day, reception_sessions.c.id))).scalars().all()
    return tuple([await get_session(conn, session_id) for session_id in ids])


#: The states in which a session's live room is open (roll call, then receiving citizens).
LIVE_STATES = (SessionState.OPEN, SessionState.IN_PROGRESS)


async def live_sessions(conn: AsyncConnection) -> tuple[SessionRecord, ...]:
    """The sessions whose live room is open (state open or in progress), the earliest opened first: what
    the console lists on every process, whichever media node serves the room."""
    ids = (await conn.execute(
        select(reception_sessions.c.id).where(reception_sessions.c.state.in_([s.value for s in LIVE_STATES]))
        .order_by(reception_sessions.c.opened_at, reception_sessions.c.id))).scalars().all()
    return tuple([await get_session(conn, session_id) for session_id in ids])


# -- planning -------------------------------------------------------------------------------------------------


def _leaders(host: str | None, cohosts: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    if host is not None:
        check_slug(host, "Mã người chủ trì", code="bad_leader")
    listed = tuple(dict.fromkeys(check_slug(c, "Mã người đồng chủ trì", code="bad_leader") for c in cohosts))
    if len(listed) > MAX_COHOSTS:
        raise InvalidArgument(f"Tối đa {MAX_COHOSTS} người đồng chủ trì.", code="too_many_cohosts")
    if host is not None and host in listed:
        raise InvalidArgument("Người chủ trì không đồng thời là người đồng chủ trì.", code="bad_leader")
    return host, listed


async def _chosen_venues(conn: AsyncConnection, choices: Sequence[VenueChoice],
                         main: str | None) -> list[SessionVenue]:
    """Check the venues of a session: known, active, each once, at most 64, one main (``main`` or the
    first); names and caps as chosen or the venue's."""
    if not choices:
        raise InvalidArgument("Phiên tiếp công dân cần ít nhất một điểm cầu.", code="no_venues")
    if len(choices) > MAX_SESSION_VENUES:
        raise InvalidArgument(f"Tối đa {MAX_SESSION_VENUES} điểm cầu trong một phiên.", code="too_many_venues")
    ids = [c.venue for c in choices]
    if len(set(ids)) != len(ids):
        raise InvalidArgument("Một điểm cầu được chọn hai lần.", code="duplicate_venue")
    chosen_main = main if main is not None else ids[0]
    if chosen_main not in ids:
        raise InvalidArgument(f"Điểm cầu chính «{chosen_main}» không có trong danh sách điểm cầu của phiên.",
                              code="main_not_in_session")
    rows = {r.id: r for r in (await conn.execute(select(venues.c.id, venues.c.name, venues.c.active,
                                                        venues.c.max_kbps).where(venues.c.id.in_(ids)))).all()}
    result: list[SessionVenue] = []
    for choice in choices:
        row = rows.get(choice.venue)
        if row is None:
            raise UnknownVenue(f"Không có điểm cầu «{choice.venue}».")
        if not row.active:
            raise InvalidArgument(f"Điểm cầu «{choice.venue}» đã ngừng hoạt động.", code="venue_inactive")
        checked = VenueDraft(id=choice.venue, name=choice.name if choice.name is not None else row.name,
                             max_kbps=choice.max_kbps).checked()
        result.append(SessionVenue(venue=choice.venue, name=checked.name, main=choice.venue == chosen_main,
                                   max_kbps=checked.max_kbps, venue_max_kbps=row.max_kbps))
    return result


async def _write_venues(conn: AsyncConnection, session_id: str, chosen: Sequence[SessionVenue]) -> None:
    await conn.execute(insert(session_venues), [
        {"session_id": session_id, "venue_id": v.venue, "position": i, "name": v.name, "main": v.main,
         "max_kbps": v.max_kbps} for i, v in enumerate(chosen)])


async def plan_session(
    conn: AsyncConnection, *, session_id: str, day: date, form: ReceptionForm, kind: ReceptionType,
    venues_chosen: Sequence[VenueChoice], main: str | None = None, host: str | None = None,
    cohosts: Sequence[str] = (), title: str = "", rule_key: str | None = None, nominal_day: date | None = None,
    opens_at: time = DEFAULT_OPENS_AT, closes_at: time = DEFAULT_CLOSES_AT, track: IssuingTrack | str | None = None,
    actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Plan a session (grant ``manage``): its id (the room id), day (today or later), form, kind,
    venues (the first is the main one unless ``main`` says), host and co-hosts (leader ids), the track whose
    bodies issue its documents (default: :func:`default_track` of the host), hours
    (``opens_at`` / ``closes_at``, local times: :class:`~schedules.session_hours.SessionHours`, default
    07:30–11:30; :class:`~schedules.errors.InvalidSessionHours` when unusable). Creates its empty queue.
    :class:`SessionExists` when the id (or the rule's date) is taken."""
    require_grant(grants, Grant.MANAGE, "lập lịch tiếp công dân")
    check_slug(session_id, "Mã phiên", code="bad_session_id")
    hours = SessionHours(opens_at=opens_at, closes_at=closes_at)
    kind = ReceptionType.parse(kind)
    if kind not in _SESSION_KINDS:
        raise InvalidArgument("Phiên tiếp công dân của lãnh đạo là định kỳ hoặc đột xuất.", code="bad_kind")
    host, listed = _leaders(host, cohosts)
    chosen_track = default_track(host) if track is None or track == "" else IssuingTrack.parse(track)
    title = " ".join(title.split()) if isinstance(title, str) else ""
    if len(title) > _MAX_TITLE:
        raise InvalidArgument(f"Tên phiên dài quá {_MAX_TITLE} ký tự.", code="text_too_long")
    if rule_key is not None:
        check_slug(rule_key, "Mã lịch định kỳ", code="bad_rule_key")
    chosen = await _chosen_venues(conn, venues_chosen, main)
    now = now_of(clock)
    session = ReceptionSession.plan(session_id, day, form=ReceptionForm.parse(form), kind=kind, now=now)
    try:
        async with conn.begin_nested():
            await conn.execute(insert(reception_sessions).values(
                id=session_id, day=day, form=session.form.value, kind=kind.value, host=host, title=title,
                track=chosen_track.value, state=session.state.value, reason=None, reason_note="", publish_override="",
                rule_key=rule_key,
                nominal_day=nominal_day, version=1, created_by=actor, created_at=now, changed_at=now,
                opens_at=hours.opens_at, closes_at=hours.closes_at))
    except IntegrityError as exc:
        raise SessionExists(f"Phiên «{session_id}» (hoặc phiên của lịch này vào ngày đó) đã có.") from exc
    if listed:
        await conn.execute(insert(session_cohosts), [
            {"session_id": session_id, "leader": leader, "position": i} for i, leader in enumerate(listed)])
    await _write_venues(conn, session_id, chosen)
    await conn.execute(insert(session_queues).values(
        session_id=session_id, last_ticket_no=0, call_seq=0, current_ticket_no=None, paused=False, pause_no=0,
        requeue_seq=0, unavailable_venues=[], closed=False, changed_at=now, version=1))
    await audit(conn, actor=actor, action="session.planned", target_kind="session", target_id=session_id, at=now,
                detail={"day": day.isoformat(), "opens_at": f"{hours.opens_at:%H:%M}",
                        "closes_at": f"{hours.closes_at:%H:%M}", "form": session.form.value, "kind": kind.value,
                        "host": host, "track": chosen_track.value,
                        "venues": [v.venue for v in chosen], "rule_key": rule_key})
    return await get_session(conn, session_id)


async def _claim(conn: AsyncConnection, session_id: str, expected_version: int | None) -> SessionRecord:
    """Take the session row (lock), then read it; refuse a stale ``expected_version``."""
    claimed = await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                                 .values(version=reception_sessions.c.version))
    if claimed.rowcount != 1:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    record = await get_session(conn, session_id)
    if expected_version is not None and record.version != expected_version:
        raise ConcurrentChange(
            f"Phiên «{session_id}» đã được người khác thay đổi (phiên bản {record.version}, bạn đang xem phiên bản "
            f"{expected_version}); hãy tải lại.", current=record.version, expected=expected_version)
    return record


async def set_session_venues(
    conn: AsyncConnection, session_id: str, *, venues_chosen: Sequence[VenueChoice], main: str | None = None,
    expected_version: int | None = None, actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Replace the venues of a session not opened yet (planned or published; grant ``manage``). A venue
    that already has tickets cannot leave (:class:`VenueInUse`)."""
    require_grant(grants, Grant.MANAGE, "lập lịch tiếp công dân")
    record = await _claim(conn, session_id, expected_version)
    if record.state not in (SessionState.PLANNED, SessionState.PUBLISHED):
        raise IllegalTransition(
            f"Chỉ đổi điểm cầu của phiên chưa mở; phiên đang ở trạng thái «{record.state.label_vi}».",
            from_state=record.state.value, action="set_venues", to_state=record.state.value)
    chosen = await _chosen_venues(conn, venues_chosen, main)
    leaving = {v.venue for v in record.venues} - {v.venue for v in chosen}
    if leaving:
        ticketed = (await conn.execute(select(queue_tickets.c.venue_id).distinct().where(
            queue_tickets.c.session_id == session_id, queue_tickets.c.venue_id.in_(leaving)))).scalars().all()
        if ticketed:
            raise VenueInUse(f"Điểm cầu {', '.join(sorted(ticketed))} đã có phiếu số thứ tự trong phiên; "
                             "không bỏ được.")
    now = now_of(clock)
    check_not_before(record.session.changed_at, now)
    await conn.execute(delete(session_venues).where(session_venues.c.session_id == session_id))
    await _write_venues(conn, session_id, chosen)
    await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                       .values(version=record.version + 1, changed_at=now))
    await audit(conn, actor=actor, action="session.venues_set", target_kind="session", target_id=session_id, at=now,
                detail={"venues": [v.venue for v in chosen], "version": record.version + 1})
    return await get_session(conn, session_id)


# -- transitions ----------------------------------------------------------------------------------------------

_STAMP = {
    SessionAction.PUBLISH: "published_at",
    SessionAction.OPEN: "opened_at",
    SessionAction.START: "started_at",
    SessionAction.CLOSE: "closed_at",
    SessionAction.CANCEL: "closed_at",
}
_GRANT = {
    SessionAction.PUBLISH: Grant.MANAGE,
    SessionAction.OPEN: Grant.CALL_QUEUE,
    SessionAction.START: Grant.CALL_QUEUE,
    SessionAction.CLOSE: Grant.CALL_QUEUE,
    SessionAction.POSTPONE: Grant.MANAGE,
    SessionAction.CANCEL: Grant.MANAGE,
    SessionAction.RESCHEDULE: Grant.MANAGE,
}


def _event(step: SessionStep, record: SessionRecord, version: int, actor: str, *, not_reached: int = 0) -> Event:
    """The bus event of one transition (see the module docstring)."""
    new = step.session
    common = {"session": new.session_id, "session_version": version, "by": actor, "day": new.day,
              "form": new.form.value, "kind": new.kind.value, "host": record.host, "occurred_at": step.event.at}
    action = step.event.action
    reason = step.event.reason.value if step.event.reason is not None else ""
    if action is SessionAction.PUBLISH:
        return SessionPublished(**common, late=bool(step.event.override_reason))
    if action is SessionAction.OPEN:
        return SessionOpened(**common, venues=tuple(v.info() for v in record.venues))
    if action is SessionAction.START:
        return SessionStarted(**common)
    if action is SessionAction.CLOSE:
        return SessionClosed(**common, not_reached=not_reached)
    if action is SessionAction.POSTPONE:
        return SessionPostponed(**common, reason=reason)
    if action is SessionAction.CANCEL:
        return SessionCancelled(**common, reason=reason)
    return SessionRescheduled(**common, previous_day=step.event.previous_day)


async def _close_queue(conn: AsyncConnection, session_id: str, actor: str, now: datetime) -> int:
    """Close the queue (its row already taken by :func:`_transition`); the number of tickets not reached
    (waiting or deferred: they stay as they are, on record)."""
    state, version = await load_queue_state(conn, session_id)
    not_reached = sum(1 for t in state.tickets if t.status in (TicketStatus.WAITING, TicketStatus.DEFERRED))
    if state.closed:
        return not_reached
    try:
        step = pure_queue.close(state, actor=actor, now=now)
    except CaseInProgress as exc:
        raise CaseInProgress(f"{exc.message_vi} Chưa thể kết thúc phiên.") from exc
    await save_queue_state(conn, state, step.state, version=version, now=now)
    return not_reached


async def _transition(
    conn: AsyncConnection, session_id: str, action: SessionAction, apply: Callable[[ReceptionSession, datetime],
                                                                                  SessionStep],
    *, expected_version: int | None, actor: str, grants: Collection[Grant], clock: Clock,
    hours: Callable[[SessionRecord], SessionHours] | None = None,
) -> SessionRecord:
    require_grant(grants, _GRANT[action], f"«{action.label_vi}»")
    record = await _claim(conn, session_id, expected_version)
    new_hours = hours(record) if hours is not None else None
    if action in (SessionAction.CLOSE, SessionAction.CANCEL):
        # The queue row too, after the session row and before the clock is read (queue actions take only
        # the queue row and read the session's state): a "call next" racing the close either committed
        # first (the close then sees its case in progress) or waits and then finds the session closed.
        await claim_queue(conn, session_id)
    now = now_of(clock)
    step = apply(record.session, now)
    new = step.session
    version = record.version + 1
    values: dict[str, object] = {
        "state": new.state.value, "day": new.day, "reason": new.reason.value if new.reason else None,
        "reason_note": new.reason_note, "publish_override": new.publish_override, "changed_at": now,
        "version": version,
    }
    if action in _STAMP:
        values[_STAMP[action]] = now
    if new_hours is not None:
        values["opens_at"], values["closes_at"] = new_hours.opens_at, new_hours.closes_at
    not_reached = 0
    if action in (SessionAction.CLOSE, SessionAction.CANCEL):
        not_reached = await _close_queue(conn, session_id, actor, now)
    await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id,
                                                        reception_sessions.c.version == record.version)
                       .values(**values))
    event = _event(step, record, version, actor, not_reached=not_reached)
    await add_to_outbox(conn, event)
    detail: dict[str, object] = {"from": step.event.from_state.value, "to": step.event.to_state.value,
                                 "version": version}
    if step.event.reason is not None:
        detail["reason"] = step.event.reason.value
    if step.event.working_days_left is not None:
        detail["working_days_left"] = step.event.working_days_left
        detail["late"] = bool(step.event.override_reason)
    if step.event.previous_day is not None:
        detail["previous_day"] = step.event.previous_day.isoformat()
        detail["day"] = new.day.isoformat()
    if new_hours is not None:
        detail["opens_at"], detail["closes_at"] = f"{new_hours.opens_at:%H:%M}", f"{new_hours.closes_at:%H:%M}"
    await audit(conn, actor=actor, action=f"session.{action.value}", target_kind="session", target_id=session_id,
                at=now, detail=detail)
    return replace(await get_session(conn, session_id), events=(event,))


async def publish_session(
    conn: AsyncConnection, session_id: str, *, calendar: WorkCalendar, override_reason: str | None = None,
    expected_version: int | None = None, actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Publish (LTCD Điều 24: 5 working days ahead, else a written ``override_reason``)."""
    return await _transition(
        conn, session_id, SessionAction.PUBLISH,
        lambda s, now: machine.publish(s, actor=actor, now=now, calendar=calendar, override_reason=override_reason),
        expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def open_session(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                       grants: Collection[Grant], clock: Clock) -> SessionRecord:
    """Open the live room for the roll call (on the session day); ``session.opened`` names the venues."""
    return await _transition(conn, session_id, SessionAction.OPEN,
                             lambda s, now: machine.open_session(s, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def start_session(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                        grants: Collection[Grant], clock: Clock) -> SessionRecord:
    """The chair starts receiving citizens: queue actions are allowed from now on."""
    return await _transition(conn, session_id, SessionAction.START,
                             lambda s, now: machine.start(s, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def close_session(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                        grants: Collection[Grant], clock: Clock) -> SessionRecord:
    """End the session and close its queue (refused while a case is being received or paused)."""
    return await _transition(conn, session_id, SessionAction.CLOSE,
                             lambda s, now: machine.close(s, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def postpone_session(
    conn: AsyncConnection, session_id: str, *, reason: SessionReason, note: str = "",
    expected_version: int | None = None, actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Postpone with a reason code (``other`` needs a note); the tickets wait for the new date."""
    return await _transition(conn, session_id, SessionAction.POSTPONE,
                             lambda s, now: machine.postpone(s, reason=reason, note=note, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def cancel_session(
    conn: AsyncConnection, session_id: str, *, reason: SessionReason, note: str = "",
    expected_version: int | None = None, actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Cancel with a reason code (``other`` needs a note); the queue closes."""
    return await _transition(conn, session_id, SessionAction.CANCEL,
                             lambda s, now: machine.cancel(s, reason=reason, note=note, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def reschedule_session(
    conn: AsyncConnection, session_id: str, *, day: date, opens_at: time | None = None,
    closes_at: time | None = None, expected_version: int | None = None, actor: str, grants: Collection[Grant],
    clock: Clock,
) -> SessionRecord:
    """Give a postponed session a new day; it is planned again and must be published again. Its hours
    stay as they were unless ``opens_at`` / ``closes_at`` are given (checked as in :func:`plan_session`)."""

    def hours(record: SessionRecord) -> SessionHours:
        return SessionHours(opens_at=record.opens_at if opens_at is None else opens_at,
                            closes_at=record.closes_at if closes_at is None else closes_at)

    return await _transition(conn, session_id, SessionAction.RESCHEDULE,
                             lambda s, now: machine.reschedule(s, day=day, actor=actor, now=now),
                             expected_version=expected_version, actor=actor, grants=grants, clock=clock,
                             hours=hours)
