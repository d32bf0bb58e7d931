"""The queue of one session: the chair's call actions, as a pure state machine.

Theory of operation
-------------------
The queue holds the session's tickets (:class:`~schedules.call_order.Ticket`), the case being
received (``current``), a pause flag, the venues whose link is down, and ``call_seq``: one counter per
session, raised by every call (call next or recall), so each ``call_seq`` names exactly one ticket and
the room server can ignore a call that is not newer than the one it shows. Events that end or pause a
call carry that call's ``call_seq``.

Queue states: **idle** (no case being received) → **calling** (``current`` set) ⇄ **paused**
(``current`` set, ``paused``) → back to idle when the case ends; **closed** refuses everything.

Ticket statuses and the actions that move them (the chair or the secretary triggers them from the
console with the ``call_queue`` grant; the driver persists the state and writes the events to the
outbox, CaseCalled with the announcement of :mod:`schedules.announcement`):

==================  ========================================  =================================
action              effect                                    event
==================  ========================================  =================================
``call_next``       first ticket of :func:`call_order` →      ``CaseCalled`` (new call_seq)
                    called
``recall``          no ticket: announce the current case      ``CaseRecalled`` (new call_seq)
                    again; a no-show sent to the end or a
                    deferred ticket: call it now, out of order
``skip``            current did not come forward: the first   ``CaseSkipped`` (no_show) /
                    time to the end of the queue, the second  ``CaseAbsent``
                    time absent
``mark_absent``     current (or a no-show / deferred ticket)  ``CaseAbsent``
                    → absent
``end_case``        current → closed                          ``CaseClosed``
``defer``           current → deferred: held, keeps its       ``CaseSkipped`` (deferred)
                    number (also while paused)
``release``         deferred → waiting, at its own number     none
``pause``/          the current case stops while a venue      ``CasePaused`` / ``CaseResumed``
``resume``          link is lost for more than 5 s            (with ``pause_no``)
                    (:func:`link_loss_needs_pause`) or at the
                    chair's word, and goes on
``set_venue_        the venue's waiting tickets are held      none (the room server emits
available``         (not callable) while its link is down     VenueLinkLost/Restored)
(roll call)         a venue absent at the latest roll call    none (``absent_venues``, loaded
                    is held the same way                      from :mod:`schedules.roll_call`)
``add_ticket``,     a ticket joins; its priority grounds      none (the desk emits
``set_priorities``  change                                    TicketIssued/TicketTriaged)
``close``           no further action (not while a case is    none (SessionClosed comes from
                    being received)                           the session machine)
==================  ========================================  =================================

While paused, only ``resume`` and ``defer`` are allowed: the procedure must run continuously by voice
and image (QĐ 748/QĐ-TTCP, domain.md R18), so a case is not concluded or skipped over a lost link.
Calling with nobody callable, or on a closed queue, raises a typed error; so does every action given
a ``now`` earlier than the queue's last change (:class:`~schedules.errors.ClockWentBackwards`).
Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from complaints.enums import LabelledEnum

from ._clock import check_not_before, require_actor, require_aware
from .call_order import CallOrder, PriorityGround, ReorderReason, Ticket, TicketStatus, call_order
from .errors import (
    CaseInProgress,
    DuplicateTicket,
    InvalidArgument,
    NobodyWaiting,
    NoCaseInProgress,
    NotRecallable,
    QueueClosed,
    QueueNotPaused,
    QueuePaused,
    TicketNotWaiting,
    UnknownTicket,
)

__all__ = [
    "LINK_LOSS_PAUSE_AFTER",
    "CaseAbsent",
    "CaseCalled",
    "CaseClosed",
    "CasePaused",
    "CaseRecalled",
    "CaseResumed",
    "CaseSkipped",
    "PauseReason",
    "QueueEvent",
    "QueueState",
    "QueueStep",
    "SkipReason",
    "add_ticket",
    "call_next",
    "close",
    "defer",
    "end_case",
    "link_loss_needs_pause",
    "mark_absent",
    "pause",
    "recall",
    "release",
    "resume",
    "set_priorities",
    "set_venue_available",
    "skip",
]

#: A venue link lost for longer than this pauses the case being received.
LINK_LOSS_PAUSE_AFTER = timedelta(seconds=5)


class SkipReason(LabelledEnum):
    NO_SHOW = ("no_show", "Công dân không có mặt khi được gọi")
    DEFERRED = ("deferred", "Tạm hoãn vụ việc, giữ nguyên số thứ tự")


class PauseReason(LabelledEnum):
    LINK_LOST = ("link_lost", "Mất kết nối điểm cầu quá 5 giây")
    CHAIR = ("chair", "Người chủ trì tạm dừng")


# -- events (plain records; the driver maps them onto signaling.events) ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEvent:
    """What every queue event carries: ticket number and venue, never a citizen's name."""

    TYPE: ClassVar[str] = ""

    session_id: str
    ticket_id: str
    case: str
    ticket_no: int
    venue: str
    call_seq: int
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseCalled(QueueEvent):
    """``reorder``: why this ticket was called before plain ticket order, if it was."""

    TYPE: ClassVar[str] = "case.called"
    reorder: ReorderReason | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecalled(QueueEvent):
    TYPE: ClassVar[str] = "case.recalled"


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSkipped(QueueEvent):
    TYPE: ClassVar[str] = "case.skipped"
    reason: SkipReason


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseAbsent(QueueEvent):
    TYPE: ClassVar[str] = "case.absent"


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseClosed(QueueEvent):
    TYPE: ClassVar[str] = "case.closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class CasePaused(QueueEvent):
    """``pause_no`` numbers the pauses of the session (a call may be paused more than once)."""

    TYPE: ClassVar[str] = "case.paused"
    pause_no: int
    reason: PauseReason


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResumed(QueueEvent):
    TYPE: ClassVar[str] = "case.resumed"
    pause_no: int


_E = TypeVar("_E", bound=QueueEvent)


# -- state -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueState:
    """The queue of one session (tickets kept by ticket number)."""

    session_id: str
    tickets: tuple[Ticket, ...] = ()
    current: int | None = None
    call_seq: int = 0
    paused: bool = False
    pause_no: int = 0
    requeue_seq: int = 0
    unavailable_venues: frozenset[str] = frozenset()
    closed: bool = False
    changed_at: datetime | None = None
    #: venues marked absent at the session's latest roll call (:mod:`schedules.roll_call`): their tickets
    #: are held like those of a venue whose link is down, until a roll call marks them present
    absent_venues: frozenset[str] = frozenset()

    @property
    def held_venues(self) -> frozenset[str]:
        """The venues whose waiting tickets cannot be called now (link down, or absent at the roll call)."""
        return self.unavailable_venues | self.absent_venues

    def ticket(self, ticket_no: int) -> Ticket:
        for ticket in self.tickets:
            if ticket.ticket_no == ticket_no:
                return ticket
        raise UnknownTicket(f"Không có số thứ tự {ticket_no} trong phiên này.")

    @property
    def current_ticket(self) -> Ticket | None:
        return None if self.current is None else self.ticket(self.current)

    def order(self) -> CallOrder:
        """The call order of the tickets still waiting (:func:`~schedules.call_order.call_order`)."""
        return call_order(self.tickets, unavailable_venues=self.held_venues)


@dataclass(frozen=True, slots=True)
class QueueStep:
    state: QueueState
    events: tuple[QueueEvent, ...] = ()


def link_loss_needs_pause(lost_at: datetime, now: datetime) -> bool:
    """True when a link lost at ``lost_at`` has been down for more than 5 seconds at ``now``."""
    return require_aware(now) - require_aware(lost_at) > LINK_LOSS_PAUSE_AFTER


# -- helpers -----------------------------------------------------------------------------------------------


def _begin(state: QueueState, actor: str, now: datetime) -> str:
    actor = require_actor(actor)
    check_not_before(state.changed_at, now)
    if state.closed:
        raise QueueClosed("Phiên tiếp công dân đã kết thúc; hàng đợi không nhận thêm thao tác.")
    return actor


def _current(state: QueueState, *, allow_paused: bool = False) -> Ticket:
    ticket = state.current_ticket
    if ticket is None:
        raise NoCaseInProgress("Chưa có công dân nào đang được gọi.")
    if state.paused and not allow_paused:
        raise QueuePaused("Vụ việc đang tạm dừng; hãy tiếp tục hoặc tạm hoãn vụ việc trước.")
    return ticket


def _idle(state: QueueState) -> None:
    if state.paused:
        raise QueuePaused("Vụ việc đang tạm dừng; hãy tiếp tục hoặc tạm hoãn vụ việc trước.")
    if state.current is not None:
        raise CaseInProgress(
            f"Đang tiếp công dân số {state.current}; hãy kết thúc, bỏ qua hoặc tạm hoãn vụ việc này trước."
        )


def _put(state: QueueState, ticket: Ticket, now: datetime, **changes: Any) -> QueueState:
    tickets = tuple(ticket if t.ticket_no == ticket.ticket_no else t for t in state.tickets)
    return replace(state, tickets=tickets, changed_at=now, **changes)


def _emit(kind: type[_E], state: QueueState, ticket: Ticket, actor: str, now: datetime, **extra: Any) -> _E:
    return kind(
        session_id=state.session_id,
        ticket_id=ticket.ticket_id,
        case=ticket.case,
        ticket_no=ticket.ticket_no,
        venue=ticket.venue,
        call_seq=ticket.last_call_seq,
        actor=actor,
        at=now,
        **extra,
    )


# -- actions -----------------------------------------------------------------------------------------------


def add_ticket(state: QueueState, ticket: Ticket, *, actor: str, now: datetime) -> QueueStep:
    """A new waiting ticket joins the queue (unique number and id, never called)."""
    _begin(state, actor, now)
    if ticket.status is not TicketStatus.WAITING or ticket.no_shows or ticket.requeued or ticket.last_call_seq:
        raise InvalidArgument("Phiếu mới phải ở trạng thái đang chờ và chưa được gọi.", code="bad_new_ticket")
    if any(t.ticket_no == ticket.ticket_no for t in state.tickets):
        raise DuplicateTicket(f"Số thứ tự {ticket.ticket_no} đã được cấp trong phiên này.")
    if any(t.ticket_id == ticket.ticket_id for t in state.tickets):
        raise DuplicateTicket("Phiếu này đã có trong hàng đợi.")
    tickets = tuple(sorted((*state.tickets, ticket), key=lambda t: t.ticket_no))
    return QueueStep(replace(state, tickets=tickets, changed_at=now))


def set_priorities(
    state: QueueState, ticket_no: int, priorities: Iterable[PriorityGround], *, actor: str, now: datetime
) -> QueueStep:
    """Replace the priority grounds of a ticket not yet received (desk triage, chair's pre-selection)."""
    _begin(state, actor, now)
    ticket = state.ticket(ticket_no)
    if ticket.status not in (TicketStatus.WAITING, TicketStatus.DEFERRED):
        raise TicketNotWaiting(
            f"Số thứ tự {ticket_no} không còn chờ (trạng thái: {ticket.status.label_vi}); không đổi ưu tiên."
        )
    grounds = frozenset(PriorityGround.parse(p) for p in priorities)
    return QueueStep(_put(state, replace(ticket, priorities=grounds), now))


def call_next(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """Call the first ticket of the call order."""
    actor = _begin(state, actor, now)
    _idle(state)
    order = state.order()
    ticket = order.next
    if ticket is None:
        held = (f" ({len(order.held)} số đang được giữ chỗ: điểm cầu mất kết nối, vắng mặt khi điểm danh "
                "hoặc tạm hoãn.)") if order.held else ""
        raise NobodyWaiting("Không còn công dân nào đang chờ được gọi." + held)
    seq = state.call_seq + 1
    called = replace(ticket, status=TicketStatus.CALLED, last_call_seq=seq)
    new = _put(state, called, now, current=ticket.ticket_no, call_seq=seq)
    event = _emit(CaseCalled, new, called, actor, now, reorder=order.reason_for(ticket.ticket_no))
    return QueueStep(new, (event,))


def recall(state: QueueState, *, actor: str, now: datetime, ticket_no: int | None = None) -> QueueStep:
    """Call again: the current case (``ticket_no`` None or its number), or a ticket passed over before
    (a no-show sent to the end, a deferred case) when no case is being received."""
    actor = _begin(state, actor, now)
    if ticket_no is None or ticket_no == state.current:
        ticket = _current(state)
    else:
        _idle(state)
        ticket = state.ticket(ticket_no)
        passed_over = ticket.status is TicketStatus.DEFERRED or (
            ticket.status is TicketStatus.WAITING and ticket.no_shows > 0
        )
        if not passed_over:
            raise NotRecallable(
                f"Số thứ tự {ticket_no} không thể gọi lại (trạng thái: {ticket.status.label_vi}); "
                "chỉ gọi lại số đã bị bỏ qua hoặc tạm hoãn."
            )
        if ticket.venue in state.unavailable_venues:
            raise NotRecallable(f"Điểm cầu của số thứ tự {ticket_no} đang mất kết nối; chưa thể gọi lại.")
        if ticket.venue in state.absent_venues:
            raise NotRecallable(f"Điểm cầu của số thứ tự {ticket_no} vắng mặt khi điểm danh; chưa thể gọi lại.")
    seq = state.call_seq + 1
    called = replace(ticket, status=TicketStatus.CALLED, last_call_seq=seq)
    new = _put(state, called, now, current=ticket.ticket_no, call_seq=seq)
    return QueueStep(new, (_emit(CaseRecalled, new, called, actor, now),))


def skip(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """The called citizen did not come forward: to the end of the queue once, absent the second time."""
    actor = _begin(state, actor, now)
    ticket = _current(state)
    if ticket.no_shows >= 1:
        absent = replace(ticket, status=TicketStatus.ABSENT, no_shows=ticket.no_shows + 1)
        new = _put(state, absent, now, current=None)
        return QueueStep(new, (_emit(CaseAbsent, new, absent, actor, now),))
    seq = state.requeue_seq + 1
    requeued = replace(ticket, status=TicketStatus.WAITING, no_shows=1, requeue_seq=seq)
    new = _put(state, requeued, now, current=None, requeue_seq=seq)
    return QueueStep(new, (_emit(CaseSkipped, new, requeued, actor, now, reason=SkipReason.NO_SHOW),))


def mark_absent(state: QueueState, *, actor: str, now: datetime, ticket_no: int | None = None) -> QueueStep:
    """Mark the current case absent, or a ticket already passed over (no-show at the end, deferred)."""
    actor = _begin(state, actor, now)
    if ticket_no is None or ticket_no == state.current:
        ticket = _current(state)
    else:
        ticket = state.ticket(ticket_no)
        if ticket.last_call_seq == 0 or ticket.status not in (TicketStatus.WAITING, TicketStatus.DEFERRED):
            raise NotRecallable(
                f"Chỉ ghi vắng mặt cho số đã được gọi mà chưa tiếp; số thứ tự {ticket_no} đang ở trạng thái "
                f"«{ticket.status.label_vi}»."
            )
    absent = replace(ticket, status=TicketStatus.ABSENT)
    current = None if ticket.ticket_no == state.current else state.current
    new = _put(state, absent, now, current=current)
    return QueueStep(new, (_emit(CaseAbsent, new, absent, actor, now),))


def end_case(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """The case being received is concluded."""
    actor = _begin(state, actor, now)
    ticket = _current(state)
    closed = replace(ticket, status=TicketStatus.CLOSED)
    new = _put(state, closed, now, current=None)
    return QueueStep(new, (_emit(CaseClosed, new, closed, actor, now),))


def defer(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """Defer the case being received (also while paused): it is held and keeps its number."""
    actor = _begin(state, actor, now)
    ticket = _current(state, allow_paused=True)
    deferred = replace(ticket, status=TicketStatus.DEFERRED)
    new = _put(state, deferred, now, current=None, paused=False)
    return QueueStep(new, (_emit(CaseSkipped, new, deferred, actor, now, reason=SkipReason.DEFERRED),))


def release(state: QueueState, ticket_no: int, *, actor: str, now: datetime) -> QueueStep:
    """A deferred ticket waits again, at the place of its own number."""
    _begin(state, actor, now)
    ticket = state.ticket(ticket_no)
    if ticket.status is not TicketStatus.DEFERRED:
        raise TicketNotWaiting(f"Số thứ tự {ticket_no} không ở trạng thái tạm hoãn.")
    return QueueStep(_put(state, replace(ticket, status=TicketStatus.WAITING), now))


def pause(state: QueueState, *, reason: PauseReason, actor: str, now: datetime) -> QueueStep:
    """Pause the case being received (a venue link lost > 5 s, or the chair's decision)."""
    actor = _begin(state, actor, now)
    ticket = _current(state)
    number = state.pause_no + 1
    new = replace(state, paused=True, pause_no=number, changed_at=now)
    event = _emit(CasePaused, new, ticket, actor, now, pause_no=number, reason=PauseReason.parse(reason))
    return QueueStep(new, (event,))


def resume(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """The paused case goes on."""
    actor = _begin(state, actor, now)
    ticket = _current(state, allow_paused=True)
    if not state.paused:
        raise QueueNotPaused("Vụ việc không ở trạng thái tạm dừng.")
    new = replace(state, paused=False, changed_at=now)
    return QueueStep(new, (_emit(CaseResumed, new, ticket, actor, now, pause_no=state.pause_no),))


def set_venue_available(state: QueueState, venue: str, available: bool, *, actor: str, now: datetime) -> QueueStep:
    """Record a venue's link going down (its waiting tickets are held) or coming back."""
    _begin(state, actor, now)
    venues = state.unavailable_venues - {venue} if available else state.unavailable_venues | {venue}
    return QueueStep(replace(state, unavailable_venues=venues, changed_at=now))


def close(state: QueueState, *, actor: str, now: datetime) -> QueueStep:
    """No further action; tickets not reached stay as they are for the record (and a later session)."""
    _begin(state, actor, now)
    _idle(state)
    return QueueStep(replace(state, closed=True, changed_at=now))
