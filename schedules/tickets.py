"""Queue tickets (phiếu số thứ tự): issued at the desk, numbered 1, 2, 3 … per session with no gap.

:func:`issue_ticket` (grant ``intake``) first raises the session's counter, ``UPDATE session_queues
SET last_ticket_no = last_ticket_no + 1 … RETURNING last_ticket_no``, then inserts the ticket, its
audit row and ``ticket.issued`` (outbox), all in the caller's transaction. The counter's row lock
(PostgreSQL) or the database write lock (SQLite) makes a second desk issuing at the same instant wait
for the first to commit and take the next number; a refused or rolled-back issue rolls the counter
back too, so no number is skipped; the unique constraint on (session, ticket number) is the last
guard. A ticket names its venue (one of the session's), the case it was registered for (one ticket
per case and session) and the priority grounds recorded at the desk, plus ``chair_selected`` when the
chair pre-selected the case for that session (:mod:`schedules.planning`).

Tickets are issued while the session is planned, published, open, in progress or postponed (its
registrations wait for the new date); a closed or cancelled session issues none.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.tables import cases
from signaling.events import TicketIssued
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ._clock import check_not_before
from ._service import Clock, audit, now_of, require_grant
from .call_order import PriorityGround, Ticket, TicketStatus
from .errors import DuplicateTicket, TicketsNotIssued, UnknownCase, UnknownSession, VenueNotInSession
from .session_state import SessionState
from .tables import queue_tickets, reception_sessions, session_queues, session_selected_cases, session_venues

__all__ = ["IssuedTicket", "issue_ticket"]

_NOT_ISSUING = frozenset({SessionState.CLOSED, SessionState.CANCELLED})


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    ticket_id: str
    session_id: str
    ticket_no: int
    venue: str
    case: str
    priorities: frozenset[PriorityGround]
    issued_at: datetime
    event: TicketIssued


async def issue_ticket(
    conn: AsyncConnection, session_id: str, *, venue: str, case: str, priorities: Iterable[PriorityGround] = (),
    actor: str, grants: Collection[Grant], clock: Clock,
) -> IssuedTicket:
    """Issue the next ticket of ``session_id`` for ``case`` at ``venue`` (see the module docstring).

    Refusals: :class:`NotPermitted` (no ``intake``), :class:`UnknownSession`, :class:`TicketsNotIssued`,
    :class:`VenueNotInSession`, :class:`UnknownCase`, :class:`DuplicateTicket` (the case already holds
    a ticket of this session), :class:`ClockWentBackwards`.
    """
    require_grant(grants, Grant.INTAKE, "cấp phiếu số thứ tự")
    grounds = frozenset(PriorityGround.parse(p) for p in priorities)
    counted = await conn.execute(
        update(session_queues).where(session_queues.c.session_id == session_id)
        .values(last_ticket_no=session_queues.c.last_ticket_no + 1)
        .returning(session_queues.c.last_ticket_no, session_queues.c.closed, session_queues.c.changed_at))
    row = counted.first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    number, queue_closed, changed_at = int(row[0]), bool(row[1]), row[2]
    state = SessionState.parse(str(await conn.scalar(select(reception_sessions.c.state)
                                                     .where(reception_sessions.c.id == session_id))))
    if state in _NOT_ISSUING or queue_closed:
        raise TicketsNotIssued(f"Phiên «{session_id}» ở trạng thái «{state.label_vi}»; không cấp thêm phiếu số thứ tự.")
    in_session = await conn.scalar(select(session_venues.c.venue_id).where(
        session_venues.c.session_id == session_id, session_venues.c.venue_id == venue))
    if in_session is None:
        raise VenueNotInSession(f"Điểm cầu «{venue}» không tham gia phiên «{session_id}»; không cấp phiếu ở đó.")
    if await conn.scalar(select(cases.c.id).where(cases.c.id == case)) is None:
        raise UnknownCase("Không tìm thấy vụ việc để cấp phiếu số thứ tự.")
    held = await conn.scalar(select(queue_tickets.c.ticket_no).where(queue_tickets.c.session_id == session_id,
                                                                     queue_tickets.c.case_id == case))
    if held is not None:
        raise DuplicateTicket(f"Vụ việc này đã có số thứ tự {held} trong phiên.")
    if await conn.scalar(select(session_selected_cases.c.case_id).where(
            session_selected_cases.c.session_id == session_id, session_selected_cases.c.case_id == case)) is not None:
        grounds |= {PriorityGround.CHAIR_SELECTED}  # the chair pre-selected it (schedules.planning)
    now = now_of(clock)
    check_not_before(changed_at, now)
    ticket = Ticket(ticket_id=str(uuid.uuid4()), ticket_no=number, venue=venue, case=case, priorities=grounds)
    await conn.execute(insert(queue_tickets).values(
        id=ticket.ticket_id, session_id=session_id, ticket_no=number, venue_id=venue, case_id=case,
        priorities=sorted(g.value for g in grounds), status=TicketStatus.WAITING.value, no_shows=0, requeue_seq=0,
        last_call_seq=0, issued_by=actor, issued_at=now))
    await conn.execute(update(session_queues).where(session_queues.c.session_id == session_id)
                       .values(changed_at=now, version=session_queues.c.version + 1))
    event = TicketIssued(session=session_id, ticket=ticket.ticket_id, ticket_no=number, venue=venue, case=case,
                         by=actor, priorities=tuple(sorted(g.value for g in grounds)), occurred_at=now)
    await add_to_outbox(conn, event)
    await audit(conn, actor=actor, action="ticket.issued", target_kind="ticket", target_id=ticket.ticket_id, at=now,
                detail={"session": session_id, "ticket_no": number, "venue": venue, "case": case,
                        "priorities": list(event.priorities)})
    return IssuedTicket(ticket_id=ticket.ticket_id, session_id=session_id, ticket_no=number, venue=venue, case=case,
                        priorities=grounds, issued_at=now, event=event)
