"""The confidentiality rule in the database (SQLite and PostgreSQL): every party of a confidential case
is a sealed handle of that case, the link to a record on file stays in the vault, re-classification
seals at once without a grant, the duplicate check withholds sealed matches, and older rows are read
by the rule."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.case_file import load_case_file
from complaints.cases import create_case, get_case, update_case
from complaints.confidentiality import (
    cases_to_seal,
    enforce_confidentiality,
    is_confidential,
    must_be_confidential,
    seal_pending_cases,
)
from complaints.duplicates import IntakeRecord, fold_text
from complaints.enums import PetitionerRole, PetitionerType, PetitionKind, PetitionSource
from complaints.errors import IdentityAccessDenied
from complaints.intake import Intake, IntakeReception, IntakeResult, record_intake
from complaints.petitioners import NewPetitioner, find_duplicates
from complaints.petitions import NewPetition
from complaints.search import CaseQuery, search_cases
from complaints.tables import (
    audit_events,
    cases,
    metadata,
    petition_parties,
    petitioner_keys,
    petitioners,
    petitions,
    reception_entries,
)
from complaints.vault import blind_index, read_identity
from complaints.workdays import default_calendar
from evidence import Keyring
from signaling.grants import ROLE_GRANTS, Grant, Role
from tiepdan.db import MIGRATIONS, make_engine, prepare_database

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DESK = ROLE_GRANTS[Role.RECEPTION]          # intake + identity_write, no identity_read
SECRETARY = ROLE_GRANTS[Role.SECRETARY]     # edits cases, no identity grant at all
CHAIR = ROLE_GRANTS[Role.CHAIR]             # identity_read
LEADER = DESK | CHAIR                       # an intake officer who also holds identity_read
HUNG = NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name="Nguyễn Văn Hùng", id_number="027085012345",
                     birth_date=date(1985, 3, 2), phone="0912345678", address_detail="Thôn Đông, xã Tiên Du")
MAI = NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name="Trần Thị Mai", id_number="027190054321",
                    phone="0987654321", address_detail="Xóm Mới, xã Yên Phong")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate(dev=True)


async def intake(engine: AsyncEngine, ring: Keyring, *, kind: PetitionKind = PetitionKind.COMPLAINT,
                 person: NewPetitioner | None = None, petitioner_id: str | None = None, case_id: str | None = None,
                 grants: Collection[Grant] = DESK, actor: str = "user:desk") -> IntakeResult:
    async with engine.begin() as conn:
        return await record_intake(conn, ring, Intake(
            petition=NewPetition(source=PetitionSource.IN_PERSON, kind=kind, received_on=date(2026, 11, 19),
                                 content=f"Nội dung đơn {kind.label_vi.lower()} về đất đai"),
            petitioner=person, petitioner_id=petitioner_id, case_id=case_id, reception=IntakeReception(),
        ), actor=actor, grants=grants, now=NOW)


async def parties(conn: AsyncConnection, case_id: str) -> set[str]:
    """Every petitioner the case refers to (petitions and reception entries)."""
    named = {r[0] for r in await conn.execute(
        select(petition_parties.c.petitioner_id).join(petitions, petitions.c.id == petition_parties.c.petition_id)
        .where(petitions.c.case_id == case_id))}
    received = {r[0] for r in await conn.execute(
        select(reception_entries.c.petitioner_id).where(reception_entries.c.case_id == case_id))}
    return named | received


async def row(conn: AsyncConnection, pid: str) -> dict[str, Any]:
    return dict((await conn.execute(select(petitioners).where(petitioners.c.id == pid))).mappings().one())


async def name_hits(engine: AsyncEngine, name: str) -> set[str]:
    async with engine.connect() as conn:
        return {hit.id for hit in (await search_cases(conn, CaseQuery(text=name))).items}


async def audits(engine: AsyncEngine, action: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(
            select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.id))).mappings()]


def test_the_rule_in_words() -> None:
    assert must_be_confidential(case_kind="complaint", petition_kinds=["complaint", "denunciation"], marked=False)
    assert must_be_confidential(case_kind=PetitionKind.DENUNCIATION, petition_kinds=[], marked=False)
    assert must_be_confidential(case_kind="proposal_feedback", petition_kinds=["proposal_feedback"], marked=True)
    assert not must_be_confidential(case_kind="complaint", petition_kinds=["complaint", "mixed"], marked=False)


async def test_a_known_citizens_denunciation_gets_its_own_handle_and_the_link_stays_in_the_vault(
        engine: AsyncEngine, ring: Keyring) -> None:
    complaint = await intake(engine, ring, person=HUNG)
    denunciation = await intake(engine, ring, kind=PetitionKind.DENUNCIATION, petitioner_id=complaint.petitioner_id)
    on_file, handle = complaint.petitioner_id, denunciation.petitioner_id
    assert denunciation.new_case and denunciation.confidential and handle != on_file
    async with engine.begin() as conn:
        assert await parties(conn, denunciation.case_id) == {handle}
        assert await parties(conn, complaint.case_id) == {on_file}
        sealed, kept = await row(conn, handle), await row(conn, on_file)
        assert sealed["sealed"] and sealed["full_name"] is None and sealed["handle"].startswith("NTC-")
        assert on_file not in json.dumps(sealed, default=str)  # the row itself does not name the record
        assert not kept["sealed"] and kept["full_name"] == "Nguyễn Văn Hùng"
        identity = await read_identity(conn, ring, handle, actor="user:chair", grants=CHAIR, purpose="Xác minh")
        assert identity.full_name == "Nguyễn Văn Hùng" and identity.phone == "0912345678"
        assert identity.linked_to == on_file  # the link lives in the sealed identity only
        secretary = await load_case_file(conn, denunciation.case_id, today=NOW.date(), calendar=default_calendar(),
                                         grants=SECRETARY)
    party = secretary.petitions[0].parties[0]
    assert party.sealed and party.display_name == sealed["handle"] and not secretary.may_download
    assert secretary.receptions[0].petitioner == sealed["handle"]
    assert await name_hits(engine, "nguyen van hung") == {complaint.case_id}
    seals = await audits(engine, "identity.seal")
    assert [(a["target_id"], a["detail"]) for a in seals] == [
        (handle, {"case_id": denunciation.case_id, "cause": "petition", "how": "copy"})]
    assert all(on_file not in json.dumps(a, default=str) for a in await audits(engine, "identity.seal"))


async def test_reclassifying_seals_a_record_only_that_case_uses_where_it_stands_without_a_grant(
        engine: AsyncEngine, ring: Keyring) -> None:
    created = await intake(engine, ring, person=MAI)
    pid = created.petitioner_id
    assert await name_hits(engine, "tran thi mai") == {created.case_id}
    async with engine.begin() as conn:
        change = await update_case(conn, created.case_id, expected_version=2, changes={"kind": "denunciation"},
                                   now=NOW, keyring=ring, actor="user:secretary")
    assert change.changed == ("confidential", "kind") and change.after.confidential and change.after.version == 3
    async with engine.begin() as conn:
        assert await parties(conn, created.case_id) == {pid}
        sealed = await row(conn, pid)
        assert sealed["sealed"] and sealed["full_name"] is None and sealed["name_norm"] is None
        assert sealed["phone"] is None and sealed["address_detail"] is None and sealed["birth_date"] is None
        assert (await conn.execute(select(petitioner_keys).where(petitioner_keys.c.petitioner_id == pid))).all() == []
        identity = await read_identity(conn, ring, pid, actor="user:chair", grants=CHAIR, purpose="Xác minh")
        assert (identity.full_name, identity.id_number, identity.linked_to) == ("Trần Thị Mai", "027190054321", None)
        assert "mai" not in (await conn.execute(select(cases.c.search_norm)
                                                .where(cases.c.id == created.case_id))).scalar_one()
    assert await name_hits(engine, "tran thi mai") == set()
    confidential = await audits(engine, "case.confidential")
    assert [(a["actor"], a["target_id"], a["detail"]) for a in confidential] == [
        ("user:secretary", created.case_id, {"cause": "edit"})]
    assert [a["detail"]["how"] for a in await audits(engine, "identity.seal")] == ["in_place"]


async def test_reclassifying_a_case_whose_citizen_has_other_cases_links_them_from_neither_side(
        engine: AsyncEngine, ring: Keyring) -> None:
    first = await intake(engine, ring, person=HUNG)
    second = await intake(engine, ring, petitioner_id=first.petitioner_id, kind=PetitionKind.PROPOSAL_FEEDBACK)
    on_file = first.petitioner_id
    async with engine.begin() as conn:
        await update_case(conn, second.case_id, expected_version=2, changes={"kind": "denunciation"}, now=NOW,
                          keyring=ring, actor="user:secretary")
        (handle,) = await parties(conn, second.case_id)
        assert handle != on_file and await parties(conn, first.case_id) == {on_file}
        sealed = await row(conn, handle)
        calendar = default_calendar()
        open_side = await load_case_file(conn, first.case_id, today=NOW.date(), calendar=calendar, grants=SECRETARY)
        sealed_side = await load_case_file(conn, second.case_id, today=NOW.date(), calendar=calendar,
                                           grants=SECRETARY)
    assert open_side.petitions[0].parties[0].display_name == "Nguyễn Văn Hùng"
    assert handle not in repr(open_side) and sealed["handle"] not in repr(open_side)
    assert on_file not in repr(sealed_side) and "Hùng" not in repr(sealed_side)
    assert sealed_side.petitions[0].parties[0].display_name == sealed["handle"]
    assert await name_hits(engine, "nguyen van hung") == {first.case_id}
    # The duplicate check: the desk sees the open record with its open case, nothing of the other.
    query = IntakeRecord("q", full_name="Nguyễn Văn Hùng", id_number="027085012345")
    async with engine.begin() as conn:
        desk = await find_duplicates(conn, ring, query, actor="user:desk", grants=DESK, now=NOW)
        leader = await find_duplicates(conn, ring, query, actor="user:leader", grants=LEADER, now=NOW)
    assert [(c.petitioner_id, c.case_id) for c in desk.candidates] == [(on_file, first.case_id)]
    assert not desk.sealed_match  # the open record answers; a flag beside it would tell the link
    assert {(c.petitioner_id, c.case_id, c.sealed) for c in leader.candidates} == {
        (on_file, first.case_id, False), (handle, second.case_id, True)}
    assert [a["target_id"] for a in await audits(engine, "identity.match")] == [handle]


async def test_a_person_keeps_one_handle_per_case_and_a_handle_is_never_shared(
        engine: AsyncEngine, ring: Keyring) -> None:
    complaint = await intake(engine, ring, person=HUNG)
    denunciation = await intake(engine, ring, kind=PetitionKind.DENUNCIATION, petitioner_id=complaint.petitioner_id)
    again = await intake(engine, ring, petitioner_id=complaint.petitioner_id, case_id=denunciation.case_id)
    assert again.petitioner_id == denunciation.petitioner_id and again.reception_nth == 2
    other = await intake(engine, ring, petitioner_id=denunciation.petitioner_id)  # a handle used elsewhere
    async with engine.begin() as conn:
        assert await parties(conn, denunciation.case_id) == {denunciation.petitioner_id}
        assert await parties(conn, other.case_id) == {other.petitioner_id}
        assert other.petitioner_id not in {denunciation.petitioner_id, complaint.petitioner_id}
        assert not other.confidential and (await row(conn, other.petitioner_id))["sealed"]
        copy = await read_identity(conn, ring, other.petitioner_id, actor="user:chair", grants=CHAIR, purpose="x y")
    assert copy.full_name == "Nguyễn Văn Hùng" and copy.linked_to == complaint.petitioner_id


async def test_attaching_a_denunciation_makes_the_case_confidential_and_seals_every_party(
        engine: AsyncEngine, ring: Keyring) -> None:
    hung = await intake(engine, ring, person=HUNG)
    mai = await intake(engine, ring, person=MAI, case_id=hung.case_id)
    assert not mai.confidential
    attached = await intake(engine, ring, kind=PetitionKind.DENUNCIATION, petitioner_id=hung.petitioner_id,
                            case_id=hung.case_id, actor="user:desk")
    assert attached.confidential and attached.became_confidential and not attached.new_case
    async with engine.begin() as conn:
        assert await is_confidential(conn, hung.case_id)
        # both records were used by this case only: sealed where they stand
        assert await parties(conn, hung.case_id) == {hung.petitioner_id, mai.petitioner_id}
        assert all([(await row(conn, pid))["sealed"] for pid in (hung.petitioner_id, mai.petitioner_id)])
        again = await enforce_confidentiality(conn, ring, hung.case_id, actor="user:x", now=NOW, cause="edit")
    assert (again.became_confidential, again.sealed) == (False, 0)  # idempotent
    assert await name_hits(engine, "tran thi mai") == set() and await name_hits(engine, "nguyen van hung") == set()
    assert [a["detail"] for a in await audits(engine, "case.confidential")] == [{"cause": "petition"}]


async def test_a_new_person_for_a_confidential_case_needs_identity_write(engine: AsyncEngine, ring: Keyring) -> None:
    denunciation = await intake(engine, ring, kind=PetitionKind.DENUNCIATION, person=HUNG)
    with pytest.raises(IdentityAccessDenied, match="không có quyền ghi"):
        await intake(engine, ring, person=MAI, case_id=denunciation.case_id, grants=frozenset({Grant.INTAKE}))
    joined = await intake(engine, ring, person=MAI, case_id=denunciation.case_id)
    async with engine.begin() as conn:
        assert (await row(conn, joined.petitioner_id))["sealed"]
        assert (await get_case(conn, denunciation.case_id)).confidential


async def test_marking_a_case_confidential_seals_and_it_cannot_be_undone(engine: AsyncEngine, ring: Keyring) -> None:
    created = await intake(engine, ring, person=MAI, kind=PetitionKind.PROPOSAL_FEEDBACK)
    async with engine.begin() as conn:
        change = await update_case(conn, created.case_id, expected_version=2, changes={"confidential": True},
                                   now=NOW, keyring=ring, actor="user:secretary")
    assert change.changed == ("confidential",) and change.after.version == 3
    async with engine.begin() as conn:
        assert (await row(conn, created.petitioner_id))["sealed"]
    from complaints.errors import InvalidInput

    with pytest.raises(InvalidInput, match="giữ mật"):
        async with engine.begin() as conn:
            await update_case(conn, created.case_id, expected_version=3, changes={"confidential": False}, now=NOW,
                              keyring=ring, actor="user:secretary")


async def test_without_the_grant_a_sealed_match_is_one_flag_the_same_for_every_sealed_person(
        engine: AsyncEngine, ring: Keyring) -> None:
    hung = await intake(engine, ring, kind=PetitionKind.DENUNCIATION, person=HUNG)
    await intake(engine, ring, kind=PetitionKind.DENUNCIATION, person=MAI)

    async def check(number: str, grants: Collection[Grant] = DESK) -> Any:
        async with engine.begin() as conn:
            return await find_duplicates(conn, ring, IntakeRecord("q", full_name="Lê Văn Tám", id_number=number),
                                         actor="user:desk", grants=grants, now=NOW)

    exact_hung, exact_mai = await check("027085012345"), await check("027190054321")
    assert exact_hung == exact_mai and exact_hung.candidates == [] and exact_hung.sealed_match
    one_off = await check("027085012346")
    assert one_off.candidates == [] and not one_off.sealed_match
    full = await check("027085012345", LEADER)
    assert not full.sealed_match and [(c.case_id, c.tracking_code, c.sealed) for c in full.candidates] == [
        (hung.case_id, hung.tracking_code, True)]
    assert full.candidates[0].candidate.reasons[0].how.value == "exact" and full.candidates[0].candidate.is_match
    assert len(await audits(engine, "identity.match_withheld")) == 2
    assert [a["target_id"] for a in await audits(engine, "identity.match")] == [hung.petitioner_id]


async def _legacy_denunciation(conn: AsyncConnection, ring: Keyring) -> tuple[str, str]:
    """A case written before the rule: a denunciation attached to a complaint case left it open, its
    citizen in clear and in the search document."""
    case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất", now=NOW)
    await conn.execute(petitioners.insert().values(
        id="p-legacy", kind="individual", handle="NTC-LEGA-CY00", sealed=False, full_name="Đỗ Thị Kín",
        name_norm=fold_text("Đỗ Thị Kín"), id_number="027190012345", id_blind_index=blind_index(ring, "027190012345"),
        created_at=NOW))
    for pid, kind in (("pe-1", "complaint"), ("pe-2", "denunciation")):
        await conn.execute(petitions.insert().values(
            id=pid, case_id=case.id, source="in_person", kind=kind, received_on=date(2026, 11, 1),
            content="Nội dung", content_norm="noi dung", created_at=NOW))
        await conn.execute(petition_parties.insert().values(petition_id=pid, petitioner_id="p-legacy",
                                                           role=PetitionerRole.SIGNATORY.value))
    await conn.execute(cases.update().where(cases.c.id == case.id).values(search_norm="khieu nai ve dat do thi kin"))
    return case.id, case.tracking_code


async def test_rows_older_than_the_rule_are_read_by_the_rule_and_sealed_by_the_next_write(
        engine: AsyncEngine, ring: Keyring) -> None:
    async with engine.begin() as conn:
        case_id, _code = await _legacy_denunciation(conn, ring)
    async with engine.begin() as conn:
        assert await is_confidential(conn, case_id)
        secretary = await load_case_file(conn, case_id, today=NOW.date(), calendar=default_calendar(),
                                         grants=SECRETARY)
        chair = await load_case_file(conn, case_id, today=NOW.date(), calendar=default_calendar(), grants=CHAIR)
        desk = await find_duplicates(conn, ring, IntakeRecord("q", full_name="Đỗ Thị Kín", id_number="027190012345"),
                                     actor="user:desk", grants=DESK, now=NOW)
    assert secretary.confidential and not secretary.may_download and "Kín" not in repr(secretary)
    assert {p.display_name for p in secretary.petitions[0].parties} == {"NTC-LEGA-CY00"}
    assert chair.petitions[0].parties[0].display_name == "Đỗ Thị Kín"  # identity_read sees the open row
    assert [(c.petitioner_id, c.case_id) for c in desk.candidates] == [("p-legacy", None)]
    async with engine.connect() as conn:
        (hit,) = (await search_cases(conn, CaseQuery(text="khieu nai ve dat"))).items
    assert hit.id == case_id and hit.confidential
    async with engine.begin() as conn:
        change = await update_case(conn, case_id, expected_version=1, changes={"status": "in_handling"}, now=NOW,
                                   keyring=ring, actor="user:secretary")
        assert change.changed == ("confidential", "status")
        assert (await row(conn, "p-legacy"))["sealed"]
    assert await name_hits(engine, "do thi kin") == set()


async def test_sealing_pending_cases_seals_older_rows_once_and_leaves_open_cases_alone(
        engine: AsyncEngine, ring: Keyring) -> None:
    open_case = await intake(engine, ring, person=MAI)
    async with engine.begin() as conn:
        case_id, _code = await _legacy_denunciation(conn, ring)
        assert await cases_to_seal(conn) == [case_id]
    async with engine.begin() as conn:
        ((done, sealing),) = await seal_pending_cases(conn, ring, actor="system:seal", now=NOW, limit=1)
    assert done == case_id and sealing.became_confidential and sealing.sealed == 1
    async with engine.begin() as conn:
        legacy = await row(conn, "p-legacy")
        assert legacy["sealed"] and legacy["full_name"] is None and legacy["id_number"] is None
        assert (await read_identity(conn, ring, "p-legacy", actor="user:chair", grants=CHAIR, now=NOW)
                ).full_name == "Đỗ Thị Kín"
        assert not (await row(conn, open_case.petitioner_id))["sealed"]
        assert (await get_case(conn, case_id)).confidential
        assert await cases_to_seal(conn) == []
        assert await seal_pending_cases(conn, ring, actor="system:seal", now=NOW) == []
    assert await name_hits(engine, "do thi kin") == set()
    assert await name_hits(engine, "tran thi mai") == {open_case.case_id}
    assert [a["target_id"] for a in await audits(engine, "case.confidential")] == [case_id]


async def test_migration_0006_takes_the_names_out_of_confidential_search_documents(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        def upgrade_to_0005(sync_conn: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = sync_conn
            command.upgrade(config, "0005")

        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_0005)
            case_id, _ = await _legacy_denunciation(conn, Keyring.generate(dev=True))
            other = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại bồi thường", now=NOW)
            await conn.execute(cases.update().where(cases.c.id == other.id)
                               .values(search_norm="khieu nai boi thuong le van tam"))
        await prepare_database(engine)
        assert await name_hits(engine, "do thi kin") == set()
        assert await name_hits(engine, "dat") == {case_id}  # the rest of the document is kept
        assert await name_hits(engine, "le van tam") == {other.id}  # an open case keeps its names
    finally:
        await engine.dispose()
