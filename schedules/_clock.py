"""Time helpers shared by the state machines: nothing here reads the clock.

Callers pass ``now`` (a timezone-aware datetime); the session date and "today" are days in Vietnam's
time zone (``complaints.workdays.VIETNAM_TZ``, Asia/Ho_Chi_Minh: UTC+07:00 without daylight saving since
1975), the one zone every package that may import the complaint database takes.
"""

from __future__ import annotations

from datetime import date, datetime

from complaints.workdays import VIETNAM_TZ as VIETNAM_TZ  # the scheduler's callers name it from here
from complaints.workdays import local_date

from .errors import ClockWentBackwards, InvalidArgument

_MAX_ACTOR = 128


def require_aware(at: datetime) -> datetime:
    """``at`` itself; a naive datetime is refused (its zone, hence its day, would be a guess)."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidArgument("Thời điểm phải có múi giờ (ví dụ +07:00).", code="naive_time")
    return at


def local_day(at: datetime) -> date:
    """The day of ``at`` in Vietnam (UTC+07:00): ``complaints.workdays.local_date``, refusing a naive ``at``."""
    return local_date(require_aware(at))


def check_not_before(last: datetime | None, now: datetime) -> None:
    """Refuse ``now`` earlier than ``last`` (the previous transition): time never runs backwards here."""
    require_aware(now)
    if last is not None and now < last:
        raise ClockWentBackwards(last, now)


def require_actor(actor: str) -> str:
    """The actor id (an account or service id, never a citizen), stripped; empty is refused."""
    text = actor.strip() if isinstance(actor, str) else ""
    if not text or len(text) > _MAX_ACTOR:
        raise InvalidArgument("Thiếu hoặc sai mã người thực hiện thao tác.", code="invalid_actor")
    return text
