"""The life of one reception session (phiên tiếp công dân), as a pure state machine.

Theory of operation
-------------------
States (:class:`SessionState`) and the actions that move between them (:class:`SessionAction`)::

    planned ──publish──► published ──open──► open ──start──► in_progress ──close──► closed
       │                    │                 │
       ├──postpone──────────┴─────────────────┴──► postponed ──reschedule──► planned (new date)
       └──cancel (also from published, open, postponed) ──► cancelled

* **plan** (:meth:`ReceptionSession.plan`): the reception board enters a date from a calendar rule
  (:mod:`schedules.calendar`), the form — trực tiếp (in person) or trực tuyến (online, Luật
  136/2025/QH15 Điều 3a) — and the kind (định kỳ / đột xuất). Not in the past.
* **publish**: the schedule, the attending agencies and the focus content are made public. LTCD Điều
  24 requires that no later than 5 working days before the session: publishing is refused when fewer
  than :data:`PUBLISH_LEAD_WORKING_DAYS` working days (counted on the
  :class:`~complaints.workdays.WorkCalendar`, the publication day itself not counted) remain, unless
  the caller gives a written reason (``override_reason``, kept in the session and in the event). A
  session whose date has passed cannot be published at all.
* **open**: on the session day, the room opens for the venues' roll call (only on that day).
* **start** / **close**: the chair starts receiving citizens, then closes the session.
* **postpone** / **cancel**: with a reason code (:class:`SessionReason`); ``OTHER`` needs a note.
  A session in progress is not postponed: it is closed, and the queue keeps the tickets not reached.
* **reschedule**: a postponed session gets a new date and is planned again (it must be published
  again, under the same 5-working-day rule).

Who triggers what is the console's business (grants ``manage`` for plan, publish, postpone, cancel,
reschedule; ``call_queue`` for open, start, close); this module records the actor id it is given.

Each action is a function ``(session, …, actor, now) -> SessionStep``: the new session and the
:class:`SessionEvent` to emit (its ``action`` names the transition; the driver maps it onto the bus
events SessionPublished / Opened / Started / Closed / Postponed and writes the audit row). An action
not allowed from the current state raises :class:`~schedules.errors.IllegalTransition` naming both
states. ``now`` must be timezone-aware and not earlier than the session's last transition
(:class:`~schedules.errors.ClockWentBackwards`). Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from types import MappingProxyType

from complaints.enums import LabelledEnum, ReceptionForm, ReceptionType
from complaints.workdays import WorkCalendar

from ._clock import check_not_before, local_day, require_actor
from .errors import (
    IllegalTransition,
    InvalidArgument,
    MissingReason,
    PublishTooLate,
    SessionDatePassed,
    SessionNotToday,
)

__all__ = [
    "ACTION_TARGETS",
    "ALLOWED_FROM",
    "MIN_OVERRIDE_REASON_CHARS",
    "PUBLISH_LEAD_WORKING_DAYS",
    "TRANSITIONS",
    "ReceptionSession",
    "SessionAction",
    "SessionEvent",
    "SessionReason",
    "SessionState",
    "SessionStep",
    "cancel",
    "close",
    "last_publication_day",
    "open_session",
    "postpone",
    "publish",
    "reschedule",
    "start",
]

#: LTCD Điều 24: the schedule is published no later than 5 working days before the session.
PUBLISH_LEAD_WORKING_DAYS = 5
#: A written reason is a sentence, not a tick: shorter texts are refused.
MIN_OVERRIDE_REASON_CHARS = 10
_MAX_TEXT = 500


class SessionState(LabelledEnum):
    PLANNED = ("planned", "Đã lập lịch")
    PUBLISHED = ("published", "Đã công bố lịch")
    OPEN = ("open", "Đã mở phiên, điểm danh điểm cầu")
    IN_PROGRESS = ("in_progress", "Đang tiếp công dân")
    CLOSED = ("closed", "Đã kết thúc")
    POSTPONED = ("postponed", "Đã hoãn")
    CANCELLED = ("cancelled", "Đã hủy")


class SessionAction(LabelledEnum):
    PUBLISH = ("publish", "Công bố lịch tiếp công dân")
    OPEN = ("open", "Mở phiên")
    START = ("start", "Bắt đầu tiếp công dân")
    CLOSE = ("close", "Kết thúc phiên")
    POSTPONE = ("postpone", "Hoãn phiên")
    CANCEL = ("cancel", "Hủy phiên")
    RESCHEDULE = ("reschedule", "Xếp lịch lại")


class SessionReason(LabelledEnum):
    """Why a session is postponed or cancelled (domain.md R1: sessions do get cancelled)."""

    CHAIR_UNAVAILABLE = ("chair_unavailable", "Người chủ trì có công tác đột xuất")
    TECHNICAL_FAILURE = ("technical_failure", "Sự cố kỹ thuật, đường truyền")
    DISASTER_EPIDEMIC = ("disaster_epidemic", "Thiên tai, dịch bệnh")
    SECURITY = ("security", "Bảo đảm an ninh, trật tự")
    NO_REGISTRATIONS = ("no_registrations", "Không có công dân đăng ký")
    NOT_PUBLISHED_IN_TIME = ("not_published_in_time", "Chưa công bố lịch đủ thời hạn luật định")
    MERGED = ("merged", "Gộp với phiên tiếp công dân khác")
    OTHER = ("other", "Lý do khác")


_S, _A = SessionState, SessionAction
#: Each action leads to one state ...
ACTION_TARGETS: Mapping[SessionAction, SessionState] = MappingProxyType({
    _A.PUBLISH: _S.PUBLISHED,
    _A.OPEN: _S.OPEN,
    _A.START: _S.IN_PROGRESS,
    _A.CLOSE: _S.CLOSED,
    _A.POSTPONE: _S.POSTPONED,
    _A.CANCEL: _S.CANCELLED,
    _A.RESCHEDULE: _S.PLANNED,
})
#: ... from these states only; anything else is an illegal transition.
ALLOWED_FROM: Mapping[SessionAction, frozenset[SessionState]] = MappingProxyType({
    _A.PUBLISH: frozenset({_S.PLANNED}),
    _A.OPEN: frozenset({_S.PUBLISHED}),
    _A.START: frozenset({_S.OPEN}),
    _A.CLOSE: frozenset({_S.IN_PROGRESS}),
    _A.POSTPONE: frozenset({_S.PLANNED, _S.PUBLISHED, _S.OPEN}),
    _A.CANCEL: frozenset({_S.PLANNED, _S.PUBLISHED, _S.OPEN, _S.POSTPONED}),
    _A.RESCHEDULE: frozenset({_S.POSTPONED}),
})
#: (state, action) → next state: the whole machine in one table.
TRANSITIONS: Mapping[tuple[SessionState, SessionAction], SessionState] = MappingProxyType({
    (state, action): ACTION_TARGETS[action] for action, states in ALLOWED_FROM.items() for state in states
})


@dataclass(frozen=True, slots=True)
class ReceptionSession:
    """One reception session as this state machine sees it (venues and tickets live elsewhere)."""

    session_id: str
    day: date
    form: ReceptionForm
    kind: ReceptionType
    state: SessionState = SessionState.PLANNED
    changed_at: datetime | None = None
    reason: SessionReason | None = None
    reason_note: str = ""
    publish_override: str = ""

    @classmethod
    def plan(
        cls, session_id: str, day: date, *, form: ReceptionForm, kind: ReceptionType, now: datetime
    ) -> ReceptionSession:
        """A new planned session on ``day`` (not before today in Vietnam)."""
        if not session_id or not session_id.strip() or len(session_id) > 64:
            raise InvalidArgument("Mã phiên tiếp công dân không hợp lệ.", code="bad_session_id")
        if day < local_day(now):
            raise SessionDatePassed(f"Không thể lập lịch phiên vào ngày đã qua ({day:%d/%m/%Y}).")
        return cls(session_id=session_id, day=day, form=form, kind=kind, changed_at=now)


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """What happened to a session: emitted once per transition (the driver writes it to the outbox)."""

    session_id: str
    action: SessionAction
    from_state: SessionState
    to_state: SessionState
    actor: str
    at: datetime
    day: date
    reason: SessionReason | None = None
    note: str = ""
    working_days_left: int | None = None
    override_reason: str = ""
    previous_day: date | None = None


@dataclass(frozen=True, slots=True)
class SessionStep:
    session: ReceptionSession
    event: SessionEvent


def _target(session: ReceptionSession, action: SessionAction, actor: str, now: datetime) -> SessionState:
    """The state ``action`` leads to from ``session``; refuses an illegal action and a clock jump."""
    require_actor(actor)
    check_not_before(session.changed_at, now)
    target = ACTION_TARGETS[action]
    if session.state not in ALLOWED_FROM[action]:
        allowed = [a for a, states in ALLOWED_FROM.items() if session.state in states]
        hint = (
            "Từ trạng thái này chỉ có thể: " + ", ".join(f"«{a.label_vi}»" for a in allowed) + "."
            if allowed
            else "Phiên đã ở trạng thái cuối, không thể thay đổi."
        )
        raise IllegalTransition(
            f"Không thể chuyển phiên từ trạng thái «{session.state.label_vi}» sang «{target.label_vi}» "
            f"({action.label_vi}). {hint}",
            from_state=session.state.value,
            action=action.value,
            to_state=target.value,
        )
    return target


def _step(
    old: ReceptionSession,
    new: ReceptionSession,
    action: SessionAction,
    actor: str,
    now: datetime,
    working_days_left: int | None = None,
) -> SessionStep:
    event = SessionEvent(
        session_id=old.session_id,
        action=action,
        from_state=old.state,
        to_state=new.state,
        actor=require_actor(actor),
        at=now,
        day=new.day,
        reason=new.reason if action in (SessionAction.POSTPONE, SessionAction.CANCEL) else None,
        note=new.reason_note if action in (SessionAction.POSTPONE, SessionAction.CANCEL) else "",
        override_reason=new.publish_override if action is SessionAction.PUBLISH else "",
        previous_day=old.day if action is SessionAction.RESCHEDULE else None,
        working_days_left=working_days_left,
    )
    return SessionStep(session=new, event=event)


def _text(value: str, *, what: str, minimum: int = 0) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if len(text) < minimum:
        raise MissingReason(f"Cần ghi rõ {what} (ít nhất {minimum} ký tự).")
    if len(text) > _MAX_TEXT:
        raise InvalidArgument(f"{what.capitalize()} dài quá {_MAX_TEXT} ký tự.", code="text_too_long")
    return text


def last_publication_day(day: date, calendar: WorkCalendar) -> date:
    """The last day on which a session on ``day`` may be published without a written reason."""
    return calendar.add_working_days(day, -PUBLISH_LEAD_WORKING_DAYS)


def publish(
    session: ReceptionSession,
    *,
    actor: str,
    now: datetime,
    calendar: WorkCalendar,
    override_reason: str | None = None,
) -> SessionStep:
    """Publish the schedule (LTCD Điều 24); see the module docstring for the 5-working-day rule."""
    target = _target(session, SessionAction.PUBLISH, actor, now)
    today = local_day(now)
    if today > session.day:
        raise SessionDatePassed(f"Ngày tiếp công dân {session.day:%d/%m/%Y} đã qua; không thể công bố lịch.")
    left = calendar.working_days_between(today, session.day)
    override = ""
    if left < PUBLISH_LEAD_WORKING_DAYS:
        if override_reason is None or not override_reason.strip():
            last_day = last_publication_day(session.day, calendar)
            raise PublishTooLate(
                "Lịch tiếp công dân phải được công bố chậm nhất 5 ngày làm việc trước ngày tiếp "
                f"(Luật Tiếp công dân, Điều 24): hạn cuối là {last_day:%d/%m/%Y}, nay chỉ còn {left} ngày "
                "làm việc. Muốn công bố vẫn phải ghi rõ lý do bằng văn bản.",
                working_days_left=left,
                required=PUBLISH_LEAD_WORKING_DAYS,
                last_day=last_day,
            )
        override = _text(override_reason, what="lý do công bố muộn", minimum=MIN_OVERRIDE_REASON_CHARS)
    new = replace(session, state=target, changed_at=now, publish_override=override)
    return _step(session, new, SessionAction.PUBLISH, actor, now, working_days_left=left)


def open_session(session: ReceptionSession, *, actor: str, now: datetime) -> SessionStep:
    """Open the session for the venues' roll call; only on the session day."""
    target = _target(session, SessionAction.OPEN, actor, now)
    if local_day(now) != session.day:
        raise SessionNotToday(f"Chỉ mở phiên vào đúng ngày tiếp công dân đã công bố ({session.day:%d/%m/%Y}).")
    return _step(session, replace(session, state=target, changed_at=now), SessionAction.OPEN, actor, now)


def start(session: ReceptionSession, *, actor: str, now: datetime) -> SessionStep:
    """The chair starts receiving citizens."""
    target = _target(session, SessionAction.START, actor, now)
    return _step(session, replace(session, state=target, changed_at=now), SessionAction.START, actor, now)


def close(session: ReceptionSession, *, actor: str, now: datetime) -> SessionStep:
    """The session ends (tickets not reached stay in the queue for a later session)."""
    target = _target(session, SessionAction.CLOSE, actor, now)
    return _step(session, replace(session, state=target, changed_at=now), SessionAction.CLOSE, actor, now)


def _reasoned(
    session: ReceptionSession, action: SessionAction, reason: SessionReason, note: str, actor: str, now: datetime
) -> SessionStep:
    target = _target(session, action, actor, now)
    reason = SessionReason.parse(reason)
    minimum = MIN_OVERRIDE_REASON_CHARS if reason is SessionReason.OTHER else 0
    text = _text(note, what="lý do cụ thể", minimum=minimum)
    new = replace(session, state=target, changed_at=now, reason=reason, reason_note=text)
    return _step(session, new, action, actor, now)


def postpone(
    session: ReceptionSession, *, reason: SessionReason, note: str = "", actor: str, now: datetime
) -> SessionStep:
    """Postpone the session with a reason code (``OTHER`` needs a note of at least 10 characters)."""
    return _reasoned(session, SessionAction.POSTPONE, reason, note, actor, now)


def cancel(
    session: ReceptionSession, *, reason: SessionReason, note: str = "", actor: str, now: datetime
) -> SessionStep:
    """Cancel the session with a reason code (``OTHER`` needs a note of at least 10 characters)."""
    return _reasoned(session, SessionAction.CANCEL, reason, note, actor, now)


def reschedule(session: ReceptionSession, *, day: date, actor: str, now: datetime) -> SessionStep:
    """Give a postponed session a new date (today or later); it is planned again and must be republished."""
    target = _target(session, SessionAction.RESCHEDULE, actor, now)
    if day < local_day(now):
        raise SessionDatePassed(f"Ngày tiếp công dân mới ({day:%d/%m/%Y}) đã qua.")
    new = replace(session, state=target, changed_at=now, day=day, reason=None, reason_note="", publish_override="")
    return _step(session, new, SessionAction.RESCHEDULE, actor, now)
