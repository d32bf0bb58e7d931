"""Planning a session before it opens: the cases the chair pre-selected, the host and co-hosts.

* **Pre-selected cases** (domain.md §3 step 2: "pre-selected from pending cases"; Phú Thọ's Secretary
  session handled one named case): :func:`select_cases` replaces the session's selection, in order, by
  case id or tracking code (mã tra cứu). It writes the rows, the audit row and ``session.cases_selected``
  (outbox) in the caller's transaction and raises the session's version, so a page showing an older
  version gets :class:`~schedules.errors.ConcurrentChange` instead of overwriting a newer choice. A
  ticket issued later for a selected case of that session carries the priority ground
  ``chair_selected`` (:mod:`schedules.tickets`); tickets issued before the choice keep theirs.
* **Host and co-hosts**: :func:`set_session_leaders` changes them before the session opens (an audit
  row and a new version; like the venues, a plan announces nothing until it is published).
* **Hours**: :func:`set_session_hours` changes ``opens_at`` / ``closes_at`` of a session not published
  yet (:class:`~schedules.session_hours.SessionHours` checks them). Once published, the hours are public
  and the timekeeper acts on them: they change only with a postponement and a new date
  (:func:`schedules.sessions.reschedule_session`).

Both need the grant ``manage`` (the reception board enters the plan, the chair's choice included: the
same grant :func:`schedules.sessions.plan_session` and ``publish_session`` demand).

:data:`MAX_LIVE_VENUES` is the number of venues the planning page lets a session carry: the room is
designed for 16 publishing at once (ARCHITECTURE §1); :func:`check_live_venues` refuses more.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import time

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import IssuingTrack, PetitionKind
from complaints.tables import cases
from signaling.events import SessionCasesSelected
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ._clock import check_not_before
from ._service import Clock, audit, now_of, require_grant
from .errors import IllegalTransition, InvalidArgument, UnknownCase
from .session_hours import SessionHours
from .session_state import SessionState
from .sessions import SessionRecord, VenueChoice, _claim, _leaders, get_session
from .tables import reception_sessions, session_cohosts, session_selected_cases

__all__ = [
    "MAX_LIVE_VENUES",
    "MAX_SELECTED_CASES",
    "SELECTABLE_STATES",
    "SelectedCase",
    "check_live_venues",
    "known_leaders",
    "select_cases",
    "selected_case_ids",
    "selected_cases",
    "set_session_hours",
    "set_session_leaders",
]

#: Venues a planned session may carry on the planning page (about 16 publish at once, ARCHITECTURE §1).
MAX_LIVE_VENUES = 16
#: Cases the chair may pre-select for one session (a session hears a few dozen at most).
MAX_SELECTED_CASES = 30
#: The selection changes until the session starts receiving citizens (a postponed one keeps it).
SELECTABLE_STATES = frozenset({SessionState.PLANNED, SessionState.PUBLISHED, SessionState.OPEN,
                               SessionState.POSTPONED})
#: Host and co-hosts change until the session opens.
_LEADER_STATES = frozenset({SessionState.PLANNED, SessionState.PUBLISHED, SessionState.POSTPONED})
_MAX_REF = 64


@dataclass(frozen=True, slots=True)
class SelectedCase:
    """One pre-selected case as the planning page shows it. A confidential case (a denunciation) shows
    its tracking code and kind only: its ``summary`` is empty here."""

    case_id: str
    tracking_code: str
    kind: PetitionKind
    confidential: bool
    summary: str
    position: int


def check_live_venues(choices: Sequence[VenueChoice]) -> None:
    """Refuse more than :data:`MAX_LIVE_VENUES` venues for one session."""
    if len(choices) > MAX_LIVE_VENUES:
        raise InvalidArgument(f"Một phiên có tối đa {MAX_LIVE_VENUES} điểm cầu trực tuyến; đã chọn {len(choices)}.",
                              code="too_many_venues")


# -- reads ----------------------------------------------------------------------------------------------------


async def selected_cases(conn: AsyncConnection, session_id: str) -> tuple[SelectedCase, ...]:
    """The session's pre-selected cases in order."""
    rows = (await conn.execute(
        select(cases.c.id, cases.c.tracking_code, cases.c.kind, cases.c.confidential, cases.c.summary,
               session_selected_cases.c.position)
        .join(cases, cases.c.id == session_selected_cases.c.case_id)
        .where(session_selected_cases.c.session_id == session_id)
        .order_by(session_selected_cases.c.position))).all()
    return tuple(SelectedCase(case_id=r[0], tracking_code=r[1], kind=PetitionKind.parse(r[2]),
                              confidential=bool(r[3]), summary="" if r[3] else str(r[4] or ""), position=r[5])
                 for r in rows)


async def selected_case_ids(conn: AsyncConnection, session_id: str) -> frozenset[str]:
    return frozenset((await conn.execute(select(session_selected_cases.c.case_id)
                                         .where(session_selected_cases.c.session_id == session_id))).scalars().all())


async def known_leaders(conn: AsyncConnection) -> tuple[str, ...]:
    """Every leader id that hosts or co-hosts a session, sorted."""
    hosts = (await conn.execute(select(reception_sessions.c.host).distinct()
                                .where(reception_sessions.c.host.is_not(None)))).scalars().all()
    cohosts = (await conn.execute(select(session_cohosts.c.leader).distinct())).scalars().all()
    return tuple(sorted({*hosts, *cohosts}))


# -- writes ---------------------------------------------------------------------------------------------------


def _refs(values: Sequence[str]) -> list[str]:
    refs = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if len(refs) > MAX_SELECTED_CASES:
        raise InvalidArgument(f"Tối đa {MAX_SELECTED_CASES} vụ việc chọn trước cho một phiên.",
                              code="too_many_cases")
    for ref in refs:
        if len(ref) > _MAX_REF or not ref.isprintable():
            raise InvalidArgument("Mã vụ việc không hợp lệ.", code="bad_case_ref")
    if len(set(refs)) != len(refs):
        raise InvalidArgument("Một vụ việc được chọn hai lần.", code="duplicate_case")
    return refs


async def select_cases(
    conn: AsyncConnection, session_id: str, *, cases_chosen: Sequence[str], expected_version: int | None = None,
    actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Replace the cases pre-selected for ``session_id`` by ``cases_chosen`` (case ids or tracking codes,
    in order; empty clears the selection). See the module docstring.

    Refusals: :class:`NotPermitted`, :class:`InvalidArgument` (too many, twice, malformed),
    :class:`UnknownSession`, :class:`ConcurrentChange`, :class:`IllegalTransition` (in progress, closed,
    cancelled), :class:`UnknownCase` (no case with that id or tracking code)."""
    require_grant(grants, Grant.MANAGE, "chọn trước vụ việc cho phiên tiếp công dân")
    refs = _refs(cases_chosen)
    record = await _claim(conn, session_id, expected_version)
    if record.state not in SELECTABLE_STATES:
        raise IllegalTransition(
            f"Chỉ chọn trước vụ việc khi phiên chưa bắt đầu tiếp công dân; phiên đang ở trạng thái "
            f"«{record.state.label_vi}».", from_state=record.state.value, action="select_cases",
            to_state=record.state.value)
    found: dict[str, str] = {}
    if refs:
        rows = (await conn.execute(select(cases.c.id, cases.c.tracking_code).where(
            or_(cases.c.id.in_(refs), cases.c.tracking_code.in_(refs))))).all()
        for case_id, code in rows:
            found[case_id] = case_id
            found[code] = case_id
    ids: list[str] = []
    for ref in refs:
        if ref not in found:
            raise UnknownCase(f"Không tìm thấy vụ việc có mã «{ref}».")
        ids.append(found[ref])
    if len(set(ids)) != len(ids):
        raise InvalidArgument("Một vụ việc được chọn hai lần (mã vụ việc và mã tra cứu của cùng vụ việc).",
                              code="duplicate_case")
    now = now_of(clock)
    check_not_before(record.session.changed_at, now)
    version = record.version + 1
    await conn.execute(delete(session_selected_cases).where(session_selected_cases.c.session_id == session_id))
    if ids:
        await conn.execute(insert(session_selected_cases), [
            {"session_id": session_id, "case_id": case_id, "position": i, "selected_by": actor, "selected_at": now}
            for i, case_id in enumerate(ids)])
    await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                       .values(version=version, changed_at=now))
    session = record.session
    event = SessionCasesSelected(session=session_id, session_version=version, by=actor, day=session.day,
                                 form=session.form.value, kind=session.kind.value, host=record.host,
                                 cases=tuple(ids), occurred_at=now)
    await add_to_outbox(conn, event)
    await audit(conn, actor=actor, action="session.cases_selected", target_kind="session", target_id=session_id,
                at=now, detail={"cases": ids, "version": version})
    return replace(await get_session(conn, session_id), events=(event,))


async def set_session_leaders(
    conn: AsyncConnection, session_id: str, *, host: str | None, cohosts: Sequence[str] = (),
    track: IssuingTrack | str | None = None, expected_version: int | None = None, actor: str,
    grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Change the host and co-hosts (leader ids) of a session not opened yet (grant ``manage``), and the track
    whose bodies issue its documents (None: kept as it is)."""
    require_grant(grants, Grant.MANAGE, "lập lịch tiếp công dân")
    host, listed = _leaders(host, cohosts)
    chosen_track = IssuingTrack.parse(track) if track else None
    record = await _claim(conn, session_id, expected_version)
    if record.state not in _LEADER_STATES:
        raise IllegalTransition(
            f"Chỉ đổi người chủ trì của phiên chưa mở; phiên đang ở trạng thái «{record.state.label_vi}».",
            from_state=record.state.value, action="set_leaders", to_state=record.state.value)
    now = now_of(clock)
    check_not_before(record.session.changed_at, now)
    version = record.version + 1
    await conn.execute(delete(session_cohosts).where(session_cohosts.c.session_id == session_id))
    if listed:
        await conn.execute(insert(session_cohosts), [
            {"session_id": session_id, "leader": leader, "position": i} for i, leader in enumerate(listed)])
    track_value = (chosen_track or record.track).value
    await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                       .values(host=host, track=track_value, version=version, changed_at=now))
    await audit(conn, actor=actor, action="session.leaders_set", target_kind="session", target_id=session_id,
                at=now, detail={"host": host, "cohosts": list(listed), "track": track_value, "version": version})
    return await get_session(conn, session_id)


async def set_session_hours(
    conn: AsyncConnection, session_id: str, *, opens_at: time, closes_at: time, expected_version: int | None = None,
    actor: str, grants: Collection[Grant], clock: Clock,
) -> SessionRecord:
    """Change the hours of a session still planned (grant ``manage``; see the module docstring)."""
    require_grant(grants, Grant.MANAGE, "lập lịch tiếp công dân")
    hours = SessionHours(opens_at=opens_at, closes_at=closes_at)
    record = await _claim(conn, session_id, expected_version)
    if record.state is not SessionState.PLANNED:
        raise IllegalTransition(
            f"Chỉ đổi giờ tiếp của phiên chưa công bố; phiên đang ở trạng thái «{record.state.label_vi}». "
            "Muốn đổi giờ phiên đã công bố, hãy hoãn rồi xếp lịch lại.",
            from_state=record.state.value, action="set_hours", to_state=record.state.value)
    now = now_of(clock)
    check_not_before(record.session.changed_at, now)
    version = record.version + 1
    await conn.execute(update(reception_sessions).where(reception_sessions.c.id == session_id)
                       .values(opens_at=hours.opens_at, closes_at=hours.closes_at, version=version, changed_at=now))
    await audit(conn, actor=actor, action="session.hours_set", target_kind="session", target_id=session_id, at=now,
                detail={"opens_at": f"{hours.opens_at:%H:%M}", "closes_at": f"{hours.closes_at:%H:%M}",
                        "version": version})
    return await get_session(conn, session_id)
