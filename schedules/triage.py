"""The triage of an issued ticket: its priority grounds and, for a confidential case, its handling.

A denunciation, or any case that is confidential by :func:`complaints.confidentiality.is_confidential`,
is not heard like the others in front of every venue. When its ticket is issued the desk must choose
one :class:`ConfidentialHandling` (none chosen: :class:`~schedules.errors.InvalidArgument`, code
``handling_required``):

* ``closed_segment`` (phiên kín): the ticket waits in the online order like any other; when the chair
  calls it, the chair starts the closed segment. The chair's and the secretary's queue panel shows the
  flag (the queue API, to holders of ``moderate`` or ``closed_segment``);
* ``in_person`` (tiếp trực tiếp riêng): the ticket keeps its number, takes the status
  :attr:`~schedules.call_order.TicketStatus.IN_PERSON` and is never called in the online order: the
  citizen is received in person, outside the online session, by the in-person reception (the reception
  entry written at the desk stays the case's record of the visit).

The flag lives in ``queue_tickets.handling`` and nowhere else: not in ``ticket.issued`` /
``ticket.triaged``, not in ``case.called`` (the event the room server relays to every venue), not on
the queue board (numbers only), not in logs.

:func:`retriage_ticket` (grant ``intake``) changes the priority grounds the desk declares (disabled,
pregnant; the computed elderly ground and the chair's pre-selection are kept) and the handling of a
ticket that is still waiting, deferred or handed to the in-person reception, at the queue's version
the caller read (:class:`~schedules.errors.ConcurrentChange` otherwise). A change writes, in the
caller's transaction: the ticket, the queue's new version (the call order the chair sees changes with
it), one audit row ``ticket.triaged`` (codes only) and one ``ticket.triaged`` event through the outbox
with the ticket's next ``triage_version``. A call that changes nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.confidentiality import is_confidential
from complaints.enums import LabelledEnum
from signaling.events import TicketTriaged
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ._service import Clock, audit, now_of, require_grant
from .call_order import PriorityGround, TicketStatus
from .errors import ConcurrentChange, InvalidArgument, TicketNotWaiting, UnknownTicket
from .queue import set_priorities
from .queue_store import claim_queue, load_queue_state, save_queue_state
from .tables import queue_tickets

__all__ = ["ConfidentialHandling", "TriageChange", "check_handling", "retriage_ticket", "set_issued_handling",
           "ticket_handling", "ticket_venue"]

#: The priority grounds the desk declares; the others are computed (elderly) or the chair's.
_DESK_GROUNDS = frozenset({PriorityGround.DISABLED, PriorityGround.PREGNANT})
_CHANGEABLE = (TicketStatus.WAITING, TicketStatus.DEFERRED, TicketStatus.IN_PERSON)


class ConfidentialHandling(LabelledEnum):
    """How a confidential case (a denunciation) is heard; the desk chooses one."""

    IN_PERSON = ("in_person", "Tiếp trực tiếp riêng (ngoài phiên trực tuyến)")
    CLOSED_SEGMENT = ("closed_segment", "Phiên kín")


def check_handling(confidential: bool, handling: ConfidentialHandling | None) -> None:
    """A confidential case needs a handling; any other case takes none (pure)."""
    if confidential and handling is None:
        raise InvalidArgument("Đơn tố cáo (vụ việc được bảo mật) phải chọn cách tiếp: «tiếp trực tiếp riêng» "
                              "hoặc «phiên kín».", code="handling_required")
    if not confidential and handling is not None:
        raise InvalidArgument("Chỉ vụ việc được bảo mật (tố cáo) mới chọn tiếp trực tiếp riêng hoặc phiên kín.",
                              code="handling_not_confidential")


async def set_issued_handling(conn: AsyncConnection, ticket_id: str, handling: ConfidentialHandling | None) -> None:
    """Record the handling chosen while the ticket is issued (the desk's registration, same transaction;
    the registration's audit row names it). ``in_person`` takes the ticket out of the online order."""
    if handling is None:
        return
    values: dict[str, object] = {"handling": handling.value}
    if handling is ConfidentialHandling.IN_PERSON:
        values["status"] = TicketStatus.IN_PERSON.value
    await conn.execute(update(queue_tickets).where(queue_tickets.c.id == ticket_id).values(**values))


async def ticket_handling(conn: AsyncConnection, session_id: str) -> dict[int, ConfidentialHandling]:
    """Ticket number → handling, for the flagged tickets of a session (the chair's panel only)."""
    rows = await conn.execute(select(queue_tickets.c.ticket_no, queue_tickets.c.handling).where(
        queue_tickets.c.session_id == session_id, queue_tickets.c.handling.is_not(None)))
    return {int(no): ConfidentialHandling.parse(value) for no, value in rows.all()}


async def ticket_venue(conn: AsyncConnection, session_id: str, ticket_no: int) -> str | None:
    """The venue of ticket ``ticket_no`` of a session (None: no such ticket)."""
    venue = await conn.scalar(select(queue_tickets.c.venue_id).where(
        queue_tickets.c.session_id == session_id, queue_tickets.c.ticket_no == ticket_no))
    return None if venue is None else str(venue)


@dataclass(frozen=True, slots=True)
class TriageChange:
    """What :func:`retriage_ticket` did: the ticket's grounds and handling after it, the queue's version,
    and the event (None: nothing changed)."""

    ticket_id: str
    ticket_no: int
    priorities: frozenset[PriorityGround]
    handling: ConfidentialHandling | None
    status: TicketStatus
    version: int
    event: TicketTriaged | None


async def retriage_ticket(
    conn: AsyncConnection, session_id: str, ticket_no: int, *, priorities: Iterable[PriorityGround],
    handling: ConfidentialHandling | None, expected_version: int, actor: str, grants: Collection[Grant], clock: Clock,
) -> TriageChange:
    """Change a ticket's desk priority grounds and handling (see the module docstring).

    Refusals: :class:`NotPermitted`, :class:`UnknownSession`, :class:`UnknownTicket`,
    :class:`ConcurrentChange` (the queue changed since ``expected_version``), :class:`TicketNotWaiting`
    (called, closed or absent), :class:`InvalidArgument` (``handling_required`` /
    ``handling_not_confidential``, a ground the desk does not declare), :class:`ClockWentBackwards`.
    """
    require_grant(grants, Grant.INTAKE, "đổi phân loại phiếu số thứ tự")
    wanted = frozenset(PriorityGround.parse(p) for p in priorities)
    if wanted - _DESK_GROUNDS:
        raise InvalidArgument("Bàn tiếp nhận chỉ khai ưu tiên người khuyết tật hoặc phụ nữ mang thai.",
                              code="bad_priority")
    await claim_queue(conn, session_id)
    state, version = await load_queue_state(conn, session_id)
    if version != expected_version:
        raise ConcurrentChange(f"Hàng đợi của phiên «{session_id}» vừa được thay đổi; hãy tải lại.",
                               current=version, expected=expected_version)
    row = (await conn.execute(select(queue_tickets.c.id, queue_tickets.c.case_id, queue_tickets.c.handling,
                                     queue_tickets.c.triage_version, queue_tickets.c.status).where(
        queue_tickets.c.session_id == session_id, queue_tickets.c.ticket_no == ticket_no))).first()
    if row is None:
        raise UnknownTicket(f"Không có số thứ tự {ticket_no} trong phiên.")
    ticket_id, case_id, old_handling_value, triage_version = str(row[0]), str(row[1]), row[2], int(row[3])
    status = TicketStatus.parse(row[4])
    if status not in _CHANGEABLE:
        raise TicketNotWaiting(f"Số thứ tự {ticket_no} không còn chờ (trạng thái: {status.label_vi}); "
                               "không đổi phân loại.")
    check_handling(await is_confidential(conn, case_id), handling)
    old_handling = None if old_handling_value is None else ConfidentialHandling.parse(old_handling_value)
    ticket = next(t for t in state.tickets if t.ticket_no == ticket_no)
    grounds = (ticket.priorities - _DESK_GROUNDS) | wanted
    if grounds == ticket.priorities and handling is old_handling:
        return TriageChange(ticket_id, ticket_no, grounds, handling, status, version, None)
    now: datetime = now_of(clock)
    after = state
    if status is TicketStatus.IN_PERSON:
        # out of the online order: the pure queue does not take it; the row is written below
        after = replace(state, tickets=tuple(replace(t, priorities=grounds) if t.ticket_no == ticket_no else t
                                             for t in state.tickets), changed_at=now)
    elif grounds != ticket.priorities:
        after = set_priorities(state, ticket_no, grounds, actor=actor, now=now).state
    else:
        after = replace(state, changed_at=now)
    new_version = await save_queue_state(conn, state, after, version=version, now=now)
    new_status = status
    if handling is ConfidentialHandling.IN_PERSON:
        new_status = TicketStatus.IN_PERSON
    elif status is TicketStatus.IN_PERSON:
        new_status = TicketStatus.WAITING  # back into the online order, at its own number
    await conn.execute(update(queue_tickets).where(queue_tickets.c.id == ticket_id).values(
        handling=None if handling is None else handling.value, status=new_status.value,
        priorities=sorted(g.value for g in grounds), triage_version=triage_version + 1))
    event = TicketTriaged(session=session_id, ticket=ticket_id, ticket_no=ticket_no, venue=ticket.venue,
                          case=case_id, by=actor, priorities=tuple(sorted(g.value for g in grounds)),
                          triage_version=triage_version + 1, occurred_at=now)
    await add_to_outbox(conn, event)
    await audit(conn, actor=actor, action="ticket.triaged", target_kind="ticket", target_id=ticket_id, at=now,
                detail={"session": session_id, "ticket_no": ticket_no, "priorities": list(event.priorities),
                        "handling": None if handling is None else handling.value,
                        "triage_version": triage_version + 1})
    return TriageChange(ticket_id, ticket_no, grounds, handling, new_status, new_version, event)
