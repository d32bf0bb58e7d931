"""Two real OS processes against one PostgreSQL database (tests/schedules/_race_worker.py), started by one
signal: two desks issue tickets at the same instant (numbers 1..100, no gap, no duplicate), and two
processes racing one transition or one "call next" (exactly one wins, one event)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import VenueChoice, get_session, issue_ticket, publish_session, start_session
from schedules import sessions as service
from schedules.queue_store import load_queue_state
from schedules.tables import session_queues
from signaling.events import CaseCalled, SessionStarted, TicketIssued

from ._roll_call import record_all_present
from .conftest import ACTOR, ALL, CALENDAR, FakeClock, add_venues, audit_actions, make_cases, outbox_events, plan

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)


def race(url: str, clock: FakeClock, *commands: Sequence[str]) -> list[Any]:
    """Start one worker per command, wait until each is connected, start them all at once, return what
    each printed last (JSON)."""
    t0 = time.time()
    workers = [subprocess.Popen([sys.executable, "-m", "tests.schedules._race_worker", url, clock.now.isoformat(),
                                 repr(t0), *command], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for command in commands]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:  # the start signal, as close together as two writes go
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


async def test_two_desks_in_two_processes_issue_tickets_1_to_100_without_gap_or_duplicate(
    engine: AsyncEngine, clock: FakeClock, database_url: str,
) -> None:
    await add_venues(engine, clock)
    cases = await make_cases(engine, 100)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
    first, second = race(database_url, clock, ("issue", ROOM, "xa-tien-du", *cases[:50]),
                         ("issue", ROOM, "phuong-que-vo", *cases[50:]))
    assert len(first) == len(second) == 50
    assert sorted(first + second) == list(range(1, 101))
    assert first == sorted(first) and second == sorted(second)  # each desk's own tickets in its order
    async with engine.connect() as conn:
        state, _ = await load_queue_state(conn, ROOM)
        last = await conn.scalar(select(session_queues.c.last_ticket_no).where(session_queues.c.session_id == ROOM))
    assert last == 100 and [t.ticket_no for t in state.tickets] == list(range(1, 101))
    by_case = {t.case: t.ticket_no for t in state.tickets}
    assert [by_case[c] for c in cases[:50]] == first and [by_case[c] for c in cases[50:]] == second
    issued = [e for e in await outbox_events(engine) if isinstance(e, TicketIssued)]
    assert sorted(e.ticket_no for e in issued) == list(range(1, 101))
    assert [a for a, _, _ in await audit_actions(engine)].count("ticket.issued") == 100  # the chain is whole


async def open_room(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    cases = await make_cases(engine, 2)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ALL, clock=clock)
        for case in cases:
            await issue_ticket(conn, ROOM, venue="xa-tien-du", case=case, actor=ACTOR, grants=ALL, clock=clock)
    clock.set_local(DAY, 8)
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
        await record_all_present(conn, ROOM, clock=clock)


async def test_two_processes_racing_one_transition_exactly_one_wins(engine: AsyncEngine, clock: FakeClock,
                                                                    database_url: str) -> None:
    await open_room(engine, clock)
    results = race(database_url, clock, ("start", ROOM), ("start", ROOM))
    assert sorted(json.dumps(r) for r in results) == [json.dumps({"error": "illegal_transition"}),
                                                      json.dumps({"ok": True})]
    assert len([e for e in await outbox_events(engine) if isinstance(e, SessionStarted)]) == 1
    async with engine.connect() as conn:
        record = await get_session(conn, ROOM)
    assert record.version == 4  # planned 1, published 2, open 3, started 4: one start only


async def test_two_processes_pressing_call_next_at_once_call_one_case(engine: AsyncEngine, clock: FakeClock,
                                                                      database_url: str) -> None:
    await open_room(engine, clock)
    async with engine.begin() as conn:
        await start_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    results = race(database_url, clock, ("call_next", ROOM), ("call_next", ROOM))
    assert sorted(json.dumps(r) for r in results) == [json.dumps({"error": "case_in_progress"}),
                                                      json.dumps({"ok": True})]
    called = [e for e in await outbox_events(engine) if isinstance(e, CaseCalled)]
    assert [(e.ticket_no, e.call_seq) for e in called] == [(1, 1)]


async def test_two_pages_showing_one_queue_version_one_action_wins_the_other_is_stale(
    engine: AsyncEngine, clock: FakeClock, database_url: str,
) -> None:
    await open_room(engine, clock)
    async with engine.begin() as conn:
        await start_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    async with engine.connect() as conn:
        _, version = await load_queue_state(conn, ROOM)
    results = race(database_url, clock, ("call_next", ROOM, str(version)), ("call_next", ROOM, str(version)))
    assert sorted(json.dumps(r) for r in results) == [json.dumps({"error": "stale_version"}),
                                                      json.dumps({"ok": True})]


async def test_call_next_racing_the_close_of_the_session_leaves_no_case_called_in_a_closed_session(
    engine: AsyncEngine, clock: FakeClock, database_url: str,
) -> None:
    await open_room(engine, clock)
    async with engine.begin() as conn:
        await start_session(conn, ROOM, actor=ACTOR, grants=ALL, clock=clock)
    called, closed = race(database_url, clock, ("call_next", ROOM), ("close", ROOM))
    # either the call came first (the close is refused: a case is being received) or the close did
    # (the call is refused: the session is over); never both, never a case called in a closed session
    assert (called, closed) in [({"ok": True}, {"error": "case_in_progress"}),
                                ({"error": "session_not_in_progress"}, {"ok": True})]
    async with engine.connect() as conn:
        record = await get_session(conn, ROOM)
        state, _ = await load_queue_state(conn, ROOM)
    assert (record.state.value, state.closed, state.current) in (("in_progress", False, 1), ("closed", True, None))
