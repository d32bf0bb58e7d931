"""A venue marked lost comes back: the room server's restore (repeated, late, or with no loss before it changes
nothing more), the chair's «venue is back» (grant ``moderate``, audited with who did it, refused to anyone
else and for every bad input), the main venue's loss pausing the case being received wherever its citizen is
(QĐ 748: every party at the same time, continuously), and the venues held for a lost link handed to the room
server at start so that their first media is announced back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import audit_events
from schedules import NotPermitted, calls, close_session, start_session
from schedules.call_order import Ticket, TicketStatus
from schedules.errors import ConcurrentChange, InvalidArgument, QueueClosed, QueueError, UnknownSession, UnknownVenue
from schedules.link_loss import LinkChange, LinkOutcome, LinkState, decide_link_change
from schedules.link_watch import LINK_WATCH_ACTOR, confirm_venue_back, held_for_link_loss
from schedules.queue import QueueState
from sfu import hooks
from signaling.grants import ROLE_GRANTS, Grant, Role
from tiepdan.app import create_app
from tiepdan.bots.venue_bot import VenueBot, until

from ..room_console._live_sessions import open_live_session
from ._roll_call import record_all_present
from .conftest import CHAIR, FakeClock, audit_actions
from .test_calls import CHAIR_ID, ROOM, started
from .test_link_watch import Watch, lost, memory_watch, pauses, publish_all, queue_now, restored

__all__ = ["memory_watch"]  # the link watch fixture, shared with test_link_watch

SECRETARY = frozenset(ROLE_GRANTS[Role.SECRETARY])
T0 = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)
VENUES = frozenset({"tru-so-tinh", "xa-tien-du", "phuong-que-vo"})


def hearing(venue: str, *, paused: bool = False, unavailable: Collection[str] = ()) -> QueueState:
    ticket = Ticket(ticket_id="t-1", ticket_no=1, venue=venue, case="c-1", status=TicketStatus.CALLED,
                    last_call_seq=1)
    return QueueState(session_id=ROOM, tickets=(ticket,), current=1, call_seq=1, paused=paused,
                      unavailable_venues=frozenset(unavailable))


def decide(queue: QueueState, venue: str, state: LinkState, *, at: datetime = T0, last: datetime | None = None,
           in_progress: bool = True) -> tuple[LinkOutcome, bool | None, bool]:
    decision = decide_link_change(queue, LinkChange(venue=venue, state=state, at=at), live=True,
                                  in_progress=in_progress, session_venues=VENUES, opened_at=T0 - timedelta(hours=1),
                                  last_applied_at=last, main_venue="tru-so-tinh")
    return decision.outcome, decision.available, decision.pause


@pytest.mark.unit
def test_the_main_venue_lost_pauses_the_case_being_received_wherever_its_citizen_is() -> None:
    assert decide(hearing("xa-tien-du"), "tru-so-tinh", LinkState.LOST) == (LinkOutcome.PAUSED, False, True)
    # already paused (the chair paused, or the citizen's venue went first): held, no second pause
    assert decide(hearing("xa-tien-du", paused=True), "tru-so-tinh", LinkState.LOST) == (
        LinkOutcome.UNAVAILABLE, False, False)
    # during the roll call (not in progress) or with no case: held only
    assert decide(hearing("xa-tien-du"), "tru-so-tinh", LinkState.LOST, in_progress=False) == (
        LinkOutcome.UNAVAILABLE, False, False)
    assert decide(QueueState(session_id=ROOM), "tru-so-tinh", LinkState.LOST) == (
        LinkOutcome.UNAVAILABLE, False, False)
    # another venue than the main one and the citizen's: held, no pause (as before)
    assert decide(hearing("xa-tien-du"), "phuong-que-vo", LinkState.LOST) == (
        LinkOutcome.UNAVAILABLE, False, False)


@pytest.mark.unit
def test_restores_repeated_late_or_with_no_loss_change_nothing() -> None:
    down = hearing("xa-tien-du", paused=True, unavailable={"xa-tien-du"})
    assert decide(down, "xa-tien-du", LinkState.RESTORED, last=T0 - timedelta(seconds=9)) == (
        LinkOutcome.AVAILABLE, True, False)  # back; the pause stays for the chair
    up = hearing("xa-tien-du")
    assert decide(up, "xa-tien-du", LinkState.RESTORED) == (LinkOutcome.UNCHANGED, None, False)  # never lost
    assert decide(down, "xa-tien-du", LinkState.RESTORED, last=T0) == (LinkOutcome.STALE, None, False)  # same time
    assert decide(down, "xa-tien-du", LinkState.RESTORED, last=T0 + timedelta(seconds=1)) == (
        LinkOutcome.STALE, None, False)  # older than what was applied (e.g. the chair's «venue is back»)


async def back(engine: AsyncEngine, clock: FakeClock, venue: str, *, grants: Collection[Grant] = CHAIR,
               actor: str = CHAIR_ID, **kw: Any) -> Any:
    async with engine.begin() as conn:
        return await confirm_venue_back(conn, ROOM, venue, actor=actor, grants=grants, clock=clock, **kw)


async def link_rows(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_events.c.actor, audit_events.c.detail)
                                   .where(audit_events.c.action == "queue.venue_link")
                                   .order_by(audit_events.c.id))).all()
    return [(r[0], dict(r[1])) for r in rows]


@pytest.mark.integration
async def test_the_main_venue_lost_pauses_the_stored_case_once(engine: AsyncEngine, clock: FakeClock,
                                                               memory_watch: Watch) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("tru-so-tinh", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)  # 1, at Tiên Du
    clock.advance(minutes=1)
    down = lost("tru-so-tinh", clock.now)
    await publish_all(memory_watch, [down, down, lost("tru-so-tinh", clock.now + timedelta(seconds=2))])
    (paused,) = await pauses(engine)
    assert (paused.ticket_no, paused.venue, paused.reason) == (1, "xa-tien-du", "link_lost")
    assert await queue_now(engine) == (True, frozenset({"tru-so-tinh"}), 1)
    clock.advance(seconds=30)
    await publish_all(memory_watch, [restored("tru-so-tinh", clock.now)])
    assert await queue_now(engine) == (True, frozenset(), 1)  # the chair is back; «Tiếp tục» resumes
    assert len(await pauses(engine)) == 1


@pytest.mark.integration
async def test_no_citizen_is_called_while_the_main_venue_is_lost(engine: AsyncEngine, clock: FakeClock,
                                                                  memory_watch: Watch) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ()), ("xa-tien-du", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)  # 1
        await calls.end_case(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("tru-so-tinh", clock.now)])
    async with engine.connect() as conn:
        _, version = await calls.load_queue(conn, ROOM)
    for act in ("call_next", "recall"):
        with pytest.raises(QueueError) as refused:
            async with engine.begin() as conn:
                if act == "call_next":
                    await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
                else:
                    await calls.recall(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
        assert refused.value.code == "main_venue_link_lost" and "điểm cầu chính" in refused.value.message_vi
    async with engine.connect() as conn:
        _, after = await calls.load_queue(conn, ROOM)
    assert after == version  # nothing written
    clock.advance(seconds=20)
    await publish_all(memory_watch, [restored("tru-so-tinh", clock.now)])
    async with engine.begin() as conn:
        outcome = await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    assert outcome.state.current == 2


@pytest.mark.integration
async def test_duplicate_late_and_unmatched_restores_change_nothing(engine: AsyncEngine, clock: FakeClock,
                                                                    memory_watch: Watch) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    t = clock.advance(minutes=1)
    await publish_all(memory_watch, [restored("phuong-que-vo", t)])  # restored, never lost
    assert await queue_now(engine) == (False, frozenset(), 1)
    async with engine.connect() as conn:
        _, version = await calls.load_queue(conn, ROOM)
    await publish_all(memory_watch, [lost("phuong-que-vo", t + timedelta(seconds=10))])
    assert await queue_now(engine) == (False, frozenset({"phuong-que-vo"}), 1)
    up = restored("phuong-que-vo", t + timedelta(seconds=40))
    await publish_all(memory_watch, [up, up,  # delivered twice
                                     restored("phuong-que-vo", t + timedelta(seconds=41)),  # a second path's
                                     restored("phuong-que-vo", t + timedelta(seconds=20))])  # late
    assert await queue_now(engine) == (False, frozenset(), 1)
    async with engine.connect() as conn:
        _, after = await calls.load_queue(conn, ROOM)
    assert after == version + 2  # the loss and the first restore wrote the queue; nothing else did
    outcomes = [d["outcome"] for _, d in await link_rows(engine)]
    assert outcomes == ["unchanged", "unavailable", "available", "unchanged"]  # the late one: stale, unrecorded
    assert await pauses(engine) == []


@pytest.mark.integration
async def test_the_chair_says_a_venue_is_back_audited_with_who_and_a_late_loss_does_not_undo_it(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch,
) -> None:
    await started(engine, clock, [("xa-tien-du", ()), ("phuong-que-vo", ())])
    clock.advance(minutes=2)
    async with engine.begin() as conn:
        await calls.call_next(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    lost_at = clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("xa-tien-du", lost_at)])
    assert await queue_now(engine) == (True, frozenset({"xa-tien-du"}), 1)
    async with engine.connect() as conn:
        _, version = await calls.load_queue(conn, ROOM)

    clock.advance(seconds=40)
    with pytest.raises(NotPermitted, match="chủ trì"):  # the secretary runs the queue, but cannot say this
        await back(engine, clock, "xa-tien-du", grants=SECRETARY, actor="user:thu-ky")
    with pytest.raises(NotPermitted):
        await back(engine, clock, "xa-tien-du", grants=frozenset(ROLE_GRANTS[Role.VENUE]), actor="user:diem-cau")
    with pytest.raises(ConcurrentChange):
        await back(engine, clock, "xa-tien-du", expected_version=version - 1)
    result = await back(engine, clock, "xa-tien-du", expected_version=version)
    assert result.outcome is LinkOutcome.AVAILABLE and result.version == version + 1
    assert await queue_now(engine) == (True, frozenset(), 1)  # its numbers are back; the case stays paused
    actor, detail = (await link_rows(engine))[-1]
    assert actor == CHAIR_ID and detail["by"] == "chair" and detail["venue"] == "xa-tien-du"
    assert detail["link"] == "restored" and detail["outcome"] == "available"
    assert detail["occurred_at"] == clock.now.isoformat()

    with pytest.raises(QueueError) as twice:
        await back(engine, clock, "xa-tien-du")  # a second click, or the room server's restore came first
    assert twice.value.code == "venue_not_lost" and "Xã Tiên Du" in twice.value.message_vi
    # the loss reported again, older than the chair's word (a redelivery, a slow consumer): stale
    await publish_all(memory_watch, [lost("xa-tien-du", lost_at + timedelta(seconds=5))])
    assert await queue_now(engine) == (True, frozenset(), 1)
    # a restore from the room server after the chair's word: nothing more to do
    await publish_all(memory_watch, [restored("xa-tien-du", clock.now + timedelta(seconds=3))])
    assert [d["outcome"] for _, d in await link_rows(engine)][-1] == "unchanged"
    # a new loss later holds the venue again
    await publish_all(memory_watch, [lost("xa-tien-du", clock.now + timedelta(minutes=1))])
    assert await queue_now(engine) == (True, frozenset({"xa-tien-du"}), 1)
    actions = [a for a, _, _ in await audit_actions(engine)]  # the hash chain holds
    assert actions.count("queue.venue_link") == 4


@pytest.mark.integration
async def test_venue_back_refuses_bad_input_with_a_reason_and_writes_nothing(engine: AsyncEngine,
                                                                             clock: FakeClock) -> None:
    await started(engine, clock, [("xa-tien-du", ())])
    clock.advance(minutes=1)
    async with engine.connect() as conn:
        _, version = await calls.load_queue(conn, ROOM)
    with pytest.raises(InvalidArgument, match="Mã điểm cầu") as bad:
        await back(engine, clock, "Xã Tiên Du")
    assert bad.value.code == "bad_venue"
    with pytest.raises(UnknownVenue, match="không thuộc phiên"):
        await back(engine, clock, "xa-gia-binh")
    with pytest.raises(QueueError) as not_lost:
        await back(engine, clock, "xa-tien-du")
    assert not_lost.value.code == "venue_not_lost"
    for session in ("phien-khong-co", "Phòng thử", "x" * 300):
        with pytest.raises(UnknownSession):
            async with engine.begin() as conn:
                await confirm_venue_back(conn, session, "xa-tien-du", actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        await close_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    with pytest.raises(QueueClosed, match="không còn"):
        await back(engine, clock, "xa-tien-du")
    async with engine.connect() as conn:
        _, after = await calls.load_queue(conn, ROOM)
    assert after == version + 1  # the close only
    assert await link_rows(engine) == []


@pytest.mark.integration
async def test_the_venues_held_for_a_lost_link_are_listed_for_live_sessions_only(engine: AsyncEngine,
                                                                                clock: FakeClock,
                                                                                memory_watch: Watch) -> None:
    await started(engine, clock, [("xa-tien-du", ())])
    async with engine.connect() as conn:
        assert await held_for_link_loss(conn) == {}
    clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("xa-tien-du", clock.now),
                                     lost("phuong-que-vo", clock.now + timedelta(seconds=1))])
    async with engine.connect() as conn:
        assert await held_for_link_loss(conn) == {ROOM: frozenset({"xa-tien-du", "phuong-que-vo"})}
    clock.advance(minutes=1)
    async with engine.begin() as conn:
        await close_session(conn, ROOM, actor=CHAIR_ID, grants=CHAIR, clock=clock)
    async with engine.connect() as conn:
        assert await held_for_link_loss(conn) == {}


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_restarted_server_hands_the_venues_held_to_the_room_server(
    engine: AsyncEngine, clock: FakeClock, memory_watch: Watch, make_settings: Any, database_url: str,
) -> None:
    """The embedded default: the room server's marks die with the process; at start they come back from
    the scheduler's database, so the venue's first media is announced back."""
    await started(engine, clock, [("xa-tien-du", ())])
    clock.advance(minutes=1)
    await publish_all(memory_watch, [lost("xa-tien-du", clock.now)])
    app = create_app(make_settings(database_url=database_url))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        media = app.state.room_server.media
        assert media is not None
        assert await media.link_marks.links_lost(ROOM) == frozenset({"xa-tien-du"})


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    yield
    restore()


@asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[tuple[FastAPI, str]]:
    """One embedded server process (room server, SFU, scheduler, memory bus, SQLite) on a free port."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws_ping_interval=None))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), timeout=30, what="the server listening")
        assert not task.done()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield app, f"ws://127.0.0.1:{port}/ws?room={ROOM_E2E}"
    finally:
        server.should_exit = True
        await task


async def held(engine: AsyncEngine, expected: frozenset[str], what: str) -> None:
    """Wait until the scheduler holds exactly ``expected`` for a lost link (the link watch commits)."""
    async with asyncio.timeout(20):
        while True:
            async with engine.connect() as conn:
                queue, _ = await calls.load_queue(conn, ROOM_E2E)
            if queue.unavailable_venues == expected:
                return
            await asyncio.sleep(0.05)  # polling the database for the consumer's commit, not a timing guess


ROOM_E2E = "phien-khoi-dong-lai"
_STAFF = frozenset(ROLE_GRANTS[Role.CHAIR]) | {Grant.INTAKE}


@pytest.mark.media
async def test_after_an_embedded_restart_the_venue_publishing_again_is_available_without_the_chair(
    make_settings: Any, loopback_ice: None,
) -> None:
    settings = make_settings(media_link_lost_after_s=1.0, media_host_addresses="127.0.0.1", log_level="WARNING")
    now = lambda: datetime.now(UTC)  # noqa: E731
    async with serving(settings) as (app, url):
        services = app.state.services
        engine = services.engine
        await open_live_session(engine, ROOM_E2E, [("tinh", "Trụ sở Tiếp công dân tỉnh"), ("tien-du", "Xã Tiên Du")],
                                start=False)
        async with engine.begin() as conn:
            await record_all_present(conn, ROOM_E2E, clock=now)
            await start_session(conn, ROOM_E2E, actor="user:chu-tri", grants=_STAFF, clock=now)
        services.outbox.notify()
        room_server = app.state.room_server
        await until(lambda: room_server.room(ROOM_E2E) is not None, timeout=10, what="the room opened")
        venue = VenueBot(url, str(services.issuer.issue("user:tien-du", roles=[Role.VENUE], room=ROOM_E2E,
                                                        venue="tien-du")), colour="green", name="tien-du")
        chair = VenueBot(url, str(services.issuer.issue("user:tinh", roles=[Role.CHAIR], room=ROOM_E2E,
                                                        venue="tinh")), colour="red", name="chair")
        try:
            await chair.connect()
            await venue.connect()
            await venue.publish()
            await chair.subscribe()
            await until(lambda: sum(p.frames_received for part in room_server.media.sfu_room(ROOM_E2E).participants
                                    for p in part.publications) > 30, timeout=15, what="tien-du's media flowing")
            await venue.close_media()
            await held(engine, frozenset({"tien-du"}), "tien-du held")
        finally:
            await venue.close(leave=False)
            await chair.close(leave=False)
    # the process is gone (its room server's memory with it); the database keeps the venue held
    async with serving(settings) as (app, url):
        services = app.state.services
        engine = services.engine
        room_server = app.state.room_server
        assert await room_server.media.link_marks.links_lost(ROOM_E2E) == frozenset({"tien-du"})
        services.outbox.notify()
        await until(lambda: room_server.room(ROOM_E2E) is not None, timeout=10, what="the room open again")
        venue = VenueBot(url, str(services.issuer.issue("user:tien-du", roles=[Role.VENUE], room=ROOM_E2E,
                                                        venue="tien-du")), colour="green", name="tien-du")
        chair = VenueBot(url, str(services.issuer.issue("user:tinh", roles=[Role.CHAIR], room=ROOM_E2E,
                                                        venue="tinh")), colour="red", name="chair")
        try:
            await chair.connect()
            await venue.connect()
            await venue.publish()
            await chair.subscribe()  # someone receives it: the SFU counts its frames
            await held(engine, frozenset(), "tien-du available again")
            actor, detail = (await link_rows(engine))[-1]
            assert (actor, detail["link"], detail["outcome"]) == (LINK_WATCH_ACTOR, "restored", "available")
        finally:
            await venue.close()
            await chair.close()
