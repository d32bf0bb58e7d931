"""The exception hierarchy of the schedules package.

Every message is Vietnamese (it may reach a person through the console) and never contains personal
data: no citizen name, ID number or address appears in a message (CONVENTIONS.md rule 14). Each error
carries a stable English ``code`` for programs, tests and the mapping to HTTP / WebSocket codes.
Enumeration values that fail to parse raise ``complaints.errors.UnknownEnumValue`` (the enumerations
here are ``complaints.enums.LabelledEnum`` subclasses).
"""

from __future__ import annotations

from datetime import date, datetime

__all__ = [
    "AnnouncementError",
    "CaseInProgress",
    "ClockWentBackwards",
    "ConcurrentChange",
    "DuplicateTicket",
    "IllegalTransition",
    "InvalidAnnouncement",
    "InvalidArgument",
    "InvalidChipId",
    "InvalidRule",
    "InvalidSessionHours",
    "MissingReason",
    "NoCaseInProgress",
    "NoWorkingDay",
    "NotPermitted",
    "NobodyWaiting",
    "NotRecallable",
    "PublishTooLate",
    "QueueClosed",
    "QueueError",
    "QueuePaused",
    "QueueNotPaused",
    "RollCallMissing", "MainVenueLinkLost",
    "SchedulesError",
    "SessionDatePassed",
    "SessionError",
    "SessionExists",
    "SessionNotInProgress",
    "SessionNotToday",
    "SynthesisFailed",
    "SynthesisTimeout",
    "SynthesizerMissing",
    "TicketNotWaiting",
    "TicketsNotIssued",
    "UnknownCase",
    "UnknownSession",
    "UnknownTicket",
    "UnknownVenue",
    "VenueExists",
    "VenueInUse",
    "VenueNotInSession",
]


class SchedulesError(Exception):
    """Base of every error raised by the schedules package."""

    code: str = "schedules_error"

    def __init__(self, message_vi: str, *, code: str | None = None) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi
        if code is not None:
            self.code = code


class InvalidArgument(SchedulesError, ValueError):
    """An argument a caller passed is unusable (naive datetime, empty actor id, out-of-range number)."""

    code = "invalid_argument"


class ClockWentBackwards(SchedulesError):
    """``now`` is earlier than the last recorded transition: a clock jump, or a stale request."""

    code = "clock_went_backwards"

    def __init__(self, last: datetime, now: datetime) -> None:
        super().__init__(
            "Thời điểm thao tác sớm hơn thao tác trước đó (đồng hồ máy chủ bị lùi hoặc yêu cầu đã cũ); "
            "thao tác bị từ chối, hãy kiểm tra đồng hồ rồi thử lại."
        )
        self.last = last
        self.now = now


class NotPermitted(SchedulesError, PermissionError):
    """The caller's grants do not allow the action (a venue operator calling the next case)."""

    code = "forbidden"


class ConcurrentChange(SchedulesError):
    """The record changed since the caller read it (another desk, another process): reload and retry."""

    code = "stale_version"

    def __init__(self, message_vi: str, *, current: int, expected: int) -> None:
        super().__init__(message_vi)
        self.current = current
        self.expected = expected


# -- calendar ---------------------------------------------------------------------------------------


class InvalidRule(SchedulesError, ValueError):
    """A calendar rule that cannot produce dates (day 0, month 13, "the 5th Monday", an empty range)."""

    code = "invalid_rule"


class NoWorkingDay(SchedulesError):
    """No working day within the search window after a date (calendar data that closes every day)."""

    code = "no_working_day"


# -- session state machine ---------------------------------------------------------------------------


class SessionError(SchedulesError):
    """Base of the reception-session errors."""

    code = "session_error"


class IllegalTransition(SessionError):
    """The action is not allowed from the session's current state; names both states."""

    code = "illegal_transition"

    def __init__(self, message_vi: str, *, from_state: str, action: str, to_state: str) -> None:
        super().__init__(message_vi)
        self.from_state = from_state
        self.action = action
        self.to_state = to_state


class PublishTooLate(SessionError):
    """Publishing now leaves fewer working days than LTCD Điều 24 requires, and no written reason."""

    code = "publish_too_late"

    def __init__(self, message_vi: str, *, working_days_left: int, required: int, last_day: date) -> None:
        super().__init__(message_vi)
        self.working_days_left = working_days_left
        self.required = required
        self.last_day = last_day


class MissingReason(SessionError, ValueError):
    """A reason is required (postponement "other", late publication) and is missing or too short."""

    code = "missing_reason"


class SessionNotToday(SessionError):
    """A session is opened on another day than its date."""

    code = "not_session_day"


class SessionDatePassed(SessionError):
    """The session date is already past for what was asked (plan, publish, reschedule)."""

    code = "session_date_passed"


class UnknownSession(SessionError, LookupError):
    code = "unknown_session"


class InvalidSessionHours(SessionError, ValueError):
    """The opening or closing time of a session is unusable: not hh:mm (within one day), or the session
    would close before it opens (``code``: ``bad_time``, ``closes_before_opens``, ``session_too_short``)."""

    code = "invalid_session_hours"


class SessionExists(SessionError):
    """A session with this id is already planned (ids are room ids: one per session, for ever)."""

    code = "session_exists"


class SessionNotInProgress(SessionError):
    """A queue action on a session that is not receiving citizens (not started yet, or closed)."""

    code = "session_not_in_progress"


class TicketsNotIssued(SessionError):
    """A ticket asked for a session that takes no more registrations (closed or cancelled)."""

    code = "tickets_not_issued"


# -- venues ------------------------------------------------------------------------------------------


class UnknownVenue(SchedulesError, LookupError):
    code = "unknown_venue"


class VenueExists(SchedulesError):
    code = "venue_exists"


class VenueInUse(SchedulesError):
    """A venue a session uses cannot be deleted (deactivate it instead: the record stays)."""

    code = "venue_in_use"


class VenueNotInSession(SchedulesError):
    """A ticket for a venue the session does not link (registration at the wrong venue)."""

    code = "venue_not_in_session"


# -- queue -------------------------------------------------------------------------------------------


class QueueError(SchedulesError):
    """Base of the queue (call order) errors."""

    code = "queue_error"


class QueueClosed(QueueError):
    code = "queue_closed"


class NobodyWaiting(QueueError):
    code = "nobody_waiting"


class CaseInProgress(QueueError):
    code = "case_in_progress"


class NoCaseInProgress(QueueError):
    code = "no_case_in_progress"


class QueuePaused(QueueError):
    code = "queue_paused"


class QueueNotPaused(QueueError):
    code = "queue_not_paused"


class UnknownTicket(QueueError, LookupError):
    code = "unknown_ticket"


class DuplicateTicket(QueueError):
    code = "duplicate_ticket"


class UnknownCase(QueueError, LookupError):
    """A ticket for a case the complaint database does not hold."""

    code = "unknown_case"


class NotRecallable(QueueError):
    """Recall or mark absent a ticket that was never called, or is finished."""

    code = "not_recallable"


class TicketNotWaiting(QueueError):
    """Change the priorities of, or release, a ticket that is not waiting (or not deferred)."""

    code = "ticket_not_waiting"


class RollCallMissing(QueueError):
    """The first call of a session opened without a roll call of its venues (QĐ 748: every party present),
    or with its main venue absent at the roll call."""

    code = "roll_call_missing"


class MainVenueLinkLost(QueueError):
    """A call while the main venue's link is lost: the chair would neither see nor hear the citizen called
    (QĐ 748: every party takes part at once, online and continuously)."""

    code = "main_venue_link_lost"


# -- announcements -----------------------------------------------------------------------------------


class AnnouncementError(SchedulesError):
    """Base of the announcement errors."""

    code = "announcement_error"


class InvalidAnnouncement(AnnouncementError, ValueError):
    code = "invalid_announcement"


class SynthesizerMissing(AnnouncementError):
    """espeak-ng is not installed (or not at the configured path)."""

    code = "synthesizer_missing"


class SynthesisTimeout(AnnouncementError):
    code = "synthesis_timeout"


class SynthesisFailed(AnnouncementError):
    code = "synthesis_failed"


# -- chip ID card ------------------------------------------------------------------------------------


class InvalidChipId(SchedulesError, ValueError):
    """The QR text of a chip ID card is malformed; ``field`` names the faulty field (English), if any."""

    code = "invalid_chip_id"

    def __init__(self, message_vi: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message_vi, code=code)
        self.field = field
