"""Which transition of a session is due at an instant: the pure policy of the on-time loop.

Theory of operation
-------------------
:func:`due` looks at one session — its state, day, planned hours (:class:`SessionHours`), the time
of its last transition, and whether a case is being heard — and one instant, and answers a
:class:`Due`: a :class:`Verdict` and, when the timekeeper must act, the :class:`SessionAction` to
apply. It reads no clock and does no I/O; :mod:`schedules.timekeeper` is the driver that reads the
database and acts through :mod:`schedules.sessions` (so the state machine checks every transition
again, with ``expected_version``).

=============  ====================================================  =======================================
state          at the instant ``now`` (local time of Vietnam)        verdict (action)
=============  ====================================================  =======================================
any acted on   earlier than the session's last transition            ``clock_behind`` (none): the clock went
                                                                     back; nothing is done until it is past
published      before the opening time of the session's day          ``wait``
published      on the day, from ``opens_at`` until ``closes_at``     ``open`` (open): also late, when the
                                                                     server was down at ``opens_at``
published      on the day at or after ``closes_at``, or a later day  ``missed`` (none): never opened in its
                                                                     hours; the board postpones or cancels
                                                                     it (a reason code is a person's word)
open           before the closing time                               ``wait`` (the chair starts by hand,
                                                                     after the roll call)
open           at or after the closing time (or a later day)         ``not_started`` (none): the chair never
                                                                     started; closing would record a session
                                                                     held, so the board decides
in_progress    before the closing time                               ``wait``
in_progress    at or after the closing time, a case being heard      ``hold_for_case`` (none): a hearing is
               (called or paused)                                    never cut; close when it ends
in_progress    at or after the closing time, no case being heard     ``close`` (close)
other states   —                                                     ``not_timed`` (none)
=============  ====================================================  =======================================

Tickets still waiting when the session closes are *not reached*: the queue closes with them in it
(their number and status stay on record, nothing is deleted), the ``session.closed`` event tells the
room and the boards (its ``by`` names the timekeeper) and the desk registers those citizens again for a
later session.

Clock jumps: every action needs ``now`` on the session's own day (``open``) or after its closing
instant (``close``) and not before its last transition, so a clock set back never opens twice (the
session is no longer published) and a clock sent forward to another day opens nothing (``missed``,
which the driver logs and counts: a due transition is never skipped silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from complaints.enums import LabelledEnum

from ._clock import require_aware
from .session_hours import SessionHours
from .session_state import ReceptionSession, SessionAction, SessionState

__all__ = ["Due", "Verdict", "due"]


class Verdict(LabelledEnum):
    WAIT = ("wait", "Chưa đến giờ")
    OPEN = ("open", "Đến giờ mở phiên")
    CLOSE = ("close", "Đến giờ kết thúc phiên")
    HOLD_FOR_CASE = ("hold_for_case", "Đã đến giờ kết thúc, chờ vụ việc đang tiếp kết thúc")
    NOT_STARTED = ("not_started", "Đã quá giờ kết thúc mà chưa bắt đầu tiếp công dân")
    MISSED = ("missed", "Đã quá giờ mà phiên chưa được mở")
    CLOCK_BEHIND = ("clock_behind", "Đồng hồ máy chủ sớm hơn thao tác trước đó")
    NOT_TIMED = ("not_timed", "Trạng thái không chuyển theo giờ")


@dataclass(frozen=True, slots=True)
class Due:
    """The verdict for one session at one instant; ``action`` is set for ``open`` and ``close`` only."""

    verdict: Verdict
    action: SessionAction | None = None

    @property
    def acts(self) -> bool:
        return self.action is not None


_TIMED = frozenset({SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS})


def due(session: ReceptionSession, hours: SessionHours, now: datetime, *, case_in_progress: bool) -> Due:
    """The transition due for ``session`` (with its ``hours``) at ``now`` (timezone-aware); see the table
    in the module docstring. ``case_in_progress``: a ticket is called or paused in its queue."""
    require_aware(now)
    if session.state not in _TIMED:
        return Due(Verdict.NOT_TIMED)
    if session.changed_at is not None and now < session.changed_at:
        return Due(Verdict.CLOCK_BEHIND)
    closing = hours.closing(session.day)
    if session.state is SessionState.PUBLISHED:
        if now >= closing:  # also every later day
            return Due(Verdict.MISSED)
        if now >= hours.opening(session.day):
            return Due(Verdict.OPEN, SessionAction.OPEN)
        return Due(Verdict.WAIT)
    if now < closing:
        return Due(Verdict.WAIT)
    if session.state is SessionState.OPEN:
        return Due(Verdict.NOT_STARTED)
    if case_in_progress:
        return Due(Verdict.HOLD_FOR_CASE)
    return Due(Verdict.CLOSE, SessionAction.CLOSE)
