"""Cases on SQLite and PostgreSQL: tracking codes, optimistic locking (with no-op edits, classification
and the confidentiality of denunciations), "lần tiếp thứ n"."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.cases import (
    add_reception_entry,
    create_case,
    find_case_by_tracking_code,
    get_case,
    update_case,
)
from complaints.enums import CaseNovelty, CaseStatus, PetitionKind, ReceptionForm, ReceptionType, SubjectArea
from complaints.errors import InvalidInput, InvalidTrackingCode, NotFound, StaleVersion, UnknownEnumValue
from complaints.tables import metadata
from evidence import Keyring
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BY = {"keyring": Keyring.generate(dev=True), "actor": "user:test"}  # who edits (confidentiality seals as them)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def test_case_is_found_by_the_code_a_citizen_types(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại bồi thường đất", now=NOW)
    sloppy = case.tracking_code.lower().replace("-", " ")
    async with engine.connect() as conn:
        found = await find_case_by_tracking_code(conn, sloppy)
    assert found.id == case.id and found.version == 1 and found.status is CaseStatus.RECEIVED
    with pytest.raises(InvalidTrackingCode):
        async with engine.connect() as conn:
            await find_case_by_tracking_code(conn, case.tracking_code[:-1] + "2" if case.tracking_code[-1] != "2"
                                             else case.tracking_code[:-1] + "3")
    with pytest.raises(NotFound):
        async with engine.connect() as conn:
            await get_case(conn, "00000000-0000-0000-0000-000000000000")


async def test_a_denunciation_case_is_confidential_whatever_the_caller_says(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.DENUNCIATION, summary="Tố cáo cán bộ xã", now=NOW)
    assert case.confidential


async def test_tracking_code_collision_is_retried(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="a", now=NOW,
                                  randbelow=random.Random(7).randrange)
        # The same seed draws the same code first, collides, and draws again.
        second = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="b", now=NOW,
                                   randbelow=random.Random(7).randrange)
    assert first.tracking_code != second.tracking_code


async def test_stale_edit_is_refused_and_loses_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="ban đầu", now=NOW)
    async with engine.begin() as conn:
        updated = await update_case(conn, case.id, expected_version=1, changes={"summary": "sửa lần 1"}, now=NOW, **BY)
    assert updated.after.version == 2 and updated.before.version == 1 and updated.changed == ("summary",)
    with pytest.raises(StaleVersion, match="tải lại"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=1, changes={"summary": "sửa cũ"}, now=NOW, **BY)
    async with engine.connect() as conn:
        assert (await get_case(conn, case.id)).summary == "sửa lần 1"
    with pytest.raises(ValueError, match="cannot be edited"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=2, changes={"tracking_code": "x"}, now=NOW, **BY)


async def test_two_connections_editing_one_case_at_once_one_wins_one_is_told(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="x", now=NOW)
    barrier = asyncio.Barrier(2)

    async def edit(text: str) -> str:
        async with engine.connect() as conn:
            version = (await get_case(conn, case.id)).version
            await conn.commit()
            await barrier.wait()
            try:
                async with conn.begin():
                    await update_case(conn, case.id, expected_version=version, changes={"summary": text}, now=NOW, **BY)
            except StaleVersion:
                return "stale"
            return "ok"

    results = sorted(await asyncio.gather(edit("A"), edit("B")))
    assert results == ["ok", "stale"]
    async with engine.connect() as conn:
        final = await get_case(conn, case.id)
    assert final.version == 2 and final.summary in {"A", "B"}


async def test_reception_entries_count_the_nth_reception_and_refuse_future_dates(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.PROPOSAL_FEEDBACK, summary="x", now=NOW)
    ns = []
    for day in (date(2026, 9, 10), date(2026, 10, 12), date(2026, 11, 20)):
        async with engine.begin() as conn:
            _, n = await add_reception_entry(conn, case.id, received_on=day, reception_type=ReceptionType.PERIODIC,
                                             form=ReceptionForm.ONLINE, with_petition=True, now=NOW, **BY,
                                             session_id="s-2026-11", venue="tien-du")
        ns.append(n)
    assert ns == [1, 2, 3]
    with pytest.raises(ValueError, match="future"):
        async with engine.begin() as conn:
            await add_reception_entry(conn, case.id, received_on=NOW.date() + timedelta(days=1),
                                      reception_type=ReceptionType.ROUTINE, form=ReceptionForm.IN_PERSON,
                                      with_petition=False, now=NOW, **BY)


async def test_today_is_the_day_in_vietnam_not_the_utc_day(engine: AsyncEngine) -> None:
    # 18:00 UTC on 6 December is 01:00 on 7 December in Vietnam: a reception on the 7th is today's, the 8th
    # is ahead; at 16:00 UTC (23:00 in Vietnam) the 7th is still ahead.
    from complaints.workdays import local_date

    after_midnight, before_midnight = datetime(2026, 12, 6, 18, 0, tzinfo=UTC), datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    assert local_date(after_midnight) == date(2026, 12, 7) and local_date(before_midnight) == date(2026, 12, 6)
    assert local_date(datetime(2026, 12, 6, 18, 0)) == date(2026, 12, 7)  # naive: UTC, as stored
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="x", now=before_midnight)
    entry = {"reception_type": ReceptionType.ROUTINE, "form": ReceptionForm.IN_PERSON, "with_petition": False}
    async with engine.begin() as conn:
        _, n = await add_reception_entry(conn, case.id, received_on=date(2026, 12, 7), now=after_midnight, **entry,
                                         **BY)
    assert n == 1
    for day, now in ((date(2026, 12, 8), after_midnight), (date(2026, 12, 7), before_midnight)):
        with pytest.raises(ValueError, match="future"):
            async with engine.begin() as conn:
                await add_reception_entry(conn, case.id, received_on=day, now=now, **entry, **BY)


async def test_search_document_follows_summary_edits(engine: AsyncEngine) -> None:
    from complaints.search import CaseQuery, search_cases

    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đường điện", now=NOW)
    async with engine.connect() as conn:
        assert (await search_cases(conn, CaseQuery(text="duong dien"))).total == 1
    async with engine.begin() as conn:
        await update_case(conn, case.id, expected_version=1, changes={"summary": "Tranh chấp lối đi chung"}, now=NOW,
                          **BY)
    async with engine.connect() as conn:
        assert (await search_cases(conn, CaseQuery(text="duong dien"))).total == 0
        assert (await search_cases(conn, CaseQuery(text="LỐI ĐI"))).total == 1


async def test_an_edit_that_changes_nothing_keeps_the_version_but_a_stale_one_is_still_refused(
        engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại", now=NOW,
                                 subject_area=SubjectArea.LAND.value)
    async with engine.begin() as conn:
        same = await update_case(conn, case.id, expected_version=1, now=NOW, **BY, changes={
            "summary": "  Khiếu nại ", "kind": "complaint", "subject_area": "Đất đai", "complex": False})
    assert same.changed == () and same.after.version == 1
    async with engine.begin() as conn:
        await update_case(conn, case.id, expected_version=1, changes={"status": "in_handling"}, now=NOW, **BY)
    with pytest.raises(StaleVersion):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=1, changes={"status": "in_handling"}, now=NOW, **BY)
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await update_case(conn, "no-such-case", expected_version=1, changes={"status": "accepted"}, now=NOW, **BY)


async def test_classification_is_edited_cleared_and_checked(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="x", now=NOW,
                                 subject_area=SubjectArea.LAND.value)
    async with engine.begin() as conn:
        change = await update_case(conn, case.id, expected_version=1, now=NOW, **BY, changes={
            "subject_area": None, "novelty": "new", "complex": True, "crowd": True, "venue": "tien-du"})
    after = change.after
    assert change.changed == ("complex", "crowd", "novelty", "subject_area", "venue")
    assert (after.subject_area, after.novelty, after.complex, after.crowd, after.venue) == (
        None, CaseNovelty.NEW, True, True, "tien-du")
    with pytest.raises(UnknownEnumValue, match="Trạng thái vụ việc"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=2, changes={"status": "gone"}, now=NOW, **BY)
    with pytest.raises(InvalidInput, match="tối đa 1000"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=2, changes={"summary": "x" * 1001}, now=NOW, **BY)
    with pytest.raises(InvalidInput, match="không được để trống"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=2, changes={"summary": "   "}, now=NOW, **BY)
    async with engine.connect() as conn:
        assert (await get_case(conn, case.id)).version == 2


async def test_a_case_that_becomes_a_denunciation_becomes_confidential_for_good(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        case = await create_case(conn, kind=PetitionKind.PROPOSAL_FEEDBACK, summary="x", now=NOW)
    assert not case.confidential
    async with engine.begin() as conn:
        change = await update_case(conn, case.id, expected_version=1, changes={"kind": "denunciation"}, now=NOW, **BY)
    assert change.after.confidential and change.changed == ("confidential", "kind")
    with pytest.raises(InvalidInput, match="giữ mật"):
        async with engine.begin() as conn:
            await update_case(conn, case.id, expected_version=2, changes={"confidential": False}, now=NOW, **BY)
    async with engine.begin() as conn:
        back = await update_case(conn, case.id, expected_version=2, changes={"kind": "complaint"}, now=NOW, **BY)
    assert back.after.kind is PetitionKind.COMPLAINT and back.after.confidential


async def test_search_pages_newest_first_whether_the_matches_are_few_or_past_the_count_cap(
        engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    import complaints.search as search
    from complaints.search import CaseQuery, search_cases

    async with engine.begin() as conn:
        made = [await create_case(conn, kind=PetitionKind.COMPLAINT, summary=f"Khiếu nại đất đai số {i}",
                                  now=NOW + timedelta(minutes=i)) for i in range(7)]
        await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Kiến nghị chế độ", now=NOW)
    newest_first = [c.id for c in reversed(made)]

    async def pages() -> tuple[list[str], int, bool]:
        async with engine.connect() as conn:
            first = await search_cases(conn, CaseQuery(text="dat dai", limit=3))
            second = await search_cases(conn, CaseQuery(text="dat dai", limit=3, offset=3))
            nothing = await search_cases(conn, CaseQuery(text="khongcogi", limit=3))
            assert nothing.total == 0 and nothing.items == []
            if conn.dialect.name == "postgresql":  # the planner setting is put back as it was
                assert (await conn.execute(text("SELECT current_setting('enable_seqscan')"))).scalar_one() == "on"
            return [h.id for h in first.items + second.items], first.total, first.more

    assert await pages() == (newest_first[:6], 7, False)  # few matches: gathered and sorted
    monkeypatch.setattr(search, "COUNT_CAP", 4)
    assert await pages() == (newest_first[:6], 4, True)  # past the cap: read newest first from the index
