"""The duplicate check against the database (SQLite and PostgreSQL) meets the desk's everyday variants:
an i/y spelling of the name and street, and an address written with the ward before the 2025 merger; and
migration 0011 refolds what was stored with the old folding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.cases import create_case
from complaints.duplicates import IntakeRecord, MatchField, MatchHow
from complaints.enums import PetitionerRole, PetitionerType, PetitionKind, PetitionSource
from complaints.petitioners import NewPetitioner, find_duplicates, register_petitioner
from complaints.petitions import NewPetition, add_petition, add_respondent
from complaints.search import CaseQuery, search_cases
from complaints.tables import cases, metadata, petitioner_keys, petitioners
from evidence import Keyring
from signaling.grants import ROLE_GRANTS, Role
from tiepdan.db import MIGRATIONS, make_engine, prepare_database

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DESK = ROLE_GRANTS[Role.RECEPTION]
RING = Keyring.generate(dev=True)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def _stored(engine: AsyncEngine, name: str, address: str, content: str = "Khiếu nại việc cấp giấy chứng nhận",
                  respondent: str = "UBND Quận 3") -> tuple[str, str]:
    async with engine.begin() as conn:
        pid = await register_petitioner(conn, RING, NewPetitioner(
            kind=PetitionerType.INDIVIDUAL, full_name=name, address_detail=address), actor="desk", grants=DESK, now=NOW)
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary=content, now=NOW)
        await add_petition(conn, case.id, NewPetition(source=PetitionSource.IN_PERSON, kind=case.kind,
                                                      received_on=date(2025, 3, 1),
                                                      content=content),
                           [(pid, PetitionerRole.SIGNATORY)], now=NOW, keyring=RING, actor="desk")
        await add_respondent(conn, case.id, kind="organisation", name=respondent)
    return pid, case.tracking_code


async def test_the_i_y_spelling_and_the_ward_before_the_merger_still_find_the_person(engine: AsyncEngine) -> None:
    pid, code = await _stored(engine, "Lê Văn Sĩ", "45 Trần Quốc Thảo, Phường 12, Quận 3, TP. Hồ Chí Minh")
    await _stored(engine, "Lê Văn Sĩ", "Thôn Đông, xã Phú Lâm, huyện Tiên Du, Bắc Ninh",  # a namesake elsewhere
                  "Tố cáo việc lấn chiếm đường đi chung", "Ông Trần Văn B")
    query = IntakeRecord("new", full_name="LÊ VĂN SỸ", address="45 Trần Quốc Thảo, phường Nhiêu Lộc, TP Hồ Chí Minh",
                         respondent="UBND Quận 3", content="Khiếu nại cấp giấy chứng nhận quyền sử dụng đất")
    async with engine.begin() as conn:
        found = (await find_duplicates(conn, RING, query, actor="desk", grants=DESK)).candidates
    assert [c.petitioner_id for c in found] == [pid] and found[0].tracking_code == code
    reasons = {r.field: r.how for r in found[0].candidate.reasons}
    assert reasons[MatchField.ADDRESS] is MatchHow.ADMIN_ALIAS
    assert reasons[MatchField.NAME] in (MatchHow.DIACRITICS, MatchHow.CASE_SPACING)
    # the case search folds the same way: the y spelling finds the case of the i spelling
    async with engine.connect() as conn:
        hits = await search_cases(conn, CaseQuery(text="Lê Văn Sỹ"))
        norm = await conn.scalar(select(petitioners.c.name_norm).where(petitioners.c.id == pid))
    assert code in {hit.tracking_code for hit in hits.items} and norm == "le van si"


async def test_migration_0011_refolds_the_stored_columns_and_keys(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        def upgrade_to_0010(sync_conn: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = sync_conn
            command.upgrade(config, "0010")

        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_0010)
            # as the old folding wrote them: y kept
            await conn.execute(petitioners.insert().values(
                id="p-old", kind="individual", handle="NTC-p-old", sealed=False, full_name="Lê Văn Sỹ",
                name_norm="le van sy", address_detail="xã Kỳ Sơn", address_norm="xa ky son", created_at=NOW))
            await conn.execute(petitioner_keys.insert(), [{"petitioner_id": "p-old", "key": "name:le-sy-van"}])
            await conn.execute(cases.insert().values(
                id="c-old", tracking_code="TCD-TEST-0001", kind="complaint", status="received",
                summary="Đường Lê Văn Sỹ", summary_norm="duong le van sy", search_norm="duong le van sy tay",
                created_at=NOW, updated_at=NOW, version=1))
        await prepare_database(engine)
        async with engine.connect() as conn:
            person = (await conn.execute(select(petitioners.c.name_norm, petitioners.c.address_norm))).one()
            case = (await conn.execute(select(cases.c.summary_norm, cases.c.search_norm))).one()
            keys = set((await conn.execute(select(petitioner_keys.c.key))).scalars())
        assert tuple(person) == ("le van si", "xa ki son")
        assert tuple(case) == ("duong le van si", "duong le van si tay")  # "tay" is another word: kept
        assert "name:le-si-van" in keys and "name:le-sy-van" not in keys
        async with engine.connect() as conn:
            found = await search_cases(conn, CaseQuery(text="Lê Văn Sĩ"))
        assert [hit.id for hit in found.items] == ["c-old"]
    finally:
        await engine.dispose()
