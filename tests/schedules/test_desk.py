"""The desk's service (:func:`schedules.desk.register_at_desk`) on SQLite and PostgreSQL: the elderly
priority computed on the session's day, the session states and days the desk accepts, and what one
registration writes (reception entry, ticket, audit row and outbox events, in one transaction)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import PetitionerType, PetitionKind, PetitionSource
from complaints.intake import Intake
from complaints.petitioners import NewPetitioner
from complaints.petitions import NewPetition
from complaints.tables import audit_events, reception_entries
from evidence import Keyring
from schedules import PriorityGround, VenueChoice, publish_session
from schedules.desk import DeskRegistration, Triage, register_at_desk
from schedules.errors import NotPermitted, SessionNotToday, TicketsNotIssued

from .conftest import ACTOR, ADMIN, CALENDAR, CHAIR, DESK, FakeClock, add_venues, audit_actions, outbox_events, plan

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 10)
ROOM = "phien-2026-12-10"
NAME = "Lê Thị Hoa"
RING = Keyring.generate(dev=True)


def person(birth: date) -> NewPetitioner:
    return NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=NAME, birth_date=birth,
                         address_detail="Xã Tiên Du")


def desk(birth: date, triage: Triage = Triage.PROPOSE_LEADER, **over: object) -> DeskRegistration:
    petition = NewPetition(source=PetitionSource.IN_PERSON, kind=PetitionKind.COMPLAINT, received_on=DAY,
                           content="Khiếu nại về bồi thường đất")
    values: dict[str, object] = {"session_id": ROOM, "venue": "xa-tien-du", "triage": triage, "birth_date": birth,
                                 "intake": Intake(petition=petition, petitioner=person(birth))}
    values.update(over)
    return DeskRegistration(**values)  # type: ignore[arg-type]


async def published(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)


async def test_elderly_is_computed_from_the_birth_date_on_the_session_day(engine: AsyncEngine,
                                                                          clock: FakeClock) -> None:
    await published(engine, clock)
    clock.set_local(DAY, 7)
    async with engine.begin() as conn:
        sixty = await register_at_desk(conn, RING, desk(date(1966, 12, 10), priorities=frozenset(
            {PriorityGround.PREGNANT, PriorityGround.CHAIR_SELECTED})), actor=ACTOR, grants=DESK, clock=clock)
        younger = await register_at_desk(conn, RING, desk(date(1966, 12, 11)), actor=ACTOR, grants=DESK, clock=clock)
    assert sixty.ticket is not None and younger.ticket is not None
    # The chair's pre-selection is not the desk's to grant.
    assert sixty.ticket.priorities == {PriorityGround.ELDERLY, PriorityGround.PREGNANT}
    assert younger.ticket.priorities == frozenset()
    assert (sixty.ticket.ticket_no, younger.ticket.ticket_no) == (1, 2)
    types = [e.type for e in await outbox_events(engine)]
    assert types.count("case.created") == 2 and types.count("ticket.issued") == 2
    async with engine.connect() as conn:
        details = (await conn.execute(select(audit_events.c.detail).where(audit_events.c.action == "desk.registered"))
                   ).scalars().all()
    assert len(details) == 2 and all(NAME not in json.dumps(d, ensure_ascii=False) for d in details)


async def test_the_desk_registers_only_on_the_session_day_and_in_a_published_or_open_session(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
    clock.set_local(DAY, 7)
    with pytest.raises(TicketsNotIssued):  # planned, not yet published
        async with engine.begin() as conn:
            await register_at_desk(conn, RING, desk(date(1980, 1, 1)), actor=ACTOR, grants=DESK, clock=clock)
    clock.set_local(date(2026, 12, 1), 9)
    async with engine.begin() as conn:
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    with pytest.raises(SessionNotToday):
        async with engine.begin() as conn:
            await register_at_desk(conn, RING, desk(date(1980, 1, 1)), actor=ACTOR, grants=DESK, clock=clock)
    clock.set_local(DAY, 7)
    with pytest.raises(NotPermitted):
        async with engine.begin() as conn:
            await register_at_desk(conn, RING, desk(date(1980, 1, 1)), actor=ACTOR, grants=CHAIR, clock=clock)
    async with engine.begin() as conn:
        done = await register_at_desk(conn, RING, desk(date(1980, 1, 1), Triage.EXPLAIN), actor=ACTOR, grants=DESK,
                                      clock=clock)
    assert done.ticket is None and done.reception_nth == 1


async def test_the_desk_writes_through_the_case_store_service_with_its_audit_rows_and_events(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await published(engine, clock)
    clock.set_local(DAY, 7)
    async with engine.begin() as conn:
        first = await register_at_desk(conn, RING, desk(date(1980, 1, 1), Triage.EXPLAIN, officer="Cán bộ Hà"),
                                       actor=ACTOR, grants=DESK, clock=clock)
    case_id = first.intake.case_id
    again = desk(date(1980, 1, 1))
    async with engine.begin() as conn:  # the same citizen comes back: a second petition of the same case
        await register_at_desk(conn, RING, replace(again, intake=Intake(
            petition=again.intake.petition, petitioner_id=first.intake.petitioner_id, case_id=case_id)),
            actor=ACTOR, grants=DESK, clock=clock)
    case_events = [e.type for e in await outbox_events(engine)
                   if e.type.startswith("case.") and getattr(e, "case", None) == case_id]
    assert case_events == ["case.created", "case.reception_recorded", "case.petition_added",
                           "case.reception_recorded"]
    actions = [a for a, _kind, target in await audit_actions(engine) if target == case_id]
    assert actions == ["case.intake", "case.reception", "desk.registered"] * 2
    async with engine.connect() as conn:
        officers = (await conn.execute(select(reception_entries.c.officer).where(
            reception_entries.c.case_id == case_id).order_by(reception_entries.c.nth))).scalars().all()
    assert officers == ["Cán bộ Hà", ACTOR]  # the desk officer, else the actor's label
