"""The service layer of the complaint database (complaints.service), on SQLite and PostgreSQL: every write
announces its event and writes its audit row in the caller's transaction, a failure of either rolls the
change back, the grants are checked by the service whoever calls it, and the public lookup reads only
what a citizen may see."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints import service
from complaints.attachments import receive_file
from complaints.cases import create_case, get_case
from complaints.directives import add_unit
from complaints.enums import (
    HandlingDirection,
    PetitionerRole,
    PetitionerType,
    PetitionKind,
    PetitionSource,
    ReceptionForm,
    ReceptionType,
)
from complaints.errors import NotAuthorized, NotFound
from complaints.intake import Intake, IntakeReception
from complaints.petitioners import NewPetitioner
from complaints.petitions import NewPetition
from complaints.service import WRITES, Caller
from complaints.tables import (
    audit_events,
    cases,
    directives,
    petition_parties,
    petitioners,
    petitions,
    recording_segments,
)
from complaints.tables import metadata as complaints_metadata
from complaints.workdays import default_calendar
from evidence import Keyring
from signaling.events import parse_event
from signaling.grants import Grant
from signaling.outbox import metadata as signaling_metadata
from signaling.outbox import outbox
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CAL = default_calendar()
DESK = Caller(label="user:desk", name="Cán bộ Tiếp Dân", grants=frozenset({Grant.INTAKE, Grant.IDENTITY_WRITE}))
CHAIR = Caller(label="user:chair", name="Bí thư", grants=frozenset({Grant.DIRECTIVES, Grant.APPROVE,
                                                                      Grant.IDENTITY_READ}))
UNIT = Caller(label="user:unit", name="Sở Xây dựng", grants=frozenset({Grant.DIRECTIVES}), unit="so-xd")
OTHER_UNIT = Caller(label="user:other", name="Sở Nội vụ", grants=frozenset({Grant.DIRECTIVES}), unit="so-nv")
T = TypeVar("T")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(complaints_metadata.create_all)
        await conn.run_sync(signaling_metadata.create_all)
        for unit_id, name in (("so-xd", "Sở Xây dựng"), ("so-nv", "Sở Nội vụ")):
            await add_unit(conn, unit_id, name, track="state")
    yield eng
    await eng.dispose()


def _petition(kind: PetitionKind = PetitionKind.COMPLAINT, content: str = "Khiếu nại thu hồi đất") -> NewPetition:
    return NewPetition(source=PetitionSource.IN_PERSON, kind=kind, received_on=date(2026, 11, 19), content=content)


def _person(name: str = "Nguyễn Văn Hùng") -> NewPetitioner:
    return NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=name, id_number="027090012345")


async def _count(conn: AsyncConnection, table: Any) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


class Journal:
    """Runs service writes one transaction each and notes, per function, the events and audit rows
    each call added."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.events: dict[str, set[str]] = {}
        self.audited: dict[str, int] = {}

    async def run(self, name: str, call: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.engine.begin() as conn:
            seen = await _count(conn, outbox)
            audits = await _count(conn, audit_events)
            result = await call(conn)
            rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id).offset(seen))).all()
            self.audited[name] = self.audited.get(name, 0) + await _count(conn, audit_events) - audits
        self.events.setdefault(name, set()).update(parse_event(r[0]).type for r in rows)
        return result


async def _legacy_case(conn: AsyncConnection) -> str:
    """A complaint case with a denunciation attached before the confidentiality rule: its citizen in clear."""
    case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất", now=NOW)
    await conn.execute(petitioners.insert().values(id="p-old", kind="individual", handle="NTC-OLDR-OW00",
                                                   sealed=False, full_name="Đỗ Thị Kín", created_at=NOW))
    await conn.execute(petitions.insert().values(
        id="pe-old", case_id=case.id, source="in_person", kind="denunciation", received_on=date(2026, 11, 1),
        content="Nội dung", content_norm="noi dung", created_at=NOW))
    await conn.execute(petition_parties.insert().values(petition_id="pe-old", petitioner_id="p-old", role="signatory"))
    return case.id


def _public_coroutines() -> dict[str, Any]:
    found = {}
    for module in (service.intake, service.cases, service.directives, service.attachments, service.public,
                   service.segments):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.iscoroutinefunction(obj):
                found[name] = obj
    return found


async def test_every_service_write_audits_and_announces_its_event(engine: AsyncEngine, tmp_path: Path) -> None:
    reads = {"ensure_case_visible", "record_case_view", "open_attachment", "public_status"}
    assert set(_public_coroutines()) == set(WRITES) | reads  # a new function is a read or has its events here
    keyring = Keyring.generate(dev=True)
    j = Journal(engine)
    pid = await j.run("register_petitioner", lambda c: service.register_petitioner(c, keyring, DESK, _person(),
                                                                                    now=NOW))
    first = await j.run("record_intake", lambda c: service.record_intake(
        c, keyring, DESK, Intake(petition=_petition(), petitioner_id=pid, reception=IntakeReception()), now=NOW))
    await j.run("record_intake", lambda c: service.record_intake(c, keyring, DESK, Intake(
        petition=_petition(), petitioner_id=pid, case_id=first.case_id, reception=IntakeReception()), now=NOW))
    case_id = first.case_id
    petition_id = await j.run("add_petition", lambda c: service.add_petition(
        c, keyring, DESK, case_id, _petition(), [(pid, PetitionerRole.SIGNATORY)], now=NOW))
    _entry, nth = await j.run("add_reception", lambda c: service.add_reception(
        c, keyring, DESK, case_id, received_on=date(2026, 11, 20), reception_type=ReceptionType.PERIODIC,
        form=ReceptionForm.ONLINE, now=NOW, petitioner_id=pid, session_id="phien-2026-11-20"))
    assert nth == 3
    other = await j.run("register_petitioner", lambda c: service.register_petitioner(
        c, keyring, DESK, _person("Trần Thị Mai"), now=NOW))
    await j.run("record_delegation", lambda c: service.record_delegation(
        c, keyring, DESK, case_id, member_ids=[pid, other], representative_ids=[pid], now=NOW))
    version = (await _read(engine, lambda c: get_case(c, case_id))).version
    change = await j.run("update_case", lambda c: service.update_case(
        c, keyring, DESK, case_id, expected_version=version, changes={"status": "in_handling"}, now=NOW))
    assert change.changed == ("status",)
    await j.run("record_handling_decision", lambda c: service.record_handling_decision(
        c, DESK, case_id, direction=HandlingDirection.PROPOSE_ACCEPTANCE, decided_on=date(2026, 11, 20), now=NOW))
    directive_id, due = await j.run("issue_directive", lambda c: service.issue_directive(
        c, CHAIR, case_id, unit_id="so-xd", content="Xác minh", issued_on=date(2026, 11, 20), calendar=CAL, now=NOW,
        working_days=10))
    assert due == date(2026, 12, 7)
    await j.run("report_on_directive", lambda c: service.report_on_directive(
        c, UNIT, directive_id, expected_version=1, reported_on=date(2026, 11, 20), content="Đã xác minh",
        completed=True, now=NOW))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4 "
        yield b"don"

    received = await receive_file(chunks(), tmp_path)
    added = await j.run("add_attachment", lambda c: service.add_attachment(
        c, DESK, petition_id, received, display_name="Đơn khiếu nại.pdf", media_type="application/pdf", now=NOW))
    assert (added.record.size, added.shown_name) == (12, "Đơn khiếu nại.pdf")
    async with engine.begin() as conn:
        legacy = await _legacy_case(conn)
    sealed = await j.run("seal_pending", lambda c: service.seal_pending(c, keyring, Caller.system("system:seal", ()),
                                                                           now=NOW))
    assert [case for case, _ in sealed] == [legacy]
    async with engine.begin() as conn:  # a complete segment of the case in the session of its reception
        await conn.execute(recording_segments.insert().values(
            segment=f"c1-{case_id}", session="phien-2026-11-20", case_id=case_id, call_seq=1, confidential=False,
            manifest_path="phien-2026-11-20/manifests/0001.json", manifest_sha256="ab" * 32, files_json="[]",
            speakers_json="[]", gaps_json="[]", opened_at=NOW, closed_at=NOW))
    minutes_writer = Caller(label="service:minutes", name="Thư ký", grants=frozenset({Grant.MINUTES}))
    assert await j.run("reference_segments", lambda c: service.reference_segments(
        c, minutes_writer, case_id, "phien-2026-11-20", now=NOW)) == (f"c1-{case_id}",)

    assert set(j.events) == set(WRITES)
    for name, types in j.events.items():
        assert types and types <= WRITES[name], name
        assert j.audited[name] >= 1, name
    assert j.events["record_intake"] == {"case.created", "case.petition_added", "case.reception_recorded"}


async def _read(engine: AsyncEngine, call: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with engine.connect() as conn:
        return await call(conn)


async def test_an_outbox_failure_rolls_back_the_edit_and_its_audit_row(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        result = await service.record_intake(conn, keyring, DESK, Intake(petition=_petition(),
                                                                         petitioner=_person()), now=NOW)
    async with engine.begin() as conn:
        audits = await _count(conn, audit_events)
        await conn.execute(text("DROP TABLE outbox"))  # the announcement cannot be written
    with pytest.raises(SQLAlchemyError):
        async with engine.begin() as conn:
            await service.update_case(conn, keyring, DESK, result.case_id, expected_version=1,
                                      changes={"summary": "Tóm tắt mới"}, now=NOW)
    async with engine.connect() as conn:
        case = await get_case(conn, result.case_id)
        assert (case.summary, case.version) == ("Khiếu nại thu hồi đất", 1)
        assert await _count(conn, audit_events) == audits


async def test_an_audit_failure_rolls_back_the_directive(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        result = await service.record_intake(conn, keyring, DESK, Intake(petition=_petition(),
                                                                         petitioner=_person()), now=NOW)
        events = await _count(conn, outbox)
        await conn.execute(text("DROP TABLE audit_head"))  # the audit log cannot take a row
    with pytest.raises(SQLAlchemyError):
        async with engine.begin() as conn:
            await service.issue_directive(conn, CHAIR, result.case_id, unit_id="so-xd", content="Xác minh",
                                          issued_on=date(2026, 11, 20), calendar=CAL, now=NOW, working_days=10)
    async with engine.connect() as conn:
        assert await _count(conn, directives) == 0
        assert await _count(conn, outbox) == events


async def test_the_service_refuses_what_the_grants_do_not_allow_whoever_calls(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        result = await service.record_intake(conn, keyring, DESK, Intake(petition=_petition(),
                                                                         petitioner=_person()), now=NOW)
        directive_id, _ = await service.issue_directive(
            conn, CHAIR, result.case_id, unit_id="so-xd", content="Xác minh", issued_on=date(2026, 11, 20),
            calendar=CAL, now=NOW, working_days=10)
    attempts: list[Callable[[AsyncConnection], Awaitable[Any]]] = [
        lambda c: service.record_intake(c, keyring, CHAIR, Intake(petition=_petition(), petitioner=_person()),
                                        now=NOW),
        lambda c: service.issue_directive(c, UNIT, result.case_id, unit_id="so-xd", content="x",
                                          issued_on=date(2026, 11, 20), calendar=CAL, now=NOW, working_days=5),
        lambda c: service.issue_directive(c, DESK, result.case_id, unit_id="so-xd", content="x",
                                          issued_on=date(2026, 11, 20), calendar=CAL, now=NOW, working_days=5),
        lambda c: service.update_case(c, keyring, CHAIR, result.case_id, expected_version=1,
                                      changes={"status": "closed"}, now=NOW),
        lambda c: service.record_handling_decision(c, UNIT, result.case_id, direction=HandlingDirection.FORWARD,
                                                   decided_on=date(2026, 11, 20), now=NOW, forwarded_to="Sở"),
        lambda c: service.seal_pending(c, keyring, DESK, now=NOW),
    ]
    for attempt in attempts:
        with pytest.raises(NotAuthorized) as refused:
            async with engine.begin() as conn:
                await attempt(conn)
        assert refused.value.code == "forbidden" and refused.value.message_vi.startswith(("Bạn", "Đơn vị", "Chỉ"))
    with pytest.raises(NotFound):  # another unit's directive does not exist for this unit
        async with engine.begin() as conn:
            await service.report_on_directive(conn, OTHER_UNIT, directive_id, expected_version=1,
                                              reported_on=date(2026, 11, 20), content="x", completed=True, now=NOW)
    with pytest.raises(NotFound):  # nor its case
        async with engine.connect() as conn:
            await service.ensure_case_visible(conn, OTHER_UNIT, result.case_id)
    async with engine.connect() as conn:
        await service.ensure_case_visible(conn, UNIT, result.case_id)
        assert await _count(conn, cases) == 1 and await _count(conn, directives) == 1


async def test_the_public_status_shows_status_dates_and_deadline_and_no_oracle(engine: AsyncEngine) -> None:
    keyring = Keyring.generate(dev=True)
    async with engine.begin() as conn:
        result = await service.record_intake(conn, keyring, DESK, Intake(petition=_petition(),
                                                                         petitioner=_person()), now=NOW)
        await service.issue_directive(conn, CHAIR, result.case_id, unit_id="so-xd", content="Xác minh",
                                      issued_on=date(2026, 11, 20), calendar=CAL, now=NOW, working_days=10)
    async with engine.connect() as conn:
        found = await service.public_status(conn, result.tracking_code.lower().replace("-", " "))
        assert (found.status.value, found.received_on, found.deadline) == ("received", date(2026, 11, 19),
                                                                           date(2026, 12, 7))
        with pytest.raises(NotFound) as malformed:
            await service.public_status(conn, "not a code")
        with pytest.raises(NotFound) as unknown:
            await service.public_status(conn, result.tracking_code[:-1] + ("A" if result.tracking_code[-1] != "A"
                                                                           else "B"))
        assert malformed.value.message_vi == unknown.value.message_vi
