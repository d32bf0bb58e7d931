"""Two ``tiepdan serve --role control`` processes on one PostgreSQL database and one Redis (issue #10, "Bad
input"): both chairs press "open" on one session with the same ``expected_version`` at once — exactly one
200, one 409, one ``session.opened``; and both processes run the timekeeper — exactly one of them opens a
session whose opening time has come (the leader lock in Redis; the row and its version in PostgreSQL).

The servers' clock is shifted (``TIEPDAN_CLOCK_OFFSET_S``) to 07:45 of a session day a week ahead, so the
test does not depend on the hour it runs at."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from complaints.enums import ReceptionForm, ReceptionType
from schedules import VIETNAM_TZ, VenueChoice, VenueDraft, VenueLevel, ensure_venues, get_session, plan_session
from schedules.session_state import SessionState
from schedules.timekeeper import TIMEKEEPER_ACTOR
from signaling.events import SessionOpened, parse_event
from signaling.grants import Grant
from signaling.outbox import outbox
from tests.harness import TEST_USERS, LiveServer, run_coroutine
from tiepdan.db import make_engine

pytestmark = pytest.mark.system

RACED = "phien-mo-tay"  # opened by hand from both processes at once
TIMED = "phien-dung-gio"  # opened by whichever timekeeper holds the lock
SETUP = "service:test-setup"
REASON = "Phiên thử nghiệm công bố muộn có lý do"
VENUE_CHOICES = [VenueChoice("main"), VenueChoice("tien-du")]


def _day() -> date:
    return (datetime.now(VIETNAM_TZ) + timedelta(days=7)).date()


async def _plan(url: str, day: date) -> None:
    engine = make_engine(url)
    clock = lambda: datetime.combine(day, datetime.min.time(), tzinfo=VIETNAM_TZ) + timedelta(hours=7)  # noqa: E731
    grants = frozenset({Grant.MANAGE})
    try:
        async with engine.begin() as conn:
            await ensure_venues(conn, [VenueDraft("main", "Trụ sở Tiếp công dân tỉnh", VenueLevel.MAIN),
                                       VenueDraft("tien-du", "Xã Tiên Du", VenueLevel.COMMUNE)],
                                actor=SETUP, grants=grants, clock=clock)
            for session_id, opens in ((RACED, dt_time(10, 0)), (TIMED, dt_time(7, 30))):
                await plan_session(conn, session_id=session_id, day=day, form=ReceptionForm.ONLINE,
                                   kind=ReceptionType.AD_HOC, venues_chosen=VENUE_CHOICES,
                                   opens_at=opens, closes_at=dt_time(11, 30), actor=SETUP, grants=grants,
                                   clock=clock)
    finally:
        await engine.dispose()


async def _opened_events_and_state(url: str, session_id: str) -> tuple[list[SessionOpened], SessionState]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
            state = (await get_session(conn, session_id)).state
    finally:
        await engine.dispose()
    opened = [e for e in map(parse_event, rows) if isinstance(e, SessionOpened) and e.session == session_id]
    return opened, state


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _leader_gauge(server: LiveServer) -> float:
    found = re.search(r"^tiepdan_timekeeper_leader ([0-9.]+)$", httpx.get(server.url("/metrics")).text, re.M)
    assert found is not None, "the timekeeper's gauge is missing: is it running?"
    return float(found.group(1))


def test_two_control_processes_racing_one_transition_and_one_due_session_act_exactly_once(
        server_factory: Callable[..., LiveServer], module_pg_url: str, redis_base_url: str, redis_run_prefix: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.monotonic()
    day = _day()
    offset = (datetime.combine(day, datetime.min.time(), tzinfo=VIETNAM_TZ) + timedelta(hours=7, minutes=45)
              - datetime.now(UTC)).total_seconds()
    env = {"TIEPDAN_DATABASE_URL": module_pg_url, "TIEPDAN_REDIS_URL": redis_base_url,
           "TIEPDAN_REDIS_PREFIX": f"{redis_run_prefix}{secrets.token_hex(3)}:",
           "TIEPDAN_KEYRING_PATH": str(tmp_path_factory.mktemp("keys") / "keyring.json"),
           "TIEPDAN_CLOCK_OFFSET_S": f"{offset:.3f}", "TIEPDAN_TIMEKEEPER_TICK_S": "0.3",
           "TIEPDAN_TIMEKEEPER_LOCK_TTL_S": "6"}
    first = server_factory(env=env, args=("--role", "control"))
    run_coroutine(_plan(module_pg_url, day))
    second = server_factory(env=env, users=[], args=("--role", "control"))
    try:
        with first.http_client("chair") as (chair1, csrf1), \
                second.http_client(TEST_USERS["chair"]) as (chair2, csrf2), \
                first.http_client("admin") as (admin, admin_csrf):
            def publish(session_id: str) -> None:
                done = admin.post(f"/api/sessions/{session_id}/publish", headers={"X-CSRF-Token": admin_csrf},
                                  json={"expected_version": 1, "override_reason": REASON})
                assert done.status_code == 200, done.text

            # both timekeepers run; one holds the lock (a 0/1 gauge on each, never both 1)
            assert sorted([_leader_gauge(first), _leader_gauge(second)]) == [0.0, 1.0]

            publish(RACED)
            answers = _at_once([
                lambda: chair1.post(f"/api/sessions/{RACED}/open", headers={"X-CSRF-Token": csrf1},
                                    json={"expected_version": 2}),
                lambda: chair2.post(f"/api/sessions/{RACED}/open", headers={"X-CSRF-Token": csrf2},
                                    json={"expected_version": 2})])
            assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
            refused = next(a for a in answers if a.status_code == 409).json()
            assert refused["error"] == "stale_version" and "tải lại" in refused["message"]
            opened, state = run_coroutine(_opened_events_and_state(module_pg_url, RACED))
            assert len(opened) == 1 and str(opened[0].by).startswith("user:") and state is SessionState.OPEN

            publish(TIMED)  # its opening time (07:30) has passed: due at once, for both timekeepers
            deadline = time.monotonic() + 20
            while run_coroutine(_opened_events_and_state(module_pg_url, TIMED))[1] is not SessionState.OPEN:
                assert time.monotonic() < deadline, "no timekeeper opened the due session"
                time.sleep(0.2)
            time.sleep(1.0)  # a few more turns of both loops: nothing more happens
            opened, state = run_coroutine(_opened_events_and_state(module_pg_url, TIMED))
            assert len(opened) == 1 and opened[0].by == TIMEKEEPER_ACTOR and state is SessionState.OPEN
            openers = [s for s in (first, second) if f"session {TIMED} opened on time" in s.log_text()]
            assert len(openers) == 1
            raced_by_timekeeper = [s for s in (first, second) if f"session {RACED} opened on time" in s.log_text()]
            assert raced_by_timekeeper == []  # its hours (10:00) have not come
    finally:
        first.stop()
        second.stop()
    print(f"two control processes, one HTTP race and one timekeeper race: {time.monotonic() - started:.1f} s")
