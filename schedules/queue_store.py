"""The queue of a session in the database: :class:`~schedules.queue.QueueState` read and written back.

``session_queues`` holds the scalar part of the state (call sequence, the case being received, the
pause, the venues whose link is down, closed) and ``queue_tickets`` the tickets; the venues absent at
the latest roll call come from ``roll_call_venues`` (written by :mod:`schedules.roll_call`, never here).
A writer first takes the queue row (:func:`claim_queue`), then loads, applies a pure action and saves only what changed,
raising the row's ``version``. Nothing here checks grants or writes events: :mod:`schedules.calls`,
:mod:`schedules.tickets` and :mod:`schedules.sessions` do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .call_order import PriorityGround, Ticket, TicketStatus
from .errors import ConcurrentChange, InvalidArgument, UnknownSession
from .queue import QueueState
from .tables import queue_tickets, roll_call_venues, roll_calls, session_queues

__all__ = [
    "OPEN_STATUSES", "claim_queue", "load_open_queue_state", "load_queue_state", "save_queue_state", "ticket_ids",
]

_ENDED = (TicketStatus.CLOSED, TicketStatus.ABSENT)
# the tickets a queue action that names no ticket, and the queue board, need: not those closed or absent
OPEN_STATUSES = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.DEFERRED, TicketStatus.IN_PERSON)


async def claim_queue(conn: AsyncConnection, session_id: str) -> None:
    """Take the queue row of ``session_id`` (row lock / write lock) before reading it."""
    claimed = await conn.execute(update(session_queues).where(session_queues.c.session_id == session_id)
                                 .values(version=session_queues.c.version))
    if claimed.rowcount != 1:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")


def _ticket(row: Any) -> Ticket:
    return Ticket(
        ticket_id=row.id, ticket_no=row.ticket_no, venue=row.venue_id, case=row.case_id,
        priorities=frozenset(PriorityGround.parse(p) for p in row.priorities or ()),
        status=TicketStatus.parse(row.status), no_shows=row.no_shows, requeue_seq=row.requeue_seq,
        last_call_seq=row.last_call_seq,
    )


async def _absent_at_roll_call(conn: AsyncConnection, session_id: str) -> frozenset[str]:
    """The venues marked absent at the session's latest roll call (none before the first)."""
    latest = (select(roll_calls.c.id).where(roll_calls.c.session_id == session_id)
              .order_by(roll_calls.c.roll_call_no.desc()).limit(1).scalar_subquery())
    rows = await conn.execute(select(roll_call_venues.c.venue_id).where(
        roll_call_venues.c.roll_call_id == latest, roll_call_venues.c.present.is_(False)))
    return frozenset(str(v) for v in rows.scalars().all())


async def load_queue_state(conn: AsyncConnection, session_id: str) -> tuple[QueueState, int]:
    """The queue of ``session_id`` and its row version (read only: claim first to change it)."""
    row = (await conn.execute(select(session_queues).where(session_queues.c.session_id == session_id))).first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    tickets = (await conn.execute(select(queue_tickets).where(queue_tickets.c.session_id == session_id)
                                  .order_by(queue_tickets.c.ticket_no))).all()
    state = QueueState(
        session_id=session_id, tickets=tuple(_ticket(t) for t in tickets), current=row.current_ticket_no,
        call_seq=row.call_seq, paused=bool(row.paused), pause_no=row.pause_no, requeue_seq=row.requeue_seq,
        unavailable_venues=frozenset(row.unavailable_venues or ()), closed=bool(row.closed),
        changed_at=row.changed_at, absent_venues=await _absent_at_roll_call(conn, session_id),
    )
    return state, int(row.version)


_STATUS = {s.value: s for s in TicketStatus}
_GROUNDS: dict[str | None, frozenset[PriorityGround]] = {}


def _grounds(stored: str | None) -> frozenset[PriorityGround]:
    """The priority grounds from the stored JSON text, decoded once per distinct text: a session's
    thousands of tickets hold a handful of different lists (decoding and parsing each row's showed in
    the call-next request's profile). A text that is not a list of grounds raises InvalidArgument."""
    grounds = _GROUNDS.get(stored)
    if grounds is None:
        try:
            values = json.loads(stored) if stored is not None else []
        except ValueError as exc:
            raise InvalidArgument("Ưu tiên của phiếu số thứ tự không hợp lệ.", code="bad_priorities") from exc
        if not isinstance(values, list):
            raise InvalidArgument("Ưu tiên của phiếu số thứ tự không hợp lệ.", code="bad_priorities")
        try:
            grounds = frozenset(PriorityGround.parse(v) for v in values)
        except ValueError as exc:  # complaints' UnknownEnumValue
            raise InvalidArgument("Ưu tiên của phiếu số thứ tự không hợp lệ.", code="bad_priorities") from exc
        if len(_GROUNDS) < 256:  # bounded: a stored list is a combination of four grounds (or a bad row)
            _GROUNDS[stored] = grounds
    return grounds


async def load_open_queue_state(conn: AsyncConnection, session_id: str) -> tuple[QueueState, int]:
    """The queue of ``session_id`` as :func:`load_queue_state` reads it, with the
    open tickets only (:data:`OPEN_STATUSES`) and only the columns the queue uses."""
    row = (await conn.execute(select(session_queues).where(session_queues.c.session_id == session_id))).first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    t = queue_tickets.c
    rows = await conn.execute(
        select(t.id, t.ticket_no, t.venue_id, t.case_id, cast(t.priorities, Text), t.status, t.no_shows,
               t.requeue_seq, t.last_call_seq)
        .where(t.session_id == session_id, t.status.in_([s.value for s in OPEN_STATUSES])).order_by(t.ticket_no))
    tickets = tuple(Ticket(tid, no, venue, case, _grounds(grounds), _STATUS[status], no_shows, requeue_seq, last_call)
                    for tid, no, venue, case, grounds, status, no_shows, requeue_seq, last_call in rows.all())
    state = QueueState(
        session_id=session_id, tickets=tickets, current=row.current_ticket_no,
        call_seq=row.call_seq, paused=bool(row.paused), pause_no=row.pause_no, requeue_seq=row.requeue_seq,
        unavailable_venues=frozenset(row.unavailable_venues or ()), closed=bool(row.closed),
        changed_at=row.changed_at, absent_venues=await _absent_at_roll_call(conn, session_id),
    )
    return state, int(row.version)


async def ticket_ids(conn: AsyncConnection, session_id: str) -> dict[int, str]:
    """ticket number → ticket id of a session."""
    rows = await conn.execute(select(queue_tickets.c.ticket_no, queue_tickets.c.id)
                              .where(queue_tickets.c.session_id == session_id))
    return {int(no): str(tid) for no, tid in rows.all()}


async def save_queue_state(conn: AsyncConnection, before: QueueState, after: QueueState, *, version: int,
                           now: datetime) -> int:
    """Write what changed from ``before`` to ``after`` (the queue row at ``version``); returns the new version.

    A ticket called again gets ``called_at = now``; a ticket that becomes closed or absent ``ended_at``.
    """
    old = {t.ticket_no: t for t in before.tickets}
    for ticket in after.tickets:
        previous = old.get(ticket.ticket_no)
        if previous is None or previous == ticket:
            continue
        values: dict[str, Any] = {
            "status": ticket.status.value, "no_shows": ticket.no_shows, "requeue_seq": ticket.requeue_seq,
            "last_call_seq": ticket.last_call_seq, "priorities": sorted(p.value for p in ticket.priorities),
        }
        if ticket.last_call_seq != previous.last_call_seq:
            values["called_at"] = now
        if ticket.status in _ENDED and previous.status not in _ENDED:
            values["ended_at"] = now
        await conn.execute(update(queue_tickets).where(queue_tickets.c.session_id == after.session_id,
                                                       queue_tickets.c.ticket_no == ticket.ticket_no).values(**values))
    new_version = version + 1
    saved = await conn.execute(update(session_queues).where(session_queues.c.session_id == after.session_id,
                                                            session_queues.c.version == version).values(
        call_seq=after.call_seq, current_ticket_no=after.current, paused=after.paused, pause_no=after.pause_no,
        requeue_seq=after.requeue_seq, unavailable_venues=sorted(after.unavailable_venues), closed=after.closed,
        changed_at=after.changed_at, version=new_version))
    if saved.rowcount != 1:  # only when the caller did not claim the row first
        current = await conn.scalar(select(session_queues.c.version)
                                    .where(session_queues.c.session_id == after.session_id))
        raise ConcurrentChange(f"Hàng đợi của phiên «{after.session_id}» vừa được thay đổi; hãy tải lại.",
                               current=int(current or 0), expected=version)
    return new_version
