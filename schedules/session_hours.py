"""The hours of a reception session: when its room opens and when it closes, in Vietnam's local time.

A session has a day (:class:`~schedules.session_state.ReceptionSession`) and two times of day
(Asia/Ho_Chi_Minh, UTC+07:00 all year, see :mod:`schedules._clock`):

* ``opens_at`` — the room opens (state ``published`` → ``open``): the venues join, the roll call and the
  readiness checks run. The chair starts receiving citizens (``open`` → ``in_progress``) by hand, once
  every party is present; by default that is about :data:`DEFAULT_ROLL_CALL` after the opening.
* ``closes_at`` — the planned end (``in_progress`` → ``closed``); a case being heard then is never cut:
  the session closes when it ends (:mod:`schedules.timekeeper`).

No law sets the hours (LTCD Điều 24 asks that the schedule, hence its time, be published). The defaults
are a morning sitting within office hours, the usual form of a leader's reception day: the room opens at
07:30, reception starts at about 08:00 and the session ends at 11:30. The reception board sets other
hours per session; the timekeeper acts on those. A session lies within one day (00:00–23:59, no sitting
across midnight) and lasts at least :data:`MIN_SESSION_LENGTH`; an ad hoc session opened at once
(``tiepdan session open``) runs from that minute to :data:`END_OF_DAY` unless the chair closes it before
(:func:`hours_from`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ._clock import VIETNAM_TZ
from .errors import InvalidSessionHours

__all__ = [
    "DEFAULT_CLOSES_AT",
    "DEFAULT_OPENS_AT",
    "DEFAULT_ROLL_CALL",
    "DEFAULT_SESSION_HOURS",
    "END_OF_DAY",
    "MIN_SESSION_LENGTH",
    "SessionHours",
    "hours_from",
    "parse_time_of_day",
]

#: The room opens for the roll call 30 minutes before reception starts (08:00).
DEFAULT_OPENS_AT = time(7, 30)
DEFAULT_CLOSES_AT = time(11, 30)
DEFAULT_ROLL_CALL = timedelta(minutes=30)
#: The last minute a session may end (sessions do not run across midnight).
END_OF_DAY = time(23, 59)
#: A session shorter than the roll call plus one hearing is not a session.
MIN_SESSION_LENGTH = timedelta(minutes=30)

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _check_time(value: object, what_vi: str) -> time:
    if not isinstance(value, time):
        raise InvalidSessionHours(f"{what_vi} phải là giờ:phút (ví dụ 07:30).", code="bad_time")
    if value.tzinfo is not None:
        raise InvalidSessionHours(f"{what_vi} là giờ Việt Nam, không kèm múi giờ.", code="bad_time")
    if value.second or value.microsecond:
        raise InvalidSessionHours(f"{what_vi} tính theo giờ:phút, không có giây.", code="bad_time")
    return value


@dataclass(frozen=True, slots=True)
class SessionHours:
    """When a session's room opens and when the session ends, local times of its day (validated)."""

    opens_at: time = DEFAULT_OPENS_AT
    closes_at: time = DEFAULT_CLOSES_AT

    def __post_init__(self) -> None:
        opens = _check_time(self.opens_at, "Giờ mở phiên")
        closes = _check_time(self.closes_at, "Giờ kết thúc phiên")
        if closes <= opens:
            raise InvalidSessionHours(
                f"Giờ kết thúc phiên ({closes:%H:%M}) phải sau giờ mở phiên ({opens:%H:%M}).",
                code="closes_before_opens")
        if _minutes(closes) - _minutes(opens) < MIN_SESSION_LENGTH.total_seconds() // 60:
            raise InvalidSessionHours(
                f"Phiên phải kéo dài ít nhất {int(MIN_SESSION_LENGTH.total_seconds() // 60)} phút "
                f"(từ {opens:%H:%M} đến {closes:%H:%M}).", code="session_too_short")

    def opening(self, day: date) -> datetime:
        """The instant the room of a session on ``day`` opens (timezone-aware)."""
        return datetime.combine(day, self.opens_at, tzinfo=VIETNAM_TZ)

    def closing(self, day: date) -> datetime:
        """The instant a session on ``day`` is planned to end (timezone-aware)."""
        return datetime.combine(day, self.closes_at, tzinfo=VIETNAM_TZ)


DEFAULT_SESSION_HOURS = SessionHours()


def hours_from(at: datetime) -> SessionHours:
    """The hours of an ad hoc session opened at ``at`` (timezone-aware): from that minute (at the latest
    :data:`MIN_SESSION_LENGTH` before the end of the day) to :data:`END_OF_DAY`."""
    local = at.astimezone(VIETNAM_TZ)
    latest = datetime.combine(local.date(), END_OF_DAY, tzinfo=VIETNAM_TZ) - MIN_SESSION_LENGTH
    opens = min(local.replace(second=0, microsecond=0), latest)
    return SessionHours(opens_at=opens.time(), closes_at=END_OF_DAY)


def parse_time_of_day(text: str, what_vi: str = "Giờ") -> time:
    """``"07:30"`` → ``time(7, 30)``; anything else (``"7h30"``, ``"25:00"``) is refused."""
    match = _HHMM.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidSessionHours(f"{what_vi} «{str(text)[:16]}» không hợp lệ: ghi theo dạng giờ:phút "
                                  "từ 00:00 đến 23:59, ví dụ 07:30.",
                                  code="bad_time")
    return time(int(match.group(1)), int(match.group(2)))
