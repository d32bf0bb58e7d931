"""The sessions of a calendar rule, created in the database for a date range (idempotent).

:func:`create_periodic_sessions` plans one session per occurrence of a rule
(:func:`schedules.calendar.occurrences`: nominal dates moved off days off on the working-day
calendar) whose day lies in the range and is not past. Each session remembers the rule (``rule_key``)
and the nominal date; a second run over the same range, or an overlapping one, creates only what is
missing (the unique constraint on (rule_key, nominal date) also stops two processes running it at
once). A session's id is ``<rule_key>-<YYYY-MM-DD>`` of the day it is held.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import IssuingTrack, ReceptionForm, ReceptionType
from complaints.workdays import CalendarWarning, WorkCalendar
from signaling.grants import Grant

from ._clock import local_day
from ._service import Clock, check_slug, now_of, require_grant
from .calendar import PeriodicRule, Rule, occurrences
from .errors import InvalidArgument, SessionExists
from .sessions import VenueChoice, plan_session
from .tables import reception_sessions

__all__ = ["MAX_RULE_KEY", "PeriodicPlan", "create_periodic_sessions"]

#: ``<rule_key>-YYYY-MM-DD`` must fit a 64-character session id.
MAX_RULE_KEY = 53


@dataclass(frozen=True, slots=True)
class PeriodicPlan:
    """What a run did: sessions created, occurrences that already had theirs, days already past, and
    the calendar's warnings for the range (years without an official notice of days off …)."""

    created: tuple[str, ...]
    existing: tuple[date, ...]
    passed: tuple[date, ...]
    warnings: tuple[CalendarWarning, ...]


async def create_periodic_sessions(
    conn: AsyncConnection, *, rule: Rule, rule_key: str, start: date, end: date, calendar: WorkCalendar,
    form: ReceptionForm, venues_chosen: Sequence[VenueChoice], main: str | None = None, host: str | None = None,
    cohosts: Sequence[str] = (), track: IssuingTrack | str | None = None, actor: str, grants: Collection[Grant],
    clock: Clock,
) -> PeriodicPlan:
    """Plan the sessions of ``rule`` held from ``start`` to ``end`` (see the module docstring); grant
    ``manage``. A :class:`~schedules.calendar.PeriodicRule` makes periodic (định kỳ) sessions, an
    :class:`~schedules.calendar.AdHocRule` ad hoc (đột xuất) ones."""
    require_grant(grants, Grant.MANAGE, "lập lịch tiếp công dân")
    check_slug(rule_key, "Mã lịch định kỳ", code="bad_rule_key")
    if len(rule_key) > MAX_RULE_KEY:
        raise InvalidArgument(f"Mã lịch định kỳ tối đa {MAX_RULE_KEY} ký tự.", code="bad_rule_key")
    found = occurrences(rule, start, end, calendar)
    kind = ReceptionType.PERIODIC if isinstance(rule, PeriodicRule) else ReceptionType.AD_HOC
    taken = set((await conn.execute(select(reception_sessions.c.nominal_day)
                                    .where(reception_sessions.c.rule_key == rule_key))).scalars().all())
    today = local_day(now_of(clock))
    created: list[str] = []
    existing: list[date] = []
    passed: list[date] = []
    for occurrence in found.items:
        if occurrence.nominal in taken:
            existing.append(occurrence.day)
            continue
        if occurrence.day < today:
            passed.append(occurrence.day)
            continue
        session_id = f"{rule_key}-{occurrence.day:%Y-%m-%d}"
        try:
            record = await plan_session(
                conn, session_id=session_id, day=occurrence.day, form=form, kind=kind, venues_chosen=venues_chosen,
                main=main, host=host, cohosts=cohosts, title=rule.label_vi, rule_key=rule_key,
                nominal_day=occurrence.nominal, track=track, actor=actor, grants=grants, clock=clock)
        except SessionExists:
            existing.append(occurrence.day)
            continue
        created.append(record.id)
    return PeriodicPlan(created=tuple(created), existing=tuple(existing), passed=tuple(passed),
                        warnings=found.warnings)
