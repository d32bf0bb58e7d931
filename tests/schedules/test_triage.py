"""A ticket's triage after issue (:mod:`schedules.triage`) on SQLite and PostgreSQL: ``ticket.triaged`` with
its audit row, once per change; the call order follows; a denunciation needs the desk's choice of handling,
and an "in person" one is never in the online order; the handling never reaches the bus."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import PetitionerType, PetitionKind, PetitionSource
from complaints.intake import Intake
from complaints.petitioners import NewPetitioner
from complaints.petitions import NewPetition
from complaints.tables import audit_events, cases
from evidence import Keyring
from schedules import PriorityGround, VenueChoice, calls, publish_session, start_session
from schedules import sessions as service
from schedules.call_order import TicketStatus
from schedules.desk import DeskRegistration, Triage, register_at_desk
from schedules.errors import ConcurrentChange, InvalidArgument, NotPermitted
from schedules.queue_store import load_queue_state
from schedules.tables import queue_tickets
from schedules.triage import ConfidentialHandling, check_handling, retriage_ticket, ticket_handling
from signaling.outbox import outbox

from ._roll_call import record_all_present
from .conftest import ACTOR, ADMIN, CALENDAR, CHAIR, DESK, FakeClock, add_venues, outbox_events, plan

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 10)
ROOM = "phien-phan-loai"
RING = Keyring.generate(dev=True)
DENOUNCER = "Phạm Văn Tố"


def registration(kind: PetitionKind = PetitionKind.COMPLAINT, name: str = "Lê Thị Hoa",
                 handling: ConfidentialHandling | None = None) -> DeskRegistration:
    petition = NewPetition(source=PetitionSource.IN_PERSON, kind=kind, received_on=DAY,
                           content="Tố cáo cán bộ địa chính" if kind is PetitionKind.DENUNCIATION else "Khiếu nại")
    person = NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=name, birth_date=date(1980, 1, 1),
                           address_detail="Xã Tiên Du")
    return DeskRegistration(session_id=ROOM, venue="xa-tien-du", triage=Triage.PROPOSE_LEADER,
                            intake=Intake(petition=petition, petitioner=person), birth_date=date(1980, 1, 1),
                            handling=handling)


async def session_today(engine: AsyncEngine, clock: FakeClock) -> None:
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    clock.set_local(DAY, 7)


async def register(engine: AsyncEngine, clock: FakeClock, reg: DeskRegistration) -> int:
    async with engine.begin() as conn:
        result = await register_at_desk(conn, RING, reg, actor=ACTOR, grants=DESK, clock=clock)
    assert result.ticket is not None
    return result.ticket.ticket_no


async def version_of(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await load_queue_state(conn, ROOM))[1]


def test_a_confidential_case_needs_a_handling_and_no_other_case_takes_one() -> None:
    with pytest.raises(InvalidArgument) as missing:
        check_handling(True, None)
    assert missing.value.code == "handling_required" and "phiên kín" in missing.value.message_vi
    with pytest.raises(InvalidArgument) as needless:
        check_handling(False, ConfidentialHandling.CLOSED_SEGMENT)
    assert needless.value.code == "handling_not_confidential"
    check_handling(True, ConfidentialHandling.IN_PERSON)
    check_handling(False, None)


async def test_a_priority_set_after_issue_writes_ticket_triaged_once_and_moves_the_ticket_up(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await session_today(engine, clock)
    first = await register(engine, clock, registration(name="Lê Thị Hoa"))
    second = await register(engine, clock, registration(name="Trần Văn Bình"))
    async with engine.connect() as conn:
        before = (await load_queue_state(conn, ROOM))[0].order()
    assert [t.ticket_no for t in before.order] == [first, second]
    version = await version_of(engine)
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        change = await retriage_ticket(conn, ROOM, second, priorities=[PriorityGround.DISABLED], handling=None,
                                       expected_version=version, actor=ACTOR, grants=DESK, clock=clock)
    assert change.event is not None and change.event.triage_version == 1 and change.version == version + 1
    async with engine.connect() as conn:
        after = (await load_queue_state(conn, ROOM))[0].order()
    assert [t.ticket_no for t in after.order] == [second, first]
    assert after.reason_for(second) is not None
    # the same triage again changes nothing and writes nothing
    async with engine.begin() as conn:
        same = await retriage_ticket(conn, ROOM, second, priorities=[PriorityGround.DISABLED], handling=None,
                                     expected_version=version + 1, actor=ACTOR, grants=DESK, clock=clock)
    assert same.event is None and same.version == version + 1
    triaged = [e for e in await outbox_events(engine) if e.type == "ticket.triaged"]
    assert len(triaged) == 1 and triaged[0].priorities == ("disabled",)
    async with engine.connect() as conn:
        audits = (await conn.execute(select(audit_events.c.target_id, audit_events.c.detail)
                                     .where(audit_events.c.action == "ticket.triaged"))).all()
    assert len(audits) == 1 and audits[0][1]["triage_version"] == 1 and audits[0][1]["priorities"] == ["disabled"]


async def test_a_stale_version_a_foreign_ground_and_a_missing_grant_are_refused(engine: AsyncEngine,
                                                                                 clock: FakeClock) -> None:
    await session_today(engine, clock)
    number = await register(engine, clock, registration())
    version = await version_of(engine)
    for grants, priorities, expected, error in (
            (DESK, [PriorityGround.PREGNANT], version - 1, ConcurrentChange),
            (DESK, [PriorityGround.CHAIR_SELECTED], version, InvalidArgument),
            (CHAIR, [PriorityGround.PREGNANT], version, NotPermitted)):
        with pytest.raises(error):
            async with engine.begin() as conn:
                await retriage_ticket(conn, ROOM, number, priorities=priorities, handling=None,
                                      expected_version=expected, actor=ACTOR, grants=grants, clock=clock)
    assert not [e for e in await outbox_events(engine) if e.type == "ticket.triaged"]


async def test_a_denunciation_without_a_handling_is_refused_before_anything_is_written(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await session_today(engine, clock)
    with pytest.raises(InvalidArgument) as refused:
        async with engine.begin() as conn:
            await register_at_desk(conn, RING, registration(PetitionKind.DENUNCIATION, DENOUNCER), actor=ACTOR,
                                   grants=DESK, clock=clock)
    assert refused.value.code == "handling_required"
    async with engine.connect() as conn:
        assert (await conn.execute(select(cases.c.id))).first() is None
    with pytest.raises(InvalidArgument) as needless:
        async with engine.begin() as conn:
            await register_at_desk(conn, RING, registration(handling=ConfidentialHandling.IN_PERSON), actor=ACTOR,
                                   grants=DESK, clock=clock)
    assert needless.value.code == "handling_not_confidential"


async def test_an_in_person_denunciation_keeps_its_number_out_of_the_online_order_and_off_the_bus(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await session_today(engine, clock)
    complaint = await register(engine, clock, registration())
    secret = await register(engine, clock, registration(PetitionKind.DENUNCIATION, DENOUNCER,
                                                        ConfidentialHandling.IN_PERSON))
    async with engine.connect() as conn:
        state, version = await load_queue_state(conn, ROOM)
        flags = await ticket_handling(conn, ROOM)
    assert secret == complaint + 1 and state.ticket(secret).status is TicketStatus.IN_PERSON
    assert [t.ticket_no for t in state.order().order] == [complaint]
    assert flags == {secret: ConfidentialHandling.IN_PERSON}
    # the desk changes its mind: a closed segment puts it back into the online order, at its own number
    clock.advance(minutes=1)
    async with engine.begin() as conn:
        change = await retriage_ticket(conn, ROOM, secret, priorities=[], handling=ConfidentialHandling.CLOSED_SEGMENT,
                                       expected_version=version, actor=ACTOR, grants=DESK, clock=clock)
    assert change.status is TicketStatus.WAITING and change.event is not None
    async with engine.connect() as conn:
        state = (await load_queue_state(conn, ROOM))[0]
        stored = (await conn.execute(select(queue_tickets.c.handling, queue_tickets.c.triage_version)
                                     .where(queue_tickets.c.ticket_no == secret))).one()
    assert [t.ticket_no for t in state.order().order] == [complaint, secret]
    assert tuple(stored) == ("closed_segment", 1)
    with pytest.raises(InvalidArgument):  # a denunciation cannot lose its handling
        async with engine.begin() as conn:
            await retriage_ticket(conn, ROOM, secret, priorities=[], handling=None,
                                  expected_version=change.version, actor=ACTOR, grants=DESK, clock=clock)
    # nothing on the bus names the handling or the denouncer
    async with engine.connect() as conn:
        payloads = " ".join(str(p) for p in (await conn.execute(select(outbox.c.payload))).scalars())
    assert "in_person" not in payloads and "closed_segment" not in payloads and DENOUNCER not in payloads


async def test_calling_a_closed_segment_denunciation_announces_what_any_call_announces(
        engine: AsyncEngine, clock: FakeClock) -> None:
    await session_today(engine, clock)
    secret = await register(engine, clock, registration(PetitionKind.DENUNCIATION, DENOUNCER,
                                                        ConfidentialHandling.CLOSED_SEGMENT))
    plain = await register(engine, clock, registration())
    async with engine.begin() as conn:
        await service.open_session(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)
        await record_all_present(conn, ROOM, clock=clock)
        await start_session(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)
    called = []
    for _ in (secret, plain):
        clock.advance(minutes=10)
        async with engine.begin() as conn:
            called += [e for e in (await calls.call_next(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)).events]
            await calls.end_case(conn, ROOM, actor=ACTOR, grants=CHAIR, clock=clock)
    assert [getattr(e, "ticket_no", None) for e in called] == [secret, plain]
    # case.called is what the room server relays to every venue: the same fields whatever the handling
    first, second = (e.model_dump(mode="json") for e in called)
    assert first.keys() == second.keys()
    text = json.dumps(first, ensure_ascii=False)
    for secret_text in ("closed_segment", "in_person", "Phiên kín", "tố cáo", DENOUNCER):
        assert secret_text not in text
