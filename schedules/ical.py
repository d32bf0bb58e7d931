"""iCalendar feeds (RFC 5545) of reception sessions, per leader or per venue: a pure builder.

:func:`build_feed` turns session records into one ``VCALENDAR`` that calendar applications subscribe
to. Only sessions that were made public appear (:func:`in_feed`: published, open, in progress,
closed, and those postponed or cancelled after publication); a plan is not announced before it is
published (LTCD Điều 24), and a session rescheduled and not yet published again drops out until it is.

Each session is one ``VEVENT``:

* ``UID`` ``<session id>@<uid_host>`` — stable for the session's whole life, so an application updates
  the event it has instead of adding another; ``SEQUENCE`` is the session's version (it grows with
  every change), ``DTSTAMP`` / ``LAST-MODIFIED`` its last change (no clock is read here).
* ``DTSTART`` / ``DTEND`` in Asia/Ho_Chi_Minh (a ``VTIMEZONE`` is included: UTC+7 since 13/6/1975, no
  daylight saving) from the session's hours (``opens_at`` / ``closes_at``, :mod:`schedules.session_hours`).
* ``STATUS`` ``CONFIRMED``; ``CANCELLED`` for a cancelled session; ``TENTATIVE`` for a postponed one,
  whose summary starts with "Đã hoãn" and whose description gives the reason code's label (never the
  free-text note).
* ``DESCRIPTION``: form (trực tiếp / trực tuyến), kind, host and co-hosts (leader ids), venues, and the
  day-off move (the rule's nominal date) when there was one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneStandard

from .calendar import WEEKDAY_NAMES_VI
from .session_state import SessionState
from .sessions import SessionRecord

__all__ = ["FEED_STATES", "PRODID", "TZID", "build_feed", "in_feed"]

PRODID = "-//tiepdan//Lich tiep cong dan//VI"
TZID = "Asia/Ho_Chi_Minh"
#: States whose sessions are public; postponed and cancelled ones only if they were published first.
FEED_STATES = frozenset({SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS, SessionState.CLOSED})
_AFTER_PUBLICATION = frozenset({SessionState.POSTPONED, SessionState.CANCELLED})


def in_feed(record: SessionRecord) -> bool:
    return record.state in FEED_STATES or (record.state in _AFTER_PUBLICATION and record.published_at is not None)


def _vtimezone() -> Timezone:
    zone = Timezone()
    zone.add("tzid", TZID)
    standard = TimezoneStandard()
    standard.add("dtstart", datetime(1975, 6, 13, 0, 0))
    standard.add("tzoffsetfrom", timedelta(hours=8))
    standard.add("tzoffsetto", timedelta(hours=7))
    standard.add("tzname", "+07")
    zone.add_component(standard)
    return zone


@cache
def _zone() -> ZoneInfo:
    return ZoneInfo(TZID)


def _local(day: date, at: time) -> datetime:
    """``day`` at ``at`` in Vietnam, written ``TZID=Asia/Ho_Chi_Minh`` (the zone of the VTIMEZONE)."""
    return datetime.combine(day, at, tzinfo=_zone())


def _day_vi(day: date) -> str:
    return f"{WEEKDAY_NAMES_VI[day.weekday()]} {day:%d/%m/%Y}"


def _summary(record: SessionRecord) -> str:
    title = record.title or "Tiếp công dân"
    text = f"{title} ({record.session.form.label_vi.lower()})"
    if record.state is SessionState.POSTPONED:
        return f"Đã hoãn: {text}"
    if record.state is SessionState.CANCELLED:
        return f"Đã hủy: {text}"
    return text


def _description(record: SessionRecord) -> str:
    lines = [f"Hình thức: {record.session.form.label_vi}", f"Loại phiên: {record.session.kind.label_vi}"]
    if record.host:
        lines.append(f"Chủ trì: {record.host}")
    if record.cohosts:
        lines.append("Đồng chủ trì: " + ", ".join(record.cohosts))
    if record.venues:
        lines.append("Điểm cầu: " + ", ".join(v.name for v in record.venues))
    if record.nominal_day is not None and record.nominal_day != record.day:
        lines.append(f"Theo lịch định kỳ là {_day_vi(record.nominal_day)} (ngày nghỉ); chuyển sang "
                     f"{_day_vi(record.day)}.")
    if record.state in _AFTER_PUBLICATION and record.session.reason is not None:
        lines.append(f"Trạng thái: {record.state.label_vi}. Lý do: {record.session.reason.label_vi}.")
    return "\n".join(lines)


def _event(record: SessionRecord, uid_host: str) -> Event:
    event = Event()
    event.add("uid", f"{record.id}@{uid_host}")
    event.add("sequence", record.version)
    changed = record.session.changed_at or record.created_at or datetime(record.day.year, 1, 1, tzinfo=UTC)
    event.add("dtstamp", changed.astimezone(UTC))
    event.add("last-modified", changed.astimezone(UTC))
    event.add("dtstart", _local(record.day, record.opens_at))
    event.add("dtend", _local(record.day, record.closes_at))
    event.add("summary", _summary(record))
    event.add("description", _description(record))
    main = record.main_venue
    if main is not None:
        event.add("location", main.name)
    status = {SessionState.CANCELLED: "CANCELLED", SessionState.POSTPONED: "TENTATIVE"}.get(record.state, "CONFIRMED")
    event.add("status", status)
    event.add("transp", "OPAQUE")
    return event


def build_feed(name: str, records: Iterable[SessionRecord], *, uid_host: str = "tiepdan") -> bytes:
    """The feed named ``name`` (shown by calendar applications) of those ``records`` that are public,
    in date order (see the module docstring)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", TZID)
    calendar.add_component(_vtimezone())
    shown: list[Any] = sorted((r for r in records if in_feed(r)), key=lambda r: (r.day, r.id))
    for record in shown:
        calendar.add_component(_event(record, uid_host))
    return bytes(calendar.to_ical())
