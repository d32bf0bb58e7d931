"""A venue's readiness check before the session: the figures checked and judged (pure), and the check
recorded per venue on SQLite and PostgreSQL, only by the venue itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import (
    InvalidArgument,
    NotPermitted,
    ReadinessProblem,
    ReadinessReport,
    RttSource,
    TurnResult,
    UnknownVenue,
    VenueChoice,
    VenueNotInSession,
    readiness_of,
    record_readiness,
)
from schedules.readiness import assess, checked_report
from schedules.tables import readiness_checks
from signaling.events import VenueReadinessChecked

from .conftest import ADMIN, CHAIR, VENUE_OPERATOR, FakeClock, add_venues, outbox_events, plan

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)
GOOD = ReadinessReport(venue="xa-tien-du", rtt_ms=42.5, rtt_source=RttSource.MEDIA, outgoing_kbps=2400,
                       turn=TurnResult.REACHABLE, camera=True, microphone=True, browser="Chromium 156")


@pytest.mark.unit
def test_good_figures_make_a_ready_venue_and_each_shortfall_is_named() -> None:
    assert assess(checked_report(GOOD)) == ()
    assert assess(checked_report(replace(GOOD, outgoing_kbps=None, rtt_source=RttSource.SIGNALLING,
                                         turn=TurnResult.NOT_CONFIGURED))) == ()  # not publishing yet, no TURN
    poor = replace(GOOD, rtt_ms=850.0, outgoing_kbps=180, turn=TurnResult.UNREACHABLE, camera=False,
                   microphone=False)
    assert assess(checked_report(poor)) == (ReadinessProblem.RTT_HIGH, ReadinessProblem.BANDWIDTH_LOW,
                                            ReadinessProblem.TURN_UNREACHABLE, ReadinessProblem.NO_CAMERA,
                                            ReadinessProblem.NO_MICROPHONE)
    assert assess(checked_report(replace(GOOD, rtt_ms=None, rtt_source=None))) == (ReadinessProblem.RTT_UNKNOWN,)
    assert assess(checked_report(replace(GOOD, rtt_ms=300.0))) == ()  # the limit itself is ready


@pytest.mark.unit
@pytest.mark.parametrize(("changes", "code"), [
    ({"rtt_ms": -1.0}, "bad_rtt"),
    ({"rtt_ms": float("nan")}, "bad_rtt"),
    ({"rtt_ms": 600_000.0}, "bad_rtt"),
    ({"rtt_source": None}, "bad_rtt_source"),
    ({"rtt_ms": None}, "bad_rtt_source"),
    ({"outgoing_kbps": -5}, "bad_bitrate"),
    ({"outgoing_kbps": 10**12}, "bad_bitrate"),
    ({"browser": "x" * 201}, "bad_browser"),
])
def test_figures_out_of_range_are_refused_with_the_reason(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        checked_report(replace(GOOD, **changes))  # type: ignore[arg-type]
    assert caught.value.code == code


async def planned(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du"),
                                                   VenueChoice("phuong-que-vo")])


@pytest.mark.integration
async def test_each_venue_records_its_own_check_and_the_chair_sees_the_latest(engine: AsyncEngine,
                                                                            clock: FakeClock) -> None:
    await planned(engine, clock)
    async with engine.begin() as conn:
        first = await record_readiness(conn, ROOM, replace(GOOD, microphone=False), actor="user:diem-cau",
                                       actor_venue="xa-tien-du", grants=VENUE_OPERATOR, clock=clock)
    clock.advance(minutes=3)
    async with engine.begin() as conn:  # the microphone plugged in, checked again
        second = await record_readiness(conn, ROOM, GOOD, actor="user:diem-cau", actor_venue="xa-tien-du",
                                        grants=VENUE_OPERATOR, clock=clock)
        main = await record_readiness(conn, ROOM, replace(GOOD, venue="tru-so-tinh", rtt_ms=0.4), actor="user:chu-tri",
                                      actor_venue="tru-so-tinh", grants=CHAIR, clock=clock)
    assert first.problems == (ReadinessProblem.NO_MICROPHONE,) and second.ready and main.ready
    async with engine.connect() as conn:
        table = await readiness_of(conn, ROOM)
        kept = (await conn.execute(select(readiness_checks.c.id))).scalars().all()
    assert [(v.venue, v.status) for v in table] == [("tru-so-tinh", "ready"), ("xa-tien-du", "ready"),
                                                   ("phuong-que-vo", "not_checked")]
    assert table[1].latest == replace(second, events=()) and table[1].latest.checked_at == clock.now
    assert len(kept) == 3  # every check is kept
    checked = [e for e in await outbox_events(engine) if isinstance(e, VenueReadinessChecked)]
    assert [(e.venue, e.ready, e.problems) for e in checked] == [
        ("xa-tien-du", False, ("no_microphone",)), ("xa-tien-du", True, ()), ("tru-so-tinh", True, ())]
    assert len({e.key for e in checked}) == 3


@pytest.mark.integration
async def test_a_check_for_another_venue_or_outside_the_session_is_refused(engine: AsyncEngine,
                                                                         clock: FakeClock) -> None:
    await planned(engine, clock)
    refusals: list[tuple[ReadinessReport, str | None, frozenset[object], type[Exception]]] = [
        (GOOD, "phuong-que-vo", VENUE_OPERATOR, NotPermitted),  # an operator reporting for another venue
        (GOOD, None, CHAIR, NotPermitted),                      # an account bound to no venue
        (GOOD, "xa-tien-du", ADMIN, NotPermitted),              # no publish grant
        (replace(GOOD, venue="xa-khong-co"), "xa-khong-co", VENUE_OPERATOR, UnknownVenue),
        (replace(GOOD, venue="xa-gia-binh"), "xa-gia-binh", VENUE_OPERATOR, VenueNotInSession),
        (replace(GOOD, rtt_ms=-3.0), "xa-tien-du", VENUE_OPERATOR, InvalidArgument),
    ]
    for report, venue, grants, error in refusals:
        with pytest.raises(error):
            async with engine.begin() as conn:
                await record_readiness(conn, ROOM, report, actor="user:diem-cau", actor_venue=venue,
                                       grants=grants, clock=clock)  # type: ignore[arg-type]
    async with engine.connect() as conn:
        assert (await conn.execute(select(readiness_checks))).all() == []
    assert not [e for e in await outbox_events(engine) if isinstance(e, VenueReadinessChecked)]
