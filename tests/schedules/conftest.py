"""Fixtures of the scheduler's database tests: a migrated database (SQLite and PostgreSQL through the
``database_url`` fixture), a fake clock, the grants of each role, cases to issue tickets for, and
readers of the outbox and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.audit import verify_audit_log
from complaints.cases import create_case
from complaints.enums import PetitionKind, ReceptionForm, ReceptionType
from complaints.tables import audit_events
from complaints.workdays import default_calendar
from schedules import VIETNAM_TZ, VenueChoice, VenueDraft, VenueLevel, create_venue, plan_session
from schedules.sessions import SessionRecord
from signaling.events import AnyEvent, parse_event
from signaling.grants import ROLE_GRANTS, Grant, Role
from signaling.outbox import outbox
from tiepdan.db import make_engine, prepare_database

ADMIN = frozenset(ROLE_GRANTS[Role.ADMIN])
CHAIR = frozenset(ROLE_GRANTS[Role.CHAIR])
DESK = frozenset(ROLE_GRANTS[Role.RECEPTION])
VENUE_OPERATOR = frozenset(ROLE_GRANTS[Role.VENUE])
#: An operator who plans and chairs (tests that drive a session end to end).
ALL = frozenset(Grant)
ACTOR = "user:u-ban-tiep-dan"
CALENDAR = default_calendar()

VENUES = (
    VenueDraft("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh Bắc Ninh", VenueLevel.MAIN, "24", ("24", "27")),
    VenueDraft("xa-tien-du", "Xã Tiên Du", VenueLevel.COMMUNE, "09319", ("09319", "09328", "09322")),
    VenueDraft("phuong-que-vo", "Phường Quế Võ", VenueLevel.WARD, "09247", ("09247",), max_kbps=800),
    VenueDraft("xa-gia-binh", "Xã Gia Bình", VenueLevel.COMMUNE, "09454"),
)


class FakeClock:
    """The injected clock: returns ``now`` until moved."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set_local(self, day: date, hour: int = 8, minute: int = 0) -> datetime:
        self.now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=VIETNAM_TZ)
        return self.now


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """Tuesday 1 December 2026, 09:00 in Vietnam."""
    return FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=VIETNAM_TZ))


async def add_venues(engine: AsyncEngine, clock: FakeClock, drafts: Sequence[VenueDraft] = VENUES) -> None:
    async with engine.begin() as conn:
        for draft in drafts:
            await create_venue(conn, draft, actor=ACTOR, grants=ADMIN, clock=clock)


async def make_cases(engine: AsyncEngine, count: int) -> list[str]:
    async with engine.begin() as conn:
        return [(await create_case(conn, kind=PetitionKind.COMPLAINT, summary=f"Khiếu nại số {i}",
                                   now=datetime(2026, 11, 20, tzinfo=UTC))).id for i in range(count)]


async def plan(conn: AsyncConnection, clock: FakeClock, session_id: str, day: date, *,
               venues: Sequence[VenueChoice] | None = None, kind: ReceptionType = ReceptionType.AD_HOC,
               form: ReceptionForm = ReceptionForm.ONLINE, host: str | None = "bi-thu-tinh-uy",
               cohosts: Sequence[str] = ()) -> SessionRecord:
    chosen = venues if venues is not None else [VenueChoice(v.id) for v in VENUES]
    return await plan_session(conn, session_id=session_id, day=day, form=form, kind=kind, venues_chosen=chosen,
                              host=host, cohosts=cohosts, actor=ACTOR, grants=ADMIN, clock=clock)


async def outbox_events(engine: AsyncEngine) -> list[AnyEvent]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [parse_event(row) for row in rows]


async def audit_actions(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    """(action, target kind, target id) of every audit row, in order; the hash chain is checked first."""
    async with engine.connect() as conn:
        assert await verify_audit_log(conn) is None
        rows = (await conn.execute(select(audit_events.c.action, audit_events.c.target_kind, audit_events.c.target_id)
                                   .order_by(audit_events.c.id))).all()
    return [(r[0], r[1], r[2]) for r in rows]
