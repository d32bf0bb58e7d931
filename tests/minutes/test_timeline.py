"""The case timeline on SQLite and PostgreSQL: each event kept once (by key and by event id), room events placed
in the call they happened in, media times computed from the segment's t0 on the session clock whatever order the
events arrive in, and a closed segment's row naming no venue."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.tables import recording_segments
from minutes.tables import minutes_timeline
from minutes.timeline import TIMELINE_TYPES, TimelineRow, case_timeline, place, timeline_handler
from room_console.i18n import catalogue
from signaling.events import (
    AnyEvent,
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseResumed,
    ClosedSegmentEnded,
    ClosedSegmentStarted,
    FloorGranted,
    FloorRevoked,
    ParticipantJoined,
    SegmentClosed,
    SegmentOpened,
    VenueLinkLost,
    VenueLinkRestored,
)
from tiepdan.app import Services

from ..room_console._live_sessions import open_live_session
from ._console import MODULE_LOOP, draft_opened, signed
from ._drafts import VENUE, register_case

SESSION = "phien-2026-12-10"
T = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)
CASE_A = "case-a"
CASE_B = "case-b"
EPOCH_OFFSET = 100.0  # the session's recording started 100 s before T


def _at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def _session_events() -> list[AnyEvent]:
    """Two calls: A from T+0 to T+60 (segment t0 = 100.2, opened at T+0.5), B from T+70 (segment still open)."""
    common = {"session": SESSION, "ticket_no": 1, "venue": VENUE, "call_seq": 1}
    return [
        CaseCalled(**common, case=CASE_A, occurred_at=_at(0), announcement_text="Mời công dân số 1."),
        SegmentOpened(room=SESSION, segment=f"c1-{CASE_A}", case=CASE_A, call_seq=1, occurred_at=_at(0.5)),
        FloorGranted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(5)),
        VenueLinkLost(room=SESSION, venue=VENUE, occurred_at=_at(12)),
        VenueLinkRestored(room=SESSION, venue=VENUE, occurred_at=_at(20)),
        CasePaused(**common, case=CASE_A, pause_no=1, occurred_at=_at(21)),
        CaseResumed(**common, case=CASE_A, pause_no=1, occurred_at=_at(25)),
        ClosedSegmentStarted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(30)),
        ClosedSegmentEnded(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(40)),
        FloorRevoked(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(50)),
        CaseClosed(**common, case=CASE_A, occurred_at=_at(60)),
        SegmentClosed(room=SESSION, segment=f"c1-{CASE_A}", case=CASE_A, call_seq=1, occurred_at=_at(60.4),
                      media_t0=EPOCH_OFFSET + 0.2, opened_at=_at(0.5), duration_s=59.9),
        CaseCalled(**{**common, "call_seq": 2, "ticket_no": 2}, case=CASE_B, occurred_at=_at(70),
                   announcement_text="Mời công dân số 2."),
        FloorGranted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(75)),
    ]


EXPECTED_A = [  # kind, media time (t0 + seconds since the segment opened, never before t0)
    ("case.called", 100.2), ("room.segment_opened", 100.2), ("room.floor_granted", 104.7),
    ("room.venue_link_lost", 111.7), ("room.venue_link_restored", 119.7), ("case.paused", 120.7),
    ("case.resumed", 124.7), ("room.closed_segment_started", 129.7), ("room.closed_segment_ended", 139.7),
    ("room.floor_revoked", 149.7), ("case.closed", 159.7), ("room.segment_closed", 160.1),
]


async def _deliver(engine: AsyncEngine, events: list[AnyEvent]) -> None:
    handle = timeline_handler(engine, clock=lambda: T)
    for event in events:
        await handle(event)


async def _timeline(engine: AsyncEngine, case_id: str) -> list[TimelineRow]:
    async with engine.connect() as conn:
        return await case_timeline(conn, session_id=SESSION, case_id=case_id)


@pytest.mark.integration
async def test_each_event_is_kept_once_in_its_case_with_its_media_time(engine: AsyncEngine) -> None:
    events = _session_events()
    await _deliver(engine, events)
    await _deliver(engine, events)  # every event delivered again: nothing new
    # the same event id under another idempotency key (an emitter that rewrote the key) is still one row
    again = events[0].model_copy(update={"call_seq": 9})
    await _deliver(engine, [again])
    async with engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(minutes_timeline))
    assert count == len(events)

    rows = await _timeline(engine, CASE_A)
    assert [(r.kind, r.media_at) for r in rows] == EXPECTED_A
    assert {r.segment for r in rows} == {f"c1-{CASE_A}"}
    floor = rows[2]
    assert floor.occurred_at == _at(5) and floor.venue == VENUE and floor.media_offset == pytest.approx(4.5)
    for row in rows:
        if row.kind.startswith("room.closed_segment"):
            assert row.venue is None  # never where the denouncer sits

    b_rows = await _timeline(engine, CASE_B)
    assert [(r.kind, r.media_at, r.segment) for r in b_rows] == [
        ("case.called", None, None), ("room.floor_granted", None, None)]  # no segment yet: no media time


@pytest.mark.integration
async def test_order_of_delivery_does_not_change_the_timeline(engine: AsyncEngine) -> None:
    events = _session_events()
    random.Random(12).shuffle(events)
    await _deliver(engine, events)
    rows = await _timeline(engine, CASE_A)
    assert [(r.kind, r.media_at) for r in rows] == EXPECTED_A
    assert [r.kind for r in await _timeline(engine, CASE_B)] == ["case.called", "room.floor_granted"]


@pytest.mark.integration
async def test_events_outside_the_timeline_are_passed_over(engine: AsyncEngine) -> None:
    await _deliver(engine, [ParticipantJoined(room=SESSION, participant="p1", venue=VENUE, occurred_at=_at(1)),
                            FloorGranted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(2))])
    async with engine.connect() as conn:
        rows = (await conn.execute(select(minutes_timeline.c.kind, minutes_timeline.c.case_id))).all()
    assert [(r.kind, r.case_id) for r in rows] == [("room.floor_granted", None)]  # no call holds it


@pytest.mark.unit
def test_a_call_without_its_end_ends_at_the_next_call() -> None:
    rows = [
        TimelineRow("e1", SESSION, "case.called", _at(0), case_id=CASE_A, call_seq=1),
        TimelineRow("e2", SESSION, "room.venue_link_lost", _at(10), venue=VENUE),
        TimelineRow("e3", SESSION, "case.called", _at(20), case_id=CASE_B, call_seq=2),
        TimelineRow("e4", SESSION, "room.venue_link_restored", _at(30), venue=VENUE),
        TimelineRow("e5", SESSION, "room.segment_closed", _at(40), case_id=CASE_B, call_seq=2, segment="c2-case-b",
                    segment_t0=50.0, segment_opened_at=_at(21)),
    ]
    placed = place(rows)
    assert (placed["e2"].case_id, placed["e2"].media_at) == (CASE_A, None)
    assert (placed["e4"].case_id, placed["e4"].segment, placed["e4"].media_at) == (CASE_B, "c2-case-b", 59.0)
    assert placed["e3"].media_at == 50.0  # called a moment before the segment opened: its start
    assert place(list(reversed(rows))) == placed


# -- the secretary's page --------------------------------------------------------------------------------------


async def _settled(services: Services, case_id: str) -> None:
    """Until the timeline placed the closed segment and the case store kept it (two consumers of the bus)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with services.engine.connect() as conn:
            rows = await case_timeline(conn, session_id=SESSION, case_id=case_id)
            kept = await conn.scalar(select(recording_segments.c.closed_at).where(
                recording_segments.c.segment == f"c1-{case_id}"))
        if kept is not None and len(rows) == 5 and all(r.media_at is not None for r in rows):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the timeline did not settle")


@pytest.mark.integration
@MODULE_LOOP
async def test_the_minutes_page_lists_the_timeline_linked_into_the_recording_for_who_may_replay(
        app: FastAPI) -> None:
    services: Services = app.state.services
    await open_live_session(services.engine, SESSION, [("main", "Trụ sở Tiếp công dân tỉnh"), (VENUE, "Xã Tiên Du")])
    async with services.engine.begin() as conn:
        case_id = await register_case(conn, services.keyring)
    segment = f"c1-{case_id}"
    common = {"session": SESSION, "ticket_no": 1, "venue": VENUE, "call_seq": 1, "case": case_id}
    events: list[AnyEvent] = [
        CaseCalled(**common, occurred_at=_at(0), announcement_text="Mời công dân số 1."),
        SegmentOpened(room=SESSION, segment=segment, case=case_id, call_seq=1, occurred_at=_at(0.5)),
        FloorGranted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(5)),
        ClosedSegmentStarted(room=SESSION, venue=VENUE, by="chair", occurred_at=_at(30)),
        SegmentClosed(room=SESSION, segment=segment, case=case_id, call_seq=1, occurred_at=_at(60.4),
                      media_t0=EPOCH_OFFSET + 0.2, opened_at=_at(0.5), duration_s=59.9),
    ]
    for event in events:
        await services.bus.publish(event)
    await _settled(services, case_id)
    await draft_opened(services, case_id)

    url = f"/bien-ban/{SESSION}/{case_id}"
    chair = await signed(app, "chutri")
    page = await chair.get(url)
    assert page.status_code == 200, page.text
    html = page.text
    assert html.count('data-testid="timeline-entry"') == 5
    assert f'href="/xem-lai/{segment}#t=4.5"' in html and "tại 0:00:04 trong bản ghi hình" in html
    assert "Trao quyền phát biểu" in html and "Bắt đầu phiên kín" in html
    closed = html.split('data-kind="room.closed_segment_started"')[1].split("</li>")[0]
    assert VENUE not in closed and "Xã Tiên Du" not in closed  # a closed segment never says where

    secretary = await signed(app, "thuky")  # no replay grant: the times, no links
    html = (await secretary.get(url)).text
    assert html.count('data-testid="timeline-entry"') == 5
    assert "/xem-lai/" not in html and "tại 0:00:04 trong bản ghi hình" in html


@pytest.mark.unit
def test_every_timeline_event_has_a_vietnamese_label() -> None:
    keys = catalogue().keys()
    assert sorted(f"minutes.timeline.kind.{kind.replace('.', '_')}" for kind in TIMELINE_TYPES
                  if f"minutes.timeline.kind.{kind.replace('.', '_')}" not in keys) == []
