"""The registration desk (bàn tiếp nhận): register a citizen for a session, triage, and issue a ticket.

:func:`register_at_desk` (grant ``intake``) does, in the caller's transaction:

1. takes the session's queue row first (``UPDATE session_queues SET version = version``: the row lock on
   PostgreSQL, the write lock on SQLite), so two desks registering at the same instant are lined up
   and the second takes the next ticket number, with no deadlock between their reads and writes;
2. checks that the session is today's and is published, open or in progress, and that the venue is one
   of the session's;
3. records the petition through the case store's service, :func:`complaints.service.record_intake` (same
   rules as the intake page: a new case or an existing one; a denunciation is sealed by the case store's
   confidentiality rule), which writes its audit row (``case.intake``) and announces it: ``case.created``
   for a new case, else ``case.petition_added`` and, when the case became confidential, ``case.updated``;
4. writes the reception entry (lượt tiếp) of the session with the triage outcome, and for a refusal
   its written reason (LTCD Điều 9), for a forwarded petition the receiving body, through
   :func:`complaints.service.add_reception` (audit row ``case.reception``, ``case.reception_recorded``);
   the desk officer (``officer``, else the actor's label) is the entry's officer;
5. only for "đề xuất lãnh đạo tiếp", issues the next ticket (:func:`schedules.tickets.issue_ticket`)
   with the priority grounds: those declared at the desk, plus "elderly" computed from the birth
   date on the session's day; a denunciation (any case confidential by the case store's rule) must
   carry the desk's choice of handling, in person or a closed segment (:mod:`schedules.triage`:
   ``handling_required`` when missing, checked before anything is written for a denunciation
   petition, after the intake for an existing case that is confidential);
6. writes one audit row (ids and codes only).

Refusals raise before anything but an audit row is written, so the caller rolls back (or, for
:class:`complaints.errors.IdentityAccessDenied`, commits the audit row).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.cases import get_case
from complaints.confidentiality import is_confidential
from complaints.enums import LabelledEnum, PetitionKind, ReceptionOutcome
from complaints.intake import Intake, IntakeResult
from complaints.service import Caller, add_reception, record_intake
from complaints.tables import cases
from evidence import Keyring
from signaling.grants import Grant

from ._clock import VIETNAM_TZ, local_day
from ._service import Clock, audit, now_of, require_grant
from .call_order import PriorityGround, is_elderly
from .errors import (
    MissingReason,
    SessionNotToday,
    TicketsNotIssued,
    UnknownSession,
    UnknownTicket,
    VenueNotInSession,
)
from .session_state import SessionState
from .sessions import SessionRecord, get_session
from .tables import queue_tickets, session_queues
from .tickets import IssuedTicket, issue_ticket
from .triage import ConfidentialHandling, check_handling, set_issued_handling

__all__ = ["DESK_STATES", "DESK_PRIORITIES", "Triage", "DeskRegistration", "DeskResult", "DeskSlip", "desk_slip",
           "elderly_on", "register_at_desk"]

#: The states in which the desk registers citizens for a session.
DESK_STATES = frozenset({SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS})
#: The priority grounds a desk officer may declare (elderly is computed; chair-selected is the chair's).
DESK_PRIORITIES = frozenset({PriorityGround.DISABLED, PriorityGround.PREGNANT})
_MAX_REASON = 2000


class Triage(LabelledEnum):
    """The outcome of the desk's triage (phân loại tại bàn tiếp nhận)."""

    PROPOSE_LEADER = ("propose_leader", "Đề xuất lãnh đạo tiếp")
    GUIDANCE = ("guidance", "Hướng dẫn")
    FORWARD = ("forward", "Chuyển đơn")
    EXPLAIN = ("explain", "Giải thích")
    REFUSE = ("refuse", "Từ chối tiếp")

    @property
    def reception_outcome(self) -> ReceptionOutcome:
        return _OUTCOMES[self]


_OUTCOMES = {
    Triage.PROPOSE_LEADER: ReceptionOutcome.MEET_LEADER,
    Triage.GUIDANCE: ReceptionOutcome.RETURN_WITH_GUIDANCE,
    Triage.FORWARD: ReceptionOutcome.FORWARD_TO_COMPETENT_BODY,
    Triage.EXPLAIN: ReceptionOutcome.ANSWERED_ON_THE_SPOT,
    Triage.REFUSE: ReceptionOutcome.REFUSED,
}


@dataclass(frozen=True)
class DeskRegistration:
    """One registration at the desk. ``intake`` carries the petitioner (new, e.g. from the chip ID card,
    or one on file), the petition and the case to attach to (None: a new case); its ``venue`` and
    ``reception`` are set here. ``birth_date`` is the citizen's, for the elderly priority (a person on
    file may have none)."""

    session_id: str
    venue: str
    intake: Intake
    triage: Triage
    priorities: frozenset[PriorityGround] = frozenset()
    birth_date: date | None = None
    refusal_reason: str = ""
    receiving_body: str = ""
    officer: str | None = None
    handling: ConfidentialHandling | None = None


@dataclass(frozen=True)
class DeskResult:
    session_id: str
    venue: str
    triage: Triage
    intake: IntakeResult
    reception_id: str
    reception_nth: int
    ticket: IssuedTicket | None
    handling: ConfidentialHandling | None = None


def elderly_on(birth_date: date | None, session_day: date) -> bool:
    return birth_date is not None and is_elderly(birth_date, session_day)


def _grounds(declared: Iterable[PriorityGround], birth_date: date | None, day: date) -> frozenset[PriorityGround]:
    grounds = {PriorityGround.parse(g) for g in declared}
    grounds &= DESK_PRIORITIES
    if elderly_on(birth_date, day):
        grounds.add(PriorityGround.ELDERLY)
    return frozenset(grounds)


def _notes(reg: DeskRegistration) -> str:
    reason = " ".join(reg.refusal_reason.split())[:_MAX_REASON]
    body = " ".join(reg.receiving_body.split())[:300]
    if reg.triage is Triage.REFUSE:
        if not reason:
            raise MissingReason("Từ chối tiếp phải ghi rõ lý do (Luật Tiếp công dân, Điều 9).")
        return f"Lý do từ chối tiếp: {reason}"
    if reg.triage is Triage.FORWARD:
        if not body:
            raise MissingReason("Chuyển đơn phải ghi cơ quan có thẩm quyền nhận đơn.")
        return f"Chuyển đến: {body}"
    return ""


async def _session_for_desk(conn: AsyncConnection, session_id: str, venue: str, today: date) -> SessionRecord:
    taken = await conn.execute(update(session_queues).where(session_queues.c.session_id == session_id)
                               .values(version=session_queues.c.version))
    if taken.rowcount != 1:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    record = await get_session(conn, session_id)
    if record.state not in DESK_STATES:
        raise TicketsNotIssued(f"Phiên «{session_id}» ở trạng thái «{record.state.label_vi}»; "
                               "bàn tiếp nhận không đăng ký thêm công dân.")
    if record.day != today:
        raise SessionNotToday(f"Phiên «{session_id}» diễn ra ngày {record.day:%d/%m/%Y}, không phải hôm nay.")
    if venue not in {v.venue for v in record.venues}:
        raise VenueNotInSession(f"Điểm cầu «{venue}» không tham gia phiên «{session_id}».")
    return record


async def register_at_desk(conn: AsyncConnection, keyring: Keyring, reg: DeskRegistration, *, actor: str,
                           grants: Collection[Grant], clock: Clock) -> DeskResult:
    """Register, triage and (for "đề xuất lãnh đạo tiếp") issue a ticket; see the module docstring.

    Refusals: :class:`NotPermitted`, :class:`UnknownSession`, :class:`TicketsNotIssued` (closed,
    cancelled, planned or postponed session), :class:`SessionNotToday`, :class:`VenueNotInSession`,
    :class:`MissingReason`, the case store's errors (:class:`complaints.errors.IdentityAccessDenied` …)
    and those of :func:`issue_ticket`.
    """
    require_grant(grants, Grant.INTAKE, "đăng ký công dân tại bàn tiếp nhận")
    now = now_of(clock).astimezone(VIETNAM_TZ)
    record = await _session_for_desk(conn, reg.session_id, reg.venue, local_day(now))
    notes = _notes(reg)
    grounds = _grounds(reg.priorities, reg.birth_date, record.day)
    issues = reg.triage is Triage.PROPOSE_LEADER
    if issues and reg.intake.petition.kind is PetitionKind.DENUNCIATION:
        check_handling(True, reg.handling)  # before anything is written
    caller = Caller(label=actor, name=reg.officer or actor, grants=frozenset(grants), venue=reg.venue)
    intake = replace(reg.intake, venue=reg.venue, reception=None)
    result = await record_intake(conn, keyring, caller, intake, now=now)
    entry_id, nth = await add_reception(
        conn, keyring, caller, result.case_id, received_on=now.date(), reception_type=record.session.kind,
        form=record.session.form, with_petition=True, now=now, petitioner_id=result.petitioner_id,
        session_id=record.id, host=record.host, venue=reg.venue, outcome=reg.triage.reception_outcome, notes=notes)
    case = await get_case(conn, result.case_id)
    ticket = None
    handling = None
    if issues:
        handling = reg.handling
        check_handling(case.confidential or await is_confidential(conn, case.id), handling)
        ticket = await issue_ticket(conn, record.id, venue=reg.venue, case=result.case_id, priorities=grounds,
                                    actor=actor, grants=grants, clock=clock)
        await set_issued_handling(conn, ticket.ticket_id, handling)
    await audit(conn, actor=actor, action="desk.registered", target_kind="case", target_id=result.case_id, at=now,
                detail={"session": record.id, "venue": reg.venue, "triage": reg.triage.value, "reception": entry_id,
                        "ticket_no": ticket.ticket_no if ticket else None,
                        "priorities": sorted(g.value for g in grounds),
                        "handling": handling.value if handling else None})
    return DeskResult(session_id=record.id, venue=reg.venue, triage=reg.triage, intake=result, reception_id=entry_id,
                      reception_nth=nth, ticket=ticket, handling=handling)


@dataclass(frozen=True)
class DeskSlip:
    """What the printed slip (phiếu số thứ tự) shows: never a name or an ID number."""

    ticket_id: str
    ticket_no: int
    session_id: str
    session_title: str
    session_day: date
    venue: str
    venue_name: str
    issued_at: datetime
    tracking_code: str
    priorities: tuple[PriorityGround, ...]
    confidential: bool


async def desk_slip(conn: AsyncConnection, ticket_id: str) -> DeskSlip:
    """The slip of ticket ``ticket_id``; :class:`UnknownTicket` if there is none."""
    row = (await conn.execute(
        select(queue_tickets.c.id, queue_tickets.c.ticket_no, queue_tickets.c.session_id, queue_tickets.c.venue_id,
               queue_tickets.c.issued_at, queue_tickets.c.priorities, cases.c.tracking_code, queue_tickets.c.case_id)
        .join(cases, cases.c.id == queue_tickets.c.case_id).where(queue_tickets.c.id == ticket_id))).first()
    if row is None:
        raise UnknownTicket("Không tìm thấy phiếu số thứ tự.")
    record = await get_session(conn, row[2])
    venue = next((v for v in record.venues if v.venue == row[3]), None)
    case_confidential = await is_confidential(conn, row[7])
    issued = row[4] if row[4].tzinfo is not None else row[4].replace(tzinfo=UTC)
    return DeskSlip(ticket_id=row[0], ticket_no=int(row[1]), session_id=record.id, session_title=record.title,
                    session_day=record.day, venue=row[3], venue_name=venue.name if venue else row[3],
                    issued_at=issued.astimezone(VIETNAM_TZ), tracking_code=row[6],
                    priorities=tuple(PriorityGround.parse(p) for p in (row[5] or ())),
                    confidential=case_confidential)
