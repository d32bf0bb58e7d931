"""The duplicate check at intake against the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.cases import create_case
from complaints.duplicates import PREFILTER_LIMIT, IntakeRecord, blocking_keys, shortlist
from complaints.enums import PetitionerRole, PetitionerType, PetitionKind, PetitionSource
from complaints.petitioners import NewPetitioner, _shortlist, find_duplicates, register_petitioner
from complaints.petitions import NewPetition, add_petition, add_respondent
from complaints.tables import metadata, petitioner_keys, petitioners
from evidence import Keyring
from signaling.grants import ROLE_GRANTS, Role
from tiepdan.db import MIGRATIONS, make_engine, prepare_database

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DESK = ROLE_GRANTS[Role.RECEPTION]
CHAIR = ROLE_GRANTS[Role.CHAIR]


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
                           [(pid, PetitionerRole.SIGNATORY)], now=NOW, keyring=ring, actor="desk")
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
        found = (await find_duplicates(conn, ring, query, actor="desk", grants=DESK)).candidates
    assert found and found[0].petitioner_id == pid and found[0].tracking_code == code
    assert found[0].display_name == "Đặng Văn Hưởng"
    assert {r.field.value for r in found[0].candidate.reasons} >= {"name", "address"}
    typo = IntakeRecord("new", full_name="Đặng Văn Hửởng", address="Lũng Giang, Tiên Du", respondent="UBND xã Tiên Du",
                        content="thu hồi đất")
    async with engine.connect() as conn:
        assert (await find_duplicates(conn, ring, typo, actor="desk", grants=DESK)).candidates[0].petitioner_id == pid


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
        assert (await find_duplicates(conn, ring, query, actor="desk", grants=DESK)).candidates == []


async def test_sealed_denouncer_is_found_only_by_id_and_shown_by_handle(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    pid, _ = await _person_with_case(engine, ring, name="Lê Thị Mai", id_number="001188012345",
                                     address="xã Tiên Du", respondent="Chủ tịch UBND xã", content="Tố cáo",
                                     sealed=True)
    async with engine.connect() as conn:
        assert (await conn.execute(select(petitioner_keys).where(petitioner_keys.c.petitioner_id == pid))).all() == []
        by_name = await find_duplicates(conn, ring, IntakeRecord("q", full_name="Lê Thị Mai", address="xã Tiên Du"),
                                        actor="chair", grants=CHAIR)
        by_id = (await find_duplicates(conn, ring, IntakeRecord("q", full_name="L T Mai", id_number="001188012345"),
                                       actor="chair", grants=CHAIR)).candidates
    assert by_name.candidates == [] and not by_name.sealed_match
    assert len(by_id) == 1 and by_id[0].sealed and by_id[0].display_name.startswith("NTC-")
    assert "Mai" not in by_id[0].display_name


async def _register(engine: AsyncEngine, ring: Keyring, people: list[tuple[str, str | None, str]]) -> list[str]:
    async with engine.begin() as conn:
        return [await register_petitioner(conn, ring, NewPetitioner(
            kind=PetitionerType.INDIVIDUAL, full_name=name, id_number=number, address_detail=address),
            actor="desk", grants=DESK, now=NOW) for name, number, address in people]


async def test_the_database_shortlists_as_the_python_rule_does(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    rng = random.Random(11)
    surnames, middles, givens = ["Nguyễn", "Trần", "Lê"], ["Văn", "Thị", "Đức"], ["Hùng", "Lan", "Hưởng", "Dũng"]
    communes = ["xã Tiên Du", "xã Yên Phong", "phường Từ Sơn", ""]
    people = [(f"{rng.choice(surnames)} {rng.choice(middles)} {rng.choice(givens)}",
               f"0011{rng.randrange(10**8):08d}" if rng.random() < 0.3 else None,
               f"Thôn {rng.randrange(5)}, {rng.choice(communes)}") for _ in range(80)]
    ids = await _register(engine, ring, people)
    stored = [(pid, blocking_keys(IntakeRecord(pid, full_name=name, id_number=number or "", address=address)))
              for pid, (name, number, address) in zip(ids, people, strict=True)]
    async with engine.connect() as conn:
        assert sorted((await conn.execute(select(petitioner_keys.c.petitioner_id, petitioner_keys.c.key))).all()) \
            == sorted((pid, key) for pid, keys in stored for key in keys)
        queries = [IntakeRecord("q", full_name=name.upper(), id_number=number or "", address=address)
                   for name, number, address in people[:10]]
        queries += [IntakeRecord("q", full_name="Nguyen Van Hunh", address="xa Tien Du"),
                    IntakeRecord("q", full_name="Tran Lan", address="Yen Phong"),
                    IntakeRecord("q", full_name="Lò Văn Páo", address="xã Tiên Du")]
        for query in queries:
            keys = blocking_keys(query)
            for limit in (3, 10, PREFILTER_LIMIT):
                assert await _shortlist(conn, keys, limit) == shortlist(keys, stored, limit), query


async def test_the_person_is_found_among_more_namesakes_than_the_prefilter_takes(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    namesakes = [("Nguyễn Văn Hùng", None, f"Số {i} đường Ngô Gia Tự, phường Kinh Bắc")
                 for i in range(PREFILTER_LIMIT + 20)]
    namesakes += [("Nguyễn Văn Dũng", None, f"Thôn Đông {i}, xã Tiên Du") for i in range(PREFILTER_LIMIT + 20)]
    await _register(engine, ring, namesakes)
    pid, code = await _person_with_case(
        engine, ring, name="Nguyễn Văn Hùng", id_number=None, address="Thôn Đông 12, xã Tiên Du, tỉnh Bắc Ninh",
        respondent="UBND xã Tiên Du", content="Khiếu nại việc thu hồi đất nông nghiệp không bồi thường")
    query = IntakeRecord("new", full_name="NGUYEN VAN HUNH", address="thon Dong 12, xa Tien Du",
                         respondent="UBND xa Tien Du", content="khieu nai thu hoi dat nong nghiep")
    async with engine.connect() as conn:
        found = (await find_duplicates(conn, ring, query, actor="desk", grants=DESK)).candidates
    assert [c.petitioner_id for c in found] == [pid] and found[0].tracking_code == code


async def test_migration_0004_rebuilds_the_keys_of_existing_petitioners(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        def upgrade_to_0003(sync_conn: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = sync_conn
            command.upgrade(config, "0003")

        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_0003)
            for pid, sealed, name in (("p-open", False, "Đặng Văn Hưởng"), ("p-sealed", True, None)):
                await conn.execute(petitioners.insert().values(
                    id=pid, kind="individual", handle=f"NTC-{pid}", sealed=sealed, full_name=name,
                    name_norm=None, id_number="001188012345" if name else None,
                    address_detail="Thôn Lũng Giang, xã Tiên Du" if name else None, created_at=NOW))
            await conn.execute(petitioner_keys.insert(), [{"petitioner_id": "p-open", "key": "name:dang-huong-van"},
                                                         {"petitioner_id": "p-open", "key": "nd:stale|key"}])
        await prepare_database(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(petitioner_keys.c.petitioner_id, petitioner_keys.c.key))).all()
        expected = blocking_keys(IntakeRecord("p-open", full_name="Đặng Văn Hưởng", id_number="001188012345",
                                              address="Thôn Lũng Giang, xã Tiên Du"))
        assert {pid for pid, _ in rows} == {"p-open"}
        assert {key for _, key in rows} == expected and "np:huong-van|tien du" in expected
    finally:
        await engine.dispose()
