"""Call next in one read: the queue is read once, under the queue row's lock, with only its open tickets; the
call order stays the published rule for every input and costs O(n log n); the next number's announcement is
ready before it is called; a corrupt stored row is refused and changes nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from room_console.context import ConsoleContext
from schedules import calls
from schedules.announcement import announcement_text, speech_key
from schedules.call_order import (
    CallOrder,
    PriorityGround,
    Reorder,
    ReorderReason,
    Ticket,
    TicketStatus,
    call_order,
)
from schedules.errors import InvalidArgument
from schedules.queue_store import load_queue_state
from schedules.tables import queue_tickets, session_queues
from signaling.outbox import outbox

from ..room_console.test_queue_api import DAY, ROOM, app, case_events, prepare, signed
from ._roll_call import open_queue
from .conftest import CHAIR, FakeClock

__all__ = ["app"]  # the console fixture of the queue API tests, reused

_GROUNDS = list(PriorityGround)
_STATUSES = list(TicketStatus)


# -- the rule, unchanged ------------------------------------------------------------------------------------


def _published_rule(tickets: Iterable[Ticket], unavailable: Collection[str]) -> CallOrder:
    """The call order as the module docstring states it, written the plain way (quadratic): the oracle."""
    given_ = tuple(tickets)
    waiting = sorted((t for t in given_ if t.status is TicketStatus.WAITING), key=lambda t: t.ticket_no)
    held = sorted([t for t in waiting if t.venue in unavailable]
                  + [t for t in given_ if t.status is TicketStatus.DEFERRED], key=lambda t: t.ticket_no)
    held_nos = {t.ticket_no for t in held}

    def rank(t: Ticket) -> tuple[int, int, int]:
        if t.requeued:
            return (3, t.requeue_seq, t.ticket_no)
        reason = t.priority_reason
        return (0 if reason is ReorderReason.CHAIR_SELECTED else 1 if reason else 2, t.ticket_no, 0)

    order = sorted((t for t in waiting if t.ticket_no not in held_nos), key=rank)
    reorders = []
    for i, t in enumerate(order):
        if t.requeued and any(o.ticket_no > t.ticket_no for o in order[:i]):
            reorders.append(Reorder(t.ticket_no, ReorderReason.NO_SHOW))
        elif not t.requeued and t.priority_reason is not None and any(
                o.ticket_no < t.ticket_no and not o.requeued for o in order[i + 1:]):
            reorders.append(Reorder(t.ticket_no, t.priority_reason))
    for t in held:
        if any(o.ticket_no > t.ticket_no for o in order):
            reorders.append(Reorder(t.ticket_no, ReorderReason.DEFERRED if t.status is TicketStatus.DEFERRED
                                    else ReorderReason.VENUE_UNAVAILABLE))
    return CallOrder(order=tuple(order), held=tuple(held), reorders=tuple(reorders))


@st.composite
def _queues(draw: st.DrawFn) -> tuple[list[Ticket], frozenset[str]]:
    numbers = draw(st.lists(st.integers(1, 400), unique=True, max_size=60))
    tickets = []
    for no in numbers:
        requeue = draw(st.sampled_from([0, 0, 0, draw(st.integers(1, 30))]))
        tickets.append(Ticket(ticket_id=f"t{no}", ticket_no=no, venue=draw(st.sampled_from(["a", "b", "c"])),
                              case=f"c{no}", priorities=frozenset(draw(st.lists(st.sampled_from(_GROUNDS)))),
                              status=draw(st.sampled_from(_STATUSES)), no_shows=1 if requeue else 0,
                              requeue_seq=requeue))
    return tickets, frozenset(draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=2)))


@pytest.mark.unit
@settings(max_examples=400, deadline=None)
@given(_queues(), st.randoms(use_true_random=False))
def test_the_call_order_is_the_published_rule_for_every_input(queue: tuple[list[Ticket], frozenset[str]],
                                                              rnd: random.Random) -> None:
    tickets, unavailable = queue
    expected = _published_rule(tickets, unavailable)
    shuffled = list(tickets)
    rnd.shuffle(shuffled)
    assert call_order(shuffled, unavailable_venues=unavailable) == expected
    # the driver gives only the open tickets: closed and absent ones change nothing
    open_only = [t for t in shuffled if t.status in calls.OPEN_STATUSES]
    assert call_order(open_only, unavailable_venues=list(unavailable)) == expected


@pytest.mark.unit
def test_a_queue_of_priority_tickets_orders_in_about_the_time_of_a_plain_one() -> None:
    # Before, each priority ticket looked through every ticket after it: 2,500 elderly citizens took
    # 40 times as long as 2,500 without priority (a quarter of a second on the bench machine).
    plain = [Ticket(f"t{n}", n, "a", f"c{n}") for n in range(1, 5001)]
    elderly = [Ticket(f"t{n}", n, "a", f"c{n}", priorities=frozenset({PriorityGround.ELDERLY}))
               for n in range(1, 5001)]

    def cpu(tickets: list[Ticket]) -> float:  # process time: other processes on the machine do not count
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            call_order(tickets)
            best = min(best, time.process_time() - started)
        return best

    assert [t.ticket_no for t in call_order(elderly).order] == list(range(1, 5001))
    assert cpu(elderly) < 5 * max(cpu(plain), 0.005)


# -- one read, under the lock, open tickets only -------------------------------------------------------------


def _ticket_reads(statements: list[tuple[int, str]]) -> list[int]:
    """Positions of the statements that read tickets for a queue (the ticket rows with their priorities)."""
    return [i for i, (_, sql) in enumerate(statements)
            if sql.lstrip().upper().startswith("SELECT") and "queue_tickets.priorities" in sql
            and "FROM queue_tickets" in sql]


@pytest.mark.integration
async def test_call_next_reads_the_queue_once_under_the_queue_lock(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo", "xa-tien-du", "phuong-que-vo"])
    chair = await signed(app, "chutri")
    clock.advance(minutes=1)
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/call-next")).status_code == 200
    clock.advance(minutes=1)
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/end")).status_code == 200  # ticket 1 closed
    clock.advance(minutes=1)

    statements: list[tuple[int, str]] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append((id(conn.connection.dbapi_connection), statement))

    event.listen(ctx.engine.sync_engine, "before_cursor_execute", seen)
    try:
        called = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    finally:
        event.remove(ctx.engine.sync_engine, "before_cursor_execute", seen)
    assert called.status_code == 200, called.text
    assert called.json()["current"]["ticket_no"] == 2

    (read,) = _ticket_reads(statements)  # once: no read before the transaction for the announcement
    claims = [i for i, (_, sql) in enumerate(statements)
              if sql.lstrip().upper().startswith("UPDATE SESSION_QUEUES") and "version=session_queues.version" in sql]
    assert claims and claims[0] < read and statements[claims[0]][0] == statements[read][0]  # same transaction
    assert "status IN" in statements[read][1]  # open tickets only
    (event_,) = [e for e in await case_events(app) if e.type == "case.called" and e.ticket_no == 2]
    assert event_.announcement_audio_url == called.json()["announcement_audio_url"]  # type: ignore[union-attr]
    assert event_.announcement_text == "Mời công dân có số thứ tự 2, tại điểm cầu phường Quế Võ, chuẩn bị trình bày."  # type: ignore[union-attr]


@pytest.mark.integration
async def test_the_answer_of_an_action_is_the_queue_as_a_full_read_shows_it(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo", "xa-tien-du", "phuong-que-vo", "xa-tien-du",
                               "phuong-que-vo"])
    chair = await signed(app, "chutri")
    async with ctx.engine.begin() as conn:  # ticket 5 is an elderly citizen's: called first
        await conn.execute(update(queue_tickets).where(queue_tickets.c.session_id == ROOM,
                                                       queue_tickets.c.ticket_no == 5).values(priorities=["elderly"]))
    # 5 skipped (to the end), 1 absent, 2 closed, 3 called then deferred (held): closed, absent, deferred, a
    # no-show at the end and waiting tickets all at once
    steps = ["call-next", "skip", "call-next", "absent", "call-next", "end", "call-next"]
    for action in steps:
        clock.advance(minutes=1)
        answer = await chair.post(f"/api/sessions/{ROOM}/queue/{action}")
        assert answer.status_code == 200, (action, answer.text)
    clock.advance(minutes=1)
    async with ctx.engine.begin() as conn:
        deferred = await calls.defer(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    assert deferred.state.ticket(3).status is TicketStatus.DEFERRED
    assert {t.ticket_no for t in deferred.state.tickets} == {3, 4, 5, 6}  # 1 absent and 2 closed: not read

    for action in ("call-next", "skip", "call-next", "end"):
        clock.advance(minutes=1)
        answer = await chair.post(f"/api/sessions/{ROOM}/queue/{action}")
        assert answer.status_code == 200, (action, answer.text)
        shown = answer.json()
        shown.pop("events"), shown.pop("announcement_audio_url")
        assert shown == (await chair.get(f"/api/sessions/{ROOM}/queue")).json(), action  # the GET reads every ticket
    # 4 skipped, 6 closed: 5 then 4 wait at the end, 3 deferred
    assert [t["ticket_no"] for t in shown["waiting"]] == [5, 4] and [t["ticket_no"] for t in shown["held"]] == [3]
    assert [r["ticket_no"] for r in shown["reorders"]] == [4, 3]  # a no-show moved back, a deferred one overtaken
    assert [t["ticket_no"] for t in shown["passed_over"]] == [3, 4, 5]

    async with ctx.engine.connect() as conn:
        full, _ = await load_queue_state(conn, ROOM)
    assert [full.ticket(n).status for n in (1, 2, 6)] == [TicketStatus.ABSENT, TicketStatus.CLOSED,
                                                           TicketStatus.CLOSED]


@pytest.mark.integration
async def test_the_next_number_s_announcement_is_synthesised_before_it_is_called(app: FastAPI,
                                                                              clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    assert ctx.speech is not None
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo", "xa-tien-du", "phuong-que-vo"])
    async with ctx.engine.begin() as conn:  # the pregnant citizen's ticket 4 comes first
        await conn.execute(update(queue_tickets).where(queue_tickets.c.session_id == ROOM,
                                                       queue_tickets.c.ticket_no == 4).values(priorities=["pregnant"]))
    chair = await signed(app, "chutri")

    def cached(ticket_no: int, venue: str) -> bool:
        assert ctx.speech is not None
        text = announcement_text(ticket_no, venue)
        return (ctx.speech.cache_dir / f"{speech_key(text, ctx.speech.voice, ctx.speech.speed_wpm)}.wav").is_file()

    assert not cached(4, "phường Quế Võ")
    clock.advance(minutes=1)
    first = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert first.status_code == 200 and first.json()["current"]["ticket_no"] == 4
    assert cached(4, "phường Quế Võ")  # synthesised inside the call: nothing had prepared it
    # the answer has gone out: the number now first in the order (1) is ready, the one after it (2) not yet
    assert cached(1, "xã Tiên Du") and not cached(2, "phường Quế Võ")
    clock.advance(minutes=1)
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/end")).status_code == 200
    clock.advance(minutes=1)
    second = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert second.json()["current"]["ticket_no"] == 1 and cached(2, "phường Quế Võ")
    assert second.json()["announcement_audio_url"].endswith(
        speech_key(announcement_text(1, "xã Tiên Du"), ctx.speech.voice, ctx.speech.speed_wpm) + ".wav")


@pytest.mark.integration
@pytest.mark.parametrize("stored", [{"uu-tien": 1}, ["vip"], "elderly"])
async def test_a_corrupt_stored_priority_is_refused_and_changes_nothing(engine: AsyncEngine, clock: FakeClock,
                                                                        stored: object) -> None:
    await open_queue(engine, clock, ROOM, DAY, ["xa-tien-du", "phuong-que-vo"])
    async with engine.begin() as conn:
        await conn.execute(update(queue_tickets).where(queue_tickets.c.session_id == ROOM,
                                                       queue_tickets.c.ticket_no == 2).values(priorities=stored))
        version = await conn.scalar(select(session_queues.c.version).where(session_queues.c.session_id == ROOM))
        events = len((await conn.execute(select(outbox.c.id))).all())
    with pytest.raises(InvalidArgument) as refused:
        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor="user:chu-tri", grants=CHAIR, clock=clock)
    assert refused.value.code == "bad_priorities" and "không hợp lệ" in str(refused.value)
    async with engine.connect() as conn:
        assert await conn.scalar(select(session_queues.c.version).where(session_queues.c.session_id == ROOM)) == version
        assert len((await conn.execute(select(outbox.c.id))).all()) == events
        statuses = (await conn.execute(select(queue_tickets.c.status).where(queue_tickets.c.session_id == ROOM)
                                       .order_by(queue_tickets.c.ticket_no))).scalars().all()
    assert statuses == ["waiting", "waiting"]
