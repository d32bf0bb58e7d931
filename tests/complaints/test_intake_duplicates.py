"""The duplicate check at intake against the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.cases import create_case
from complaints.duplicates import IntakeRecord
from complaints.enums import PetitionerRole, PetitionerType, PetitionKind, PetitionSource
from complaints.petitioners import NewPetitioner, find_duplicates, register_petitioner
from complaints.petitions import NewPetition, add_petition, add_respondent
from complaints.tables import metadata, petitioner_keys
from evidence import Keyring
from signaling.grants import ROLE_GRANTS, Role
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DESK = ROLE_GRANTS[Role.RECEPTION]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def _person_with_case(engine: AsyncEngine, ring: Keyring, *, name: str, id_number: str | None, address: str,
                            respondent: str, content: str, sealed: bool = False) -> tuple[str, str]:
    async with engine.begin() as conn:
        pid = await register_petitioner(conn, ring, NewPetitioner(
            kind=PetitionerType.INDIVIDUAL, full_name=name, id_number=id_number, address_detail=address,
            sealed=sealed), actor="desk", grants=DESK, now=NOW)
        case = await create_case(conn, kind=PetitionKind.DENUNCIATION if sealed else PetitionKind.COMPLAINT,
                                 summary=content, now=NOW)
        await add_petition(conn, case.id, NewPetition(source=PetitionSource.IN_PERSON, kind=case.kind,
                                                      received_on=date(2026, 10, 1), content=content),
                           [(pid, PetitionerRole.SIGNATORY)], now=NOW)
        await add_respondent(conn, case.id, kind="organisation", name=respondent)
    return pid, case.tracking_code


async def test_same_person_without_diacritics_and_with_a_typo_is_found_with_reasons(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    pid, code = await _person_with_case(
        engine, ring, name="Đặng Văn Hưởng", id_number=None, address="Thôn Lũng Giang, xã Tiên Du, tỉnh Bắc Ninh",
        respondent="UBND xã Tiên Du", content="Khiếu nại việc thu hồi đất nông nghiệp không bồi thường")
    query = IntakeRecord("new", full_name="DANG VAN HUONG", address="thon Lung Giang, xa Tien Du, Bac Ninh",
                         respondent="UBND xa Tien Du", content="khieu nai thu hoi dat nong nghiep")
    async with engine.connect() as conn:
        found = await find_duplicates(conn, ring, query)
    assert found and found[0].petitioner_id == pid and found[0].tracking_code == code
    assert found[0].display_name == "Đặng Văn Hưởng"
    assert {r.field.value for r in found[0].candidate.reasons} >= {"name", "address"}
    typo = IntakeRecord("new", full_name="Đặng Văn Hửởng", address="Lũng Giang, Tiên Du", respondent="UBND xã Tiên Du",
                        content="thu hồi đất")
    async with engine.connect() as conn:
        assert (await find_duplicates(conn, ring, typo))[0].petitioner_id == pid


async def test_fifty_namesakes_are_never_matched_on_the_name_alone(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    rng = random.Random(3)
    for i in range(50):
        await _person_with_case(
            engine, ring, name="Nguyễn Văn Hùng", id_number=f"0011{rng.randrange(10**8):08d}",
            address=f"Số {i} đường {rng.choice(['Lý Thái Tổ', 'Trần Hưng Đạo', 'Ngô Gia Tự'])}, phường {i}",
            respondent=f"Công ty {i}", content=f"Phản ánh việc số {i}")
    query = IntakeRecord("new", full_name="Nguyễn Văn Hùng", id_number="001199999999",
                         address="Thôn Mới, xã Yên Phong", respondent="UBND xã Yên Phong",
                         content="tranh chấp ranh giới")
    async with engine.connect() as conn:
        assert await find_duplicates(conn, ring, query) == []


async def test_sealed_denouncer_is_found_only_by_id_and_shown_by_handle(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    pid, _ = await _person_with_case(engine, ring, name="Lê Thị Mai", id_number="001188012345",
                                     address="xã Tiên Du", respondent="Chủ tịch UBND xã", content="Tố cáo",
                                     sealed=True)
    async with engine.connect() as conn:
        assert (await conn.execute(select(petitioner_keys).where(petitioner_keys.c.petitioner_id == pid))).all() == []
        by_name = await find_duplicates(conn, ring, IntakeRecord("q", full_name="Lê Thị Mai", address="xã Tiên Du"))
        by_id = await find_duplicates(conn, ring, IntakeRecord("q", full_name="L T Mai", id_number="001188012345"))
    assert by_name == []
    assert len(by_id) == 1 and by_id[0].sealed and by_id[0].display_name.startswith("NTC-")
    assert "Mai" not in by_id[0].display_name
