"""The chair's queue panel over HTTP while a venue's link is down: the case paused over its venue's lost link
says so (``link_lost``), the venues down are listed, and the chair's «Tiếp tục» (``resume``) resumes it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from room_console.context import ConsoleContext
from schedules.link_loss import LinkChange, LinkOutcome, LinkState
from schedules.link_watch import LINK_WATCH_ACTOR, record_venue_link
from signaling.grants import Grant

from ..schedules.conftest import FakeClock
from .test_queue_api import ROOM, app, clock, prepare, signed

__all__ = ["app", "clock"]  # the fixtures, shared with the queue API's tests

pytestmark = pytest.mark.integration


async def link(ctx: ConsoleContext, clock: FakeClock, venue: str, state: LinkState) -> LinkOutcome:
    clock.advance(seconds=10)
    async with ctx.engine.begin() as conn:
        result = await record_venue_link(conn, ROOM, LinkChange(venue=venue, state=state, at=clock.now),
                                         actor=LINK_WATCH_ACTOR, grants={Grant.CALL_QUEUE}, clock=clock)
    return result.outcome


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the service runs on both in tests/schedules
async def test_a_link_lost_pause_is_shown_with_its_venue_and_the_chair_resumes_it(app: FastAPI,
                                                                                  clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo"])
    chair = await signed(app, "chutri")
    called = await chair.post(f"/api/sessions/{ROOM}/queue/call-next")
    assert called.status_code == 200, called.text
    assert called.json()["unavailable_venues"] == [] and called.json()["link_lost"] is False

    assert await link(ctx, clock, "phuong-que-vo", LinkState.LOST) is LinkOutcome.UNAVAILABLE
    assert await link(ctx, clock, "xa-tien-du", LinkState.LOST) is LinkOutcome.PAUSED
    shown = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()
    assert shown["paused"] is True and shown["link_lost"] is True
    assert shown["unavailable_venues"] == [{"venue": "phuong-que-vo", "venue_name": "Phường Quế Võ"},
                                           {"venue": "xa-tien-du", "venue_name": "Xã Tiên Du"}]
    assert shown["actions"]["resume"] and not shown["actions"]["end"]

    assert await link(ctx, clock, "xa-tien-du", LinkState.RESTORED) is LinkOutcome.AVAILABLE
    still = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()
    assert still["paused"] is True and still["link_lost"] is False  # back, but paused until the chair resumes
    resumed = await chair.post(f"/api/sessions/{ROOM}/queue/resume", {"expected_version": still["version"]})
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["events"] == ["case.resumed"] and body["paused"] is False and body["actions"]["end"]
    assert [v["venue"] for v in body["unavailable_venues"]] == ["phuong-que-vo"]
