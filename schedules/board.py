"""The queue board (bảng hiển thị số thứ tự): what every venue's screen shows, as a pure function, and the
reads that feed it.

What the board shows (numbers and venue names only, never a name, a case's content or its kind):

* the case being received: its ticket number and venue, and whether it is paused;
* the next numbers in the published call order (:func:`schedules.call_order.call_order`), each with the
  venue and, when the order departs from plain ticket order there, the reason code;
* how many wait (callable and held), and an estimated wait;
* the log of reorders with their reasons: every call out of plain ticket order (``case.called`` with a
  ``reorder`` reason), every no-show sent to the end and every deferral (``case.skipped``), and every
  recall of a number passed over before (``case.recalled`` of a ticket that was not being received).

The estimate comes from this session's own mean hearing time: for every case closed so far, the time
from the call that began its hearing to ``case.closed``, less its pauses (``case.paused`` →
``case.resumed``). A recall of the case being received does not begin a new hearing; a skip, a deferral
or an absence ends a hearing without a duration. Before the first case is closed there is no mean, and
the board says there is not enough data yet (``None`` here). A ticket that has ``k`` cases to be
received before its own (the one being received counts as one) waits about ``k`` × the mean.

The record these come from is the audit log the queue actions write (:mod:`schedules.calls`: one row per
queue event, with the session, ticket number, venue, call sequence and the reorder, skip reason or pause
number). :func:`read_queue_log` reads the rows of one session after a given row id, so a reader that keeps
the last id reads only what is new; the audit log's appends are serialised by its chain head, so row ids
grow in commit order and nothing committed later can carry a smaller id. Nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.tables import audit_events

from .call_order import ReorderReason
from .errors import InvalidArgument
from .queue import QueueState, SkipReason
from .queue_store import load_open_queue_state
from .session_state import SessionState
from .sessions import get_session

__all__ = [
    "BOARD_STATES",
    "LOG_ACTIONS",
    "Board",
    "BoardCall",
    "BoardTicket",
    "QueueLogEntry",
    "ReorderNote",
    "board_state",
    "estimate_wait",
    "hearing_times",
    "load_board",
    "mean_hearing_time",
    "read_queue_log",
    "reorder_log",
]

#: Sessions whose board is shown: tickets are issued from publication, calls made while in progress.
BOARD_STATES = frozenset({SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS})
#: The audit actions the board reads (those of :mod:`schedules.calls` that move a hearing or the order).
LOG_ACTIONS = ("case.called", "case.recalled", "case.skipped", "case.absent", "case.closed", "case.paused",
               "case.resumed")
#: Reason code of a recall of a number passed over before (not a :class:`ReorderReason`: it is a call).
RECALLED_OUT_OF_ORDER = "recalled"


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One queue event of a session as the audit log recorded it (``audit_id``: the row's id)."""

    audit_id: int
    at: datetime
    action: str
    ticket_no: int
    venue: str
    call_seq: int
    reorder: ReorderReason | None = None
    skip_reason: SkipReason | None = None
    pause_no: int | None = None

    def __post_init__(self) -> None:
        if self.action not in LOG_ACTIONS:
            raise InvalidArgument(f"Thao tác hàng đợi không rõ: «{self.action[:40]}».", code="bad_log_action")
        if self.at.tzinfo is None:
            raise InvalidArgument("Thời điểm phải có múi giờ (ví dụ +07:00).", code="naive_time")


@dataclass(frozen=True, slots=True)
class ReorderNote:
    """One line of the reorder log: when, which number at which venue, and the reason code (a
    :class:`ReorderReason` value, or ``"recalled"``)."""

    at: datetime
    ticket_no: int
    venue: str
    reason: str


@dataclass(frozen=True, slots=True)
class BoardCall:
    ticket_no: int
    venue: str
    venue_name: str
    call_seq: int
    paused: bool


@dataclass(frozen=True, slots=True)
class BoardTicket:
    """A number waiting: ``wait`` is its estimated wait (None: not enough data), ``reorder`` the reason code
    when the call order departs from plain ticket order at this number."""

    ticket_no: int
    venue: str
    venue_name: str
    wait: timedelta | None
    reorder: str | None


@dataclass(frozen=True, slots=True)
class Board:
    """The board of one session (the same for every venue; a venue's screen marks its own numbers).

    ``waiting``: tickets still to be received (callable now, plus ``held``: their venue's link is down or
    the chair deferred them); ``next``: the first of the call order; ``last_wait``: the estimated wait of
    the last callable number; ``mean_hearing``: None until a case has been closed.
    """

    session_id: str
    state: SessionState
    current: BoardCall | None
    next: tuple[BoardTicket, ...]
    waiting: int
    held: int
    waiting_by_venue: Mapping[str, int]
    closed_cases: int
    mean_hearing: timedelta | None
    last_wait: timedelta | None
    log: tuple[ReorderNote, ...]


def _ordered(log: Iterable[QueueLogEntry]) -> list[QueueLogEntry]:
    return sorted(log, key=lambda e: e.audit_id)


def hearing_times(log: Iterable[QueueLogEntry]) -> tuple[timedelta, ...]:
    """The hearing time of every case closed in ``log`` (any order: walked by row id), pauses excluded."""
    started: dict[int, datetime] = {}
    paused_since: dict[int, datetime] = {}
    paused_total: dict[int, timedelta] = {}
    times: list[timedelta] = []
    for entry in _ordered(log):
        no = entry.ticket_no
        if entry.action in ("case.called", "case.recalled"):
            if no not in started:  # a recall of the case being received goes on with its hearing
                started[no], paused_total[no] = entry.at, timedelta(0)
                paused_since.pop(no, None)
        elif entry.action == "case.paused":
            if no in started:
                paused_since.setdefault(no, entry.at)
        elif entry.action == "case.resumed":
            since = paused_since.pop(no, None)
            if since is not None and no in started:
                paused_total[no] += max(entry.at - since, timedelta(0))
        elif entry.action == "case.closed":
            start = started.pop(no, None)
            since = paused_since.pop(no, None)
            paused = paused_total.pop(no, timedelta(0))
            if since is not None:  # (the queue refuses to end a paused case; counted all the same)
                paused += max(entry.at - since, timedelta(0))
            if start is not None:
                times.append(max(entry.at - start - paused, timedelta(0)))
        else:  # skipped, deferred, absent: the hearing ends without a duration
            started.pop(no, None)
            paused_since.pop(no, None)
            paused_total.pop(no, None)
    return tuple(times)


def mean_hearing_time(log: Iterable[QueueLogEntry]) -> timedelta | None:
    """The mean of :func:`hearing_times` (whole seconds), or None before a case has been closed."""
    times = hearing_times(log)
    if not times:
        return None
    total = sum((t for t in times), timedelta(0))
    return timedelta(seconds=round(total.total_seconds() / len(times)))


def estimate_wait(mean: timedelta | None, ahead: int) -> timedelta | None:
    """About ``ahead`` × ``mean``: the wait of a ticket with ``ahead`` cases to be received before its own
    (the one being received counts); None without a mean."""
    if isinstance(ahead, bool) or not isinstance(ahead, int) or ahead < 0:
        raise InvalidArgument("Số vụ việc phía trước phải là số nguyên không âm.", code="bad_ahead")
    if mean is None:
        return None
    return mean * ahead


def reorder_log(log: Iterable[QueueLogEntry]) -> tuple[ReorderNote, ...]:
    """Every departure from plain ticket order in ``log``, oldest first (see the module docstring)."""
    notes: list[ReorderNote] = []
    current: int | None = None
    for entry in _ordered(log):
        no = entry.ticket_no
        if entry.action == "case.called":
            if entry.reorder is not None:
                notes.append(ReorderNote(entry.at, no, entry.venue, entry.reorder.value))
            current = no
        elif entry.action == "case.recalled":
            if current != no:
                notes.append(ReorderNote(entry.at, no, entry.venue, RECALLED_OUT_OF_ORDER))
            current = no
        elif entry.action == "case.skipped":
            reason = ReorderReason.DEFERRED if entry.skip_reason is SkipReason.DEFERRED else ReorderReason.NO_SHOW
            notes.append(ReorderNote(entry.at, no, entry.venue, reason.value))
            if current == no:
                current = None
        elif entry.action in ("case.closed", "case.absent") and current == no:
            current = None
    return tuple(notes)


def board_state(state: SessionState, queue: QueueState, venue_names: Mapping[str, str],
                log: Sequence[QueueLogEntry], *, next_shown: int = 8, log_shown: int = 8) -> Board:
    """The board of a session from its state, its queue, the venues' names and its queue log."""
    if next_shown < 1 or log_shown < 0:
        raise InvalidArgument("Số dòng hiển thị không hợp lệ.", code="bad_board_size")
    order = queue.order()
    mean = mean_hearing_time(log)
    current = queue.current_ticket
    in_progress = 1 if current is not None else 0

    def name(venue: str) -> str:
        return venue_names.get(venue, venue)

    upcoming = tuple(
        BoardTicket(t.ticket_no, t.venue, name(t.venue), estimate_wait(mean, index + in_progress),
                    None if (r := order.reason_for(t.ticket_no)) is None else r.value)
        for index, t in enumerate(order.order[:next_shown]))
    by_venue: dict[str, int] = {}
    for ticket in (*order.order, *order.held):
        by_venue[ticket.venue] = by_venue.get(ticket.venue, 0) + 1
    notes = reorder_log(log)
    return Board(
        session_id=queue.session_id, state=state,
        current=None if current is None else BoardCall(current.ticket_no, current.venue, name(current.venue),
                                                       current.last_call_seq, queue.paused),
        next=upcoming, waiting=len(order.order) + len(order.held), held=len(order.held),
        waiting_by_venue=by_venue, closed_cases=len(hearing_times(log)), mean_hearing=mean,
        last_wait=estimate_wait(mean, len(order.order) - 1 + in_progress) if order.order else None,
        log=notes[-log_shown:] if log_shown else (),
    )


# -- the read ----------------------------------------------------------------------------------------------


def _entry(row: Any, session_id: str) -> QueueLogEntry | None:
    detail = row.detail if isinstance(row.detail, Mapping) else {}
    if detail.get("session") != session_id:
        return None
    reason = detail.get("reason")
    reorder = detail.get("reorder")
    return QueueLogEntry(
        audit_id=int(row.id), at=datetime.fromisoformat(str(row.at)), action=str(row.action),
        ticket_no=int(detail.get("ticket_no", 0)), venue=str(detail.get("venue", "")),
        call_seq=int(detail.get("call_seq", 0)),
        reorder=ReorderReason.parse(reorder) if reorder else None,
        skip_reason=SkipReason.parse(reason) if reason and row.action == "case.skipped" else None,
        pause_no=int(detail["pause_no"]) if detail.get("pause_no") is not None else None,
    )


async def read_queue_log(conn: AsyncConnection, session_id: str, *,
                         after: int = 0) -> tuple[list[QueueLogEntry], int]:
    """The queue events of ``session_id`` recorded in the audit log after row ``after``, by row id, and the
    last row id read (of any session: the next read starts after it)."""
    rows = (await conn.execute(
        select(audit_events.c.id, audit_events.c.at, audit_events.c.action, audit_events.c.detail)
        .where(audit_events.c.id > after, audit_events.c.target_kind == "ticket",
               audit_events.c.action.in_(LOG_ACTIONS))
        .order_by(audit_events.c.id))).all()
    found = (_entry(row, session_id) for row in rows)
    return [entry for entry in found if entry is not None], max((int(row.id) for row in rows), default=after)


async def load_board(conn: AsyncConnection, session_id: str, *, next_shown: int = 8,
                     log_shown: int = 8) -> tuple[Board, int]:
    """The board of ``session_id`` read whole (the session, its queue and version, its queue log); raises
    :class:`~schedules.errors.UnknownSession`. The caller decides whether the state is one to show
    (:data:`BOARD_STATES`)."""
    record = await get_session(conn, session_id)
    queue, version = await load_open_queue_state(conn, session_id)  # the board shows no closed ticket
    entries, _ = await read_queue_log(conn, session_id)
    names = {v.venue: v.name for v in record.venues}
    return board_state(record.state, queue, names, entries, next_shown=next_shown, log_shown=log_shown), version
