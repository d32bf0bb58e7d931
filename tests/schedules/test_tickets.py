"""Queue tickets (SQLite and PostgreSQL): numbered 1, 2, 3 … per session with no gap, even after a
refused issue; one ticket per case; only the session's venues; only the desk's grant."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import (
    ClockWentBackwards,
    DuplicateTicket,
    NotPermitted,
    PriorityGround,
    UnknownCase,
    UnknownSession,
    VenueChoice,
    VenueNotInSession,
    issue_ticket,
)
from schedules.queue_store import load_queue_state
from schedules.tables import queue_tickets
from signaling.events import TicketIssued

from .conftest import ACTOR, CHAIR, DESK, FakeClock, add_venues, audit_actions, make_cases, outbox_events, plan

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DAY = date(2026, 12, 10)


async def test_tickets_are_numbered_without_gaps_even_after_refused_issues(engine: AsyncEngine,
                                                                           clock: FakeClock) -> None:
    await add_venues(engine, clock)
    cases = await make_cases(engine, 4)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du"),
                                                   VenueChoice("phuong-que-vo")])
    numbers = []
    for index, case in enumerate(cases):
        clock.advance(minutes=1)
        if index == 1:  # refused issues between two tickets take no number
            for venue, wrong_case, error in (("xa-gia-binh", case, VenueNotInSession),
                                             ("xa-tien-du", "00000000-0000-0000-0000-000000000000", UnknownCase),
                                             ("xa-tien-du", cases[0], DuplicateTicket)):
                with pytest.raises(error):
                    async with engine.begin() as conn:
                        await issue_ticket(conn, ROOM, venue=venue, case=wrong_case, actor=ACTOR, grants=DESK,
                                           clock=clock)
        async with engine.begin() as conn:
            issued = await issue_ticket(conn, ROOM, venue="xa-tien-du" if index % 2 else "phuong-que-vo", case=case,
                                        priorities=[PriorityGround.ELDERLY] if index == 2 else (), actor=ACTOR,
                                        grants=DESK, clock=clock)
        numbers.append(issued.ticket_no)
    assert numbers == [1, 2, 3, 4]
    async with engine.connect() as conn:
        state, version = await load_queue_state(conn, ROOM)
    assert [(t.ticket_no, t.venue, t.case) for t in state.tickets] == [
        (1, "phuong-que-vo", cases[0]), (2, "xa-tien-du", cases[1]), (3, "phuong-que-vo", cases[2]),
        (4, "xa-tien-du", cases[3])]
    assert state.tickets[2].priorities == frozenset({PriorityGround.ELDERLY}) and version == 5
    events = await outbox_events(engine)
    assert all(isinstance(e, TicketIssued) for e in events) and [e.ticket_no for e in events] == [1, 2, 3, 4]
    third = events[2]
    assert isinstance(third, TicketIssued)
    assert (third.case, third.venue, third.priorities, third.by) == (cases[2], "phuong-que-vo", ("elderly",), ACTOR)
    assert third.key == f"ticket:{third.ticket}:ticket.issued" and third.aggregate == f"session:{ROOM}"
    assert [a for a, _, _ in await audit_actions(engine)].count("ticket.issued") == 4


async def test_concurrent_issues_in_one_process_take_distinct_consecutive_numbers(engine: AsyncEngine,
                                                                                  clock: FakeClock) -> None:
    """Ten desks of one embedded server at once (separate connections): 1..10, no gap, no duplicate."""
    await add_venues(engine, clock)
    cases = await make_cases(engine, 10)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)

    async def desk(case: str) -> int:
        async with engine.begin() as conn:
            return (await issue_ticket(conn, ROOM, venue="xa-tien-du", case=case, actor=ACTOR, grants=DESK,
                                       clock=clock)).ticket_no

    numbers = await asyncio.gather(*(desk(case) for case in cases))
    assert sorted(numbers) == list(range(1, 11))


async def test_only_the_desk_issues_tickets_and_time_does_not_run_backwards(engine: AsyncEngine,
                                                                            clock: FakeClock) -> None:
    await add_venues(engine, clock)
    cases = await make_cases(engine, 2)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY)
    with pytest.raises(NotPermitted):
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue="xa-tien-du", case=cases[0], actor=ACTOR, grants=CHAIR, clock=clock)
    with pytest.raises(UnknownSession):
        async with engine.begin() as conn:
            await issue_ticket(conn, "khong-co", venue="xa-tien-du", case=cases[0], actor=ACTOR, grants=DESK,
                               clock=clock)
    async with engine.begin() as conn:
        await issue_ticket(conn, ROOM, venue="xa-tien-du", case=cases[0], actor=ACTOR, grants=DESK, clock=clock)
    clock.advance(seconds=-30)  # a clock jump back
    with pytest.raises(ClockWentBackwards):
        async with engine.begin() as conn:
            await issue_ticket(conn, ROOM, venue="xa-tien-du", case=cases[1], actor=ACTOR, grants=DESK, clock=clock)
    async with engine.connect() as conn:
        numbers = (await conn.execute(select(queue_tickets.c.ticket_no))).scalars().all()
    assert numbers == [1]
