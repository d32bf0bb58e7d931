"""End to end in the embedded app (one process: room server, SFU, scheduler, memory bus, SQLite): a real
venue (an aiortc bot) holding the floor for the case being received stops sending media; the room server
notices on the frames that stop arriving, the scheduler's link watch pauses the case, and the chair's page
gets ``case.paused`` (reason ``link_lost``). The link-lost threshold is the setting
``TIEPDAN_MEDIA_LINK_LOST_AFTER_S``, lowered here to 1 s (5 s in service) to keep the test short; the time
from the cut to ``case.paused`` at the chair is printed (``-s``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from complaints.cases import create_case
from complaints.enums import PetitionKind
from schedules import calls, issue_ticket, start_session
from sfu import hooks
from signaling.events import CasePaused
from signaling.grants import ROLE_GRANTS, Grant, Role
from tiepdan.app import create_app
from tiepdan.bots.venue_bot import VenueBot, until

from ..room_console._live_sessions import open_live_session
from ..schedules._roll_call import record_all_present
from ..schedules.conftest import outbox_events

pytestmark = pytest.mark.media

ROOM = "phien-mat-ket-noi"
VENUES = [("tinh", "Trụ sở Tiếp công dân tỉnh"), ("tien-du", "Xã Tiên Du")]
LOST_AFTER_S = 1.0
_STAFF = frozenset(ROLE_GRANTS[Role.CHAIR]) | {Grant.INTAKE}


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    yield
    restore()


@pytest.fixture
async def served(make_settings: Callable[..., Any]) -> AsyncIterator[tuple[FastAPI, str]]:
    app = create_app(make_settings(media_link_lost_after_s=LOST_AFTER_S, media_host_addresses="127.0.0.1",
                                   log_level="WARNING"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws_ping_interval=None))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), timeout=30, what="the server listening")
        assert not task.done()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield app, f"ws://127.0.0.1:{port}/ws?room={ROOM}"
    finally:
        server.should_exit = True
        await task


async def test_a_venue_holding_the_floor_that_stops_sending_pauses_its_case_at_the_chair(
    served: tuple[FastAPI, str],
) -> None:
    app, url = served
    services = app.state.services
    engine = services.engine
    await open_live_session(engine, ROOM, VENUES, start=False)
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất đai", now=_now())
        await issue_ticket(conn, ROOM, venue="tien-du", case=case.id, actor="user:ban-tiep-nhan", grants=_STAFF,
                           clock=_now)
        await record_all_present(conn, ROOM, clock=_now)
        await start_session(conn, ROOM, actor="user:chu-tri", grants=_STAFF, clock=_now)
    services.outbox.notify()
    room_server = app.state.room_server
    await until(lambda: room_server.room(ROOM) is not None, timeout=10, what="the room opened from session.opened")

    def token(role: Role, venue: str) -> str:
        return str(services.issuer.issue(f"user:{venue}", roles=[role], room=ROOM, venue=venue))

    chair = VenueBot(url, token(Role.CHAIR, "tinh"), colour="red", name="chair")
    venue = VenueBot(url, token(Role.VENUE, "tien-du"), colour="green", name="tien-du")
    try:
        await chair.connect()
        await venue.connect()
        await venue.publish()
        sfu_room = room_server.media.sfu_room(ROOM)
        await until(lambda: any(p.frames_received > 0 for part in sfu_room.participants for p in part.publications),
                    timeout=15, what="tien-du's media arriving")

        async with engine.begin() as conn:
            await calls.call_next(conn, ROOM, actor="user:chu-tri", grants=_STAFF, clock=_now)
        services.outbox.notify()
        await chair.wait_for(lambda m: m["type"] == "floor.changed" and m.get("venue") == "tien-du")

        # the venue's network goes silent: its peer connection stays up, no RTP arrives any more
        assert venue.publisher is not None
        silent = True

        async def drop_all(data: bytes, send: hooks.RtpSend) -> None:
            if not silent:
                await send(data)

        hooks.intercept_rtp_send(venue.publisher.pc.getTransceivers()[0].sender.transport, drop_all)
        cut = time.monotonic()
        paused = await chair.wait_for(lambda m: m["type"] == "case.paused", timeout=15)
        elapsed = time.monotonic() - cut
        print(f"\nfrom the cut to case.paused at the chair: {elapsed:.2f} s (threshold {LOST_AFTER_S} s)")
        assert (paused["ticket_no"], paused["venue"], paused["reason"]) == (1, "tien-du", "link_lost")
        assert LOST_AFTER_S <= elapsed < LOST_AFTER_S + 5.0
        lost = await chair.wait_for(lambda m: m["type"] == "media.link" and m.get("venue") == "tien-du"
                                    and m["state"] == "lost")
        assert lost["role"] == "publisher"
        assert [e.ticket_no for e in await outbox_events(engine) if isinstance(e, CasePaused)] == [1]
        async with engine.connect() as conn:
            queue, _ = await calls.load_queue(conn, ROOM)
        assert queue.paused and queue.unavailable_venues == frozenset({"tien-du"})

        # media flows again: the room says so, and the case stays paused until the chair resumes it
        silent = False
        await chair.wait_for(lambda m: m["type"] == "media.link" and m.get("venue") == "tien-du"
                             and m["state"] == "restored", timeout=15)
        async with engine.begin() as conn:
            await calls.resume(conn, ROOM, actor="user:chu-tri", grants=_STAFF, clock=_now)
        services.outbox.notify()
        resumed = await chair.wait_for(lambda m: m["type"] == "case.resumed")
        assert (resumed["ticket_no"], resumed["pause_no"]) == (1, 1)
        assert len(chair.of_type("case.paused")) == 1
    finally:
        await venue.close()
        await chair.close()
