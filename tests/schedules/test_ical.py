"""The iCalendar feed builder, read back with the ``icalendar`` package: the Secretary's quarterly
sessions of 2027–2028 on their real days (with the day-off moves), Asia/Ho_Chi_Minh, stable UIDs,
SEQUENCE from the version, cancelled and postponed sessions shown as such, plans left out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from icalendar import Calendar

from complaints.enums import ReceptionForm, ReceptionType
from complaints.workdays import default_calendar
from schedules.calendar import PeriodicRule, occurrences
from schedules.ical import TZID, build_feed, in_feed
from schedules.session_state import ReceptionSession, SessionReason, SessionState
from schedules.sessions import SessionRecord, SessionVenue

pytestmark = pytest.mark.unit

CHANGED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
MAIN = SessionVenue("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh Bắc Ninh", True, None, None)
TIEN_DU = SessionVenue("xa-tien-du", "Xã Tiên Du", False, None, 800)


def record(session_id: str, day: date, *, state: SessionState = SessionState.PUBLISHED, version: int = 2,
           nominal: date | None = None, published: bool = True, reason: SessionReason | None = None) -> SessionRecord:
    session = ReceptionSession(session_id=session_id, day=day, form=ReceptionForm.ONLINE,
                               kind=ReceptionType.PERIODIC, state=state, changed_at=CHANGED, reason=reason)
    return SessionRecord(session=session, version=version, host="bi-thu-tinh-uy", title="Tiếp công dân định kỳ",
                         cohosts=("chu-tich-ubnd-tinh",), venues=(MAIN, TIEN_DU), rule_key="quy",
                         nominal_day=nominal or day, created_at=CHANGED,
                         published_at=CHANGED if published else None)


def parse(feed: bytes) -> Calendar:
    return Calendar.from_ical(feed)


def test_quarterly_sessions_of_2027_and_2028_appear_on_their_real_days_in_vietnam_time() -> None:
    found = occurrences(PeriodicRule.quarterly(), date(2027, 1, 1), date(2028, 12, 31), default_calendar())
    records = [record(f"quy-{o.day:%Y-%m-%d}", o.day, nominal=o.nominal) for o in found.items]
    calendar = parse(build_feed("Lịch tiếp công dân của Bí thư Tỉnh ủy", reversed(records)))
    assert str(calendar["X-WR-CALNAME"]) == "Lịch tiếp công dân của Bí thư Tỉnh ủy"
    (zone,) = calendar.walk("VTIMEZONE")
    assert str(zone["TZID"]) == TZID == "Asia/Ho_Chi_Minh"
    (standard,) = zone.walk("STANDARD")
    assert standard.decoded("TZOFFSETTO") == timedelta(hours=7)
    events = calendar.walk("VEVENT")
    assert [e.decoded("DTSTART").date() for e in events] == [
        date(2027, 3, 10), date(2027, 6, 10), date(2027, 9, 10), date(2027, 12, 10),
        date(2028, 3, 10), date(2028, 6, 12), date(2028, 9, 11), date(2028, 12, 11)]
    # the default morning sitting, 07:30–11:30 in Vietnam (00:30–04:30 UTC)
    assert {e["DTSTART"].params["TZID"] for e in events} == {"Asia/Ho_Chi_Minh"}
    assert {e.decoded("DTSTART").astimezone(UTC).time() for e in events} == {time(0, 30)}
    assert {e.decoded("DTEND") - e.decoded("DTSTART") for e in events} == {timedelta(hours=4)}
    assert [str(e["UID"]) for e in events][:2] == ["quy-2027-03-10@tiepdan", "quy-2027-06-10@tiepdan"]
    june_2028 = events[5]
    assert "Theo lịch định kỳ là Thứ Bảy 10/06/2028 (ngày nghỉ); chuyển sang Thứ Hai 12/06/2028." in str(
        june_2028["DESCRIPTION"])
    assert str(june_2028["LOCATION"]) == "Trụ sở Tiếp công dân tỉnh Bắc Ninh"
    assert "Xã Tiên Du" in str(june_2028["DESCRIPTION"]) and "trực tuyến" in str(june_2028["SUMMARY"])
    assert {str(e["STATUS"]) for e in events} == {"CONFIRMED"}


def test_a_session_s_own_hours_become_its_start_and_end() -> None:
    afternoon = replace(record("chieu", date(2027, 3, 10)), opens_at=time(13, 30), closes_at=time(17, 0))
    (event,) = parse(build_feed("x", [afternoon])).walk("VEVENT")
    assert event.decoded("DTSTART").isoformat() == "2027-03-10T13:30:00+07:00"
    assert event.decoded("DTEND").isoformat() == "2027-03-10T17:00:00+07:00"
    assert "DTSTART;TZID=Asia/Ho_Chi_Minh:20270310T133000" in build_feed("x", [afternoon]).decode()


def test_uid_stays_and_sequence_follows_the_session_version() -> None:
    first = record("quy-2027-03-10", date(2027, 3, 10), version=2)
    later = replace(first, version=5)
    (a,) = parse(build_feed("x", [first])).walk("VEVENT")
    (b,) = parse(build_feed("x", [later])).walk("VEVENT")
    assert a["UID"] == b["UID"]
    assert (a.decoded("SEQUENCE"), b.decoded("SEQUENCE")) == (2, 5)
    assert b.decoded("DTSTAMP") == CHANGED


def test_cancelled_and_postponed_sessions_say_so_and_plans_stay_out() -> None:
    records = [
        record("ke-hoach", date(2027, 3, 10), state=SessionState.PLANNED, published=False),
        record("hoan-truoc-cong-bo", date(2027, 4, 12), state=SessionState.POSTPONED, published=False,
               reason=SessionReason.CHAIR_UNAVAILABLE),
        record("da-huy", date(2027, 6, 10), state=SessionState.CANCELLED, reason=SessionReason.DISASTER_EPIDEMIC),
        record("da-hoan", date(2027, 9, 10), state=SessionState.POSTPONED, reason=SessionReason.CHAIR_UNAVAILABLE),
        record("da-xong", date(2027, 12, 10), state=SessionState.CLOSED),
    ]
    assert [in_feed(r) for r in records] == [False, False, True, True, True]
    events = {str(e["UID"]).split("@")[0]: e for e in parse(build_feed("x", records)).walk("VEVENT")}
    assert set(events) == {"da-huy", "da-hoan", "da-xong"}
    assert str(events["da-huy"]["STATUS"]) == "CANCELLED" and str(events["da-huy"]["SUMMARY"]).startswith("Đã hủy")
    assert str(events["da-hoan"]["STATUS"]) == "TENTATIVE"
    assert str(events["da-hoan"]["SUMMARY"]).startswith("Đã hoãn")
    assert "Người chủ trì có công tác đột xuất" in str(events["da-hoan"]["DESCRIPTION"])
    assert str(events["da-xong"]["STATUS"]) == "CONFIRMED"
