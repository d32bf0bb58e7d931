"""The call-order policy: in which order the tickets still waiting are called.

One shared, server-computed order for every venue (domain.md §9 item 1), so the order cannot be
disputed: :func:`call_order` is a pure function of the tickets and the venues whose link is down, and
every place where it departs from plain ticket order is returned with a reason code the queue board
shows.

The rule (policy version 1)
---------------------------
Only tickets in status ``waiting`` are ordered. Each is put in a class, then ordered inside its class:

1. cases the chair pre-selected for this session (the focus content published under LTCD Điều 24;
   Phú Thọ's Secretary session handled one named case, domain.md §7.0), by ticket number;
2. citizens with a priority ground — elderly, disabled, pregnant — by ticket number (the three grounds
   rank equally: the first to take a ticket is called first);
3. everyone else, by ticket number;
4. no-shows sent to the end: a citizen called who did not come forward goes to the end **once**, in the
   order they were passed over; a second no-show makes the ticket absent (the queue does that, not this
   function). A no-show loses its class: a priority ticket sent to the end stays at the end.

Tickets whose venue has lost its link (``unavailable_venues``) and tickets the chair deferred are not
callable now but **keep their number**: they are left out of ``order`` and listed in ``held``; when the
venue returns (or the deferral is lifted) they come back at their own place, not at the end.

Priority grounds and their sources:

* **elderly** — a Vietnamese citizen "từ đủ 60 tuổi trở lên" (Luật Người cao tuổi 39/2009/QH12,
  Điều 2), computed by :func:`is_elderly` on the session date. That the elderly are served first at a
  reception is provincial practice (the reception rules, nội quy tiếp công dân) and the law's general
  right to priority in services (Điều 3 k1) — the exact clause is UNVERIFIED;
* **disabled** — người khuyết tật (Luật Người khuyết tật 51/2010/QH12), declared at the desk;
* **pregnant** — phụ nữ mang thai, declared at the desk; provincial practice, no statutory clause found
  (UNVERIFIED).

Groups (đoàn đông người) speak through their representatives (LTCD Điều 29) on one ticket: no extra
rule here. The policy is deterministic: the result depends only on the tickets' fields, never on the
order of the input.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date

from complaints.enums import LabelledEnum

from .errors import DuplicateTicket, InvalidArgument

__all__ = [
    "ELDERLY_AGE",
    "CallOrder",
    "PriorityGround",
    "Reorder",
    "ReorderReason",
    "Ticket",
    "TicketStatus",
    "age_on",
    "call_order",
    "is_elderly",
]

#: Luật Người cao tuổi 2009, Điều 2: "công dân Việt Nam từ đủ 60 tuổi trở lên".
ELDERLY_AGE = 60


class PriorityGround(LabelledEnum):
    """Why a ticket is called before plain ticket order (recorded at the desk or by the chair)."""

    CHAIR_SELECTED = ("chair_selected", "Vụ việc do người chủ trì chọn trước")
    DISABLED = ("disabled", "Người khuyết tật")
    PREGNANT = ("pregnant", "Phụ nữ mang thai")
    ELDERLY = ("elderly", "Người cao tuổi (từ đủ 60 tuổi)")


class TicketStatus(LabelledEnum):
    WAITING = ("waiting", "Đang chờ")
    CALLED = ("called", "Đang được tiếp")
    DEFERRED = ("deferred", "Tạm hoãn, giữ số thứ tự")
    CLOSED = ("closed", "Đã tiếp xong")
    ABSENT = ("absent", "Vắng mặt")
    #: A denunciation the desk handed to the in-person reception (tiếp trực tiếp riêng, outside the online
    #: session): it keeps its number, is never called in the online order and is not "closed" here.
    IN_PERSON = ("in_person", "Chuyển tiếp trực tiếp riêng")


class ReorderReason(LabelledEnum):
    """Why a ticket is not at its place in plain ticket order (shown on the queue board)."""

    CHAIR_SELECTED = ("chair_selected", "Vụ việc do người chủ trì chọn trước")
    DISABLED = ("disabled", "Ưu tiên người khuyết tật")
    PREGNANT = ("pregnant", "Ưu tiên phụ nữ mang thai")
    ELDERLY = ("elderly", "Ưu tiên người cao tuổi")
    NO_SHOW = ("no_show", "Không có mặt khi được gọi, chuyển xuống cuối danh sách")
    DEFERRED = ("deferred", "Tạm hoãn, giữ nguyên số thứ tự")
    VENUE_UNAVAILABLE = ("venue_unavailable", "Điểm cầu mất kết nối, giữ nguyên số thứ tự")


_GROUND_REASON = {
    PriorityGround.CHAIR_SELECTED: ReorderReason.CHAIR_SELECTED,
    PriorityGround.DISABLED: ReorderReason.DISABLED,
    PriorityGround.PREGNANT: ReorderReason.PREGNANT,
    PriorityGround.ELDERLY: ReorderReason.ELDERLY,
}
_LEGAL_GROUNDS = (PriorityGround.DISABLED, PriorityGround.PREGNANT, PriorityGround.ELDERLY)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A queue ticket (phiếu số thứ tự) as the call order sees it: number, venue, case, never a name.

    ``no_shows`` counts calls the citizen did not answer; ``requeue_seq`` (> 0 once sent to the end)
    orders the tickets at the end; ``last_call_seq`` is the call that last called it (0: never called).
    """

    ticket_id: str
    ticket_no: int
    venue: str
    case: str
    priorities: frozenset[PriorityGround] = frozenset()
    status: TicketStatus = TicketStatus.WAITING
    no_shows: int = 0
    requeue_seq: int = 0
    last_call_seq: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.ticket_no, bool) or not isinstance(self.ticket_no, int) or self.ticket_no < 1:
            raise InvalidArgument("Số thứ tự phải là số nguyên dương.", code="bad_ticket_no")
        if not self.ticket_id or not self.venue or not self.case:
            raise InvalidArgument("Phiếu số thứ tự thiếu mã phiếu, điểm cầu hoặc vụ việc.", code="bad_ticket")

    @property
    def requeued(self) -> bool:
        return self.requeue_seq > 0

    @property
    def priority_reason(self) -> ReorderReason | None:
        """The ground that puts this ticket ahead (chair's choice first), or None."""
        if PriorityGround.CHAIR_SELECTED in self.priorities:
            return ReorderReason.CHAIR_SELECTED
        for ground in _LEGAL_GROUNDS:
            if ground in self.priorities:
                return _GROUND_REASON[ground]
        return None


@dataclass(frozen=True, slots=True)
class Reorder:
    """One departure from plain ticket order: the ticket number and why."""

    ticket_no: int
    reason: ReorderReason


@dataclass(frozen=True, slots=True)
class CallOrder:
    """The result of :func:`call_order`.

    ``order``: the callable waiting tickets, first to call first. ``held``: waiting tickets passed over
    for now (venue link down, deferred), by ticket number. ``reorders``: every ticket not at its place
    in plain ticket order of all waiting tickets — moved ahead (a priority), moved back (a no-show) or
    overtaken while held — in ``order`` order, then the held ones.
    """

    order: tuple[Ticket, ...]
    held: tuple[Ticket, ...]
    reorders: tuple[Reorder, ...]

    @property
    def next(self) -> Ticket | None:
        return self.order[0] if self.order else None

    def reason_for(self, ticket_no: int) -> ReorderReason | None:
        for reorder in self.reorders:
            if reorder.ticket_no == ticket_no:
                return reorder.reason
        return None


def age_on(birth_date: date, day: date) -> int:
    """Full years of age on ``day`` (someone born on 29 February has the birthday on 1 March)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def is_elderly(birth_date: date, day: date) -> bool:
    """True when the citizen is "từ đủ 60 tuổi trở lên" on ``day`` (Luật Người cao tuổi, Điều 2)."""
    return age_on(birth_date, day) >= ELDERLY_AGE


def _rank(ticket: Ticket) -> tuple[int, int, int]:
    if ticket.requeued:
        return (3, ticket.requeue_seq, ticket.ticket_no)
    reason = ticket.priority_reason
    if reason is ReorderReason.CHAIR_SELECTED:
        return (0, ticket.ticket_no, 0)
    if reason is not None:
        return (1, ticket.ticket_no, 0)
    return (2, ticket.ticket_no, 0)


def call_order(tickets: Iterable[Ticket], *, unavailable_venues: Collection[str] = frozenset()) -> CallOrder:
    """The order in which the waiting tickets are called; see the module docstring for the rule.

    ``tickets`` are the session's tickets in any status and any order (numbers unique, else
    :class:`~schedules.errors.DuplicateTicket`); ``unavailable_venues`` the venues whose link is down.
    Only waiting and deferred tickets play a part, so a caller may leave the others out (the queue
    driver gives only the open tickets: :func:`schedules.calls.call_next`). Time O(n log n) in the
    number of tickets, whatever their priorities: the call-next request sorts a session's whole queue.
    """
    given = tuple(tickets)
    if len({t.ticket_no for t in given}) != len(given):
        raise DuplicateTicket("Hai phiếu trong hàng đợi trùng số thứ tự.")
    down = frozenset(unavailable_venues)
    callable_: list[Ticket] = []
    held: list[Ticket] = []
    for t in given:
        if t.status is TicketStatus.WAITING:
            (held if t.venue in down else callable_).append(t)
        elif t.status is TicketStatus.DEFERRED:
            held.append(t)
    held.sort(key=lambda t: t.ticket_no)
    # _rank is unique per ticket (numbers are), so the result does not depend on the input's order
    order = sorted(callable_, key=_rank)

    # lowest_after[i]: the lowest number after position i not itself sent to the end (0: none)
    lowest_after = [0] * len(order)
    lowest = 0
    for index in range(len(order) - 1, -1, -1):
        lowest_after[index] = lowest
        if not order[index].requeued and (lowest == 0 or order[index].ticket_no < lowest):
            lowest = order[index].ticket_no
    reorders: list[Reorder] = []
    highest_before = 0
    for index, ticket in enumerate(order):
        if ticket.requeued:
            # Moved back: a higher number is called before it.
            if highest_before > ticket.ticket_no:
                reorders.append(Reorder(ticket.ticket_no, ReorderReason.NO_SHOW))
        elif (reason := ticket.priority_reason) is not None:
            # Moved ahead: a lower number, not itself sent to the end, is called after it.
            if 0 < lowest_after[index] < ticket.ticket_no:
                reorders.append(Reorder(ticket.ticket_no, reason))
        highest_before = max(highest_before, ticket.ticket_no)
    for ticket in held:
        # Overtaken while held when a higher number is callable before it comes back.
        if highest_before > ticket.ticket_no:
            reason = (
                ReorderReason.DEFERRED if ticket.status is TicketStatus.DEFERRED else ReorderReason.VENUE_UNAVAILABLE
            )
            reorders.append(Reorder(ticket.ticket_no, reason))
    return CallOrder(order=tuple(order), held=tuple(held), reorders=tuple(reorders))
