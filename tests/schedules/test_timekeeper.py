"""The timekeeper on a real database (SQLite and PostgreSQL) with a fake clock: it opens a session at its
opening time, closes it at its closing time only once the case being heard has ended, does nothing twice
after a restart, reports what it does not do, survives clock jumps, and acts only while it holds its
leader lock."""

from __future__ import annotations

import logging
from datetime import date
from datetime import time as dt_time

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import VenueChoice, calls, get_session, issue_ticket, publish_session, sessions, start_session
from schedules.session_state import SessionAction, SessionState
from schedules.tables import queue_tickets, reception_sessions
from schedules.timekeeper import TIMEKEEPER_ACTOR, TickReport, Timekeeper, TimekeeperMetrics, TimekeeperOptions
from schedules.timekeeping import Due, Verdict
from signaling.events import SessionClosed, SessionOpened
from signaling.leader import MemoryLeaderLock, MemoryLocks, RedisLeaderLock

from ._roll_call import record_all_present
from .conftest import ACTOR, ALL, CALENDAR, FakeClock, add_venues, make_cases, outbox_events, plan

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)
VENUES = [VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")]


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keeper(engine: AsyncEngine, clock: FakeClock, table: MemoryLocks,
           metrics: TimekeeperMetrics | None = None) -> Timekeeper:
    return Timekeeper(engine, MemoryLeaderLock(table, "timekeeper", ttl_s=30), clock=clock,
                      options=TimekeeperOptions(tick_s=5), metrics=metrics)


async def published(engine: AsyncEngine, clock: FakeClock, cases: int = 0) -> list[str]:
    await add_venues(engine, clock)
    made = await make_cases(engine, cases) if cases else []
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=VENUES)
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ALL, clock=clock)
        for case in made:
            await issue_ticket(conn, ROOM, venue="xa-tien-du", case=case, actor=ACTOR, grants=ALL, clock=clock)
    return made


async def state_of(engine: AsyncEngine) -> SessionState:
    async with engine.connect() as conn:
        return (await get_session(conn, ROOM)).state


async def test_opens_at_the_opening_time_and_closes_after_the_last_case_ends_once_even_after_restart(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await published(engine, clock, cases=2)
    table = MemoryLocks(clock=Monotonic())
    registry = CollectorRegistry()
    tk = keeper(engine, clock, table, TimekeeperMetrics(registry))

    clock.set_local(DAY, 7, 29)
    assert (await tk.tick()).opened == [] and await state_of(engine) is SessionState.PUBLISHED
    clock.set_local(DAY, 7, 30)
    report = await tk.tick()
    assert report.leader and report.opened == [ROOM]
    opened = [e for e in await outbox_events(engine) if isinstance(e, SessionOpened)]
    assert len(opened) == 1 and opened[0].by == TIMEKEEPER_ACTOR and [v.venue for v in opened[0].venues] == [
        "tru-so-tinh", "xa-tien-du"]
    clock.advance(seconds=5)
    assert (await tk.tick()).opened == []  # nothing twice
    await tk.close()

    restarted = keeper(engine, clock, table, tk._metrics)  # a restart reads everything again
    clock.advance(seconds=5)
    assert (await restarted.tick()).opened == []

    # the chair starts after the roll call and calls the first case; it is still being heard at 11:30
    clock.set_local(DAY, 8, 0)
    async with engine.begin() as conn:
        await record_all_present(conn, ROOM, clock=clock)
        await start_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    clock.set_local(DAY, 11, 20)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    clock.set_local(DAY, 11, 30)
    report = await restarted.tick()
    assert report.closed == [] and report.verdicts[ROOM] is Verdict.HOLD_FOR_CASE
    clock.set_local(DAY, 11, 48)
    assert (await restarted.tick()).closed == []  # never cut: held as long as the hearing lasts
    async with engine.begin() as conn:
        await calls.end_case(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    clock.advance(seconds=5)
    assert (await restarted.tick()).closed == [ROOM]
    assert await state_of(engine) is SessionState.CLOSED
    closed = [e for e in await outbox_events(engine) if isinstance(e, SessionClosed)]
    assert len(closed) == 1 and closed[0].by == TIMEKEEPER_ACTOR and closed[0].not_reached == 1  # ticket 2
    async with engine.connect() as conn:  # the ticket not reached stays on record, waiting, in a closed queue
        statuses = (await conn.execute(select(queue_tickets.c.ticket_no, queue_tickets.c.status)
                                       .where(queue_tickets.c.session_id == ROOM)
                                       .order_by(queue_tickets.c.ticket_no))).all()
        assert [tuple(r) for r in statuses] == [(1, "closed"), (2, "waiting")]
        queue, _ = await calls.load_queue(conn, ROOM)
        assert queue.closed
    clock.advance(seconds=5)
    assert (await restarted.tick()).closed == []
    assert registry.get_sample_value("tiepdan_timekeeper_transitions_total", {"action": "open"}) == 1
    assert registry.get_sample_value("tiepdan_timekeeper_transitions_total", {"action": "close"}) == 1
    assert registry.get_sample_value("tiepdan_timekeeper_verdicts_total", {"verdict": "hold_for_case"}) == 1
    await restarted.close()
    await restarted.close()  # idempotent
    assert restarted.closed and not (await restarted.tick()).leader


async def test_a_clock_jump_back_or_to_another_day_opens_nothing_twice_and_is_logged_and_counted(
        engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    await published(engine, clock)
    registry = CollectorRegistry()
    tk = keeper(engine, clock, MemoryLocks(clock=Monotonic()), TimekeeperMetrics(registry))
    caplog.set_level(logging.INFO, logger="schedules.timekeeper")

    clock.set_local(DAY, 7, 45)
    assert (await tk.tick()).opened == [ROOM]
    clock.set_local(DAY, 7, 20)  # NTP sets the clock back 25 minutes: before the opening and the open
    report = await tk.tick()
    assert report.clock_jump == "backwards" and report.opened == [] and report.verdicts[ROOM] is Verdict.CLOCK_BEHIND
    assert registry.get_sample_value("tiepdan_timekeeper_clock_jumps_total", {"direction": "backwards"}) == 1
    assert registry.get_sample_value("tiepdan_timekeeper_verdicts_total", {"verdict": "clock_behind"}) == 1
    assert len([e for e in await outbox_events(engine) if isinstance(e, SessionOpened)]) == 1
    assert "clock jump backwards" in caplog.text

    # a second session of the same day, published, and the clock thrown a day forward: not opened
    async with engine.begin() as conn:
        clock.set_local(DAY, 7, 46)
        await plan(conn, clock, "phien-chieu", DAY, venues=VENUES)
        await publish_session(conn, "phien-chieu", calendar=CALENDAR, override_reason="Phiên bổ sung đột xuất "
                              "theo chỉ đạo", actor=ACTOR, grants=ALL, clock=clock)
    clock.set_local(date(2026, 12, 11), 9, 0)
    report = await tk.tick()
    assert report.clock_jump == "forwards" and report.opened == []
    assert report.verdicts["phien-chieu"] is Verdict.MISSED and report.verdicts[ROOM] is Verdict.NOT_STARTED
    await tk.tick()  # reported once, not at every turn
    assert registry.get_sample_value("tiepdan_timekeeper_verdicts_total", {"verdict": "missed"}) == 1
    assert "phien-chieu: missed" in caplog.text
    async with engine.connect() as conn:
        assert (await get_session(conn, "phien-chieu")).state is SessionState.PUBLISHED
    await tk.close()


async def test_only_the_holder_of_the_leader_lock_acts_and_a_holder_that_lost_it_stops(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await published(engine, clock)
    monotonic = Monotonic()
    table = MemoryLocks(clock=monotonic)
    first, second = keeper(engine, clock, table), keeper(engine, clock, table)
    clock.set_local(DAY, 7, 0)
    assert (await first.tick()).leader and not (await second.tick()).leader
    monotonic.now += 60  # first stalls past its TTL
    clock.set_local(DAY, 7, 30)
    assert (await second.tick()).opened == [ROOM]  # second took over and acted
    report = await first.tick()  # first's renewal finds second's token: it does nothing
    assert not report.leader and report.opened == []
    await first.close()
    await second.close()


async def test_a_transition_refused_by_the_scheduler_is_logged_and_counted_not_a_crash(
        engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Between the timekeeper's read and its action another actor opened the session (stale version), or
    the clock went back past the session's last change (the state machine refuses it)."""
    await published(engine, clock)
    registry = CollectorRegistry()
    tk = keeper(engine, clock, MemoryLocks(clock=Monotonic()), TimekeeperMetrics(registry))
    caplog.set_level(logging.INFO, logger="schedules.timekeeper")
    assert (await tk.tick()).leader
    async with engine.connect() as conn:
        version = (await get_session(conn, ROOM)).version
    clock.set_local(DAY, 7, 30)
    async with engine.begin() as conn:
        await sessions.open_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    report = TickReport(leader=True)
    await tk._act(ROOM, version, Due(Verdict.OPEN, SessionAction.OPEN), report)
    assert report.refused == {ROOM: "stale_version"}

    clock.set_local(DAY, 7, 29)  # the clock went back between the read and the action
    await tk._act(ROOM, version + 1, Due(Verdict.CLOSE, SessionAction.CLOSE), report)
    assert report.refused == {ROOM: "clock_went_backwards"}
    assert registry.get_sample_value("tiepdan_timekeeper_refusals_total", {"code": "stale_version"}) == 1
    assert registry.get_sample_value("tiepdan_timekeeper_refusals_total", {"code": "clock_went_backwards"}) == 1
    assert "refused (clock_went_backwards)" in caplog.text
    assert len([e for e in await outbox_events(engine) if isinstance(e, SessionOpened)]) == 1
    await tk.close()


@pytest.mark.unit
def test_options_and_lock_ttl_are_checked(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="tick_s"):
        TimekeeperOptions(tick_s=0)
    with pytest.raises(ValueError, match="three turns"):
        Timekeeper(None, MemoryLeaderLock(MemoryLocks(), "timekeeper", ttl_s=10),  # type: ignore[arg-type]
                   clock=clock, options=TimekeeperOptions(tick_s=5))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hours_written_by_hand_that_make_no_sense_are_reported_not_a_crash(engine: AsyncEngine,
                                                                                clock: FakeClock) -> None:
    """SQLite has no check on the hours (PostgreSQL has): a row edited by hand is refused, the turn goes on."""
    await published(engine, clock)
    async with engine.begin() as conn:
        await conn.execute(update(reception_sessions).values(opens_at=dt_time(12, 0)))
    registry = CollectorRegistry()
    tk = keeper(engine, clock, MemoryLocks(clock=Monotonic()), TimekeeperMetrics(registry))
    clock.set_local(DAY, 9, 0)
    report = await tk.tick()
    assert report.leader and report.refused == {ROOM: "closes_before_opens"} and report.opened == []
    assert registry.get_sample_value("tiepdan_timekeeper_refusals_total", {"code": "closes_before_opens"}) == 1
    await tk.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_a_redis_lock_one_timekeeper_acts_and_one_whose_lock_expired_stops(
        engine: AsyncEngine, clock: FakeClock, redis_base_url: str, redis_prefix: str) -> None:
    await published(engine, clock)
    redis = Redis.from_url(redis_base_url)
    key = f"{redis_prefix}leader:timekeeper"
    first = Timekeeper(engine, RedisLeaderLock(redis, key, ttl_s=30), clock=clock, options=TimekeeperOptions(tick_s=5))
    second = Timekeeper(engine, RedisLeaderLock(redis, key, ttl_s=30), clock=clock, options=TimekeeperOptions(tick_s=5))
    try:
        clock.set_local(DAY, 7, 0)
        assert (await first.tick()).leader and not (await second.tick()).leader
        await redis.pexpire(key, 1)  # first stalls past its TTL
        while await redis.exists(key):
            pass
        clock.set_local(DAY, 7, 30)
        assert (await second.tick()).opened == [ROOM]
        report = await first.tick()
        assert not report.leader and report.opened == [] and not first.lock.held
        assert len([e for e in await outbox_events(engine) if isinstance(e, SessionOpened)]) == 1
    finally:
        await first.close()
        await second.close()
        assert not await redis.exists(key)  # released at close by its holder
        await redis.aclose()
